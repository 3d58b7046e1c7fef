"""A small generator certified in perceptual distance (LPIPS; paper section 5.2, scaled down).

The paper smooths BigGAN (128 latent variables -> 128 x 128 images) in LPIPS
with Smooth-HD (30 candidate centers), ``n = 2000``, ``m = 10^4``,
``Delta = 0.08`` (the authors' code), ``eps1 = 0.01 .. 0.05`` and ``h`` in
{1, 1.5}. Here the generator is the decoder of the shipped digits autoencoder
(:mod:`cs_fast.models.digits`): 10 latent variables -> an 8 x 8 digit,
upsampled to ``size x size`` and tiled to RGB, as LPIPS needs. Its latent
inputs are the encodings of held-out digits.

The smoothed model's output is the LPIPS feature vector of
:class:`cs_fast.models.lpips_adapter.LPIPSFeatures` with the generator's 8 x 8
image appended under weight zero: the ``sqfeat`` distance is exactly LPIPS,
and the center carries its image along for display.
"""

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .lpips_adapter import LPIPSFeatures, load_lpips

PAPER_N, PAPER_M, PAPER_DELTA, PAPER_CANDIDATES = 2000, 10_000, 0.08, 30
PAPER_EPS1 = (0.01, 0.02, 0.03, 0.04, 0.05)
PAPER_H = (1.0, 1.5)


class DigitsGenerator(nn.Module):
    """Latent ``(b, 10)`` -> RGB image ``(b, 3, size, size)`` in [0, 1].

    Parameters
    ----------
    autoencoder : DigitsAutoencoder, optional
        Defaults to the shipped one (:func:`cs_fast.models.digits.load_digits_autoencoder`).
    size : int
        Output height and width (bilinear upsampling of the 8 x 8 digit);
        at least 32 for LPIPS' AlexNet trunk.
    """

    def __init__(self, autoencoder=None, size=32):
        super().__init__()
        if autoencoder is None:
            from .digits import load_digits_autoencoder

            autoencoder = load_digits_autoencoder()
        self.decoder = autoencoder.decoder.eval()
        self.size = int(size)

    def small(self, z):
        """The decoder's own ``(b, 1, 8, 8)`` digit."""
        return self.decoder(z)

    def to_rgb(self, small):
        """``(b, 1, 8, 8)`` -> ``(b, 3, size, size)``."""
        up = nn.functional.interpolate(small, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return up.repeat(1, 3, 1, 1)

    def forward(self, z):
        return self.to_rgb(self.small(z))


class PerceptualOutput(nn.Module):
    """Latent -> ``[LPIPS features | 8 x 8 image]``, for ``sqfeat`` with :attr:`weights`.

    Parameters
    ----------
    generator : DigitsGenerator
    features : LPIPSFeatures
        Built with ``normalize=True`` (generator images are in [0, 1]).
    """

    def __init__(self, generator, features):
        super().__init__()
        self.generator = generator
        self.features = features
        with torch.no_grad():
            probe = generator.small(torch.zeros(1, generator.decoder[0].in_features))
            self.n_features = features(generator.to_rgb(probe)).shape[1]
            self.image_shape = tuple(probe.shape[1:])

    @property
    def weights(self):
        """``sqfeat`` weights: one per feature, zero on the appended image."""
        return np.concatenate([np.ones(self.n_features), np.zeros(int(np.prod(self.image_shape)))])

    def forward(self, z):
        small = self.generator.small(z)
        return torch.cat([self.features(self.generator.to_rgb(small)), small.flatten(1)], dim=1)

    def split(self, out):
        """``(features, images)`` of outputs ``(b, D)`` (or one output ``(D,)``)."""
        out = torch.as_tensor(out)
        out = out[None] if out.ndim == 1 else out
        return out[:, : self.n_features], out[:, self.n_features:].reshape((-1,) + self.image_shape)


def build(size=32, seed=0, stand_in="auto"):
    """The :class:`PerceptualOutput` of the shipped digits decoder and a seeded random-trunk LPIPS."""
    feats = LPIPSFeatures(load_lpips("alex", seed=seed, stand_in=stand_in), normalize=True)
    return PerceptualOutput(DigitsGenerator(size=size), feats).eval()


def test_latents(count=1):
    """Encodings ``(count, 10)`` of the first held-out digits (needs scikit-learn)."""
    from .digits import digits_data, load_digits_autoencoder

    with torch.no_grad():
        return load_digits_autoencoder().encoder(digits_data("test")[:count])


@dataclass(frozen=True)
class GeneratorCertificate:
    """Settings, timing and :class:`cs_fast.Certificate` of one latent (``eps_out`` in LPIPS)."""

    eps1: float
    h: float
    sigma: float
    candidates: Any
    certificate: Any
    seconds: float


def certify_generator(model, z, eps1, h=1.0, n=PAPER_N, m=PAPER_M, *, candidates=PAPER_CANDIDATES,
                      delta=PAPER_DELTA, seed=None, batch_size=500, bounds="exact", **kwargs):
    """Certify the LPIPS distance of the smoothed generator at latent ``z``.

    With probability at least ``1 - alpha1 - alpha2`` (``- 2**-candidates``
    with candidates), every latent within l2 distance ``eps1`` of ``z`` has a
    smoothed image within LPIPS ``eps_out = 10 R`` of the returned center.

    Parameters
    ----------
    model : PerceptualOutput
    z : torch.Tensor
        ``(10,)`` latent.
    eps1, h : float
        Input radius and ``eps1 / sigma``.
    n, m : int
    candidates : int or None
        Smooth-HD's candidate centers (the paper's 30); None: the exact
        center over all ``n`` samples (``cs_fast.min_median``).
    delta : float
    seed : int or numpy.random.SeedSequence, optional
        The noise's seed; None (the default) draws fresh entropy, recorded in the certificate.
    batch_size : int
    bounds : {'exact', 'paper'}
        The statistics (:class:`cs_fast.CenterSmoothing`).
    **kwargs
        ``alpha1``, ``alpha2`` of :meth:`cs_fast.CenterSmoothing.certify`.

    Returns
    -------
    GeneratorCertificate
    """
    from ..smoothing import CenterSmoothing

    sigma = float(eps1) / float(h)
    smoother = CenterSmoothing(model, "sqfeat", sigma, metric_params={"weights": model.weights},
                               batch_size=batch_size, seed=seed, candidates=candidates, bounds=bounds)
    start = time.perf_counter()
    cert = smoother.certify(z, eps1, n=n, m=m, delta=delta, **kwargs)
    return GeneratorCertificate(float(eps1), float(h), sigma, candidates, cert, time.perf_counter() - start)


def time_centers(model, z, sigma, n=PAPER_N, candidates=PAPER_CANDIDATES, seed=0, batch_size=500):
    """Seconds to sample ``n`` outputs and to pick their center three ways.

    1. ``exact``: cs_fast's exact center over all ``n`` samples
       (``cs_fast.min_median`` on the LPIPS features: all ``n^2`` distances).
    2. ``candidates``: the paper's Smooth-HD approximation on cs_fast, the
       ``candidates`` extra samples' passes and their ``candidates x n``
       feature distances.
    3. ``authors``: the same approximation as the authors compute it, one
       ``lpips.LPIPS`` network call per (candidate, sample) pair (batched by
       candidate); ``authors_exact_s_estimate`` scales it to all ``n^2``
       pairs (``n / candidates`` times as many calls; not run).

    Returns
    -------
    dict
        ``sample_s`` (``n`` generator + LPIPS trunk passes, common to all),
        ``exact_s``, ``candidates_s``, ``authors_s``,
        ``authors_exact_s_estimate``, and each method's median distance of its
        center (``*_radius``; the two candidate methods pick among the same
        candidates and must agree up to float32 rounding).
    """
    import cs_fast

    from ..bindings.backend import HOST

    g = torch.Generator().manual_seed(seed)
    w = model.weights
    net = model.features.net
    with torch.no_grad():  # compile the kernels and warm the network outside the timed regions
        warm = model(z + sigma * torch.randn((8,) + z.shape, generator=torch.Generator().manual_seed(seed + 1)))
        net(model.generator(z[None]).expand(8, -1, -1, -1), model.generator.to_rgb(model.split(warm)[1]),
            normalize=True)
    cs_fast.min_median(warm, "sqfeat", weights=w)
    cs_fast.cdist(warm[:2], warm, "sqfeat", weights=w)
    start = time.perf_counter()
    with torch.no_grad():
        Z = torch.cat([model(z + sigma * torch.randn((min(batch_size, n - i),) + z.shape, generator=g))
                       for i in range(0, n, batch_size)])
    sample_s = time.perf_counter() - start
    start = time.perf_counter()
    _, exact_radius = cs_fast.min_median(Z, "sqfeat", weights=w)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        C = model(z + sigma * torch.randn((candidates,) + z.shape, generator=g))
    D = cs_fast.cdist(C, Z, "sqfeat", weights=w).numpy()
    cand_radius = min(HOST.lower_median(row) for row in D)
    candidates_s = time.perf_counter() - start
    images = model.generator.to_rgb(model.split(Z)[1])  # the samples' images, kept from the sampling
    cand_images = model.generator.to_rgb(model.split(C)[1])
    start = time.perf_counter()
    with torch.no_grad():
        rows = [net(c[None].expand_as(images[i:i + batch_size]), images[i:i + batch_size], normalize=True)
                for c in cand_images for i in range(0, n, batch_size)]
    authors = torch.cat([r.reshape(-1) for r in rows]).reshape(candidates, n).double().numpy()
    authors_radius = min(HOST.lower_median(row) for row in authors)
    authors_s = time.perf_counter() - start
    return {"n": n, "candidates": candidates, "dim": int(Z.shape[1]), "sample_s": sample_s, "exact_s": exact_s,
            "candidates_s": candidates_s, "authors_s": authors_s,
            "authors_exact_s_estimate": authors_s * n / candidates, "exact_radius": exact_radius,
            "candidates_radius": float(cand_radius), "authors_radius": float(authors_radius)}
