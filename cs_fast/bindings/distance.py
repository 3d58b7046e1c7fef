"""scipy-style front doors: cdist, pdist, to_center, min_median.

Each validates its inputs against the metric's layout, featurizes once, calls
one kernel and returns the caller's array type.
"""

import numba
import numpy as np

from .._checks import check_int
from ..kernels import cpu
from ..metrics import check_metric_params, get_metric, output_dtype, prepare_pair, reduction_for
from .arrays import check_backend, host_view, wrap_like

# The float64 row buffer of min_median gets at most this many bytes by default.
DEFAULT_TILE_BYTES = 256 * 2**20


def _setup(metric, params, backend):
    m = get_metric(metric)
    params = check_metric_params(m, params)
    backend = check_backend(backend)
    if backend == "cuda":
        from .cuda_backend import require_cuda

        require_cuda()
    return m, params


def cdist(XA, XB, metric="l2", *, backend="auto", **params):
    """Distances between every row of ``XA`` and every row of ``XB``.

    A drop-in for :func:`scipy.spatial.distance.cdist`: returns an
    ``(len(XA), len(XB))`` matrix with ``out[i, j] = d(XA[i], XB[j])``.
    float32 inputs give float32 output, anything else float64. numpy in,
    numpy out; torch in, torch out (CPU tensors are viewed, not copied).

    Parameters
    ----------
    XA, XB : array_like
        Samples in the metric's layout (see :func:`cs_fast.available_metrics`
        and :mod:`cs_fast.metrics`), with the same per-sample shape.
    metric : str
        A registered name or alias (``'jaccard'``, ``'tv'``, ``'sqfeat'``, ...).
    backend : {'auto', 'cpu', 'cuda'}
        Where to compute; ``'auto'`` follows where the data lives.
    **params
        Metric parameters, e.g. ``channel_norm=2`` for ``tv`` or
        ``weights=w`` for ``sqfeat``.
    """
    m, params = _setup(metric, params, backend)
    A, kind = host_view(XA, "XA")
    B, _ = host_view(XB, "XB")
    A, B = prepare_pair(m, A, B, params)
    FA = m.featurize(A, params)
    FB = m.featurize(B, params)
    D = cpu.pairwise(reduction_for(m, FA), FA.data, FB.data, FA.arg, output_dtype(A))
    return wrap_like(D, kind)


def pdist(X, metric="l2", *, backend="auto", **params):
    """Condensed pairwise distances, as :func:`scipy.spatial.distance.pdist`.

    Returns the ``n (n - 1) / 2`` distances ``d(X[i], X[j])`` for ``i < j`` in
    row-major order; ``scipy.spatial.distance.squareform`` turns it into the
    square matrix. Only the upper triangle is computed, in row tiles.
    """
    m, params = _setup(metric, params, backend)
    X, kind = host_view(X, "X")
    X = m.prepare(X, "X", params)
    F = m.featurize(X, params)
    red = reduction_for(m, F)
    n = X.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=output_dtype(X))
    tile = 256
    pos = 0
    for i0 in range(0, max(n - 1, 0), tile):
        i1 = min(n - 1, i0 + tile)
        block = cpu.pairwise(red, F.data[i0:i1], F.data[i0 + 1 :], F.arg, out.dtype)
        for r in range(i1 - i0):
            row = block[r, r:]
            out[pos : pos + row.size] = row
            pos += row.size
    return wrap_like(out, kind)


def to_center(Z, center, metric="l2", *, backend="auto", **params):
    """Distances from every row of ``Z`` to the single point ``center``.

    ``center`` has the per-sample shape of ``Z`` (``Z.shape[1:]``). Returns a
    length-``len(Z)`` vector, float32 for float32 inputs, else float64.
    """
    d64, dtype, kind = _to_center64(Z, center, metric, params, backend)
    return wrap_like(d64.astype(dtype, copy=False), kind)


def paired(XA, XB, metric="l2", *, backend="auto", **params):
    """Distances ``d(XA[i], XB[i])`` of matching rows, length ``len(XA)``.

    The row-wise form of :func:`cdist` (``sklearn.metrics.pairwise.paired_distances``
    style, and the ``dist_fn(batch1, batch2)`` signature of the authors' code).
    """
    m, params = _setup(metric, params, backend)
    A, kind = host_view(XA, "XA")
    B, _ = host_view(XB, "XB")
    A, B = prepare_pair(m, A, B, params)
    if len(A) != len(B):
        raise ValueError(f"XB: received {len(B)} rows but XA has {len(A)}; expected matching rows")
    FA = m.featurize(A, params)
    FB = m.featurize(B, params)
    d = cpu.paired(reduction_for(m, FA), FA.data, FB.data, FA.arg)
    return wrap_like(d.astype(output_dtype(A), copy=False), kind)


def _to_center64(Z, center, metric, params, backend="auto"):
    """float64 distances (the smoothing layer's certificates use these), out dtype, kind."""
    m, params = _setup(metric, params, backend)
    Z, kind = host_view(Z, "Z")
    c, _ = host_view(center, "center")
    c = np.asarray(c)
    if c.shape != Z.shape[1:]:
        raise ValueError(
            f"center: received shape {c.shape}; expected the per-sample shape of Z, {Z.shape[1:]}"
        )
    A, C = prepare_pair(m, Z, c[None], params, names=("Z", "center"))
    FA = m.featurize(A, params)
    FC = m.featurize(C, params)
    return cpu.to_center(reduction_for(m, FA), FA.data, FC.data, FA.arg), output_dtype(A), kind


def min_median(Z, metric="l2", *, backend="auto", tile=None, **params):
    """The sample with the smallest lower median distance to all samples.

    For each row ``i`` the lower median is the ``ceil(n/2)``-th smallest of
    the ``n`` distances ``d(Z[i], Z[j])``, ``j = 0..n-1`` (itself included);
    the ball of that radius around ``Z[i]`` holds at least half the samples.
    Returns ``(index, radius)`` of the row with the smallest such median
    (the smallest index among ties): the paper's 2-approximate minimum
    enclosing ball of half the samples (beta = 2 gamma).

    Rows are processed in tiles and never hold the ``n x n`` matrix: extra
    memory is ``O(tile * n)`` (``tile`` rows of float64, 256 MiB by default).
    A counting pass fused with the distance computation discards rows that
    cannot beat the best median so far; only the others get an exact
    selection.
    """
    m, params = _setup(metric, params, backend)
    Z, _ = host_view(Z, "Z")
    Z = m.prepare(Z, "Z", params)
    n = Z.shape[0]
    if n == 0:
        raise ValueError("Z: received 0 samples; expected at least 1")
    if tile is None:
        tile = max(numba.get_num_threads(), min(1024, DEFAULT_TILE_BYTES // (8 * n)))
    tile = check_int(tile, "tile")
    F = m.featurize(Z, params)
    index, radius = cpu.min_median(reduction_for(m, F), F.data, F.arg, tile)
    return int(index), float(radius)
