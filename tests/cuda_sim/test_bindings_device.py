"""The public API on device arrays: numba device arrays and bare ``__cuda_array_interface__`` objects.

Results must equal the CPU path on the same data (same metric parameters, every
metric, float32 and float64), device featurize must reproduce the host
featurize exactly, validation must say the same as on the host, and
CenterSmoothing with a model that returns device arrays must certify as the
host path does. Sizes are tiny: under the simulator every CUDA thread is a
Python thread.
"""

import math

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from conftest import CASES, case_id, make_samples, resolve_params  # noqa: E402

import cs_fast  # noqa: E402
from cs_fast.bindings import device  # noqa: E402
from cs_fast.bindings.distance import paired  # noqa: E402
from cs_fast.kernels import cuda as ck  # noqa: E402
from cs_fast.metrics import check_metric_params, get_metric  # noqa: E402

from numba.core import config  # noqa: E402

SIMULATED = bool(config.ENABLE_CUDASIM)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in scalar multiply:RuntimeWarning")


class InterfaceOnly:
    """Exposes nothing but ``__cuda_array_interface__`` (as a foreign GPU library would)."""

    def __init__(self, host):
        self._dev = cuda.to_device(host)

    @property
    def __cuda_array_interface__(self):
        if SIMULATED:  # the simulator's device arrays are numpy arrays and export no interface
            ai = self._dev._ary.__array_interface__
            return {"shape": ai["shape"], "typestr": ai["typestr"], "data": ai["data"],
                    "strides": ai["strides"], "version": 3}
        return self._dev.__cuda_array_interface__


def host(x):
    assert ck.cuda_module().is_cuda_array(x) if not SIMULATED else type(x).__name__ == "FakeCUDAArray"
    return x.copy_to_host()


def close(dtype):
    return dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)


DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_entry_point_on_numba_device_arrays_equals_the_cpu_path(case, dtype, rng):
    name, params, shape = case
    params = resolve_params(params, shape, rng)
    XA = make_samples(name, rng, 5, dtype, shape)
    XB = make_samples(name, rng, 4, dtype, shape)
    dA, dB = cuda.to_device(XA), cuda.to_device(XB)
    expect = cs_fast.cdist(XA, XB, name, **params)
    got = host(cs_fast.cdist(dA, dB, name, **params))
    assert got.dtype == expect.dtype
    np.testing.assert_allclose(got, expect, **close(expect.dtype))
    np.testing.assert_allclose(host(cs_fast.pdist(dA, name, **params)), cs_fast.pdist(XA, name, **params),
                               **close(expect.dtype))
    np.testing.assert_allclose(host(cs_fast.to_center(dA, cuda.to_device(XA[2]), name, **params)),
                               cs_fast.to_center(XA, XA[2], name, **params), **close(expect.dtype))
    np.testing.assert_allclose(host(paired(dA[:4], dB, name, **params)), paired(XA[:4], XB, name, **params),
                               **close(expect.dtype))
    index, radius = cs_fast.min_median(dA, name, **params)
    h_index, h_radius = cs_fast.min_median(XA, name, **params)
    assert index == h_index
    assert radius == pytest.approx(h_radius, **{"rel": close(expect.dtype)["rtol"], "abs": 1e-6})


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_interface_only_objects_work_and_come_back_as_device_arrays(case, rng):
    name, params, shape = case
    params = resolve_params(params, shape, rng)
    XA = make_samples(name, rng, 5, np.float64, shape)
    XB = make_samples(name, rng, 3, np.float64, shape)
    A, B = InterfaceOnly(XA), InterfaceOnly(XB)
    np.testing.assert_allclose(host(cs_fast.cdist(A, B, name, **params)), cs_fast.cdist(XA, XB, name, **params),
                               **close(np.float64))
    np.testing.assert_allclose(host(cs_fast.to_center(A, InterfaceOnly(XB[0]), name, **params)),
                               cs_fast.to_center(XA, XB[0], name, **params), **close(np.float64))
    assert cs_fast.min_median(A, name, **params)[0] == cs_fast.min_median(XA, name, **params)[0]


def test_interface_only_pdist_and_paired_float32(rng):
    X = rng.standard_normal((5, 6)).astype(np.float32)
    np.testing.assert_allclose(host(cs_fast.pdist(InterfaceOnly(X), "l1")), cs_fast.pdist(X, "l1"), rtol=2e-6)
    np.testing.assert_allclose(host(paired(InterfaceOnly(X), InterfaceOnly(X[::-1].copy()), "l2")),
                               paired(X, X[::-1].copy(), "l2"), rtol=2e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_device_featurize_equals_host_featurize(case, dtype, rng):
    name, params, shape = case
    metric = get_metric(name)
    params = check_metric_params(metric, resolve_params(params, shape, rng))
    X = make_samples(name, rng, 6, dtype, shape)
    F = metric.featurize(metric.prepare(X, "X", params), params)
    G = device.featurize(metric, metric.prepare(cuda.to_device(X), "X", params, device.DEVICE_OPS), params)
    got = host(G.data)
    assert got.dtype == F.data.dtype and got.shape == F.data.shape and G.reduction == F.reduction
    if hasattr(F.arg, "shape"):  # weighted sqfeat: the float64 weights, uploaded
        np.testing.assert_array_equal(host(G.arg), F.arg)
    else:
        assert G.arg == F.arg
    np.testing.assert_array_equal(got, F.data)


def test_mask_packing_matches_packbits_on_awkward_lengths(rng):
    metric = get_metric("jaccard_mask")
    for length in (1, 7, 8, 63, 64, 65, 129):
        M = rng.random((3, length)) < 0.5
        expect = metric.featurize(M, {}).data
        got = host(device.featurize(metric, cuda.to_device(M), {}).data)
        np.testing.assert_array_equal(got, expect)


def test_strided_and_integer_device_inputs(rng):
    X = rng.integers(-5, 5, size=(4, 12)).astype(np.int32)
    dX = cuda.to_device(X)
    np.testing.assert_allclose(host(cs_fast.cdist(dX, dX, "l1")), cs_fast.cdist(X, X, "l1"))
    Y = rng.standard_normal((5, 12))
    strided = cuda.to_device(Y)[:, ::3]
    np.testing.assert_allclose(host(cs_fast.pdist(strided, "l2")), cs_fast.pdist(Y[:, ::3], "l2"), rtol=1e-12)


# --------------------------------------------------------------------------- errors


def _message(fn):
    with pytest.raises((ValueError, TypeError)) as err:
        fn()
    return type(err.value), str(err.value)


@pytest.mark.parametrize("make, metric", [
    (lambda rng: np.where(np.arange(12).reshape(4, 3) % 5 == 1, np.nan, 1.0), "l2"),  # NaN rows
    (lambda rng: np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]), "angular"),  # zero rows
    (lambda rng: np.zeros((4, 3)), "jaccard"),  # wrong width
    (lambda rng: np.zeros((2, 3, 4, 5, 6)), "tv"),  # wrong rank
    (lambda rng: np.zeros((2, 5)), "jaccard_mask"),  # not boolean
    (lambda rng: np.zeros((3, 2), dtype=np.complex128), "l1"),  # not real
    (lambda rng: np.array([[0.0, 0.0, 1.0, np.inf]]), "jaccard"),  # inf box
])
def test_device_validation_says_what_the_host_says(make, metric, rng):
    X = make(rng)
    assert _message(lambda: cs_fast.pdist(cuda.to_device(X), metric)) == _message(lambda: cs_fast.pdist(X, metric))


def test_mixed_host_and_device_inputs_are_refused_naming_both(rng):
    X = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match=r"XB: received ndarray .* host memory but XA is .* CUDA device"):
        cs_fast.cdist(cuda.to_device(X), X, "l2")
    with pytest.raises(ValueError, match=r"center: .*host memory but Z"):
        cs_fast.to_center(cuda.to_device(X), X[0], "l2")
    with pytest.raises(ValueError, match=r"XA: .*host memory but XB"):
        paired(X, InterfaceOnly(X), "l2", backend="cuda")


def test_cpu_backend_refuses_device_data(rng):
    X = cuda.to_device(rng.standard_normal((3, 4)))
    with pytest.raises(ValueError, match="the CPU backend does not copy device data to the host"):
        cs_fast.min_median(X, "l2", backend="cpu")


def test_cuda_backend_with_host_data_returns_host_results(rng):
    X = rng.standard_normal((5, 4))
    got = cs_fast.cdist(X, X, "l1", backend="cuda")
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, cs_fast.cdist(X, X, "l1"), rtol=1e-12)
    assert cs_fast.min_median(X, "l1", backend="cuda")[0] == cs_fast.min_median(X, "l1")[0]


def test_min_median_max_memory_on_the_device(rng):
    X = cuda.to_device(rng.standard_normal((7, 3)))
    expect = cs_fast.min_median(X, "l1")
    assert cs_fast.min_median(X, "l1", max_memory=2 * 8 * 8) == expect  # 2-row tiles
    with pytest.raises(ValueError, match="max_memory"):
        cs_fast.min_median(X, "l1", max_memory=8)


# --------------------------------------------------------------------------- smoothing

_W = np.array([[1.0, 0.5, -0.2], [0.1, -1.0, 0.3]])


def _build_linear_kernel():
    @cuda.jit
    def linear(X, W, out):
        i, j = cuda.grid(2)
        if i < X.shape[0] and j < W.shape[0]:
            acc = 0.0
            for k in range(X.shape[1]):
                acc += X[i, k] * W[j, k]
            out[i, j] = acc

    return linear


def device_linear_model():
    """x -> W x computed by a small CUDA kernel: inputs are copied up, outputs stay on the device."""
    kernel = _build_linear_kernel()
    W = cuda.to_device(_W)

    def model(batch):
        X = cuda.to_device(np.ascontiguousarray(batch))
        out = cuda.device_array((X.shape[0], W.shape[0]))
        kernel[(math.ceil(X.shape[0] / 4), 1), (4, 2)](X, W, out)
        return out

    return model


def host_linear_model(batch):
    # Same order of operations as the kernel, so the two paths see the same outputs.
    out = np.zeros((batch.shape[0], _W.shape[0]))
    for k in range(batch.shape[1]):
        out += batch[:, k : k + 1] * _W[:, k]
    return out


def device_box_model():
    linear = device_linear_model()

    def model(batch):  # boxes [a, b, a + 2, b + 1] from the two linear outputs: copy of a host map
        z = linear(batch).copy_to_host()
        return cuda.to_device(np.stack([z[:, 0], z[:, 1], z[:, 0] + 2.0, z[:, 1] + 1.0], axis=1))

    return model


def host_box_model(batch):
    z = host_linear_model(batch)
    return np.stack([z[:, 0], z[:, 1], z[:, 0] + 2.0, z[:, 1] + 1.0], axis=1)


@pytest.mark.parametrize("metric, device_model, host_model", [
    ("l2", device_linear_model, host_linear_model),
    ("jaccard", device_box_model, host_box_model),
])
@pytest.mark.slow
def test_center_smoothing_with_a_device_model_certifies_as_the_host_path(metric, device_model, host_model):
    x = np.array([0.3, -0.2, 0.5])
    # Loose levels so that these tiny samples certify (the point is the comparison).
    kw = dict(n=60, m=100, delta=0.25, alpha1=0.3, alpha2=0.3)
    on_device = cs_fast.CenterSmoothing(device_model(), metric, 0.2, seed=11).certify(x, 0.05, **kw)
    on_host = cs_fast.CenterSmoothing(host_model, metric, 0.2, seed=11).certify(x, 0.05, **kw)
    assert on_device.abstained == on_host.abstained is False
    assert type(on_device.center).__name__ == ("FakeCUDAArray" if SIMULATED else "DeviceNDArray")
    np.testing.assert_allclose(on_device.center.copy_to_host(), on_host.center, rtol=1e-12, atol=1e-13)
    for field in ("radius", "delta2", "R", "eps_out", "smoothing_error"):
        assert getattr(on_device, field) == pytest.approx(getattr(on_host, field), rel=1e-12, abs=1e-13), field
    # Smooth-HD (candidates) takes the device path too.
    smooth = dict(n=60, delta=0.4, alpha1=0.3)
    hd = cs_fast.CenterSmoothing(device_model(), metric, 0.2, seed=3, candidates=4).smooth(x, **smooth)
    hd_host = cs_fast.CenterSmoothing(host_model, metric, 0.2, seed=3, candidates=4).smooth(x, **smooth)
    assert hd.abstained == hd_host.abstained is False
    np.testing.assert_allclose(hd.center.copy_to_host(), hd_host.center, rtol=1e-12, atol=1e-13)


def test_center_smoothing_checks_device_outputs_like_host_outputs():
    def bad(batch):
        out = np.ones((batch.shape[0], 2))
        out[1] = np.nan
        return cuda.to_device(out)

    def bad_host(batch):
        return bad(batch).copy_to_host()

    msgs = []
    for model in (bad, bad_host):
        with pytest.raises(ValueError) as err:
            cs_fast.CenterSmoothing(model, "l2", 0.1, seed=0).smooth(np.zeros(3), n=5)
        msgs.append(str(err.value))
    assert msgs[0] == msgs[1] and "model output: 1 of 5 rows contain NaN or inf" in msgs[0]
    with pytest.raises(ValueError, match="the CPU backend does not copy device data"):
        cs_fast.CenterSmoothing(device_linear_model(), "l2", 0.1, backend="cpu", seed=0).smooth(np.zeros(3), n=5)


@pytest.mark.parametrize("metric, shape", [("l2", (4,)), ("jaccard", (4,)), ("tv", (2, 3, 3))])
def test_empty_device_inputs_follow_scipy(metric, shape):
    empty = cuda.to_device(np.zeros((0,) + shape))
    full = cuda.to_device(np.ones((3,) + shape))
    assert cs_fast.cdist(empty, full, metric).shape == (0, 3)
    assert cs_fast.cdist(full, empty, metric).shape == (3, 0)
    assert cs_fast.pdist(empty, metric).shape == (0,)
    assert cs_fast.to_center(empty, cuda.to_device(np.ones(shape)), metric).shape == (0,)
    assert cs_fast.paired(empty, empty, metric).shape == (0,)
    with pytest.raises(ValueError, match="Z: received 0 samples"):
        cs_fast.min_median(empty, metric)
