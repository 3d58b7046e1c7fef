"""pytest-benchmark: distances to one center, and the center itself (min_median).

``min_median`` is compared with the authors' method (a Python loop over rows,
``np.median``, ``argmin``) and with a full matrix followed by ``np.median``,
``np.partition`` or ``torch.median``. One untimed warm-up round per case
keeps JIT compilation out of the timings. ``python -m pytest bench``.
"""

import os

import numpy as np
import pytest

from cs_fast_apps.bench.run import op_args, suite_cases

SCALE = float(os.environ.get("CS_FAST_BENCH_SCALE", "1"))
TO_CENTER = suite_cases("to_center", SCALE)
MIN_MEDIAN = suite_cases("min_median", SCALE)


def _ids(cases):
    return [f"{w.key}-n{n}-{i.name}" for w, n, i in cases]


@pytest.mark.parametrize("workload,n,impl", TO_CENTER, ids=_ids(TO_CENTER))
def test_to_center(benchmark, workload, n, impl):
    X = workload.make(n)
    benchmark.group = f"to_center {workload.key} n={n}"
    d = benchmark.pedantic(impl.fn, args=op_args("to_center", X), rounds=5, iterations=1, warmup_rounds=1)
    assert np.asarray(d).shape == (n,)


@pytest.mark.parametrize("workload,n,impl", MIN_MEDIAN, ids=_ids(MIN_MEDIAN))
def test_min_median(benchmark, workload, n, impl):
    X = workload.make(n)
    benchmark.group = f"min_median {workload.key} n={n}"
    index, radius = benchmark.pedantic(impl.fn, args=op_args("min_median", X), rounds=3, iterations=1,
                                       warmup_rounds=1)
    assert 0 <= index < n and np.isfinite(radius)
