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
(:data:`L1_COUNT_MARGIN`; inside it the float64 distance decides), by
default over register-blocked tiles (:func:`_make_blocked_count`: 64 rows a
block, 4 x 4 pairs a thread, the narrow sums of
:mod:`cs_fast.kernels.cuda_blocked`). The other
reductions have no derived and tested margin, so no float32 proxy. With
``best`` the best median so far and ``b`` its row index, row ``i`` can win
only if its lower median (the k-th smallest, ``k = ceil(n / 2)``) is below
``best``, or equal to it with ``i < b`` (ties keep the smallest index; ``b``
may exceed ``i`` because the best is seeded with random rows). That is
``#{j : d(i, j) < best} >= k`` for ``i > b`` and ``#{j : d(i, j) <= best} >=
k`` for ``i < b``; row ``b`` itself (``#{d < best} < k``) is already the best.

Layout: a ``T x T`` block owns ``T`` rows (``threadIdx.y``) and sweeps all
``n`` columns ``T`` at a time (``threadIdx.x``), as the pairwise kernels do.
The long sums (``l1``/``tv``, ``sq``, ``l2``) stage ``T`` features of the
block's rows and of the current ``T`` columns in shared memory and add
chunk sums with the tiled kernel's ``chunk_fn`` (bit-identical sums: same
function, same order, same zero padding); the other reductions call the pair
function on global rows, as the generic kernel does (the ``T`` rows of a
block share each column row through L1). Counting stops early where the
outcome is known, exactly: a row whose count reached ``k`` survives, one
whose count plus the columns left is below ``k`` cannot win; a decided
row's threads stop reducing and the block stops once all its rows are
decided (:data:`COUNT_CHECK_TILES`). Survivors are compacted on the device
(a global atomic hands out slots), so nothing comes back to the host and
``D`` is written only for rows that can still win.
"""

import math

import numpy as np

from .. import cuda as ck

# Every COUNT_CHECK_TILES column tiles a count block checks which of its rows are decided (count
# >= k, or count + columns left < k): a decided row's threads stop reducing (its warp skips the
# arithmetic) and the block stops once all rows are. A row that cannot win is decided after
# n - k + 1 + its count columns, about half the row when its count is small. Each check costs
# three barriers.
COUNT_CHECK_TILES = 4

# float32 count of l1 (tv) on float32 rows. Each term |a - b| is rounded once in float32
# (relative u = 2**-24; |.| exact) and a chunk of T <= 16 non-negative terms summed in float32, so
# a chunk is within relative gamma_T = T u / (1 - T u) of its exact sum; chunks add in float64
# (relative (d / T) 2**-53 < 2**-27 u for d < 2**30). All terms being non-negative, the estimate v
# is within relative r = (T + 1) u (1.0e-6 for T = 16) of the exact sum S, and the float64
# distance d64 the exact pass compares (float64 terms and sums) is within r64 = (d + 2) 2**-53 S
# (under 2.4e-7 S for d < 2**30). So v < b (1 - m) implies d64 < b, and v > b (1 + m) implies
# d64 > b, whenever r + r64 + (a few 2**-53 for the products) <= m: L1_COUNT_MARGIN = 2**-17
# (7.6e-6) leaves about 6x. L1_COUNT_TINY covers subnormal float32 terms (absolute error at most
# d 2**-149 << 2**-100). Inside the margin, or for a non-finite v, the pair is decided by the
# float64 distance itself, computed as the tiled kernel computes it. The register-blocked count sums
# chunks of cuda_blocked.FLUSH = 32 terms in float32 instead: r <= cuda_blocked.bound("l1") = 34 u
# (2.0e-6), still more than 3x inside the margin (_make_blocked_count checks it when it builds).
L1_COUNT_MARGIN = 2.0 ** -17
L1_COUNT_TINY = 2.0 ** -100
L1_FLOAT32_COUNT = True  # False: count l1 in float64 too (the A/B and the tests)
# The float32 l1 count over register-blocked tiles (cuda_blocked's narrow sums: 64 rows a block,
# 4 x 4 pairs a thread); False: the 16 x 16 one-pair-a-thread count_rows32 (the A/B and the tests).
L1_BLOCKED_COUNT = True

cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires (see cuda.py)


def _decide():
    """The early exit's decision, a device function (built once): ``decide(cnt, live, rows, k, left,
    done)`` closes every open row ``q < rows`` whose count reached ``k`` (it survives) or can no longer
    reach it with ``left`` columns to go (it cannot win), and sets ``done[0]`` to 1 when none is open.
    One thread of a block runs it, between barriers."""
    if "count_decide" not in ck._KERNELS:

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

        ck._KERNELS["count_decide"] = decide
    return ck._KERNELS["count_decide"]


def _kernels(reduction):
    """(count_rows, write_rows, T, count_rows32, count_blocked) of one reduction (built once per process).

    ``count_rows32`` (the 16 x 16 float32 count) and ``count_blocked`` (``(kernel, rows a block,
    threads a side)``, :func:`_make_blocked_count`) exist for ``l1`` only, else None.
    """
    global cuda
    key = ("count", reduction)
    if key in ck._KERNELS:
        return ck._KERNELS[key]
    cuda = ck.cuda_module()
    dev = ck._build()[0]
    T = ck._reduction_kernels(reduction)[4]  # the pairwise kernels' tile: the same chunks
    from numba import float32, float64, int32

    shape = (T, T + 1)
    tiled = reduction in ck._TILED
    pair_fn = getattr(dev, reduction + "_pair")
    chunk_fn = dev.l1_pair if reduction == "l1" else dev.sq_pair
    take_sqrt = reduction == "l2"

    if tiled:

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
            return math.sqrt(acc) if take_sqrt else acc

    else:

        @cuda.jit(device=True)
        def dist(F, i, i_ok, active, j0, arg, sA, sB):
            # d(i, j0 + tx) with the pair function on global rows, as the generic kernel.
            j = j0 + cuda.threadIdx.x
            if active and i_ok and j < F.shape[0]:
                return pair_fn(F, i, F, j, arg)
            return 0.0

    check = max(1, int(COUNT_CHECK_TILES))
    decide = _decide()

    def make_count(dist, below, sdt):
        # The count kernel over a distance (dist: the tile's arithmetic, sdt: its staging
        # dtype) and a decision below(v, ...) = "d(i, j) < best, or == best with ties".
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

    @cuda.jit(device=True)
    def below64(v, F, i, j, b, ties, arg):
        return v < b or (ties and v == b)  # v is the float64 distance itself

    count_rows = make_count(dist, below64, float64)

    count_rows32 = count_blocked = None
    if reduction == "l1" and T <= 16:  # the margin's derivation assumes chunks of at most 16
        zero32 = float32(0.0)
        lo_f = 1.0 - L1_COUNT_MARGIN
        hi_f = 1.0 + L1_COUNT_MARGIN
        tiny = L1_COUNT_TINY

        @cuda.jit(device=True)
        def dist32(F, i, i_ok, active, j0, arg, sA, sB):
            # float32 inputs: |a - b| and each T-feature chunk sum in float32 (staged as
            # float32: half the shared-memory traffic of the float64 tiles), chunk sums added
            # in float64. Within relative L1_COUNT_MARGIN of the float64 distance (see there).
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

        count_rows32 = make_count(dist32, below32, float32)
        count_blocked = _make_blocked_count(below32, check, T)

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

    ck._KERNELS[key] = (count_rows, write_rows, T, count_rows32, count_blocked)
    return ck._KERNELS[key]


def _make_blocked_count(below, check, T):
    """``(kernel, tile, BT)``: the float32 ``l1`` count over register-blocked tiles, or None.

    The same decisions as ``count_rows32`` (the float32 estimate decides
    outside :data:`L1_COUNT_MARGIN`, the float64 distance inside it: the
    device function ``below``), with the estimate summed by
    :func:`cs_fast.kernels.cuda_blocked.parts`'s ``tile_sums`` in narrow
    mode: a block of ``BT x BT`` threads owns ``tile = BT R`` rows (64 on a
    GPU), sweeps the columns ``tile`` at a time with ``R x R`` pairs a thread
    in registers (float32 chunks of ``cuda_blocked.FLUSH`` features flushed
    to float64). None where that estimate's error bound does not fit inside
    the margin with the float64 side's (then ``count_rows32`` counts).

    Early exit as in ``count_rows``, checked every ``COUNT_CHECK_TILES x T``
    columns and at least every column tile; a decided row stops counting, a
    thread whose rows are all decided stops reducing (a warp's 8 rows: the
    warp skips the arithmetic) and the block stops once all its rows are
    decided. Rows go in index order, so the ``tile`` rows of a block share
    their column tiles.
    """
    from numba import float32, float64, int32

    from . import blocked as cuda_blocked

    # The estimate is within cuda_blocked.bound("l1") (34 u with FLUSH = 32, the float32 output's
    # rounding included though the count reads the float64 sum) of the exact sum; the float64
    # distance is within (d + 2) 2**-53 < 2**-22 of it for d < 2**30 features (the count's launcher
    # checks d); 2**-22 more covers the products b (1 -+ m).
    if cuda_blocked.bound("l1") + 2.0 ** -21 > L1_COUNT_MARGIN:
        return None
    p = cuda_blocked.parts("l1", wide=False)
    decide = _decide()
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


def count_rows(reduction, F, start, m, arg, k, bound, bound_index, surv, nsurv, med):
    """Launch the fused count of rows ``start .. start + m`` (see :func:`_kernels`).

    ``l1`` (``tv``) on float32 rows counts in float32 with the margin of
    :data:`L1_COUNT_MARGIN` where ``L1_FLOAT32_COUNT`` is on and the rows are
    short enough for it (fewer than 2**30 features); otherwise in float64.
    """
    kernel, _, T, kernel32, blocked = _kernels(reduction)
    rows_a_block, threads = T, T
    if kernel32 is not None and L1_FLOAT32_COUNT and F.dtype == np.float32 and F.shape[1] < 1 << 30:
        kernel = kernel32
        if blocked is not None and L1_BLOCKED_COUNT:
            kernel, rows_a_block, threads = blocked
    ck.launch(kernel, ck._blocks(m, rows_a_block), (threads, threads))(F, start, m, ck.kernel_arg(arg), k, bound,
                                                                      bound_index,
                                                                      surv, nsurv, med)


def write_rows(reduction, F, surv, nsurv, most, arg, D):
    """Launch the survivors' distance rows into ``D[:nsurv[0]]``; ``most`` bounds ``nsurv[0]``."""
    _, kernel, T, _, _ = _kernels(reduction)
    if most > 0:
        ck.launch(kernel, ck._blocks(most, T), (T, T))(F, surv, nsurv, ck.kernel_arg(arg), D)
