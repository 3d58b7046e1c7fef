"""Per-element featurize math, written once and compiled for both targets.

Plain Python over scalars and array elements, like :mod:`cs_fast.kernels.pair`:
:mod:`cs_fast.kernels.cpu.distances` compiles it with ``numba.njit`` (``tv_estimate``
uses :func:`tv_index`) and :mod:`cs_fast.kernels.cuda.featurize` with
``numba.cuda.jit(device=True)``, so the two featurize paths cannot drift
apart in layout. The host featurize of boxes and masks is vectorized numpy
(``np.packbits``); the tests hold the device kernels built from
:func:`empty_box` and :func:`mask_word` to it bit for bit.
"""

import numpy as np

_ZERO = np.uint64(0)
_ONE = np.uint64(1)


def tv_index(p, c, channels, positions, grouped):
    """Column of neighbour difference ``p`` of channel ``c`` in a tv feature row.

    Channel-major (``c * P + p``) for the l1 reduction; with ``grouped`` the
    channels of one position are adjacent (``p * C + c``), as the grouped-l2
    reduction reads them.
    """
    if grouped:
        return p * channels + c
    return c * positions + p


def tv_centred_difference(X, C0, i, c, p, H, W):
    """Neighbour difference ``p`` of channel ``c`` of ``X[i] - C0`` in float64 (``C0``: a float64 (C, H, W) centre).

    The estimate features of ``tv``: the centre is subtracted first (exact in
    float64 for float32 pixels and a centre of float32 values), so the
    features are about the samples' spread, not their magnitude.
    """
    nv = (H - 1) * W
    if p < nv:
        h = p // W
        w = p - h * W
        return (np.float64(X[i, c, h + 1, w]) - C0[c, h + 1, w]) - (np.float64(X[i, c, h, w]) - C0[c, h, w])
    q = p - nv
    h = q // (W - 1)
    w = q - h * (W - 1)
    return (np.float64(X[i, c, h, w + 1]) - C0[c, h, w + 1]) - (np.float64(X[i, c, h, w]) - C0[c, h, w])


def lower_median_column(X, k, step, count, vals):
    """The lower median of ``X[0, k], X[step, k], ...`` (``count`` rows), as float64; ``vals``: scratch of ``count``.

    An insertion sort of the column's few values: the device's tv centre (``count <= 15``; the host
    takes ``np.partition``, the same value).
    """
    for s in range(count):
        v = np.float64(X[s * step, k])
        q = s
        while q > 0 and vals[q - 1] > v:
            vals[q] = vals[q - 1]
            q -= 1
        vals[q] = v
    return vals[(count - 1) // 2]


def tv_norms(G, X, C0, i):
    """``(sum_p |G[i, p]|, sum_k |X[i, k] - C0[k]|)`` in float64: the norms of the tv estimate bound's ``E_i``."""
    a = 0.0
    for k in range(G.shape[1]):
        a += abs(np.float64(G[i, k]))
    b = 0.0
    for k in range(X.shape[1]):
        b += abs(np.float64(X[i, k]) - C0[k])
    return a, b


def empty_box(x1, y1, x2, y2):
    """A box with non-positive width or height is the empty set."""
    return x2 <= x1 or y2 <= y1


def mask_word(M, i, word):
    """64-bit word ``word`` of row ``i`` of the boolean (n, L) array ``M``, bit-packed.

    The layout of ``np.packbits`` (the first element of each byte in its most
    significant bit) viewed as little-endian uint64: element ``64 word + 8 b + t``
    is bit ``8 b + 7 - t``. Elements past ``L`` are zero padding.
    """
    length = M.shape[1]
    base = word * 64
    acc = _ZERO
    for b in range(8):
        for t in range(8):
            k = base + b * 8 + t
            if k < length and M[i, k]:
                acc = acc | (_ONE << np.uint64(b * 8 + 7 - t))
    return acc
