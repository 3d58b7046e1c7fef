"""Type dispatch of the array bindings, with fakes: no GPU and no simulator needed.

Which arrays count as device data, how each kind is viewed and wrapped back,
and the errors for mixed or misplaced inputs.
"""

import types

import numpy as np
import pytest

import cs_fast
from cs_fast.bindings import arrays


def _gpu_present():
    try:
        from numba import cuda

        return cuda.is_available()
    except Exception:
        return False


FakeTorch = type("Tensor", (), {"__module__": "torch.fake"})


def fake_cuda_tensor(index=0):
    t = FakeTorch()
    t.device = types.SimpleNamespace(type="cuda", index=index)
    t.shape, t.dtype = (3, 4), "float32"
    t.detach = lambda: t
    t.resolve_conj = lambda: t
    t.resolve_neg = lambda: t
    return t


class Interface:
    __cuda_array_interface__ = {"shape": (3, 4), "typestr": "<f8", "data": (0, False), "version": 3}
    shape, dtype = (3, 4), "float64"


class DLPack:
    def __init__(self, device_type, array=None):
        self._device = (device_type, 0)
        self._array = array

    def __dlpack_device__(self):
        return self._device

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)


@pytest.mark.parametrize("x, expected", [
    (np.zeros(3), False),
    ([1.0, 2.0], False),
    (fake_cuda_tensor(), True),
    (Interface(), True),
    (DLPack(2), True),  # kDLCUDA
    (DLPack(13), True),  # kDLCUDAManaged
    (DLPack(1), False),  # kDLCPU
])
def test_on_device(x, expected):
    assert arrays.on_device(x) is expected


def test_cpu_torch_tensors_are_host_data():
    torch = pytest.importorskip("torch")
    assert not arrays.on_device(torch.zeros(2))


def test_cpu_dlpack_producers_are_read_zero_copy():
    a = np.arange(6.0).reshape(2, 3)
    view, kind = arrays.host_view(DLPack(1, a), "X")
    assert kind == "numpy" and np.shares_memory(view, a)


def test_device_view_kinds(monkeypatch):
    monkeypatch.setattr(arrays, "as_numba", lambda obj: ("viewed", obj))
    t = fake_cuda_tensor(index=1)
    view, kind = arrays.device_view(t, "X")
    assert view == ("viewed", t) and kind == ("torch", t.device)
    iface = Interface()
    assert arrays.device_view(iface, "X") == (("viewed", iface), ("numba", None))
    CuPyLike = type("ndarray", (Interface,), {"__module__": "cupy._core.core"})
    c = CuPyLike()
    assert arrays.device_view(c, "X") == (("viewed", c), ("cupy", None))
    monkeypatch.setattr(arrays, "_from_dlpack", lambda x: "via torch or cupy")
    assert arrays.device_view(DLPack(2), "X") == (("viewed", "via torch or cupy"), ("numba", None))


def test_wrap_like_returns_the_callers_type(monkeypatch):
    monkeypatch.setattr(arrays, "_to_torch", lambda r, d: ("torch", r, d))
    monkeypatch.setattr(arrays, "_to_cupy", lambda r: ("cupy", r))
    assert arrays.wrap_like("R", ("torch", "cuda:1")) == ("torch", "R", "cuda:1")
    assert arrays.wrap_like("R", ("cupy", None)) == ("cupy", "R")
    assert arrays.wrap_like("R", ("numba", None)) == "R"
    host = np.arange(3.0)
    assert arrays.wrap_like(host, "numpy") is host


def test_mixed_inputs_name_both_arguments():
    with pytest.raises(ValueError, match=r"XB: received ndarray .* in host memory but XA is .* on a CUDA device"):
        arrays.placement("auto", {"XA": Interface(), "XB": np.zeros((3, 4))})
    with pytest.raises(ValueError, match=r"XA: .*host memory but XB"):
        cs_fast.cdist(np.zeros((3, 4)), fake_cuda_tensor(), "l2")


@pytest.mark.parametrize("x", [fake_cuda_tensor(), Interface(), DLPack(2)])
def test_cpu_backend_refuses_device_data(x):
    with pytest.raises(ValueError, match="the CPU backend does not copy device data to the host"):
        cs_fast.cdist(x, x, "l2", backend="cpu")


def test_placement_follows_the_data_and_honours_cpu():
    assert arrays.placement("auto", {"X": np.zeros(2)}) == "cpu"
    assert arrays.placement("cpu", {"X": Interface()}) == "cpu"  # host_view then refuses it
    with pytest.raises(ValueError, match="backend: received 'gpu'"):
        arrays.placement("gpu", {"X": np.zeros(2)})


@pytest.mark.skipif(_gpu_present(), reason="a GPU is present: device data is computable here")
def test_device_data_without_a_gpu_says_what_is_missing():
    with pytest.raises(RuntimeError, match=r"backend='cuda' is not usable here"):
        cs_fast.min_median(Interface(), "l2")
