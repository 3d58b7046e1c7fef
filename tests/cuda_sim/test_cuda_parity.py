"""cs_fast.kernels.cuda against the float64 references, the CPU kernels and brute force.

Sizes are tiny: under the simulator every CUDA thread is a Python thread. The
simulator build uses 4 x 4 tiles (``SIM_TILE``), so these sizes still cross
tile boundaries in rows and features; one test rebuilds with the production
configuration.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from conftest import make_samples, resolve_params  # noqa: E402  (tests/conftest.py)

from cs_fast.kernels.cpu import distances  # noqa: E402
from cs_fast.kernels import cuda as ck  # noqa: E402
from cs_fast.kernels import reductions  # noqa: E402
from cs_fast.kernels.cuda import direct, runtime  # noqa: E402
from cs_fast.metrics import (  # noqa: E402
    check_metric_params,
    get_metric,
    output_dtype,
    prepare_pair,
    reduction_for,
)

from numba.core import config  # noqa: E402

SIMULATED = bool(config.ENABLE_CUDASIM)

# Under the simulator, pair.py's popcount runs on numpy uint64 scalars, which warn
# on the (intended) wrap-around of its multiply.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in scalar multiply:RuntimeWarning")


def featurize(case, XA, XB, params):
    metric = get_metric(case)
    params = check_metric_params(metric, params)
    A, B = prepare_pair(metric, XA, XB, params)
    FA, FB = metric.featurize(A, params), metric.featurize(B, params)
    return metric, FA, FB, reduction_for(metric, FA), output_dtype(A)


def tolerance(dtype):
    return dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pairwise_matches_reference_and_cpu(case, dtype, rng):
    name, params, shape = case
    params = resolve_params(params, shape, rng)
    XA = make_samples(name, rng, 7, dtype, shape)
    XB = make_samples(name, rng, 6, dtype, shape)
    metric, FA, FB, red, out_dtype = featurize(name, XA, XB, params)
    got = ck.pairwise(red, cuda.to_device(FA.data), cuda.to_device(FB.data), FA.arg, out_dtype)
    got = got.copy_to_host()
    assert got.dtype == out_dtype and got.shape == (7, 6)
    ref = metric.reference(XA, XB, params)
    np.testing.assert_allclose(got, ref, **tolerance(out_dtype))
    # Not bit for bit: each backend blocks its sums its own way (and a GPU contracts to FMA).
    host = distances.pairwise(red, FA.data, FB.data, FA.arg, out_dtype)
    np.testing.assert_allclose(got, host, **tolerance(out_dtype))


@pytest.mark.parametrize("reduction", ["l1", "sq", "l2"])
def test_tiled_and_generic_kernels_agree(reduction, rng):
    A = rng.standard_normal((9, 11))
    B = rng.standard_normal((5, 11))
    dA, dB = cuda.to_device(A), cuda.to_device(B)
    tiled = cuda.device_array((9, 5))
    generic = cuda.device_array((9, 5))
    kernels = direct.reduction_kernels(reductions.get(reduction), runtime.simulated())
    direct.launch_grid(kernels.tiled, kernels.T, dA, dB, 0, tiled)
    direct.launch_grid(kernels.generic, kernels.T, dA, dB, 0, generic)
    np.testing.assert_allclose(tiled.copy_to_host(), generic.copy_to_host(), rtol=1e-13)


def test_pairwise_writes_into_a_given_output_and_handles_empty_inputs(rng):
    A = rng.standard_normal((3, 5))
    out = cuda.device_array((3, 3), dtype=np.float32)
    assert ck.pairwise("l1", cuda.to_device(A), cuda.to_device(A), 0, np.float32, out=out) is out
    np.testing.assert_allclose(out.copy_to_host(), get_metric("l1").reference(A, A, {}), rtol=1e-6)
    empty = ck.pairwise("l1", cuda.to_device(A[:0]), cuda.to_device(A), 0, np.float64)
    assert empty.shape == (0, 3)


def test_to_center_matches_reference(case, rng):
    name, params, shape = case
    params = resolve_params(params, shape, rng)
    X = make_samples(name, rng, 9, np.float64, shape)
    metric, F, C, red, _ = featurize(name, X, X[4:5], params)
    got = ck.to_center(red, cuda.to_device(F.data), cuda.to_device(C.data), F.arg).copy_to_host()
    np.testing.assert_allclose(got, metric.reference(X, X[4:5], params)[:, 0], rtol=1e-12, atol=1e-13)
    assert got[4] == 0.0


def test_paired_matches_reference_diagonal(case, rng):
    name, params, shape = case
    params = resolve_params(params, shape, rng)
    XA = make_samples(name, rng, 6, np.float64, shape)
    XB = make_samples(name, rng, 6, np.float64, shape)
    metric, FA, FB, red, _ = featurize(name, XA, XB, params)
    got = ck.paired(red, cuda.to_device(FA.data), cuda.to_device(FB.data), FA.arg).copy_to_host()
    ref = np.diag(metric.reference(XA, XB, params))
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


def brute_force(D):
    k = (len(D) + 1) // 2
    medians = np.sort(D, axis=1)[:, k - 1]
    index = int(np.argmin(medians))  # first index among ties
    return index, float(medians[index])


@pytest.mark.parametrize("n", [1, 6, 9])
@pytest.mark.parametrize("tile", [None, 4])
def test_min_median_is_exact_on_device_distances(case, n, tile, rng):
    """Selection is exact: the result is brute force on the device's own distance matrix."""
    name, params, shape = case
    params = resolve_params(params, shape, rng)
    X = make_samples(name, rng, n, np.float64, shape)
    metric, F, _, red, _ = featurize(name, X, X, params)
    dF = cuda.to_device(F.data)
    D = ck.pairwise(red, dF, dF, F.arg, np.float64).copy_to_host()
    got = ck.min_median(red, dF, F.arg, tile=tile)
    assert got == brute_force(D)
    # ... and the same center as the float64 reference and the CPU driver.
    ref_index, ref_radius = brute_force(metric.reference(X, X, params))
    host_index, host_radius = distances.min_median(red, F.data, F.arg, tile or n)
    assert got[0] == ref_index == host_index
    assert got[1] == pytest.approx(ref_radius, rel=1e-12, abs=1e-13)
    assert got[1] == pytest.approx(host_radius, rel=1e-12, abs=1e-13)


@pytest.mark.parametrize("n", [6, 7])
def test_min_median_ties_keep_the_smallest_index(n):
    X = np.tile(np.array([[1.0, 2.0, 3.0]]), (n, 1))
    X[0] += 50  # an outlier first: the winner is the first of the identical rows
    assert ck.min_median("l2", cuda.to_device(X), 0, tile=2) == (1, 0.0)
    # Rows 1 and 2 both have lower median 1 (k = 3), the others 2; across tiles too.
    P = cuda.to_device(np.array([[0.0], [1.0], [2.0], [3.0], [10.0]]))
    for tile in (None, 1, 2):
        assert ck.min_median("l1", P, 0, tile=tile) == (1, 1.0)


def test_min_median_even_n_uses_the_lower_median():
    # Distances from row 0: 0, 1, 10, 11 -> 2nd smallest 1, not 5.5; row 1 and row 2 tie at 1.
    X = cuda.to_device(np.array([[0.0], [1.0], [10.0], [11.0]]))
    assert ck.min_median("l1", X, 0) == (0, 1.0)


def test_min_median_streams_tiles_within_max_memory(rng):
    X = rng.standard_normal((9, 4))
    dX = cuda.to_device(X)
    expected = ck.min_median("l1", dX, 0)
    row_bytes = 8 * (9 + 1)
    assert ck.min_median("l1", dX, 0, max_memory=2 * row_bytes) == expected  # 2-row tiles
    with pytest.raises(ValueError, match="max_memory"):
        ck.min_median("l1", dX, 0, max_memory=row_bytes - 1)


def test_min_median_of_no_rows():
    assert ck.min_median("l1", cuda.to_device(np.zeros((0, 3))), 0) == (-1, np.inf)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_order_statistic_matches_sort(dtype, rng):
    d = rng.exponential(size=37).astype(dtype)
    d[[3, 9, 20]] = d[5]  # ties
    d[11] = 0.0
    dd = cuda.to_device(d)
    s = np.sort(d)
    for k in (1, 2, 6, 7, 19, 36, 37):
        assert ck.order_statistic(dd, k) == float(s[k - 1])


@pytest.mark.slow
def test_order_statistic_orders_negative_values_too(rng):
    d = rng.standard_normal(23)
    d[4] = -0.0
    s = np.sort(d)
    for k in (1, 5, 12, 23):
        assert ck.order_statistic(cuda.to_device(d), k) == s[k - 1]


@pytest.mark.parametrize("k", [0, 6, 2.0, True])
def test_order_statistic_rejects_k_out_of_range(k):
    with pytest.raises(ValueError, match="k: received"):
        ck.order_statistic(cuda.to_device(np.arange(5.0)), k)


@pytest.mark.slow
def test_production_tile_and_block_sizes(rng):
    """The GPU configuration (16 x 16 tiles, warp-sized select blocks) under the simulator too."""
    if not SIMULATED:
        pytest.skip("already the production configuration on a GPU")
    with ck.block_sizes(small=False):
        X = rng.standard_normal((18, 21))
        dX = cuda.to_device(X)
        D = ck.pairwise("l1", dX, dX, 0, np.float64).copy_to_host()
        np.testing.assert_allclose(D, get_metric("l1").reference(X, X, {}), rtol=1e-12)
        assert ck.min_median("l1", dX, 0, tile=7) == brute_force(D)
        assert ck.order_statistic(cuda.to_device(D[3]), 9) == np.sort(D[3])[8]
