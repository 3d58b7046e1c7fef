"""The device side of the bindings: validation and featurize on numba device arrays.

:class:`DeviceOps` is the device twin of :class:`cs_fast.metrics.HostOps`:
given it, every metric's ``prepare`` runs the same checks with the same
messages on device data, and only counts (rows with NaN/inf, all-zero rows)
come back to the host. :func:`featurize` produces on the device exactly the
features the registry's numpy featurize produces on the host (same layout,
same dtype; :mod:`cs_fast.kernels.cuda_featurize`).
"""

import numpy as np

from ..kernels import cuda_featurize as kf
from ..kernels.cuda import cuda_module
from ..metrics import Features, sqfeat_weights, tv_layout
from .arrays import _simulated, device_view, is_numba_device_array


def copy(arr, dtype=None):
    """A C-contiguous device copy of ``arr``, cast to ``dtype`` (numba's assign kernel)."""
    cuda = cuda_module()
    out = cuda.device_array(tuple(arr.shape), dtype=np.dtype(dtype or arr.dtype))
    if out.size:
        if _simulated():  # the simulator's arrays wrap numpy arrays
            out._ary[...] = arr._ary
        else:
            out[:] = arr  # numba's assign kernel: any strides, casts
    return out


def contiguous(arr):
    return arr if arr.is_c_contiguous() else copy(arr)


def concatenate(parts):
    """Device arrays joined along the first axis (one new array)."""
    cuda = cuda_module()
    first = parts[0]
    out = cuda.device_array((sum(p.shape[0] for p in parts),) + tuple(first.shape[1:]), dtype=first.dtype)
    start = 0
    for p in parts:
        if p.shape[0]:
            out[start : start + p.shape[0]].copy_to_device(contiguous(p))
        start += p.shape[0]
    return out


def take_row(arr, index):
    """A copy of row ``index`` of a device array, with the sample's own shape."""
    return copy(arr[index : index + 1]).reshape(tuple(arr.shape[1:]))


class DeviceOps:
    """Data operations of :attr:`cs_fast.metrics.Metric.prepare` on numba device arrays."""

    @staticmethod
    def array(x, name):
        if not is_numba_device_array(x):
            x, _ = device_view(x, name)
        # Featurize reshapes rows: a strided view gets one contiguous device copy.
        return contiguous(x)

    @staticmethod
    def astype(arr, dtype):
        return arr if arr.dtype == dtype else copy(arr, dtype)

    @staticmethod
    def flatten(arr):
        return arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:])))

    @staticmethod
    def nonfinite_rows(arr):
        return kf.flagged_rows(DeviceOps.flatten(arr), nonzero=False)

    @staticmethod
    def zero_rows(arr):
        return kf.flagged_rows(arr, nonzero=True)


DEVICE_OPS = DeviceOps()


def featurize(metric, arr, params):
    """Device twin of ``metric.featurize``: same features, computed where ``arr`` lives.

    ``arr`` is a prepared (validated, dtype-fixed, contiguous) device array.
    Metric parameters stay host values (``weights`` is validated on the host
    and copied up once: one weight per feature).
    """
    name = metric.name
    n = arr.shape[0]
    if name == "jaccard":
        return Features(kf.boxes(arr))
    if name == "jaccard_mask":
        return Features(kf.masks(arr.reshape(n, int(np.prod(arr.shape[1:])))))
    if name == "tv":
        images, positions, grouped = tv_layout(arr.shape, params)
        return Features(kf.tv(arr.reshape(images), grouped), positions if grouped else 0)
    flat = arr.reshape(n, int(np.prod(arr.shape[1:])))
    if name == "sqfeat" and params.get("weights") is not None:
        w = sqfeat_weights(params["weights"], flat.shape[1], flat.dtype)
        return Features(kf.scale(flat, cuda_module().to_device(np.sqrt(w))))
    if name == "angular":
        return Features(kf.unit_rows(flat))
    if name in ("sqfeat", "l2", "l1"):
        return Features(flat)
    raise NotImplementedError(f"metric: {name!r} has no device featurize")


def upload(features):
    """Host features copied to the device (``backend='cuda'`` with host data)."""
    return Features(cuda_module().to_device(np.ascontiguousarray(features.data)), features.arg)


def count_within(d, bound):
    """Number of device distances ``<= bound`` (only the count comes back)."""
    return kf.count_within(d, bound)
