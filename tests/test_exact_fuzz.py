"""Seeded differential fuzz: the center and its radius against an independent reference, every metric and dtype.

For each case (offsets from 0 to 1e8 with differences down to 1e-6 of them,
weights over eight decades, float32 and float64, duplicates, touching and
empty boxes, nearly parallel vectors, n across tile boundaries):

* ``min_median`` gives one answer for ``method='auto'``, ``'brute'`` and
  ``'pruned'``; its radius is the lower median of its own ``to_center`` row,
  bit for bit;
* that answer is the brute force over the canonical float64 distances
  (``to_center`` of every row: the smallest lower median, ties to the
  smallest index), and those distances are symmetric bit for bit;
* float64 ``cdist``, ``pdist`` and ``paired`` return the same bits; float32
  ``cdist`` is within the fast path's stated bound;
* every canonical distance of the center's row (and of the rows near the
  minimum) is within the metric's stated error bound
  (``Metric.error_bound``) of the exact distance (:mod:`exact_reference`),
  and the chosen center's exact median is the smallest up to twice that bound.

A fast subset always runs; ``-m slow`` runs the larger one (bigger n, more seeds).
"""

import numba
import numpy as np
import pytest

import cs_fast
from cs_fast.bindings.distance import to_center64
from cs_fast.metrics import get_metric
from exact_reference import reference

METHODS = ("auto", "brute", "pruned")


# --------------------------------------------------------------------------- generators


def _regime(rng, dtype, seed):
    """``(offset, relative noise)``: seeds 1, 4, ... the largest offset with differences of 1e-6 of it,
    seeds 2, 5, ... a middle offset with 1e-3, the others drawn (every regime in the fast subset too)."""
    offsets = [0.0, 1.0, 1e4, 1e8] if dtype == np.float64 else [0.0, 1.0, 1e2, 1e4]
    if seed % 3 == 1:
        return offsets[-1], 1e-6
    if seed % 3 == 2:
        return offsets[2], 1e-3
    return float(rng.choice(offsets)), 10.0 ** rng.uniform(-6, -1)


def _duplicates(rng, X):
    n = len(X)
    k = max(1, n // 20)
    X[rng.choice(n, k, replace=False)] = X[rng.choice(n, k, replace=False)]
    return X


def make_case(metric, dtype, n, seed):
    """``(X, params, label)`` of one fuzz case: samples around a base, in the regime the seed draws."""
    rng = np.random.default_rng([seed, n, len(metric), np.dtype(dtype).itemsize])
    params = {}
    offset, rel = _regime(rng, dtype, seed)
    scale = max(offset, 1.0) * rel  # the samples' differences, down to 1e-6 of the offset
    label = f"offset={offset:g} noise={scale:.1e}"
    if metric == "jaccard":
        size = 10.0 ** rng.uniform(-2, 3)
        base = np.array([0.0, 0.0, size, 0.6 * size]) + offset
        jitter = max(size * rel, 4 * float(np.spacing(np.dtype(dtype).type(offset + size))))
        X = base + jitter * rng.standard_normal((n, 4))
        kind = rng.integers(3)
        if kind == 1:  # touching: a box sharing an edge with the base, and empty ones
            X[: n // 10, 0] = X[: n // 10, 2] = base[2]
            X[n // 10: n // 5] = base + np.array([size, 0.0, size, 0.0])  # zero width: empty
        elif kind == 2:  # disjoint neighbours sharing an edge
            X[: n // 8] = base + np.array([size, 0.0, size * 2, 0.0])
        label += f" size={size:.2g} jitter={jitter:.1e} kind={kind}"
    elif metric == "jaccard_mask":
        shape = (9, 10) if rng.random() < 0.5 else (70,)
        base = rng.random(shape) < 0.5
        flips = rng.random((n,) + shape) < 10.0 ** rng.uniform(-2.5, -0.5)
        X = base ^ flips
        X[0] = False
        return _duplicates(rng, X), params, label + f" shape={shape}"
    elif metric == "tv":
        shape = [(3, 5, 6), (1, 7, 8), (6, 7), (11,), (2, 4, 5)][rng.integers(5)]
        if seed % 3 == 1:
            shape = (3, 5, 6)  # the extreme regime with channels, channel l1
        elif seed % 3 == 2:
            shape, params["channel_norm"] = (2, 4, 5), 2
        elif len(shape) == 3 and shape[0] > 1 and rng.random() < 0.4:
            params["channel_norm"] = 2
        base = offset + max(offset, 1.0) * 0.3 * rng.standard_normal(shape)
        X = base + scale * rng.standard_normal((n,) + shape)
        label += f" shape={shape} norm={params.get('channel_norm', 1)}"
    elif metric == "sqfeat":
        d = int(rng.integers(2, 40))
        if seed % 3 != 0 or rng.random() < 0.5:
            params["weights"] = 10.0 ** rng.uniform(-4, 4, d)  # eight decades
        base = offset + max(offset, 1.0) * rng.standard_normal(d)
        X = base + scale * rng.standard_normal((n, d))
        label += f" d={d} weighted={'weights' in params}"
    elif metric == "angular":
        d = int(rng.integers(2, 33))
        v = rng.standard_normal(d) * 10.0 ** rng.uniform(-3, 3)
        smallest = -13 if dtype == np.float64 else -6
        tilt = 10.0 ** (smallest if seed % 3 == 1 else rng.uniform(smallest, -1))
        scaled = rng.uniform(0.5, 2.0, (n, 1)) ** (rng.random() < 0.3)  # rows of unequal norm, some draws
        X = v * scaled + tilt * np.linalg.norm(v) * rng.standard_normal((n, d))
        if rng.random() < 0.2:
            X[: n // 3] *= -1.0  # antiparallel samples
        label = f"d={d} tilt={tilt:.1e}"
    else:  # l1, l2
        d = int(rng.integers(2, 40))
        base = offset + max(offset, 1.0) * rng.standard_normal(d)
        X = base + scale * rng.standard_normal((n, d))
        label += f" d={d}"
    return _duplicates(rng, X.astype(dtype)), params, label


# --------------------------------------------------------------------------- checks


def lower_median(row):
    k = (len(row) + 1) // 2
    return float(np.partition(row, k - 1)[k - 1])


def canonical_matrix(X, metric, params):
    """The canonical float64 distances of every pair, row by row through ``to_center``."""
    return np.stack([to_center64(X, X[i], metric, params)[0] for i in range(len(X))])


def check_case(metric, dtype, n, seed):
    X, params, label = make_case(metric, dtype, n, seed)
    where = f"{metric} {np.dtype(dtype).name} n={n} seed={seed} {label}"
    m = get_metric(metric)
    got = {method: cs_fast.min_median(X, metric, method=method, **params) for method in METHODS}
    assert len(set(got.values())) == 1, f"{where}: methods disagree {got}"
    index, radius = got["auto"]
    own = to_center64(X, X[index], metric, params)[0]
    assert radius == lower_median(own), f"{where}: radius {radius!r} is not its to_center row's lower median"

    D = canonical_matrix(X, metric, params)
    assert np.array_equal(D, D.T), f"{where}: canonical distances are not symmetric bit for bit"
    assert np.array_equal(D[index], own)
    k = (n + 1) // 2
    meds = np.partition(D, k - 1, axis=1)[:, k - 1]
    best = int(np.flatnonzero(meds == meds.min())[0])
    assert (index, radius) == (best, float(meds[best])), f"{where}: not the canonical brute force {(best, meds[best])}"

    out = np.float32 if dtype == np.float32 else np.float64  # the front doors' output dtype
    C = cs_fast.cdist(X, X, metric, **params)
    iu = np.triu_indices(n, 1)
    P = cs_fast.pdist(X, metric, **params)
    perm = np.random.default_rng(seed).permutation(n)
    assert np.array_equal(cs_fast.paired(X, X[perm], metric, **params), D[np.arange(n), perm].astype(out)), \
        f"{where}: paired differs from to_center"
    if out == np.float64 or not _fast_float32(m, X, params):
        assert np.array_equal(C, D.astype(out)), f"{where}: cdist differs from to_center"
        assert np.array_equal(P, D[iu].astype(out)), f"{where}: pdist differs from to_center"
    else:
        lo, hi = _float32_interval(m, X, params, np.asarray(C, dtype=np.float64))
        assert ((lo <= D) & (D <= hi)).all(), f"{where}: float32 cdist outside its stated bound"
        assert np.array_equal(P, C[iu]), f"{where}: float32 pdist differs from cdist"

    if m.estimate is not None:  # the fast path's stated bound, which the exact search relies on
        est = m.estimate(X, params)
        e = _estimates(est)
        b = est.bound
        E = b.E[:, None] + b.E[None, :]
        assert ((1.0 - b.rho) * e - E <= D).all() and (D <= (1.0 + b.rho) * (e + E)).all(), \
            f"{where}: an estimate is outside its stated bound"

    # The stated bound, on the center's row and the rows whose medians are nearest the minimum.
    near = np.unique(np.concatenate([[index], np.argsort(meds, kind="stable")[:3]]))
    exact = reference(metric, X[near], X, params)
    bound = m.error_bound(X[near], X, params, exact.astype(np.float64))
    err = np.abs(D[near].astype(np.longdouble) - exact)
    worst = np.unravel_index(int(np.argmax(err - bound)), err.shape)
    assert (err <= bound).all(), (f"{where}: |D - exact| = {float(err[worst]):.3g} > bound {float(bound[worst]):.3g} "
                                  f"at {near[worst[0]], worst[1]}")
    exact_meds = np.array([lower_median(r) for r in exact.astype(np.float64)])
    slack = 2.0 * float(bound.max()) + 4 * np.spacing(float(exact_meds.max()))
    assert exact_meds[list(near).index(index)] <= exact_meds.min() + slack, f"{where}: not the exact center"
    return index, radius


def _estimates(est):
    """The estimate pass's own distances of every pair (the blocked l1 rows, or the grouped l2 pair function)."""
    from cs_fast.kernels.cpu import distances

    n = est.data.shape[0]
    if est.reduction.name == "l1":
        return distances.l1_rows(est.data, np.arange(n), np.empty((n, n)))
    return distances.pairwise(est.reduction, est.data, est.data, est.arg, np.float64)


def _fast_float32(m, X, params):
    """Does float32 cdist of this metric take a fast path (an estimate within a stated bound)?"""
    if m.name in ("l1", "sqfeat", "l2"):
        return True
    return m.name == "tv" and m.estimate(X[:1], params).reduction.name == "l1"


def _float32_interval(m, X, params, C):
    """Where the canonical distance must lie given the float32 fast path's output ``C`` (its stated bound)."""
    from cs_fast.kernels import mixed_precision as mp
    from cs_fast.metrics import tv_centre

    c = np.abs(C) * (1.0 + 2.0 ** -23)  # the float32 rounding of the result, then the estimate's bound
    if m.name in ("sqfeat", "l2"):
        rel = mp.CDIST_RTOL if m.name == "sqfeat" else mp.CDIST_RTOL / 2 + 2.0 ** -24
        return np.abs(C) * (1.0 - 2.0 ** -23) / (1.0 + rel) * (1 - 1e-9), c / (1.0 - rel) * (1 + 1e-9)
    est = m.estimate(X, params, tv_centre(X) if m.name == "tv" else None)
    b = est.bound
    E = b.E[:, None] + b.E[None, :]
    lo = (1.0 - b.rho) * np.abs(C) * (1.0 - 2.0 ** -23) - E
    return lo * (1 - 1e-9), (1.0 + b.rho) * (c + E) * (1 + 1e-9)


# --------------------------------------------------------------------------- the cases

METRICS = ["jaccard", "jaccard_mask", "tv", "sqfeat", "l2", "l1", "angular"]
FAST = [(metric, dtype, n, seed) for metric in METRICS for dtype in (np.float64, np.float32)
        for n, seed in ((17, 1), (64, 2), (131, 3))
        if not (metric == "jaccard_mask" and dtype == np.float32)]
LARGE = [(metric, dtype, n, seed) for metric in METRICS for dtype in (np.float64, np.float32)
         for n, seed in ((257, 11), (600, 12), (1031, 13), (2101, 14))
         if not (metric == "jaccard_mask" and dtype == np.float32)]


def _id(case):
    metric, dtype, n, seed = case
    return f"{metric}-{np.dtype(dtype).name}-n{n}-s{seed}"


@pytest.mark.parametrize("case", FAST, ids=_id)
def test_fast_fuzz(case):
    check_case(*case)


@pytest.mark.slow
@pytest.mark.parametrize("case", LARGE, ids=_id)
def test_large_fuzz(case):
    check_case(*case)


# --------------------------------------------------------------------------- the refinement on its own


@pytest.mark.parametrize("method", ["brute", "pruned"])
@pytest.mark.parametrize("seed", range(6))
def test_refinement_recovers_the_canonical_center_from_perturbed_estimates(method, seed):
    """Estimates that lie as much as their bound allows still give the canonical brute force exactly.

    The estimate pass reads rows perturbed by up to ``delta`` (a tenth of the
    distances' spread, so the estimated winner is often not the canonical
    one), declared through ``E_i = |delta_i|_1``: the l1 triangle inequality
    bounds the estimate's error by ``E_i + E_j``.
    """
    from cs_fast.kernels.cpu import exact
    from cs_fast.metrics import gamma

    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(40, 400)), int(rng.integers(2, 30))
    X = rng.standard_normal(d) + 0.3 * rng.standard_normal((n, d))
    X[: n // 10] = X[n // 10: 2 * (n // 10)]  # duplicates: exact ties
    delta = 0.03 * rng.standard_normal((n, d)) * rng.random((n, 1))
    E = np.abs(delta).sum(axis=1) * (1.0 + gamma(d + 2))
    est = exact.Estimate(np.ascontiguousarray(X + delta), 0, "l1", exact.SumBound(2 * gamma(d + 520), E))
    D = canonical_matrix(X, "l1", {})
    k = (n + 1) // 2
    meds = np.partition(D, k - 1, axis=1)[:, k - 1]
    want = (int(np.flatnonzero(meds == meds.min())[0]), float(meds.min()))
    stats = {}
    assert exact.min_median("l1", X, 0, est, 16, method, stats=stats) == want
    assert stats["refined"] >= 1


@pytest.mark.parametrize("seed", range(8))
def test_refinement_holds_against_estimates_at_the_edges_of_their_bound(seed):
    """Estimated medians chosen as adversarially as the bound allows: the canonical winner's as high as it may
    be, every other row's as low; ties on the lower end and duplicates. The refinement still returns the
    canonical brute force, which a threshold or a tie rule one term too tight would miss."""
    from cs_fast.kernels.cpu import exact

    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(20, 200)), int(rng.integers(2, 10))
    X = rng.standard_normal((n, d))
    X[rng.choice(n, n // 5)] = X[rng.choice(n, n // 5)]  # duplicates: tied canonical medians
    D = canonical_matrix(X, "l1", {})
    k = (n + 1) // 2
    M = np.partition(D, k - 1, axis=1)[:, k - 1]
    want = int(np.flatnonzero(M == M.min())[0])
    rho = 10.0 ** rng.uniform(-6, -2)
    E = 0.1 * M.min() * rng.random(n) * (rng.random() < 0.7)
    bound = exact.SumBound(rho, E)
    Em = bound.Emax
    # The largest estimate a row's bound allows (lo(seen) = M) and the smallest (hi(seen) = M), a hair inside.
    high = (M + E + Em) / (1.0 - rho) * (1 - 1e-12)
    low = np.maximum(M / (1.0 + rho) - E - Em, 0.0) * (1 + 1e-12)
    seen = low.copy()
    seen[M == M.min()] = high[M == M.min()]
    assert exact.refine("l1", X, 0, seen, bound) == (want, float(M.min()))


def test_refinement_takes_a_smaller_index_whose_lower_end_ties_the_best():
    """Row 1 duplicates row 3 (same canonical median); row 3's lower end comes first and sets the best, row 1's
    lower end equals that best exactly: it must still be refined, and win the tie by its index."""
    from cs_fast.kernels.cpu import exact

    class Exact:  # lower ends equal to the estimates, every row a candidate
        E = np.zeros(6)

        @staticmethod
        def threshold(best):
            return np.inf

        @staticmethod
        def lower(m, rows):
            return m

    X = np.array([[0.0], [1.0], [5.0], [1.0], [2.0], [9.0]])
    M = 1.0  # rows 1 and 3: distances 1, 0, 4, 0, 1, 8 -> lower median (k = 3) is 1
    seen = np.array([5.0, M, 5.0, M - 0.5, 5.0, 5.0])
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # one candidate a batch: row 3 is refined before row 1 is considered
    try:
        assert exact.refine("l1", X, 0, seen, Exact()) == (1, M)
    finally:
        numba.set_num_threads(threads)


def test_a_fastmath_caller_compiled_first_does_not_change_the_canonical_bits(tmp_path):
    """numba compiles a function whose options leave fastmath unset with its first jitted caller's fastmath,
    and caches it so: the canonical kernels write fastmath=False out. In a fresh cache, the box count (a
    fastmath kernel) compiles box_row first; box_row must still round as the strict box_pair does."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, cs_fast\n"
        "from cs_fast.kernels.cpu import distances\n"
        "rng = np.random.default_rng(5)\n"
        "base = np.array([0.3, 0.0, 1.1, 0.2])\n"
        "X = base + 0.05 * rng.standard_normal((400, 4))\n"
        "cs_fast.min_median(X, 'jaccard', method='brute')  # box_fused_tile (fastmath) compiles box_row\n"
        "F = np.ascontiguousarray(X)\n"
        "FT = np.ascontiguousarray(F.T)\n"
        "bad = 0\n"
        "for i in range(0, 400, 7):\n"
        "    row = np.empty(400)\n"
        "    distances.box_row(FT, i, row)\n"
        "    ref = np.array([distances.K.box_pair(F, i, F, j, 0) for j in range(400)])\n"
        "    bad += int((row != ref).sum())\n"
        "print('mismatches', bad)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "mismatches 0"
