r"""Exact lower-median center with triangle-inequality pruning (CPU): compute only.

Guarantee: :func:`min_median` returns exactly what brute force over the same
computed distances returns -- the smallest lower median (the ``ceil(n/2)``-th
smallest of a row's ``n`` distances) and the smallest index among its ties --
while evaluating far fewer than ``n^2`` distances when the samples cluster.

Why it may skip rows. For a metric every order statistic of a row is
1-Lipschitz in the row's point: each ``d(i, k)`` differs from ``d(j, k)`` by at
most ``d(i, j)``, so ``med(i) >= med(j) - d(i, j)``. Every row ``j`` computed in
full therefore lower-bounds every other row, ``lb(i) = max_j med(j) - d(i, j)``
(trimed, Newling & Fleuret, AISTATS 2017, applied to the lower median instead
of the mean). A row with ``lb(i) > best``, or ``lb(i) >= best`` and an index
above the best one, cannot win and is never computed. ``sqfeat`` is not a
metric, but its square root is the (weighted) l2 metric with the same order:
bounds are taken on the roots (``root=True``), medians reported squared.

Rounding. The bound holds for exact distances; the kernels return each with a
relative error below ``eps`` and an absolute one below ``tiny`` (see
:func:`rounding_margin`). For the computed values the bound becomes
``med(i) >= med(j) (1 - 2 eps) - d(i, j) - 3 tiny`` (derivation in
:func:`_tighten`); it is evaluated as ``med(j) (1 - 3 eps) - 3 tiny - d(i, j) (1 + eps)``,
whose own float rounding the extra ``eps`` terms absorb. So rounding can only
keep a row that could have been skipped, never skip one that could win.

How. Rows are visited in tiles in a seeded random order (trimed's; visiting
in increasing-bound order computed as many rows in full on jittered boxes,
see :class:`PruneConfig`), skipping rows already settled. Each tile's rows are computed in
full with the routines brute force uses (:func:`cs_fast.kernels.cpu.distances.box_row`,
the canonical :func:`cs_fast.kernels.cpu.distances.rows`, the strict pair functions;
``l1`` here is always the blocked estimate ``l1_rows`` of the estimate pass),
so every distance is the same float on both paths; their exact lower medians are selected, the
(median, index) best updated, and every open row's bound tightened. Where the
distances are cheap (boxes, short rows) and a tile of ``m`` full rows settles
fewer than ``ratio * m`` others (:class:`PruneConfig`) (the core around the center, or inputs that
do not prune at all: scattered boxes), the rest gets the brute-force counting
pass with its early exit instead (a row stops once too few of its distances
can be below the best); for boxes that pass also skips the columns that the
triangle inequality through the best row places outside the row's reach.
Inputs that do not prune then cost about what brute force does.

The estimate pass. With ``slack`` (:mod:`cs_fast.kernels.cpu.exact`) the rows are
estimates of a canonical distance: every comparison with the best becomes a
comparison with ``slack(best)``, so that every row that may canonically win
gets its exact estimated median (``seen``) and the candidates are refined
afterwards.

Boxes in float32. When every coordinate is exactly a float32 in a safe range
(:func:`box32_columns`), boxes are bounded and counted in float32 (eight SIMD
lanes, half the memory traffic): full rows for the bounds are float32 rows with
a derived error bound (``BOX32_TINY``), and the count test is widened by
``BOX32_PAD`` so that it can only over-count the pairs below a threshold (the
derivation is written above :func:`box32_columns`); only a row that may win
gets brute force's float64 row and exact median. The counting pass uses up to
``pivots`` pivots (random core rows and the best row, their columns bucketed by
distance in linear time, :func:`_pivot_buckets`): each row takes its nearest
pivot and evaluates only the shell of columns the triangle inequality leaves
undecided (:func:`_box32_count_pivots`). Index and radius stay brute force's.
"""

import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import prange

from .. import reductions
from . import distances
from .runtime import kernel, specialize

# prune's kernels inline distances.py's (box_row): its source joins their cache key.
_KERNEL = {"depends": (distances,)}

OPEN = 0
DONE = 1  # computed (full row or counting pass): its median is known or known not to win
SKIPPED = 2  # pruned by its lower bound

# Relative error of a computed distance against the exact distance of the
# stored features (float64 sums: ~1e-13 for long rows; the GEMM form's guard
# keeps sq/l2 below ~1e-8; float32 storage: l1 chunk sums of up to 512 terms in
# float32, ~3e-5). Generous on purpose: a looser margin only costs pruning.
_EPS = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-4}
_TINY = 1e-12
_SHORT_ROW = 16  # direct reductions on rows shorter than this count as cheap too
SEED = 0x5EED
_BOUND_TILE = 64  # rows per tile while bounding
_MIN_BOUND_ROWS = 32  # rows computed in full before the bounds may be given up (8 gave up too soon)
_CHUNK = 4096  # bound entries per task of _tighten (32 KiB: stays in L1)
# Strided sample of median_floor: its proposal lies about sqrt(s) / (2 s) in rank below the
# median (4096: 0.8 %); a larger sample costs more to select in (measured: 2048 and 8192 were slower).
FLOOR_SAMPLE = 4096


def rounding_margin(reduction, dtype):
    """``(eps, tiny)``: relative and absolute error bounds of a computed distance.

    Every kernel of :mod:`cs_fast.kernels.cpu.distances` returns ``d_hat`` with
    ``|d_hat - d| <= eps d + tiny`` where ``d`` is the exact distance of the
    stored (featurized) rows; the pruning bounds subtract the matching margin.
    """
    R = reductions.get(reduction)
    eps = _EPS[np.dtype(np.float64)] if R.exact_features else _EPS.get(np.dtype(dtype), 1e-4)
    # Distances in [0, 1] come from formulas with cancellation near 0: an absolute margin too.
    return eps, (_TINY if R.bounded else 0.0)


# --------------------------------------------------------------------------- numba kernels


@kernel(nogil=True, **_KERNEL)
def _select(row, k, scratch):
    """k-th smallest (1-based) of ``row`` without reordering it.

    Quickselect on a whole distance row mispredicts most of its branches. A
    strided sample brackets the k-th value instead; one branch-free pass
    counts what lies below the bracket and compacts what lies inside it into
    ``scratch`` (every value is stored, the write position only advances for
    values inside), and quickselect finishes on that small copy. A bracket that
    misses or overflows ``scratch`` falls back to a full copy (still exact,
    only slower). The result is an element of ``row``: the same value
    quickselect on the whole row returns.
    """
    n = row.shape[0]
    cap = scratch.shape[0]
    if n <= 4096 or cap < 1024:
        tmp = scratch[:n] if cap >= n else np.empty(n)
        tmp[:] = row
        return distances.kth_smallest(tmp, k)
    s = 512
    sample = np.empty(s)
    for t in range(s):
        sample[t] = row[(t * n) // s]
    pos = (k - 1) * s / n
    spread = 3.0 * math.sqrt(s * 0.25) + 1.0
    a = max(0, int(pos - spread))
    b = min(s - 1, int(pos + spread) + 1)
    lo = distances.kth_smallest(sample, a + 1)
    hi = distances.kth_smallest(sample, b + 1)  # after the first call sample[: a + 1] <= lo still holds
    below = 0
    m = 0
    last = cap - 1
    for t in range(n):
        v = row[t]
        below += v < lo
        scratch[min(m, last)] = v
        m += (v >= lo) & (v <= hi)
    if below < k <= below + m and m < cap:
        return distances.kth_smallest(scratch[:m], k - below)
    tmp = scratch[:n] if cap >= n else np.empty(n)
    tmp[:] = row
    return distances.kth_smallest(tmp, k)


@kernel(nogil=True, **_KERNEL)
def median_floor(row, k, scratch):
    """A value ``<=`` the k-th smallest of ``row``: the bound a full row lends the others.

    The bounds only need the median from below, and an exact selection costs
    several times the row's distances. A strided sample proposes ``lo`` one
    standard deviation of the sample rank below the k-th; one branch-free pass
    counts the values below it, and fewer than ``k`` of them proves the k-th
    smallest is ``>= lo``. Otherwise (the sample missed) the exact selection.
    """
    n = row.shape[0]
    s = min(FLOOR_SAMPLE, n // 8)
    if s < 512:
        return _select(row, k, scratch)
    sample = np.empty(s)
    for t in range(s):
        sample[t] = row[(t * n) // s]
    a = int((k - 1) * s / n - math.sqrt(s * 0.25))
    if a < 0:
        return _select(row, k, scratch)
    lo = distances.kth_smallest(sample, a + 1)
    if distances.count_below(row, lo) < k:
        return lo
    return _select(row, k, scratch)


@kernel(parallel=True, **_KERNEL)
def _finish_rows(D, rows, k, best, best_index, want_bound, scratch, med, bound):
    """Lower median of each computed row of ``D`` (rows ``rows`` of the input) that may win.

    A row that cannot win (fewer than ``k`` distances below its threshold: the
    best median, or for rows before the best index the next float above it,
    so that an equal median with a smaller index still counts) gets
    ``med = inf`` and, if ``want_bound`` (the bounds need it), ``bound`` a
    value no larger than its median (:func:`median_floor`); a row that may
    win gets its exact median in both.
    """
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        row = D[r]
        if distances.count_below(row, t) >= k:
            med[r] = _select(row, k, scratch[r])
            bound[r] = med[r]
        else:
            med[r] = np.inf
            bound[r] = median_floor(row, k, scratch[r]) if want_bound else np.inf


@kernel(parallel=True, **_KERNEL)
def _tighten(D, med, root, eps, tiny, cols, lbc, state, best, best_index, chunk, compact=False):
    """Raise the bounds ``lbc`` of rows ``cols`` with the rows of ``D``; mark rows that can no longer win.

    ``cols`` lists the rows still open when the caller last compacted them
    (``lbc[t]`` is row ``cols[t]``'s bound), so the pass shrinks with the open set.
    With ``compact`` (boxes, never ``root``) ``D[r, t]`` is the distance to ``cols[t]``.

    For computed distances with ``|d_hat - d| <= eps d + tiny`` and ``M`` the
    computed median of row j, or any value below it (``med`` holds such lower
    bounds, :func:`median_floor`): at least ``n - k + 1`` of row j's distances
    are ``>= M``, and every k with ``d_hat(j, k) >= M`` has
    ``d(j, k) >= (M - tiny) / (1 + eps)``, ``d(i, j) <= (d_hat(i, j) + tiny) / (1 - eps)``,
    hence ``d_hat(i, k) >= (1 - eps) (d(j, k) - d(i, j)) - tiny
    >= M (1 - 2 eps) - d_hat(i, j) - 3 tiny``: at least ``n - k + 1`` of row i's
    computed distances are that large, so its computed median is too. The
    code subtracts one more ``eps`` on each side to cover its own rounding.
    With ``root`` the rows hold squared distances: the bound is on the roots.
    Returns the number of rows newly marked SKIPPED.
    """
    n = cols.shape[0]
    m = med.shape[0]
    base = np.empty(m)
    for r in range(m):
        v = med[r]
        if root:
            v = math.sqrt(v)
        base[r] = v * (1.0 - 3.0 * eps) - 3.0 * tiny
    grow = 1.0 + eps
    nchunks = (n + chunk - 1) // chunk
    newly = np.zeros(nchunks, np.int64)
    for c in prange(nchunks):
        j0 = c * chunk
        j1 = min(n, j0 + chunk)
        for r in range(m):
            b = base[r]
            if not b > 0.0:  # also skips an inf median (never computed)
                continue
            if b == np.inf:
                continue
            row = D[r]
            if compact:  # D[r, t] is already the distance to cols[t] (box32_bound_open)
                for t in range(j0, j1):
                    lbc[t] = max(lbc[t], b - row[t] * grow)
            elif root:
                for t in range(j0, j1):
                    lbc[t] = max(lbc[t], b - math.sqrt(row[cols[t]]) * grow)
            else:
                for t in range(j0, j1):
                    lbc[t] = max(lbc[t], b - row[cols[t]] * grow)
        cnt = 0
        for t in range(j0, j1):
            j = cols[t]
            if state[j] == OPEN:
                # Distances are >= 0, so medians are: 0 is a bound too (it settles
                # identical samples once the best median is 0).
                v = max(lbc[t], 0.0)
                if root:
                    v = v * v  # compared with the squared best
                if v > best or (v >= best and j > best_index):
                    state[j] = SKIPPED
                    cnt += 1
        newly[c] = cnt
    return newly.sum()


def _count_tile(F, rows, k, best, best_index, arg, buf, scratch, med, evals):
    """The brute-force counting pass on the rows ``rows``, for any pair function.

    Counts a row's distances below its threshold (see :func:`_finish_rows`) in
    blocks, stopping once the row can no longer reach ``k``; only rows that
    reach it compute their full row and exact median (else inf). ``evals``
    receives the distances each row evaluated.
    """
    n = F.shape[0]
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        below = 0
        j0 = 0
        while j0 < n and below + (n - j0) >= k:
            j1 = min(n, j0 + 512)
            for j in range(j0, j1):
                if pair_fn(F, i, F, j, arg) < t:  # noqa: F821 (bound by jit.specialize)
                    below += 1
            j0 = j1
        evals[r] = j0
        if below >= k:
            for j in range(n):
                buf[r, j] = pair_fn(F, i, F, j, arg)  # noqa: F821
            evals[r] += n
            med[r] = _select(buf[r], k, scratch[r])
        else:
            med[r] = np.inf


def _pair_rows(F, rows, arg, out):
    for r in prange(rows.shape[0]):
        i = rows[r]
        for j in range(F.shape[0]):
            out[r, j] = pair_fn(F, i, F, j, arg)  # noqa: F821


_GENERIC = {}


def _generic(reduction):
    """(pair_rows, count_tile) for one pair function: templates bound by jit.specialize, built once."""
    R = reductions.get(reduction)
    if R not in _GENERIC:
        fast = R.estimate_only  # estimates take the reassociated pair functions (distances.KF)
        pair_fn = getattr(distances.KF if fast else distances.K, R.pair)
        suffix = "prune_" + R.name + ("_fast" if fast else "")
        _GENERIC[R] = tuple(
            specialize(template, suffix, dict(parallel=True, **_KERNEL), pair_fn=pair_fn)
            for template in (_pair_rows, _count_tile)
        )
    return _GENERIC[R]


@kernel(parallel=True, **_KERNEL)
def _box_rows(FT, rows, out):
    for r in prange(rows.shape[0]):
        distances.box_row(FT, rows[r], out[r])


@kernel(parallel=True, fastmath=distances.FASTMATH, **_KERNEL)
def _box_count_pivot(FT, FTs, ds, dpiv, rows, k, best, best_index, reach, buf, scratch, med, evals):
    """The box counting pass with the columns sorted by their distance to a pivot row.

    ``FTs`` holds the boxes transposed in the order of ``ds``, their sorted
    distances to the pivot; ``dpiv[i]`` is box i's. A column can be below a
    row's threshold ``t`` only if ``|ds[c] - dpiv[i]| < t + reach`` (the
    triangle inequality; ``reach`` covers the rounding of the three distances),
    so the columns outside that window are counted as not below without
    computing them, and the window is walked from its far end inward, where a
    row near the pivot meets its not-below distances first: most rows stop
    after a fraction of their distances. A row that still reaches ``k`` is
    computed in full, in the input order (:func:`cs_fast.kernels.cpu.distances.box_row`,
    the floats brute force computes), and its median selected.
    """
    n = FT.shape[1]
    x1 = FTs[0]
    y1 = FTs[1]
    x2 = FTs[2]
    y2 = FTs[3]
    need = n - k + 1  # not-below distances that settle a row
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        loose = distances.count_loose(t)
        zero_below = 0.0 < t
        one_below = 1.0 < t
        a = dpiv[i]
        lo = np.searchsorted(ds, a - t - reach, side="left")
        hi = np.searchsorted(ds, a + t + reach, side="right")
        nonbelow = n - (hi - lo)
        ax1 = FT[0, i]
        ay1 = FT[1, i]
        ax2 = FT[2, i]
        ay2 = FT[3, i]
        area = (ax2 - ax1) * (ay2 - ay1)
        done = 0
        j1 = hi
        while j1 > lo and nonbelow < need:
            j0 = max(lo, j1 - 1024)
            bx1 = x1[j0:j1]
            by1 = y1[j0:j1]
            bx2 = x2[j0:j1]
            by2 = y2[j0:j1]
            c = 0
            for j in range(j1 - j0):
                c += distances.box_below(ax1, ay1, ax2, ay2, area, bx1[j], by1[j], bx2[j], by2[j], loose, one_below,
                                   zero_below)
            nonbelow += (j1 - j0) - c
            done += j1 - j0
            j1 = j0
        evals[r] = done
        if nonbelow < need:
            distances.box_row(FT, i, buf[r])
            evals[r] += n
            med[r] = _select(buf[r], k, scratch[r])
        else:
            med[r] = np.inf


# --------------------------------------------------------------------------- float32 boxes
#
# Boxes are counted and bounded in float32 (eight SIMD lanes instead of four, half the
# memory traffic); only rows that may win get the float64 row brute force computes.
# Rigour: with u = 2**-24, coordinates exact in float32 and every non-zero one of
# magnitude in [2**-20, 2**40] (so every width, height, area, product and sum below is a
# normal float32: no underflow, no overflow), and A, B, I, U = A + B - I the two areas,
# the overlap and the union of two overlapping boxes (all > 0, I <= U, U >= (A + B) / 2):
#   A, B, I each carry three roundings: |A_hat - A| <= 3.1 u A (same for B, I);
#   U_hat = fl(fl(A_hat + B_hat) - I_hat): |U_hat - U| <= 12.1 u U;
#   L_hat = fl(U_hat - I_hat): |L_hat - (U - I)| <= 16.3 u U;
#   e = fl(1 - fl(I_hat / U_hat)): |e - d| <= 18 u, d = 1 - I / U the exact distance;
# and brute force's float64 value is within 2e-15 of d. Hence
#   * the count test L_hat < fl(loose * U_hat) with loose >= t + PAD (PAD = 2**-17 = 128 u)
#     holds for every pair whose float64 distance is < t (it needs PAD >= 43 u): the
#     count of pairs "below t" can only be too large, never too small, so a row it
#     settles truly cannot win, and a row it admits is decided by the float64 row;
#   * e is within TINY = 2**-17 of the float64 distance (7x the 18 u it needs): the
#     bounds of _tighten and the pivot window take (eps, TINY) as their margin.
# Disjoint pairs are decided exactly (their distance is exactly 1, or 0 for two empty
# boxes, in float64 and here; the sign of a float difference is exact).
BOX32_PAD = 2.0 ** -17
BOX32_TINY = 2.0 ** -17
_BOX32_RANGE = (2.0 ** -20, 2.0 ** 40)
_Z32 = np.float32(0.0)
_ONE32 = np.float32(1.0)
_PIVOT_BYTES = 384 * 2**20  # 16 pivots at 10^6 boxes (10.9 s vs 13.0 s with 128 MiB, 2 threads; +260 MiB)
_PIVOT_BUCKETS = 2048


@dataclass(frozen=True)
class PruneConfig:
    """The pruned search's tunables. The answer is brute force's whatever they are; only the work changes.

    Attributes
    ----------
    sort : bool
        Re-sort the open rows by bound whenever half of them have closed (off:
        only when the seeded random order runs out). On jittered boxes it
        computed as many rows in full as the random order, which it only adds
        sorting to.
    switch : bool
        For cheap distances, give the bounds up once they stop paying (see
        ``ratio``) and count the remaining rows.
    ratio : float
        The bounds stop paying once a tile of ``m`` full rows closes fewer than
        ``ratio * m`` other rows.
    pivot : bool
        Count boxes against the pivot-sorted window of the best row
        (:func:`_box_count_pivot`) or the bucketed pivots.
    pivots : int
        Random core rows (plus the best row) that become the float32 count's
        pivots (0: the best row alone), within 24 bytes per pivot and box of
        ``_PIVOT_BYTES``.
    float32_boxes : bool
        Bound and count boxes in float32 when their coordinates allow it
        (:func:`box32_columns`); off: the float64 kernels.
    open_rows : bool
        float32 bound rows hold only the distances to the open rows, their
        floor from a division-free count (:func:`box32_bound_open`); off:
        whole rows (:func:`box32_bound_rows`).
    simple_test : bool
        Without empty boxes and below ``t = 1`` the float32 counts take the
        bare test (:func:`count32`).
    group : int
        Rows of one pivot counted together, a column block at a time
        (:func:`_box32_count_groups`); 1: one by one.
    count_tile : int
        Rows per grouped count call.
    """

    sort: bool = False
    switch: bool = True
    ratio: float = 4.0
    pivot: bool = True
    pivots: int = 16
    float32_boxes: bool = True
    open_rows: bool = True
    simple_test: bool = True
    group: int = 8
    count_tile: int = 1024


#: Today's tunables: what :func:`min_median` uses unless given others.
DEFAULT_CONFIG = PruneConfig()


def box32_columns(F):
    """float32 ``(5, n)``: x1, y1, x2, y2 and the float32 area of each box, or None.

    None when some coordinate is not exactly a float32, or a non-zero one lies
    outside ``_BOX32_RANGE`` in magnitude: the float32 error bounds (see above)
    would not hold, and the float64 kernels are used instead.
    """
    F32 = F.astype(np.float32)
    if not np.array_equal(F32.astype(np.float64), F):
        return None
    mag = np.abs(F32)
    nz = mag[mag > 0]
    if nz.size and not (nz.min() >= _BOX32_RANGE[0] and nz.max() <= _BOX32_RANGE[1]):
        return None
    C = np.empty((5, F.shape[0]), np.float32)
    C[:4] = F32.T
    C[4] = (C[2] - C[0]) * (C[3] - C[1])  # float32 products: three roundings, as the bound assumes
    return C


@kernel(nogil=True, inline="always")
def loose32(t):
    """float32 ``>= t + BOX32_PAD`` (rounding to nearest moves ``x (1 + 2**-20)`` by less than ``2**-24 x``)."""
    return np.float32((t + BOX32_PAD) * (1.0 + 2.0 ** -20))


@kernel(nogil=True, inline="always")
def _box32_terms(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba):
    """``(overlap, union - inter, union)`` of boxes a, b in float32: what every count test reads."""
    iw = max(min(ax2, bx2) - max(ax1, bx1), _Z32)
    ih = max(min(ay2, by2) - max(ay1, by1), _Z32)
    inter = iw * ih
    union = (aa + ba) - inter
    return (iw > _Z32) & (ih > _Z32), union - inter, union


@kernel(nogil=True, inline="always")
def _terms_below(overlap, gap, union, loose, one_below, zero_below):
    """The count test on :func:`_box32_terms`: may the float64 distance be below ``t``? (never a false no)."""
    return (overlap & (gap < loose * union)) | (
        (~overlap) & (((union > _Z32) & one_below) | ((union <= _Z32) & zero_below)))


@kernel(nogil=True, inline="always")
def _box32_below(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba, loose, one_below, zero_below):
    """May the float64 distance of boxes a, b be below ``t``? (``loose = loose32(t)``; never a false no)."""
    overlap, gap, union = _box32_terms(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba)
    return _terms_below(overlap, gap, union, loose, one_below, zero_below)


@kernel(nogil=True, inline="always")
def count32(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba, loose, one_below, zero_below, simple):
    """How many boxes of the slices ``bx1 ... ba`` may lie below box a's threshold (:func:`_box32_below`).

    ``simple`` (every area > 0 and ``loose < 1``, so ``t < 1``): the bare test
    ``U - I < loose U`` alone, a third fewer operations. It is the same answer: a
    disjoint pair has ``I = 0`` exactly (the sign of a float difference is exact, so
    the clipped width or height is exactly 0) and ``U > 0``, so ``U < fl(loose U) <= U``
    is false, as ``d = 1 < t`` is; two empty boxes, whose distance 0 the bare test
    would miss, cannot occur.
    """
    c = 0
    if simple:
        for j in range(bx1.shape[0]):
            iw = max(min(ax2, bx2[j]) - max(ax1, bx1[j]), _Z32)
            ih = max(min(ay2, by2[j]) - max(ay1, by1[j]), _Z32)
            inter = iw * ih
            union = (aa + ba[j]) - inter
            c += (union - inter) < loose * union
    else:
        for j in range(bx1.shape[0]):
            c += _box32_below(ax1, ay1, ax2, ay2, aa, bx1[j], by1[j], bx2[j], by2[j], ba[j], loose, one_below,
                              zero_below)
    return c


@kernel(error_model="numpy", nogil=True, inline="always")
def _box32_value(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba):
    """float32 Jaccard distance, within ``BOX32_TINY`` of the float64 one (exact for disjoint pairs).

    Its callers compile with ``error_model='numpy'``: numba's default guards every float
    division with a zero test, a branch that stops the loop vectorizing (7x slower,
    measured); the division here never sees a zero anyway (two empty boxes divide by 1).
    """
    iw = max(min(ax2, bx2) - max(ax1, bx1), _Z32)
    ih = max(min(ay2, by2) - max(ay1, by1), _Z32)
    inter = iw * ih
    union = (aa + ba) - inter
    overlap = (iw > _Z32) & (ih > _Z32)
    e = _ONE32 - inter / (union if overlap else _ONE32)  # no 0/0 for two empty boxes
    disjoint = _ONE32 if union > _Z32 else _Z32
    return e if overlap else disjoint


@kernel(nogil=True, **_KERNEL)
def floor32(row, k, scratch):
    """:func:`median_floor` for a float32 row, with a ladder of proposals before the exact selection.

    The proposal lies 1, then 2.5, then 6 standard deviations of the sample rank below
    the k-th (the first misses about a fifth of the rows, the second under 1 %); each
    miss costs one count pass, far less than the exact selection it replaces (with the
    1-sigma proposal alone, the selections of the 20 % of jittered-box rows it missed
    were most of the full rows' cost). Starting at 1.5 sigma gave looser floors and
    more full rows (6.76 % of n^2 evaluated instead of 6.47 %, slower). Compared in
    float32: the proposal is an element of the row.
    """
    n = row.shape[0]
    s = min(FLOOR_SAMPLE, n // 8)
    if s >= 512:
        sample = np.empty(s, np.float32)
        for t in range(s):
            sample[t] = row[(t * n) // s]
        sd = math.sqrt(s * 0.25)
        for mult in (1.0, 2.5, 6.0):
            a = int((k - 1) * s / n - mult * sd)
            if a < 0:
                break
            lo = distances.kth_smallest(sample, a + 1)  # reorders the sample; later ranks are still exact
            c = 0
            for t in range(n):
                c += row[t] < lo
            if c < k:
                return np.float64(lo)
    return np.float64(_select(row, k, scratch))


@kernel(error_model="numpy", parallel=True, **_KERNEL)
def box32_bound_rows(C, FT, rows, k, best, best_index, out32, buf, scratch, med, bound):
    """Full float32 rows of ``rows`` for the bounds, and the exact median of each row that may win.

    Row ``r`` gets its float32 distances in ``out32[r]`` and counts those that may lie
    below its threshold (see :func:`_finish_rows`). A row that reaches ``k`` gets brute
    force's float64 row (:func:`cs_fast.kernels.cpu.distances.box_row`) in ``buf[r]`` and its exact
    median in ``med`` and ``bound``; the others ``med = inf`` and in ``bound`` a value
    ``<=`` the k-th smallest float32 distance (:func:`floor32`).
    """
    n = C.shape[1]
    x1 = C[0]
    y1 = C[1]
    x2 = C[2]
    y2 = C[3]
    ar = C[4]
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        loose = loose32(t)
        one_below = 1.0 < t
        zero_below = 0.0 < t
        ax1 = x1[i]
        ay1 = y1[i]
        ax2 = x2[i]
        ay2 = y2[i]
        aa = ar[i]
        row = out32[r]
        below = 0
        half = np.float32(0.5)
        for j in range(n):
            e = _box32_value(ax1, ay1, ax2, ay2, aa, x1[j], y1[j], x2[j], y2[j], ar[j])
            overlap = (min(ax2, x2[j]) > max(ax1, x1[j])) & (min(ay2, y2[j]) > max(ay1, y1[j]))
            row[j] = e
            # Disjoint pairs are exactly 1 (or 0): tested exactly; overlapping ones loosely.
            below += (overlap & (e < loose)) | ((~overlap) & (((e > half) & one_below) | ((e < half) & zero_below)))
        if below >= k:
            distances.box_row(FT, i, buf[r])
            med[r] = _select(buf[r], k, scratch[r])
            bound[r] = med[r]
        else:
            med[r] = np.inf
            # After the pass over the row: a proposal computed first, counted on the way,
            # was slower (its strided sample misses the caches in five arrays).
            bound[r] = floor32(row, k, scratch[r])


@kernel(nogil=True, inline="always")
def _count_from(C, i, t, positive, x1, y1, x2, y2, ar):
    """How many boxes of the columns ``x1 ... ar`` may lie below ``t`` from box ``i`` (division-free)."""
    loose = loose32(t)
    return count32(C[0, i], C[1, i], C[2, i], C[3, i], C[4, i], x1, y1, x2, y2, ar, loose, 1.0 < t, 0.0 < t,
                    positive and loose < 1.0)


@kernel(error_model="numpy", nogil=True, inline="always")
def _box32_count_row(C, i, t, positive):
    """How many boxes may lie below ``t`` from box ``i`` (:func:`_box32_below`, division-free: 0.34 ns a pair)."""
    return _count_from(C, i, t, positive, C[0], C[1], C[2], C[3], C[4])


@kernel(error_model="numpy", parallel=True, **_KERNEL)
def box32_bound_open(C, FT, rows, k, best, best_index, Copen, out32, buf, scratch, med, bound, positive):
    """:func:`box32_bound_rows` that writes only the distances to the open rows, ``Copen``.

    ``Copen`` holds the float32 columns of the rows still open, contiguous (the
    caller's ``C[:, cols]``). The bounds need a full row's median only from below,
    and its distances only to the open rows (a third of them on average at 10^6
    jittered boxes), so the distances are computed only for those, and the bounds
    pass reads them in order instead of gathering them from whole rows. The floor: proposals
    from a strided sample of the row's float32 distances (1, 2.5 and 6 standard
    deviations of the sample rank below the k-th, as :func:`floor32`), each checked
    by one division-free count pass (:func:`_box32_count_row`); the first ``lo`` with
    fewer than ``k`` pairs that may be below it is the floor. The count never misses a
    pair whose float64 distance is below ``lo``, so at least ``n - k + 1`` of brute
    force's distances are ``>= lo``: what :func:`_tighten` needs of ``bound``, and,
    when ``lo >= t`` (the row's threshold), proof that the row cannot win, with no
    count at ``t``. If every proposal fails, the exact median of the float32 row.
    Then ``out32[r, q]`` receives the float32 distance to open column ``q``. A row that
    may win gets brute force's float64 row and exact median, as before.
    """
    n = C.shape[1]
    nc = Copen.shape[1]
    o1 = Copen[0]
    p1 = Copen[1]
    o2 = Copen[2]
    p2 = Copen[3]
    oa = Copen[4]
    x1 = C[0]
    y1 = C[1]
    x2 = C[2]
    y2 = C[3]
    ar = C[4]
    s = min(FLOOR_SAMPLE, n // 8)
    sd = math.sqrt(s * 0.25)
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        ax1 = x1[i]
        ay1 = y1[i]
        ax2 = x2[i]
        ay2 = y2[i]
        aa = ar[i]
        row = out32[r]
        floor = -np.inf
        proven = False  # floor >= t proves the row cannot win (a float64 guarantee)
        if s >= 512:
            sample = np.empty(s, np.float32)
            for q in range(s):
                j = (q * n) // s
                sample[q] = _box32_value(ax1, ay1, ax2, ay2, aa, x1[j], y1[j], x2[j], y2[j], ar[j])
            for mult in (1.0, 2.5, 6.0):
                a = int((k - 1) * s / n - mult * sd)
                if a < 0:
                    break
                lo = np.float64(distances.kth_smallest(sample, a + 1))  # reorders the sample; later ranks still exact
                if _box32_count_row(C, i, lo, positive) < k:
                    floor = lo
                    proven = lo >= t
                    break
        if floor == -np.inf:
            _box32_row(C, i, row)
            floor = np.float64(_select(row, k, scratch[r]))  # exact for the float32 distances
        if not proven and _box32_count_row(C, i, t, positive) >= k:
            distances.box_row(FT, i, buf[r])
            med[r] = _select(buf[r], k, scratch[r])
            bound[r] = med[r]
        else:
            med[r] = np.inf
            bound[r] = floor
        for q in range(nc):
            row[q] = _box32_value(ax1, ay1, ax2, ay2, aa, o1[q], p1[q], o2[q], p2[q], oa[q])


@kernel(error_model="numpy", **_KERNEL)
def box32_pairs(C, I, J, t, e, below):
    """The float32 value and count test of pairs ``(I[p], J[p])`` at thresholds ``t[p]`` (for tests)."""
    for p in range(I.shape[0]):
        i = I[p]
        j = J[p]
        e[p] = _box32_value(C[0, i], C[1, i], C[2, i], C[3, i], C[4, i], C[0, j], C[1, j], C[2, j], C[3, j], C[4, j])
        below[p] = _box32_below(C[0, i], C[1, i], C[2, i], C[3, i], C[4, i], C[0, j], C[1, j], C[2, j], C[3, j],
                                C[4, j], loose32(t[p]), 1.0 < t[p], 0.0 < t[p])


@kernel(error_model="numpy", nogil=True, **_KERNEL)
def _box32_row(C, i, out):
    """float32 distances of box ``i`` to every box (the pivot row)."""
    for j in range(C.shape[1]):
        out[j] = _box32_value(C[0, i], C[1, i], C[2, i], C[3, i], C[4, i], C[0, j], C[1, j], C[2, j], C[3, j], C[4, j])


@kernel(nogil=True, **_KERNEL)
def _walk32(C, i, cols, stop, hi, nonbelow, need, loose, one_below, zero_below, simple):
    """Count row ``i``'s float32 boxes ``cols[:, stop:hi]`` not below its threshold, from ``hi`` down, 1024 at a time.

    Stops as soon as ``nonbelow`` (the columns already known not below) reaches
    ``need``: the row then cannot win. Returns the new ``nonbelow`` and how many
    distances were evaluated. The one walk of both single-pivot and bucketed counting.
    """
    x1 = cols[0]
    y1 = cols[1]
    x2 = cols[2]
    y2 = cols[3]
    ar = cols[4]
    ax1 = C[0, i]
    ay1 = C[1, i]
    ax2 = C[2, i]
    ay2 = C[3, i]
    aa = C[4, i]
    done = 0
    j1 = hi
    while j1 > stop and nonbelow < need:
        j0 = max(stop, j1 - 1024)
        bx1 = x1[j0:j1]
        by1 = y1[j0:j1]
        bx2 = x2[j0:j1]
        by2 = y2[j0:j1]
        ba = ar[j0:j1]
        c = count32(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba, loose, one_below, zero_below, simple)
        nonbelow += (j1 - j0) - c
        done += j1 - j0
        j1 = j0
    return nonbelow, done


@kernel(parallel=True, **_KERNEL)
def _box32_count(Cs, ds, dpiv, C, FT, rows, k, best, best_index, reach, buf, scratch, med, evals, positive):
    """:func:`_box_count_pivot` in float32: ``Cs`` the float32 columns sorted by ``ds``."""
    n = C.shape[1]
    need = n - k + 1
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        loose = loose32(t)
        one_below = 1.0 < t
        zero_below = 0.0 < t
        a = dpiv[i]
        lo = np.searchsorted(ds, a - t - reach, side="left")
        hi = np.searchsorted(ds, a + t + reach, side="right")
        nonbelow = n - (hi - lo)
        nonbelow, evals[r] = _walk32(C, i, Cs, lo, hi, nonbelow, need, loose, one_below, zero_below,
                                     positive and loose < 1.0)
        if nonbelow < need:  # the row may win: brute force's float64 row and exact median
            distances.box_row(FT, i, buf[r])
            evals[r] += n
            med[r] = _select(buf[r], k, scratch[r])
        else:
            med[r] = np.inf


@kernel(parallel=True, **_KERNEL)
def _pivot_buckets(C, dp, nb, Cs, start):
    """Counting sort of the columns by their float32 distance to each pivot: ``nb`` buckets of width ``1 / nb``.

    Bucket ``b < nb`` holds exactly the columns with ``b / nb <= dp[p, c] < (b + 1) / nb``
    (``nb`` a power of two: ``dp * nb`` is exact, its truncation too), bucket ``nb`` the
    distance 1. ``Cs[p]`` receives the float32 columns in bucket order, ``start[p, b]``
    the first position of bucket ``b`` (``start[p, nb + 1] = n``). Linear time: the
    counting pass only needs a window's edges to ``1 / nb``, not a full sort.
    """
    P = dp.shape[0]
    n = dp.shape[1]
    for p in prange(P):
        cnt = np.zeros(nb + 2, np.int64)
        for j in range(n):
            b = min(max(int(dp[p, j] * nb), 0), nb)
            cnt[b + 1] += 1
        for b in range(nb + 1):
            cnt[b + 1] += cnt[b]
        for b in range(nb + 2):
            start[p, b] = cnt[b]
        for j in range(n):
            b = min(max(int(dp[p, j] * nb), 0), nb)
            q = cnt[b]
            cnt[b] = q + 1
            for c in range(5):
                Cs[p, c, q] = C[c, j]


@kernel(parallel=True, **_KERNEL)
def _box32_count_pivots(Cs, start, dp, nb, C, FT, rows, k, best, best_index, reach, buf, scratch, med, evals,
                        positive):
    """The float32 box counting pass against the nearest of several bucketed pivots.

    Row i takes the pivot p nearest to it (``a = dp[p, i]``). A column c can be below
    the row's threshold t only if ``|dp[p, c] - a| < t + reach`` (triangle inequality,
    ``reach`` covering the float32 rounding of both distances): whole buckets outside
    that window count as not below unevaluated. Inside it, columns with ``dp[p, c]``
    below ``t - a`` are (up to rounding) below, so the walk covers only the shell
    ``[t - a, a + t + reach)``, from its far end: a row near its pivot (a small) settles
    after few distances. A row the shell does not settle gets brute force's float64
    row and exact median, so a misjudged shell edge costs time, never exactness.
    """
    n = C.shape[1]
    P = dp.shape[0]
    need = n - k + 1
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        loose = loose32(t)
        one_below = 1.0 < t
        zero_below = 0.0 < t
        p = 0
        a32 = dp[0, i]
        for q in range(1, P):
            if dp[q, i] < a32:
                a32 = dp[q, i]
                p = q
        a = np.float64(a32)
        top = (a + t + reach) * nb
        bot = (a - t - reach) * nb
        bhi = nb + 1 if not top < nb else int(math.floor(top)) + 1  # buckets >= bhi: all > a + t + reach
        blo = 0 if not bot > 0.0 else min(int(math.floor(bot)), bhi)  # buckets < blo: all < a - t - reach
        hi = start[p, bhi]
        lo = start[p, blo]
        nonbelow = n - (hi - lo)
        sb = (t - a) * nb
        bstop = blo if not sb > blo else min(int(math.floor(sb)), bhi)
        stop = start[p, bstop]
        nonbelow, evals[r] = _walk32(C, i, Cs[p], stop, hi, nonbelow, need, loose, one_below, zero_below,
                                     positive and loose < 1.0)
        if nonbelow < need:  # the row may win: brute force's float64 row and exact median
            distances.box_row(FT, i, buf[r])
            evals[r] += n
            med[r] = _select(buf[r], k, scratch[r])
        else:
            med[r] = np.inf


@kernel(**_KERNEL)
def _nearest_pivot(dp, rows, pidx, pa):
    """For each row, the pivot nearest to it (``pidx``) and that float32 distance (``pa``)."""
    P = dp.shape[0]
    for r in range(rows.shape[0]):
        i = rows[r]
        p = 0
        a = dp[0, i]
        for q in range(1, P):
            if dp[q, i] < a:
                a = dp[q, i]
                p = q
        pidx[r] = p
        pa[r] = a


@kernel(parallel=True, **_KERNEL)
def _box32_count_groups(Cs, start, nb, C, FT, rows, perm, pidx, pa, groups, k, best, best_index, reach,
                        hi, stop, nonb, scratch_len, med, evals, positive):
    """:func:`_box32_count_pivots` for groups of rows that share a pivot, walking column blocks together.

    ``perm`` orders the tile's rows by (pivot, distance to it); ``groups`` cuts that order
    into groups of one pivot. A group walks its pivot's bucketed columns from the top in
    blocks of 1024, and every row of the group whose shell meets the block counts it
    while the block is in cache (at 10^6 boxes one pivot's columns are 24 MB: a row on
    its own streams its shell from memory). Each row's window, shell, count and exit are
    those of :func:`_box32_count_pivots`; only the order of the work changes.
    """
    n = C.shape[1]
    need = n - k + 1
    for g in prange(groups.shape[0] - 1):
        q0 = groups[g]
        q1 = groups[g + 1]
        p = pidx[perm[q0]]
        top = 0
        low = n
        for q in range(q0, q1):
            r = perm[q]
            i = rows[r]
            t = best if i > best_index else np.nextafter(best, np.inf)
            a = np.float64(pa[r])
            up = (a + t + reach) * nb
            dn = (a - t - reach) * nb
            bhi = nb + 1 if not up < nb else int(math.floor(up)) + 1
            blo = 0 if not dn > 0.0 else min(int(math.floor(dn)), bhi)
            sb = (t - a) * nb
            bstop = blo if not sb > blo else min(int(math.floor(sb)), bhi)
            hi[q] = start[p, bhi]
            stop[q] = start[p, bstop]
            nonb[q] = n - (start[p, bhi] - start[p, blo])
            evals[r] = 0
            top = max(top, hi[q])
            low = min(low, stop[q])
        x1 = Cs[p, 0]
        y1 = Cs[p, 1]
        x2 = Cs[p, 2]
        y2 = Cs[p, 3]
        ar = Cs[p, 4]
        j1 = top
        active = True
        while j1 > low and active:
            j0 = max(low, j1 - 1024)
            active = False
            for q in range(q0, q1):
                if nonb[q] >= need:
                    continue
                a0 = max(j0, stop[q])
                a1 = min(j1, hi[q])
                if a1 > a0:
                    r = perm[q]
                    i = rows[r]
                    t = best if i > best_index else np.nextafter(best, np.inf)
                    c = _count_from(C, i, t, positive, x1[a0:a1], y1[a0:a1], x2[a0:a1], y2[a0:a1], ar[a0:a1])
                    nonb[q] += (a1 - a0) - c
                    evals[r] += a1 - a0
                if nonb[q] < need and stop[q] < j0:
                    active = True
            j1 = j0
        for q in range(q0, q1):
            r = perm[q]
            if nonb[q] < need:
                # Rare (a row that may win, or a misjudged shell): its own buffers, so that the
                # tiles of counted rows need not hold a float64 row each.
                i = rows[r]
                full = np.empty(n)
                distances.box_row(FT, i, full)
                evals[r] += n
                med[r] = _select(full, k, np.empty(scratch_len))
            else:
                med[r] = np.inf


# --------------------------------------------------------------------------- driver


class _Rows:
    """Full distance rows and counting passes of one featurized input, by reduction.

    Uses the routines brute force uses (:func:`cs_fast.kernels.cpu.distances.min_median`),
    so a row's distances are the same floats whichever path computes them.
    """

    def __init__(self, reduction, F, arg, config=DEFAULT_CONFIG):
        self.reduction = reduction = reductions.get(reduction)
        self.config = config
        self.F = F
        self.arg = arg
        self.n = F.shape[0]
        self.C = None  # float32 box columns (box32_columns), when the float32 bounds hold
        self._open = None  # (cols, C[:, cols]) of the last compaction (bound_rows)
        if reduction.box:
            self.FT = np.ascontiguousarray(F.T)
            if config.float32_boxes:
                self.C = box32_columns(F)
        # No empty box: the float32 counts may take the bare test (count32's `simple`).
        self.positive = self.C is not None and bool(np.all(self.C[4] > 0)) and config.simple_test
        self.tiled = reduction.chunk_estimates or reduction.row_kernels
        # Boxes are cheap enough that the counting pass beats the bounds once they stop paying.
        self.cheap = reduction.box or (not self.tiled and F.shape[1] < _SHORT_ROW)
        self.generic = None if self.tiled else _generic(reduction)

    def full(self, rows, out):
        """Write the distances of ``rows`` to all rows into ``out[:len(rows)]``; return that view."""
        m = rows.shape[0]
        D = out[:m]
        if self.reduction.chunk_estimates:
            distances.l1_rows(self.F, rows, D)
        elif self.reduction.box:
            _box_rows(self.FT, rows, D)
        elif self.tiled:
            # The canonical float64 rows of to_center and of the mixed-precision brute force
            # (distances.rows), so that every path sees the same floats.
            distances.rows(self.reduction, self.F, np.ascontiguousarray(self.F[rows]), self.arg, D)
        else:
            self.generic[0](self.F, rows, self.arg, D)
        return D

    def bound_rows(self, rows, k, best, best_index, buf, buf32, scratch, med, bound, cols=None):
        """Float32 boxes: float32 rows for the bounds (returned), exact medians of rows that may win.

        With ``cols`` the rows hold only the distances to ``cols`` (see :func:`box32_bound_open`);
        without, all ``n`` (the pivots need them).
        """
        m = rows.shape[0]
        if cols is None or not self.config.open_rows:
            box32_bound_rows(self.C, self.FT, rows, k, best, best_index, buf32, buf, scratch, med[:m], bound[:m])
            return buf32[:m]
        if self._open is None or self._open[0] is not cols:  # the caller compacted: copy the open columns
            self._open = (cols, self.C if cols.shape[0] == self.n else np.ascontiguousarray(self.C[:, cols]))
        box32_bound_open(self.C, self.FT, rows, k, best, best_index, self._open[1], buf32, buf, scratch, med[:m],
                          bound[:m], self.positive)
        return buf32[:m, :cols.shape[0]]

    def set_pivot(self, p, eps, tiny, buf):
        """Sort the columns by their distance to row ``p`` (boxes: the one-pivot window count).

        Returns the number of distances evaluated.
        """
        if not self.reduction.box:
            return 0
        if self.C is not None:
            drow = np.empty(self.n, np.float32)
            _box32_row(self.C, p, drow)
            drow = drow.astype(np.float64)
        else:
            drow = self.full(np.array([p], np.int64), buf)[0].copy()
        order = np.argsort(drow, kind="stable")
        cols = self.C if self.C is not None else self.FT
        self.pivot = (np.ascontiguousarray(cols[:, order]), drow[order].copy(), drow.copy(), float(drow.max()))
        self.eps, self.tiny = eps, tiny
        return self.n

    def set_pivots(self, D, best_index, eps, tiny):
        """Float32 boxes: the rows of ``D`` (float32, full) and the best row become bucketed pivots."""
        m = D.shape[0]
        dp = np.empty((m + 1, self.n), np.float32)
        dp[:m] = D
        _box32_row(self.C, best_index, dp[m])
        Cs = np.empty((m + 1, 5, self.n), np.float32)
        start = np.empty((m + 1, _PIVOT_BUCKETS + 2), np.int64)
        _pivot_buckets(self.C, dp, _PIVOT_BUCKETS, Cs, start)
        self.pivots = (Cs, start, dp)
        self.eps, self.tiny = eps, tiny
        return self.n

    def count(self, rows, k, best, best_index, buf, scratch, med, evals):
        """Counting pass with early exit (cheap reductions only)."""
        if getattr(self, "pivots", None) is not None:
            Cs, start, dp = self.pivots
            # |dp[p, c] - dp[p, i]| <= d(i, c) + 2 * (float32 error <= tiny / 7); 4 tiny covers it and float64 rounding.
            reach = 4.0 * self.eps * (2.0 + best) + 4.0 * self.tiny
            cpu_best = best if np.isfinite(best) else np.inf
            if self.config.group > 1:
                m = rows.shape[0]
                pidx = np.empty(m, np.int64)
                pa = np.empty(m, np.float32)
                _nearest_pivot(dp, rows, pidx, pa)
                perm = np.lexsort((pa, pidx))
                ps = pidx[perm]
                # Groups: runs of one pivot, at most config.group rows each.
                cut = np.flatnonzero(np.diff(ps)) + 1
                bounds = [0]
                for a, b in zip(np.concatenate(([0], cut)), np.concatenate((cut, [m]))):
                    bounds.extend(range(int(a) + self.config.group, int(b), self.config.group))
                    bounds.append(int(b))
                groups = np.array(bounds, np.int64)
                work = np.empty((3, m), np.int64)
                _box32_count_groups(Cs, start, _PIVOT_BUCKETS, self.C, self.FT, rows, perm, pidx, pa, groups, k,
                                    cpu_best, best_index, reach, work[0], work[1], work[2], scratch.shape[1], med,
                                    evals, self.positive)
            else:
                _box32_count_pivots(Cs, start, dp, _PIVOT_BUCKETS, self.C, self.FT, rows, k, cpu_best, best_index,
                                    reach, buf, scratch, med, evals, self.positive)
        elif self.reduction.box and getattr(self, "pivot", None) is not None:
            FTs, ds, dpiv, dmax = self.pivot
            # |d(i,c) - |d(p,c) - d(p,i)|| rounding: each distance within eps d + tiny.
            reach = 4.0 * self.eps * (2.0 * dmax + best) + 4.0 * self.tiny
            cpu_best = best if np.isfinite(best) else np.inf
            if self.C is not None:
                _box32_count(FTs, ds, dpiv, self.C, self.FT, rows, k, cpu_best, best_index, reach, buf, scratch, med,
                             evals, self.positive)
            else:
                _box_count_pivot(self.FT, FTs, ds, dpiv, rows, k, cpu_best, best_index, reach, buf, scratch, med,
                                 evals)
        elif self.reduction.box:
            distances.box_fused_tile(self.F, self.FT, rows, k, best, best_index, buf, med, evals)
        else:
            self.generic[1](self.F, rows, k, best, best_index, self.arg, buf, scratch, med, evals)


@kernel(**_KERNEL)
def _next_rows(order, pos, state, m, out):
    """Copy the next up to ``m`` OPEN rows of ``order`` from ``pos`` to ``out``; return (count, pos)."""
    c = 0
    while pos < order.shape[0] and c < m:
        i = order[pos]
        pos += 1
        if state[i] == OPEN:
            out[c] = i
            c += 1
    return c, pos


def _by_bound(lb, cols, lbc, state):
    """The open rows in increasing order of their bounds (bounds only rise: a stale order is correct, only slower)."""
    lb[cols] = lbc
    idx = np.flatnonzero(state == OPEN)
    return idx[np.argsort(lb[idx], kind="stable")]


def _report(stats, n, evaluated, recomputed, rows_full, rows_counted, state):
    """Fill ``stats`` with the work of one search (see :func:`min_median`)."""
    stats.update(
        evaluated=int(evaluated), recomputed=int(recomputed), pairs=n * n, fraction=evaluated / float(n * n),
        rows_full=int(rows_full), rows_counted=int(rows_counted),
        rows_skipped=int(np.count_nonzero(state == SKIPPED)),
    )


def min_median(reduction, F, arg, tile, root=False, stats=None, margin=None, trace=None, slack=None, seen=None,
               config=DEFAULT_CONFIG):
    """Index and value of the smallest lower median of ``D(F, F)``, pruned.

    Parameters
    ----------
    reduction : str
        A pair function of :mod:`cs_fast.kernels.pair` (``"box"``, ``"l1"``, ...).
    F : ndarray (n, d)
        Featurized rows.
    arg : int
        The reduction's integer argument.
    tile : int
        Most rows computed at once (a ``tile x n`` float64 buffer, plus the
        same again of scratch for the selections).
    root : bool
        The distances are squares of a metric (``sqfeat``): bound on the roots.
    stats : dict, optional
        Filled with ``evaluated`` (ordered pairs whose distance was computed,
        at most ``n^2``), ``recomputed`` (further evaluations of pairs already
        counted: float64 refinements of float32 screens, pivot rows; the work
        is ``evaluated + recomputed``), ``pairs`` (``n^2``), ``fraction``
        (``evaluated / pairs``, in [0, 1]), ``rows_full`` (rows computed in full), ``rows_counted``
        (rows given the counting pass) and ``rows_skipped`` (rows never touched).
    margin : (eps, tiny), optional
        Override of :func:`rounding_margin` (tests use it to show that a
        margin that is too small is caught).
    trace : dict, optional
        Filled with the final ``lower_bounds`` (on the roots with ``root``)
        and ``state`` (0 open, 1 computed, 2 skipped) of every row, for tests.
    slack, seen : optional
        The estimate pass of :mod:`cs_fast.kernels.cpu.exact` (as
        :func:`cs_fast.kernels.cpu.distances.min_median`): a row's exact median is
        computed whenever it may be ``<= slack(best)``, rows are skipped only
        when their bound exceeds ``slack(best)``, and ``seen[i]`` receives every
        median computed (inf where only a floor is known: those exceed
        ``slack`` of the best at the time).
    config : PruneConfig, optional
        The tunables (:data:`DEFAULT_CONFIG`): they change the work, never the answer.

    Returns
    -------
    (int, float)
        The same ``(index, radius)`` as :func:`cs_fast.kernels.cpu.distances.min_median`.
    """
    n = F.shape[0]
    k = (n + 1) // 2
    src = _Rows(reduction, F, arg, config)
    eps, tiny = rounding_margin(reduction, F.dtype) if margin is None else margin
    if src.C is not None and margin is None:
        tiny = max(tiny, BOX32_TINY)  # float32 box distances (see box32_columns)
    threads = max(1, numba.get_num_threads())
    tile = max(1, min(int(tile), n))
    # Bounds are applied between tiles: small tiles while bounding prune sooner.
    bound_tile = max(threads, min(tile, _BOUND_TILE))
    buf = np.empty((tile, n))
    buf32 = np.empty((bound_tile, n), np.float32) if src.C is not None else None
    scratch = np.empty((tile, min(n, n // 4 + 4096)))
    # The grouped pivot count holds no row buffer per row: its tiles may be larger than the
    # memory budget's (at 10^6 boxes 26 rows, about 5 per pivot: too few to share a column block).
    ctile = max(tile, min(n, config.count_tile)) if config.group > 1 else tile
    med = np.empty(ctile)
    floor = np.empty(tile)  # lower bounds of the full rows' medians, for _tighten
    evals = np.zeros(ctile, np.int64)
    rows = np.empty(ctile, np.int64)
    lb = np.zeros(n)
    cols = np.arange(n)  # the rows _tighten updates (open at the last compaction); lbc their bounds
    lbc = np.zeros(n)
    state = np.zeros(n, np.uint8)
    best = np.inf
    best_index = n  # above every index: the first candidate always counts
    order = np.random.default_rng(SEED).permutation(n)
    pos = 0
    open_now = open_at_sort = n
    bounding = True  # full rows, exact medians, bounds tightened; else the counting pass
    npiv = 0  # > 0: the next full tile's rows become the counting pass's pivots
    size = min(tile, threads)
    evaluated = recomputed = rows_full = rows_counted = 0
    while open_now > 0:
        if pos >= order.shape[0] or (config.sort and bounding and 2 * open_now < open_at_sort):
            order, pos, open_at_sort = _by_bound(lb, cols, lbc, state), 0, open_now
        grouped = not bounding and getattr(src, "pivots", None) is not None and config.group > 1
        want = npiv if npiv else (min(size, bound_tile) if bounding else (ctile if grouped else size))
        m, pos = _next_rows(order, pos, state, want, rows)
        if m == 0:
            continue
        tr = rows[:m]
        size = min(tile, 2 * size)
        full = bounding or not src.cheap
        compact = False
        # Exact search: below the best (ties by index). Estimate pass: at most slack(best), no ties.
        c_best, c_index = (best, best_index) if slack is None else (np.nextafter(slack(best), np.inf), -1)
        if full and src.C is not None:
            compact = config.open_rows and not npiv  # the pivots' tile needs whole rows
            D = src.bound_rows(tr, k, c_best, c_index, buf, buf32, scratch, med, floor, cols if compact else None)
            evaluated += m * n
            # rows whose float32 screen could not decide are evaluated again in float64
            recomputed += int(np.count_nonzero(np.isfinite(med[:m]))) * n
            rows_full += m
        elif full:
            D = src.full(tr, buf)
            _finish_rows(D, tr, k, c_best, c_index, True, scratch, med[:m], floor[:m])
            evaluated += m * n
            rows_full += m
        else:
            evals[:m] = 0
            src.count(tr, k, c_best, c_index, buf, scratch, med[:m], evals[:m])
            # A row's walk visits distinct columns; beyond n, a row finished in full was evaluated again.
            walked = int(np.minimum(evals[:m], n).sum())
            evaluated += walked
            recomputed += int(evals[:m].sum()) - walked
            rows_counted += m
        state[tr] = DONE
        open_now -= m
        if seen is not None:
            seen[tr] = med[:m]
        # Lexicographic (median, index) minimum over the tile and the best so far.
        for r in range(m):
            v = med[r]
            i = int(tr[r])
            if v < best or (v == best and i < best_index):
                best, best_index = float(v), i
        if full:
            # Skip a row whose bound exceeds the best (ties by index); in the estimate pass, slack(best).
            t_best, t_index = (best, best_index) if slack is None else (slack(best), n)
            skipped = int(_tighten(D, floor[:m], root, eps, tiny, cols, lbc, state, t_best, t_index, _CHUNK,
                                   compact))
            open_now -= skipped
            if 2 * open_now < cols.shape[0]:
                # Compact: closed rows' bounds are final; the pass then only reads open rows.
                lb[cols] = lbc
                cols = np.flatnonzero(state == OPEN)
                lbc = lb[cols]
            if npiv:
                # This tile's rows (random open rows: the core) and the best row become the pivots.
                recomputed += src.set_pivots(D, best_index, eps, tiny)  # the best row, already full
                npiv = 0
                bounding = False
            elif (config.switch and bounding and src.cheap and rows_full >= _MIN_BOUND_ROWS
                  and skipped < config.ratio * m):
                if config.pivot and src.reduction.box and best_index < n and src.C is not None and config.pivots > 0:
                    # One more full tile, of as many rows as the pivots' memory allows.
                    npiv = int(max(1, min(config.pivots, tile, bound_tile, _PIVOT_BYTES // (24 * n))))
                else:
                    bounding = False  # the bounds stopped paying for their rows: count instead
                    if config.pivot and src.reduction.box and best_index < n:
                        recomputed += src.set_pivot(best_index, eps, tiny, buf)  # the best row, already full
    if trace is not None:
        lb[cols] = lbc
        trace.update(lower_bounds=lb, state=state)
    if stats is not None:
        _report(stats, n, evaluated, recomputed, rows_full, rows_counted, state)
    return best_index, best
