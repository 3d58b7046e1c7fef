"""CPU kernels (numba ``njit``/``prange``): compute only, no validation, no policy.

All inputs are featurized, C-contiguous 2-D arrays (see :mod:`cs_fast.metrics`).
Distances are accumulated in float64; outputs are written in the dtype of the
``out`` array the caller passes.

Kernels and why they look the way they do:

* ``pairwise_<reduction>``: generic, one pair function per entry, rows in
  parallel. Serves boxes, masks, angular and grouped-l2 TV.
* :func:`l1_pairwise`: the long L1 reduction (``l1`` and ``tv`` after its
  finite-difference transform). Register-blocked 2 x 4 rows over feature
  chunks that fit the caches, chunk sums in the storage dtype (vectorized),
  added to float64 accumulators per chunk so float32 loses no accuracy over
  long rows.
* :func:`sq_pairwise`: squared distances as ``|a|^2 + |b|^2 - 2 a.b`` with a
  float64 GEMM on column-centred features; pairs where that form could have
  cancelled (``d < tau (|a|^2 + |b|^2)``) are recomputed directly.
* ``fused_tile_<reduction>`` / :func:`tile_select`: the per-row lower median
  for :func:`min_median`, with pruning (see there).

Every kernel is compiled by :func:`cs_fast.kernels.jit.kernel` (numba's
on-disk cache, keyed also on the pair/select/features sources it inlines), and
the generic drivers are plain templates bound per reduction by
:func:`cs_fast.kernels.jit.specialize`, never closures: numba cannot cache a
closure over compiled functions. New kernels follow the same two rules.
"""

import math

import numba
import numpy as np
from numba import prange

from . import features, pair, select
from .jit import kernel, specialize
from .retarget import retarget

# reassoc lets LLVM vectorize float reductions; nnan/ninf stay off so NaN and inf
# keep their IEEE meaning (inputs are checked finite anyway).
_FASTMATH = {"reassoc", "contract", "nsz"}

# Reassociation only (no nnan/ninf, no FMA contraction): lets LLVM vectorize the
# float64 reductions of the pair functions, and keeps NaN/inf propagation and
# the plain multiply-add rounding of the box formula (tests/test_fastmath.py).
_PAIR_FASTMATH = {"reassoc", "nsz"}
K = retarget([pair, select, features], numba.njit(nogil=True, fastmath=_PAIR_FASTMATH))
# numba cannot look names up in a namespace object: bind the ones used here.
_kth_smallest = K.kth_smallest
_count_below = K.count_below
_sq_pair = K.sq_pair
_tv_index = K.tv_index  # the layout the device featurize shares (kernels/features.py)

# The cancellation guard of the GEMM form: relative rounding of the float64
# product is ~1e-16 * sqrt(d) * (|a|^2 + |b|^2); recomputing every pair with
# d < 1e-6 (|a|^2 + |b|^2) keeps the relative error of each result below ~1e-8.
SQ_GUARD = 1e-6

# Generic drivers: plain templates that call the reduction's pair function by
# the global name ``pair_fn``; _generic binds it per reduction (jit.specialize),
# so every driver is a cacheable plain function, not a closure.


def _pairwise(A, B, arg, out):
    for i in prange(A.shape[0]):
        for j in range(B.shape[0]):
            out[i, j] = pair_fn(A, i, B, j, arg)  # noqa: F821 (bound by jit.specialize)


def _fused_tile(F, i0, i1, k, bound, arg, buf, med):
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
                if pair_fn(F, i, F, j, arg) < bound:  # noqa: F821
                    below += 1
            j0 = j1
        if below >= k:
            for j in range(n):
                buf[r, j] = pair_fn(F, i, F, j, arg)  # noqa: F821
            med[r] = _kth_smallest(buf[r], k)
        else:
            med[r] = np.inf


def _paired(A, B, arg, out):
    for i in prange(A.shape[0]):
        out[i] = pair_fn(A, i, B, i, arg)  # noqa: F821


_GENERIC = {}


def _generic(reduction):
    """The (pairwise, fused_tile, paired) drivers for one pair function (built once, compiled lazily)."""
    if reduction not in _GENERIC:
        pair_fn = getattr(K, reduction + "_pair")
        _GENERIC[reduction] = tuple(
            specialize(template, reduction, {"parallel": True}, pair_fn=pair_fn)
            for template in (_pairwise, _fused_tile, _paired)
        )
    return _GENERIC[reduction]


@kernel(parallel=True)
def tile_select(D, k, bound, med):
    """Lower median of each row of ``D`` if it is ``< bound``, else inf (pruned)."""
    for r in prange(D.shape[0]):
        row = D[r]
        if _count_below(row, bound) >= k:
            med[r] = _kth_smallest(row, k)
        else:
            med[r] = np.inf


_box_pair = K.box_pair
_COUNT_SLACK = 1.0 + 1e-12  # the division-free test below may only over-count, never under-count


@kernel(nogil=True, error_model="numpy")
def box_row(FT, i, out):
    """Jaccard distances of box ``i`` to every box, into ``out`` (``FT``: boxes transposed, (4, n)).

    The formula of :func:`cs_fast.kernels.pair.box_pair`, branch-free so it
    vectorizes (``error_model='numpy'``: the 0/0 of two empty boxes is a NaN
    that the select discards, not an exception). No fastmath: strict IEEE
    arithmetic gives every caller -- the brute-force exact pass and the pruned
    center's full rows -- the same floats.
    """
    x1 = FT[0]
    y1 = FT[1]
    x2 = FT[2]
    y2 = FT[3]
    ax1 = x1[i]
    ay1 = y1[i]
    ax2 = x2[i]
    ay2 = y2[i]
    area = (ax2 - ax1) * (ay2 - ay1)
    for j in range(out.shape[0]):
        iw = max(min(ax2, x2[j]) - max(ax1, x1[j]), 0.0)
        ih = max(min(ay2, y2[j]) - max(ay1, y1[j]), 0.0)
        inter = iw * ih
        union = area + (x2[j] - x1[j]) * (y2[j] - y1[j]) - inter
        d = 1.0 - inter / union
        out[j] = d if union > 0.0 else 0.0


@kernel(parallel=True, fastmath=_FASTMATH)
def box_fused_tile(F, FT, rows, k, best, best_index, buf, med, evals):
    """:func:`_generic`'s fused tile for boxes, with a vectorized counting pass.

    Row ``r`` of the tile is box ``rows[r]``. ``FT`` is ``F`` transposed
    (4, n), so the counting loop reads four contiguous columns. A row counts
    its distances below its threshold: ``best``, or for rows before
    ``best_index`` the next float above it (an equal median with a smaller
    index still wins). Overlapping pairs test ``union - inter < t * union``
    instead of ``1 - inter / union < t`` (no division), with a relative slack
    so rounding can only admit extra rows to the exact pass, never drop a row
    that could win. Disjoint pairs are exactly 1 (0 for two empty boxes) and
    are tested exactly: with the slack, a best median of 1 (mostly disjoint
    boxes) would admit every saturated pair and send every row through the
    exact pass. ``evals[r]`` receives the distances row ``r`` evaluated. The
    result stays exactly the brute-force one.
    """
    n = F.shape[0]
    x1 = FT[0]
    y1 = FT[1]
    x2 = FT[2]
    y2 = FT[3]
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        loose = t * _COUNT_SLACK
        zero_below = 0.0 < t  # d = 0: two empty boxes
        one_below = 1.0 < t  # d = 1: disjoint boxes, one of them possibly empty
        ax1 = x1[i]
        ay1 = y1[i]
        ax2 = x2[i]
        ay2 = y2[i]
        area = (ax2 - ax1) * (ay2 - ay1)
        below = 0
        j0 = 0
        # Vectorized blocks; stop once the row can no longer reach k.
        while j0 < n and below + (n - j0) >= k:
            j1 = min(n, j0 + 2048)
            # Slices indexed from 0 keep the loads contiguous (see _l1_chunk).
            bx1 = x1[j0:j1]
            by1 = y1[j0:j1]
            bx2 = x2[j0:j1]
            by2 = y2[j0:j1]
            for j in range(j1 - j0):
                iw = max(min(ax2, bx2[j]) - max(ax1, bx1[j]), 0.0)
                ih = max(min(ay2, by2[j]) - max(ay1, by1[j]), 0.0)
                inter = iw * ih
                union = area + (bx2[j] - bx1[j]) * (by2[j] - by1[j]) - inter
                disjoint = inter <= 0.0
                below += ((~disjoint) & (union - inter < loose * union)) | (
                    disjoint & (((union > 0.0) & one_below) | ((union <= 0.0) & zero_below))
                )
            j0 = j1
        evals[r] = j0
        if below >= k:
            box_row(FT, i, buf[r])
            evals[r] += n
            med[r] = _kth_smallest(buf[r], k)
        else:
            med[r] = np.inf


_KC = 512  # feature chunk: the 2 + 4 row chunks stay in L1, a column block of all rows in L2/L3


@kernel(fastmath=_FASTMATH, inline="always")
def _l1_slices(a, b, zero):
    s = zero
    for k in range(a.shape[0]):
        s += abs(a[k] - b[k])
    return s


@kernel(parallel=True, fastmath=_FASTMATH)
def _l1_chunk(A, B, k0, k1, acc):
    # Row slices indexed from 0: numba then knows the index is non-negative,
    # drops its negative-index wraparound, and LLVM emits contiguous vector loads.
    na = A.shape[0]
    nb = B.shape[0]
    zero = A[0, 0] - A[0, 0]  # the storage dtype's zero: chunk sums vectorize in it
    nblk = (na + 1) // 2
    jmain = nb - nb % 4
    for blk in prange(nblk):
        i0 = blk * 2
        if i0 + 2 <= na:
            a0 = A[i0, k0:k1]
            a1 = A[i0 + 1, k0:k1]
            for j in range(0, jmain, 4):
                b0 = B[j, k0:k1]
                b1 = B[j + 1, k0:k1]
                b2 = B[j + 2, k0:k1]
                b3 = B[j + 3, k0:k1]
                s00 = zero
                s01 = zero
                s02 = zero
                s03 = zero
                s10 = zero
                s11 = zero
                s12 = zero
                s13 = zero
                for k in range(k1 - k0):
                    u = a0[k]
                    w = a1[k]
                    v = b0[k]
                    s00 += abs(u - v)
                    s10 += abs(w - v)
                    v = b1[k]
                    s01 += abs(u - v)
                    s11 += abs(w - v)
                    v = b2[k]
                    s02 += abs(u - v)
                    s12 += abs(w - v)
                    v = b3[k]
                    s03 += abs(u - v)
                    s13 += abs(w - v)
                acc[i0, j] += s00
                acc[i0, j + 1] += s01
                acc[i0, j + 2] += s02
                acc[i0, j + 3] += s03
                acc[i0 + 1, j] += s10
                acc[i0 + 1, j + 1] += s11
                acc[i0 + 1, j + 2] += s12
                acc[i0 + 1, j + 3] += s13
            for j in range(jmain, nb):
                acc[i0, j] += _l1_slices(a0, B[j, k0:k1], zero)
                acc[i0 + 1, j] += _l1_slices(a1, B[j, k0:k1], zero)
        else:
            for i in range(i0, na):
                for j in range(nb):
                    acc[i, j] += _l1_slices(A[i, k0:k1], B[j, k0:k1], zero)


def l1_pairwise(A, B, acc):
    """Add ``sum_k |A[i, k] - B[j, k]|`` to the float64 matrix ``acc`` (zeroed by the caller)."""
    d = A.shape[1]
    if A.shape[0] == 0 or B.shape[0] == 0:
        return acc
    for k0 in range(0, d, _KC):
        _l1_chunk(A, B, k0, min(k0 + _KC, d), acc)
    return acc


def l1_rows(F, rows, out):
    """float64 l1 distances of the rows ``rows`` of ``F`` to every row, into ``out[:len(rows)]``.

    :func:`l1_pairwise` blocks rows in pairs and sends an odd last row down
    another code path, which can round differently; padding with a copy of
    the last row makes every row sum the same way, so brute force and the
    pruned center (:mod:`cs_fast.kernels.prune`) get the same floats whatever
    their tiles.
    """
    m = rows.shape[0]
    G = F[rows] if m % 2 == 0 else F[np.append(rows, rows[-1])]
    acc = np.zeros((G.shape[0], F.shape[0]))
    l1_pairwise(G, F, acc)
    out[:m] = acc[:m]
    return out[:m]


@kernel(parallel=True)
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


@kernel(parallel=True)
def tv_features(X, grouped, out):
    """Write the TV neighbour differences of (n, C, H, W) images into ``out``.

    ``out`` is (n, C * P) with P = (H - 1) W + H (W - 1): for each channel the
    vertical differences ``X[h + 1, w] - X[h, w]`` in row-major (h, w) order,
    then the horizontal ones ``X[h, w + 1] - X[h, w]``. With ``grouped`` the
    channels of one position are adjacent instead (``p * C + c``), as the
    channel-l2 reduction reads them. One pass over the images, in parallel;
    ``cs_fast.metrics.tv_differences`` is the numpy reference. The column
    layout is :func:`cs_fast.kernels.features.tv_index`, shared with the device.
    """
    n, C, H, W = X.shape
    P = (H - 1) * W + H * (W - 1)
    nv = (H - 1) * W
    for i in prange(n):
        for c in range(C):
            for h in range(H - 1):
                for w in range(W):
                    p = h * W + w
                    idx = _tv_index(p, c, C, P, grouped)
                    out[i, idx] = X[i, c, h + 1, w] - X[i, c, h, w]
            for h in range(H):
                for w in range(W - 1):
                    p = nv + h * (W - 1) + w
                    idx = _tv_index(p, c, C, P, grouped)
                    out[i, idx] = X[i, c, h, w + 1] - X[i, c, h, w]


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


SQ_ROWS = 64  # rows per GEMM call of sq_rows: one fixed shape


def sq_rows(F64, norms, rows, take_sqrt, out):
    """Squared (``take_sqrt``: plain) distances of the rows ``rows`` to all rows, into ``out[:len(rows)]``.

    ``(F64, norms)`` from :func:`centre`. A BLAS GEMM may round an entry
    differently depending on the call's shape (its blocking, its small-matrix
    kernels, its thread split), so every GEMM here has the same shape,
    ``SQ_ROWS x d`` by ``d x n`` (the last call padded with copies of a row):
    brute force and the pruned center (:mod:`cs_fast.kernels.prune`) then
    get the same floats for a row whatever their tiles.
    """
    m = rows.shape[0]
    for r0 in range(0, m, SQ_ROWS):
        chunk = rows[r0:r0 + SQ_ROWS]
        if chunk.shape[0] < SQ_ROWS:
            chunk = np.concatenate([chunk, np.full(SQ_ROWS - chunk.shape[0], chunk[-1])])
        G = sq_pairwise((F64[chunk], norms[chunk]), (F64, norms), take_sqrt)
        c = min(SQ_ROWS, m - r0)
        out[r0:r0 + c] = G[:c]
    return out[:m]


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
    _generic(reduction)[0](A, B, arg, out)
    return out


def to_center(reduction, F, C, arg):
    """float64 distances from every row of ``F`` to the single row ``C`` (shape (1, d))."""
    out = np.empty((F.shape[0], 1))
    _generic(reduction)[0](F, C, arg, out)
    return out[:, 0]


def paired(reduction, A, B, arg):
    """float64 distances ``d(A[i], B[i])`` of matching rows."""
    out = np.empty(A.shape[0])
    _generic(reduction)[2](A, B, arg, out)
    return out


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
    if reduction == "box":
        FT = np.ascontiguousarray(F.T)
    # Small first tiles, doubling, give a tight bound early so later tiles prune.
    first = min(n, tile, max(1, numba.get_num_threads()))
    if reduction in ("sq", "l2"):
        # The GEMM computes every distance of a tile whatever the bound, and a
        # GEMM of a few rows runs at GEMV speed: full tiles from the start.
        first = min(n, tile)
    buf = np.empty((min(tile, n), n))
    med = np.empty(min(tile, n))
    evals = np.empty(min(tile, n), np.int64)
    start = 0
    size = first
    while start < n:
        stop = min(n, start + size)
        size = min(tile, 2 * size)  # the bound tightens fastest with small early tiles
        rows = stop - start
        if reduction == "box":
            box_fused_tile(F, FT, np.arange(start, stop), k, best, -1, buf, med, evals)  # index order: strict
            meds = med[:rows]
        elif direct:
            fused(F, start, stop, k, best, arg, buf, med)
            meds = med[:rows]
        else:
            if reduction == "l1":
                D = l1_rows(F, np.arange(start, stop), buf)
            else:
                D = sq_rows(F64, norms, np.arange(start, stop), reduction == "l2", buf)
            tile_select(D, k, best, med)
            meds = med[:rows]
        r = int(np.argmin(meds))
        if meds[r] < best:
            best = float(meds[r])
            best_index = start + r
        start = stop
    return best_index, best
