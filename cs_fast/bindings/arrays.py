"""Array interop: where the data lives, zero-copy views, and results in the caller's type.

Host arrays: numpy arrays, CPU torch tensors (viewed, not copied:
``Tensor.numpy()`` shares memory), lists, and CPU DLPack producers.

Device arrays: CUDA torch tensors, CuPy arrays, numba device arrays, anything
exposing ``__cuda_array_interface__``, and DLPack producers whose
``__dlpack_device__`` is CUDA. They are viewed zero-copy as numba device
arrays (``numba.cuda.as_cuda_array``), and results go back as the caller's
type on the caller's device: a torch tensor for torch, a CuPy array for CuPy,
a numba device array for everything else (it exposes
``__cuda_array_interface__``, which torch, CuPy and most GPU libraries read
zero-copy).

Device data is never copied to the host behind the caller's back: asking the
CPU backend for it is an error that says so, and so is mixing host and device
inputs in one call. Host data with an explicit ``backend='cuda'`` is copied
to the device (the caller asked for it) and the result comes back to the host.
"""

import contextlib
import types

import numpy as np

from .._checks import describe
from ..kernels.cuda.runtime import simulator_on

BACKENDS = ("auto", "cpu", "cuda")
_DLPACK_CPU = 1
_DLPACK_CUDA = (2, 13)  # kDLCUDA, kDLCUDAManaged


def _library(x):
    return type(x).__module__.split(".")[0]


def is_torch(x):
    return _library(x) == "torch" and hasattr(x, "device")


def is_numba_device_array(x):
    """numba device arrays (and the simulator's stand-ins) mark their class ``__cuda_ndarray__``."""
    return bool(getattr(type(x), "__cuda_ndarray__", False))


def _dlpack_device_type(x):
    probe = getattr(x, "__dlpack_device__", None)
    if probe is None or not hasattr(x, "__dlpack__"):
        return None
    return int(probe()[0])


def on_device(x):
    """True for arrays that live in GPU memory."""
    if is_torch(x):
        return x.device.type != "cpu"
    if is_numba_device_array(x) or hasattr(x, "__cuda_array_interface__"):
        return True
    return _dlpack_device_type(x) in _DLPACK_CUDA


def array_kind(x):
    """The caller's array kind of ``x``, as :func:`host_view` or :func:`device_view` reports it, without viewing it.

    ``'numpy'`` or ``'torch'`` for host data; ``('torch', device)``,
    ``('cupy', None)`` or ``('numba', None)`` for device data. What the views
    would refuse is refused by them, not here.
    """
    if not on_device(x):
        return "torch" if is_torch(x) else "numpy"
    if is_torch(x):
        return ("torch", x.device)
    if not is_numba_device_array(x) and hasattr(x, "__cuda_array_interface__") and _library(x) == "cupy":
        return ("cupy", None)
    return ("numba", None)


def check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend: received {backend!r}; expected one of {', '.join(map(repr, BACKENDS))}")
    return backend


def placement(backend, inputs):
    """Where to compute, ``'cpu'`` or ``'cuda'``, for ``inputs`` (a dict name -> array).

    ``'auto'`` follows the data. Host and device inputs mixed in one call are a
    ValueError naming both (nothing is moved behind the caller's back);
    ``'cpu'`` with device data fails later, in :func:`host_view`, with its own
    message. ``'cuda'`` (or device data) without a usable GPU is the
    RuntimeError of :func:`cs_fast.bindings.cuda_backend.require_cuda`.
    """
    check_backend(backend)
    where = {name: on_device(x) for name, x in inputs.items()}
    if backend == "cpu":
        return "cpu"
    device = [name for name, d in where.items() if d]
    host = [name for name, d in where.items() if not d]
    if device and host:
        raise ValueError(
            f"{host[0]}: received {describe(inputs[host[0]])} in host memory but {device[0]} is "
            f"{describe(inputs[device[0]])} on a CUDA device; expected both on the same side. "
            "cs_fast does not move data between host and device behind your back: move one of them"
        )
    if device or backend == "cuda":
        from .cuda_backend import require_cuda

        require_cuda()
        return "cuda"
    return "cpu"


# --------------------------------------------------------------------------- host


def host_view(x, name):
    """Return ``(numpy_array, kind)`` for a host array, ``kind`` in {'numpy', 'torch'}.

    Lists and tuples are accepted as :func:`numpy.asarray` would read them, as
    in scipy. Device arrays raise :class:`ValueError`.
    """
    if isinstance(x, np.ndarray):
        return x, "numpy"
    if on_device(x):
        where = x.device if is_torch(x) else "a CUDA device"
        raise ValueError(
            f"{name}: received {describe(x)} on {where}; the CPU backend does not copy device "
            "data to the host. Use backend='cuda' (needs the 'cuda' extra: numba-cuda and a "
            "GPU), or move the data to the host yourself"
        )
    if is_torch(x):
        try:
            return x.detach().resolve_conj().resolve_neg().numpy(), "torch"
        except TypeError as err:  # e.g. bfloat16 has no numpy dtype
            raise TypeError(f"{name}: received {describe(x)}; expected a dtype numpy can view ({err})") from None
    if isinstance(x, (list, tuple)):
        return np.asarray(x), "numpy"
    if _dlpack_device_type(x) == _DLPACK_CPU:
        return np.from_dlpack(x), "numpy"
    raise TypeError(f"{name}: received {describe(x)}; expected a numpy array or a torch tensor")


# --------------------------------------------------------------------------- device


def as_numba(obj):
    """Zero-copy numba device array of an object exposing ``__cuda_array_interface__``.

    For torch and CuPy arrays numba's host synchronization on the stream an
    interface names is skipped: cs_fast launches on that library's current
    stream (:func:`launch_settings`), so the order is kept on the device
    instead (torch's interface names no stream anyway; CuPy's names its
    current one).
    """
    from ..kernels.cuda import cuda_module

    cuda = cuda_module()
    if is_numba_device_array(obj):
        return obj
    if simulator_on():
        # The simulator's device memory is host memory, so an interface's pointer
        # is a host pointer: view it with numpy's array interface, no copy.
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        iface = obj.__cuda_array_interface__
        keys = ("shape", "typestr", "data", "strides")
        holder = types.SimpleNamespace(owner=obj, __array_interface__=dict(
            {k: iface.get(k) for k in keys}, version=3))
        return FakeCUDAArray(np.asarray(holder))
    return cuda.as_cuda_array(obj, sync=_library(obj) not in ("torch", "cupy"))


def _from_dlpack(x):
    """A ``__cuda_array_interface__`` object for a CUDA DLPack producer (torch or CuPy reads it)."""
    for module in ("torch", "cupy"):
        try:
            lib = __import__(module)
        except ImportError:
            continue
        return lib.from_dlpack(x)
    raise TypeError("a CUDA DLPack producer needs torch or CuPy to be read (pip install torch or cupy)")


def device_view(x, name):
    """Return ``(numba_device_array, kind)`` for a device array, viewed zero-copy.

    ``kind`` is ``('torch', device)``, ``('cupy', None)`` or ``('numba', None)``
    (numba device arrays, bare ``__cuda_array_interface__`` objects and DLPack
    producers); :func:`wrap_like` turns a device result back into it.
    """
    if is_torch(x):
        try:
            # torch's interface names no stream: ordering comes from launching on torch's
            # current stream (launch_settings), never from a host synchronization.
            return as_numba(x.detach().resolve_conj().resolve_neg()), ("torch", x.device)
        except (TypeError, ValueError, NotImplementedError) as err:  # e.g. bfloat16 has no typestr
            raise TypeError(f"{name}: received {describe(x)}; expected a dtype numba can view ({err})") from None
    if is_numba_device_array(x):
        return x, ("numba", None)
    if hasattr(x, "__cuda_array_interface__"):
        return as_numba(x), ("cupy" if _library(x) == "cupy" else "numba", None)
    if _dlpack_device_type(x) in _DLPACK_CUDA:
        return as_numba(_from_dlpack(x)), ("numba", None)
    raise TypeError(f"{name}: received {describe(x)}; expected a device array")


def _external_stream(ptr):
    """numba's view of a CUDA stream handle (0: the legacy default stream, as torch and CuPy mean it)."""
    from ..kernels.cuda import cuda_module

    cuda = cuda_module()
    if int(ptr) == 0:
        return cuda.legacy_default_stream() if not simulator_on() else 0
    return cuda.external_stream(int(ptr))


def _pool_allocator(make_bytes, stream):
    """``allocate(shape, dtype)`` over a library's caching pool: a byte buffer viewed by numba.

    The buffer is the library's tensor (freed into its pool when the numba view
    dies), so scratch arrays never go through numba's deallocation queue, whose
    flushes synchronize the device.
    """

    def allocate(shape, dtype):
        nbytes = int(np.prod(shape)) * dtype.itemsize
        view = as_numba(make_bytes(nbytes)).view(dtype).reshape(shape)
        return view.bind(stream) if stream != 0 else view

    return allocate


def launch_settings(kind):
    """``(stream, allocate)`` for device work on data of ``kind`` (see :func:`device_view`).

    The one place that decides where cs_fast's device work runs:

    * torch: the caller's current torch stream on the tensor's device
      (``torch.cuda.current_stream(device).cuda_stream``) and torch's caching
      allocator. torch's ``__cuda_array_interface__`` carries no stream, and a
      model may run on a non-default stream: a kernel on numba's default
      stream could read an output the model has not finished writing;
    * CuPy: CuPy's current stream and CuPy's memory pool;
    * anything else: numba's default stream and numba's allocator.

    Every launch, copy and scratch allocation of :mod:`cs_fast.kernels.cuda`
    and its siblings then goes there (:func:`device_scope`).
    """
    if isinstance(kind, tuple) and kind[0] == "torch":
        import torch

        device = kind[1]
        stream = _external_stream(torch.cuda.current_stream(device).cuda_stream)
        return stream, _pool_allocator(lambda nbytes: torch.empty(nbytes, dtype=torch.uint8, device=device), stream)
    if isinstance(kind, tuple) and kind[0] == "cupy":
        import cupy

        stream = _external_stream(cupy.cuda.get_current_stream().ptr)
        return stream, _pool_allocator(lambda nbytes: cupy.empty(nbytes, dtype=cupy.uint8), stream)
    return 0, None


@contextlib.contextmanager
def device_scope(kind):
    """Compute for a caller's data of ``kind``: its GPU current, its stream and pool for every launch.

    A torch tensor may live on any GPU; :func:`launch_settings` picks the
    stream and the allocator. Host kinds (``'numpy'``, ``'torch'``) change nothing.
    """
    if not isinstance(kind, tuple):
        yield
        return
    from ..kernels.cuda import launch_context

    with contextlib.ExitStack() as stack:
        if kind[0] == "torch" and kind[1].index is not None and not simulator_on():
            from numba import cuda

            stack.enter_context(cuda.gpus[kind[1].index])
        stack.enter_context(launch_context(*launch_settings(kind)))
        yield


def _to_torch(result, device):
    import torch

    return torch.as_tensor(result, device=device)


def _to_cupy(result):
    import cupy

    return cupy.asarray(result)


def wrap_like(result, kind):
    """Return ``result`` (numpy or numba device array) as the caller's array type.

    A device result for a host caller (``backend='cuda'`` with host data) is
    copied to the host: the caller's data came from there.
    """
    if isinstance(kind, tuple):
        lib, device = kind
        if lib == "torch":
            return _to_torch(result, device)
        if lib == "cupy":
            return _to_cupy(result)
        return result
    if is_numba_device_array(result):
        from ..kernels.cuda import fetch

        result = fetch(result)
    if kind == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(result))
    return result
