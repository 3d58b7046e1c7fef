"""float64 brute force at sizes where the kernels change behaviour (row tiles, counting blocks, doubling tiles).

The metrics' own references (``Metric.reference``) go pair by pair in Python:
the ground truth, but 25 M pairs at n = 5000 would take minutes per metric.
Here each distance is the same definition vectorized over a block of rows
(float64 broadcasting, no GEMM, no featurization code of cs_fast); the tests
check these rows against ``Metric.reference`` on a few rows of every case, so
the ground truth stays the pair-by-pair definition.

Data look like center-smoothing samples (a base output plus noise), so medians
are informative and the pruning of ``min_median`` has work to do, with exact
duplicates (ties) and, for sets, empty ones.
"""

import functools

import numpy as np

# Sizes around and across the kernels' boundaries: row tiles of 256, counting blocks of 512 and 2048,
# doubling tiles (1, 2, 4, ... up to the tile). Odd and even n.
SIZES = (600, 2101, 5000)

# (metric, params, per-sample shape): every metric, and both channel norms of tv.
LARGE_CASES = [
    ("jaccard", {}, (4,)),
    ("jaccard_mask", {}, (9, 10)),  # 90 bits: two packed words
    ("tv", {}, (1, 5, 6)),
    ("tv", {"channel_norm": 2}, (2, 4, 5)),
    ("sqfeat", {"weights": "random"}, (12,)),
    ("l2", {}, (12,)),
    ("l1", {}, (12,)),
    ("angular", {}, (12,)),
]


def large_case_id(case):
    metric, params, shape = case
    return metric + ("[" + ",".join(params) + "]" if params else "")


def _ties(rng, X, share=0.02):
    """Copy a few rows over others: exact duplicates, so medians tie exactly."""
    n = len(X)
    k = max(1, int(share * n))
    X[rng.choice(n, k, replace=False)] = X[rng.choice(n, k, replace=False)]
    return X


def samples(metric, params, shape, n, seed=0):
    """``n`` samples around one base output, with ties; the resolved params (weights drawn here)."""
    rng = np.random.default_rng([seed, n, len(metric), len(params)])
    params = dict(params)
    if params.get("weights") == "random":
        params["weights"] = rng.uniform(0.2, 2.0, size=shape)
    if metric == "jaccard":
        X = np.array([3.0, 4.0, 8.0, 12.0]) + rng.normal(0.0, 0.7, size=(n, 4))
        empty = rng.random(n) < 0.05
        X[empty, 2] = X[empty, 0] - 1.0  # a detector's "no box"
    elif metric == "jaccard_mask":
        h, w = shape
        yy, xx = np.mgrid[0:h, 0:w]
        c = np.array([h / 2, w / 2]) + rng.normal(0.0, 0.8, size=(n, 2))
        dist = np.hypot(yy[None] - c[:, 0, None, None], xx[None] - c[:, 1, None, None])
        X = rng.random((n, h, w)) < 1.0 / (1.0 + np.exp(dist - 3.0))
        X[rng.random(n) < 0.03] = False  # empty masks
    else:
        base = np.random.default_rng(7).standard_normal(shape) + (1.0 if metric == "angular" else 0.0)
        X = base + 0.3 * rng.standard_normal((n,) + tuple(shape))
    return _ties(rng, X), params


def _jaccard_rows(A, X):
    a = A[:, None, :]
    b = X[None, :, :]
    a_empty = (a[..., 2] <= a[..., 0]) | (a[..., 3] <= a[..., 1])
    b_empty = (b[..., 2] <= b[..., 0]) | (b[..., 3] <= b[..., 1])
    iw = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
    ih = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]))
    inter = iw * ih
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 1.0 - inter / union
    return np.where(a_empty | b_empty, np.where(a_empty & b_empty, 0.0, 1.0), d)


def _mask_rows(A, X):
    a = A.reshape(len(A), 1, -1)
    b = X.reshape(1, len(X), -1)
    inter = np.logical_and(a, b).sum(axis=2).astype(np.float64)
    union = np.logical_or(a, b).sum(axis=2).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union == 0, 0.0, 1.0 - inter / union)


def _tv_differences(X):
    """``(n, C, P)`` float64: every vertical, then every horizontal neighbour difference, per channel."""
    X = X.astype(np.float64)
    X = X.reshape((len(X),) + (1,) * (4 - X.ndim) + X.shape[1:]) if X.ndim < 4 else X
    dv = (X[:, :, 1:, :] - X[:, :, :-1, :]).reshape(len(X), X.shape[1], -1)
    dh = (X[:, :, :, 1:] - X[:, :, :, :-1]).reshape(len(X), X.shape[1], -1)
    return np.concatenate([dv, dh], axis=2)


def _tv_rows(A, X, channel_norm):
    # The differences of a - b are the differences of a minus those of b (they are linear).
    diff = _tv_differences(A)[:, None] - _tv_differences(X)[None]  # (a, n, C, P)
    if channel_norm == 1:
        return np.abs(diff).sum(axis=(2, 3))
    return np.sqrt((diff ** 2).sum(axis=2)).sum(axis=2)


def reference_rows(metric, params, A, X):
    """float64 distances from each row of ``A`` to every row of ``X``, by broadcasting the definition."""
    if metric == "jaccard":
        return _jaccard_rows(A.astype(np.float64), X.astype(np.float64))
    if metric == "jaccard_mask":
        return _mask_rows(A, X)
    if metric == "tv":
        return _tv_rows(A, X, params.get("channel_norm", 1))
    a = A.reshape(len(A), 1, -1).astype(np.float64)
    b = X.reshape(1, len(X), -1).astype(np.float64)
    if metric == "sqfeat":
        w = params.get("weights")
        w = 1.0 if w is None else np.asarray(w, np.float64).reshape(1, 1, -1)
        return (w * (a - b) ** 2).sum(axis=2)
    if metric == "l2":
        return np.sqrt(((a - b) ** 2).sum(axis=2))
    if metric == "l1":
        return np.abs(a - b).sum(axis=2)
    if metric == "angular":
        # As Metric.reference: the arcsin of the shorter chord between the unit vectors,
        # accurate at every angle (arccos of the cosine is off by ~1e-8 on duplicates).
        u = a / np.linalg.norm(a, axis=2, keepdims=True)
        v = b / np.linalg.norm(b, axis=2, keepdims=True)
        minus = np.linalg.norm(u - v, axis=2)
        plus = np.linalg.norm(u + v, axis=2)
        half = np.where(minus <= plus, np.arcsin(np.minimum(1.0, minus / 2.0)),
                        np.pi / 2 - np.arcsin(np.minimum(1.0, plus / 2.0)))
        return 2.0 * half / np.pi
    raise ValueError(f"metric: no large reference for {metric!r}")


def _block_rows(X):
    # About 24 M float64 temporaries per block whatever the sample size.
    per_row = len(X) * max(1, int(np.prod(X.shape[1:])))
    return max(1, min(len(X), 3_000_000 // per_row))


def row_blocks(metric, params, X):
    """``(i0, D)``: the reference distance rows ``X[i0:i0 + len(D)]`` to all of ``X``, block by block."""
    step = _block_rows(X)
    for i0 in range(0, len(X), step):
        yield i0, reference_rows(metric, params, X[i0:i0 + step], X)


@functools.lru_cache(maxsize=None)
def lower_medians(case_index, n):
    """Reference lower medians (the ceil(n/2)-th smallest) of every row of the case's samples at ``n``."""
    metric, params, shape = LARGE_CASES[case_index]
    X, params = samples(metric, params, shape, n)
    k = (n + 1) // 2
    med = np.empty(n)
    for i0, D in row_blocks(metric, params, X):
        med[i0:i0 + len(D)] = np.partition(D, k - 1, axis=1)[:, k - 1]
    return med
