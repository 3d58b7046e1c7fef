"""Peer implementations that cs_fast is benchmarked against, on the same inputs.

Every peer takes the same raw inputs as the cs_fast call it is compared with
(boxes ``(n, 4)``, boolean masks ``(n, ...)``, images ``(n, C, H, W)``,
feature vectors ``(n, d)``) and does its own preprocessing inside the timed
call, as cs_fast does its featurization inside its own.

Three operations:

``pairwise(XA, XB)``
    The full distance matrix: scipy ``cdist``, ``torch.cdist`` (p = 1, 2),
    scikit-learn ``pairwise_distances(n_jobs=threads)``, numpy broadcasting in row
    chunks, and a BLAS formulation where one exists (masks, sqfeat).
``to_center(Z, c)``
    Distances of every sample to one point.
``min_median(Z)``
    Index and radius of the sample with the smallest median distance to all
    samples: the authors' method (a Python loop over rows, each row
    vectorized with numpy, then ``np.median`` and ``argmin``), and a full
    matrix followed by ``np.median``, ``np.partition`` or ``torch.median``.

For ``tv`` the matrix peers run cityblock (L1) on the flattened finite
differences :func:`cs_fast.metrics.tv_differences`; the authors' row function
differences the images pair by pair instead. Boxes have no scipy or
scikit-learn metric (and torchvision is not a dependency): their peers are a
vectorized IoU matrix in numpy and in torch.

Each peer is an :class:`Impl` with the memory order of its algorithm, which
the report uses to skip runs that would not fit.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

# Temporaries of the chunked numpy peers stay below this many bytes.
CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Impl:
    """One implementation of one operation.

    Attributes
    ----------
    name : str
        Label in tables and plots.
    fn : callable
        The operation on raw inputs.
    mem_order : int
        Peak extra memory grows as ``n ** mem_order`` (2 for a full matrix).
    note : str
        Anything a reader of the table should know (e.g. ``np.median``
        averages the two middle values for even ``n``).
    """

    name: str
    fn: Callable
    mem_order: int = 2
    note: str = ""


def _cores():
    """The run's thread count (:func:`cs_fast_apps.bench.measure.threads`): peers use as many threads as cs_fast."""
    from .measure import threads

    return threads()


def _torch():
    import torch

    torch.set_num_threads(_cores())
    return torch


def _out_dtype(*arrays):
    return np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64


def _row_chunks(n_rows, bytes_per_row):
    step = max(1, CHUNK_BYTES // max(1, bytes_per_row))
    for i0 in range(0, n_rows, step):
        yield i0, min(n_rows, i0 + step)


def _flat(X):
    return X.reshape(len(X), -1)


def tv_features(X):
    """Flattened finite differences (n, C * P): the TV featurization for L1 peers."""
    from cs_fast.metrics import tv_differences

    return np.ascontiguousarray(_flat(tv_differences(X)))


def lower_median_rows(D):
    """Lower median (``ceil(n/2)``-th smallest) of every row, via ``np.partition``."""
    k = (D.shape[1] + 1) // 2
    return np.partition(D, k - 1, axis=1)[:, k - 1]


# --------------------------------------------------------------------------- boxes

def _box_parts(B):
    w = np.clip(B[:, 2] - B[:, 0], 0, None)
    h = np.clip(B[:, 3] - B[:, 1], 0, None)
    return w * h


def _iou_distance(inter, union):
    # Empty boxes have area 0: d(empty, B) = 1 and d(empty, empty) = 0 as in cs_fast.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, 1.0 - inter / union, 0.0)


def iou_matrix_numpy(A, B):
    """1 - IoU of every pair of xyxy boxes, numpy broadcasting in row chunks."""
    out = np.empty((len(A), len(B)), dtype=_out_dtype(A, B))
    area_b = _box_parts(B)
    area_a = _box_parts(A)
    for i0, i1 in _row_chunks(len(A), 8 * len(B) * 8):
        a = A[i0:i1, None, :]
        iw = np.clip(np.minimum(a[..., 2], B[:, 2]) - np.maximum(a[..., 0], B[:, 0]), 0, None)
        ih = np.clip(np.minimum(a[..., 3], B[:, 3]) - np.maximum(a[..., 1], B[:, 1]), 0, None)
        inter = iw * ih
        out[i0:i1] = _iou_distance(inter, area_a[i0:i1, None] + area_b[None, :] - inter)
    return out


def iou_row_numpy(Z, c):
    """1 - IoU of every box of ``Z`` with the single box ``c`` (the authors' row step)."""
    iw = np.clip(np.minimum(Z[:, 2], c[2]) - np.maximum(Z[:, 0], c[0]), 0, None)
    ih = np.clip(np.minimum(Z[:, 3], c[3]) - np.maximum(Z[:, 1], c[1]), 0, None)
    inter = iw * ih
    area_c = max(c[2] - c[0], 0) * max(c[3] - c[1], 0)
    return _iou_distance(inter, _box_parts(Z) + area_c - inter)


def iou_matrix_torch(A, B):
    """1 - IoU of every pair of boxes with torch tensor ops (torchvision's box_iou, written out)."""
    torch = _torch()
    a, b = torch.from_numpy(A), torch.from_numpy(B)

    def area(x):
        return (x[:, 2] - x[:, 0]).clamp(min=0) * (x[:, 3] - x[:, 1]).clamp(min=0)

    area_a, area_b = area(a), area(b)
    out = torch.empty((len(A), len(B)), dtype=a.dtype)
    for i0, i1 in _row_chunks(len(A), 8 * len(B) * 8):
        lt = torch.maximum(a[i0:i1, None, :2], b[None, :, :2])
        rb = torch.minimum(a[i0:i1, None, 2:], b[None, :, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        union = area_a[i0:i1, None] + area_b[None, :] - inter
        d = 1.0 - inter / union
        out[i0:i1] = torch.where(union > 0, d, torch.zeros((), dtype=d.dtype))
    return out.numpy()


# --------------------------------------------------------------------------- masks

def mask_matrix_gemm_numpy(A, B):
    """1 - IoU of boolean masks via one float32 GEMM: |a & b| = a . b (exact below 2**24 pixels)."""
    Af = _flat(A).astype(np.float32)
    Bf = _flat(B).astype(np.float32)
    inter = Af @ Bf.T
    union = Af.sum(1)[:, None] + Bf.sum(1)[None, :] - inter
    return _iou_distance(inter, union)


def mask_matrix_gemm_torch(A, B):
    """As :func:`mask_matrix_gemm_numpy` with ``torch.mm``."""
    torch = _torch()
    Af = torch.from_numpy(_flat(A)).to(torch.float32)
    Bf = torch.from_numpy(_flat(B)).to(torch.float32)
    inter = Af @ Bf.T
    union = Af.sum(1)[:, None] + Bf.sum(1)[None, :] - inter
    d = torch.where(union > 0, 1.0 - inter / union, torch.zeros(()))
    return d.numpy()


def mask_row_numpy(Z, c):
    """1 - IoU of every mask of ``Z`` with the mask ``c`` (the authors' row step)."""
    Zf, cf = _flat(Z), c.reshape(-1)
    inter = np.logical_and(Zf, cf).sum(1)
    union = np.logical_or(Zf, cf).sum(1)
    return _iou_distance(inter, union)


# --------------------------------------------------------------------------- L1 / TV

def l1_broadcast_numpy(FA, FB):
    """Cityblock matrix by numpy broadcasting ``|a - b|.sum(-1)`` in row chunks."""
    out = np.empty((len(FA), len(FB)), dtype=_out_dtype(FA, FB))
    for i0, i1 in _row_chunks(len(FA), FB.size * FB.itemsize):
        out[i0:i1] = np.abs(FA[i0:i1, None, :] - FB[None, :, :]).sum(-1)
    return out


def tv_row_numpy(Z, c):
    """TV(z - c) for every sample: per-pair image differences, then finite differences."""
    diff = Z - c[None]
    if diff.ndim == 2:
        diff = diff[:, None, None, :]
    elif diff.ndim == 3:
        diff = diff[:, None]
    dv = np.abs(diff[:, :, 1:, :] - diff[:, :, :-1, :]).sum(axis=(1, 2, 3))
    dh = np.abs(diff[:, :, :, 1:] - diff[:, :, :, :-1]).sum(axis=(1, 2, 3))
    return dv + dh


# --------------------------------------------------------------------------- squared features

def sq_gemm_numpy(A, B):
    """Squared euclidean via ``|a|^2 + |b|^2 - 2 a.b`` (one BLAS GEMM), clipped at 0."""
    A, B = _flat(A), _flat(B)
    D = np.einsum("ij,ij->i", A, A)[:, None] + np.einsum("ij,ij->i", B, B)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(D, 0, out=D)


def sq_broadcast_numpy(A, B):
    """Squared euclidean by numpy broadcasting ``((a - b)**2).sum(-1)`` in row chunks."""
    A, B = _flat(A), _flat(B)
    out = np.empty((len(A), len(B)), dtype=_out_dtype(A, B))
    for i0, i1 in _row_chunks(len(A), B.size * B.itemsize):
        out[i0:i1] = np.square(A[i0:i1, None, :] - B[None, :, :]).sum(-1)
    return out


def sq_gemm_torch(A, B):
    """As :func:`sq_gemm_numpy` with ``torch.mm`` (float32 stays float32)."""
    torch = _torch()
    a, b = torch.from_numpy(_flat(A)), torch.from_numpy(_flat(B))
    D = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return D.clamp_(min=0).numpy()


def torch_gemm_kthvalue(Z):
    """Center from the torch GEMM matrix and ``torch.kthvalue`` (the lower median, a selection)."""
    torch = _torch()
    D = torch.from_numpy(sq_gemm_torch(Z, Z))
    meds = D.kthvalue((len(Z) + 1) // 2, dim=1).values.numpy()
    i = int(np.argmin(meds))
    return i, float(meds[i])


def previous_float64(op):
    """cs_fast's float64 sq path before the mixed-precision one (float64 GEMM + guard), for comparison.

    ``pairwise``: float64 GEMM on centred rows with the cancellation guard;
    ``to_center``: the generic pair kernel; ``min_median``: full row tiles of
    the float64 GEMM and cs_fast's tile selection.
    """
    from cs_fast.kernels.cpu import distances

    def featurize(X):
        return np.ascontiguousarray(_flat(X))

    if op == "pairwise":
        def run(XA, XB):
            A, B = featurize(XA), featurize(XB)
            shift = A.astype(np.float64).mean(axis=0)
            G = distances.sq_pairwise(distances.centre(A, shift), distances.centre(B, shift), False)
            return G.astype(_out_dtype(A, B), copy=False)
        return run
    if op == "to_center":
        def run(Z, c):
            F = featurize(Z)
            out = np.empty((len(F), 1))
            distances.generic_drivers("sq")[0](F, featurize(c[None]), 0, out)
            return out[:, 0]
        return run

    def run(Z):
        F = featurize(Z)
        n = len(F)
        k = (n + 1) // 2
        F64, norms = distances.centre(F)
        tile = max(1, min(n, 1024, (256 << 20) // (8 * n)))
        med = np.empty(tile)
        best, best_index = np.inf, -1
        for i0 in range(0, n, tile):
            i1 = min(n, i0 + tile)
            D = distances.sq_pairwise((F64[i0:i1], norms[i0:i1]), (F64, norms), False)
            distances.tile_select(D, k, best, med)
            r = int(np.argmin(med[: i1 - i0]))
            if med[r] < best:
                best, best_index = float(med[r]), i0 + r
        return best_index, best
    return run


def sq_row_numpy(Z, c):
    """Squared euclidean of every sample to ``c`` (the authors' row step)."""
    diff = _flat(Z) - c.reshape(1, -1)
    return np.einsum("ij,ij->i", diff, diff)


# --------------------------------------------------------------------------- library front doors

def scipy_cdist(metric, featurize=_flat):
    """``scipy.spatial.distance.cdist`` with ``metric`` on featurized inputs."""
    from scipy.spatial.distance import cdist

    return lambda XA, XB: cdist(featurize(XA), featurize(XB), metric)


def torch_cdist(p, featurize=_flat, square=False):
    """``torch.cdist`` with ``p``, threads = cores (``square``: return squared distances)."""

    def run(XA, XB):
        torch = _torch()
        D = torch.cdist(torch.from_numpy(featurize(XA)), torch.from_numpy(featurize(XB)), p=p)
        return (D.square_() if square else D).numpy()

    return run


def sklearn_pairwise(metric, featurize=_flat, square=False):
    """``sklearn.metrics.pairwise_distances(n_jobs=threads)`` (``square``: squared result)."""

    def run(XA, XB):
        from sklearn.metrics import pairwise_distances

        D = pairwise_distances(featurize(XA), featurize(XB), metric=metric, n_jobs=_cores())
        return np.square(D, out=D) if square else D

    return run


def _featurized(matrix_fn, featurize):
    return lambda XA, XB: matrix_fn(featurize(XA), featurize(XB))


def _have(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- registry

def _families():
    """Per metric: matrix peers, the numpy matrix for min_median, the torch matrix, the row function."""
    fam = {
        "jaccard": dict(
            matrix=[("numpy IoU", iou_matrix_numpy), ("torch IoU", iou_matrix_torch)],
            full=iou_matrix_numpy, torch_full=iou_matrix_torch, row=iou_row_numpy,
        ),
        "jaccard_mask": dict(
            matrix=[
                ("scipy cdist", scipy_cdist("jaccard")),
                ("sklearn n_jobs=threads", sklearn_pairwise("jaccard")),
                ("numpy GEMM", mask_matrix_gemm_numpy),
                ("torch GEMM", mask_matrix_gemm_torch),
            ],
            full=mask_matrix_gemm_numpy, torch_full=mask_matrix_gemm_torch, row=mask_row_numpy,
        ),
        "tv": dict(
            matrix=[
                ("scipy cdist", scipy_cdist("cityblock", tv_features)),
                ("torch.cdist p=1", torch_cdist(1, tv_features)),
                ("sklearn n_jobs=threads", sklearn_pairwise("manhattan", tv_features)),
                ("numpy broadcast", _featurized(l1_broadcast_numpy, tv_features)),
            ],
            full=scipy_cdist("cityblock", tv_features), torch_full=torch_cdist(1, tv_features),
            row=tv_row_numpy,
        ),
        "sqfeat": dict(
            matrix=[
                ("scipy cdist", scipy_cdist("sqeuclidean")),
                ("torch.cdist p=2", torch_cdist(2, square=True)),
                ("sklearn n_jobs=threads", sklearn_pairwise("euclidean", square=True)),
                ("numpy GEMM", sq_gemm_numpy),
                ("numpy broadcast", sq_broadcast_numpy),
            ],
            full=sq_gemm_numpy, torch_full=torch_cdist(2, square=True), row=sq_row_numpy,
        ),
        "l1": dict(
            matrix=[
                ("scipy cdist", scipy_cdist("cityblock")),
                ("torch.cdist p=1", torch_cdist(1)),
                ("sklearn n_jobs=threads", sklearn_pairwise("manhattan")),
                ("numpy broadcast", _featurized(l1_broadcast_numpy, _flat)),
            ],
            full=scipy_cdist("cityblock"), torch_full=torch_cdist(1),
            row=lambda Z, c: np.abs(_flat(Z) - c.reshape(1, -1)).sum(1),
        ),
        "l2": dict(
            matrix=[
                ("scipy cdist", scipy_cdist("euclidean")),
                ("torch.cdist p=2", torch_cdist(2)),
                ("sklearn n_jobs=threads", sklearn_pairwise("euclidean")),
            ],
            full=scipy_cdist("euclidean"), torch_full=torch_cdist(2),
            row=lambda Z, c: np.sqrt(sq_row_numpy(Z, c)),
        ),
    }
    if not _have("sklearn"):
        for f in fam.values():
            f["matrix"] = [m for m in f["matrix"] if not m[0].startswith("sklearn")]
    return fam


def metrics_with_peers():
    """Metric names that have peers."""
    return sorted(_families())


def authors_min_median(row):
    """The authors' center: loop over rows, vectorized row distances, ``np.median``, ``argmin``."""

    def run(Z):
        meds = np.empty(len(Z))
        for i in range(len(Z)):
            meds[i] = np.median(row(Z, Z[i]))
        i = int(np.argmin(meds))
        return i, float(meds[i])

    return run


def full_then(matrix_fn, median):
    """Center from a full matrix and a row median: ``'np.median'``, ``'np.partition'`` or ``'torch.median'``."""

    def run(Z):
        D = matrix_fn(Z, Z)
        if median == "np.median":
            meds = np.median(D, axis=1)
        elif median == "np.partition":
            meds = lower_median_rows(D)
        else:
            torch = _torch()
            meds = torch.from_numpy(np.asarray(D)).median(dim=1).values.numpy()
        i = int(np.argmin(meds))
        return i, float(meds[i])

    return run


def peers(metric, op):
    """The peers of ``op`` (``'pairwise'``, ``'to_center'`` or ``'min_median'``) for ``metric``.

    Returns a list of :class:`Impl`; empty for a metric without peers.
    """
    fam = _families().get(metric)
    if fam is None:
        return []
    extra = []
    if metric == "sqfeat":  # the float32 torch GEMM, and cs_fast's previous float64 path
        extra = {"pairwise": [Impl("torch GEMM", sq_gemm_torch, 2)],
                 "min_median": [Impl("torch GEMM+kthvalue", torch_gemm_kthvalue, 2)],
                 "to_center": []}.get(op, [])
        extra.append(Impl("cs_fast float64 (previous)", previous_float64(op), 1 if op == "to_center" else 2,
                          "float64 GEMM + cancellation guard, the path before the mixed-precision one"))
    if op == "pairwise":
        return [Impl(name, fn, 2) for name, fn in fam["matrix"]] + extra
    if op == "to_center":
        out = [Impl("numpy row (authors)", fam["row"], 1)]
        for name, fn in fam["matrix"]:
            if name.startswith(("scipy", "torch")):
                out.append(Impl(name, lambda Z, c, fn=fn: fn(Z, c[None])[:, 0], 1))
        return out + extra
    if op == "min_median":
        even = "np.median averages the two middle values for even n"
        return [
            Impl("authors loop", authors_min_median(fam["row"]), 1, even),
            Impl("full+np.median", full_then(fam["full"], "np.median"), 2, even),
            Impl("full+np.partition", full_then(fam["full"], "np.partition"), 2),
            Impl("torch full+median", full_then(fam["torch_full"], "torch.median"), 2),
        ] + extra
    raise ValueError(f"op: received {op!r}; expected 'pairwise', 'to_center' or 'min_median'")
