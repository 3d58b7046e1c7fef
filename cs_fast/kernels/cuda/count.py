"""Fused counting pass of the device ``min_median`` for every reduction but boxes.

Guarantee: :func:`count_rows` decides, for every row ``i`` of a tile, whether
row ``i`` can still beat the best median so far, on exactly the float64
distances that ``cuda.pairwise`` computes (the same pair function, the same
summation order), without writing them anywhere; :func:`write_rows` then
computes the distance rows of the survivors only, bit for bit the rows
``cuda.pairwise`` would write. So a pruned ``min_median`` is the same
``(index, radius)`` as brute force over the device's own distance matrix.

The decision is exact. It is counted in float64, except ``l1`` on float32
rows (``l1`` itself, and the centred estimate features of ``tv``, whose
count is the estimate pass of :func:`cs_fast.kernels.cuda.exact_min_median`:
there ``best`` is the pass's slack threshold), which is counted in float32
with a rigorous relative margin
(``DeviceConfig.l1_count_margin``, derived below; inside it the float64
distance decides), by
default over register-blocked tiles (64 rows a block, 4 x 4 pairs a
thread, the narrow sums of :mod:`cs_fast.kernels.cuda.blocked`). The other
reductions have no derived and tested margin, so no float32 proxy. With
``best`` the best median so far and ``b`` its row index, row ``i`` can win
only if its lower median (the k-th smallest, ``k = ceil(n / 2)``) is below
``best``, or equal to it with ``i < b`` (ties keep the smallest index; ``b``
may exceed ``i`` because the best is seeded with random rows). That is
``#{j : d(i, j) < best} >= k`` for ``i > b`` and ``#{j : d(i, j) <= best} >=
k`` for ``i < b``; row ``b`` itself (``#{d < best} < k``) is already the best.

Layout: a ``T x T`` block owns ``T`` rows (``threadIdx.y``) and sweeps all
``n`` columns ``T`` at a time (``threadIdx.x``), as the pairwise kernels do.
The long sums (records with a ``chunk``: ``l1``/``tv``, ``sq``, ``l2``) stage ``T`` features of the
block's rows and of the current ``T`` columns in shared memory and add
chunk sums with the tiled kernel's ``chunk_fn`` (bit-identical sums: same
function, same order, same zero padding); the other reductions call the pair
function on global rows, as the generic kernel does (the ``T`` rows of a
block share each column row through L1). Counting stops early where the
outcome is known, exactly: a row whose count reached ``k`` survives, one
whose count plus the columns left is below ``k`` cannot win; a decided
row's threads stop reducing and the block stops once all its rows are
decided (checked every ``DeviceConfig.count_check_tiles`` column tiles). Survivors are compacted on the device
(a global atomic hands out slots), so nothing comes back to the host and
``D`` is written only for rows that can still win.

The margin of the float32 count of l1 (tv) on float32 rows. Each term |a - b| is rounded once in float32
(relative u = 2**-24; |.| exact) and a chunk of T <= 16 non-negative terms summed in float32, so
a chunk is within relative gamma_T = T u / (1 - T u) of its exact sum; chunks add in float64
(relative (d / T) 2**-53 < 2**-27 u for d < 2**30). All terms being non-negative, the estimate v
is within relative r = (T + 1) u (1.0e-6 for T = 16) of the exact sum S, and the float64
distance d64 the exact pass compares (float64 terms and sums) is within r64 = (d + 2) 2**-53 S
(under 2.4e-7 S for d < 2**30). So v < b (1 - m) implies d64 < b, and v > b (1 + m) implies
d64 > b, whenever r + r64 + (a few 2**-53 for the products) <= m: the default margin 2**-17
(7.6e-6) leaves about 6x. DeviceConfig.l1_count_tiny covers subnormal float32 terms (absolute error at most
d 2**-149 << 2**-100, the default tiny). Inside the margin, or for a non-finite v, the pair is decided by the
float64 distance itself, computed as the tiled kernel computes it. The register-blocked count sums
chunks of DeviceConfig.flush = 32 terms in float32 instead: r <= blocked.bound("l1") = 34 u
(2.0e-6), still more than 3x inside the margin (CountKernels.blocked_fits records the check).
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from .. import reductions
from . import blocked, direct, runtime
from .radix import device_functions
from .runtime import DEFAULT

cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires


class CountKernels(NamedTuple):
    """The fused count kernels of one reduction (see :func:`kernels`)."""

    count_rows: object  # the float64 count, T rows a block
    write_rows: object  # the survivors' float64 distance rows
    T: int  # the pairwise kernels' tile: the same chunks
    count_rows32: object  # l1 only: the 16 x 16 float32 count within the margin, else None
    count_blocked: object  # l1 only: (kernel, rows a block, threads a side) over register-blocked tiles, else None
    blocked_fits: bool  # whether count_blocked's error bound fits inside the margin: only then may it count


@functools.lru_cache(maxsize=None)
def decide_function():
    """The early exit's decision, a device function (built once): ``decide(cnt, live, rows, k, left,
    done)`` closes every open row ``q < rows`` whose count reached ``k`` (it survives) or can no longer
    reach it with ``left`` columns to go (it cannot win), and sets ``done[0]`` to 1 when none is open.
    One thread of a block runs it, between barriers."""
    global cuda
    cuda = runtime.cuda_module()

    @cuda.jit(device=True)
    def decide(cnt, live, rows, k, left, done):
        open_rows = 0
        for q in range(rows):
            if live[q] == 1:
                if cnt[q] >= k or cnt[q] + left < k:
                    live[q] = 0
                else:
                    open_rows += 1
        done[0] = 1 if open_rows == 0 else 0

    return decide


def kernels(reduction, small=None, config=DEFAULT):
    """The :class:`CountKernels` of ``reduction`` (a name or record), built once per configuration.

    ``small``: the simulator's block sizes (default
    :func:`cs_fast.kernels.cuda.runtime.simulated`); ``config``: the
    :class:`~cs_fast.kernels.cuda.runtime.DeviceConfig` whose
    ``count_check_tiles``, ``l1_count_margin``, ``l1_count_tiny`` and ``flush``
    are compiled in. ``count_rows32`` and ``count_blocked`` exist for the
    records with ``chunk_estimates`` (``l1``) only, else None;
    ``count_blocked`` decides soundly only where ``blocked_fits``.
    """
    R = reductions.get(reduction)
    small = runtime.simulated() if small is None else bool(small)
    if not R.chunk_estimates:
        return _kernels(R, small, int(config.count_check_tiles), None, None, None)
    return _kernels(R, small, int(config.count_check_tiles), float(config.l1_count_margin),
                    float(config.l1_count_tiny), int(config.flush))


@functools.lru_cache(maxsize=None)
def _kernels(R, small, check_tiles, margin, tiny, flush):
    global cuda
    dev = device_functions()
    cuda = runtime.cuda_module()
    T = direct.reduction_kernels(R, small).T  # the pairwise kernels' tile: the same chunks
    from numba import float32, float64

    check = max(1, check_tiles)
    decide = decide_function()
    if R.tiled:
        dist = _tiled_dist(T, getattr(dev, R.chunk), R.root)
    else:
        dist = _pair_dist(getattr(dev, R.pair))

    @cuda.jit(device=True)
    def below64(v, F, i, j, b, ties, arg):
        return v < b or (ties and v == b)  # v is the float64 distance itself

    count_rows = _count_kernel(dist, below64, float64, T, check, decide)
    count_rows32 = count_blocked = None
    fits = False
    if R.chunk_estimates and T <= 16:  # the margin's derivation assumes chunks of at most 16
        dist32, below32 = _float32_l1(T, getattr(dev, R.chunk), margin, tiny)
        count_rows32 = _count_kernel(dist32, below32, float32, T, check, decide)
        count_blocked = _blocked_count(R, below32, check, T, flush, small)
        # The blocked estimate is within blocked.bound(R, flush) (34 u with flush = 32, the float32
        # output's rounding included though the count reads the float64 sum) of the exact sum; the
        # float64 distance is within (d + 2) 2**-53 < 2**-22 of it for d < 2**30 features (the count's
        # launcher checks d); 2**-22 more covers the products b (1 -+ m).
        fits = blocked.bound(R, flush) + 2.0 ** -21 <= margin
    return CountKernels(count_rows, _write_rows(dist, T), T, count_rows32, count_blocked, fits)


def _tiled_dist(T, chunk_fn, root):
    """The long sums' ``dist`` device function: the tiled kernel's chunks, staged in shared memory."""
    from numba import float64

    @cuda.jit(device=True)
    def dist(F, i, i_ok, active, j0, arg, sA, sB):
        # d(i, j0 + tx) exactly as the tiled pairwise kernel sums it: T-feature chunks
        # staged as float64 with out-of-range entries zero on both sides, each chunk
        # reduced by chunk_fn (padding column included), chunk sums added in float64.
        # Every thread stages (the column rows are shared by the block's rows); only
        # active rows reduce (a decided row's warp skips the arithmetic).
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        n = F.shape[0]
        d = F.shape[1]
        acc = 0.0
        for k0 in range(0, d, T):
            kk = k0 + tx
            sA[ty, tx] = float64(F[i, kk]) if (i_ok and kk < d) else 0.0
            sB[ty, tx] = float64(F[j0 + ty, kk]) if (j0 + ty < n and kk < d) else 0.0
            cuda.syncthreads()
            if active:
                acc += chunk_fn(sA, ty, sB, tx, arg)
            cuda.syncthreads()
        return math.sqrt(acc) if root else acc

    return dist


def _pair_dist(pair_fn):
    """The other reductions' ``dist`` device function: the pair function on global rows."""

    @cuda.jit(device=True)
    def dist(F, i, i_ok, active, j0, arg, sA, sB):
        # d(i, j0 + tx) with the pair function on global rows, as the generic kernel.
        j = j0 + cuda.threadIdx.x
        if active and i_ok and j < F.shape[0]:
            return pair_fn(F, i, F, j, arg)
        return 0.0

    return dist


def _count_kernel(dist, below, sdt, T, check, decide):
    """The count kernel over a distance (dist: the tile's arithmetic, sdt: its staging dtype) and a
    decision below(v, ...) = "d(i, j) < best, or == best with ties"."""
    from numba import int32

    shape = (T, T + 1)  # a shared array's shape must be a compile-time constant

    @cuda.jit
    def count_rows(F, start, m, arg, k, bound, bound_index, surv, nsurv, med):
        # Rows start + r, r < m, T a block: med[r] = inf, and the rows that can still win
        # (see the module docstring) appended to surv (nsurv[0] counts them).
        sA = cuda.shared.array(shape, sdt)
        sB = cuda.shared.array(shape, sdt)
        cnt = cuda.shared.array(T, int32)
        live = cuda.shared.array(T, int32)  # 1 while the row's decision is open
        done = cuda.shared.array(1, int32)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        r = cuda.blockIdx.x * T + ty
        i_ok = r < m
        i = start + r if i_ok else start  # a valid row for the (discarded) work of idle threads
        n = F.shape[0]
        b = bound[0]
        ties = i < bound_index[0]
        if tx == 0:
            sA[ty, T] = 0.0  # the padding column stays zero: it adds |0 - 0| = 0
            sB[ty, T] = 0.0
            cnt[ty] = 0
            live[ty] = 1 if i_ok else 0
        cuda.syncthreads()
        active = live[ty] == 1
        c = 0
        step = 0
        for j0 in range(0, n, T):
            v = dist(F, i, i_ok, active, j0, arg, sA, sB)
            if active and j0 + tx < n and below(v, F, i, j0 + tx, b, ties, arg):
                c += 1
            step += 1
            if step == check and j0 + T < n:
                # Early exit, exact: a row is decided once its count reaches k (it survives) or
                # can no longer reach k with the n - j0 - T columns left (it cannot win). A
                # decided row stops reducing; the block stops once all its rows are decided.
                step = 0
                cuda.atomic.add(cnt, ty, c)
                c = 0
                cuda.syncthreads()
                if tx == 0 and ty == 0:
                    decide(cnt, live, T, k, n - j0 - T, done)
                cuda.syncthreads()
                stop = done[0] == 1
                active = live[ty] == 1
                cuda.syncthreads()  # done and live are read by all before the next check writes them
                if stop:
                    break
        cuda.atomic.add(cnt, ty, c)
        cuda.syncthreads()
        if tx == 0 and i_ok:
            med[r] = math.inf  # a survivor's median is written by the select that follows
            if cnt[ty] >= k:
                surv[cuda.atomic.add(nsurv, 0, 1)] = i
    return count_rows


def _float32_l1(T, chunk_fn, margin, tiny):
    """``(dist32, below32)``: the float32 ``l1`` estimate and its decision within the relative ``margin``."""
    from numba import float32, float64

    zero32 = float32(0.0)
    lo_f = 1.0 - margin
    hi_f = 1.0 + margin

    @cuda.jit(device=True)
    def dist32(F, i, i_ok, active, j0, arg, sA, sB):
        # float32 inputs: |a - b| and each T-feature chunk sum in float32 (staged as
        # float32: half the shared-memory traffic of the float64 tiles), chunk sums added
        # in float64. Within the relative margin of the float64 distance (module docstring).
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        n = F.shape[0]
        d = F.shape[1]
        acc = 0.0
        for k0 in range(0, d, T):
            kk = k0 + tx
            sA[ty, tx] = F[i, kk] if (i_ok and kk < d) else zero32
            sB[ty, tx] = F[j0 + ty, kk] if (j0 + ty < n and kk < d) else zero32
            cuda.syncthreads()
            if active:
                c = zero32
                for q in range(T):
                    c += abs(sA[ty, q] - sB[tx, q])
                acc += float64(c)
            cuda.syncthreads()
        return acc

    @cuda.jit(device=True)
    def exact64(F, i, j):
        # The float64 distance bit for bit as the tiled kernel sums it: chunk_fn over the
        # same T-feature chunks (the tiled kernel's zero padding adds +0.0, a no-op).
        d = F.shape[1]
        acc = 0.0
        for k0 in range(0, d, T):
            acc += chunk_fn(F[:, k0:k0 + T], i, F[:, k0:k0 + T], j, 0)
        return acc

    @cuda.jit(device=True)
    def below32(v, F, i, j, b, ties, arg):
        # Outside the margin the float32 estimate v decides; inside it, or where v is not
        # finite (float32 overflow), the exact float64 distance does (rare: a pair within
        # about 1e-5 of the best).
        if v < b * lo_f - tiny:
            return True
        if v > b * hi_f + tiny and v < math.inf:
            return False
        e = exact64(F, i, j)
        return e < b or (ties and e == b)

    return dist32, below32


def _write_rows(dist, T):
    """``write_rows(F, surv, nsurv, arg, D)``: the survivors' distance rows, with the count's own ``dist``."""
    from numba import float64

    shape = (T, T + 1)

    @cuda.jit
    def write_rows(F, surv, nsurv, arg, D):
        # D[s] = the distance row of row surv[s], s < nsurv[0], T rows a block (blocks past
        # the survivors return at once: the grid is sized for a whole tile).
        sA = cuda.shared.array(shape, float64)
        sB = cuda.shared.array(shape, float64)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        ns = nsurv[0]
        if cuda.blockIdx.x * T >= ns:
            return  # uniform over the block: before any barrier
        s = cuda.blockIdx.x * T + ty
        s_ok = s < ns
        i = surv[s] if s_ok else surv[0]
        n = F.shape[0]
        if tx == 0:
            sA[ty, T] = 0.0
            sB[ty, T] = 0.0
        cuda.syncthreads()
        for j0 in range(0, n, T):
            v = dist(F, i, s_ok, True, j0, arg, sA, sB)
            if s_ok and j0 + tx < n:
                D[s, j0 + tx] = v  # adjacent threads, adjacent columns: coalesced stores

    return write_rows


def _blocked_count(Rec, below, check, T, flush, small):
    """``(kernel, tile, BT)``: the float32 ``l1`` count over register-blocked tiles.

    The same decisions as ``count_rows32`` (the float32 estimate decides
    outside the relative ``margin``, the float64 distance inside it: the
    device function ``below``), with the estimate summed by
    :func:`cs_fast.kernels.cuda.blocked.parts`'s ``tile_sums`` in narrow
    mode: a block of ``BT x BT`` threads owns ``tile = BT R`` rows (64 on a
    GPU), sweeps the columns ``tile`` at a time with ``R x R`` pairs a thread
    in registers (float32 chunks of ``flush`` features flushed to float64).
    Sound only where that estimate's error bound fits inside the margin with
    the float64 side's (``CountKernels.blocked_fits``; else ``count_rows32``
    counts).

    Early exit as in ``count_rows``, checked every ``check x T`` columns and
    at least every column tile; a decided row stops counting, a thread whose
    rows are all decided stops reducing (a warp's 8 rows: the warp skips the
    arithmetic) and the block stops once all its rows are decided. Rows go in
    index order, so the ``tile`` rows of a block share their column tiles.
    """
    from numba import float32, float64, int32

    p = blocked.parts(Rec, False, flush, small)
    decide = decide_function()
    tile_sums, BT, R, tile, sshape = p["tile_sums"], p["T"], p["R"], p["tile"], p["sshape"]
    rshape = (R, R)
    nthreads = BT * BT
    every = max(1, (check * T) // tile)  # column tiles between checks

    @cuda.jit
    def count_blocked(F, start, m, arg, k, bound, bound_index, surv, nsurv, med):
        sA = cuda.shared.array(sshape, float32)
        sB = cuda.shared.array(sshape, float32)
        cnt = cuda.shared.array(tile, int32)
        live = cuda.shared.array(tile, int32)  # 1 while the row's decision is open
        done = cuda.shared.array(1, int32)
        lo = cuda.local.array(rshape, float32)
        hi = cuda.local.array(rshape, float64)
        a = cuda.local.array(R, float32)
        bb = cuda.local.array(R, float32)
        c = cuda.local.array(R, int32)  # this thread's counts of its R rows since the last check
        tid = cuda.threadIdx.y * BT + cuda.threadIdx.x
        r0 = cuda.blockIdx.x * tile
        rows = min(tile, m - r0)  # rows start + r0 .. + rows of this block
        i0 = start + r0
        n = F.shape[0]
        b = bound[0]
        bi = bound_index[0]
        for q in range(tid, tile, nthreads):
            cnt[q] = 0
            live[q] = 1 if q < rows else 0
        for r in range(R):
            c[r] = 0
        cuda.syncthreads()
        step = 0
        for j0 in range(0, n, tile):
            # A thread whose R rows are all decided skips the arithmetic (a warp holds 8 rows: the
            # warp skips once all 8 are decided); it still stages its share and meets the barriers.
            active = False
            for r in range(R):
                q = cuda.threadIdx.y + r * BT
                if q < rows and live[q] == 1:
                    active = True
            tile_sums(F, i0 + rows, i0, F, n, j0, sA, sB, lo, hi, a, bb, active)
            for r in range(R):
                q = cuda.threadIdx.y + r * BT
                if q < rows and live[q] == 1:
                    i = i0 + q
                    for cc in range(R):
                        j = j0 + cuda.threadIdx.x + cc * BT
                        if j < n and below(hi[r, cc], F, i, j, b, i < bi, arg):
                            c[r] += 1
            step += 1
            if step == every and j0 + tile < n:
                # Exact early exit, as count_rows: decided once the count reached k, or can no
                # longer reach it with the n - j0 - tile columns left.
                step = 0
                for r in range(R):
                    cuda.atomic.add(cnt, cuda.threadIdx.y + r * BT, c[r])
                    c[r] = 0
                cuda.syncthreads()
                if tid == 0:
                    decide(cnt, live, tile, k, n - j0 - tile, done)
                cuda.syncthreads()
                stop = done[0] == 1
                cuda.syncthreads()  # done and live are read by all before the next check writes them
                if stop:
                    break
        for r in range(R):
            cuda.atomic.add(cnt, cuda.threadIdx.y + r * BT, c[r])
        cuda.syncthreads()
        for q in range(tid, rows, nthreads):
            med[r0 + q] = math.inf  # a survivor's median is written by the select that follows
            if cnt[q] >= k:
                surv[cuda.atomic.add(nsurv, 0, 1)] = i0 + q

    return count_blocked, tile, BT


def count_rows(reduction, F, start, m, arg, k, bound, bound_index, surv, nsurv, med, config=DEFAULT):
    """Launch the fused count of rows ``start .. start + m`` (see :func:`kernels`).

    ``l1`` (``tv``) on float32 rows counts in float32 within
    ``config.l1_count_margin`` where ``config.l1_float32_count`` is on and the
    rows are short enough for it (fewer than 2**30 features), over
    register-blocked tiles where ``config.l1_blocked_count`` is on; otherwise
    in float64.
    """
    K = kernels(reduction, config=config)
    kernel, rows_a_block, threads = K.count_rows, K.T, K.T
    if K.count_rows32 is not None and config.l1_float32_count and F.dtype == np.float32 and F.shape[1] < 1 << 30:
        kernel = K.count_rows32
        if K.count_blocked is not None and K.blocked_fits and config.l1_blocked_count:
            kernel, rows_a_block, threads = K.count_blocked
    runtime.launch(kernel, runtime.blocks(m, rows_a_block), (threads, threads))(
        F, start, m, runtime.kernel_arg(arg), k, bound, bound_index, surv, nsurv, med)


def write_rows(reduction, F, surv, nsurv, most, arg, D, config=DEFAULT):
    """Launch the survivors' distance rows into ``D[:nsurv[0]]``; ``most`` bounds ``nsurv[0]``."""
    K = kernels(reduction, config=config)
    if most > 0:
        runtime.launch(K.write_rows, runtime.blocks(most, K.T), (K.T, K.T))(F, surv, nsurv, runtime.kernel_arg(arg), D)
