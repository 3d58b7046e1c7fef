"""Exact lower-median center with triangle-inequality pruning on the device (numba.cuda).

The algorithm and the guarantee of :mod:`cs_fast.kernels.cpu.prune`: the result is
exactly :func:`cs_fast.kernels.cuda.min_median`'s (same index, same radius, bit
for bit), skipping rows whose lower bound ``med(j) - d(i, j)`` (minus the
rounding margin of :func:`cs_fast.kernels.cpu.prune.rounding_margin`; on the roots
for ``sqfeat``) shows they cannot win.

On the device, per tile of rows (all kernels; the bounds, the row states, the
best median and its index never leave the device):

1. ``next_rows`` (one thread) walks a seeded random order of the rows from a
   device-resident position and collects the next ``tile`` rows still open;
2. the rows are gathered and their distance rows computed by the brute-force
   kernel (:func:`cs_fast.kernels.cuda.direct.launch_pairwise`), so the distances
   are the same floats brute force computes;
3. every row's exact lower median by the radix select of
   :mod:`cs_fast.kernels.cuda.radix` (one block a row);
4. a one-block fold takes the lexicographic (median, index) minimum into the
   device-resident best;
5. ``tighten`` (a thread per column) raises every bound with the tile's rows
   and marks the rows that can no longer win.

The host reads back one integer per tile (how many rows step 1 found: zero
ends the loop) and, at the end, ``(index, radius)``. The counting pass with
early exit of the CPU path has no device counterpart here: a device computes a
tile's full rows at about the cost of counting them.
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from .. import reductions
from ..cpu.bounding import DONE, OPEN, SKIPPED
from ..cpu.prune import SEED, rounding_margin
from . import runtime
from .direct import launch_pairwise
from .radix import device_functions, row_select
from .runtime import DEFAULT, DEFAULT_MAX_MEMORY, REDUCE_THREADS, blocks, current_stream, empty, fetch, upload

cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires


class PruneKernels(NamedTuple):
    """The pruned center's kernels (see :func:`kernels`)."""

    next_rows: object
    gather: object
    fold_lex: object
    tighten: object


@functools.lru_cache(maxsize=None)
def kernels():
    """The pruned center's :class:`PruneKernels` (built once)."""
    global cuda
    block_lex_min = device_functions().block_lex_min  # the block's (value, index) tree fold, shared
    cuda = runtime.cuda_module()
    from numba import float64, int64

    threads = REDUCE_THREADS

    @cuda.jit
    def next_rows(order, pos, state, m, rows, count):
        # One thread: the next m OPEN rows of order from pos[0].
        if cuda.grid(1) != 0:
            return
        p = pos[0]
        c = 0
        while p < order.shape[0] and c < m:
            i = order[p]
            p += 1
            if state[i] == OPEN:
                rows[c] = i
                c += 1
        pos[0] = p
        count[0] = c

    @cuda.jit
    def gather(F, rows, count, G):
        # G[r] = F[rows[r]] for r < count[0]; the rest of G repeats row 0 (computed, ignored).
        r, c = cuda.grid(2)
        if r < G.shape[0] and c < F.shape[1]:
            src = rows[r] if r < count[0] else rows[0]
            G[r, c] = F[src, c]

    @cuda.jit
    def fold_lex(med, rows, count, best, best_index):
        # One block: lexicographic (median, index) minimum of the tile and the best so far.
        vals = cuda.shared.array(threads, float64)
        idxs = cuda.shared.array(threads, int64)
        tid = cuda.threadIdx.x
        v = best[0]
        i = best_index[0]
        for t in range(tid, count[0], cuda.blockDim.x):
            mv = med[t]
            mi = rows[t]
            if mv < v or (mv == v and mi < i):
                v = mv
                i = mi
        block_lex_min(vals, idxs, tid, v, i)
        if tid == 0:
            best[0] = vals[0]
            best_index[0] = idxs[0]

    @cuda.jit
    def tighten(D, med, rows, count, root, eps, tiny, lb, state, best, best_index, skipped):
        # A thread per column j: raise lb[j] with every row of the tile, then the pruning test
        # (see cs_fast.kernels.cpu.bounding.tighten for the margin's derivation).
        j = cuda.grid(1)
        n = lb.shape[0]
        if j >= n:
            return
        m = count[0]
        grow = 1.0 + eps
        v = lb[j]
        for r in range(m):
            b = med[r]
            if root:
                b = math.sqrt(b)
            b = b * (1.0 - 3.0 * eps) - 3.0 * tiny
            if b > 0.0 and b < math.inf:
                d = D[r, j]
                if root:
                    d = math.sqrt(d)
                v = max(v, b - d * grow)
        lb[j] = v
        for r in range(m):
            if rows[r] == j:
                state[j] = DONE
        if state[j] == OPEN:
            w = max(v, 0.0)
            if root:
                w = w * w
            if w > best[0] or (w >= best[0] and j > best_index[0]):
                state[j] = SKIPPED
                cuda.atomic.add(skipped, 0, 1)

    return PruneKernels(next_rows, gather, fold_lex, tighten)


def min_median(reduction, F, arg, tile=None, max_memory=DEFAULT_MAX_MEMORY, root=False, stats=None,
               margin=None, slack=None, seen=None, config=DEFAULT):
    """Index and value of the smallest lower median of ``D(F, F)`` on the device, pruned.

    Parameters as :func:`cs_fast.kernels.cuda.min_median`, plus ``root``,
    ``stats`` and ``margin`` as :func:`cs_fast.kernels.cpu.prune.min_median`.
    Device memory: the ``tile x n`` distance buffer (sized to
    ``max_memory``), the gathered rows, and O(n) for the bounds and states.
    ``slack``, ``seen``: the estimate pass of
    :func:`cs_fast.kernels.cuda.exact_min_median` (rows are skipped only when
    their bound exceeds ``slack(best)``; ``seen`` receives every median; a
    scalar and the tile's medians are read back per tile). ``config``: the
    tunables (``shared_keys``).
    """
    R = reductions.get(reduction)
    select_rows = row_select(config.shared_keys).select_rows
    next_rows, gather, fold_lex, tighten = kernels()
    n, d = F.shape
    if n == 0:
        return -1, math.inf
    row_bytes = 8 * (n + 1) + F.dtype.itemsize * d
    fit = int(max_memory) // row_bytes
    if fit < 1:
        raise ValueError(
            f"max_memory: received {max_memory} bytes; one row of {n} float64 distances needs "
            f"{row_bytes}; expected at least that"
        )
    m = min(n, fit, int(tile) if tile else 256)
    eps, tiny = rounding_margin(R.name, F.dtype) if margin is None else margin
    k = (n + 1) // 2
    nbits, sign, full, view = runtime.key_params(np.dtype(np.float64))
    D = empty((m, n), np.float64)
    keys = D.view(view)
    G = empty((m, d), F.dtype)
    med = empty(m, np.float64)
    rows = empty(m, np.int64)
    count = empty(1, np.int64)
    pos = upload(np.zeros(1, np.int64))
    order = upload(np.random.default_rng(SEED).permutation(n).astype(np.int64))
    state = upload(np.zeros(n, np.uint8))
    lb = upload(np.zeros(n))
    best = upload(np.array([np.inf]))
    best_index = upload(np.array([n], dtype=np.int64))
    skipped = upload(np.zeros(1, np.int64))
    no_bound = upload(np.array([np.inf]))  # exact medians for every row: the bounds need them
    # What tighten skips against: the best (ties by index), or in the estimate pass slack(best).
    skip_best, skip_index = best, best_index
    if slack is not None:
        skip_best, skip_index = upload(np.array([np.inf])), upload(np.array([n], dtype=np.int64))
    sel_threads = runtime.select_threads(n, 256)
    fold_threads = 4 if runtime.simulated() else REDUCE_THREADS
    col_threads = 32 if runtime.simulated() else 256
    gt = 4 if runtime.simulated() else 16
    rows_full = 0
    while True:
        runtime.launch(next_rows, 1, 1)(order, pos, state, m, rows, count)
        c = int(fetch(count)[0])
        if c == 0:
            break
        rows_full += c
        runtime.launch(gather, (blocks(m, gt), blocks(d, gt)), (gt, gt))(F, rows, count, G)
        launch_pairwise(R, G[:c], F, arg, D[:c])
        runtime.launch(select_rows, c, sel_threads)(D[:c], keys[:c], k, nbits, sign, full, no_bound, med)
        runtime.launch(fold_lex, 1, fold_threads)(med, rows, count, best, best_index)
        if slack is not None:
            seen[fetch(rows[:c])] = fetch(med[:c])
            skip_best.copy_to_device(np.array([slack(float(fetch(best)[0]))]), stream=current_stream())
        runtime.launch(tighten, blocks(n, col_threads), col_threads)(
            D, med, rows, count, root, float(eps), float(tiny), lb, state, skip_best, skip_index, skipped)
    if stats is not None:
        evaluated = rows_full * n
        stats.update(
            evaluated=int(evaluated), recomputed=0, pairs=n * n, fraction=evaluated / float(n * n),
            rows_full=int(rows_full),
            rows_counted=0, rows_skipped=int(fetch(skipped)[0]),
        )
    return int(fetch(best_index)[0]), float(fetch(best)[0])
