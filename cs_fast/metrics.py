r"""The metric registry: one :class:`Metric` record per distance.

A record holds everything about one distance: its name and aliases, its
relaxed-triangle factor :math:`\gamma` (``d(a, c) <= gamma * (d(a, b) + d(b, c))``),
the input layout it expects and the check of it, the featurize transform
(once per sample, O(n d)), the record of its pairwise reduction in
:mod:`cs_fast.kernels.reductions`, a float64 numpy reference written from the
definition (not from the featurized form), which the parity tests compare the
kernels against, and the stated accuracy of its canonical distance.

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

Canonical distances and estimates
---------------------------------
``featurize`` gives the features of the *canonical* distance: the inputs'
own values (float32 upcast exactly), with the difference of the two samples
taken first wherever the definition allows it (``tv``: the images themselves,
then the neighbour differences of their difference; weighted ``sqfeat``:
``w (a - b)^2``; ``angular``: the raw rows, no rounded unit vectors; boxes:
``(U - I) / U`` from coordinate differences), accumulated in float64. Each
record states how far that can be from the exact distance
(:attr:`Metric.accuracy`, :attr:`Metric.error_bound`): relative to the
distance itself wherever float64 allows it. Every front door and every exact
median returns these numbers, bit for bit (:func:`cs_fast.kernels.cpu.distances.rows`;
the device has its own canonical order, :mod:`cs_fast.kernels.cuda`).

``estimate`` (``l1`` and ``tv``) gives what the fast paths read -- ``tv``: the
neighbour differences of the samples centred on a per-pixel median of some of
them, stored in the input dtype -- with a
:class:`cs_fast.kernels.cpu.exact.SumBound` to the canonical distances; the
center is searched on the estimates and the candidates refined
(:mod:`cs_fast.kernels.cpu.exact`).
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ._checks import describe, nonfinite_rows_error, real_dtype
from .kernels import reductions
from .kernels.reductions import Reduction


@dataclass(frozen=True)
class Features:
    """Featurized samples: a C-contiguous 2-D array, the reduction's argument, the reduction if not the metric's.

    ``arg`` is an int (the packed image shape of ``tv``, the blocks of
    ``grouped_l2``) or, for weighted ``sqfeat``, the float64 weights (a host or
    device array, where the rows live).
    """

    data: np.ndarray
    arg: object = 0
    reduction: Optional[Reduction] = None  # a name is taken for its record

    def __post_init__(self):
        if self.reduction is not None:
            object.__setattr__(self, "reduction", reductions.get(self.reduction))


@dataclass(frozen=True)
class Metric:
    """One distance of the registry (see the module docstring)."""

    name: str
    aliases: tuple
    gamma: float
    layout: str
    params: tuple
    prepare: Callable  # (array, argname, params, ops=HOST_OPS) -> validated array (dtype fixed, finite)
    featurize: Callable  # (validated array, params, ops=HOST_OPS) -> Features, where the array lives
    reduction: Reduction  # the pairwise reduction of the features (cs_fast.kernels.reductions)
    reference: Callable = field(repr=False)  # (XA, XB, params) -> float64 (na, nb)
    #: The largest distance the metric can take, None when unbounded: a
    #: certificate with eps_out at least this says nothing (``vacuous``).
    upper_bound: Optional[float] = None
    #: The stated accuracy of the canonical float64 distance against the exact
    #: distance of the inputs' own values, and how it is derived.
    accuracy: str = field(default="", repr=False)
    #: ``(XA, XB, params, exact) -> (na, nb)``: the bound of :attr:`accuracy`
    #: for each pair, given the exact distances (what the tests hold it to).
    error_bound: Optional[Callable] = field(default=None, repr=False)
    #: ``(validated array, params, centre=None, bound=True) -> cs_fast.kernels.cpu.exact.Estimate``:
    #: the fast path's features and (unless ``bound=False``) their bound to the canonical distances
    #: (None: the fast path reads the canonical features and is exact).
    estimate: Optional[Callable] = field(default=None, repr=False)

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
# The prepare and featurize functions read only shapes, dtypes and parameters
# themselves; whatever touches the data (dtype conversion, flattening, the
# NaN/inf and zero-row counts, the feature transforms) goes through ``ops``.
# HOST_OPS does it with numpy; cs_fast.bindings.device passes a device twin, so
# device inputs get the same checks, messages and features without their data
# leaving the GPU.


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

    @staticmethod
    def rows(arr):
        """The samples as C-contiguous (samples, features) rows."""
        return np.ascontiguousarray(_rows(arr))

    @staticmethod
    def boxes(arr):
        """float64 boxes (exact for float32 input) with every empty box set to [0, 0, 0, 0]."""
        boxes = arr.astype(np.float64)
        empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        boxes[empty] = 0.0
        return boxes

    @staticmethod
    def masks(arr):
        """Each mask's bits packed into uint64 words (zero padded), for popcounts."""
        n = arr.shape[0]
        bits = np.packbits(_rows(arr), axis=1)
        pad = (-bits.shape[1]) % 8
        if pad:
            bits = np.concatenate([bits, np.zeros((n, pad), np.uint8)], axis=1)
        return np.ascontiguousarray(bits).view(np.uint64)

    @staticmethod
    def weights(weights, n_features, dtype):
        """The validated float64 weights of ``sqfeat``, where the rows live."""
        return sqfeat_weights(weights, n_features, dtype)


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


def _widen(ops, arr, dtype, name):
    """``arr`` as ``dtype``; 64-bit integers beyond 2**53, which float64 would round, are refused.

    Every smaller integer, bool and float16 widens exactly. Host arrays are checked (one pass for the
    extremes); device arrays of 64-bit integers are converted as they are.
    """
    if isinstance(arr, np.ndarray) and arr.dtype.kind in "iu" and arr.dtype.itemsize == 8 and arr.size:
        big = max(abs(int(arr.min())), abs(int(arr.max())))
        if big > 2**53:
            raise ValueError(
                f"{name}: received {arr.dtype} values up to {big} in magnitude; cs_fast computes in "
                f"float64, which holds integers exactly only up to 2**53 = {2**53}; expected integers "
                "within that range, or floating-point values"
            )
    return ops.astype(arr, dtype)


def _prepare_boxes(x, name, params, ops=HOST_OPS):
    arr = ops.array(x, name)
    if arr.dtype == np.bool_:
        # scipy's 'jaccard' is the set distance of boolean vectors: read as boxes they would all be
        # empty or degenerate and every distance 0, a silent wrong answer.
        raise TypeError(
            f"{name}: received a boolean array of shape {tuple(arr.shape)}; metric 'jaccard' reads boxes "
            "(x1, y1, x2, y2) as numbers. For the Jaccard distance of boolean vectors or masks "
            "(scipy's 'jaccard') use metric 'jaccard_mask'"
        )
    dtype = real_dtype(arr.dtype, name)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise _rank_error(name, JACCARD, arr)
    arr = _widen(ops, arr, dtype, name)
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
    arr = _widen(ops, arr, dtype, name)
    _check_finite(ops, arr, name)
    return arr


def _prepare_vectors(metric):
    def prepare(x, name, params, ops=HOST_OPS):
        arr = ops.array(x, name)
        dtype = real_dtype(arr.dtype, name)
        if arr.ndim < 2 or (arr.shape[0] > 0 and _per_sample(arr.shape) == 0):
            raise _rank_error(name, metric(), arr)
        arr = ops.flatten(_widen(ops, arr, dtype, name))
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

def _featurize_identity(arr, params, ops=HOST_OPS):
    return Features(ops.rows(arr))


def _featurize_boxes(arr, params, ops=HOST_OPS):
    """float64 boxes (exact for float32 input) with every empty box set to [0, 0, 0, 0]."""
    return Features(ops.boxes(arr))


def _featurize_masks(arr, params, ops=HOST_OPS):
    """The masks' bits packed into uint64 words."""
    return Features(ops.masks(arr))


def tv_differences(arr):
    """All vertical and horizontal neighbour differences, shape (n, C, P) (numpy reference).

    ``arr`` is (n, k), (n, H, W) or (n, C, H, W); a 1-D signal is one row of
    one channel. ``P`` counts the neighbour pairs of one channel. The
    estimate featurize uses the one-pass kernel
    ``cs_fast.kernels.cpu.distances.tv_estimate`` (on the samples centred first), which
    the tests hold to this.
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

    Estimate features are (n, C * P); ``grouped`` (channel-l2 over several
    channels) puts each position's channels side by side, as the grouped-l2
    reduction reads them, and makes the canonical reduction ``tv2``. Host and
    device featurize share this.
    """
    shape = tuple(shape)
    images = {2: shape[:1] + (1, 1) + shape[1:], 3: shape[:1] + (1,) + shape[1:], 4: shape}[len(shape)]
    _, c, h, w = images
    positions = (h - 1) * w + h * (w - 1)
    grouped = params.get("channel_norm", 1) == 2 and c > 1
    return images, positions, grouped


def tv_arg(images):
    """The ``arg`` of the ``tv``/``tv2`` pair functions: ``H * 2**32 + W`` of (n, C, H, W) images."""
    _, _, h, w = images
    return (int(h) << 32) | int(w)


def _featurize_tv(arr, params, ops=HOST_OPS):
    """The canonical tv features: the images themselves, flattened (the distance takes their difference first)."""
    images, _, grouped = tv_layout(arr.shape, params)
    flat = ops.rows(arr.reshape(images[0], int(np.prod(images[1:]))))
    return Features(flat, tv_arg(images), reductions.TV2 if grouped else reductions.TV)


def _featurize_sqfeat(arr, params, ops=HOST_OPS):
    """The rows themselves; with weights the float64 weights ride along (``wsq``: the difference first, then ``w``)."""
    flat = ops.rows(arr)
    weights = params.get("weights")
    if weights is None:
        return Features(flat)
    return Features(flat, ops.weights(weights, flat.shape[1], flat.dtype), reductions.WSQ)


def _featurize_angular(arr, params, ops=HOST_OPS):
    """The rows themselves: no unit vector is rounded on its own (see ``cs_fast.kernels.pair.angular_pair``)."""
    return Features(ops.rows(arr))


# --------------------------------------------------------------------------- estimates and bounds
# u = 2**-53; gamma(m) = m u / (1 - m u) bounds the relative error of m roundings
# (Higham, Accuracy and Stability, 3.1), of a sum of m + 1 non-negative terms in
# any order included.

U64 = 2.0 ** -53
U32 = 2.0 ** -24


def gamma(m, u=U64):
    """``m u / (1 - m u)``: the relative error of ``m`` roundings of unit ``u``."""
    mu = m * u
    if mu >= 0.5:
        raise ValueError(f"d: {m} roundings are beyond the float error analysis (m u = {mu:.3g} >= 0.5)")
    return mu / (1.0 - mu)


def _chunk_rho(d, dtype):
    """Relative error of the blocked l1 sums (``distances.l1_pairwise``) against the exact l1 of their rows.

    Terms ``|a - b|`` in the storage dtype (one rounding) summed in chunks of at
    most 512 in any order (vectorized), chunk sums added in float64.
    """
    from .kernels.cpu.distances import L1_CHUNK

    chunks = -(-int(d) // L1_CHUNK)
    if np.dtype(dtype) == np.float32:
        return (1.0 + gamma(L1_CHUNK + 1, U32)) * (1.0 + gamma(chunks + 1)) - 1.0
    return gamma(int(d) + chunks + 2)


def _l1_estimate(arr, params, centre=None, bound=True):
    """The fast path of ``l1``: the blocked kernels on the rows themselves (no feature error, E = 0)."""
    from .kernels.cpu.exact import Estimate, SumBound

    F = HOST_OPS.rows(arr)
    d = F.shape[1]
    rho_e, rho_c = _chunk_rho(d, F.dtype), gamma(d)
    return Estimate(F, 0, reductions.L1, SumBound((rho_e + rho_c) / (1.0 - rho_e), np.zeros(F.shape[0])))


def tv_centre(arr):
    """A centre for the tv estimate features: per pixel the lower median of up to 15 spread samples, as float64.

    Every value is one of the samples' own (so ``x - centre`` is exact in
    float64 for float32 pixels), and a median of several samples, so one
    outlier cannot put the centre far from the rest.
    """
    images = _as_images(arr)
    n = images.shape[0]
    step = max(1, n // 15)
    pick = images[: step * 15 : step][:15]
    mid = (pick.shape[0] - 1) // 2
    # The same value as the device's insertion sort (cs_fast.kernels.features.lower_median_column).
    return np.ascontiguousarray(np.partition(pick, mid, axis=0)[mid].astype(np.float64))


def _tv_estimate(arr, params, centre=None, bound=True):
    """The fast path of ``tv``: neighbour differences of the samples centred on ``centre``, and their bound.

    Features ``g = fl(fl(y_hi - y_lo))`` of ``y = fl64(x - centre)``, stored in
    the input dtype (unit ``u_f``: 2**-24 for float32, 0 for float64). Against
    the exact centred differences ``G`` each is off by at most
    ``(u_f + u)(1 + 3 u_f)|g| + 1.01 u (|y_hi| + |y_lo|)`` (one float64
    rounding of ``y``, of the difference, and the storage rounding), so the
    exact l1 (l2 per position) of ``g_i - g_j`` is within
    ``E_i + E_j`` of the exact TV of the samples' difference, with
    ``E_i = (u_f + u)(1 + 3 u_f) a_i + 8.1 u b_i``, ``a_i = sum |g_i|``,
    ``b_i = sum |y_i|`` (each pixel is in at most four neighbour pairs; the
    second ``4 u b_i`` covers the canonical distance's own term in the
    samples' difference, ``|x_i - x_j| <= |y_i| + |y_j|``). The estimate's
    summation is within ``rho_e`` of its exact value, the canonical distance
    within ``rho_c`` of the exact TV, so :class:`cs_fast.kernels.cpu.exact.SumBound`
    holds with ``rho = (rho_e + rho_c) / (1 - rho_e)`` and these ``E_i``.
    """
    from .kernels.cpu.distances import tv_estimate
    from .kernels.cpu.exact import Estimate, SumBound

    images, positions, grouped = tv_layout(arr.shape, params)
    X = np.ascontiguousarray(arr.reshape(images))
    n, c, h, w = X.shape
    C0 = tv_centre(X) if centre is None else np.ascontiguousarray(centre, dtype=np.float64).reshape(c, h, w)
    out = np.empty((n, c * positions), dtype=X.dtype)
    norms = np.zeros((n if bound else 0, 2))  # bound=False: the features alone (float32 cdist)
    if n:
        tv_estimate(X, C0, grouped, out, norms)
    return Estimate(out, positions if grouped else 0, reductions.GROUPED_L2 if grouped else reductions.L1,
                    tv_bound(out.dtype, c, positions, grouped, norms) if bound else None)


def tv_bound(dtype, channels, positions, grouped, norms):
    """The :class:`cs_fast.kernels.cpu.exact.SumBound` of the tv estimate features (see :func:`_tv_estimate`)."""
    from .kernels.cpu.exact import SumBound

    d = channels * positions
    uf = U32 if np.dtype(dtype) == np.float32 else 0.0
    up = 1.0 + gamma(d + 2)  # the float64 sums a_i, b_i, rounded up
    E = ((uf + U64) * (1.0 + 3.0 * uf) * norms[:, 0] + 8.1 * U64 * norms[:, 1]) * up
    if grouped:
        rho_e, rho_c = gamma(2 * d + 2 * positions + 8), gamma(positions + channels + 3)
    else:
        rho_e, rho_c = _chunk_rho(d, dtype), gamma(positions + 1)
    return SumBound((rho_e + rho_c) / (1.0 - rho_e), np.ascontiguousarray(E))


def _pairwise_norm1(A, B):
    """``|A_i - B_j|_1`` in float64 for every pair (rounded up), for the bounds."""
    A = _rows(A).astype(np.float64)
    B = _rows(B).astype(np.float64)
    out = np.empty((len(A), len(B)))
    for i in range(len(A)):
        out[i] = np.abs(A[i] - B).sum(axis=1)
    return out * (1.0 + gamma(A.shape[1] + 2))


def _bound_jaccard(A, B, params, exact):
    return gamma(14) * exact


def _bound_mask(A, B, params, exact):
    return U64 * exact


def _bound_tv(A, B, params, exact):
    images, positions, grouped = tv_layout(A.shape, params)
    channels = images[1]
    rel = gamma(positions + channels + 4) if grouped else gamma(positions + 1)
    return rel * exact + 4.01 * U64 * _pairwise_norm1(A, B)


def _bound_sq(A, B, params, exact):
    d = int(np.prod(A.shape[1:]))
    return gamma(d + (3 if params.get("weights") is not None else 2)) * exact


def _bound_l2(A, B, params, exact):
    return gamma(int(np.prod(A.shape[1:])) + 3) * exact


def _bound_l1(A, B, params, exact):
    return gamma(int(np.prod(A.shape[1:]))) * exact


def _bound_angular(A, B, params, exact):
    A = _rows(A).astype(np.float64)
    B = _rows(B).astype(np.float64)
    d = A.shape[1]
    na = np.linalg.norm(A, axis=1)[:, None]
    nb = np.linalg.norm(B, axis=1)[None, :]
    chord = np.empty((len(A), len(B)))
    for i in range(len(A)):
        chord[i] = np.minimum(np.linalg.norm(A[i] - B, axis=1), np.linalg.norm(A[i] + B, axis=1))
    return gamma(d + 10) * exact + (4 * d + 24) * U64 / np.pi * chord / np.maximum(na, nb) * 1.01


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
    reduction=reductions.BOX,
    reference=_ref_jaccard,
    upper_bound=1.0,
    accuracy=(
        "|D - d| <= gamma(14) d (u = 2**-53, gamma(m) = m u / (1 - m u)), relative to the distance: overlapping "
        "boxes are computed as (U - I) / U with U - I = (A - I) + (B - I) summed from coordinate differences, "
        "A - I = (w_a - w_i) h_a + w_i (h_a - h_i), w_a - w_i = (x2_a - x2_i) + (x1_i - x1_a): every term is "
        "non-negative and carries at most 4 roundings, so U - I is within gamma(6), I = w_i h_i within gamma(3), "
        "U = I + (U - I) within gamma(7), and the quotient within gamma(14). Disjoint boxes are exactly 1, two "
        "empty boxes exactly 0. Assumes every width, height and product is a normal float64 (no underflow)."),
    error_bound=_bound_jaccard,
)

JACCARD_MASK = Metric(
    name="jaccard_mask",
    aliases=("mask_iou", "mask"),
    gamma=1.0,
    layout="boolean masks of shape (n, ...) with at least one element per mask",
    params=(),
    prepare=_prepare_masks,
    featurize=_featurize_masks,
    reduction=reductions.MASK,
    reference=_ref_jaccard_mask,
    upper_bound=1.0,
    accuracy="|D - d| <= u d: (|A or B| - |A and B|) / |A or B| of exact integer counts, one rounding.",
    error_bound=_bound_mask,
)

TV = Metric(
    name="tv",
    aliases=("total_variation",),
    gamma=1.0,
    layout="signals (n, k), grayscale images (n, H, W) or multi-channel images (n, C, H, W)",
    params=("channel_norm",),
    prepare=_prepare_tv,
    featurize=_featurize_tv,
    reduction=reductions.TV,  # tv2 for channel_norm=2 over several channels (see _featurize_tv)
    reference=_ref_tv,
    accuracy=(
        "|D - d| <= gamma(P + 1) d + 4.01 u |x_i - x_j|_1 (channel l1; gamma(P + C + 4) d + 4.01 u |x_i - x_j|_1 for "
        "channel l2), P the neighbour pairs of one channel, C the channels. The samples' difference first: "
        "e = fl(x_i - x_j) is exact for float32 pixels (two float32 values within 2**28 of each other in "
        "magnitude) and for float64 pixels within a factor 2 of each other (Sterbenz), else within u of "
        "|x_i - x_j| per pixel; each neighbour difference fl(e_hi - e_lo) is one rounding of the exact one up to "
        "those (each pixel is in at most four pairs), and the sum of P non-negative terms adds gamma(P - 1). So "
        "for samples around a common base (float32, or float64 close to each other) the error is relative to "
        "the distance alone. float32 cdist/pdist: the blocked float32 sums of the centred estimate features, "
        "within cs_fast.kernels.cpu.exact.SumBound of D, then rounded to float32."),
    error_bound=_bound_tv,
    estimate=_tv_estimate,
)

SQFEAT = Metric(
    name="sqfeat",
    aliases=("sqeuclidean",),
    gamma=2.0,
    layout="feature arrays of shape (n, ...) with at least one feature",
    params=("weights",),
    prepare=_prepare_vectors(lambda: SQFEAT),
    featurize=_featurize_sqfeat,
    reduction=reductions.SQ,  # wsq with weights (see _featurize_sqfeat)
    reference=_ref_sqfeat,
    accuracy=(
        "|D - d| <= gamma(d + 2) d unweighted, gamma(d + 3) d with weights, relative to the distance: each term "
        "w_k (fl(a_k - b_k))**2 takes the samples' difference first (exact for float32, within u otherwise: "
        "two roundings once squared), the square and the weight one rounding each, and the sum of d "
        "non-negative terms gamma(d - 1). float32 cdist/pdist: within 2**-10 of D "
        "(cs_fast.kernels.mixed_precision), rounded to float32."),
    error_bound=_bound_sq,
)

L2 = Metric(
    name="l2",
    aliases=("euclidean",),
    gamma=1.0,
    layout="feature arrays of shape (n, ...) with at least one feature",
    params=(),
    prepare=_prepare_vectors(lambda: L2),
    featurize=_featurize_identity,
    reduction=reductions.L2,
    reference=_ref_l2,
    accuracy=(
        "|D - d| <= gamma(d + 3) d: the square root (one rounding, halving the relative error) of the sqfeat "
        "sum. float32 cdist/pdist: as sqfeat, then one more float32 rounding."),
    error_bound=_bound_l2,
)

L1 = Metric(
    name="l1",
    aliases=("cityblock", "manhattan"),
    gamma=1.0,
    layout="feature arrays of shape (n, ...) with at least one feature",
    params=(),
    prepare=_prepare_vectors(lambda: L1),
    featurize=_featurize_identity,
    reduction=reductions.L1,
    reference=_ref_l1,
    accuracy=(
        "|D - d| <= gamma(d) d: terms |fl(a_k - b_k)| (exact for float32, one rounding otherwise) summed in "
        "float64, gamma(d - 1) for d non-negative terms. float32 cdist/pdist: the blocked float32 chunk sums, "
        "within gamma_32(513) + gamma(d / 512 + 1) of d (u_32 = 2**-24), rounded to float32."),
    error_bound=_bound_l1,
    estimate=_l1_estimate,
)

ANGULAR = Metric(
    name="angular",
    aliases=("arccos",),
    gamma=1.0,
    layout="non-zero feature arrays of shape (n, ...) with at least one feature",
    params=(),
    prepare=_prepare_angular,
    featurize=_featurize_angular,
    reduction=reductions.ANGULAR,
    reference=_ref_angular,
    upper_bound=1.0,
    accuracy=(
        "|D - d| <= gamma(d + 10) d + (4 d + 24) u r / pi with r = min(|x - y|, |x + y|) / max(|x|, |y|): "
        "relative to the angle for rows of similar norm, at most (4 d + 24) u r / pi otherwise. Derivation "
        "(cs_fast.kernels.pair.angular_pair; x the row of smaller norm s, t = |y|, e = y - x, f = y + x): "
        "f.e = t**2 - s**2 is within gamma(d + 2) |f| |e| and the norms within gamma(d / 2 + 2), so "
        "alpha = f.e / (s (s + t)) = (t - s) / s is within gamma(2 d + 9) r_m / s, r_m = min(|e|, |f|) "
        "(|alpha| s = t - s <= r_m, |f|, |e| <= s + t); the chords alpha x - e = 2 t sin(theta / 2) and "
        "alpha x + f = 2 t cos(theta / 2) then carry (gamma(2 d + 9) + 2 u) r_m plus gamma(d / 2 + 3) of "
        "themselves, and atan2 turns errors da, db of the two legs into at most "
        "(da cos(theta / 2) + db sin(theta / 2)) / (2 t) of theta / 2. The rows' own norms are assumed not to "
        "overflow float64 when squared."),
    error_bound=_bound_angular,
)

_REGISTRY = {m.name: m for m in (JACCARD, JACCARD_MASK, TV, SQFEAT, L2, L1, ANGULAR)}
_LOOKUP = {alias: m for m in _REGISTRY.values() for alias in (m.name,) + m.aliases}

# Names a user may reasonably try whose meaning differs from every registered metric: refused
# with the reason, never mapped to something that computes another quantity.
_REFUSED = {
    "lpips": (
        "LPIPS is not a distance on raw pixels: it is 'sqfeat' on the features of a perceptual network. "
        "Compute the features once per image (cs_fast.models.lpips_adapter.LPIPSFeatures) and pass them "
        "with metric 'sqfeat'"
    ),
    "cosine": (
        "scipy's 'cosine' distance (1 - cos) breaks the triangle inequality, which the center's guarantee "
        "needs; use 'angular' (the angle between the vectors, a metric)"
    ),
}


def available_metrics():
    """Names of the registered metrics, sorted.

    Each name is accepted by :func:`get_metric`, :func:`cs_fast.cdist`,
    :func:`cs_fast.min_median` and :class:`cs_fast.CenterSmoothing`; the
    aliases (scipy's names among them) are on each :class:`Metric` record.

    Returns
    -------
    list of str

    Examples
    --------
    >>> import cs_fast
    >>> cs_fast.available_metrics()
    ['angular', 'jaccard', 'jaccard_mask', 'l1', 'l2', 'sqfeat', 'tv']
    """
    return sorted(_REGISTRY)


def get_metric(metric):
    """The :class:`Metric` record of a name or alias (or a Metric itself).

    Names are case-insensitive. A name whose usual meaning no registered
    metric computes (``'lpips'`` on raw pixels, scipy's ``'cosine'``) is
    refused with the reason rather than mapped to something else.

    Parameters
    ----------
    metric : str or Metric
        A name from :func:`available_metrics` or one of its aliases.

    Returns
    -------
    Metric

    Raises
    ------
    ValueError
        For an unknown or refused name; the message lists the known ones.

    Examples
    --------
    scipy's ``'sqeuclidean'`` is cs_fast's ``sqfeat``, whose certificates
    use gamma = 2 (the squared distance satisfies a relaxed triangle
    inequality with constant 2):

    >>> import cs_fast
    >>> m = cs_fast.get_metric("sqeuclidean")
    >>> m.name, m.gamma
    ('sqfeat', 2.0)
    """
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str) and metric.lower() in _LOOKUP:
        return _LOOKUP[metric.lower()]
    if isinstance(metric, str) and metric.lower() in _REFUSED:
        raise ValueError(f"metric: received {metric!r}; {_REFUSED[metric.lower()]}")
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
    """Name of the pair function for featurized data (tv and weighted sqfeat name theirs in the features)."""
    return features.reduction or metric.reduction


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
