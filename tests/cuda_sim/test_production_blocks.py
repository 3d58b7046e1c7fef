"""Every device reduction at its production block size, under the simulator too.

The simulator build shrinks blocks (4-thread selects, 4 x 4 tiles, 8-thread
1-D blocks) to keep tests fast; these tests switch the production
configuration back on and run each reduction once at full width: the block
radix select and its counting pass (256 and 1024 threads a row, through
``order_statistic``), the one-block argmin fold of ``min_median`` (256
threads, called directly: a 256-thread select per row of a large enough
tile would take minutes here), ``min_median`` end to end with the production
tiles, and the atomic count of ``count_within`` (128-thread blocks).
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from cs_fast.kernels import cuda as ck  # noqa: E402
from cs_fast.kernels.cuda import featurize as kf  # noqa: E402
from cs_fast.kernels.cuda import radix, runtime  # noqa: E402
from cs_fast.metrics import get_metric  # noqa: E402

from numba.core import config  # noqa: E402

SIMULATED = bool(config.ENABLE_CUDASIM)


pytestmark = pytest.mark.slow  # production block sizes under the simulator: the slow set


@pytest.fixture
def production():
    """The GPU's block sizes (kernels built with them)."""
    with ck.block_sizes(small=False):
        yield


def _brute_min_median(D):
    k = (len(D) + 1) // 2
    med = np.sort(D, axis=1)[:, k - 1]
    return int(np.argmin(med)), float(med.min())


@pytest.mark.parametrize("m, threads", [(250, 256), (1000, 1024)])
def test_order_statistic_with_256_and_1024_thread_blocks(production, m, threads):
    rng = np.random.default_rng(5)
    d = np.round(rng.random(m), 2)  # ties: at most 101 distinct values
    assert runtime.select_threads(len(d), 1024) == threads
    s = np.sort(d)
    dd = cuda.to_device(d)
    for k in (1, 2, m // 2, m - 1, m):
        assert ck.order_statistic(dd, k) == s[k - 1], k


def test_argmin_fold_with_256_threads(production):
    """The one-block fold of min_median at its widest: first index among ties, only if below the best."""
    fold_best = radix.fold_kernel()
    rng = np.random.default_rng(6)
    med = rng.random(200) + 1.0
    med[[37, 150]] = 0.5  # a tie at the minimum: the first index wins
    med[190:] = np.inf  # rows the counting pass pruned
    best = cuda.to_device(np.array([np.inf]))
    best_index = cuda.to_device(np.array([-1], dtype=np.int64))
    fold_best[1, runtime.REDUCE_THREADS](cuda.to_device(med), 200, 1000, best, best_index)
    assert (best.copy_to_host()[0], best_index.copy_to_host()[0]) == (0.5, 1037)
    fold_best[1, runtime.REDUCE_THREADS](cuda.to_device(med + 0.1), 200, 2000, best, best_index)
    assert (best.copy_to_host()[0], best_index.copy_to_host()[0]) == (0.5, 1037)  # not below the best: kept


def test_min_median_with_production_blocks(production):
    rng = np.random.default_rng(6)
    n = 26
    X = rng.standard_normal((n, 3))
    X[7] = X[20]  # an exact tie between rows
    D = get_metric("l1").reference(X, X, {})
    dX = cuda.to_device(X)
    assert ck.min_median("l1", dX, 0) == _brute_min_median(D)
    assert ck.min_median("l1", dX, 0, tile=9) == _brute_min_median(D)  # later tiles pruned by the count


def test_count_within_with_128_thread_blocks(production):
    rng = np.random.default_rng(7)
    d = np.round(rng.random(1000), 2)
    assert kf.THREADS == 128 and len(d) > 7 * kf.THREADS  # eight blocks of 128 threads
    dd = cuda.to_device(d)
    for bound in (-1.0, 0.0, 0.5, 0.37, 1.0):
        assert kf.count_within(dd, bound) == int(np.sum(d <= bound)), bound
