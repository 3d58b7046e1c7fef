"""The device side of the bindings: validation and featurize on numba device arrays.

:class:`DeviceOps` is the device twin of :class:`cs_fast.metrics.HostOps`:
given it, every metric's ``prepare`` runs the same checks with the same
messages on device data, and only counts (rows with NaN/inf, all-zero rows)
come back to the host. :func:`featurize` produces on the device exactly the
features the registry's numpy featurize produces on the host (same layout,
same dtype; :mod:`cs_fast.kernels.cuda.featurize`).
"""

import numpy as np

from .._checks import nonfinite_rows_error
from ..kernels import reductions
from ..kernels import cuda as ck
from ..kernels.cuda import featurize as kf
from ..metrics import Features, check_metric_params, get_metric, reduction_for, sqfeat_weights, tv_layout
from .arrays import simulator_on, device_view, is_numba_device_array


def copy(arr, dtype=None):
    """A C-contiguous device copy of ``arr``, cast to ``dtype`` (numba's assign kernel)."""
    out = ck.empty(tuple(arr.shape), np.dtype(dtype or arr.dtype))
    if out.size:
        if simulator_on():  # the simulator's arrays wrap numpy arrays
            out._ary[...] = arr._ary
        else:
            out[:] = arr  # numba's assign kernel: any strides, casts
    return out


def contiguous(arr):
    return arr if arr.is_c_contiguous() else copy(arr)


def concatenate(parts):
    """Device arrays joined along the first axis (one new array)."""
    first = parts[0]
    out = ck.empty((sum(p.shape[0] for p in parts),) + tuple(first.shape[1:]), first.dtype)
    start = 0
    for p in parts:
        if p.shape[0]:
            out[start : start + p.shape[0]].copy_to_device(contiguous(p), stream=ck.current_stream())
        start += p.shape[0]
    return out


def take_row(arr, index):
    """A copy of row ``index`` of a device array, with the sample's own shape."""
    return copy(arr[index : index + 1]).reshape(tuple(arr.shape[1:]))


class DeviceOps:
    """Data operations of :attr:`cs_fast.metrics.Metric.prepare` and ``featurize`` on numba device arrays.

    ``cache``: a dict shared by the calls that use the same parameters, so that
    the ``sqfeat`` weights are copied up once for all of them.
    """

    def __init__(self, cache=None):
        self.cache = cache

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

    @staticmethod
    def rows(arr):
        return DeviceOps.flatten(arr)  # prepared device arrays are C-contiguous

    @staticmethod
    def boxes(arr):
        return kf.boxes(arr)

    @staticmethod
    def masks(arr):
        return kf.masks(DeviceOps.flatten(arr))

    def weights(self, weights, n_features, dtype):
        key = ("weights", n_features)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        w = ck.upload(sqfeat_weights(weights, n_features, dtype))
        if self.cache is not None:
            self.cache[key] = w
        return w


DEVICE_OPS = DeviceOps()


def featurize(metric, arr, params, cache=None):
    """Device twin of ``metric.featurize``: the same canonical features, where ``arr`` lives.

    ``arr`` is a prepared (validated, dtype-fixed, contiguous) device array.
    Metric parameters stay host values (``weights`` is validated on the host
    and copied up once: one weight per feature; with a ``cache`` dict, once
    for every call that shares it).
    """
    return metric.featurize(arr, params, DeviceOps(cache))


def estimate(metric, arr, params, centre=None):
    """Device twin of ``metric.estimate`` for ``tv``: centred features on the device, their bound on the host.

    Only the per-row bound ``E`` (n floats) comes back to the host; the
    features stay on the device. ``centre``: a float64 device vector of the
    per-sample size (default: :func:`cs_fast.kernels.cuda.featurize.tv_centre`).
    """
    from ..kernels.cpu.exact import Estimate
    from ..metrics import tv_bound

    images, positions, grouped = tv_layout(arr.shape, params)
    X = arr.reshape(images)
    if centre is None:
        centre = kf.tv_centre(X)
    G, norms = kf.tv_estimate(X, centre, grouped)
    return Estimate(G, positions if grouped else 0, reductions.GROUPED_L2 if grouped else reductions.L1,
                    tv_bound(G.dtype, images[1], positions, grouped, ck.fetch(norms)))


def upload(features):
    """Host features copied to the device (``backend='cuda'`` with host data); array arguments too (weights)."""
    arg = ck.upload(features.arg) if hasattr(features.arg, "shape") else features.arg
    return Features(ck.upload(features.data), arg, features.reduction)


def count_within(d, bound):
    """Number of device distances ``<= bound`` (only the count comes back)."""
    return kf.count_within(d, bound)


# --------------------------------------------------------------------------- certification pipeline


def zero_rows_error(name, count, n, first):
    """The error of :func:`cs_fast.metrics` for angular rows that are all zero (same words)."""
    return ValueError(
        f"{name}: {count} of {n} rows are all zero (first at row "
        f"{first}); metric 'angular' is undefined for the zero vector"
    )


class DeferredChecks:
    """Row checks of a stream of device batches, recorded on the device and read back once.

    :meth:`nonfinite` and :meth:`zero_rows` queue the same counts that
    :meth:`DeviceOps.nonfinite_rows` / :meth:`DeviceOps.zero_rows` read back
    at once, into slot ``i`` of a device ledger (:func:`cs_fast.kernels.cuda.featurize.flag_into`);
    :meth:`raise_first` reads the whole ledger in one copy and raises the
    error the immediate check would have raised first (batches in order, NaN/inf
    before all-zero rows), with the same message. The GPU never waits for the
    host between batches.
    """

    def __init__(self, batches):
        self.batches = int(batches)
        self.ledger = None  # allocated on the first check
        self.names = {}  # slot -> [rows in the batch, name of the NaN/inf check, name of the zero check]

    def _ledger(self):
        if self.ledger is None:
            self.ledger = kf.new_ledger(self.batches)
        return self.ledger

    def nonfinite(self, arr, slot, name):
        """Queue the NaN/inf row count of ``arr`` (any shape, rows first) into ``slot``."""
        if arr.dtype.kind != "f" or arr.shape[0] == 0 or arr.size == 0:
            return
        kf.flag_into(DeviceOps.flatten(arr), False, self._ledger(), slot)
        self.names.setdefault(slot, [arr.shape[0], None, None])[1] = name

    def zero_rows(self, arr, slot, name):
        """Queue the all-zero row count of the 2-D ``arr`` into ``slot`` (angular)."""
        if arr.shape[0] == 0:
            return
        kf.flag_into(arr, True, self._ledger(), slot)
        self.names.setdefault(slot, [arr.shape[0], None, None])[2] = name

    def raise_first(self):
        """One readback of every slot; raise the first recorded problem, if any."""
        if self.ledger is None:
            return
        host = kf.read_ledger(self.ledger)
        for slot in sorted(self.names):
            n, nf_name, zero_name = self.names[slot]
            if nf_name is not None and host[slot, 0]:
                raise nonfinite_rows_error(nf_name, int(host[slot, 0]), n, int(host[slot, 1]))
            if zero_name is not None and host[slot, 2]:
                raise zero_rows_error(zero_name, int(host[slot, 2]), n, int(host[slot, 3]))


class _DeferredOps(DeviceOps):
    """:class:`DeviceOps` for one batch whose row checks go to a :class:`DeferredChecks` slot.

    The NaN/inf check of ``prepare`` is left out: the batch is the model output
    :meth:`DeferredChecks.nonfinite` already checked in this slot, and the
    dtype casts of ``prepare`` (to float32/float64, from floats or integers)
    cannot create NaN or inf. The all-zero check (angular) is queued.
    """

    def __init__(self, checks, slot, name):
        self.checks, self.slot, self.name = checks, slot, name

    def nonfinite_rows(self, arr):
        return 0, -1

    def zero_rows(self, arr):
        self.checks.zero_rows(arr, self.slot, self.name)
        return 0, -1


class CenterDistances:
    """float64 distances from a stream of device batches to one center, into one device array.

    The device path of :meth:`cs_fast.CenterSmoothing.certify`'s ``m``
    distances (and of the mass check): the center is validated and featurized
    once, every batch's distances go straight into their slice of one
    preallocated length-``total`` float64 array (no per-batch arrays, no
    concatenation), and the batches' row checks are deferred to one readback
    (:class:`DeferredChecks`). The values are exactly those of
    :func:`cs_fast.bindings.distance.to_center` on each batch: same prepare,
    same featurize, same kernel.

    Parameters
    ----------
    metric, params : str, dict
        The metric and its parameters.
    center : numba device array
        The center, with the per-sample shape of a batch.
    total : int
        Number of distances, the sum of the batch sizes.
    checks : DeferredChecks
        Where the batches' checks are recorded (the model-output checks of the
        same batches, slot ``i`` for batch ``i``).
    """

    def __init__(self, metric, params, center, total, checks):
        self.metric = get_metric(metric)
        self.params = check_metric_params(self.metric, dict(params))
        self.center = center
        self.out = ck.empty(int(total), np.float64)
        self.checks = checks
        self.pos = 0
        self.cache = {}  # featurized center per dtype, uploaded weights
        self.red = None

    def _center(self, dtype):
        key = ("center", np.dtype(dtype).str)
        if key not in self.cache:
            c = self.center.reshape((1,) + tuple(self.center.shape))
            C = self.metric.prepare(c, "center", self.params, DEVICE_OPS)
            if C.dtype != dtype and C.dtype != np.bool_:
                C = DEVICE_OPS.astype(C, np.result_type(C.dtype, dtype))
            self.cache[key] = (C, featurize(self.metric, C, self.params, self.cache))
        return self.cache[key]

    def add(self, batch, slot):
        """Append the distances of the device batch ``slot`` (a checked model output)."""
        if tuple(self.center.shape) != tuple(batch.shape[1:]):  # as to_center64 checks it
            raise ValueError(
                f"center: received shape {tuple(self.center.shape)}; expected the per-sample shape of Z, "
                f"{tuple(batch.shape[1:])}"
            )
        A = self.metric.prepare(batch, "Z", self.params, _DeferredOps(self.checks, slot, "Z"))
        C, FC = self._center(A.dtype)
        if A.dtype != C.dtype and A.dtype != np.bool_:
            A = DEVICE_OPS.astype(A, np.result_type(A.dtype, C.dtype))
        b = A.shape[0]
        if b:
            FA = featurize(self.metric, A, self.params, self.cache)
            red = reduction_for(self.metric, FA)
            ck.to_center(red, FA.data, FC.data, FA.arg, out=self.out[self.pos:self.pos + b])
        self.pos += b

    def finish(self):
        """The distances (one readback of the deferred checks first; raises what they found)."""
        self.checks.raise_first()
        if self.pos != self.out.shape[0]:
            raise ValueError(f"batches: received {self.pos} samples; expected {self.out.shape[0]}")
        return self.out
