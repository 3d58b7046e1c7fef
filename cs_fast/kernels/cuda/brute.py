"""The device drivers: ``pairwise``, the streamed exact ``min_median`` and its estimate-and-refine twin.

:func:`min_median` streams row tiles sized to ``max_memory`` and never
writes a distance row that cannot win. The best is first seeded with the
exact medians of ``DeviceConfig.seed_rows`` random rows (so pruning does not
depend on row order). Then, per tile, a counting pass computes each row's
distances and counts those below the best (``<=`` for rows before the best's
index: ties keep the smallest index) without storing them: boxes in float32
with a rigorous margin (:mod:`cs_fast.kernels.cuda.box`: float64 inside it;
a block a row, which stops once the row is decided), every other reduction
with the pairwise kernels' own float64 arithmetic, ``l1`` (``tv``) on
float32 rows in float32 with a rigorous margin, over register-blocked tiles
(:mod:`cs_fast.kernels.cuda.count`; an exact early exit once every row is
decided). Rows that can still win are compacted on the device; only they
get their float64 distance row written and a block radix select
(:mod:`cs_fast.kernels.cuda.radix`); a one-block kernel folds the tile's
(median, index) minimum into a device-resident best. Only the seeds'
medians and the final (index, radius) are copied back.

As the seeded best may come from a row of larger index, rows before the
best's index count ``<= best`` (an equal median with a smaller index still
wins). The selection and the counts are exact, so ``min_median`` equals
brute force on the device's own distances bit for bit, and its radius is
the lower median of the device's ``to_center`` row.
"""

import math

import numpy as np

from .. import reductions
from ..cpu import exact
from . import blocked, box, count, mixed, prune, runtime
from .direct import launch_pairwise, to_center
from .radix import fold_kernel, order_statistic, row_select
from .runtime import DEFAULT, DEFAULT_MAX_MEMORY, REDUCE_THREADS, current_stream, empty, fetch, key_params, upload

SEED_ROWS_SEED = 20261205  # the fixed seed of the rows that seed min_median's best


def pairwise(reduction, A, B, arg, out_dtype, out=None, config=DEFAULT):
    """Full (na, nb) distance matrix of two featurized device arrays.

    Parameters
    ----------
    reduction : str or Reduction
        A reduction of :mod:`cs_fast.kernels.reductions` (``"l1"``,
        ``"box"``, ...). The long sums (``l1``, also ``tv``; ``sq``, ``l2``)
        with float32 inputs and a float32 output run the register-blocked
        kernel of :mod:`cs_fast.kernels.cuda.blocked` in float32 sums
        flushed into float64 every ``config.flush`` features (relative error
        within ``blocked.bound(reduction)``, about 2e-6: inside the
        ``2**-10`` promised for float32 output); otherwise the tiled kernel
        in float64. With CuPy installed, float32 ``sq``/``l2`` go to cuBLAS
        instead (within ``mixed_precision.CDIST_RTOL``). The others run the
        generic kernel.
    A, B : device arrays, shape (na, d) and (nb, d)
        Featurized, C-contiguous, same dtype.
    arg : int
        The reduction's integer argument (groups of ``grouped_l2``).
    out_dtype : dtype
        dtype of the result; sums are float64 unless inputs and output are
        float32 and the reduction is a long sum (see above).
    out : device array, optional
        (na, nb) array of ``out_dtype`` to write into, e.g. a caller's tensor.
    config : DeviceConfig, optional
        The tunables (``flush``).

    Returns
    -------
    device array
        ``out`` (a new device array if none was given).
    """
    R = reductions.get(reduction)
    cp = mixed.cupy() if R.gemm and out is None and np.dtype(out_dtype) == np.float32 else None
    if cp is not None and A.shape[1]:
        with mixed.cupy_stream(cp):
            G = mixed.sq_pairwise_gemm(R, A, B, out_dtype, cp)
        if G is not None:
            return runtime.cuda_module().as_cuda_array(G, sync=False)  # a numba view that keeps the CuPy array alive
    if out is None:
        out = empty((A.shape[0], B.shape[0]), out_dtype)
    if blocked.narrow_applies(R, A, out_dtype):
        return blocked.launch(R, A, B, out, wide=False, flush=config.flush)  # float32 sums, float64 flushes
    return launch_pairwise(R, A, B, arg, out)


def seed_rows(n, rows, count=DEFAULT.seed_rows):
    """Sorted distinct rows whose exact medians seed min_median's best (a fixed-seed random sample).

    ``min(rows, count)`` of the ``n`` rows (``rows``: a tile's, the scratch
    they are selected in); none for ``n`` below ``2 count``: the first tile
    is then as good a start.
    """
    size = min(rows, count)
    if size <= 0 or n < 2 * count:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.random.default_rng(SEED_ROWS_SEED).choice(n, size=size, replace=False)).astype(np.int64)


def min_median(reduction, F, arg, tile=None, max_memory=DEFAULT_MAX_MEMORY, stats=None, slack=None, seen=None,
               seeds=None, config=DEFAULT):
    """Index and value of the smallest lower median of the rows of ``D(F, F)``.

    The lower median of row i is the ``ceil(n / 2)``-th smallest of its n
    distances (itself included). Rows are processed ``tile`` at a time (at
    most as many as fit ``max_memory`` bytes of float64 distances, so the
    n x n matrix is never held unless it fits); each tile's medians are
    selected exactly on the device and folded into a device-resident best.
    Ties keep the smallest index. Returns ``(index, radius)``; ``(-1, inf)``
    for ``n = 0`` as the CPU driver does.

    The best is first seeded with the exact medians of the rows ``seeds``
    (default :func:`seed_rows`: ``config.seed_rows`` random rows for n of at
    least twice that), so pruning does not depend on row order. Then a
    counting pass computes each row's distances and counts those below the
    best without storing them (boxes: float32 with a rigorous margin,
    float64 inside it; ``l1`` on float32 rows likewise, summed by the
    register-blocked narrow tiles of :mod:`cs_fast.kernels.cuda.blocked`;
    every other reduction: float64 with the pairwise kernels' own
    arithmetic, :mod:`cs_fast.kernels.cuda.count`); only rows that can
    still win get their float64 distance row written and the exact radix
    select. The result is brute force over the device's own distance
    matrix, bit for bit. ``stats``: a dict that receives ``seeds`` and
    ``survivors`` (rows whose distance row was written after seeding; one
    host read at the end). ``config``: the tunables
    (:class:`~cs_fast.kernels.cuda.runtime.DeviceConfig`); none changes the
    result.

    ``slack``, ``seen``: the estimate pass of
    :func:`exact_min_median` (as :func:`cs_fast.kernels.cpu.min_median`): rows
    are counted against ``slack(best)`` (``<=``, no tie rule) instead of the
    best, and the host array ``seen`` receives every median selected (inf for
    the rows the count settled). One scalar read per tile for the threshold,
    the tile's medians for ``seen``.

    Raises
    ------
    ValueError
        If ``max_memory`` cannot hold one row of n float64 distances.
    """
    R = reductions.get(reduction)
    n = F.shape[0]
    if n == 0:
        return -1, math.inf
    cp = mixed.cupy() if R.gemm else None
    if cp is not None:
        # float32 cuBLAS estimates (4 bytes) and their float64 form (8) per entry of a tile
        rows = max(1, min(n, int(max_memory) // (12 * n), int(tile) if tile else n))
        with mixed.cupy_stream(cp):
            got = mixed.sq_min_median_gemm(R, F, rows, cp)
        if got is not None:
            return got[0], got[1]
    row_bytes = 8 * (n + 1)  # one distance row and its median
    fit = int(max_memory) // row_bytes
    if fit < 1:
        raise ValueError(
            f"max_memory: received {max_memory} bytes; one row of {n} float64 distances needs "
            f"{row_bytes}; expected at least that"
        )
    rows = min(n, fit, int(tile) if tile else n)
    seeds = seed_rows(n, rows, config.seed_rows) if seeds is None else np.asarray(seeds, dtype=np.int64)
    tiles = _Tiles(R, F, arg, rows, config)
    best, best_index = tiles.seed(seeds, seen)
    # What the count compares with: the best (ties by index), or in the estimate pass slack(best) (<=).
    bound, bound_index = best, best_index
    if slack is not None:
        thr = float(np.nextafter(slack(float(fetch(best)[0])), np.inf))
        bound, bound_index = upload(np.array([thr])), upload(np.array([-1], dtype=np.int64))
    for t, start in enumerate(range(0, n, rows)):
        stop = min(n, start + rows)
        tiles.select(t, start, stop, best, best_index, bound, bound_index)
        if slack is not None:
            seen[start:stop] = fetch(tiles.med[:stop - start])
            bound.copy_to_device(np.array([np.nextafter(slack(float(fetch(best)[0])), np.inf)]),
                                 stream=current_stream())
    if stats is not None:
        stats["seeds"] = len(seeds)
        if not R.box:
            stats["survivors"] = int(fetch(tiles.nsurv)[:tiles.count].sum())
    return int(fetch(best_index)[0]), float(fetch(best)[0])


class _Tiles:
    """The device scratch of one :func:`min_median` call and its per-tile steps (seeding, count, select, fold)."""

    def __init__(self, R, F, arg, rows, config):
        n = F.shape[0]
        self.R, self.F, self.arg, self.config = R, F, arg, config
        self.k = (n + 1) // 2
        self.nbits, self.sign, self.full, view = key_params(np.dtype(np.float64))
        self.D = empty((rows, n), np.float64)
        self.keys = self.D.view(view)
        self.med = empty(rows, np.float64)
        self.med_bits = self.med.view(view)  # selects write a median's bits: the inverse of its order key
        self.threads = runtime.select_threads(n, 256)
        self.fold_threads = 4 if runtime.simulated() else min(REDUCE_THREADS, 1 << max(5, (rows - 1).bit_length()))
        self.count = runtime.blocks(n, rows)
        self.select_slots = row_select(config.shared_keys).select_slots
        self.fold_best = fold_kernel()
        if R.box:
            self.box = box.box_kernels(config.box_margin, config.box_tiny, config.box_check_sweeps,
                                       config.shared_keys)
            self.G = empty((n, 5), np.float32)
            self.no_rows = empty(0, np.int64)
            runtime.launch(self.box.box32, runtime.blocks(n, 128), 128)(F, self.G)
        else:
            self.surv = empty(rows, np.int64)
            self.nsurv = upload(np.zeros(self.count + 1, dtype=np.int64))  # one counter a tile (none reset)
            self.reads = empty(rows, np.int32)

    def _box_rows(self, m, rows, start, bound, bound_index, D, keys):
        runtime.launch(self.box.box_rows, m, self.threads)(
            self.F, self.G, rows, start, self.k, self.nbits, self.sign, self.full, bound, bound_index, D, keys,
            self.med_bits)

    def seed(self, seeds, seen):
        """The device best and its index: the smallest exact median of the ``seeds`` rows (inf, -1 if none)."""
        s = len(seeds)
        if not s:
            return upload(np.array([np.inf])), upload(np.array([-1], dtype=np.int64))
        if self.R.box:  # unbounded: every seed row is written and selected
            self._box_rows(s, upload(seeds), 0, upload(np.array([np.inf])), upload(np.array([-1], dtype=np.int64)),
                           self.D[:s], self.keys[:s])
        else:
            ns = upload(np.array([s], dtype=np.int64))
            count.write_rows(self.R, self.F, upload(seeds), ns, s, self.arg, self.D, self.config)
            runtime.launch(self.select_slots, s, self.threads)(
                self.keys, upload(np.arange(s, dtype=np.int64)), ns, 0, self.k, self.nbits, self.sign, self.full,
                self.med_bits, self.reads)
        # The seeds' exact medians: the smallest, then the smallest index among ties, is the best.
        got = fetch(self.med[:s])
        j = int(np.lexsort((seeds, got))[0])
        if seen is not None:
            seen[seeds] = got
        return upload(np.array([got[j]])), upload(np.array([seeds[j]], dtype=np.int64))

    def select(self, t, start, stop, best, best_index, bound, bound_index):
        """Tile ``t`` (rows ``start .. stop``): count, write and select the rows that can still win, fold."""
        m = stop - start
        if self.R.box:
            self._box_rows(m, self.no_rows, start, best, best_index, self.D[:m], self.keys[:m])
        else:
            nsurv = self.nsurv[t:t + 1]
            count.count_rows(self.R, self.F, start, m, self.arg, self.k, bound, bound_index, self.surv, nsurv,
                             self.med, self.config)
            count.write_rows(self.R, self.F, self.surv, nsurv, m, self.arg, self.D, self.config)
            runtime.launch(self.select_slots, m, self.threads)(
                self.keys, self.surv, nsurv, start, self.k, self.nbits, self.sign, self.full, self.med_bits,
                self.reads)
        runtime.launch(self.fold_best, 1, self.fold_threads)(self.med, m, start, best, best_index)


def exact_min_median(reduction, F, arg, est, tile=None, max_memory=DEFAULT_MAX_MEMORY, method="brute", stats=None,
                     config=DEFAULT):
    """The device twin of :func:`cs_fast.kernels.cpu.exact.min_median`: estimate pass, canonical refinement.

    The estimate pass is :func:`min_median` (or the pruned
    :func:`cs_fast.kernels.cuda.prune.min_median`) on the device estimate
    features with ``slack = est.bound.threshold``; each candidate's canonical
    median is :func:`order_statistic` of its :func:`to_center` row, so the
    result is the device's canonical brute force and the radius the lower
    median of the device's ``to_center(Z, Z[index])``, bit for bit.
    """
    n = F.shape[0]
    k = (n + 1) // 2
    seen = np.full(n, np.inf)
    if method == "pruned":
        prune.min_median(est.reduction, est.data, est.arg, tile=tile, max_memory=max_memory, stats=stats,
                         slack=est.bound.threshold, seen=seen, config=config)
    else:
        min_median(est.reduction, est.data, est.arg, tile=tile, max_memory=max_memory, stats=stats,
                   slack=est.bound.threshold, seen=seen, config=config)

    def medians(rows):
        return [order_statistic(to_center(reduction, F, F[i:i + 1], arg), k) for i in rows]

    return exact.refine(reduction, F, arg, seen, est.bound, stats, medians=medians)
