"""CUDA kernels (numba.cuda): compute only, no validation, no policy.

Same drivers as :mod:`cs_fast.kernels.cpu`, on numba device arrays (the
bindings wrap torch / CuPy tensors with ``cuda.as_cuda_array``; nothing is
copied to the host except the scalars a driver returns). Inputs are featurized,
C-contiguous 2-D arrays (see :mod:`cs_fast.metrics`); distances are
accumulated in float64, except float32 ``cdist``/``pdist`` of the long sums
(float32 chunks flushed into float64, within a derived bound).

Nothing compiles, and numba-cuda is not even imported, until the first call:
importing this module works on a machine without numba-cuda, and a call there
raises an ``ImportError`` that names the missing package.

Kernels and why they look the way they do:

* generic 2-D grid kernel, one thread per pair, built from the retargeted
  pair function of :mod:`cs_fast.kernels.pair` (one definition of the math,
  two targets). Serves boxes, masks, angular, ``tv``/``tv2`` on the images
  themselves (the samples' difference first) and weighted ``sqfeat``
  (``wsq``), and grouped-l2 on tv's estimate features.
* register-blocked kernel for the long sums ``l1`` (also ``tv`` after its
  finite-difference transform), ``sq`` and ``l2``
  (:mod:`cs_fast.kernels.cuda_blocked`): a 16 x 16 block owns a 64 x 64
  tile of outputs, 4 x 4 a thread in registers, and stages 16 features of
  its 64 + 64 rows a step in shared memory, feature-major (coalesced global
  reads, no bank conflicts; each staged value feeds 4 outputs). Two modes
  from one factory: float32 inputs with a float32 output (``cdist``/``pdist``)
  sum float32 terms in float32, flushed into float64 every
  ``cuda_blocked.FLUSH`` = 32 features (relative error at most
  ``cuda_blocked.bound``: 34 u, 36 u, 19 u for l1, sq, l2, u = 2**-24, derived
  there); everything else (float64 output, float64 inputs, every distance
  tile of ``min_median`` and the pruned center) sums float64 terms, flushed
  into a second float64 sum. An entry depends only on its two rows, so
  brute force and the pruned center select from the same floats. No GEMM
  path without CuPy: the direct sum has no cancellation to guard.
* the previous 16 x 16 shared-memory tiled kernel (one output a thread,
  float64 chunk sums: shared-memory bound) stays for comparison
  (``_launch_pairwise(..., tiled=True)``, ``bench/gpu_model.py``).
* :func:`to_center` of the long sums: a warp per row, lane ``l`` summing the
  ``T``-feature chunks ``l, l + 32, ...`` exactly as the tiled kernel sums a
  chunk, and lane 0 adding the chunk sums in chunk order: the tiled kernel's
  bits. ``paired`` likewise (one thread a pair).
* :func:`min_median` streams row tiles sized to ``max_memory`` and never
  writes a distance row that cannot win. The best is first seeded with the
  exact medians of ``SEED_ROWS`` random rows (so pruning does not depend on
  row order). Then, per tile, a counting pass computes each row's distances
  and counts those below the best (``<=`` for rows before the best's index:
  ties keep the smallest index) without storing them: boxes in float32 with
  a rigorous margin (``BOX_MARGIN``, float64 inside it; a block a row, which
  stops once the row is decided, checked every ``BOX_CHECK_SWEEPS`` sweeps), every other
  reduction with the pairwise kernels' own float64 arithmetic, ``l1``
  (``tv``) on float32 rows in float32 with a rigorous margin, over
  register-blocked tiles (:mod:`cs_fast.kernels.cuda_count`: ``T x T``
  blocks, ``T`` rows a block, or 64 rows and 4 x 4 pairs a thread for the
  blocked float32 count; an exact early exit once every row is decided). Rows that can still win
  are compacted on the device; only they get their float64 distance row
  written and a block radix select; a one-block kernel folds the tile's
  (median, index) minimum into a device-resident best. Only the seeds'
  medians and the final (index, radius) are copied back.
  ``fused=False`` keeps the old path (every row written and selected), the
  reference the tests compare with bit for bit.
* :func:`order_statistic` (R of a certificate, m = 10**6): the same radix
  select over many blocks, a histogram per pass merged with global atomics;
  the value is the inverse of the final key (no find pass).

Where work goes: every launch, copy and scratch allocation reads the stream
and allocator of :func:`launch_context`, which the bindings set per call to
the caller's torch / CuPy stream and caching pool
(:func:`cs_fast.bindings.arrays.launch_settings`).
* ``sq``/``l2`` with CuPy installed (the ``cuda`` extra): a float32 cuBLAS
  GEMM on centred rows with the bound of
  :mod:`cs_fast.kernels.mixed_precision` (TF32 only when ``CUPY_TF32`` turns
  it on, and then counted by the bound), float64 refinement on the device
  (:func:`sq_min_median_gemm`, :func:`sq_pairwise_gemm`): ``min_median``
  stays brute force over the device's own ``to_center`` distances bit for
  bit; float32 ``cdist`` stays within ``mixed_precision.CDIST_RTOL``.

Selection is an exact MSB-first radix select over the IEEE bit patterns,
8 bits per pass. A float's bits, with the sign bit flipped for non-negative
values and all bits flipped for negative ones, order as unsigned integers
exactly as the floats do, so 8 histogram passes (4 for float32) over the row
pin down the bit pattern of the k-th smallest value; the value is the
inverse of that key (the same bits: no find pass), so the result is bit for
bit an element of the row and equals a CPU quickselect / ``np.sort`` on the
same distances. Once the candidates (keys matching the digits decided so
far) fit ``SHARED_KEYS`` (2048) keys, the next pass copies them into shared
memory and the remaining passes read only those: a row of at most 2048
distances is read from global memory once, a longer one until its
candidates fit (typically 2 or 3 passes). Why this rather than the
alternatives: it needs no scratch copy of the row in global memory (the row
is only read, never reordered), a fixed number of passes independent of the
data (quickselect on a GPU diverges and needs a buffer; a sort is
O(n log n) and needs one too), and 8 passes instead of the 64 of a
bit-by-bit bisection. A 256-bin histogram lives in shared memory, filled
with shared atomics. (``select_rows``, the unfused path's select and the
pruned center's, still reads its value back with a find pass.)

Like the CPU driver, a row with fewer than ``k`` distances strictly below
``best`` (the best median so far, kept on the device) skips the selection:
its median is ``>= best`` and it cannot win. As the seeded best may come
from a row of larger index, rows before the best's index count ``<= best``
(an equal median with a smaller index still wins).

Rounding: one arithmetic per pair on the device. ``pairwise`` (float64
output), ``to_center``, ``paired``, the fused counts, the pruned center and
the certification distances compute a pair the same way: the long sums in the
tiled kernel's chunk order, everything else with the pair function. The
selection and the counts are exact, so ``min_median`` equals brute force on
the device's own distances bit for bit, and its radius is the lower median of
the device's ``to_center`` row. The fused count calls the very device
functions of ``pairwise`` in the same order (should the float64 tiled kernel
change its summation order, :mod:`cs_fast.kernels.cuda_count` and
``to_center`` must follow; ``tests/cuda_sim/test_fused_count.py`` and
``tests/cuda_sim/test_exact_device.py`` fail until they do). ``tv``'s fast
kernels read its centred estimate features: :func:`exact_min_median` searches
on them with a slack and refines the candidates with the canonical distances.
The distances match the CPU's within each metric's stated bound, not bit for
bit: each backend sums the long rows in its own order, and NVVM contracts
``a * b + c`` into FMA even without fastmath (numba-cuda has no switch for
``-fma=0``; the same code contracts the same way in every kernel that calls
it; under the simulator nothing contracts). ``d(x, x) = 0`` still holds for
every reduction.

Under the simulator (``NUMBA_ENABLE_CUDASIM=1``), where every CUDA thread is
a Python thread, tiles are ``SIM_TILE`` wide and select blocks 4 threads, so
small test inputs still cross tile boundaries; every kernel is generic in
both sizes.
"""

import contextlib
import contextvars
import math
import os

import numpy as np

from .. import mixed_precision as mp
from .. import pair, select
from ..retarget import retarget

TILE = 16  # 2-D blocks are TILE x TILE threads; the tiled kernels stage TILE features a step
SIM_TILE = 4  # under the simulator (a Python thread per CUDA thread) small blocks keep tests fast
LANES = 32  # to_center of the long reductions: a warp of lanes per row
SIM_LANES = 4
ROWS_PER_BLOCK = 8  # rows (warps) per to_center block: 256 threads on a GPU
SELECT_BLOCKS = 528  # order_statistic's most histogram blocks: 4 per SM of an H100 (132 SMs)
SELECT_PER_THREAD = 8  # values per thread and pass before another block is worth launching
RADIX = 8  # bits per radix-select pass: a 256-bin shared histogram
BINS = 1 << RADIX
REDUCE_THREADS = 256  # threads of the one-block argmin kernel (a power of two)
# Keys of a row's radix select held in shared memory once its candidates fit (8 bytes each:
# 16 KiB a block; 8 blocks of 256 threads an SM still fit an H100's 228 KiB). Rows up to this
# long are read from global memory once; longer ones until the candidates drop below it.
SHARED_KEYS = 2048
DEFAULT_MAX_MEMORY = 1 << 30  # bytes of device scratch min_median may hold at once
_MAX_GRID_Y = 65535  # CUDA's limit on gridDim.y

_TILED = ("l1", "sq", "l2")
_KERNELS = {}

_U0 = np.uint64(0)
_INF_BITS = np.uint64(0x7FF0000000000000)  # float64 +inf
_DIGIT = np.uint64(BINS - 1)


cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires

# Where device work goes: the stream every launch and copy is queued on, and the allocator
# of every scratch array. The bindings decide both per call (bindings.arrays.launch_settings:
# the caller's current torch / CuPy stream and that library's caching pool) and set them for
# the call with launch_context(); kernels stay policy-free and only read them. Default:
# numba's own allocator on stream 0 (the legacy default stream).
_LAUNCH = contextvars.ContextVar("cs_fast_cuda_launch", default=(0, None))


@contextlib.contextmanager
def launch_context(stream=0, allocate=None):
    """Queue every launch, copy and allocation of this module on ``stream`` inside the block.

    ``allocate(shape, dtype)`` returns an empty device array (a pool's); None
    is numba's ``device_array``. Nested contexts restore the outer one on exit.
    """
    token = _LAUNCH.set((stream, allocate))
    try:
        yield
    finally:
        _LAUNCH.reset(token)


def current_stream():
    """The stream launches go to (0: numba's default stream)."""
    return _LAUNCH.get()[0]


def launch(kernel, grid, block):
    """``kernel[grid, block]`` configured for the current stream."""
    return kernel[grid, block, _LAUNCH.get()[0]]


def empty(shape, dtype):
    """An uninitialised device array from the current allocator, bound to the current stream."""
    stream, allocate = _LAUNCH.get()
    shape = tuple(int(s) for s in shape) if isinstance(shape, tuple) else (int(shape),)
    if allocate is not None and int(np.prod(shape)) > 0:
        return allocate(shape, np.dtype(dtype))
    return cuda_module().device_array(shape, dtype=np.dtype(dtype), stream=stream)


def upload(host):
    """A device copy of a host array, queued on the current stream (pageable source: staged at once)."""
    host = np.ascontiguousarray(host)
    out = empty(host.shape, host.dtype)
    if host.size:
        out.copy_to_device(host, stream=current_stream())
    return out


def fetch(arr):
    """The host copy of a device array, after everything queued before it on the current stream."""
    stream = current_stream()
    host = arr.copy_to_host(stream=stream)
    if stream != 0:
        stream.synchronize()
    return host


def kernel_arg(arg):
    """A reduction's parameter as the kernels take it: an int, or (weighted sqfeat) the device weights as they are."""
    return arg if hasattr(arg, "shape") else int(arg)


def cuda_module():
    """Return ``numba.cuda``, or raise an ImportError that says what to install."""
    global cuda
    if cuda is not None:
        return cuda
    try:
        from numba import cuda as module
    except ImportError as err:
        raise ImportError(
            "cs_fast.kernels.cuda needs the numba-cuda package (the CUDA target of numba); "
            "install it with: pip install -e '.[cuda]' in the cs_fast clone (or: pip install numba-cuda)"
        ) from err
    cuda = module
    return cuda


# --------------------------------------------------------------------------- device code
# Compiled on first call. The kernels name `cuda` as a module global (not a closure
# variable): the module must import without numba-cuda, and the simulator swaps in
# its thread-local fake of numba.cuda by rewriting the kernel's globals.


def _build():
    """Compile-on-first-call kernels shared by every reduction (built once)."""
    if "common" in _KERNELS:
        return _KERNELS["common"]
    cuda_module()
    from numba import float64, int32, int64, uint64

    dev = retarget([pair, select], cuda.jit(device=True))
    device = cuda.jit(device=True)
    shared_keys = SHARED_KEYS  # a compile-time constant (tests rebuild with a small one)

    @device
    def order_key(x, sign, full):
        # Unsigned image of a float's bits that sorts like the float.
        if (x & sign) != _U0:
            return x ^ full
        return x | sign

    @device
    def block_count_below(row, bound, counter):
        # Whole block: number of entries of row < bound (same value in every thread).
        tid = cuda.threadIdx.x
        if tid == 0:
            counter[0] = 0
        cuda.syncthreads()
        c = 0
        for t in range(tid, row.shape[0], cuda.blockDim.x):
            if row[t] < bound:
                c += 1
        cuda.atomic.add(counter, 0, c)
        cuda.syncthreads()
        total = counter[0]
        cuda.syncthreads()
        return total

    @device
    def key_bits(key, sign, full):
        # The float bits whose order key is key (the inverse of order_key): no find pass needed.
        if (key & sign) != _U0:
            return key ^ sign
        return (~key) & full

    @device
    def block_select_key(keys, k, nbits, sign, full, hist, prefix_s, state, buf):
        # Whole block: (order key of the k-th smallest (1-based) of keys, passes that read keys).
        # 8 bits a pass, MSB first. Once the candidates (keys whose decided high bits equal the
        # prefix) fit the shared buffer buf, the next pass that reads the global row also copies
        # them there (a shared atomic hands out slots) and later passes read only buf. Which
        # candidates are copied is exact (the decided prefix), so every pass sees the same multiset
        # of candidates as it would in global memory; only their order in buf varies.
        # state: shared int64[3] = (rank left, candidates, keys copied into buf).
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        passes = nbits // RADIX
        prefix = _U0
        decided = _U0  # mask of the high bits fixed so far
        rem = k
        cand = keys.shape[0]
        nbuf = -1  # -1: the candidates are still read from keys
        reads = 0
        if tid == 0:
            state[2] = 0  # set once: at most one pass fills buf (before the first barrier below)
        for p in range(passes):
            shift = np.uint64(nbits - RADIX * (p + 1))
            fill = nbuf < 0 and cand <= buf.shape[0] and p < passes - 1
            for b in range(tid, BINS, nt):
                hist[b] = 0
            cuda.syncthreads()
            if nbuf >= 0:
                for t in range(tid, nbuf, nt):
                    key = buf[t]
                    if (key & decided) == prefix:
                        cuda.atomic.add(hist, (key >> shift) & _DIGIT, 1)
            else:
                reads += 1
                for t in range(tid, keys.shape[0], nt):
                    key = order_key(np.uint64(keys[t]), sign, full)
                    if (key & decided) == prefix:
                        cuda.atomic.add(hist, (key >> shift) & _DIGIT, 1)
                        if fill:
                            buf[cuda.atomic.add(state, 2, 1)] = key
            cuda.syncthreads()
            if tid == 0:
                below = 0
                digit = 0
                while below + hist[digit] < rem:
                    below += hist[digit]
                    digit += 1
                prefix_s[0] = prefix | (np.uint64(digit) << shift)
                state[0] = rem - below
                state[1] = hist[digit]
            cuda.syncthreads()
            prefix = prefix_s[0]
            rem = state[0]
            cand = state[1]
            if fill:
                nbuf = state[2]  # == the candidates before this pass, all copied
            decided = decided | (_DIGIT << shift)
        return prefix, reads

    @cuda.jit
    def select_rows(D, keys, k, nbits, sign, full, bound, med):
        # One block per row r: med[r] = k-th smallest of D[r], or inf if fewer than k
        # entries are < bound[0] (the row cannot beat the best median so far).
        hist = cuda.shared.array(BINS, int32)
        prefix_s = cuda.shared.array(1, uint64)
        state = cuda.shared.array(3, int64)
        buf = cuda.shared.array(shared_keys, uint64)
        r = cuda.blockIdx.x
        row = D[r]
        b = bound[0]
        if b < math.inf:
            if block_count_below(row, b, hist) < k:
                if cuda.threadIdx.x == 0:
                    med[r] = math.inf
                return
        want, _ = block_select_key(keys[r], k, nbits, sign, full, hist, prefix_s, state, buf)
        for t in range(cuda.threadIdx.x, row.shape[0], cuda.blockDim.x):
            if order_key(np.uint64(keys[r, t]), sign, full) == want:
                med[r] = row[t]  # every writer writes the same value

    @cuda.jit
    def select_slots(keys, slots, nslots, start, k, nbits, sign, full, med_bits, reads):
        # One block per slot s < nslots[0] (the rest return at once): the k-th smallest of the
        # row keys[s], written as float bits (the inverse of its order key, no find pass) to
        # med_bits[slots[s] - start]; reads[s] = the passes that read the row from global memory.
        hist = cuda.shared.array(BINS, int32)
        prefix_s = cuda.shared.array(1, uint64)
        state = cuda.shared.array(3, int64)
        buf = cuda.shared.array(shared_keys, uint64)
        s = cuda.blockIdx.x
        if s >= nslots[0]:
            return
        want, passes = block_select_key(keys[s], k, nbits, sign, full, hist, prefix_s, state, buf)
        if cuda.threadIdx.x == 0:
            med_bits[slots[s] - start] = key_bits(want, sign, full)
            reads[s] = passes

    @device
    def block_lex_min(vals, idxs, tid, v, i):
        # Whole block: each thread's (v, i) into shared vals/idxs, then a tree fold to the
        # lexicographic (value, index) minimum in vals[0], idxs[0] (smallest index among ties).
        vals[tid] = v
        idxs[tid] = i
        cuda.syncthreads()
        s = cuda.blockDim.x // 2
        while s > 0:
            if tid < s:
                ov = vals[tid + s]
                oi = idxs[tid + s]
                if ov < vals[tid] or (ov == vals[tid] and oi < idxs[tid]):
                    vals[tid] = ov
                    idxs[tid] = oi
            cuda.syncthreads()
            s //= 2

    dev.block_lex_min = block_lex_min  # also the pruned center's fold (kernels/cuda_prune.py)
    dev.block_select_key = block_select_key  # also the box min_median's fused select
    dev.order_key = order_key
    dev.key_bits = key_bits

    @cuda.jit
    def fold_best(med, rows, start, best, best_index):
        # One block: if min(med[:rows]) < best[0], take it (first index among ties).
        vals = cuda.shared.array(REDUCE_THREADS, float64)
        idxs = cuda.shared.array(REDUCE_THREADS, int64)
        tid = cuda.threadIdx.x
        v = math.inf
        i = rows
        for t in range(tid, rows, cuda.blockDim.x):
            if med[t] < v:  # t increases: a thread keeps its first minimum
                v = med[t]
                i = t
        block_lex_min(vals, idxs, tid, v, i)
        # Lexicographic (median, index): a seeded best (box min_median) may have a larger index.
        if tid == 0 and (vals[0] < best[0] or (vals[0] == best[0] and start + idxs[0] < best_index[0])):
            best[0] = vals[0]
            best_index[0] = start + idxs[0]

    @cuda.jit
    def select_init(k, prefix, rem, hist):
        # One block: the state of a multi-block select of the k-th smallest.
        for b in range(cuda.threadIdx.x, BINS, cuda.blockDim.x):
            hist[b] = 0
        if cuda.threadIdx.x == 0:
            prefix[0] = _U0
            rem[0] = k

    @cuda.jit
    def select_histogram(keys, sign, full, shift, decided, prefix, hist):
        # Many blocks, grid-stride: this pass's digit histogram of the keys whose decided
        # high bits equal the prefix; a shared histogram per block, merged with global atomics.
        local = cuda.shared.array(BINS, int32)
        tid = cuda.threadIdx.x
        for b in range(tid, BINS, cuda.blockDim.x):
            local[b] = 0
        cuda.syncthreads()
        want = prefix[0]
        step = cuda.gridDim.x * cuda.blockDim.x
        for t in range(cuda.blockIdx.x * cuda.blockDim.x + tid, keys.shape[0], step):
            key = order_key(np.uint64(keys[t]), sign, full)
            if (key & decided) == want:
                cuda.atomic.add(local, (key >> shift) & _DIGIT, 1)
        cuda.syncthreads()
        for b in range(tid, BINS, cuda.blockDim.x):
            c = local[b]
            if c != 0:
                cuda.atomic.add(hist, b, c)

    @cuda.jit
    def select_digit(hist, shift, prefix, rem):
        # One block: fix this pass's digit (the bin holding the rem-th key) and clear the histogram.
        counts = cuda.shared.array(BINS, int64)
        tid = cuda.threadIdx.x
        for b in range(tid, BINS, cuda.blockDim.x):
            counts[b] = hist[b]
        cuda.syncthreads()
        if tid == 0:
            r = rem[0]
            below = 0
            digit = 0
            while below + counts[digit] < r:
                below += counts[digit]
                digit += 1
            prefix[0] = prefix[0] | (np.uint64(digit) << shift)
            rem[0] = r - below
        for b in range(tid, BINS, cuda.blockDim.x):
            hist[b] = 0

    _KERNELS["common"] = (dev, select_rows, fold_best, select_init, select_histogram, select_digit, select_slots)
    return _KERNELS["common"]


def _reduction_kernels(reduction):
    """(generic, tiled or None, to_center, paired kernels, tile size) of one reduction (built once)."""
    if reduction in _KERNELS:
        return _KERNELS[reduction]
    dev = _build()[0]
    from numba import float64

    pair_fn = getattr(dev, reduction + "_pair")
    # Every kernel is generic in the tile size; it is fixed per process at build time.
    T = SIM_TILE if _simulated() else TILE
    shape = (T, T + 1)  # a shared array's shape must be a compile-time constant

    @cuda.jit
    def generic(A, B, arg, out):
        j, i = cuda.grid(2)  # x runs along out's rows: coalesced stores
        if i < A.shape[0] and j < B.shape[0]:
            out[i, j] = pair_fn(A, i, B, j, arg)

    lanes_kernel = None
    if reduction in _TILED:
        # The long sums' one device arithmetic, the tiled kernel's: T-feature chunk sums, each
        # summed in order by chunk_fn, added in chunk order (pairwise, the fused counts, to_center
        # and paired all give these bits; T is fixed per process at build time).
        chunk_fn = dev.l1_pair if reduction == "l1" else dev.sq_pair
        lane_sqrt = reduction == "l2"

        @cuda.jit(device=True)
        def chunked(A, i, B, j, arg):
            acc = 0.0
            for k0 in range(0, A.shape[1], T):
                acc += chunk_fn(A[:, k0:k0 + T], i, B[:, k0:k0 + T], j, arg)
            return math.sqrt(acc) if lane_sqrt else acc

        W = SIM_LANES if _simulated() else LANES
        R = ROWS_PER_BLOCK
        lane_shape = (R, W)

        @cuda.jit
        def lanes_kernel(F, C, arg, out):
            # W lanes per row: lane l sums the T-feature chunks l, l + W, ... (chunk_fn, as the tiled
            # kernel sums a chunk) into shared memory; lane 0 then adds each round's W chunk sums in
            # chunk order. The same bits as `chunked`, with the row read by W lanes at once.
            part = cuda.shared.array(lane_shape, float64)
            lane = cuda.threadIdx.x
            rr = cuda.threadIdx.y
            i = cuda.blockIdx.x * R + rr
            ok = i < F.shape[0]
            d = F.shape[1]
            acc = 0.0
            for c0 in range(0, d, W * T):
                k0 = c0 + lane * T
                part[rr, lane] = chunk_fn(F[:, k0:k0 + T], i, C[:, k0:k0 + T], 0, arg) if (ok and k0 < d) else 0.0
                cuda.syncthreads()
                if lane == 0:
                    for q in range(W):
                        if c0 + q * T < d:
                            acc += part[rr, q]
                cuda.syncthreads()
            if lane == 0 and ok:
                out[i] = math.sqrt(acc) if lane_sqrt else acc

        exact_fn = chunked
    else:
        exact_fn = pair_fn

    @cuda.jit
    def column(F, C, arg, out):
        i = cuda.grid(1)
        if i < F.shape[0]:
            out[i] = exact_fn(F, i, C, 0, arg)

    @cuda.jit
    def paired(A, B, arg, out):
        i = cuda.grid(1)
        if i < A.shape[0]:
            out[i] = exact_fn(A, i, B, i, arg)

    tiled = None
    if reduction in _TILED:
        # The chunk reduction is the pair function itself, run on the shared tiles.
        chunk_fn = dev.l1_pair if reduction == "l1" else dev.sq_pair
        take_sqrt = reduction == "l2"

        @cuda.jit
        def tiled(A, B, arg, out):
            sA = cuda.shared.array(shape, float64)
            sB = cuda.shared.array(shape, float64)
            tx = cuda.threadIdx.x
            ty = cuda.threadIdx.y
            i0 = cuda.blockIdx.y * T
            j0 = cuda.blockIdx.x * T
            na = A.shape[0]
            nb = B.shape[0]
            d = A.shape[1]
            if tx == 0:  # the padding column stays zero: it adds |0 - 0| = 0
                sA[ty, T] = 0.0
                sB[ty, T] = 0.0
            acc = 0.0
            for k0 in range(0, d, T):
                k = k0 + tx
                # Out-of-range rows and features are staged as zeros on both sides.
                sA[ty, tx] = np.float64(A[i0 + ty, k]) if (i0 + ty < na and k < d) else 0.0
                sB[ty, tx] = np.float64(B[j0 + ty, k]) if (j0 + ty < nb and k < d) else 0.0
                cuda.syncthreads()
                acc += chunk_fn(sA, ty, sB, tx, arg)
                cuda.syncthreads()
            if i0 + ty < na and j0 + tx < nb:
                out[i0 + ty, j0 + tx] = math.sqrt(acc) if take_sqrt else acc

    _KERNELS[reduction] = (generic, tiled, column, paired, T, lanes_kernel)
    return _KERNELS[reduction]


# Counting pass of the box min_median in float32. The test d < t (t the best median so far)
# is g = (U - I) - t U < 0 (U > 0), computed from float32 boxes shifted by a common origin.
# With u = 2**-24 and S the largest |coordinate| of the two shifted boxes, each shifted
# coordinate is within (u + 2**-53) S of exact, so every float32 length is within about
# 4.01 u S of exact, a product of two lengths (each <= 2 S) within 20.1 u S**2, U within
# 80.3 u S**2, U - I within 112.4 u S**2, t U within 104.3 u S**2 (t <= 1, rounded to float32)
# and g within 241 u S**2 of the exact g. BOX_MARGIN = 2**-15 = 512 u leaves more than 2x of
# slack (the float64 distance the exact pass compares is itself within a few 2**-53 of exact);
# BOX_TINY covers underflow (every term subnormal: the margin then admits the pair). Outside
# +-margin the float32 sign is the exact one; inside, or with NaN/inf from float32 overflow
# (both comparisons false), the pair is decided by the float64 box_pair, as brute force does.
BOX_MARGIN = 2.0 ** -15
# The box count checks whether its row is decided every BOX_CHECK_SWEEPS x blockDim columns (two
# barriers a check): a row that cannot win stops after about n - k + its count columns.
BOX_CHECK_SWEEPS = 8
SEED_ROWS = 64  # rows whose exact medians seed the box min_median's best
_SEED_ROWS_SEED = 20261205
BOX_TINY = 2.0 ** -100


def _box_kernels():
    """(box32 features, fused count-and-select) of the box min_median (built once)."""
    if "box_fused" in _KERNELS:
        return _KERNELS["box_fused"]
    dev = _build()[0]
    from numba import float32, int32, int64, uint64

    box_pair = dev.box_pair
    margin = np.float32(BOX_MARGIN)
    tiny = np.float32(BOX_TINY)
    zero32 = np.float32(0.0)

    @cuda.jit(device=True)
    def box_decide(G, i, j, t32):
        # 1: d(i, j) < t for sure, 0: not, -1: inside the margin (decide in float64).
        ax1 = G[i, 0]
        ay1 = G[i, 1]
        ax2 = G[i, 2]
        ay2 = G[i, 3]
        bx1 = G[j, 0]
        by1 = G[j, 1]
        bx2 = G[j, 2]
        by2 = G[j, 3]
        iw = max(min(ax2, bx2) - max(ax1, bx1), zero32)
        ih = max(min(ay2, by2) - max(ay1, by1), zero32)
        inter = iw * ih
        union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
        g = (union - inter) - t32 * union
        S = max(G[i, 4], G[j, 4])
        e = S * S * margin + tiny
        if g < -e:
            return 1
        if g > e:
            return 0
        return -1

    dev.box_decide = box_decide

    @cuda.jit
    def box32(F, G):
        # G[i] = float32 of F[i] shifted by F[0]'s corner (a common origin), and max |coordinate|.
        i = cuda.grid(1)
        if i < F.shape[0]:
            ox = F[0, 0]
            oy = F[0, 1]
            x1 = float32(F[i, 0] - ox)
            y1 = float32(F[i, 1] - oy)
            x2 = float32(F[i, 2] - ox)
            y2 = float32(F[i, 3] - oy)
            G[i, 0] = x1
            G[i, 1] = y1
            G[i, 2] = x2
            G[i, 3] = y2
            G[i, 4] = max(max(abs(x1), abs(y1)), max(abs(x2), abs(y2)))

    select_key = _build()[0].block_select_key
    key_bits = _build()[0].key_bits
    shared_keys = SHARED_KEYS

    @cuda.jit
    def box_rows(F, G, rows, start, k, nbits, sign, full, bound, bound_index, D, keys, med_bits):
        # One block per row i (rows[r], or start + r when rows is empty): count its distances
        # below the best in float32 (float64 inside the margin). Below means d < best for rows
        # after the best's index and d <= best before it (an equal median with a smaller index
        # still wins). A row with fewer than k such distances cannot win: inf. Only the other
        # rows get their float64 distance row and the exact radix select, whose median is
        # written as float64 bits to med_bits[r] (the inverse of its order key: no find pass).
        hist = cuda.shared.array(BINS, int32)
        prefix_s = cuda.shared.array(1, uint64)
        state = cuda.shared.array(3, int64)
        buf = cuda.shared.array(shared_keys, uint64)
        r = cuda.blockIdx.x
        i = rows[r] if rows.shape[0] > 0 else start + r
        tid = cuda.threadIdx.x
        n = F.shape[0]
        b = bound[0]
        if b < math.inf:
            t32 = float32(b)
            ties = i < bound_index[0]
            if tid == 0:
                hist[0] = 0
            cuda.syncthreads()
            # Exact early exit every `chunk` columns: the row can win once its count reaches k, and
            # cannot once its count plus the columns left is below k. The total is read between
            # two barriers, so every thread sees the same value and takes the same branch.
            chunk = cuda.blockDim.x * BOX_CHECK_SWEEPS
            total = 0
            for c0 in range(0, n, chunk):
                c = 0
                for j in range(c0 + tid, min(n, c0 + chunk), cuda.blockDim.x):
                    v = box_decide(G, i, j, t32)  # its margin covers both < and <=
                    if v < 0:
                        d = box_pair(F, i, F, j, 0)
                        v = 1 if (d < b or (ties and d == b)) else 0
                    c += v
                cuda.atomic.add(hist, 0, c)
                cuda.syncthreads()
                total = hist[0]
                cuda.syncthreads()
                if total >= k or total + (n - c0 - chunk) < k:
                    break
            if total < k:
                if tid == 0:
                    med_bits[r] = _INF_BITS
                return
        row = D[r]
        for j in range(tid, n, cuda.blockDim.x):
            row[j] = box_pair(F, i, F, j, 0)
        cuda.syncthreads()
        want, _ = select_key(keys[r], k, nbits, sign, full, hist, prefix_s, state, buf)
        if tid == 0:
            med_bits[r] = key_bits(want, sign, full)

    _KERNELS["box_fused"] = (box32, box_rows)
    return _KERNELS["box_fused"]


def _l1_blocked_kernel():
    """The narrow (float32) register-blocked ``l1`` kernel: ``(kernel, T, tile)`` (see :mod:`.cuda_blocked`)."""
    from . import blocked as cuda_blocked

    return cuda_blocked.kernel("l1", wide=False)


# --------------------------------------------------------------------------- drivers


def _simulated():
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def _blocks(count, per_block):
    return (count + per_block - 1) // per_block


def _select_threads(length, cap):
    """Warp multiple covering ``length``, at most ``cap``: short rows idle no extra warps.

    Under the simulator every thread is a Python thread and every barrier a
    Python lock round: 4 threads a block (the kernels work for any count).
    """
    if _simulated():
        return 4
    return int(min(cap, max(32, 32 * _blocks(length, 32))))


def _key_params(dtype):
    """(bits, sign, full-mask) for the order keys of a float dtype, and its uint view."""
    if dtype == np.float64:
        return 64, np.uint64(1 << 63), np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64
    if dtype == np.float32:
        return 32, np.uint64(1 << 31), np.uint64(0xFFFFFFFF), np.uint32
    raise TypeError(f"distances: received dtype {dtype}; expected float32 or float64")


def _launch_pairwise(reduction, A, B, arg, out, tiled=None):
    """Fill the device array ``out`` with the (na, nb) distances of ``A`` and ``B``.

    The long sums (``l1``, ``sq``, ``l2``) run the 16 x 16 shared-memory tiled
    kernel (float64 chunk sums): the fused count of :mod:`.cuda_count` repeats
    its summation order, so ``min_median`` (fused or not) and the pruned
    center (:mod:`.cuda_prune`) select from the same floats bit for bit. The
    other reductions run the generic one-thread-per-pair kernel.
    ``tiled=False`` picks the generic kernel; ``tiled="wide"`` the
    register-blocked float64 kernel of :mod:`cs_fast.kernels.cuda_blocked`
    (faster by the model; not the default until the fused count follows its
    32-feature flush order, so that all three paths keep one set of floats).
    """
    generic, tiled_kernel, _, _, T, _ = _reduction_kernels(reduction)
    if tiled == "wide" and reduction in _TILED:
        from . import blocked as cuda_blocked

        return cuda_blocked.launch(reduction, A, B, out, wide=True)
    tiled = None if tiled == "wide" else tiled
    kernel = (tiled_kernel if tiled_kernel is not None else generic) if tiled is None else (
        tiled_kernel if tiled else generic
    )
    na, nb = A.shape[0], B.shape[0]
    step = _MAX_GRID_Y * T  # rows of A one launch can cover (grid y is limited)
    for r0 in range(0, na if nb else 0, step):
        r1 = min(na, r0 + step)
        launch(kernel, (_blocks(nb, T), _blocks(r1 - r0, T)), (T, T))(A[r0:r1], B, kernel_arg(arg), out[r0:r1])
    return out


def pairwise(reduction, A, B, arg, out_dtype, out=None):
    """Full (na, nb) distance matrix of two featurized device arrays.

    Parameters
    ----------
    reduction : str
        Name of a pair function of :mod:`cs_fast.kernels.pair` (``"l1"``,
        ``"box"``, ...). ``l1`` (also ``tv``), ``sq`` and ``l2`` run the
        register-blocked kernel of :mod:`cs_fast.kernels.cuda_blocked`:
        with float32 inputs and a float32 output in float32 sums flushed
        into float64 every ``cuda_blocked.FLUSH`` features (relative error
        within ``cuda_blocked.bound(reduction)``, about 2e-6: inside the
        ``2**-10`` promised for float32 output), otherwise in float64. With
        CuPy installed, float32 ``sq``/``l2`` go to cuBLAS instead (within
        ``mixed_precision.CDIST_RTOL``). The others run the generic kernel.
    A, B : device arrays, shape (na, d) and (nb, d)
        Featurized, C-contiguous, same dtype.
    arg : int
        The reduction's integer argument (groups of ``grouped_l2``).
    out_dtype : dtype
        dtype of the result; sums are float64 unless inputs and output are
        float32 and the reduction is a long sum (see above).
    out : device array, optional
        (na, nb) array of ``out_dtype`` to write into, e.g. a caller's tensor.

    Returns
    -------
    device array
        ``out`` (a new device array if none was given).
    """
    from . import blocked as cuda_blocked

    _reduction_kernels(reduction)
    cp = _cupy() if reduction in ("sq", "l2") and out is None and np.dtype(out_dtype) == np.float32 else None
    if cp is not None and A.shape[1]:
        with _cupy_stream(cp):
            G = sq_pairwise_gemm(A, B, reduction == "l2", out_dtype, cp)
        if G is not None:
            return cuda.as_cuda_array(G, sync=False)  # a numba view that keeps the CuPy array alive
    if out is None:
        out = empty((A.shape[0], B.shape[0]), out_dtype)
    if cuda_blocked.narrow_applies(reduction, A, out_dtype):
        return cuda_blocked.launch(reduction, A, B, out, wide=False)  # float32 sums, float64 flushes
    return _launch_pairwise(reduction, A, B, arg, out)


def _rowwise(kernel, A, B, arg, out):
    if out is None:
        out = empty(A.shape[0], np.float64)
    if A.shape[0]:
        threads = 128
        launch(kernel, _blocks(A.shape[0], threads), threads)(A, B, kernel_arg(arg), out)
    return out


def to_center(reduction, F, C, arg, out=None):
    """float64 device distances from every row of ``F`` to the row ``C`` (shape (1, d)).

    ``out``: a float64 device vector of length ``len(F)`` to write into (e.g. a
    slice of a preallocated array); a new one by default. The long sums
    (``l1``/``tv``, ``sq``, ``l2``) run a warp per row (lane ``l`` adds
    features ``l, l + 32, ...``: coalesced reads), the others a thread per row.
    """
    _, _, column, _, _, lanes = _reduction_kernels(reduction)
    if lanes is None:
        return _rowwise(column, F, C, arg, out)
    if out is None:
        out = empty(F.shape[0], np.float64)
    n = F.shape[0]
    if n:
        W = SIM_LANES if _simulated() else LANES
        launch(lanes, _blocks(n, ROWS_PER_BLOCK), (W, ROWS_PER_BLOCK))(F, C, kernel_arg(arg), out)
    return out


def paired(reduction, A, B, arg):
    """float64 device array of the distances ``d(A[i], B[i])`` of matching rows."""
    return _rowwise(_reduction_kernels(reduction)[3], A, B, arg, None)


def _select_grid(m):
    """(blocks, threads) of order_statistic's histogram passes over ``m`` values."""
    threads = 4 if _simulated() else 256
    return max(1, min(SELECT_BLOCKS, _blocks(m, threads * SELECT_PER_THREAD))), threads


def order_statistic(distances, k):
    """The ``k``-th smallest (1-based) of a 1-D float device array, as a Python float.

    Exact: the returned value is an element of ``distances`` (an order
    statistic, never an interpolated quantile), selected on the device; only
    the scalar comes back. ``k`` must be in ``1 .. len(distances)``.

    Multi-block MSB-first radix select: 8 passes (float32: 4) of 8 bits; each
    pass is a grid-stride histogram over many blocks (a shared histogram per
    block, merged with global atomics) and a one-block kernel that fixes the
    digit. No pass reads a value back: the k-th smallest's order key is known
    bit for bit after the last pass and the value is its inverse (no find
    pass). Only the final key (8 bytes) comes back to the host.
    """
    common = _build()
    select_init, select_histogram, select_digit = common[3], common[4], common[5]
    m = distances.shape[0]
    if distances.ndim != 1:
        raise ValueError(f"distances: received shape {distances.shape}; expected a 1-D array")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= m:
        raise ValueError(f"k: received {k!r}; expected an integer in 1..{m} (the array's length)")
    dtype = np.dtype(distances.dtype)
    nbits, sign, full, view = _key_params(dtype)
    keys = distances.view(view)
    prefix = empty(1, np.uint64)
    rem = empty(1, np.int64)
    hist = empty(BINS, np.int64)
    blocks, threads = _select_grid(m)
    launch(select_init, 1, BINS)(int(k), prefix, rem, hist)
    decided = _U0
    for p in range(nbits // RADIX):
        shift = np.uint64(nbits - RADIX * (p + 1))
        launch(select_histogram, blocks, threads)(keys, sign, full, shift, decided, prefix, hist)
        launch(select_digit, 1, BINS)(hist, shift, prefix, rem)
        decided = decided | (_DIGIT << shift)
    return key_value(fetch(prefix)[0], dtype)


def key_value(key, dtype):
    """The float of ``dtype`` whose order key (see the module docstring) is ``key``."""
    nbits, sign, full, view = _key_params(np.dtype(dtype))
    key = np.uint64(key)
    bits = key ^ sign if key & sign else ~key & full  # the inverse of order_key
    return float(np.array([bits], dtype=np.uint64).astype(view).view(dtype)[0])


def _seed_rows(n, count):
    """Sorted distinct rows whose exact medians seed min_median's best (a fixed-seed random sample).

    Empty for small n (below 2 ``SEED_ROWS``): the first tile is then as good a start.
    """
    if count <= 0 or n < 2 * SEED_ROWS:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.random.default_rng(_SEED_ROWS_SEED).choice(n, size=count, replace=False)).astype(np.int64)


def min_median(reduction, F, arg, tile=None, max_memory=DEFAULT_MAX_MEMORY, fused=True, stats=None, slack=None,
               seen=None):
    """Index and value of the smallest lower median of the rows of ``D(F, F)``.

    The lower median of row i is the ``ceil(n / 2)``-th smallest of its n
    distances (itself included). Rows are processed ``tile`` at a time (at
    most as many as fit ``max_memory`` bytes of float64 distances, so the
    n x n matrix is never held unless it fits); each tile's medians are
    selected exactly on the device and folded into a device-resident best.
    Ties keep the smallest index. Returns ``(index, radius)``; ``(-1, inf)``
    for ``n = 0`` as the CPU driver does.

    Fused (the default): the best is first seeded with the exact medians of
    ``SEED_ROWS`` random rows (for n >= 2 ``SEED_ROWS``), so pruning does not
    depend on row order. Then a counting pass computes each row's distances
    and counts those below the best without storing them (boxes: float32
    with a rigorous margin, float64 inside it, ``BOX_MARGIN``; ``l1`` on
    float32 rows likewise, ``cuda_count.L1_COUNT_MARGIN``, summed by the
    register-blocked narrow tiles of :mod:`.cuda_blocked`; every other
    reduction: float64 with the pairwise kernels' own arithmetic,
    :mod:`cs_fast.kernels.cuda_count`); only rows that can still win get
    their float64 distance row written and the exact radix select. The result
    is the same floats as ``fused=False`` (every row written and selected),
    bit for bit. ``stats``: a dict that receives ``seeds`` and ``survivors``
    (rows whose distance row was written after seeding; one host read at the
    end).

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
    common = _build()
    select_rows, fold_best, select_slots = common[1], common[2], common[6]
    n = F.shape[0]
    if n == 0:
        return -1, math.inf
    cp = _cupy() if reduction in ("sq", "l2") else None
    if cp is not None:
        # float32 cuBLAS estimates (4 bytes) and their float64 form (8) per entry of a tile
        rows = max(1, min(n, int(max_memory) // (12 * n), int(tile) if tile else n))
        with _cupy_stream(cp):
            got = sq_min_median_gemm(F, reduction == "l2", rows, cp)
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
    k = (n + 1) // 2
    nbits, sign, full, view = _key_params(np.dtype(np.float64))
    D = empty((rows, n), np.float64)
    keys = D.view(view)
    med = empty(rows, np.float64)
    med_bits = med.view(view)  # selects write a median's bits: the inverse of its order key
    best = upload(np.array([np.inf]))
    best_index = upload(np.array([-1], dtype=np.int64))
    threads = _select_threads(n, 256)
    fold_threads = 4 if _simulated() else min(REDUCE_THREADS, 1 << max(5, (rows - 1).bit_length()))
    tiles = range(0, n, rows)
    seeds = _seed_rows(n, min(rows, SEED_ROWS)) if fused else np.zeros(0, dtype=np.int64)
    s = len(seeds)
    if reduction == "box" and fused:
        box32, box_rows = _box_kernels()
        G = empty((n, 5), np.float32)
        launch(box32, _blocks(n, 128), 128)(F, G)
        no_rows = empty(0, np.int64)
        if s:  # unbounded: every seed row is written and selected
            launch(box_rows, s, threads)(F, G, upload(seeds), 0, k, nbits, sign, full, upload(np.array([np.inf])),
                                         best_index, D[:s], keys[:s], med_bits)
    elif fused:
        from . import count as cuda_count

        surv = empty(rows, np.int64)
        nsurv = upload(np.zeros(len(tiles) + 1, dtype=np.int64))  # one counter a tile (none reset)
        reads = empty(rows, np.int32)
        if s:
            ns = upload(np.array([s], dtype=np.int64))
            cuda_count.write_rows(reduction, F, upload(seeds), ns, s, arg, D)
            launch(select_slots, s, threads)(keys, upload(np.arange(s, dtype=np.int64)), ns, 0, k, nbits, sign,
                                             full, med_bits, reads)
    if s:
        # The seeds' exact medians: the smallest, then the smallest index among ties, is the best.
        got = fetch(med[:s])
        j = int(np.lexsort((seeds, got))[0])
        best = upload(np.array([got[j]]))
        best_index = upload(np.array([seeds[j]], dtype=np.int64))
        if seen is not None:
            seen[seeds] = got
    # What the count compares with: the best (ties by index), or in the estimate pass slack(best) (<=).
    bound, bound_index = best, best_index
    if slack is not None:
        thr = float(np.nextafter(slack(float(fetch(best)[0])), np.inf))
        bound, bound_index = upload(np.array([thr])), upload(np.array([-1], dtype=np.int64))
    for t, start in enumerate(tiles):
        stop = min(n, start + rows)
        m = stop - start
        if reduction == "box" and fused:
            launch(box_rows, m, threads)(F, G, no_rows, start, k, nbits, sign, full, best, best_index, D[:m],
                                         keys[:m], med_bits)
        elif fused:
            count = nsurv[t:t + 1]
            cuda_count.count_rows(reduction, F, start, m, arg, k, bound, bound_index, surv, count, med)
            cuda_count.write_rows(reduction, F, surv, count, m, arg, D)
            launch(select_slots, m, threads)(keys, surv, count, start, k, nbits, sign, full, med_bits, reads)
        else:
            _launch_pairwise(reduction, F[start:stop], F, arg, D[:m])
            launch(select_rows, m, threads)(D[:m], keys[:m], k, nbits, sign, full, bound, med)
        launch(fold_best, 1, fold_threads)(med, m, start, best, best_index)
        if slack is not None:
            seen[start:stop] = fetch(med[:m])
            bound.copy_to_device(np.array([np.nextafter(slack(float(fetch(best)[0])), np.inf)]),
                                 stream=current_stream())
    if stats is not None:
        stats["seeds"] = s
        if reduction != "box" and fused:
            stats["survivors"] = int(fetch(nsurv)[:len(tiles)].sum())
    return int(fetch(best_index)[0]), float(fetch(best)[0])


def exact_min_median(reduction, F, arg, est, tile=None, max_memory=DEFAULT_MAX_MEMORY, method="brute", stats=None):
    """The device twin of :func:`cs_fast.kernels.exact.min_median`: estimate pass, canonical refinement.

    The estimate pass is :func:`min_median` (or the pruned
    :func:`cs_fast.kernels.cuda_prune.min_median`) on the device estimate
    features with ``slack = est.bound.threshold``; each candidate's canonical
    median is :func:`order_statistic` of its :func:`to_center` row, so the
    result is the device's canonical brute force and the radius the lower
    median of the device's ``to_center(Z, Z[index])``, bit for bit.
    """
    from .. import exact

    n = F.shape[0]
    k = (n + 1) // 2
    seen = np.full(n, np.inf)
    if method == "pruned":
        from . import prune as cuda_prune

        cuda_prune.min_median(est.reduction, est.data, est.arg, tile=tile, max_memory=max_memory, stats=stats,
                              slack=est.bound.threshold, seen=seen)
    else:
        min_median(est.reduction, est.data, est.arg, tile=tile, max_memory=max_memory, stats=stats,
                   slack=est.bound.threshold, seen=seen)

    def medians(rows):
        return [order_statistic(to_center(reduction, F, F[i:i + 1], arg), k) for i in rows]

    return exact.refine(reduction, F, arg, seen, est.bound, stats, medians=medians)


# --------------------------------------------------------------------------- sq / l2 with cuBLAS
# The mixed-precision path of cs_fast.kernels.mixed_precision on the device: a
# float32 cuBLAS GEMM (through CuPy, the optional `cuda` extra) on centred rows,
# the one bound (mixed_precision.sq_interval compiled as a device function),
# and float64 refinement on the device by this module's own direct kernels.
# The drivers take the array module `xp` (cupy on a GPU); with numpy and the
# CUDA simulator they run on the CPU, which is how the tests check the logic
# without a GPU. Without CuPy the device keeps its direct float64 kernels.


def _cupy():
    """CuPy where it is installed and usable, else None (the device then sums directly in float64)."""
    if _simulated():
        return None
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def _cupy_stream(cp):
    """CuPy work on the current launch stream (a CuPy ExternalStream), or CuPy's own current stream."""
    stream = current_stream()
    if stream == 0:
        return contextlib.nullcontext()
    return cp.cuda.ExternalStream(int(stream))


def gemm_input_roundoff():
    """Input rounding of CuPy's float32 GEMM: TF32's 2**-11 when ``CUPY_TF32`` enables it, else 0.

    The bound counts whatever CuPy may do, so TF32 is used only where the
    bound accounts for it (a wider interval, never an unsound one).
    """
    return mp.UTF32 if os.environ.get("CUPY_TF32", "0") not in ("", "0") else 0.0


def _mixed_kernels():
    if "mixed" in _KERNELS:
        return _KERNELS["mixed"]
    dev = _build()[0]
    interval = cuda.jit(device=True)(mp.sq_interval)
    sq_pair = dev.sq_pair

    @cuda.jit
    def median_intervals(m, a, i0, amax, c, c64, rho, g, abs_sq, abs_eps, lo, hi):
        r = cuda.grid(1)
        if r < m.shape[0]:
            lo_r, hi_r = interval(m[r], a[i0 + r], amax, c, c64, rho, g, abs_sq, abs_eps)
            lo[i0 + r] = lo_r
            hi[i0 + r] = hi_r

    @cuda.jit
    def finish(A, B, G, naA, naB, aA, aB, c, c64, rho, g, abs_sq, abs_eps, rtol, take_sqrt, out):
        j, i = cuda.grid(2)
        if i < G.shape[0] and j < G.shape[1]:
            dt = (naA[i] + naB[j]) - 2.0 * np.float64(G[i, j])
            lo, hi = interval(dt, aA[i], aB[j], c, c64, rho, g, abs_sq, abs_eps)
            v = dt if hi - lo <= rtol * lo else sq_pair(A, i, B, j, 0)
            out[i, j] = math.sqrt(v) if take_sqrt else v

    _KERNELS["mixed"] = (median_intervals, finish)
    return _KERNELS["mixed"]


def _centred32(xp, F, shift, chunk=4096):
    """float32 centred rows and their float64 norms², on the device (rows in chunks: no n x d float64 copy)."""
    X = xp.empty(F.shape, dtype=xp.float32)
    na = xp.empty(F.shape[0], dtype=xp.float64)
    for i0 in range(0, F.shape[0], chunk):
        C = F[i0:i0 + chunk].astype(xp.float64) - shift
        X[i0:i0 + chunk] = C.astype(xp.float32)
        X64 = X[i0:i0 + chunk].astype(xp.float64)
        na[i0:i0 + chunk] = (X64 * X64).sum(axis=1)
    return X, na


def _host(x):
    return x.get() if hasattr(x, "get") else (fetch(x) if hasattr(x, "copy_to_host") else np.asarray(x))


def sq_pairwise_gemm(A, B, take_sqrt, out_dtype, xp, rtol=mp.CDIST_RTOL):
    """Device ``sq``/``l2`` distances within relative ``rtol`` of float64 (see cpu.sq_pairwise_mixed).

    ``A``, ``B``: featurized device arrays (anything ``xp.asarray`` takes).
    Returns an ``xp`` array, or None when the centred norms are too large for
    a float32 GEMM.
    """
    median_intervals, finish = _mixed_kernels()
    A, B = xp.asarray(A), xp.asarray(B)
    d = A.shape[1]
    shift = A.mean(axis=0, dtype=xp.float64) if A.shape[0] else xp.zeros(d)
    XA, naA = _centred32(xp, A, shift)
    XB, naB = _centred32(xp, B, shift)
    top = max(float(naA.max()) if naA.size else 0.0, float(naB.max()) if naB.size else 0.0)
    if not top < mp.MAX_NORM2:
        return None
    coef = mp.sq_coefficients(d, input_roundoff=gemm_input_roundoff())
    G = XA @ XB.T  # cuBLAS sgemm
    out = G if np.dtype(out_dtype) == np.float32 else xp.empty(G.shape, dtype=out_dtype)
    T = SIM_TILE if _simulated() else TILE
    if G.size:
        launch(finish, (_blocks(G.shape[1], T), _blocks(G.shape[0], T)), (T, T))(
            A, B, G, naA, naB, mp.norm_upper(naA, d), mp.norm_upper(naB, d), *coef, float(rtol), bool(take_sqrt), out)
    return out


def sq_min_median_gemm(F, take_sqrt, tile, xp):
    """Device ``min_median`` for ``sq``/``l2``: cuBLAS GEMM, the bound, float64 refinement on the device.

    The same decision as :func:`cs_fast.kernels.cpu.sq_min_median`: per row an
    interval for its canonical lower median (float64 estimates from the float32
    GEMM, an exact device selection, the device-compiled bound); rows whose
    lower end exceeds the smallest upper end cannot win; the rest are
    recomputed with :func:`to_center`'s direct float64 kernel and selected
    exactly (:func:`order_statistic`). The result is brute force over the
    device's own ``to_center`` distances, bit for bit. Only the per-row
    interval ends (2 n floats) and scalars reach the host. Returns
    ``(index, radius, candidates)``, or None when the centred norms are too
    large for a float32 GEMM.
    """
    median_intervals, _ = _mixed_kernels()
    Fx = xp.asarray(F)
    n, d = Fx.shape
    k = (n + 1) // 2
    X, na = _centred32(xp, Fx, Fx.mean(axis=0, dtype=xp.float64))
    if not float(na.max()) < mp.MAX_NORM2:
        return None
    coef = mp.sq_coefficients(d, input_roundoff=gemm_input_roundoff())
    a = mp.norm_upper(na, d)
    amax = float(a.max())
    lo = xp.empty(n, dtype=xp.float64)
    hi = xp.empty(n, dtype=xp.float64)
    tile = max(1, min(n, int(tile)))
    for i0 in range(0, n, tile):
        i1 = min(n, i0 + tile)
        dt = (na[i0:i1, None] + na[None, :]) - 2.0 * (X[i0:i1] @ X.T).astype(xp.float64)
        m = xp.ascontiguousarray(xp.partition(dt, k - 1, axis=1)[:, k - 1])
        launch(median_intervals, _blocks(i1 - i0, 128), 128)(m, a, i0, amax, *coef, lo, hi)
    lo, hi = _host(lo), _host(hi)
    if take_sqrt:
        lo, hi = np.sqrt(lo), np.sqrt(hi)
    order = np.argsort(lo, kind="stable")
    order = order[: int(np.searchsorted(lo[order], hi.min(), side="right"))]
    best, best_index = np.inf, -1
    for i in order:
        if lo[i] > best:
            break
        m = order_statistic(to_center("sq", F, F[i:i + 1], 0), k)
        if take_sqrt:
            m = math.sqrt(m)
        if m < best or (m == best and i < best_index):
            best, best_index = m, int(i)
    return best_index, float(best), len(order)
