"""The selection kernels' source run as plain Python, against np.sort: every k, ties, sorted and reversed rows.

``cs_fast.kernels.select`` is plain Python that numba compiles (kernels/retarget.py);
calling it directly tests the very source the kernels are built from, without
compiling it (the compiled kernels have their own parity tests: test_min_median.py).
It also lets mutation testing (bench/mutation.py) check this file in seconds.
"""

import numpy as np
import pytest

from cs_fast.kernels import select


def _rows():
    rng = np.random.default_rng(3)
    rows = [np.array([2.5]), np.array([1.0, 1.0]), np.array([2.0, 1.0]), np.array([1.0, 2.0, 3.0])]
    for n in (5, 6, 7, 16, 17, 33):
        rows.append(rng.random(n))
        rows.append(rng.integers(0, 3, n).astype(np.float64))  # heavy ties
        rows.append(np.sort(rng.random(n)))
        rows.append(np.sort(rng.random(n))[::-1].copy())
        rows.append(np.full(n, 0.25))
        rows.append(np.concatenate([np.zeros(n // 2), rng.random(n - n // 2)]))  # many zeros: d(x, x)
    return rows


ROWS = _rows()


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"n{len(r)}")
def test_kth_smallest_every_k(row):
    s = np.sort(row)
    for k in range(1, len(row) + 1):
        buf = row.copy()
        assert select.kth_smallest(buf, k) == s[k - 1], k
        np.testing.assert_array_equal(np.sort(buf), s)  # reordered in place, nothing lost or duplicated


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"n{len(r)}")
def test_count_below_is_strict(row):
    bounds = list(np.unique(row)) + [row.min() - 1.0, row.max() + 1.0, np.inf, -np.inf]
    for b in bounds:
        assert select.count_below(row, b) == int(np.sum(row < b)), b
