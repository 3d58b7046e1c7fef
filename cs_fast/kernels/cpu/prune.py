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
:func:`tighten`); it is evaluated as ``med(j) (1 - 3 eps) - 3 tiny - d(i, j) (1 + eps)``,
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
distance in linear time, :func:`pivot_buckets`): each row takes its nearest
pivot and evaluates only the shell of columns the triangle inequality leaves
undecided (:func:`box32_count_pivots`). Index and radius stay brute force's.
"""

from dataclasses import dataclass

import numba
import numpy as np
from numba import prange

from .. import reductions
from . import bounding, distances
from .bounding import DONE, OPEN, SKIPPED, finish_rows, select, tighten
from .box32 import (BOX32_TINY, PIVOT_BUCKETS, PIVOT_BYTES, box32_bound_open, box32_bound_rows, box32_columns,
                    box32_count, box32_count_groups, box32_count_pivots, box32_row, nearest_pivot, pivot_buckets)
from .runtime import kernel, specialize

# prune's kernels inline distances.py's (box_row) and bounding.py's (select): their sources join the cache key.
_KERNEL = {"depends": (distances, bounding)}


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
_CHUNK = 4096  # bound entries per task of tighten (32 KiB: stays in L1)


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


# --------------------------------------------------------------------------- generic and float64 box kernels


def _count_tile(F, rows, k, best, best_index, arg, buf, scratch, med, evals):
    """The brute-force counting pass on the rows ``rows``, for any pair function.

    Counts a row's distances below its threshold (see :func:`finish_rows`) in
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
            med[r] = select(buf[r], k, scratch[r])
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
            med[r] = select(buf[r], k, scratch[r])
        else:
            med[r] = np.inf


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
        ``PIVOT_BYTES``.
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
        (:func:`box32_count_groups`); 1: one by one.
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
            box32_row(self.C, p, drow)
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
        box32_row(self.C, best_index, dp[m])
        Cs = np.empty((m + 1, 5, self.n), np.float32)
        start = np.empty((m + 1, PIVOT_BUCKETS + 2), np.int64)
        pivot_buckets(self.C, dp, PIVOT_BUCKETS, Cs, start)
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
                nearest_pivot(dp, rows, pidx, pa)
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
                box32_count_groups(Cs, start, PIVOT_BUCKETS, self.C, self.FT, rows, perm, pidx, pa, groups, k,
                                    cpu_best, best_index, reach, work[0], work[1], work[2], scratch.shape[1], med,
                                    evals, self.positive)
            else:
                box32_count_pivots(Cs, start, dp, PIVOT_BUCKETS, self.C, self.FT, rows, k, cpu_best, best_index,
                                    reach, buf, scratch, med, evals, self.positive)
        elif self.reduction.box and getattr(self, "pivot", None) is not None:
            FTs, ds, dpiv, dmax = self.pivot
            # |d(i,c) - |d(p,c) - d(p,i)|| rounding: each distance within eps d + tiny.
            reach = 4.0 * self.eps * (2.0 * dmax + best) + 4.0 * self.tiny
            cpu_best = best if np.isfinite(best) else np.inf
            if self.C is not None:
                box32_count(FTs, ds, dpiv, self.C, self.FT, rows, k, cpu_best, best_index, reach, buf, scratch, med,
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
    floor = np.empty(tile)  # lower bounds of the full rows' medians, for tighten
    evals = np.zeros(ctile, np.int64)
    rows = np.empty(ctile, np.int64)
    lb = np.zeros(n)
    cols = np.arange(n)  # the rows tighten updates (open at the last compaction); lbc their bounds
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
            finish_rows(D, tr, k, c_best, c_index, True, scratch, med[:m], floor[:m])
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
            skipped = int(tighten(D, floor[:m], root, eps, tiny, cols, lbc, state, t_best, t_index, _CHUNK,
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
                    npiv = int(max(1, min(config.pivots, tile, bound_tile, PIVOT_BYTES // (24 * n))))
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
