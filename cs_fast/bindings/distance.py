"""scipy-style front doors: cdist, pdist, to_center, paired, min_median.

Each decides where to compute once (:func:`cs_fast.bindings.backend.resolve`:
``'auto'`` follows the data), validates its inputs against the metric's
layout, featurizes once, calls one kernel (:mod:`cs_fast.kernels.cpu.distances` or
:mod:`cs_fast.kernels.cuda`) and returns the caller's array type. On the
device path, validation and featurize run on the device too
(:mod:`cs_fast.bindings.device`); only counts and scalars reach the host.
"""

import numba
import numpy as np

from .._checks import check_int
from ..kernels import reductions
from ..kernels.cpu import distances, exact, mixed, prune
from ..kernels import cuda as ck
from ..metrics import HOST_OPS, HostOps, check_metric_params, get_metric, output_dtype, prepare_pair, reduction_for
from .arrays import device_scope, is_numba_device_array, wrap_like
from .backend import resolve

# The float64 row buffer of min_median gets at most this many bytes by default on
# the host; the device default is cs_fast.kernels.cuda.DEFAULT_MAX_MEMORY.
DEFAULT_TILE_BYTES = 256 * 2**20


def _metric(metric, params):
    m = get_metric(metric)
    return m, check_metric_params(m, params)


def _load(backend, named):
    """Place and view the inputs ``named`` (a list of (argname, array)).

    Returns ``(arrays, kind, ops, gpu)``: the arrays to compute on (numpy or
    numba device arrays), the caller's array kind (of the first input), the
    prepare operations for where the arrays live, and whether the kernels run
    on the GPU, all from one :func:`cs_fast.bindings.backend.resolve`. Host
    data under ``backend='cuda'`` is validated and featurized on the host and
    its features uploaded (see :func:`_featurize`).
    """
    where = resolve(backend, *(x for _, x in named), names=[name for name, _ in named])
    return [where.view(x, name) for name, x in named], where.kind, where.ops, where.gpu


def _featurize(m, arr, params, gpu):
    if not gpu:
        return m.featurize(arr, params)
    from . import device

    if is_numba_device_array(arr):
        return device.featurize(m, arr, params)
    return device.upload(m.featurize(arr, params))


def _astype(d, dtype):
    """Distances in the output dtype, where they are."""
    if is_numba_device_array(d):
        from .device import copy

        return d if d.dtype == dtype else copy(d, dtype)
    return d.astype(dtype, copy=False)


def _empty(shape, dtype, gpu):
    """A result with a zero-length axis, as scipy returns it; no kernel runs (a CUDA grid cannot be empty)."""
    if gpu:
        return ck.empty(shape, dtype)  # the caller's stream and pool (device_scope)
    return np.empty(shape, dtype=dtype)


def cdist(XA, XB, metric="l2", *, backend="auto", **params):
    """Distances between every row of ``XA`` and every row of ``XB``.

    A drop-in for :func:`scipy.spatial.distance.cdist`: returns an
    ``(len(XA), len(XB))`` matrix with ``out[i, j] = d(XA[i], XB[j])``.
    float32 inputs give float32 output, anything else float64. float64
    output is the canonical distance of every pair, the same bits
    :func:`to_center`, :func:`paired` and :func:`min_median` use; float32
    output of ``tv``, ``l1``, ``sqfeat`` and ``l2`` comes from float32 fast
    paths within their stated bounds of it (:attr:`cs_fast.metrics.Metric.accuracy`),
    of the other metrics it is the canonical distance rounded. numpy in,
    numpy out; torch in, torch out (CPU tensors are viewed, not copied); CUDA
    torch / CuPy / numba device arrays in, the same type out, on the device.

    Parameters
    ----------
    XA, XB : array_like
        Samples in the metric's layout (see :func:`cs_fast.available_metrics`
        and :mod:`cs_fast.metrics`), with the same per-sample shape. Both on
        the host or both on a CUDA device (see :mod:`cs_fast.bindings.arrays`).
    metric : str
        A registered name or alias (``'jaccard'``, ``'tv'``, ``'sqfeat'``, ...).
    backend : {'auto', 'cpu', 'cuda'}
        Where to compute; ``'auto'`` follows where the data lives. ``'cuda'``
        with host data copies it to the device and the result back.
    **params
        Metric parameters, e.g. ``channel_norm=2`` for ``tv`` or
        ``weights=w`` for ``sqfeat``.

    Returns
    -------
    array of shape (len(XA), len(XB))
        Of the inputs' array type (numpy, torch, CuPy or numba device),
        float32 for float32 inputs, else float64.

    Raises
    ------
    TypeError
        If an input's dtype does not fit the metric (e.g. a boolean array
        under ``'jaccard'``, which reads boxes).
    ValueError
        If one input is on the host and the other on a device, or
        ``backend='cpu'`` receives device data.
    RuntimeError
        If the CUDA backend is needed but not usable (no numba-cuda, no GPU).

    Examples
    --------
    The same numbers as scipy, under cs_fast's names or scipy's:

    >>> import numpy as np
    >>> import cs_fast
    >>> XA = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> XB = np.array([[0.0, 0.0], [6.0, 8.0], [3.0, 0.0]])
    >>> cs_fast.cdist(XA, XB, "euclidean")
    array([[ 0., 10.,  3.],
           [ 5.,  5.,  4.]])

    Boxes ``(x1, y1, x2, y2)`` under ``jaccard`` (one minus intersection
    over union); float32 in, float32 out:

    >>> boxes = np.array([[0, 0, 2, 2], [1, 1, 3, 3]], dtype=np.float32)
    >>> D = cs_fast.cdist(boxes, boxes, "jaccard")
    >>> D.dtype, round(float(D[0, 1]), 4)
    (dtype('float32'), 0.8571)
    """
    m, params = _metric(metric, params)
    same = XB is XA  # cdist(X, X): validate and featurize once (and one symmetric product for sq/l2)
    (A, B), kind, ops, gpu = _load(backend, [("XA", XA), ("XB", XB)])
    # float32 sq/l2 on the host: the finiteness check rides on the mixed path's centring pass
    # (see _FiniteLater); every other way out of this function runs it in full first.
    float32_gram = (not gpu and m.reduction.gemm
             and getattr(A, "dtype", None) == np.float32 and getattr(B, "dtype", None) == np.float32)
    checks = _FINITE_LATER if float32_gram else ops
    with device_scope(kind):
        if same:
            A = B = m.prepare(A, "XA", params, checks)
        else:
            A, B = prepare_pair(m, A, B, params, ops=checks)

        def check_finite():  # the check _FINITE_LATER left out, with prepare's own error
            if float32_gram:
                m.prepare(A, "XA", params, ops)
                if not same:
                    m.prepare(B, "XB", params, ops)

        if len(A) == 0 or len(B) == 0:
            check_finite()
            return wrap_like(_empty((len(A), len(B)), output_dtype(A), gpu), kind)
        with np.errstate(invalid="ignore", over="ignore"):  # unchecked NaN/inf: check_finite raises below
            FA = _featurize(m, A, params, gpu)
            FB = FA if same else _featurize(m, B, params, gpu)
        red = reduction_for(m, FA)
        if gpu:
            est = _fast_estimates(m, params, A, B, same, output_dtype(A), gpu)
            if est is not None:
                D = ck.pairwise(est[0].reduction, est[0].data, est[1].data, est[0].arg, output_dtype(A))
            else:
                D = ck.pairwise(red, FA.data, FB.data, FA.arg, output_dtype(A))
        else:
            # float32 product and its bound (kernels/cpu/mixed.py); None: a centred norm is not
            # finite (NaN or inf in the input: check_finite raises) or too large for float32.
            D = mixed.pairwise(red, FA.data, FB.data, FA.arg) if float32_gram and FA.data.shape[1] else None
            if D is None:
                check_finite()
                D = _host_pairwise(m, params, red, A, B, FA, FB, same, output_dtype(A))
        return wrap_like(D, kind)


def _estimate(m, arr, params, gpu, centre=None, bound=True):
    """``m.estimate`` where the kernels run: on the device for device data, else on the host (uploaded for cuda).

    ``bound=False``: the features alone, no bound (the float32 fast path's output needs none).
    """
    if gpu and is_numba_device_array(arr):
        from . import device

        return device.estimate(m, arr, params, centre)
    est = m.estimate(arr, params, centre) if bound else m.estimate(arr, params, centre, bound=False)
    if gpu:
        return exact.Estimate(ck.upload(est.data), est.arg, est.reduction, est.bound)
    return est


def _fast_estimates(m, params, A, B, same, dtype, gpu=False):
    """The estimate features of a float32 front door's fast path, both sides centred alike; else None.

    Only where the estimate is a blocked l1 sum (``tv``): the canonical
    features of ``l1`` already are its fast path's, and the others have no
    faster float32 path.
    """
    from ..metrics import tv_layout

    if np.dtype(dtype) != np.float32 or m.name != "tv" or tv_layout(A.shape, params)[2]:
        return None  # float64 output, or channel-l2 tv (its estimate has no faster float32 path)
    if gpu and is_numba_device_array(A):
        from ..kernels.cuda import featurize as kf

        centre = kf.tv_centre(A.reshape(tv_layout(A.shape, params)[0]))
    else:
        from ..metrics import tv_centre

        centre = tv_centre(A)
    EA = _estimate(m, A, params, gpu, centre, bound=False)
    return EA, (EA if same else _estimate(m, B, params, gpu, centre, bound=False))


def _host_pairwise(m, params, red, A, B, FA, FB, same, dtype):
    """Host distances of every row of ``A`` to every row of ``B`` in ``dtype`` (see :func:`cdist`)."""
    est = _fast_estimates(m, params, A, B, same, dtype)
    if est is not None:
        EA, EB = est
        return distances.pairwise(EA.reduction, EA.data, EB.data, EA.arg, dtype)
    return distances.pairwise(red, FA.data, FB.data, FA.arg, dtype)


class _FiniteLater(HostOps):
    """Host checks without the finiteness scan, for float32 ``sq``/``l2`` rows bound for the mixed path.

    That path's centring pass reads every value into a float64 row norm: a NaN
    or inf anywhere makes a norm NaN or inf (``inf - s`` and ``inf * 0`` are
    not finite), the path then returns None, and the caller runs the full
    check, which raises the usual error. One pass over the input instead of two.
    """

    @staticmethod
    def nonfinite_rows(arr):
        return 0, -1


_FINITE_LATER = _FiniteLater()


def pdist(X, metric="l2", *, backend="auto", **params):
    """Condensed pairwise distances, as :func:`scipy.spatial.distance.pdist`.

    Returns the ``n (n - 1) / 2`` distances ``d(X[i], X[j])`` for ``i < j`` in
    row-major order; ``scipy.spatial.distance.squareform`` turns it into the
    square matrix. Only the upper triangle is computed, in row tiles.
    Arguments as :func:`cdist`.

    Examples
    --------
    >>> import numpy as np
    >>> import cs_fast
    >>> X = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    >>> cs_fast.pdist(X, "l2")
    array([ 5., 10.,  5.])
    >>> from scipy.spatial.distance import squareform
    >>> squareform(cs_fast.pdist(X, "l1"))
    array([[ 0.,  7., 14.],
           [ 7.,  0.,  7.],
           [14.,  7.,  0.]])
    """
    m, params = _metric(metric, params)
    (X,), kind, ops, gpu = _load(backend, [("X", X)])
    with device_scope(kind):
        X = m.prepare(X, "X", params, ops)
        F = _featurize(m, X, params, gpu)
        red = reduction_for(m, F)
        n = X.shape[0]
        dtype = output_dtype(X)
        tile = 256
        if n < 2:
            return wrap_like(_empty((0,), dtype, gpu), kind)
        if gpu:
            from ..kernels.cuda import featurize as kf

            est = _fast_estimates(m, params, X, X, True, dtype, gpu)
            red, G, arg = (red, F.data, F.arg) if est is None else (est[0].reduction, est[0].data, est[0].arg)
            out = ck.empty(n * (n - 1) // 2, dtype)  # from the caller's pool, on its stream
            for i0 in range(0, max(n - 1, 0), tile):
                i1 = min(n - 1, i0 + tile)
                kf.condense(ck.pairwise(red, G[i0:i1], G[i0 + 1 :], arg, dtype), i0, n, out)
            return wrap_like(out, kind)
        if red.gram and np.dtype(dtype) == np.float32 and F.data.shape[1]:
            # centred once, one symmetric float32 product, the bound (kernels/cpu/mixed.py)
            out = mixed.condensed(red, F.data, F.arg, DEFAULT_TILE_BYTES)
            if out is not None:
                return wrap_like(out, kind)
        out = np.empty(n * (n - 1) // 2, dtype=dtype)
        est = _fast_estimates(m, params, X, X, True, dtype)
        red, G, arg = (red, F.data, F.arg) if est is None else (est[0].reduction, est[0].data, est[0].arg)
        pos = 0
        for i0 in range(0, max(n - 1, 0), tile):
            i1 = min(n - 1, i0 + tile)
            block = distances.pairwise(red, G[i0:i1], G[i0 + 1 :], arg, out.dtype)
            for r in range(i1 - i0):
                row = block[r, r:]
                out[pos : pos + row.size] = row
                pos += row.size
        return wrap_like(out, kind)


def to_center(Z, center, metric="l2", *, backend="auto", **params):
    """Distances from every row of ``Z`` to the single point ``center``.

    ``center`` has the per-sample shape of ``Z`` (``Z.shape[1:]``) and lives
    where ``Z`` does. Returns a length-``len(Z)`` vector of the caller's type,
    float32 for float32 inputs, else float64. These are the distances the
    center check and the certificate rank (the same bits as float64
    :func:`cdist` for each pair). Other arguments as :func:`cdist`.

    Examples
    --------
    Total variation (the sum of absolute differences of neighbouring
    pixels) of each image's difference from a reference image:

    >>> import numpy as np
    >>> import cs_fast
    >>> Z = np.zeros((3, 2, 2))
    >>> Z[1, 0, 0] = 1.0   # one bright pixel: two neighbour differences of 1
    >>> Z[2] = 5.0         # a constant shift: no neighbour differences
    >>> cs_fast.to_center(Z, Z[0], "tv")
    array([0., 2., 0.])
    """
    d64, dtype, kind = to_center64(Z, center, metric, params, backend)
    with device_scope(kind):
        return wrap_like(_astype(d64, dtype), kind)


def paired(XA, XB, metric="l2", *, backend="auto", **params):
    """Distances ``d(XA[i], XB[i])`` of matching rows, length ``len(XA)``.

    The row-wise form of :func:`cdist` (``sklearn.metrics.pairwise.paired_distances``
    style, and the ``dist_fn(batch1, batch2)`` signature of the authors' code).
    Other arguments as :func:`cdist`.

    Examples
    --------
    >>> import numpy as np
    >>> import cs_fast
    >>> XA = np.array([[0.0, 0.0], [1.0, 1.0]])
    >>> XB = np.array([[3.0, 4.0], [1.0, 2.0]])
    >>> cs_fast.paired(XA, XB, "sqfeat")
    array([25.,  1.])
    """
    m, params = _metric(metric, params)
    (A, B), kind, ops, gpu = _load(backend, [("XA", XA), ("XB", XB)])
    with device_scope(kind):
        A, B = prepare_pair(m, A, B, params, ops=ops)
        if len(A) != len(B):
            raise ValueError(f"XB: received {len(B)} rows but XA has {len(A)}; expected matching rows")
        if len(A) == 0:
            return wrap_like(_empty((0,), output_dtype(A), gpu), kind)
        FA, FB = _featurize(m, A, params, gpu), _featurize(m, B, params, gpu)
        red = reduction_for(m, FA)
        d = (ck if gpu else distances).paired(red, FA.data, FB.data, FA.arg)
        return wrap_like(_astype(d, output_dtype(A)), kind)


def to_center64(Z, center, metric, params, backend="auto"):
    """:func:`to_center`'s float64 distances, where they were computed: ``(distances, dtype, kind)``.

    ``distances`` is a numpy array on the host and a numba device array on
    the device (also for host inputs under ``backend='cuda'``); ``dtype`` is
    the output dtype :func:`to_center` would cast them to and ``kind`` the
    caller's array kind. The certificates of :mod:`cs_fast.smoothing` are
    computed from these, so that only scalars leave the device.
    """
    m, params = _metric(metric, params)
    (Z, c), kind, ops, gpu = _load(backend, [("Z", Z), ("center", center)])
    if tuple(c.shape) != tuple(Z.shape[1:]):
        raise ValueError(
            f"center: received shape {tuple(c.shape)}; expected the per-sample shape of Z, {tuple(Z.shape[1:])}"
        )
    with device_scope(kind):
        c = c.reshape((1,) + tuple(c.shape)) if ops is not HOST_OPS else np.asarray(c)[None]
        A, C = prepare_pair(m, Z, c, params, names=("Z", "center"), ops=ops)
        if len(A) == 0:
            return _empty((0,), np.float64, gpu), output_dtype(A), kind
        FA, FC = _featurize(m, A, params, gpu), _featurize(m, C, params, gpu)
        d = (ck if gpu else distances).to_center(reduction_for(m, FA), FA.data, FC.data, FA.arg)
    return d, output_dtype(A), kind


METHODS = ("auto", "pruned", "brute")


def host_tile(reduction, n, method, max_memory=None):
    """Rows per tile of the host's ``min_median`` over ``n`` samples within ``max_memory`` bytes.

    Brute force holds a float64 ``tile x n`` buffer; the pruned search a second,
    smaller scratch buffer for its selections; the float32 GEMM of the sums of
    squares one float32 ``tile x n`` product, uncapped (one tile of all rows is
    a symmetric product). Never fewer rows than threads.
    """
    budget = DEFAULT_TILE_BYTES if max_memory is None else max_memory
    threads = numba.get_num_threads()
    if reductions.get(reduction).gram and method == "brute":
        return max(threads, min(n, budget // (4 * n)))
    per_row = 8 * n if method == "brute" else 8 * n + 8 * min(n, n // 4 + 4096)
    return max(threads, min(1024, budget // per_row))


def min_median(Z, metric="l2", *, backend="auto", tile=None, max_memory=None, method="auto", stats=None,
               **params):
    """The sample with the smallest lower median distance to all samples.

    For each row ``i`` the lower median is the ``ceil(n/2)``-th smallest of
    the ``n`` distances ``d(Z[i], Z[j])``, ``j = 0..n-1`` (itself included);
    the ball of that radius around ``Z[i]`` holds at least half the samples.
    Returns ``(index, radius)`` of the row with the smallest such median
    (the smallest index among ties): the paper's 2-approximate minimum
    enclosing ball of half the samples (beta = 2 gamma).

    Exact: the distances are the canonical float64 ones of the inputs' own
    values (within each metric's stated bound of the exact distance,
    :attr:`cs_fast.metrics.Metric.accuracy`), the same bits as
    :func:`to_center`, float64 :func:`cdist` and :func:`paired` return for
    the same pair; the result is brute force over them, and ``radius`` is the
    lower median of ``to_center(Z, Z[index])`` bit for bit. Fast paths
    (float32 products and sums, ``tv``'s centred features) only decide which
    rows can win, within their derived bounds; the rows that may are
    computed canonically (:mod:`cs_fast.kernels.cpu.exact`,
    :mod:`cs_fast.kernels.cpu.mixed`).

    Rows are processed in tiles and never hold the ``n x n`` matrix: extra
    memory is ``O(tile * n)``. A counting pass discards rows that cannot beat
    the best median so far; only the others get an exact selection.

    ``method='pruned'`` also skips rows that provably cannot
    win: each row computed in full bounds every other row's median from below
    (``med(i) >= med(j) - d(i, j)``, the triangle inequality; on the square
    roots for ``sqfeat``), with a margin for rounding, so the result is the
    brute-force one exactly -- same index, same radius, bit for bit -- while
    clustered samples evaluate a small fraction of the ``n^2`` distances
    (:mod:`cs_fast.kernels.cpu.prune`). ``method='brute'`` visits every row (the
    reference). ``method='auto'`` (the default) takes the pruned search
    where it is measured to pay on the host (every metric but ``jaccard``
    below 10 000 boxes, whose counting pass is already cheap, and
    ``sqfeat``/``l2``, whose rows come from one float32 GEMM with a float64
    refinement); both give the same answer.

    Parameters
    ----------
    tile : int, optional
        Rows per tile; by default as many as ``max_memory`` allows (at most
        1024 on the host, except ``sq``/``l2``, whose host tiles are float32
        GEMM rows: all rows at once when they fit).
    max_memory : int, optional
        Bytes of float64 distance rows held at once: 256 MiB by default on
        the host, ``cs_fast.kernels.cuda.DEFAULT_MAX_MEMORY`` (1 GiB) on the
        device, where a budget smaller than one row is a ValueError.
    method : {'auto', 'pruned', 'brute'}
        Skip rows by their lower bounds, visit every row, or choose (default).
    stats : dict, optional
        Filled with what the search did, on every path: ``method`` (the one
        that ran, ``'pruned'`` or ``'brute'``), ``evaluated`` (ordered pairs
        ``(i, j)`` whose distance was computed, at most ``n^2``), ``pairs``
        (``n^2``), ``fraction`` (``evaluated / pairs``, in [0, 1]),
        ``recomputed`` (further evaluations of pairs already counted: a
        float64 refinement of a float32 screen, pivot rows; the work is
        ``evaluated + recomputed``), ``rows_full`` (rows computed in full;
        brute force: every row), ``rows_counted`` (rows given only the
        counting pass) and ``rows_skipped`` (rows never touched); some paths
        add their own (``candidates``, ``refined``, ``summed``, ``seeds``,
        ``survivors``). On the device's brute-force path the count's early
        exit is not tallied: ``evaluated`` is ``n^2`` there, an upper bound.

    Returns
    -------
    index : int
        The row of the center (the smallest among tied medians).
    radius : float
        Its lower median distance, a float64.

    Examples
    --------
    Four points near the origin and one far away: the center is the point
    with the most neighbours close by, and at least half of the samples
    (itself included) lie within its radius.

    >>> import numpy as np
    >>> import cs_fast
    >>> Z = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [0.35, 0.0], [5.0, 0.0]])
    >>> index, radius = cs_fast.min_median(Z, "l2")
    >>> int(index), round(radius, 6)
    (1, 0.1)
    >>> stats = {}
    >>> _ = cs_fast.min_median(Z, "l2", method="brute", stats=stats)
    >>> stats["method"], stats["pairs"], 0.0 <= stats["fraction"] <= 1.0
    ('brute', 25, True)
    """
    if method not in METHODS:
        raise ValueError(f"method: received {method!r}; expected one of {METHODS}")
    if stats is not None and not isinstance(stats, dict):
        raise TypeError(f"stats: received {type(stats).__name__}; expected a dict to fill, or None")
    m, params = _metric(metric, params)
    (Z,), kind, ops, gpu = _load(backend, [("Z", Z)])
    with device_scope(kind):
        Z = m.prepare(Z, "Z", params, ops)
        n = Z.shape[0]
        if n == 0:
            raise ValueError("Z: received 0 samples; expected at least 1")
        if tile is not None:
            tile = check_int(tile, "tile")
        if max_memory is not None:
            max_memory = check_int(max_memory, "max_memory")
        F = _featurize(m, Z, params, gpu)
        red = reduction_for(m, F)
        root = red.squared_metric  # sqfeat: a squared metric, bounded on its roots
        if method == "auto":
            method = red.auto_method(n)
        if gpu:
            budget = ck.DEFAULT_MAX_MEMORY if max_memory is None else max_memory
            if m.name == "tv":
                # The device's fast tv kernels read the centred estimate features: search on them,
                # refine the candidates with the canonical (images-first) distances.
                est = _estimate(m, Z, params, gpu)
                index, radius = ck.exact_min_median(red, F.data, F.arg, est, tile=tile, max_memory=budget,
                                                    method=method, stats=stats)
            elif method == "pruned":
                from ..kernels.cuda import prune as cuda_prune

                index, radius = cuda_prune.min_median(red, F.data, F.arg, tile=tile, max_memory=budget,
                                                      root=root, stats=stats)
            else:
                index, radius = ck.min_median(red, F.data, F.arg, tile=tile, max_memory=budget)
        else:
            if tile is None:
                tile = host_tile(red, n, method, max_memory)
            if m.estimate is not None:
                # Search on the fast estimates, refine the candidates with the canonical distances.
                est = m.estimate(Z, params)
                index, radius = exact.min_median(red, F.data, F.arg, est, tile, method, stats=stats)
            elif method == "pruned":
                index, radius = prune.min_median(red, F.data, F.arg, tile, root=root, stats=stats)
            elif red.gram:  # float32 product, the bound, float64 where it cannot decide
                index, radius = mixed.min_median(red, F.data, F.arg, tile, stats=stats)
            else:
                index, radius = distances.min_median(red, F.data, F.arg, tile, stats=stats)
    if stats is not None:
        _complete_stats(stats, method, n)
    return int(index), float(radius)


def _complete_stats(stats, method, n):
    """The keys :func:`min_median` promises on every path; brute force visits every row."""
    stats["method"] = method
    stats.setdefault("evaluated", n * n)  # the device's brute force: its early exit is not tallied
    stats.setdefault("recomputed", 0)
    stats["pairs"] = n * n
    stats["fraction"] = stats["evaluated"] / float(n * n)
    if method == "brute":
        stats.update(rows_full=n, rows_counted=0, rows_skipped=0)
    if not 0.0 <= stats["fraction"] <= 1.0:  # a tally that counted a pair twice: a bug, never clipped
        raise AssertionError(f"min_median stats: evaluated {stats['evaluated']} of {n * n} pairs")
