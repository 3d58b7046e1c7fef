r"""Where one call computes: :func:`resolve` decides it once and returns a :class:`Host` or a :class:`Device`.

The decision follows :func:`cs_fast.bindings.arrays.placement`: ``'auto'``
follows the data, ``'cpu'`` computes on the host (and refuses device data
when it is viewed), ``'cuda'`` computes on the GPU (host data is viewed on
the host and its features uploaded: the caller asked for the device). The
returned object is passed down as a value, so that nothing below it asks
again where an array lives.

Both classes implement one protocol, on the arrays of their side:

``gpu``, ``resident``, ``kind``, ``home``
    Whether the kernels run on the GPU, whether the inputs live where they
    run, the caller's array kind, and the side that holds the inputs (the
    host, for host inputs under ``backend='cuda'``; else the object itself).
``view(x, name)``
    The array to compute on (zero-copy), validated for this side.
``ops``
    The data operations of :attr:`cs_fast.metrics.Metric.prepare`.
``featurize(metric, arr, params)``
    The metric's canonical features where the kernels run.
``empty(shape, dtype)``, ``concatenate(parts)``, ``row(Z, i)``
    Allocation, joining along the first axis, a copy of one row.
``lower_median(d)``, ``count_within(d, radius)``, ``kth_smallest(d, k)``, ``scalar(d)``
    The statistics of a vector of distances :math:`d_1, \dots, d_n`: the
    :math:`\lceil n/2 \rceil`-th smallest, :math:`\#\{i : d_i \le r\}`, the
    :math:`k`-th smallest (an element of ``d``, never interpolated) and
    :math:`d_1` as a Python float. Only these scalars leave the device.
``wrap(result)``
    ``result`` as the caller's array kind (numpy, torch, CuPy, numba).
``scope()``
    The context for work on the caller's data: on the device, its GPU, its
    stream and its memory pool (:func:`cs_fast.bindings.arrays.device_scope`).

The order statistics select exactly: each returns an element of ``d``, the
same element on both sides (the device's radix select and the host's
partition order the same float64 values).
"""

import contextlib

import numpy as np

from .arrays import array_kind, device_scope, device_view, host_view, on_device, placement, wrap_like


class Host:
    """Compute on the CPU: numpy arrays in, numpy arrays out, wrapped back as the caller's ``kind``.

    Parameters
    ----------
    kind : {'numpy', 'torch'}
        The caller's array kind (:func:`cs_fast.bindings.arrays.host_view`).
    """

    gpu = False
    resident = True  # the inputs are viewed where they are computed on

    def __init__(self, kind="numpy"):
        self.kind = kind

    def __repr__(self):
        return f"Host(kind={self.kind!r})"

    @property
    def home(self):
        """The side where the call's inputs live: the host."""
        return self

    @property
    def ops(self):
        from ..metrics import HOST_OPS

        return HOST_OPS

    def view(self, x, name):
        """A numpy view of the host array ``x``; device data is refused (the host does not copy it)."""
        return host_view(x, name)[0]

    def scope(self):
        return contextlib.nullcontext()

    def featurize(self, metric, arr, params):
        return metric.featurize(arr, params)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def concatenate(self, parts):
        return np.concatenate(parts, axis=0)

    def row(self, Z, index):
        """A copy of row ``index`` of ``Z`` (it outlives ``Z``)."""
        return np.array(Z[index])

    def lower_median(self, d):
        r"""The lower median of ``d``: its :math:`\lceil n/2 \rceil`-th smallest element."""
        k = (d.size + 1) // 2
        return float(np.partition(d, k - 1)[k - 1])

    def count_within(self, d, radius):
        """The number of distances ``<= radius``."""
        return int(np.count_nonzero(d <= radius))

    def kth_smallest(self, d, k):
        """The ``k``-th smallest of ``d`` (:func:`cs_fast.bounds.kth_smallest`: checked, never interpolated)."""
        from .. import bounds

        return bounds.kth_smallest(d, k)

    def scalar(self, d):
        """``d[0]`` as a Python float."""
        return float(d[0])

    def wrap(self, result):
        return wrap_like(result, self.kind)

    def export(self, sample):
        """``sample`` as the caller's array kind, a copy of its own: nothing the call keeps aliases it."""
        return wrap_like(np.array(sample), self.kind)


class Device:
    """Compute on the GPU: numba device arrays, results wrapped back as the caller's ``kind``.

    Parameters
    ----------
    kind : str or tuple
        The caller's array kind: ``('torch', device)``, ``('cupy', None)``
        or ``('numba', None)`` for device data (:func:`cs_fast.bindings.arrays.device_view`),
        ``'numpy'`` or ``'torch'`` for host data under ``backend='cuda'``.
    resident : bool
        Whether the inputs live on the device. Host inputs (``resident=False``)
        are viewed and featurized on the host and their features uploaded;
        the results live on the device and go back to the host in :meth:`wrap`.
    """

    gpu = True

    def __init__(self, kind, resident):
        self.kind = kind
        self.resident = bool(resident)
        #: The side where the call's inputs live: this device, or the host for host inputs.
        self.home = self if self.resident else Host(kind)

    def __repr__(self):
        return f"Device(kind={self.kind!r}, resident={self.resident})"

    @property
    def ops(self):
        if not self.resident:
            from ..metrics import HOST_OPS

            return HOST_OPS
        from .device import DEVICE_OPS

        return DEVICE_OPS

    def view(self, x, name):
        """A zero-copy numba view of device data; host inputs are viewed on the host (``resident=False``)."""
        if not self.resident:
            return host_view(x, name)[0]
        return device_view(x, name)[0]

    def scope(self):
        return device_scope(self.kind)

    def featurize(self, metric, arr, params):
        from . import device

        if self.resident:
            return device.featurize(metric, arr, params)
        return device.upload(metric.featurize(arr, params))

    def empty(self, shape, dtype):
        from ..kernels import cuda as ck

        return ck.empty(shape, dtype)  # the caller's stream and pool (inside scope())

    def concatenate(self, parts):
        from .device import concatenate

        return concatenate(parts)

    def row(self, Z, index):
        """A device copy of row ``index`` of ``Z``, with the sample's shape (it outlives ``Z``)."""
        from .device import take_row

        return take_row(Z, index)

    def lower_median(self, d):
        r"""The lower median of ``d``: its :math:`\lceil n/2 \rceil`-th smallest element, selected on the device."""
        from ..kernels.cuda import order_statistic

        return order_statistic(d, (d.size + 1) // 2)

    def count_within(self, d, radius):
        """The number of distances ``<= radius`` (only the count comes back)."""
        from .device import count_within

        return int(count_within(d, radius))

    def kth_smallest(self, d, k):
        """The ``k``-th smallest of ``d``, selected on the device (an element of ``d``)."""
        from ..kernels.cuda import order_statistic

        return order_statistic(d, k)

    def scalar(self, d):
        """``d[0]`` as a Python float (one element comes back)."""
        from ..kernels.cuda import fetch

        return float(fetch(d)[0])

    def wrap(self, result):
        return wrap_like(result, self.kind)

    def export(self, sample):
        """``sample`` as the caller's array kind (a device sample is already a copy of its own row)."""
        return wrap_like(sample, self.kind)


def resolve(backend, *inputs, names=None):
    """Where a call on ``inputs`` computes: a :class:`Host` or a :class:`Device`.

    Parameters
    ----------
    backend : {'auto', 'cpu', 'cuda'} or Host or Device
        ``'auto'`` follows the data; an already resolved object is returned
        as it is (the decision is made once per call and passed down).
    *inputs : arrays
        The call's inputs; the first gives the caller's array kind.
    names : sequence of str, optional
        The inputs' argument names, for the error that refuses host and
        device inputs mixed in one call.

    Raises
    ------
    ValueError
        Unknown ``backend``, or host and device inputs mixed (nothing is
        moved behind the caller's back).
    RuntimeError
        The GPU is needed (``'cuda'``, or device data) but not usable.
    """
    if isinstance(backend, (Host, Device)):
        return backend
    names = list(names) if names is not None else [f"input {i}" for i in range(len(inputs))]
    where = placement(backend, dict(zip(names, inputs)))
    kind = array_kind(inputs[0]) if inputs else "numpy"
    if where == "cpu":
        return Host(kind)
    return Device(kind, resident=bool(inputs) and on_device(inputs[0]))


#: The host, for numpy data (e.g. ``HOST.lower_median(d)``).
HOST = Host()
