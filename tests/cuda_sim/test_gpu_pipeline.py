"""Issue 15 on the device: streams, the sync-free certification pipeline, and the reshaped kernels.

Under the simulator (or on a GPU):

* every launch of a call on torch (CuPy) data goes to the caller's current
  torch (CuPy) stream and every scratch array comes from that library's pool:
  fake torch / CuPy objects, the simulator's launches recorded;
* certification distances go into one preallocated array, equal bit for bit
  to the per-batch ``to_center`` path, with the batches' checks read back
  once (not three synchronous checks per batch) and the same error messages;
* the multi-block ``order_statistic``, the warp-per-row ``to_center`` and the
  box ``min_median``'s float32 counting pass at production block sizes.
"""

import sys
import types

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

import cs_fast  # noqa: E402
from cs_fast.bindings import arrays, device  # noqa: E402
from cs_fast.bindings.distance import to_center64  # noqa: E402
from cs_fast.kernels import cuda as ck  # noqa: E402
from cs_fast.kernels.cuda import box, radix, runtime  # noqa: E402
from cs_fast.kernels.cuda import featurize as kf  # noqa: E402
from cs_fast.metrics import get_metric  # noqa: E402

from numba.core import config  # noqa: E402

SIMULATED = bool(config.ENABLE_CUDASIM)
sim_only = pytest.mark.skipif(not SIMULATED, reason="records the simulator's launches")


@pytest.fixture
def production():
    """The GPU's block sizes (kernels built with them)."""
    with ck.block_sizes(small=False):
        yield


# --------------------------------------------------------------------------- (a) streams


class FakeStream:
    """Stands in for numba's view of a torch / CuPy stream: launches must carry it."""

    def __init__(self, ptr):
        self.ptr = ptr
        self.syncs = 0

    def synchronize(self):
        self.syncs += 1

    def __int__(self):
        return self.ptr


def _interface(host):
    ai = host.__array_interface__
    return {"shape": ai["shape"], "typestr": ai["typestr"], "data": ai["data"], "strides": ai["strides"],
            "version": 3}


class FakeLibraryArray:
    """A GPU array of a library (its ``__cuda_array_interface__``: host memory under the simulator)."""

    def __init__(self, host, device=None):
        self.host = np.ascontiguousarray(host)
        if device is not None:
            self.device = device

    @property
    def __cuda_array_interface__(self):
        return _interface(self.host)

    def detach(self):
        return self

    def resolve_conj(self):
        return self

    def resolve_neg(self):
        return self


class FakeTorchTensor(FakeLibraryArray):
    pass


class FakeCupyArray(FakeLibraryArray):
    pass


FakeTorchTensor.__module__ = "torch.fake"  # what arrays.is_torch looks at
FakeCupyArray.__module__ = "cupy.fake"


@pytest.fixture
def recorded(monkeypatch):
    """Every kernel launch's stream and every numba-allocated array's stream, recorded."""
    from numba.cuda.simulator import kernel as sim_kernel

    launches = []
    original = sim_kernel.FakeCUDAKernel.__getitem__

    def getitem(self, configuration):
        launches.append((self.fn.__name__, configuration[2] if len(configuration) > 2 else None))
        return original(self, configuration)

    monkeypatch.setattr(sim_kernel.FakeCUDAKernel, "__getitem__", getitem)
    allocations = []
    original_array = cuda.device_array

    def device_array(*args, **kwargs):
        allocations.append(kwargs.get("stream", 0))
        return original_array(*args, **kwargs)

    monkeypatch.setattr(cuda, "device_array", device_array)
    return launches, allocations


@sim_only
def test_every_launch_on_torch_data_runs_on_the_callers_current_torch_stream(monkeypatch, recorded):
    torch = pytest.importorskip("torch")
    launches, allocations = recorded
    stream = FakeStream(0xBEEF)
    asked = []
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: asked.append(device) or
                        types.SimpleNamespace(cuda_stream=0xBEEF))
    monkeypatch.setattr(cuda, "external_stream", lambda ptr: stream if ptr == 0xBEEF else pytest.fail(ptr))
    pool = []

    def torch_empty(nbytes, dtype=None, device=None):
        assert dtype is torch.uint8
        pool.append(nbytes)
        return FakeTorchTensor(np.empty(nbytes, np.uint8), device)

    monkeypatch.setattr(torch, "empty", torch_empty)
    monkeypatch.setattr(arrays, "_to_torch", lambda result, device: result)
    dev = types.SimpleNamespace(type="cuda", index=None)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, 2, 3, 4))
    Z = FakeTorchTensor(X, dev)
    got = cs_fast.to_center(Z, FakeTorchTensor(X[2], dev), "tv")
    assert asked and all(d is dev for d in asked)
    np.testing.assert_allclose(got.copy_to_host(), cs_fast.to_center(X, X[2], "tv"), rtol=1e-12, atol=1e-13)
    assert cs_fast.min_median(Z, "l1")[0] == cs_fast.min_median(X.reshape(9, -1), "l1")[0]
    boxes = np.abs(rng.standard_normal((12, 4)))
    boxes[:, 2:] += boxes[:, :2]
    B = FakeTorchTensor(boxes, dev)
    index, radius = cs_fast.min_median(B, "jaccard", method="brute")
    assert (index, radius) == pytest.approx(cs_fast.min_median(boxes, "jaccard", method="brute"), rel=1e-14)
    assert len(launches) > 10
    assert {s for _, s in launches} == {stream}, [(k, s) for k, s in launches if s is not stream][:5]
    assert pool and set(allocations) <= {stream}  # scratch from torch's pool; numba's own only on the stream
    assert stream.syncs >= 1  # results read back after the stream's work


def _fake_cupy(monkeypatch, ptr):
    """A fake CuPy whose current stream is ``ptr`` and whose pool records every allocation's bytes."""
    stream = FakeStream(ptr)
    pool = []
    fake = types.ModuleType("cupy")
    fake.uint8 = np.uint8
    fake.cuda = types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=ptr))
    fake.empty = lambda nbytes, dtype=None: pool.append(nbytes) or FakeCupyArray(np.empty(nbytes, np.uint8))
    fake.asarray = lambda result: result
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(cuda, "external_stream", lambda p: stream if p == ptr else pytest.fail(p))
    return stream, pool


@sim_only
def test_every_launch_on_cupy_data_runs_on_cupys_current_stream(monkeypatch, recorded):
    launches, allocations = recorded
    stream, pool = _fake_cupy(monkeypatch, 0xC0FFEE)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((7, 5))
    got = cs_fast.cdist(FakeCupyArray(X), FakeCupyArray(X[:3]), "l1")
    np.testing.assert_allclose(got.copy_to_host(), cs_fast.cdist(X, X[:3], "l1"), rtol=1e-12, atol=1e-13)
    assert launches and {s for _, s in launches} == {stream}
    assert pool


@sim_only
def test_pdist_output_comes_from_the_callers_pool(monkeypatch, recorded):
    """pdist's condensed result and cdist's empty one are allocated from CuPy's pool, on its stream."""
    launches, allocations = recorded
    stream, pool = _fake_cupy(monkeypatch, 0xC0DE)
    X = np.random.default_rng(2).standard_normal((9, 4))
    got = cs_fast.pdist(FakeCupyArray(X), "l1")
    np.testing.assert_allclose(got.copy_to_host(), cs_fast.pdist(X, "l1"), rtol=1e-12, atol=1e-13)
    assert 9 * 8 // 2 * 8 in pool  # the condensed float64 output itself
    assert set(allocations) <= {stream}
    assert cs_fast.cdist(FakeCupyArray(X[:0]), FakeCupyArray(X), "l1").shape == (0, 9)
    assert set(allocations) <= {stream}


@sim_only
def test_numba_and_interface_data_keep_numbas_default_stream(recorded):
    launches, _ = recorded
    X = np.arange(12.0).reshape(4, 3)
    cs_fast.cdist(cuda.to_device(X), cuda.to_device(X), "l1")
    assert launches and {s for _, s in launches} == {0}


def test_launch_context_nests_and_restores():
    assert ck.current_stream() == 0
    with ck.launch_context("outer"):
        with ck.launch_context("inner"):
            assert ck.current_stream() == "inner"
        assert ck.current_stream() == "outer"
    assert ck.current_stream() == 0


# --------------------------------------------------------------------------- (b) certification


def _linear_model(W):
    def model(batch):
        return cuda.to_device(np.ascontiguousarray(batch.reshape(batch.shape[0], -1) @ W))

    return model


def _models():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((3, 8))

    def boxes(batch):
        z = batch @ W[:, :2]
        return cuda.to_device(np.stack([z[:, 0], z[:, 1], z[:, 0] + 2.0, z[:, 1] + 1.0], axis=1))

    def images(batch):
        return cuda.to_device(np.ascontiguousarray((batch @ W).reshape(-1, 2, 2, 2).astype(np.float32)))

    return [("l2", _linear_model(W), {}), ("jaccard", boxes, {}), ("tv", images, {}),
            ("sqfeat", _linear_model(W), {"weights": np.linspace(0.5, 2.0, 8)}),
            ("angular", _linear_model(W), {})]


@pytest.mark.parametrize("metric, model, params", _models(), ids=lambda v: v if isinstance(v, str) else "")
def test_certification_distances_equal_the_per_batch_path_bit_for_bit(metric, model, params):
    x = np.array([0.3, -0.2, 0.5])
    sm = cs_fast.CenterSmoothing(model, metric, 0.2, seed=5, batch_size=7, metric_params=params)
    center = device.take_row(model(x[None] + 0.01), 0)  # a device center with the sample's shape
    got = sm.certification_distances(x, center, 40)
    draw = sm.sampler.draw(x)
    parts = [to_center64(b, center, metric, sm.metric_params)[0]
             for b in draw.batches(40, draw.streams[2], "certification")]
    expect = np.concatenate([p.copy_to_host() for p in parts])
    assert got.shape == (40,) and got.dtype == np.float64
    np.testing.assert_array_equal(got.copy_to_host(), expect)
    # A range of batches is its slice of the whole (split certification).
    part = sm.certification_distances(x, center, 40, first_batch=2, stop_batch=4)
    np.testing.assert_array_equal(part.copy_to_host(), expect[14:28])


@sim_only
def test_certification_reads_back_once_not_per_batch(monkeypatch):
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    W = np.random.default_rng(3).standard_normal((3, 8))
    model = _linear_model(W)
    sm = cs_fast.CenterSmoothing(model, "l1", 0.2, seed=5, batch_size=8)
    x = np.array([0.3, -0.2, 0.5])
    center = device.take_row(model(x[None]), 0)
    reads = []
    original = FakeCUDAArray.copy_to_host
    monkeypatch.setattr(FakeCUDAArray, "copy_to_host", lambda self, *a, **k: reads.append(self.shape) or
                        original(self, *a, **k))
    monkeypatch.setattr(device, "concatenate", lambda parts: pytest.fail("distances were concatenated"))
    d = sm.certification_distances(x, center, 96)  # 12 batches
    assert d.shape == (96,)
    # The center's own check (once) and the ledger of all 12 batches (once); the model's
    # outputs are uploaded by the test model itself, not read back.
    assert len(reads) <= 2, reads


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the zero row's junk features
@pytest.mark.parametrize("metric, bad, expect", [
    ("l2", lambda out: out.__setitem__((2, 1), np.nan),
     "model output: 1 of 8 rows contain NaN or inf (first at row 2)"),
    ("angular", lambda out: out.__setitem__(3, 0.0), "Z: 1 of 8 rows are all zero (first at row 3)"),
])
@pytest.mark.slow
def test_deferred_checks_raise_what_the_immediate_checks_raise(metric, bad, expect):
    W = np.random.default_rng(4).standard_normal((3, 8))
    calls = []

    def host_model(batch):
        out = batch @ W
        calls.append(1)
        if len(calls) == 11:  # certification batch 2: after 4 + 4 center batches and the base output
            bad(out)
        return out

    x = np.array([0.3, -0.2, 0.5])
    msgs = []
    for wrap in (lambda b: b, cuda.to_device):
        calls.clear()
        sm = cs_fast.CenterSmoothing(lambda b: wrap(host_model(b)), metric, 0.2, seed=5, batch_size=8)
        with pytest.raises(ValueError) as err:
            sm.certify(x, 0.01, n=32, m=48, delta=0.2, alpha1=0.4, alpha2=0.4)
        msgs.append(str(err.value))
    assert msgs[0] == msgs[1] and expect in msgs[1], msgs


# --------------------------------------------------------------------------- (c) kernels


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_order_statistic_across_many_blocks_at_production_size(production, dtype):
    config = ck.DeviceConfig(select_per_thread=2)  # 256-thread blocks, several of them at a size the simulator runs
    rng = np.random.default_rng(8)
    m = 2500
    d = np.round(rng.standard_normal(m), 2).astype(dtype)  # ties and negative values
    d[[5, 77]] = np.inf
    d[100] = -0.0
    blocks, threads = radix.select_grid(m, config.select_per_thread)
    assert threads == 256 and blocks == 5  # several blocks merge their histograms
    s = np.sort(d)
    dd = cuda.to_device(d)
    # (each k is 8 passes of 5 + 1 blocks of 256 simulated threads: three ranks, both ends and the middle)
    for k in ((1, 1234, m) if dtype == np.float64 else (2, m // 2, m - 1)):
        assert ck.order_statistic(dd, k, config) == s[k - 1], k


@pytest.mark.slow
def test_order_statistic_under_the_simulator_blocks():
    rng = np.random.default_rng(9)
    d = rng.random(300)
    s = np.sort(d)
    for k in (1, 150, 300):
        assert ck.order_statistic(cuda.to_device(d), k) == s[k - 1]


@pytest.mark.parametrize("reduction", ["l1", "sq", "l2"])
def test_to_center_a_warp_per_row_at_production_size(production, reduction):
    rng = np.random.default_rng(10)
    F = rng.standard_normal((19, 100))  # three lanes' strides and a ragged end
    C = rng.standard_normal((1, 100))
    diff = F - C
    expect = {"l1": np.abs(diff).sum(1), "sq": (diff ** 2).sum(1), "l2": np.sqrt((diff ** 2).sum(1))}[reduction]
    out = cuda.to_device(np.full(25, -1.0))
    ck.to_center(reduction, cuda.to_device(F), cuda.to_device(C), 0, out=out[3:22])
    host = out.copy_to_host()
    np.testing.assert_allclose(host[3:22], expect, rtol=1e-13)
    assert (host[:3] == -1).all() and (host[22:] == -1).all()  # only its slice is written


def _boxes(rng, n, offset=0.0):
    xy = rng.uniform(0, 3, size=(n, 2)) + offset
    wh = rng.uniform(0.5, 2, size=(n, 2))
    B = np.concatenate([xy, xy + wh], axis=1)
    B[3] = B[7]  # identical boxes: exact ties
    B[5] = [0, 0, 0, 0]  # empty
    return B


def _decisions(B, t, config=ck.DEFAULT):
    """(float32 decision, exact float64 d < t) of every pair, by the device box_decide."""
    kernels = box.box_kernels(config.box_margin, config.box_tiny, config.box_check_sweeps, config.shared_keys)
    F = cuda.to_device(B)
    G = cuda.device_array((len(B), 5), dtype=np.float32)
    kernels.box32[1, len(B)](F, G)
    decide = kernels.box_decide

    @cuda.jit
    def run(G, t32, out):
        i, j = cuda.grid(2)
        if i < out.shape[0] and j < out.shape[1]:
            out[i, j] = decide(G, i, j, t32)

    out = cuda.device_array((len(B), len(B)), dtype=np.int64)
    run[(1, 1), (len(B), len(B))](G, np.float32(t), out)
    exact = get_metric("jaccard").reference(B, B, {}) < t
    return out.copy_to_host(), exact


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_box_float32_count_decides_only_where_it_is_sure(offset):
    rng = np.random.default_rng(11)
    B = _boxes(rng, 14, offset)
    D = get_metric("jaccard").reference(B, B, {})
    undecided = 0
    thresholds = [D[0, 1], np.nextafter(D[0, 1], 0), np.nextafter(D[0, 1], 2), 0.5, 1.0]
    thresholds += [d * f for d in np.unique(D)[1:8] for f in (1 - 4e-8, 1 + 2e-8)]  # float32 cannot tell these
    for t in thresholds:
        dec, exact = _decisions(B, t)
        sure = dec >= 0
        assert np.array_equal(dec[sure] == 1, exact[sure]), t
        undecided += int((~sure).sum())
    assert undecided > 0  # thresholds equal to a distance land inside the margin


def test_box_float32_count_needs_its_margin():
    """With no margin the float32 test gets some boundary pairs wrong: the margin is what makes it exact."""
    no_margin = ck.DeviceConfig(box_margin=0.0, box_tiny=0.0)
    rng = np.random.default_rng(12)
    B = _boxes(rng, 14, 1e3)
    D = get_metric("jaccard").reference(B, B, {})
    wrong = 0
    for d in np.unique(D)[1:15]:
        for t in (d * (1 - 4e-8), d * (1 + 2e-8)):  # within float32's rounding of the distance
            dec, exact = _decisions(B, t, no_margin)
            sure = dec >= 0
            wrong += int(((dec == 1) != exact)[sure].sum())
    assert wrong > 0


def _brute(B):
    # The canonical distances (the host's strict box arithmetic, which the simulator repeats bit for bit).
    D = cs_fast.cdist(B, B, "jaccard")
    k = (len(B) + 1) // 2
    med = np.sort(D, axis=1)[:, k - 1]
    return int(np.argmin(med)), float(med.min())


@pytest.mark.slow
@pytest.mark.parametrize("offset", [0.0, 1e5])
def test_box_min_median_fused_count_is_brute_force_at_production_blocks(production, offset):
    rng = np.random.default_rng(13)
    B = _boxes(rng, 48, offset)
    B[20] = B[40]
    assert runtime.select_threads(48, 256) == 64
    F = cuda.to_device(B)
    want = _brute(B)
    assert ck.min_median("box", F, 0) == want
    assert ck.min_median("box", F, 0, tile=7) == want  # later tiles counted against the best


def test_box_min_median_seeded_best_keeps_the_smallest_index_among_ties():
    """Seeded with a row whose twin has a smaller index: the twin must still be counted (<= the best) and win."""
    rng = np.random.default_rng(14)
    n = 40
    center = np.array([1.0, 1.0, 3.0, 2.0])
    B = center + rng.normal(0, 0.15, size=(n, 4))
    B[3] = B[7] = center
    B[10:31] = center  # 23 of 40 equal: their median is 0, the best, tied; the smallest index, 3, wins
    want = _brute(B)
    assert want == (3, 0.0)
    seeds = np.array([7, 30], dtype=np.int64)
    F = cuda.to_device(B)
    assert ck.min_median("box", F, 0, seeds=seeds) == want
    assert ck.min_median("box", F, 0, tile=5, seeds=seeds) == want
    assert ck.min_median("box", F, 0, tile=5, seeds=np.array([3], dtype=np.int64)) == want  # the winner as the seed
