"""JSON-ready encoding of the values a certificate holds (arrays, tensors, numpy scalars).

An array becomes ``{"array": nested list, "dtype": name, "shape": [...],
"type": "numpy" | "torch" | ...}``; :func:`decode` turns it back into an
array of the same type, dtype, shape and values. Values go through
``tolist()``, which gives Python floats (exact for float16/32/64, and JSON
writes floats with ``repr``, which round-trips), ints and bools.
"""

import numbers

import numpy as np

from ._checks import describe

_ARRAY_KEYS = {"array", "dtype", "shape", "type"}


def encode(value):
    """A JSON-ready form of ``value`` (None, bool, int, float, str, dict, list, tuple, array, tensor)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if hasattr(value, "detach") and hasattr(value, "dtype"):  # torch.Tensor
        t = value.detach().cpu()
        return {"array": t.tolist(), "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                "type": "torch"}
    if hasattr(value, "copy_to_host"):  # numba device array
        return dict(encode(value.copy_to_host()), type="numba")
    if type(value).__module__.startswith("cupy"):
        return dict(encode(value.get()), type="cupy")
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "dtype": value.dtype.str if value.dtype.kind == "V" else str(value.dtype),
                "shape": list(value.shape), "type": "numpy"}
    raise TypeError(f"cannot encode {describe(value)} as JSON")


def decode(value, name="value"):
    """The inverse of :func:`encode`.

    Torch tensors come back on the CPU; arrays recorded from GPU outputs
    (CuPy, numba device arrays) come back as numpy arrays on the host.
    """
    if isinstance(value, dict):
        if set(value) == _ARRAY_KEYS:
            return _decode_array(value, name)
        return {k: decode(v, f"{name}[{k!r}]") for k, v in value.items()}
    return value


def _decode_array(rec, name):
    shape = tuple(rec["shape"])
    if rec["type"] == "torch":
        import torch

        dtype = getattr(torch, rec["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"{name}: received torch dtype {rec['dtype']!r}; expected a torch dtype name")
        return torch.tensor(rec["array"], dtype=dtype).reshape(shape)
    if rec["type"] not in ("numpy", "cupy", "numba"):
        raise ValueError(f"{name}: received array type {rec['type']!r}; expected 'numpy', 'torch', 'cupy' or 'numba'")
    return np.array(rec["array"], dtype=np.dtype(rec["dtype"])).reshape(shape)
