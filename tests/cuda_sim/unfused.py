"""The unfused device ``min_median``: the reference the fused one is compared with bit for bit.

Every row of every tile gets its float64 distance row written by the
brute-force kernel and selected by the one-block-a-row radix select; a
one-block fold keeps the lexicographic (median, index) minimum. No seeding,
no counting pass: what the fused path must equal.
"""

import math

import numpy as np

from cs_fast.kernels.cuda import direct, radix, runtime


def min_median(reduction, F, arg, tile=None, config=runtime.DEFAULT):
    """``(index, radius)`` of the smallest lower median of ``D(F, F)``, every row written and selected."""
    n = F.shape[0]
    if n == 0:
        return -1, math.inf
    rows = min(n, int(tile) if tile else n)
    k = (n + 1) // 2
    nbits, sign, full, view = runtime.key_params(np.dtype(np.float64))
    D = runtime.empty((rows, n), np.float64)
    keys = D.view(view)
    med = runtime.empty(rows, np.float64)
    best = runtime.upload(np.array([np.inf]))
    best_index = runtime.upload(np.array([-1], dtype=np.int64))
    select_rows = radix.row_select(config.shared_keys).select_rows
    fold_best = radix.fold_kernel()
    threads = runtime.select_threads(n, 256)
    fold_threads = 4 if runtime.simulated() else min(runtime.REDUCE_THREADS, 1 << max(5, (rows - 1).bit_length()))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        m = stop - start
        direct.launch_pairwise(reduction, F[start:stop], F, arg, D[:m])
        runtime.launch(select_rows, m, threads)(D[:m], keys[:m], k, nbits, sign, full, best, med)
        runtime.launch(fold_best, 1, fold_threads)(med, m, start, best, best_index)
    return int(runtime.fetch(best_index)[0]), float(runtime.fetch(best)[0])
