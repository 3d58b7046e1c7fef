"""One arithmetic per pair on the device: the center, its radius and the front doors agree bit for bit.

The device twin of ``tests/test_exact_fuzz.py`` on small cases of the same
generator (under the simulator every CUDA thread is a Python thread): for every
metric and dtype, device ``min_median`` (brute force and pruned) is the brute
force over the device's own canonical distances (``to_center`` of every row),
its radius the lower median of its own ``to_center`` row; float64 ``cdist``,
``pdist`` and ``paired`` give the same bits; the center is the CPU's, and the
device's distances are within the metric's stated bound of the exact ones.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

import cs_fast  # noqa: E402
from cs_fast.bindings import device  # noqa: E402
from cs_fast.bindings.distance import to_center64  # noqa: E402
from cs_fast.kernels import cuda as ck  # noqa: E402
from cs_fast.metrics import check_metric_params, get_metric, reduction_for  # noqa: E402
from exact_reference import reference  # noqa: E402  (tests/)
from test_exact_fuzz import METRICS, lower_median, make_case  # noqa: E402  (tests/)

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in scalar multiply:RuntimeWarning")

# One case a metric and dtype (the simulator starts a Python thread per CUDA thread of every launch):
# float64 the largest offset with differences of 1e-6 of it, float32 a middle regime (make_case's seeds).
CASES = [(metric, dtype, n, seed) for metric in METRICS for dtype, n, seed in ((np.float64, 9, 1), (np.float32, 10, 2))
         if not (metric == "jaccard_mask" and dtype == np.float32)]


def _host(x):
    return np.asarray(x.copy_to_host() if hasattr(x, "copy_to_host") else x)


def _id(case):
    metric, dtype, n, seed = case
    return f"{metric}-{np.dtype(dtype).name}-n{n}-s{seed}"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_device_center_is_its_own_canonical_brute_force(case):
    metric, dtype, n, seed = case
    X, params, label = make_case(metric, dtype, n, seed)
    where = f"{_id(case)} {label}"
    dX = cuda.to_device(X)
    got = {method: cs_fast.min_median(dX, metric, method=method, **params) for method in ("brute", "pruned")}
    assert got["brute"] == got["pruned"], f"{where}: {got}"
    index, radius = got["brute"]
    # The device's canonical distances of every pair in one launch (the simulator starts a Python thread
    # per CUDA thread of every launch: n to_center calls would cost minutes), then to_center on the center.
    m = get_metric(metric)
    params = check_metric_params(m, params)
    F = device.featurize(m, m.prepare(dX, "Z", params, device.DEVICE_OPS), params)
    D = _host(ck.pairwise(reduction_for(m, F), F.data, F.data, F.arg, np.float64))
    own = _host(to_center64(dX, dX[index], metric, params)[0])
    assert np.array_equal(own, D[index]), f"{where}: to_center differs from the pairwise kernel"
    assert np.array_equal(D, D.T), f"{where}: device distances not symmetric bit for bit"
    assert radius == lower_median(own), f"{where}: radius is not its to_center row's lower median"
    k = (n + 1) // 2
    meds = np.partition(D, k - 1, axis=1)[:, k - 1]
    assert (index, radius) == (int(np.flatnonzero(meds == meds.min())[0]), float(meds.min())), where
    out = np.float32 if dtype == np.float32 else np.float64
    if out == np.float64 or metric in ("jaccard", "angular") or params.get("weights") is not None:
        assert np.array_equal(_host(cs_fast.cdist(dX, dX, metric, **params)), D.astype(out)), where
        assert np.array_equal(_host(cs_fast.pdist(dX, metric, **params)), D[np.triu_indices(n, 1)].astype(out))
    perm = np.random.default_rng(seed).permutation(n)
    assert np.array_equal(_host(cs_fast.paired(dX, cuda.to_device(X[perm]), metric, **params)),
                          D[np.arange(n), perm].astype(out)), where
    # The CPU finds the same center (its own canonical distances may round differently: each backend
    # sums in its own order), and both are within the stated bound of the exact distances.
    host_index, host_radius = cs_fast.min_median(X, metric, **params)
    exact = reference(metric, X[index:index + 1], X, params)
    bound = get_metric(metric).error_bound(X[index:index + 1], X, params, exact.astype(np.float64))
    assert (np.abs(D[index:index + 1].astype(np.longdouble) - exact) <= bound).all(), where
    assert host_index == index or abs(host_radius - radius) <= 2 * bound.max(), where


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("params", [{}, {"channel_norm": 2}])
def test_device_tv_estimate_features_equal_the_host_ones(dtype, params, rng):
    metric = get_metric("tv")
    params = check_metric_params(metric, params)
    X = (1e3 + rng.standard_normal((7, 3, 4, 5))).astype(dtype)
    host_est = metric.estimate(X, params)
    dev_est = device.estimate(metric, metric.prepare(cuda.to_device(X), "X", params, device.DEVICE_OPS), params)
    assert (dev_est.reduction, dev_est.arg) == (host_est.reduction, host_est.arg)
    np.testing.assert_array_equal(_host(dev_est.data), host_est.data)  # the same centre, the same arithmetic
    np.testing.assert_allclose(dev_est.bound.E, host_est.bound.E, rtol=1e-12)  # norms summed in another order
    assert dev_est.bound.rho == host_est.bound.rho
