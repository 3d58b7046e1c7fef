r"""The metric registry: one :class:`Metric` record per distance.

A record holds everything about one distance: its name and aliases, its
relaxed-triangle factor :math:`\gamma` (``d(a, c) <= gamma * (d(a, b) + d(b, c))``),
the input layout it expects and the check of it, the featurize transform
(once per sample, O(n d)), the name of the pairwise reduction in
:mod:`cs_fast.kernels.pair`, and a float64 numpy reference written from the
definition (not from the featurized form), which the parity tests compare the
kernels against.

=================  ======================================  =====  ===========
metric             distance                                gamma  upper bound
=================  ======================================  =====  ===========
``jaccard``        1 - IoU of ``[x1, y1, x2, y2]`` boxes   1      1
``jaccard_mask``   1 - |A and B| / |A or B| of masks       1      1
``tv``             total variation TV(I1 - I2)             1      none
``sqfeat``         sum_i w_i (a_i - b_i)^2                 2      none
``l2``             Euclidean distance                      1      none
``l1``             Manhattan distance                      1      none
``angular``        arccos(cos(a, b)) / pi                  1      1
=================  ======================================  =====  ===========
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ._checks import describe, nonfinite_rows_error, real_dtype


@dataclass(frozen=True)
class Features:
    """Featurized samples: a C-contiguous 2-D array and the reduction's int argument."""

    data: np.ndarray
    arg: int = 0


@dataclass(frozen=True)
class Metric:
    """One distance of the registry (see the module docstring)."""

    name: str
    aliases: tuple
    gamma: float
    layout: str
    params: tuple
    prepare: Callable  # (array, argname, params, ops=HOST_OPS) -> validated array (dtype fixed, finite)
    featurize: Callable  # (validated array, params) -> Features
    reduction: str  # name of the pair function in cs_fast.kernels.pair
    reference: Callable = field(repr=False)  # (XA, XB, params) -> float64 (na, nb)
    #: The largest distance the metric can take, None when unbounded: a
    #: certificate with eps_out at least this says nothing (``vacuous``).
    upper_bound: Optional[float] = None

    def check_params(self, params):
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            expected = ", ".join(self.params) if self.params else "none"
            raise TypeError(
                f"metric_params: metric {self.name!r} received unknown parameter(s) "
                f"{unknown}; expected: {expected}"
            )
        return dict(params)


# --------------------------------------------------------------------------- checks
# The prepare functions read only shapes and dtypes themselves; whatever touches
# the data (dtype conversion, flattening, the NaN/inf and zero-row counts) goes
# through ``ops``. HOST_OPS does it with numpy; cs_fast.bindings.device passes a
# device twin, so device inputs get the same checks and the same messages
# without their data leaving the GPU.


def _row_counts(flags):
    """(number of True rows, index of the first) of a boolean row vector."""
    count = int(flags.sum())
    return count, (int(np.flatnonzero(flags)[0]) if count else -1)


class HostOps:
    """Data operations of :attr:`Metric.prepare` on numpy arrays."""

    @staticmethod
    def array(x, name):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name}: received {describe(x)}; expected a numpy array")
        return x

    @staticmethod
    def astype(arr, dtype):
        return arr if arr.dtype == dtype else arr.astype(dtype)

    @staticmethod
    def flatten(arr):
        return arr.reshape(arr.shape[0], _per_sample(arr.shape))

    @staticmethod
    def nonfinite_rows(arr):
        rows = _rows(arr)
        # A NaN or inf anywhere makes the IEEE sum NaN or inf: a finite sum (no
        # temporary, vectorized) clears the whole array; only a non-finite one
        # (a bad value, or finite values overflowing the sum) needs the row check.
        if rows.dtype.kind == "f" and np.isfinite(np.add.reduce(rows, axis=None)):
            return _row_counts(np.zeros(rows.shape[0], dtype=bool))
        return _row_counts(~np.isfinite(rows).all(axis=1))

    @staticmethod
    def zero_rows(arr):
        return _row_counts(~np.any(arr != 0, axis=1))


HOST_OPS = HostOps()


def _per_sample(shape):
    return int(np.prod(shape[1:]))


def _rows(arr):
    """``arr`` as (samples, features); unlike ``reshape(n, -1)`` this works for zero samples."""
    return arr.reshape(arr.shape[0], _per_sample(arr.shape))


def _rank_error(name, metric, arr):
    return ValueError(
        f"{name}: received an array of shape {tuple(arr.shape)}; metric {metric.name!r} expects {metric.layout}"
    )


def _check_finite(ops, arr, name):
    if arr.dtype.kind != "f" or arr.shape[0] == 0 or _per_sample(arr.shape) == 0:
        return
    count, first = ops.nonfinite_rows(arr)
    if count:
        raise nonfinite_rows_error(name, count, arr.shape[0], first)


def _prepare_boxes(x, name, params, ops=HOST_OPS):
    arr = ops.array(x, name)
    dtype = real_dtype(arr.dtype, name)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise _rank_error(name, JACCARD, arr)
    arr = ops.astype(arr, dtype)
    _check_finite(ops, arr, name)
    return arr


def _prepare_masks(x, name, params, ops=HOST_OPS):
    arr = ops.array(x, name)
    if arr.dtype != np.bool_:
        raise TypeError(
            f"{name}: received dtype {arr.dtype}; metric 'jaccard_mask' expects a boolean mask array"
        )
    if arr.ndim < 2 or (arr.shape[0] > 0 and _per_sample(arr.shape) == 0):
        raise _rank_error(name, JACCARD_MASK, arr)
    return arr


def _prepare_tv(x, name, params, ops=HOST_OPS):
    arr = ops.array(x, name)
    dtype = real_dtype(arr.dtype, name)
    if arr.ndim not in (2, 3, 4):
        raise _rank_error(name, TV, arr)
    spatial = arr.shape[1:] if arr.ndim < 4 else arr.shape[2:]
    if max(spatial) < 2:
        raise ValueError(
            f"{name}: received an array of shape {tuple(arr.shape)}; metric 'tv' needs at least one "
            "pair of adjacent entries per sample"
        )
    arr = ops.astype(arr, dtype)
    _check_finite(ops, arr, name)
    return arr


def _prepare_vectors(metric):
    def prepare(x, name, params, ops=HOST_OPS):
        arr = ops.array(x, name)
        dtype = real_dtype(arr.dtype, name)
        if arr.ndim < 2 or (arr.shape[0] > 0 and _per_sample(arr.shape) == 0):
            raise _rank_error(name, metric(), arr)
        arr = ops.flatten(ops.astype(arr, dtype))
        _check_finite(ops, arr, name)
        return arr

    return prepare


def _prepare_angular(x, name, params, ops=HOST_OPS):
    arr = _prepare_vectors(lambda: ANGULAR)(x, name, params, ops)
    count, first = ops.zero_rows(arr) if arr.shape[0] else (0, -1)
    if count:
        raise ValueError(
            f"{name}: {count} of {arr.shape[0]} rows are all zero (first at row "
            f"{first}); metric 'angular' is undefined for the zero vector"
        )
    return arr


def sqfeat_weights(weights, n_features, dtype):
    """Validate ``weights`` for ``sqfeat`` and return them flat, as float64."""
    w = np.asarray(weights)
    if w.dtype.kind not in "fiu":
        raise TypeError(f"weights: received dtype {w.dtype}; expected real numbers")
    w = w.astype(np.float64).reshape(-1)
    if w.size != n_features:
        raise ValueError(
            f"weights: received {np.shape(weights)} ({w.size} values); expected one weight per "
            f"feature, {n_features} in all"
        )
    if not np.isfinite(w).all():
        raise ValueError("weights: received NaN or inf; expected finite weights >= 0")
    if (w < 0).any():
        raise ValueError(
            f"weights: received {int((w < 0).sum())} negative weight(s) (min {w.min()}); expected weights >= 0"
        )
    return w


# --------------------------------------------------------------------------- featurize

def _contiguous(arr):
    return np.ascontiguousarray(arr)


def _featurize_identity(arr, params):
    return Features(_contiguous(_rows(arr)))


def _featurize_boxes(arr, params):
    """float64 boxes (exact for float32 input) with every empty box set to [0, 0, 0, 0]."""
    boxes = arr.astype(np.float64)
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    boxes[empty] = 0.0
    return Features(boxes)


def _featurize_masks(arr, params):
    n = arr.shape[0]
    bits = np.packbits(_rows(arr), axis=1)
    pad = (-bits.shape[1]) % 8
    if pad:
        bits = np.concatenate([bits, np.zeros((n, pad), np.uint8)], axis=1)
    return Features(_contiguous(bits).view(np.uint64))


def tv_differences(arr):
    """All vertical and horizontal neighbour differences, shape (n, C, P) (numpy reference).

    ``arr`` is (n, k), (n, H, W) or (n, C, H, W); a 1-D signal is one row of
    one channel. ``P`` counts the neighbour pairs of one channel. The
    featurize step uses the one-pass kernel ``cs_fast.kernels.cpu.tv_features``,
    which the tests hold to this.
    """
    n = arr.shape[0]
    arr = _as_images(arr)
    c = arr.shape[1]
    vertical = (arr[:, :, 1:, :] - arr[:, :, :-1, :]).reshape(n, c, -1)
    horizontal = (arr[:, :, :, 1:] - arr[:, :, :, :-1]).reshape(n, c, -1)
    return np.concatenate([vertical, horizontal], axis=2)


def _as_images(arr):
    """View (n, k), (n, H, W) or (n, C, H, W) as (n, C, H, W)."""
    if arr.ndim == 2:
        return arr[:, None, None, :]
    if arr.ndim == 3:
        return arr[:, None]
    return arr


def tv_layout(shape, params):
    """(image shape (n, C, H, W), positions P, grouped) of tv features for inputs of ``shape``.

    Features are (n, C * P); ``grouped`` (channel-l2 over several channels)
    puts each position's channels side by side, as the grouped-l2 reduction
    reads them. Host and device featurize share this.
    """
    shape = tuple(shape)
    images = {2: shape[:1] + (1, 1) + shape[1:], 3: shape[:1] + (1,) + shape[1:], 4: shape}[len(shape)]
    _, c, h, w = images
    positions = (h - 1) * w + h * (w - 1)
    grouped = params.get("channel_norm", 1) == 2 and c > 1
    return images, positions, grouped


def _featurize_tv(arr, params):
    from .kernels.cpu import tv_features

    images, positions, grouped = tv_layout(arr.shape, params)
    images = np.ascontiguousarray(arr.reshape(images))
    n, c, h, w = images.shape
    out = np.empty((n, c * positions), dtype=images.dtype)
    if n:
        tv_features(images, grouped, out)
    return Features(out, positions if grouped else 0)


def _featurize_sqfeat(arr, params):
    flat = _rows(arr)
    weights = params.get("weights")
    if weights is None:
        return Features(_contiguous(flat))
    w = sqfeat_weights(weights, flat.shape[1], flat.dtype)
    return Features(_contiguous((flat * np.sqrt(w)).astype(flat.dtype, copy=False)))


def _featurize_angular(arr, params):
    flat = _rows(arr).astype(np.float64)
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    return Features(_contiguous(unit.astype(arr.dtype, copy=False)))


# --------------------------------------------------------------------------- references
# Written from each definition with float64 numpy, pair by pair where that is the
# clearest statement: these are the ground truth of the parity tests.

def _ref_jaccard(A, B, params):
    A = A.astype(np.float64)
    B = B.astype(np.float64)
    out = np.empty((len(A), len(B)))
    for i, a in enumerate(A):
        for j, b in enumerate(B):
            a_empty = a[2] <= a[0] or a[3] <= a[1]
            b_empty = b[2] <= b[0] or b[3] <= b[1]
            if a_empty or b_empty:
                out[i, j] = 0.0 if (a_empty and b_empty) else 1.0
                continue
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            out[i, j] = 1.0 - inter / union
    return out


def _ref_jaccard_mask(A, B, params):
    A = _rows(A)
    B = _rows(B)
    out = np.empty((len(A), len(B)))
    for i, a in enumerate(A):
        for j, b in enumerate(B):
            union = np.logical_or(a, b).sum()
            out[i, j] = 0.0 if union == 0 else 1.0 - np.logical_and(a, b).sum() / union
    return out


def _ref_tv(A, B, params):
    norm = params.get("channel_norm", 1)
    out = np.empty((len(A), len(B)))
    for i in range(len(A)):
        for j in range(len(B)):
            diff = A[i].astype(np.float64) - B[j].astype(np.float64)
            if diff.ndim == 1:
                diff = diff[None, None, :]
            elif diff.ndim == 2:
                diff = diff[None]
            dv = diff[:, 1:, :] - diff[:, :-1, :]
            dh = diff[:, :, 1:] - diff[:, :, :-1]
            if norm == 1:
                out[i, j] = np.abs(dv).sum() + np.abs(dh).sum()
            else:
                out[i, j] = np.sqrt((dv ** 2).sum(axis=0)).sum() + np.sqrt((dh ** 2).sum(axis=0)).sum()
    return out


def _flat64(X):
    return _rows(X).astype(np.float64)


def _ref_sqfeat(A, B, params):
    A, B = _flat64(A), _flat64(B)
    w = params.get("weights")
    w = np.ones(A.shape[1]) if w is None else np.asarray(w, np.float64).reshape(-1)
    return np.array([[np.sum(w * (a - b) ** 2) for b in B] for a in A]).reshape(len(A), len(B))


def _ref_l2(A, B, params):
    A, B = _flat64(A), _flat64(B)
    return np.array([[np.sqrt(np.sum((a - b) ** 2)) for b in B] for a in A]).reshape(len(A), len(B))


def _ref_l1(A, B, params):
    A, B = _flat64(A), _flat64(B)
    return np.array([[np.sum(np.abs(a - b)) for b in B] for a in A]).reshape(len(A), len(B))


def _ref_angular(A, B, params):
    A, B = _flat64(A), _flat64(B)
    out = np.empty((len(A), len(B)))
    # The angle from the chords between the unit vectors, |u - v| = 2 sin(theta / 2) and
    # |u + v| = 2 cos(theta / 2): the arcsin of the shorter one is accurate at every angle, where
    # arccos of the cosine loses half the digits near 0 and pi (duplicates would get ~1e-8, not 0).
    for i, a in enumerate(A):
        u = a / np.linalg.norm(a)
        for j, b in enumerate(B):
            v = b / np.linalg.norm(b)
            minus, plus = np.linalg.norm(u - v), np.linalg.norm(u + v)
            half = np.arcsin(min(1.0, minus / 2.0)) if minus <= plus else np.pi / 2 - np.arcsin(min(1.0, plus / 2.0))
            out[i, j] = 2.0 * half / np.pi
    return out


# --------------------------------------------------------------------------- registry

JACCARD = Metric(
    name="jaccard",
    aliases=("iou", "jaccard_box", "box"),
    gamma=1.0,
    layout="boxes of shape (n, 4) as [x1, y1, x2, y2]",
    params=(),
    prepare=_prepare_boxes,
    featurize=_featurize_boxes,
    reduction="box",
    reference=_ref_jaccard,
    upper_bound=1.0,
)

JACCARD_MASK = Metric(
    name="jaccard_mask",
    aliases=("mask_iou", "mask"),
    gamma=1.0,
    layout="boolean masks of shape (n, ...) with at least one element per mask",
    params=(),
    prepare=_prepare_masks,
    featurize=_featurize_masks,
    reduction="mask",
    reference=_ref_jaccard_mask,
    upper_bound=1.0,
)

TV = Metric(
    name="tv",
    aliases=("total_variation",),
    gamma=1.0,
    layout="signals (n, k), grayscale images (n, H, W) or multi-channel images (n, C, H, W)",
    params=("channel_norm",),
    prepare=_prepare_tv,
    featurize=_featurize_tv,
    reduction="l1",  # or grouped_l2 for channel_norm=2 (see reduction_for)
    reference=_ref_tv,
)

SQFEAT = Metric(
    name="sqfeat",
    aliases=("sqeuclidean", "lpips"),
    gamma=2.0,
    layout="feature arrays of shape (n, ...) with at least one feature",
    params=("weights",),
    prepare=_prepare_vectors(lambda: SQFEAT),
    featurize=_featurize_sqfeat,
    reduction="sq",
    reference=_ref_sqfeat,
)

L2 = Metric(
    name="l2",
    aliases=("euclidean",),
    gamma=1.0,
    layout="feature arrays of shape (n, ...) with at least one feature",
    params=(),
    prepare=_prepare_vectors(lambda: L2),
    featurize=_featurize_identity,
    reduction="l2",
    reference=_ref_l2,
)

L1 = Metric(
    name="l1",
    aliases=("cityblock", "manhattan"),
    gamma=1.0,
    layout="feature arrays of shape (n, ...) with at least one feature",
    params=(),
    prepare=_prepare_vectors(lambda: L1),
    featurize=_featurize_identity,
    reduction="l1",
    reference=_ref_l1,
)

ANGULAR = Metric(
    name="angular",
    aliases=("arccos",),
    gamma=1.0,
    layout="non-zero feature arrays of shape (n, ...) with at least one feature",
    params=(),
    prepare=_prepare_angular,
    featurize=_featurize_angular,
    reduction="angular",
    reference=_ref_angular,
    upper_bound=1.0,
)

_REGISTRY = {m.name: m for m in (JACCARD, JACCARD_MASK, TV, SQFEAT, L2, L1, ANGULAR)}
_LOOKUP = {alias: m for m in _REGISTRY.values() for alias in (m.name,) + m.aliases}


def available_metrics():
    """Names of the registered metrics, e.g. ``['angular', 'jaccard', ...]``."""
    return sorted(_REGISTRY)


def get_metric(metric):
    """Return the :class:`Metric` for a name or alias (or a Metric itself)."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str) and metric.lower() in _LOOKUP:
        return _LOOKUP[metric.lower()]
    known = ", ".join(f"{m.name} (aliases: {', '.join(m.aliases)})" for m in _REGISTRY.values())
    raise ValueError(f"metric: received {metric!r}; expected one of: {known}")


def check_metric_params(metric, params):
    """Validate keyword parameters of ``metric`` and return them as a dict."""
    params = metric.check_params(params or {})
    if metric is TV:
        norm = params.get("channel_norm", 1)
        if isinstance(norm, bool) or norm not in (1, 2):
            raise ValueError(f"channel_norm: received {norm!r}; expected 1 (l1, the default) or 2 (l2)")
    return params


def reduction_for(metric, features):
    """Name of the pair function for featurized data (tv switches on channel_norm)."""
    if metric is TV and features.arg:
        return "grouped_l2"
    return metric.reduction


def prepare_pair(metric, XA, XB, params, names=("XA", "XB"), ops=HOST_OPS):
    """Validate two inputs for a pairwise computation and give them one dtype.

    The common dtype is float32 only when both are float32 (as scipy would
    give float64, we keep float32 to halve the traffic; float32 inputs get
    float32 output). Feature sizes must match. ``ops``: see :class:`HostOps`.
    """
    A = metric.prepare(XA, names[0], params, ops)
    B = metric.prepare(XB, names[1], params, ops)
    if tuple(A.shape[1:]) != tuple(B.shape[1:]):
        raise ValueError(
            f"{names[1]}: received per-sample shape {tuple(B.shape[1:])} but {names[0]} has "
            f"{tuple(A.shape[1:])}; expected the same per-sample shape"
        )
    if A.dtype != B.dtype and A.dtype != np.bool_:
        common = np.result_type(A.dtype, B.dtype)
        A, B = ops.astype(A, common), ops.astype(B, common)
    return A, B


def output_dtype(arr):
    """float32 in gives float32 out; everything else float64."""
    return np.float32 if arr.dtype == np.float32 else np.float64
