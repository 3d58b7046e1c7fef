"""CPU kernels (numba ``njit``/``prange``): compute only, no validation, no policy.

All inputs are featurized, C-contiguous 2-D arrays (see :mod:`cs_fast.metrics`).
Distances are accumulated in float64; outputs are written in the dtype of the
``out`` array the caller passes.

Kernels and why they look the way they do:

* ``pairwise_<reduction>``: generic, one pair function per entry, rows in
  parallel. Serves boxes, masks, angular and grouped-l2 TV.
* :func:`l1_pairwise`: the long L1 reduction (``l1`` and ``tv`` after its
  finite-difference transform). Register-blocked 4 x 2 rows over feature
  chunks that fit the caches, chunk sums in the storage dtype (vectorized),
  added to float64 accumulators per chunk so float32 loses no accuracy over
  long rows.
* :func:`sq_pairwise`: squared distances as ``|a|^2 + |b|^2 - 2 a.b`` with a
  float64 GEMM on column-centred features; pairs where that form could have
  cancelled (``d < tau (|a|^2 + |b|^2)``) are recomputed directly.
* ``fused_tile_<reduction>`` / :func:`tile_select`: the per-row lower median
  for :func:`min_median`, with pruning (see there).
"""

import math

import numba
import numpy as np
from numba import prange

from . import pair, select
from .retarget import retarget

# reassoc lets LLVM vectorize float reductions; nnan/ninf stay off so NaN and inf
# keep their IEEE meaning (inputs are checked finite anyway).
_FASTMATH = {"reassoc", "contract", "nsz"}

K = retarget([pair, select], numba.njit(nogil=True))
# numba cannot look names up in a namespace object: bind the ones used here.
_kth_smallest = K.kth_smallest
_count_below = K.count_below
_sq_pair = K.sq_pair

# The cancellation guard of the GEMM form: relative rounding of the float64
# product is ~1e-16 * sqrt(d) * (|a|^2 + |b|^2); recomputing every pair with
# d < 1e-6 (|a|^2 + |b|^2) keeps the relative error of each result below ~1e-8.
SQ_GUARD = 1e-6

_CACHE = {}


def _generic(reduction):
    """The pairwise and fused-median kernels for one pair function (built once)."""
    if reduction in _CACHE:
        return _CACHE[reduction]
    pair_fn = getattr(K, reduction + "_pair")
    kth = _kth_smallest

    @numba.njit(parallel=True)
    def pairwise(A, B, arg, out):
        for i in prange(A.shape[0]):
            for j in range(B.shape[0]):
                out[i, j] = pair_fn(A, i, B, j, arg)

    @numba.njit(parallel=True)
    def fused_tile(F, i0, i1, k, bound, arg, buf, med):
        n = F.shape[0]
        for r in prange(i1 - i0):
            i = i0 + r
            # Counting pass, no stores: the row can only win if at least k of its
            # distances are strictly below the best median so far. Checked per
            # block so hopeless rows stop early.
            below = 0
            j0 = 0
            while j0 < n and below + (n - j0) >= k:
                j1 = min(n, j0 + 512)
                for j in range(j0, j1):
                    if pair_fn(F, i, F, j, arg) < bound:
                        below += 1
                j0 = j1
            if below >= k:
                for j in range(n):
                    buf[r, j] = pair_fn(F, i, F, j, arg)
                med[r] = kth(buf[r], k)
            else:
                med[r] = np.inf

    _CACHE[reduction] = (pairwise, fused_tile)
    return _CACHE[reduction]


@numba.njit(parallel=True)
def tile_select(D, k, bound, med):
    """Lower median of each row of ``D`` if it is ``< bound``, else inf (pruned)."""
    for r in prange(D.shape[0]):
        row = D[r]
        if _count_below(row, bound) >= k:
            med[r] = _kth_smallest(row, k)
        else:
            med[r] = np.inf


_KC = 512  # feature chunk: 4 + 2 rows of it stay in L1, a column block of all rows in L3


@numba.njit(parallel=True, fastmath=_FASTMATH)
def _l1_chunk(A, B, k0, k1, acc):
    na = A.shape[0]
    nb = B.shape[0]
    zero = A[0, 0] * 0  # the storage dtype's zero: chunk sums stay vectorized in it
    nblk = (na + 3) // 4
    for blk in prange(nblk):
        i0 = blk * 4
        if i0 + 4 <= na:
            j = 0
            while j + 2 <= nb:
                s00 = zero
                s01 = zero
                s10 = zero
                s11 = zero
                s20 = zero
                s21 = zero
                s30 = zero
                s31 = zero
                for k in range(k0, k1):
                    b0 = B[j, k]
                    b1 = B[j + 1, k]
                    a = A[i0, k]
                    s00 += abs(a - b0)
                    s01 += abs(a - b1)
                    a = A[i0 + 1, k]
                    s10 += abs(a - b0)
                    s11 += abs(a - b1)
                    a = A[i0 + 2, k]
                    s20 += abs(a - b0)
                    s21 += abs(a - b1)
                    a = A[i0 + 3, k]
                    s30 += abs(a - b0)
                    s31 += abs(a - b1)
                acc[i0, j] += s00
                acc[i0, j + 1] += s01
                acc[i0 + 1, j] += s10
                acc[i0 + 1, j + 1] += s11
                acc[i0 + 2, j] += s20
                acc[i0 + 2, j + 1] += s21
                acc[i0 + 3, j] += s30
                acc[i0 + 3, j + 1] += s31
                j += 2
            while j < nb:
                for i in range(i0, i0 + 4):
                    s = zero
                    for k in range(k0, k1):
                        s += abs(A[i, k] - B[j, k])
                    acc[i, j] += s
                j += 1
        else:
            for i in range(i0, na):
                for j in range(nb):
                    s = zero
                    for k in range(k0, k1):
                        s += abs(A[i, k] - B[j, k])
                    acc[i, j] += s


def l1_pairwise(A, B, acc):
    """Add ``sum_k |A[i, k] - B[j, k]|`` to the float64 matrix ``acc`` (zeroed by the caller)."""
    d = A.shape[1]
    if A.shape[0] == 0 or B.shape[0] == 0:
        return acc
    for k0 in range(0, d, _KC):
        _l1_chunk(A, B, k0, min(k0 + _KC, d), acc)
    return acc


@numba.njit(parallel=True)
def _sq_finish(A, B, na2, nb2, G, guard, take_sqrt):
    for i in prange(G.shape[0]):
        for j in range(G.shape[1]):
            scale = na2[i] + nb2[j]
            v = scale - 2.0 * G[i, j]
            if v < guard * scale:
                v = _sq_pair(A, i, B, j, 0)
            if v < 0.0:
                v = 0.0
            G[i, j] = math.sqrt(v) if take_sqrt else v






def centre(F, shift=None):
    """float64 copy of ``F`` minus ``shift`` (its column mean by default), and its row norms².

    Distances are translation invariant; centring shrinks ``|a|^2`` and
    ``|b|^2`` to the spread of the samples, which is where the cancellation of
    the GEMM form comes from.
    """
    F64 = F.astype(np.float64)
    F64 -= F64.mean(axis=0) if shift is None else shift
    return F64, np.einsum("ij,ij->i", F64, F64)


def sq_pairwise(A, B, take_sqrt):
    """Squared (``take_sqrt``: plain) Euclidean distances of centred float64 rows.

    ``A`` and ``B`` are ``(array, row_norms²)`` pairs from :func:`centre` with
    the same shift. Returns a new float64 matrix.
    """
    (A64, na2), (B64, nb2) = A, B
    G = A64 @ B64.T
    _sq_finish(A64, B64, na2, nb2, G, SQ_GUARD, take_sqrt)
    return G


def pairwise(reduction, A, B, arg, out_dtype):
    """Full (na, nb) distance matrix for a reduction, in ``out_dtype``."""
    if reduction == "l1":
        acc = np.zeros((A.shape[0], B.shape[0]))
        return l1_pairwise(A, B, acc).astype(out_dtype, copy=False)
    if reduction in ("sq", "l2"):
        shift = A.astype(np.float64).mean(axis=0)
        G = sq_pairwise(centre(A, shift), centre(B, shift), reduction == "l2")
        return G.astype(out_dtype, copy=False)
    out = np.empty((A.shape[0], B.shape[0]), dtype=out_dtype)
    kernel, _ = _generic(reduction)
    kernel(A, B, arg, out)
    return out


def to_center(reduction, F, C, arg):
    """float64 distances from every row of ``F`` to the single row ``C`` (shape (1, d))."""
    out = np.empty((F.shape[0], 1))
    kernel, _ = _generic(reduction)
    kernel(F, C, arg, out)
    return out[:, 0]


def min_median(reduction, F, arg, tile):
    """Index and value of the smallest lower median of the rows of ``D(F, F)``.

    Rows are processed ``tile`` at a time. A row with fewer than
    ``k = ceil(n / 2)`` distances strictly below ``best`` (the best median so
    far) has median ``>= best`` and cannot replace it (ties keep the smaller
    index, and rows are visited in index order); only rows that pass that
    counting pass run an exact selection. Extra memory is one float64
    ``tile x n`` buffer.
    """
    n = F.shape[0]
    k = (n + 1) // 2
    best = np.inf
    best_index = -1
    direct = reduction not in ("l1", "sq", "l2")
    fused = _generic(reduction)[1] if direct else None
    if reduction in ("sq", "l2"):
        F64, norms = centre(F)
    # A small first tile gives a finite bound early, so later tiles prune.
    first = min(n, tile, max(1, numba.get_num_threads()))
    buf = np.empty((min(tile, n), n))
    med = np.empty(min(tile, n))
    start = 0
    while start < n:
        stop = min(n, start + (first if start == 0 else tile))
        rows = stop - start
        if direct:
            fused(F, start, stop, k, best, arg, buf, med)
            meds = med[:rows]
        else:
            if reduction == "l1":
                D = buf[:rows]
                D[:] = 0.0
                l1_pairwise(F[start:stop], F, D)
            else:
                D = sq_pairwise((F64[start:stop], norms[start:stop]), (F64, norms), reduction == "l2")
            tile_select(D, k, best, med)
            meds = med[:rows]
        r = int(np.argmin(meds))
        if meds[r] < best:
            best = float(meds[r])
            best_index = start + r
        start = stop
    return best_index, best
