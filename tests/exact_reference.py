"""An independent reference for the differential fuzz: every distance from its definition, in extended precision.

Written from the definitions of :mod:`cs_fast.metrics` (not from cs_fast's
formulas): boxes and masks in exact rational / integer arithmetic, the sums
(``l1``, ``sqfeat``, ``l2``, ``tv``) in ``np.longdouble`` (64-bit significand)
with the samples' difference taken first and checked exact, angles in
``mpmath`` at 60 digits from the exact dot and cross products. The values come
back as ``np.longdouble``, so that comparing a float64 distance with them adds
no rounding of the reference's own.
"""

from fractions import Fraction

import mpmath
import numpy as np

LD = np.longdouble


def _rows(X):
    return X.reshape(X.shape[0], -1)


def _exact_diff(A, B):
    """``A[:, None] - B[None]`` in longdouble, asserting it is exact (each pair of values within 2**10 in magnitude)."""
    a = A.astype(LD)[:, None]
    b = B.astype(LD)[None]
    d = a - b
    # Sterbenz/exponent check: (a - b) + b == a exactly when the subtraction was exact.
    assert np.array_equal(d + b, np.broadcast_to(a, d.shape)), "reference: a difference was not exact in longdouble"
    return d


def jaccard(A, B):
    """1 - |a n b| / |a u b| of [x1, y1, x2, y2] boxes in exact rational arithmetic (empty: width or height <= 0)."""
    out = np.empty((len(A), len(B)), dtype=LD)
    FA = [[Fraction(float(v)) for v in a] for a in A]
    FB = [[Fraction(float(v)) for v in b] for b in B]
    for i, a in enumerate(FA):
        a_empty = a[2] <= a[0] or a[3] <= a[1]
        area_a = (a[2] - a[0]) * (a[3] - a[1])
        for j, b in enumerate(FB):
            b_empty = b[2] <= b[0] or b[3] <= b[1]
            if a_empty or b_empty:
                out[i, j] = 0 if (a_empty and b_empty) else 1
                continue
            iw = max(Fraction(0), min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(Fraction(0), min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = area_a + (b[2] - b[0]) * (b[3] - b[1]) - inter
            d = 1 - inter / union
            out[i, j] = LD(d.numerator) / LD(d.denominator)
    return out


def jaccard_mask(A, B):
    A, B = _rows(A), _rows(B)
    inter = (A[:, None] & B[None]).sum(axis=2)
    union = (A[:, None] | B[None]).sum(axis=2)
    out = np.zeros(inter.shape, dtype=LD)
    nz = union > 0
    out[nz] = (union[nz] - inter[nz]).astype(LD) / union[nz].astype(LD)
    return out


def l1(A, B, params=None):
    return np.abs(_exact_diff(_rows(A), _rows(B))).sum(axis=2)


def sqfeat(A, B, params=None):
    w = (params or {}).get("weights")
    d = _exact_diff(_rows(A), _rows(B))
    sq = d * d
    if w is not None:
        sq = sq * np.asarray(w, dtype=np.float64).reshape(-1).astype(LD)
    return sq.sum(axis=2)


def l2(A, B, params=None):
    return np.sqrt(sqfeat(A, B))


def tv(A, B, params=None):
    """TV(a - b): every vertical and horizontal neighbour pair, channel l1 (or l2 over channels)."""
    norm = (params or {}).get("channel_norm", 1)
    shape = A.shape[1:]
    images = {1: (1, 1) + shape, 2: (1,) + shape, 3: shape}[len(shape)]
    d = _exact_diff(_rows(A), _rows(B)).reshape((len(A), len(B)) + images)  # (na, nb, C, H, W)
    dv = d[..., 1:, :] - d[..., :-1, :]
    dh = d[..., :, 1:] - d[..., :, :-1]
    if norm == 1:
        return np.abs(dv).sum(axis=(2, 3, 4)) + np.abs(dh).sum(axis=(2, 3, 4))
    return np.sqrt((dv * dv).sum(axis=2)).sum(axis=(2, 3)) + np.sqrt((dh * dh).sum(axis=2)).sum(axis=(2, 3))


def angular(A, B, params=None):
    """arccos(cos(a, b)) / pi as atan2(|a x b|, a.b) / pi, the products exact (mpmath, 60 digits)."""
    A, B = _rows(A).astype(np.float64), _rows(B).astype(np.float64)
    out = np.empty((len(A), len(B)), dtype=LD)
    with mpmath.workdps(60):
        MA = [[mpmath.mpf(float(v)) for v in a] for a in A]
        MB = [[mpmath.mpf(float(v)) for v in b] for b in B]
        for i, a in enumerate(MA):
            na2 = mpmath.fsum(v * v for v in a)
            for j, b in enumerate(MB):
                dot = mpmath.fdot(a, b)
                cross2 = na2 * mpmath.fsum(v * v for v in b) - dot * dot  # Lagrange's identity, at 60 digits
                theta = mpmath.atan2(mpmath.sqrt(max(cross2, 0)), dot) / mpmath.pi
                out[i, j] = LD(mpmath.nstr(theta, 30))
    return out


REFERENCES = {"jaccard": jaccard, "jaccard_mask": jaccard_mask, "l1": l1, "sqfeat": sqfeat, "l2": l2, "tv": tv,
              "angular": angular}


def reference(metric, A, B, params):
    """The exact distances (longdouble) of every row of ``A`` to every row of ``B``."""
    f = REFERENCES[metric]
    if metric in ("jaccard", "jaccard_mask"):
        return f(A, B)
    return f(A, B, params)
