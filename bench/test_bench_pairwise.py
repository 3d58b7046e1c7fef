"""pytest-benchmark: full distance matrices, cs_fast vs scipy / torch / scikit-learn / numpy.

Run with ``python -m pytest bench`` (``CS_FAST_BENCH_SCALE=2`` doubles every n).
Each case has one untimed warm-up round, so numba's JIT compilation is not
measured; cases of one workload share a benchmark group, so the comparison
table lines cs_fast up against its peers on the same data.
"""

import os

import numpy as np
import pytest

import cs_fast
from cs_fast_apps.bench import peers
from cs_fast_apps.bench.run import op_args, suite_cases

SCALE = float(os.environ.get("CS_FAST_BENCH_SCALE", "1"))
CASES = suite_cases("pairwise", SCALE)


@pytest.mark.parametrize("workload,n,impl", CASES, ids=[f"{w.key}-n{n}-{i.name}" for w, n, i in CASES])
def test_pairwise(benchmark, workload, n, impl):
    X = workload.make(n)
    benchmark.group = f"pairwise {workload.key} n={n}"
    D = benchmark.pedantic(impl.fn, args=op_args("pairwise", X), rounds=3, iterations=1, warmup_rounds=1)
    assert np.asarray(D).shape == (n, n)


PDIST = [("tv1x28x28", "cityblock"), ("sqfeat4096", "sqeuclidean")]


@pytest.mark.parametrize("key,scipy_metric", PDIST)
@pytest.mark.parametrize("who", ["cs_fast", "scipy pdist"])
def test_pdist(benchmark, key, scipy_metric, who):
    from scipy.spatial.distance import pdist

    w = next(w for w, _, _ in CASES if w.key == key)
    X = w.make(max(2, int(500 * SCALE)))
    if who == "cs_fast":
        fn = lambda: cs_fast.pdist(X, w.metric)  # noqa: E731
    else:
        feats = peers.tv_features if w.metric == "tv" else (lambda Z: Z.reshape(len(Z), -1))
        fn = lambda: pdist(feats(X), scipy_metric)  # noqa: E731
    benchmark.group = f"pdist {key} n={len(X)}"
    out = benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (len(X) * (len(X) - 1) // 2,)
