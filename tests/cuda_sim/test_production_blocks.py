"""Every device reduction at its production block size, under the simulator too.

The simulator build shrinks blocks (4-thread selects, 4 x 4 tiles, 8-thread
1-D blocks) to keep tests fast; these tests switch the production
configuration back on and run each reduction once at full width: the block
radix select and its counting pass (256 threads a row in ``min_median``,
1024 in ``order_statistic``), the one-block argmin fold (256 threads), and
the atomic count of ``count_within`` (128-thread blocks).
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from cs_fast.kernels import cuda as ck  # noqa: E402
from cs_fast.kernels import cuda_featurize as kf  # noqa: E402
from cs_fast.metrics import get_metric  # noqa: E402

from numba.core import config  # noqa: E402

SIMULATED = bool(config.ENABLE_CUDASIM)


@pytest.fixture
def production(monkeypatch):
    """The GPU's block sizes (kernels rebuilt with them)."""
    monkeypatch.setattr(ck, "_simulated", lambda: False)
    monkeypatch.setattr(ck, "_KERNELS", {})
    monkeypatch.setattr(kf, "_KERNELS", {})


def _brute_min_median(D):
    k = (len(D) + 1) // 2
    med = np.sort(D, axis=1)[:, k - 1]
    return int(np.argmin(med)), float(med.min())


def test_order_statistic_with_1024_thread_blocks(production):
    rng = np.random.default_rng(5)
    d = np.round(rng.random(1000), 2)  # ties: 101 distinct values over 1000 entries
    assert ck._select_threads(len(d), 1024) == 1024
    s = np.sort(d)
    dd = cuda.to_device(d)
    for k in (1, 2, 500, 999, 1000):
        assert ck.order_statistic(dd, k) == s[k - 1], k


def test_min_median_select_and_fold_with_256_thread_blocks(production):
    rng = np.random.default_rng(6)
    n = 230  # > 224: 256-thread selects; one tile of 230 rows: a 256-thread argmin fold
    X = rng.standard_normal((n, 3))
    X[7] = X[100]  # an exact tie between rows
    assert ck._select_threads(n, 256) == 256
    assert min(ck.REDUCE_THREADS, 1 << max(5, (n - 1).bit_length())) == 256  # the fold's width for this tile
    D = get_metric("l1").reference(X, X, {})
    dX = cuda.to_device(X)
    assert ck.min_median("l1", dX, 0) == _brute_min_median(D)
    # Tiles of 129 rows: the counting pass prunes the second tile against the first tile's best.
    assert ck.min_median("l1", dX, 0, tile=129) == _brute_min_median(D)


def test_count_within_with_128_thread_blocks(production):
    rng = np.random.default_rng(7)
    d = np.round(rng.random(1000), 2)
    assert kf._THREADS == 128 and len(d) > 7 * kf._THREADS  # eight blocks of 128 threads
    dd = cuda.to_device(d)
    for bound in (-1.0, 0.0, 0.5, 0.37, 1.0):
        assert kf.count_within(dd, bound) == int(np.sum(d <= bound)), bound
