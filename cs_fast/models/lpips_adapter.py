r"""LPIPS as ``sqfeat``: one network pass per image, then one GEMM for all pairs.

The LPIPS distance of two images (the ``lpips`` package, v0.1, ``spatial=False``)
passes each through a trunk network and, for every layer ``l`` with
activations :math:`a_l \in \mathbb{R}^{C_l \times H_l \times W_l}`:

1. unit-normalizes the channel vector at every position,
   :math:`\hat a_{l,chw} = a_{l,chw} / (\|a_{l,\cdot hw}\|_2 + 10^{-10})`;
2. squares the difference of the two images' :math:`\hat a_l`;
3. weights the channels with the 1x1 "lin" convolution (no bias; dropout is
   the identity in eval mode), weights :math:`w_{l,c} \ge 0`;
4. averages over the :math:`H_l W_l` positions;

and sums the layers:

.. math::

    \mathrm{LPIPS}(x, y) = \sum_l \frac{1}{H_l W_l} \sum_{c,h,w}
        w_{l,c} (\hat a_{l,chw}(x) - \hat a_{l,chw}(y))^2
      = \sum_i (f_i(x) - f_i(y))^2,
    \qquad f_l = \sqrt{w_{l,c} / (H_l W_l)}\, \hat a_{l,chw}.

So with :class:`LPIPSFeatures` computing ``f`` (the concatenation over layers)
once per image, all ``n^2`` distances are ``cs_fast.cdist(F, F, "sqfeat")``
and the center is ``cs_fast.min_median(F, "sqfeat")`` -- instead of ``n^2``
network calls. ``sqfeat`` has gamma 2, so certificates read
``eps_out = 10 R``. The identity needs every ``w_{l,c} >= 0``; the package's
calibrated weights are (they are clamped at zero in training), randomly
initialized ones need not be, and :class:`LPIPSFeatures` refuses them.

The ``lpips`` package imports ``torchvision.models`` for its trunk; beside
the CPU build of torch, where torchvision does not import, :func:`load_lpips`
builds it against cs_fast's stand-in, which has only a randomly initialized
AlexNet (pre-trained trunks would be downloaded, which cs_fast never does)::

    pip install --no-deps lpips==0.1.4
"""

import warnings

import torch
from torch import nn

from ._torchvision_compat import import_module

#: The eps lpips adds to the channel norm.
NORM_EPS = 1e-10


def load_lpips(net="alex", seed=0, stand_in="auto"):
    """An ``lpips.LPIPS`` with the package's calibrated lin weights and a random trunk.

    Parameters
    ----------
    net : str
        Trunk; only ``'alex'`` without the real torchvision.
    seed : int
        torch seed of the trunk's initialization (the global torch RNG is
        left as it was).
    stand_in : {'auto', True, False}
        See :func:`cs_fast.models._torchvision_compat.import_module`.

    Returns
    -------
    lpips.LPIPS
        In eval mode, ``pretrained=True`` (lin weights from the package),
        ``pnet_rand=True`` (trunk randomly initialized).

    Raises
    ------
    ImportError
        If lpips is not installed (``pip install --no-deps lpips==0.1.4``).
    """
    try:
        lpips = import_module("lpips", stand_in=stand_in)
    except ImportError as err:
        raise ImportError("load_lpips needs lpips: pip install --no-deps lpips==0.1.4") from err
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # torchvision >= 0.13 warns that lpips passes pretrained=False.
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(seed)
        model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    return model.eval()


def lin_weights(net):
    """Per-layer channel weights of an ``lpips.LPIPS`` (ones for ``lpips=False``)."""
    if not getattr(net, "lpips", True):
        return [torch.ones(c) for c in net.chns]
    out = []
    for lin in net.lins:
        conv = [mod for mod in lin.modules() if isinstance(mod, nn.Conv2d)][-1]
        out.append(conv.weight.detach().reshape(-1).clone())
    return out


class LPIPSFeatures(nn.Module):
    """Images -> LPIPS features ``(b, D)`` with ``LPIPS(x, y) = sum (f(x) - f(y))^2``.

    Parameters
    ----------
    net : lpips.LPIPS
        With ``spatial=False``. Its trunk and lin weights are used as they
        are (the module is put in eval mode).
    normalize : bool
        As ``lpips.LPIPS.forward``'s flag: inputs are in [0, 1] and mapped to
        [-1, 1] first. Otherwise inputs are expected in [-1, 1].

    Raises
    ------
    ValueError
        If ``net`` computes a spatial map or has a negative lin weight (then
        LPIPS is not a weighted squared distance of features).
    """

    def __init__(self, net, normalize=False):
        super().__init__()
        if getattr(net, "spatial", False):
            raise ValueError("net: received an LPIPS with spatial=True; expected spatial=False (one distance per pair)")
        weights = lin_weights(net)
        for layer, w in enumerate(weights):
            if (w < 0).any():
                raise ValueError(f"net: lin layer {layer} has {int((w < 0).sum())} negative weight(s) (min "
                                 f"{float(w.min()):.3g}); expected weights >= 0, as in lpips' calibrated weights")
        self.net = net.eval()
        self.normalize = bool(normalize)
        self._sqrt_w = [w.sqrt() for w in weights]

    def forward(self, x):
        """Features of a batch ``x`` of shape ``(b, 3, H, W)``; float32 ``(b, D)``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x: received shape {tuple(x.shape)}; expected (b, 3, H, W) RGB images")
        x = x.to(next(self.net.parameters()).dtype)
        if self.normalize:
            x = 2 * x - 1
        if getattr(self.net, "version", "0.1") == "0.1":
            x = self.net.scaling_layer(x)
        parts = []
        for act, sw in zip(self.net.net(x), self._sqrt_w):
            unit = act / (act.square().sum(dim=1, keepdim=True).sqrt() + NORM_EPS)
            scale = sw.to(act) / (act.shape[2] * act.shape[3]) ** 0.5
            parts.append((unit * scale[None, :, None, None]).flatten(1))
        return torch.cat(parts, dim=1)
