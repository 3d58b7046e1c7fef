"""One definition per distance, written once over rows and scalars.

Every function here is plain Python that uses only indexing, arithmetic and
``math``: the CPU backend compiles it with ``numba.njit`` and the GPU backend
with ``numba.cuda.jit(device=True)``. There is no second copy of the math.

Each ``*_pair(A, i, B, j, arg)`` returns the *reduction* for rows ``A[i]`` and
``B[j]`` of featurized inputs (see :mod:`cs_fast.metrics`), accumulated in
float64 whatever the storage type, so that float32 inputs lose no precision in
long sums. ``arg`` is the one parameter a reduction may need (the packed image
shape of ``tv_pair`` and ``tv2_pair``, the number of blocks of
``grouped_l2_pair``, the float64 weights of ``wsq_pair``); the others ignore it,
so that every pair function has the same signature and the drivers are generic
over them.

Canonical arithmetic. The pair functions of ``box``, ``mask``, ``angular``,
``tv``, ``tv2`` and ``wsq`` read the inputs' own values (float32 upcast
exactly) and take the difference of the two samples first, where a difference
of nearby floats is exact, so that each distance is within a bound relative to
the distance itself (the bounds and their derivations are in the metric
records of :mod:`cs_fast.metrics`). Compiled without fastmath they round the
same way in every driver that calls them. ``l1``, ``sq`` and ``l2`` serve both
the raw rows of ``l1``/``sqfeat``/``l2`` and the estimate features of the fast
paths; ``grouped_l2`` serves only estimates.
"""

import math

import numpy as np

# uint64 constants: mixing uint64 with Python ints would make numba promote to float64.
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_FOUR = np.uint64(4)
_S56 = np.uint64(56)
_ZERO = np.uint64(0)


def box_pair(A, i, B, j, arg):
    """Jaccard distance ``1 - IoU`` of two ``[x1, y1, x2, y2]`` boxes, relative to the distance.

    Empty boxes must be canonical ``[0, 0, 0, 0]`` (the featurize step does
    that). For overlapping boxes the distance is ``(U - I) / U`` with the
    non-overlap ``U - I = (A - I) + (B - I)`` summed from coordinate
    differences, ``A - I = (w_a - w_i) h_a + w_i (h_a - h_i)`` with
    ``w_a - w_i = (x2_a - x2_i) + (x1_i - x1_a)``: non-negative terms, each a
    difference of nearby coordinates (exact where they are close), so the
    result is within a few ulps of the exact distance however small it is
    (``1 - I / U`` would lose ``u / d`` of it). Disjoint boxes are exactly 1;
    two empty boxes exactly 0. Branch-free but for the final select, so the
    row loops vectorize.
    """
    ax1 = A[i, 0]
    ay1 = A[i, 1]
    ax2 = A[i, 2]
    ay2 = A[i, 3]
    bx1 = B[j, 0]
    by1 = B[j, 1]
    bx2 = B[j, 2]
    by2 = B[j, 3]
    return box_value(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2)


def box_value(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2):
    """The arithmetic of :func:`box_pair` on eight float64 coordinates (``cpu.box_row`` inlines it).

    Branch-free, so that row loops vectorize: the quotient is formed for every
    pair (over 1 where the union is empty) and selected only for overlapping
    ones.
    """
    ix1 = max(ax1, bx1)
    iy1 = max(ay1, by1)
    ix2 = min(ax2, bx2)
    iy2 = min(ay2, by2)
    iw = ix2 - ix1
    ih = iy2 - iy1
    # What each box has beyond the overlap, per axis (the overlap's own coordinates then die).
    wa = (ax2 - ix2) + (ix1 - ax1)
    wb = (bx2 - ix2) + (ix1 - bx1)
    ha = (ay2 - iy2) + (iy1 - ay1)
    hb = (by2 - iy2) + (iy1 - by1)
    gap = (wa * (ay2 - ay1) + iw * ha) + (wb * (by2 - by1) + iw * hb)
    union = iw * ih + gap  # positive wherever the quotient is used (overlapping boxes)
    d = gap / (union if union > 0.0 else 1.0)
    # Disjoint, or an empty box (canonical empties never overlap anything): 1, or 0 for two empties.
    apart = 0.0 if (ax2 <= ax1) & (bx2 <= bx1) else 1.0
    return d if (iw > 0.0) & (ih > 0.0) else apart


def _popcount64(x):
    # SWAR popcount: LLVM recognises the idiom and emits a popcnt instruction.
    x = x - ((x >> _ONE) & _M1)
    x = (x & _M2) + ((x >> _TWO) & _M2)
    x = (x + (x >> _FOUR)) & _M4
    return (x * _H01) >> _S56


def mask_pair(A, i, B, j, arg):
    """Jaccard distance of two bit-packed sets (rows of uint64 words).

    ``|a ^ b| / |a | b|`` as ``(|a | b| - |a & b|) / |a | b|`` (integer counts:
    one rounding); two empty sets are at distance 0.
    """
    inter = _ZERO
    union = _ZERO
    for k in range(A.shape[1]):
        a = A[i, k]
        b = B[j, k]
        inter += _popcount64(a & b)
        union += _popcount64(a | b)
    if union == 0:
        return 0.0
    # Counts below 2**53 convert exactly and so does their difference: one correctly rounded
    # division, relative error 2**-53.
    u = np.float64(union)
    return (u - np.float64(inter)) / u


def l1_pair(A, i, B, j, arg):
    """``sum_k |A[i, k] - B[j, k]|`` accumulated in float64."""
    acc = 0.0
    for k in range(A.shape[1]):
        acc += abs(np.float64(A[i, k]) - np.float64(B[j, k]))
    return acc


def sq_pair(A, i, B, j, arg):
    """``sum_k (A[i, k] - B[j, k])**2`` accumulated in float64."""
    acc = 0.0
    for k in range(A.shape[1]):
        t = np.float64(A[i, k]) - np.float64(B[j, k])
        acc += t * t
    return acc


def l2_pair(A, i, B, j, arg):
    """Euclidean distance of two rows."""
    return math.sqrt(sq_pair(A, i, B, j, arg))


def grouped_l2_pair(A, i, B, j, groups):
    """Sum over ``groups`` equal blocks of the l2 norm of the block difference.

    Rows are laid out block-contiguous (``k = g * size + c``); used by the TV
    distance with ``channel_norm=2``, where a block is the channels of one
    neighbour difference.
    """
    size = A.shape[1] // groups
    acc = 0.0
    for g in range(groups):
        s = 0.0
        base = g * size
        for c in range(size):
            t = np.float64(A[i, base + c]) - np.float64(B[j, base + c])
            s += t * t
        acc += math.sqrt(s)
    return acc


def angular_pair(A, i, B, j, arg):
    """Angle between two rows divided by pi, in [0, 1], from the rows' own values.

    Orientation first, so that ``d(a, b)`` and ``d(b, a)`` are the same bits:
    ``x`` is the row of smaller squared norm (ties: the lexicographically
    smaller row), ``y`` the other. With ``e = y - x`` and ``f = y + x`` (one
    rounding each, exact for nearby floats), ``s = |x|``, ``t = |y|`` and
    ``alpha = (t - s) / s = f.e / (s (s + t))`` (``f.e = t**2 - s**2``
    exactly, accurate whichever of ``e``, ``f`` is short):
    ``t (x / s - y / t) = alpha x - e`` and ``t (x / s + y / t) = alpha x + f``,
    the chords between the unit vectors scaled by ``t``, so the angle is
    ``2 atan2(|alpha x - e|, |alpha x + f|)`` (the scale cancels). No row is
    normalized and rounded on its own, so the error is relative to the angle
    for rows of similar norm (bound and derivation: the ``angular`` record of
    :mod:`cs_fast.metrics`). Two passes over the rows (three when the norms tie).
    """
    d = A.shape[1]
    s2 = 0.0
    t2 = 0.0
    fe = 0.0
    for k in range(d):
        a = np.float64(A[i, k])
        b = np.float64(B[j, k])
        s2 += a * a
        t2 += b * b
        fe += (b + a) * (b - a)
    swap = t2 < s2
    if t2 == s2:
        for k in range(d):
            a = np.float64(A[i, k])
            b = np.float64(B[j, k])
            if a != b:
                swap = b < a
                break
    if swap:
        s2, t2, fe = t2, s2, -fe
    s = math.sqrt(s2)
    den = s * (s + math.sqrt(t2))
    alpha = fe / den if den > 0.0 else math.nan  # a zero row has no angle (the front doors reject it)
    cm = 0.0
    cp = 0.0
    for k in range(d):
        a = np.float64(A[i, k])
        b = np.float64(B[j, k])
        x = b if swap else a
        y = a if swap else b
        ax = alpha * x
        m = ax - (y - x)
        p = ax + (y + x)
        cm += m * m
        cp += p * p
    return 2.0 * math.atan2(math.sqrt(cm), math.sqrt(cp)) / math.pi


def tv_shape(arg):
    """``(H, W)`` from the ``arg`` of :func:`tv_pair` (``H * 2**32 + W``)."""
    return arg >> 32, arg & 0xFFFFFFFF


def tv_term(A, i, B, j, hi, lo):
    """One neighbour difference of the image difference: ``(a[hi] - b[hi]) - (a[lo] - b[lo])`` in float64.

    The samples' difference first: for float32 inputs each inner difference
    is exact in float64 (exponents within 2**29), for float64 inputs it is
    exact where the two pixels are within a factor 2 of each other (Sterbenz);
    the outer difference is one rounding of the exact neighbour difference.
    """
    return (np.float64(A[i, hi]) - np.float64(B[j, hi])) - (np.float64(A[i, lo]) - np.float64(B[j, lo]))


def tv_pair(A, i, B, j, arg):
    """Total variation ``TV(a - b)`` with the channel-l1 norm, on raw images.

    Rows are images ``(C, H, W)`` flattened; ``arg`` packs ``(H, W)``
    (:func:`tv_shape`). Every vertical and every horizontal neighbour pair of
    every channel, in that order, summed in float64 (the device's order; the
    CPU's canonical kernel, ``cs_fast.kernels.cpu.distances.tv_rows``, vectorizes the
    same terms).
    """
    H, W = tv_shape(arg)
    hw = H * W
    acc = 0.0
    for c in range(A.shape[1] // hw):
        base = c * hw
        for p in range(base, base + hw - W):
            acc += abs(tv_term(A, i, B, j, p + W, p))
        for h in range(H):
            row = base + h * W
            for p in range(row, row + W - 1):
                acc += abs(tv_term(A, i, B, j, p + 1, p))
    return acc


def tv2_pair(A, i, B, j, arg):
    """Total variation with the channel-l2 norm: per neighbour position, the l2 norm over channels, summed."""
    H, W = tv_shape(arg)
    hw = H * W
    C = A.shape[1] // hw
    acc = 0.0
    for p in range(hw - W):
        s = 0.0
        for c in range(C):
            t = tv_term(A, i, B, j, c * hw + p + W, c * hw + p)
            s += t * t
        acc += math.sqrt(s)
    for h in range(H):
        for p in range(h * W, h * W + W - 1):
            s = 0.0
            for c in range(C):
                t = tv_term(A, i, B, j, c * hw + p + 1, c * hw + p)
                s += t * t
            acc += math.sqrt(s)
    return acc


def wsq_pair(A, i, B, j, W):
    """``sum_k W[k] (A[i, k] - B[j, k])**2``: weighted squared distance, the samples' difference first."""
    acc = 0.0
    for k in range(A.shape[1]):
        t = np.float64(A[i, k]) - np.float64(B[j, k])
        acc += W[k] * (t * t)
    return acc
