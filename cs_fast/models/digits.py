"""A convolutional autoencoder for scikit-learn's 8x8 digits (paper section 5.3).

The paper certifies the total variation distance of a dimensionality-reduction
autoencoder on MNIST: a convolutional encoder maps the image to a few latent
variables, a deconvolutional decoder reconstructs it, with batch norm in
between. This is the same design scaled down to scikit-learn's bundled 8x8
digits, so that the demo needs no download and trains in seconds on a CPU.

Images are ``(1, 8, 8)`` float32 tensors with pixel values in [0, 1] (the raw
0..16 intensities divided by 16).
"""

from importlib import resources

import numpy as np
import torch
from torch import nn

#: Latent variables of the shipped model (the 8x8 analogue of the paper's 256 for 28x28).
LATENT_DIM = 10
#: Channels of the first convolution; the second has twice as many.
WIDTH = 8
#: The held-out fraction and the seed of the fixed train/test permutation.
TEST_FRACTION = 0.2
SPLIT_SEED = 0
#: File name of the shipped state_dict, under ``cs_fast/models/weights/``.
WEIGHTS_NAME = "digits_autoencoder.pt"


class DigitsAutoencoder(nn.Module):
    """Convolutional autoencoder ``(b, 1, 8, 8) -> (b, 1, 8, 8)``.

    Encoder: conv 3x3 (``width`` channels, 8x8) -> conv 3x3 stride 2
    (``2 width`` channels, 4x4) -> linear to ``latent_dim``. Decoder: linear
    -> transposed conv 4x4 stride 2 back to 8x8 -> conv 3x3 to one channel ->
    sigmoid, so reconstructions lie in [0, 1]. Batch norm follows every hidden
    convolution, as in the paper.

    Parameters
    ----------
    latent_dim : int
        Size of the bottleneck.
    width : int
        Channels of the first convolution.
    """

    def __init__(self, latent_dim=LATENT_DIM, width=WIDTH):
        super().__init__()
        w2 = 2 * width
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, w2, 3, stride=2, padding=1), nn.BatchNorm2d(w2), nn.ReLU(),
            nn.Flatten(), nn.Linear(w2 * 4 * 4, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, w2 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (w2, 4, 4)),
            nn.ConvTranspose2d(w2, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1), nn.Sigmoid(),
        )

    def forward(self, x):
        """Reconstruct a batch ``x`` of shape ``(b, 1, 8, 8)``."""
        return self.decoder(self.encoder(x))


def digits_data(split="test", return_labels=False):
    """scikit-learn's 8x8 digits, scaled to [0, 1], split by a fixed permutation.

    The split (80 % train, 20 % test, permutation seed :data:`SPLIT_SEED`) is
    the one the shipped model was trained on, so ``"test"`` digits were never
    seen in training.

    Parameters
    ----------
    split : {'train', 'test', 'all'}
    return_labels : bool
        Also return the digit classes.

    Returns
    -------
    images : torch.Tensor
        float32, shape ``(N, 1, 8, 8)``, values in [0, 1].
    labels : torch.Tensor
        int64, shape ``(N,)``; only if ``return_labels``.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (``pip install scikit-learn``, or
        ``pip install -e '.[demo]'`` in the cs_fast clone).
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split: received {split!r}; expected 'train', 'test' or 'all'")
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("digits_data needs scikit-learn: pip install scikit-learn (or pip install -e '.[demo]' "
                          "in the cs_fast clone)") from err
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    n_test = int(round(TEST_FRACTION * len(images)))
    if split == "train":
        order = order[n_test:]
    elif split == "test":
        order = order[:n_test]
    x = torch.from_numpy(np.ascontiguousarray(images[order]))
    if return_labels:
        return x, torch.from_numpy(labels[order])
    return x


def default_weights_path():
    """Path of the shipped state_dict (a context-free :class:`importlib.resources` traversable)."""
    return resources.files(__package__).joinpath("weights", WEIGHTS_NAME)


def load_digits_autoencoder(path=None, map_location="cpu"):
    """The trained digits autoencoder, in eval mode.

    Parameters
    ----------
    path : str or path-like, optional
        A state_dict saved by :mod:`cs_fast.models.train_digits`; defaults to
        the weights shipped with the package (trained for 80 epochs with
        Gaussian noise of standard deviation drawn uniformly from [0, 0.7] per
        image, seed 0).
    map_location : str or torch.device
        Where to put the weights.

    Returns
    -------
    DigitsAutoencoder
        Maps ``(b, 1, 8, 8)`` inputs to ``(b, 1, 8, 8)`` reconstructions in
        [0, 1]. Eval mode: batch norm uses its running statistics, so each
        output depends only on its own input.
    """
    model = DigitsAutoencoder()
    if path is None:
        with resources.as_file(default_weights_path()) as p:
            state = torch.load(p, map_location=map_location, weights_only=True)
    else:
        state = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(state)
    return model.to(map_location).eval()
