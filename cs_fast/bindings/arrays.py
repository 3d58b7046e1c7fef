"""Array interop for the host backend: numpy arrays and CPU torch tensors in, the caller's type out.

CPU torch tensors are viewed, not copied (``Tensor.numpy()`` shares memory).
Device arrays (CUDA torch tensors, CuPy arrays, anything exposing
``__cuda_array_interface__``) are never copied to the host behind the caller's
back: they belong to the CUDA backend, and asking the host backend for them is
an error that says so.
"""

import numpy as np

from .._checks import describe

BACKENDS = ("auto", "cpu", "cuda")


def is_torch(x):
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "device")


def on_device(x):
    """True for arrays that live in GPU memory."""
    if is_torch(x):
        return x.device.type != "cpu"
    return hasattr(x, "__cuda_array_interface__")


def check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend: received {backend!r}; expected one of {', '.join(map(repr, BACKENDS))}")
    return backend


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
    raise TypeError(f"{name}: received {describe(x)}; expected a numpy array or a torch tensor")


def wrap_like(result, kind):
    """Return ``result`` (numpy) as the caller's array type."""
    if kind == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(result))
    return result
