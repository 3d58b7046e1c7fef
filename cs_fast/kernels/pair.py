"""One definition per distance, written once over rows and scalars.

Every function here is plain Python that uses only indexing, arithmetic and
``math``: the CPU backend compiles it with ``numba.njit`` and the GPU backend
with ``numba.cuda.jit(device=True)``. There is no second copy of the math.

Each ``*_pair(A, i, B, j, arg)`` returns the *reduction* for rows ``A[i]`` and
``B[j]`` of already featurized inputs (see :mod:`cs_fast.metrics`), accumulated
in float64 whatever the storage type, so that float32 inputs lose no precision
in long sums. ``arg`` is the one integer parameter a reduction may need (the number of
blocks of ``grouped_l2_pair``); the others ignore it, so that every pair
function has the same signature and the drivers are generic over them.
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
    """Jaccard distance ``1 - IoU`` of two ``[x1, y1, x2, y2]`` boxes.

    Empty boxes must be canonical ``[0, 0, 0, 0]`` (the featurize step does
    that): such a box has zero area and zero overlap with anything, so
    ``d(empty, B) = 1`` falls out of the formula and ``d(empty, empty) = 0``
    is the one branch. Branch-free otherwise, so the counting loops vectorize.
    """
    ax1 = A[i, 0]
    ay1 = A[i, 1]
    ax2 = A[i, 2]
    ay2 = A[i, 3]
    bx1 = B[j, 0]
    by1 = B[j, 1]
    bx2 = B[j, 2]
    by2 = B[j, 3]
    iw = max(min(ax2, bx2) - max(ax1, bx1), 0.0)
    ih = max(min(ay2, by2) - max(ay1, by1), 0.0)
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    if union <= 0.0:
        return 0.0
    return 1.0 - inter / union


def _popcount64(x):
    # SWAR popcount: LLVM recognises the idiom and emits a popcnt instruction.
    x = x - ((x >> _ONE) & _M1)
    x = (x & _M2) + ((x >> _TWO) & _M2)
    x = (x + (x >> _FOUR)) & _M4
    return (x * _H01) >> _S56


def mask_pair(A, i, B, j, arg):
    """Jaccard distance of two bit-packed sets (rows of uint64 words).

    ``1 - |a & b| / |a | b|``; two empty sets are at distance 0.
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
    return 1.0 - np.float64(inter) / np.float64(union)


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
    """Angle between two unit rows divided by pi, in [0, 1].

    Computed as ``2 atan2(|a - b|, |a + b|)``, which stays accurate for nearly
    parallel rows where ``arccos`` of the dot product loses half the digits.
    """
    dm = 0.0
    dp = 0.0
    for k in range(A.shape[1]):
        a = np.float64(A[i, k])
        b = np.float64(B[j, k])
        dm += (a - b) * (a - b)
        dp += (a + b) * (a + b)
    return 2.0 * math.atan2(math.sqrt(dm), math.sqrt(dp)) / math.pi
