"""cs_fast.kernels.cuda.prune against the device brute force, bit for bit (simulator-sized)."""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from conftest import make_samples, resolve_params  # noqa: E402  (tests/conftest.py)

import cs_fast  # noqa: E402
from cs_fast.kernels.cpu import distances  # noqa: E402
from cs_fast.kernels import cuda as ck  # noqa: E402
from cs_fast.kernels.cuda import prune as cuda_prune  # noqa: E402
from cs_fast.metrics import check_metric_params, get_metric, reduction_for  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in scalar multiply:RuntimeWarning")


def features(name, X, params):
    m = get_metric(name)
    params = check_metric_params(m, params)
    F = m.featurize(m.prepare(X, "Z", params), params)
    return F, reduction_for(m, F)


def run_both(red, F, tile, root):
    dF = cuda.to_device(F.data)
    brute = ck.min_median(red, dF, F.arg, tile=tile)
    stats = {}
    pruned = cuda_prune.min_median(red, dF, F.arg, tile=tile, root=root, stats=stats)
    return brute, pruned, stats


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,tile", [(1, None), (2, 1), (3, 2), (12, 3), (17, 4)])
def test_pruned_equals_device_brute_force(case, dtype, n, tile, rng):
    name, params, shape = case
    params = resolve_params(params, shape, rng)
    X = make_samples(name, rng, n, dtype, shape)
    F, red = features(name, X, params)
    brute, pruned, stats = run_both(red, F, tile, red.squared_metric)
    assert pruned == brute  # index and radius, bit for bit
    assert stats["rows_full"] + stats["rows_skipped"] == n
    assert stats["pairs"] == n * n and stats["evaluated"] == stats["rows_full"] * n


def _boxes(kind, rng, n):
    if kind == "jittered":
        return np.array([30.0, 40.0, 80.0, 120.0]) + rng.normal(0, 6, (n, 4))
    if kind == "saturated":
        xy = rng.uniform(0, 1000, (n, 2))
        return np.concatenate([xy, xy + rng.uniform(1, 5, (n, 2))], axis=1)
    if kind == "duplicates":
        return np.repeat(np.array([30.0, 40.0, 80.0, 120.0]) + rng.normal(0, 6, (n // 4, 4)), 4, axis=0)
    if kind == "all_empty":
        return np.tile([[5.0, 5.0, 1.0, 1.0]], (n, 1))
    return np.where((np.arange(n) % 2 == 0)[:, None], [[0.0, 0.0, -1.0, 4.0]], rng.normal(10, 1, (n, 4)))


@pytest.mark.parametrize("kind", ["jittered", "saturated", "duplicates", "all_empty", "half_empty"])
def test_tie_heavy_boxes_on_the_device(kind, rng):
    X = _boxes(kind, rng, 24)
    F, red = features("jaccard", X, {})
    brute, pruned, _ = run_both(red, F, 3, False)
    assert pruned == brute
    host = distances.min_median(red, F.data, F.arg, 5)
    assert pruned[0] == host[0]  # the box distances are the host's up to FMA rounding


def test_identical_samples_skip_everything_after_the_first_tile(rng):
    X = np.repeat(rng.standard_normal((1, 5)), 30, axis=0)
    F, red = features("l2", X, {})
    brute, pruned, stats = run_both(red, F, 4, False)
    assert pruned == brute == (0, 0.0)
    assert stats["rows_skipped"] > 0


@pytest.mark.parametrize("name", ["l2", "sqfeat"])
def test_clustered_rows_are_skipped_and_the_result_is_exact(name, rng):
    X = rng.normal(0, 1, (48, 3))
    X[:24] *= 0.05  # a tight core and a spread halo: the halo's rows bound each other out
    F, red = features(name, X, {})
    brute, pruned, stats = run_both(red, F, 4, red.squared_metric)
    assert pruned == brute
    assert stats["rows_skipped"] > 5


def test_a_wrong_margin_is_caught_on_the_device():
    caught = 0
    for seed in range(6):
        X = np.array([30.0, 40.0, 80.0, 120.0]) + np.random.default_rng(seed).normal(0, 6, (40, 4))
        F, red = features("jaccard", X, {})
        dF = cuda.to_device(F.data)
        truth = ck.min_median(red, dF, F.arg, tile=4)
        caught += cuda_prune.min_median(red, dF, F.arg, tile=4, margin=(-0.3, 0.0)) != truth
    assert caught > 0


def test_bindings_choose_the_method_on_the_device(rng):
    X = np.array([30.0, 40.0, 80.0, 120.0]) + rng.normal(0, 6, (20, 4))
    dX = cuda.to_device(X)
    stats = {}
    pruned = cs_fast.min_median(dX, "jaccard", tile=3, method="pruned", stats=stats)
    assert pruned == cs_fast.min_median(dX, "jaccard", tile=3, method="brute")
    assert 0 < stats["fraction"] <= 1


@pytest.mark.parametrize("metric", ["jaccard", "tv"])
def test_device_stats_are_filled_on_the_brute_force_path_too(rng, metric):
    X = (np.array([30.0, 40.0, 80.0, 120.0]) + rng.normal(0, 6, (12, 4)) if metric == "jaccard"
         else rng.normal(size=(12, 3, 4)))
    stats = {}
    got = cs_fast.min_median(cuda.to_device(X), metric, tile=4, method="brute", stats=stats)
    assert got == cs_fast.min_median(X, metric, method="brute")
    assert stats["method"] == "brute" and stats["pairs"] == 144 and stats["rows_full"] == 12
    # the device's count exits early without a tally: n^2 is its stated upper bound
    assert stats["evaluated"] == 144 and stats["fraction"] == 1.0 and stats["recomputed"] == 0
