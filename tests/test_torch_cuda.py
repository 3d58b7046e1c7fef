"""CUDA torch tensors through the public API (runs where torch sees a GPU, else skips).

Zero-copy in, torch CUDA tensors out on the caller's device, and
CenterSmoothing with a CUDA torch model keeping its samples on the GPU.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cs_fast  # noqa: E402
from cs_fast.models.toy import blob_detector, blob_image  # noqa: E402

if not torch.cuda.is_available():
    pytest.skip("torch sees no CUDA device (torch.cuda.is_available() is False)", allow_module_level=True)


def _numba_cuda_usable():
    try:
        from numba import cuda

        return cuda.is_available()
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _numba_cuda_usable(), reason="numba-cuda cannot use the GPU here")
METRICS = [("l2", (6,)), ("l1", (6,)), ("sqfeat", (6,)), ("angular", (6,)), ("tv", (2, 4, 5)), ("jaccard", None)]


def _samples(name, shape, n, rng):
    if name == "jaccard":
        xy = rng.uniform(0, 10, size=(n, 2))
        return np.concatenate([xy, xy + rng.uniform(-1, 5, size=(n, 2))], axis=1).astype(np.float32)
    return (rng.standard_normal((n,) + shape) + 0.5).astype(np.float32)


@pytest.mark.parametrize("name, shape", METRICS)
def test_cuda_tensors_in_cuda_tensors_out(name, shape):
    rng = np.random.default_rng(0)
    XA, XB = _samples(name, shape, 9, rng), _samples(name, shape, 7, rng)
    tA, tB = torch.from_numpy(XA).cuda(), torch.from_numpy(XB).cuda()
    got = cs_fast.cdist(tA, tB, name)
    assert isinstance(got, torch.Tensor) and got.device == tA.device and got.dtype == torch.float32
    np.testing.assert_allclose(got.cpu().numpy(), cs_fast.cdist(XA, XB, name), rtol=2e-5, atol=2e-6)
    d = cs_fast.to_center(tA, tA[3], name)
    assert d.device == tA.device
    np.testing.assert_allclose(d.cpu().numpy(), cs_fast.to_center(XA, XA[3], name), rtol=2e-5, atol=2e-6)
    assert cs_fast.min_median(tA, name)[0] == cs_fast.min_median(XA, name)[0]
    np.testing.assert_allclose(cs_fast.pdist(tA, name).cpu().numpy(), cs_fast.pdist(XA, name), rtol=2e-5, atol=2e-6)


def test_cuda_tensor_errors():
    t = torch.zeros(3, 4, device="cuda")
    with pytest.raises(ValueError, match="the CPU backend does not copy device data"):
        cs_fast.cdist(t, t, "l2", backend="cpu")
    with pytest.raises(ValueError, match="host memory but XA"):
        cs_fast.cdist(t, t.cpu(), "l2")


def test_center_smoothing_with_a_cuda_model_keeps_the_center_on_the_gpu():
    x = blob_image().cuda()
    sm = cs_fast.CenterSmoothing(blob_detector, "jaccard", 0.3, seed=0)
    cert = sm.certify(x, 0.1, n=2000, m=4000, delta=0.1)
    assert not cert.abstained, cert.reason
    assert isinstance(cert.center, torch.Tensor) and cert.center.device == x.device
    host = cs_fast.CenterSmoothing(blob_detector, "jaccard", 0.3, seed=0).certify(x.cpu(), 0.1, n=2000, m=4000,
                                                                                   delta=0.1)
    # Different generators (CUDA vs CPU) draw different noise: the same box, similar radii.
    assert torch.equal(cert.center.cpu(), host.center)
    assert cert.eps_out == pytest.approx(host.eps_out, abs=0.15)


def test_kernels_run_on_the_callers_current_stream():
    """A model writing on a side stream: cs_fast's kernels queue behind it on that stream, so they read
    finished outputs without any host synchronization (issue 15, item 4)."""
    from cs_fast.bindings.arrays import launch_settings

    rng = np.random.default_rng(3)
    X = torch.from_numpy(rng.standard_normal((4000, 256)).astype(np.float32)).cuda()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        stream, allocate = launch_settings(("torch", X.device))
        assert int(stream) == side.cuda_stream
        # The output is produced on the side stream and used at once, unsynchronized.
        Y = (X * 2.0).contiguous()
        d = cs_fast.to_center(Y, Y[7], "l1")
        D = cs_fast.cdist(Y[:50], Y[:60], "l1")
    torch.cuda.synchronize()
    host = (X.cpu().numpy() * 2.0)
    np.testing.assert_allclose(d.cpu().numpy(), np.abs(host - host[7]).sum(1), rtol=1e-4)
    np.testing.assert_allclose(D.cpu().numpy(), np.abs(host[:50, None] - host[None, :60]).sum(2), rtol=1e-4)


def test_certification_on_the_gpu_reads_back_once_per_call():
    """The device certification distances: one preallocated array, equal to the per-batch to_center path."""
    x = blob_image().cuda()
    sm = cs_fast.CenterSmoothing(blob_detector, "jaccard", 0.3, seed=0, batch_size=500)
    out = blob_detector(x.unsqueeze(0))
    from cs_fast.bindings.arrays import device_view
    from cs_fast.bindings.device import take_row

    center = take_row(device_view(out, "c")[0], 0)
    d = sm.certification_distances(x, center, 3000)
    assert d.shape == (3000,)
    again = sm.certification_distances(x, center, 3000, first_batch=2, stop_batch=4)
    np.testing.assert_array_equal(again.copy_to_host(), d.copy_to_host()[1000:2000])
