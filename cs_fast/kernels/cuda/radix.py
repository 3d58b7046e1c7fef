"""Exact radix selection on the device: the select device functions, the per-row and multi-block kernels.

Selection is an exact MSB-first radix select over the IEEE bit patterns, 8
bits per pass. A float's bits, with the sign bit flipped for non-negative
values and all bits flipped for negative ones, order as unsigned integers
exactly as the floats do, so 8 histogram passes (4 for float32) over the row
pin down the bit pattern of the k-th smallest value; the value is the
inverse of that key (the same bits: no find pass), so the result is bit for
bit an element of the row and equals a CPU quickselect / ``np.sort`` on the
same distances. Once the candidates (keys matching the digits decided so
far) fit ``DeviceConfig.shared_keys`` (2048) keys, the next pass copies them
into shared memory and the remaining passes read only those: a row of at
most 2048 distances is read from global memory once, a longer one until its
candidates fit (typically 2 or 3 passes). Why this rather than the
alternatives: it needs no scratch copy of the row in global memory (the row
is only read, never reordered), a fixed number of passes independent of the
data (quickselect on a GPU diverges and needs a buffer; a sort is
O(n log n) and needs one too), and 8 passes instead of the 64 of a
bit-by-bit bisection. A 256-bin histogram lives in shared memory, filled
with shared atomics. (``select_rows``, the pruned center's select, still
reads its value back with a find pass.)
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from .. import pair, select
from ..retarget import retarget
from . import runtime
from .runtime import DEFAULT, REDUCE_THREADS, empty, fetch, key_params, launch

SELECT_BLOCKS = 528  # order_statistic's most histogram blocks: 4 per SM of an H100 (132 SMs)
RADIX = 8  # bits per radix-select pass: a 256-bin shared histogram
BINS = 1 << RADIX
U0 = np.uint64(0)
INF_BITS = np.uint64(0x7FF0000000000000)  # float64 +inf
DIGIT = np.uint64(BINS - 1)

cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires


# The kernels name `cuda` as a module global (not a closure variable): the module must import
# without numba-cuda, and the simulator swaps in its thread-local fake of numba.cuda by
# rewriting the kernel's globals.


@functools.lru_cache(maxsize=None)
def device_functions():
    """The retargeted pair and select functions of :mod:`cs_fast.kernels`, plus the block-wide select helpers.

    A namespace of device functions: every ``*_pair`` of
    :mod:`cs_fast.kernels.pair`, and ``order_key``, ``key_bits``,
    ``block_count_below``, ``block_select_key``, ``block_lex_min`` (built once).
    """
    global cuda
    cuda = runtime.cuda_module()
    dev = retarget([pair, select], cuda.jit(device=True))
    device = cuda.jit(device=True)

    @device
    def order_key(x, sign, full):
        # Unsigned image of a float's bits that sorts like the float.
        if (x & sign) != U0:
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
        if (key & sign) != U0:
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
        prefix = U0
        decided = U0  # mask of the high bits fixed so far
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
                        cuda.atomic.add(hist, (key >> shift) & DIGIT, 1)
            else:
                reads += 1
                for t in range(tid, keys.shape[0], nt):
                    key = order_key(np.uint64(keys[t]), sign, full)
                    if (key & decided) == prefix:
                        cuda.atomic.add(hist, (key >> shift) & DIGIT, 1)
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
            decided = decided | (DIGIT << shift)
        return prefix, reads

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

    dev.block_lex_min = block_lex_min  # also the pruned center's fold (cuda/prune.py)
    dev.block_select_key = block_select_key  # also the box min_median's fused select (cuda/box.py)
    dev.order_key = order_key
    dev.key_bits = key_bits
    dev.block_count_below = block_count_below
    return dev


class RowSelect(NamedTuple):
    """The one-block-a-row select kernels (see :func:`row_select`)."""

    select_rows: object
    select_slots: object


@functools.lru_cache(maxsize=None)
def row_select(shared_keys):
    """The one-block-a-row select kernels with a shared buffer of ``shared_keys`` keys (built once per size)."""
    dev = device_functions()
    from numba import int32, int64, uint64

    block_count_below, block_select_key, order_key, key_bits = (
        dev.block_count_below, dev.block_select_key, dev.order_key, dev.key_bits)

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

    return RowSelect(select_rows, select_slots)


@functools.lru_cache(maxsize=None)
def fold_kernel():
    """``fold_best(med, rows, start, best, best_index)``: the one-block (median, index) fold into the best."""
    block_lex_min = device_functions().block_lex_min
    from numba import float64, int64

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

    return fold_best


class MultiBlockSelect(NamedTuple):
    """The kernels of :func:`order_statistic`'s multi-block select."""

    select_init: object
    select_histogram: object
    select_digit: object


@functools.lru_cache(maxsize=None)
def multiblock_select():
    """The three kernels of :func:`order_statistic` (built once)."""
    order_key = device_functions().order_key
    from numba import int32, int64

    @cuda.jit
    def select_init(k, prefix, rem, hist):
        # One block: the state of a multi-block select of the k-th smallest.
        for b in range(cuda.threadIdx.x, BINS, cuda.blockDim.x):
            hist[b] = 0
        if cuda.threadIdx.x == 0:
            prefix[0] = U0
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
                cuda.atomic.add(local, (key >> shift) & DIGIT, 1)
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

    return MultiBlockSelect(select_init, select_histogram, select_digit)


def select_grid(m, per_thread=DEFAULT.select_per_thread):
    """(blocks, threads) of order_statistic's histogram passes over ``m`` values, ``per_thread`` values a thread."""
    threads = 4 if runtime.simulated() else 256
    return max(1, min(SELECT_BLOCKS, runtime.blocks(m, threads * per_thread))), threads


def order_statistic(distances, k, config=DEFAULT):
    """The ``k``-th smallest (1-based) of a 1-D float device array, as a Python float.

    Exact: the returned value is an element of ``distances`` (an order
    statistic, never an interpolated quantile), selected on the device; only
    the scalar comes back. ``k`` must be in ``1 .. len(distances)``.

    Multi-block MSB-first radix select: 8 passes (float32: 4) of 8 bits; each
    pass is a grid-stride histogram over many blocks (a shared histogram per
    block, merged with global atomics) and a one-block kernel that fixes the
    digit. No pass reads a value back: the k-th smallest's order key is known
    bit for bit after the last pass and the value is its inverse (no find
    pass). Only the final key (8 bytes) comes back to the host. ``config``:
    the tunables (``select_per_thread``).
    """
    select_init, select_histogram, select_digit = multiblock_select()
    m = distances.shape[0]
    if distances.ndim != 1:
        raise ValueError(f"distances: received shape {distances.shape}; expected a 1-D array")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= m:
        raise ValueError(f"k: received {k!r}; expected an integer in 1..{m} (the array's length)")
    dtype = np.dtype(distances.dtype)
    nbits, sign, full, view = key_params(dtype)
    keys = distances.view(view)
    prefix = empty(1, np.uint64)
    rem = empty(1, np.int64)
    hist = empty(BINS, np.int64)
    blocks, threads = select_grid(m, config.select_per_thread)
    launch(select_init, 1, BINS)(int(k), prefix, rem, hist)
    decided = U0
    for p in range(nbits // RADIX):
        shift = np.uint64(nbits - RADIX * (p + 1))
        launch(select_histogram, blocks, threads)(keys, sign, full, shift, decided, prefix, hist)
        launch(select_digit, 1, BINS)(hist, shift, prefix, rem)
        decided = decided | (DIGIT << shift)
    return key_value(fetch(prefix)[0], dtype)


def key_value(key, dtype):
    """The float of ``dtype`` whose order key (see the module docstring) is ``key``."""
    nbits, sign, full, view = key_params(np.dtype(dtype))
    key = np.uint64(key)
    bits = key ^ sign if key & sign else ~key & full  # the inverse of order_key
    return float(np.array([bits], dtype=np.uint64).astype(view).view(dtype)[0])

