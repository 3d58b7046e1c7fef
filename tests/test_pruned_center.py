"""The pruned exact center (cs_fast.kernels.cpu.prune) against brute force, bit for bit.

``min_median(method='pruned')`` must return the same index and the same radius
(``==``, not approx) as ``method='brute'`` on every metric and dtype, on
random, clustered and tie-heavy data, for tiny and odd/even n, with tiles small
enough to force many of them. The last tests show the checks can fail: a
rounding margin of the wrong sign prunes a row that wins, and the parity and
invariant checks catch it.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cs_fast
from cs_fast.bindings.distance import host_tile
from cs_fast.kernels.cpu import bounding, box32, distances, prune
from cs_fast.metrics import check_metric_params, get_metric, reduction_for
from conftest import CASES, case_id, make_samples, resolve_params


def both(X, metric, **kw):
    brute = cs_fast.min_median(X, metric, method="brute", **kw)
    stats = {}
    pruned = cs_fast.min_median(X, metric, method="pruned", stats=stats, **kw)
    return brute, pruned, stats


def both_config(X, metric, tile=None, **tunables):
    """``both`` with the pruned search's tunables changed (:class:`prune.PruneConfig`); the answer must not."""
    F, red = _features(X, metric)
    brute = cs_fast.min_median(X, metric, method="brute", tile=tile)
    stats = {}
    config = dataclasses.replace(prune.DEFAULT_CONFIG, **tunables)
    tile = host_tile(red, len(X), "pruned") if tile is None else tile
    index, radius = prune.min_median(red, F.data, F.arg, tile, root=red.squared_metric, stats=stats, config=config)
    return brute, (index, radius), stats


def assert_same(brute, pruned):
    assert pruned[0] == brute[0]
    assert pruned[1] == brute[1]  # bit for bit, not approx
    assert type(pruned[0]) is int and type(pruned[1]) is float


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n,tile", [(1, None), (2, 1), (3, None), (8, 3), (25, 1), (64, 3), (64, None)])
def test_parity_random(case, dtype, n, tile, rng):
    metric, params, shape = case
    params = resolve_params(params, shape, rng)
    X = make_samples(metric, rng, n, dtype, shape)
    brute, pruned, stats = both(X, metric, tile=tile, **params)
    assert_same(brute, pruned)
    # Distinct pairs, at most n^2; a counted row that turns out a candidate is computed again in
    # full (recomputed): the work is at most 2 n^2.
    assert stats["pairs"] == n * n and 0 < stats["evaluated"] <= n * n
    assert stats["fraction"] == stats["evaluated"] / (n * n) and 0 < stats["fraction"] <= 1
    assert 0 <= stats["recomputed"] and stats["evaluated"] + stats["recomputed"] <= 2 * n * n
    assert stats["rows_full"] + stats["rows_counted"] + stats["rows_skipped"] == n


def clustered(metric, rng, n, dtype, shape):
    """A few tight clusters: many near-equal medians, the hard case for the bounds."""
    if metric == "jaccard":
        base = np.array([[10.0, 10.0, 30.0, 40.0], [12.0, 8.0, 33.0, 37.0], [50.0, 50.0, 60.0, 70.0]])
        X = base[rng.integers(0, 3, n)] + rng.normal(0, 0.5, (n, 4))
        return X.astype(dtype)
    if metric == "jaccard_mask":
        base = rng.random((3,) + shape) < 0.5
        X = base[rng.integers(0, 3, n)].copy()
        flips = rng.random(X.shape) < 0.03
        return X ^ flips
    X = make_samples(metric, rng, 3, dtype, shape)
    X = X[rng.integers(0, 3, n)]
    return (X + 1e-3 * rng.standard_normal(X.shape)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [101])
def test_parity_clustered_many_tiles(case, dtype, n, rng):
    metric, params, shape = case
    params = resolve_params(params, shape, rng)
    X = clustered(metric, rng, n, dtype, shape or make_samples(metric, rng, 1).shape[1:])
    for tile in (2, 7, None):
        brute, pruned, _ = both(X, metric, tile=tile, **params)
        assert_same(brute, pruned)
    # A memory budget of a few rows forces many tiles through the default sizing.
    brute, pruned, _ = both(X, metric, max_memory=3 * 8 * n, **params)
    assert_same(brute, pruned)


def jittered_boxes(rng, n, sigma=6.0):
    return np.array([30.0, 40.0, 80.0, 120.0]) + rng.normal(0.0, sigma, (n, 4))


def scattered_boxes(rng, n):
    """Mostly disjoint boxes: nearly every distance is exactly 1 and the best median is 1."""
    xy = rng.uniform(0, 1000, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(1, 5, (n, 2))], axis=1)


TIES = {
    "duplicates": lambda rng: np.repeat(jittered_boxes(rng, 20), 5, axis=0)[rng.permutation(100)],
    "all_equal": lambda rng: np.tile([[1.0, 2.0, 5.0, 7.0]], (51, 1)),
    "saturated": lambda rng: scattered_boxes(rng, 301),
    "all_empty": lambda rng: np.tile([[5.0, 5.0, 1.0, 1.0]], (40, 1)) + rng.normal(0, 1, (40, 4)) * [0, 0, 0, 0],
    "mostly_empty": lambda rng: np.where(rng.random((61, 1)) < 0.7, [[3.0, 3.0, 3.0, 9.0]],
                                         jittered_boxes(rng, 61)),
    "half_empty": lambda rng: np.where((np.arange(60) % 2 == 0)[:, None], [[0.0, 0.0, -1.0, 4.0]],
                                       jittered_boxes(rng, 60)),
}


@pytest.mark.parametrize("name", sorted(TIES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tile", [1, None])
def test_parity_tie_heavy_boxes(name, dtype, tile, rng):
    X = TIES[name](rng).astype(dtype)
    brute, pruned, _ = both(X, "jaccard", tile=tile)
    assert_same(brute, pruned)
    # The reference too (not only brute force): index exactly, radius to the last bits.
    D = get_metric("jaccard").reference(X, X, {})
    meds = np.sort(D, axis=1)[:, (len(X) + 1) // 2 - 1]
    assert pruned[0] == int(np.argmin(meds))
    assert pruned[1] == pytest.approx(meds.min(), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("metric", ["l2", "l1", "sqfeat", "tv", "angular"])
@pytest.mark.parametrize("n", [2, 3, 9, 40])
def test_identical_samples_pick_index_zero(metric, n, rng):
    shape = (3, 4, 5) if metric == "tv" else (6,)
    x = make_samples(metric, rng, 1, np.float64, shape)
    X = np.repeat(x, n, axis=0)
    brute, pruned, stats = both(X, metric, tile=2)
    assert_same(brute, pruned)
    assert pruned == (0, 0.0)


@pytest.mark.parametrize("n", [2, 3, 30, 31])
def test_binary_masks_identical_and_empty(n, rng):
    same = np.repeat(rng.random((1, 6, 6)) < 0.5, n, axis=0)
    empty = np.zeros((n, 6, 6), dtype=bool)
    mixed = same.copy()
    mixed[::3] = False
    for X in (same, empty, mixed):
        brute, pruned, _ = both(X, "jaccard_mask", tile=3)
        assert_same(brute, pruned)


def test_first_of_tied_rows_wins_in_any_visiting_order():
    # Points 0, 1, 2, 3, 10 (k = 3): rows 1 and 2 tie with median 1.
    X = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    for tile in (1, 2, 5):
        assert cs_fast.min_median(X, "l1", tile=tile) == (1, 1.0)
    # The same points in reverse: now row 2 (value 2) and row 3 (value 1) tie; 2 wins.
    assert cs_fast.min_median(X[::-1].copy(), "l1", tile=1) == (2, 1.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])  # float64 boxes: the float64 kernels
def test_pruning_skips_most_rows_of_jittered_boxes(dtype, rng):
    X = jittered_boxes(rng, 10_000).astype(dtype)
    brute, pruned, stats = both(X, "jaccard")
    assert_same(brute, pruned)
    assert stats["rows_skipped"] > 0.3 * 10_000
    assert stats["fraction"] < 0.6
    assert stats["rows_counted"] > 0  # the core went through the pivot-window counting pass


@pytest.mark.parametrize("ratio", [0.0, 1e9])
def test_every_phase_mix_is_exact(ratio, rng):
    """Bounds to the end (ratio 0), or the counting pass right after the first rows (huge ratio)."""
    for X in (jittered_boxes(rng, 700), scattered_boxes(rng, 500), TIES["duplicates"](rng), TIES["mostly_empty"](rng)):
        for dtype in (np.float64, np.float32):
            brute, pruned, stats = both_config(X.astype(dtype), "jaccard", tile=8, ratio=ratio)
            assert_same(brute, pruned)


def test_scattered_boxes_stop_counting_early(rng):
    """Best median 1 with disjoint pairs: a row stops after about n/2 distances, not n."""
    X = scattered_boxes(rng, 2000)
    brute, pruned, stats = both(X, "jaccard")
    assert_same(brute, pruned)
    assert brute[1] == 1.0
    assert stats["fraction"] < 0.6


def test_center_benchmark_rows(monkeypatch):
    from cs_fast_apps.bench import center

    monkeypatch.setattr(center, "QUICK_SIZES", {"boxes_jittered": (400,), "boxes_scattered": (300,)})
    rows = center.run_center(quick=True, probe_memory=False)
    pruned = [r for r in rows if r["impl"] == "cs_fast pruned"]
    assert len(pruned) == 2 and all(r["same_as_brute"] for r in pruned)
    assert all(0 < r["fraction_evaluated"] <= 2 for r in pruned)
    assert {r["impl"] for r in rows} >= {"cs_fast brute", "cs_fast pruned", "authors loop"}
    assert "evaluated" in center.table(rows)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 40),
    metric=st.sampled_from(["jaccard", "l1", "l2", "sqfeat", "angular"]),
)
def test_parity_property(data, n, metric):
    """Small integer-valued samples: exact ties and duplicates are common."""
    if metric == "jaccard":
        xy = np.array(data.draw(st.lists(st.integers(0, 6), min_size=2 * n, max_size=2 * n)), float).reshape(n, 2)
        wh = np.array(data.draw(st.lists(st.integers(-1, 3), min_size=2 * n, max_size=2 * n)), float).reshape(n, 2)
        X = np.concatenate([xy, xy + wh], axis=1)
    else:
        lo = 1 if metric == "angular" else -3
        X = np.array(data.draw(st.lists(st.integers(lo, 3), min_size=3 * n, max_size=3 * n)), float).reshape(n, 3)
    tile = data.draw(st.integers(1, 8))
    brute, pruned, _ = both(X, metric, tile=tile)
    assert_same(brute, pruned)


# --------------------------------------------------------------------------- the checks can fail


def _features(X, metric, params=None):
    m = get_metric(metric)
    params = check_metric_params(m, params or {})
    F = m.featurize(m.prepare(X, "Z", params), params)
    return F, reduction_for(m, F)


def _true_medians(F, red):
    D = distances.pairwise(red, F.data, F.data, F.arg, np.float64)
    return np.sort(D, axis=1)[:, (len(D) + 1) // 2 - 1]


@pytest.mark.parametrize("metric", ["jaccard", "l1", "l2", "sqfeat"])
def test_every_lower_bound_holds(metric, rng):
    """The invariant itself: no row's bound exceeds its median; no skipped row could win."""
    X = jittered_boxes(rng, 400) if metric == "jaccard" else clustered(metric, rng, 400, np.float64, (5,))
    F, red = _features(X, metric)
    trace = {}
    index, radius = prune.min_median(red, F.data, F.arg, 16, root=red.squared_metric, trace=trace)
    meds = _true_medians(F, red)
    lb = trace["lower_bounds"]
    bound_meds = np.sqrt(meds) if red.squared_metric else meds
    assert np.all(lb <= bound_meds)
    skipped = np.flatnonzero(trace["state"] == bounding.SKIPPED)
    assert skipped.size > 0
    assert np.all((meds[skipped] > radius) | ((meds[skipped] == radius) & (skipped > index)))
    assert (index, radius) == distances.min_median(red, F.data, F.arg, 16)
    # cdist's sq/l2 kernels round their own way: the same center, the radius to the last bits.
    assert index == int(np.argmin(meds)) and radius == pytest.approx(float(meds.min()), rel=1e-12)


def test_a_wrong_margin_is_caught(rng):
    """Bounds inflated past the truth (a negative margin) prune a winner; parity notices."""
    caught = 0
    for seed in range(20):
        r = np.random.default_rng(seed)
        X = jittered_boxes(r, 200)
        F, red = _features(X, "jaccard")
        truth = distances.min_median(red, F.data, F.arg, 16)
        assert prune.min_median(red, F.data, F.arg, 16) == truth
        wrong = prune.min_median(red, F.data, F.arg, 16, margin=(-0.2, 0.0))
        caught += wrong != truth
    assert caught > 0
    # ...and the invariant check flags the too-large bounds directly.
    F, red = _features(jittered_boxes(rng, 200), "jaccard")
    trace = {}
    prune.min_median(red, F.data, F.arg, 16, margin=(-0.2, 0.0), trace=trace)
    assert np.any(trace["lower_bounds"] > _true_medians(F, red))


def test_rounding_margin_is_positive_and_larger_for_float32():
    for red in ("box", "mask", "l1", "sq", "l2", "angular", "grouped_l2"):
        e64, t64 = prune.rounding_margin(red, np.float64)
        e32, _ = prune.rounding_margin(red, np.float32)
        assert e64 > 0 and t64 >= 0 and e32 >= e64


def test_bad_method_and_stats_are_rejected():
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match="method: received 'fast'"):
        cs_fast.min_median(X, "l2", method="fast")
    with pytest.raises(TypeError, match="stats: received list"):
        cs_fast.min_median(X, "l2", stats=[])


def test_center_smoothing_uses_the_pruned_search(monkeypatch):
    calls = []
    original = prune.min_median

    def spy(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(prune, "min_median", spy)

    def box_model(x):
        return np.concatenate([x, x + 5.0], axis=1)

    # min_median's default (method='auto') takes the pruned search for l1 at any n (for boxes only
    # from 10 000 samples on, where it is measured to pay).
    sm = cs_fast.CenterSmoothing(box_model, "l1", sigma=0.25, seed=1)
    sm.smooth(np.array([1.0, 2.0]), n=300)
    assert [str(c) for c in calls] == ["l1"]


@pytest.mark.parametrize("metric", ["sqfeat", "l2"])
def test_sq_rows_round_alike_whatever_the_tiles(metric):
    """sq/l2: the pruned rows and the mixed-precision brute force's refinement share distances.sq_rows' bits."""
    for seed in range(8):
        r = np.random.default_rng(seed)
        X = clustered(metric, r, 150, np.float32 if seed % 2 else np.float64, (20,))
        for tile in (3, 50, None):
            brute, pruned, _ = both(X, metric, tile=tile)
            assert_same(brute, pruned)


def test_auto_method_picks_by_reduction_and_size_and_answers_alike(rng):
    from cs_fast.kernels import reductions

    def _auto_method(name, n):
        return reductions.get(name).auto_method(n)

    assert _auto_method("box", 5_000) == "brute" and _auto_method("box", 10_000) == "pruned"
    assert _auto_method("sq", 10**6) == "brute" and _auto_method("l2", 10) == "brute"
    assert _auto_method("l1", 10) == "pruned" and _auto_method("mask", 10) == "pruned"
    X = jittered_boxes(rng, 500)
    stats = {}
    assert cs_fast.min_median(X, "jaccard", stats=stats) == cs_fast.min_median(X, "jaccard", method="pruned")
    assert stats["method"] == "brute"  # auto took brute force at this size, and says so
    T = rng.normal(size=(301, 3, 4, 5))
    stats = {}
    assert cs_fast.min_median(T, "tv", stats=stats) == cs_fast.min_median(T, "tv", method="brute")
    assert stats["method"] == "pruned" and stats["pairs"] == 301 ** 2  # auto took the pruned search for tv
    with pytest.raises(ValueError, match="method: received 'fast'"):
        cs_fast.min_median(X, "jaccard", method="fast")


def _floor_rows(rng, n):
    k = (n + 1) // 2
    s = min(bounding.FLOOR_SAMPLE, n // 8)
    strided = (np.arange(s) * n) // s
    low_sample = np.full(n, 0.9)
    low_sample[strided] = 0.01  # the strided sample sees only small values: a valid, loose proposal
    high_sample = rng.random(n) * 0.5
    high_sample[strided] = 5.0  # the sample sees only large values: the proposal fails, exact selection
    return {
        "uniform": rng.random(n),
        "ties": np.round(rng.random(n), 2),
        "sorted": np.sort(rng.random(n)),
        "reversed": np.sort(rng.random(n))[::-1].copy(),
        "all equal": np.full(n, 0.3),
        "saturated": np.where(rng.random(n) < 0.9, 1.0, rng.random(n)),
        "low sample": low_sample,
        "high sample": high_sample,
    }, k


@pytest.mark.parametrize("n", [4096, 5001, 40_000])
def test_median_floor_never_exceeds_the_median(n, rng):
    """The bound a full row lends: an element of the row, <= its k-th smallest, and close to it."""
    rows, k = _floor_rows(rng, n)
    scratch = np.empty(n)
    for name, row in rows.items():
        exact = np.partition(row, k - 1)[k - 1]
        floor = bounding.median_floor(row, k, scratch)
        assert floor <= exact, name
        assert np.any(row == floor), name
        if name in ("high sample", "all equal"):
            assert floor == exact, name  # proposal rejected, or every value equal: exact
        if name in ("uniform", "ties", "sorted", "reversed"):
            assert floor >= np.quantile(row, 0.45), name  # a bound worth having, not just 0


def test_bounds_hold_where_the_median_floor_is_used(rng):
    """n large enough that full rows lend sampled floors, not exact medians: the invariant still holds."""
    X = jittered_boxes(rng, 5000)
    F, red = _features(X, "jaccard")
    trace = {}
    index, radius = prune.min_median(red, F.data, F.arg, 16, trace=trace)
    D = distances.pairwise(red, F.data, F.data, F.arg, np.float64)
    meds = np.partition(D, 2499, axis=1)[:, 2499]
    assert np.all(trace["lower_bounds"] <= meds)
    assert np.count_nonzero(trace["state"] == bounding.SKIPPED) > 0
    assert (index, radius) == distances.min_median(red, F.data, F.arg, 16)


# --------------------------------------------------------------------------- float32 boxes


def _box_pairs(rng, n, scale):
    """Boxes of many sizes and offsets, exact in float32, with near-duplicates and disjoint and empty ones."""
    # Coordinates of magnitude >= 2**-20 (the float32 path's range), widths down to 1e-3 of them.
    xy = rng.choice([-1.0, 1.0], (n, 2)) * rng.uniform(0.5, 1.0, (n, 2)) * scale * rng.choice([1.0, 1e3], (n, 1))
    wh = rng.uniform(0.0, 1.0, (n, 2)) * scale * rng.choice([1e-3, 0.1, 1.0, 10.0], (n, 1))
    X = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    X[: n // 10] = X[n // 10: 2 * (n // 10)] + np.float32(scale * 1e-6)  # near-duplicates
    X[-5:] = 0.0  # canonical empty boxes
    return X


@pytest.mark.parametrize("scale", [1e-2, 1.0, 640.0, 1e6])
def test_float32_box_test_never_says_no_to_a_pair_below(scale, rng):
    """The float32 count test admits every pair whose float64 distance is below t; e is within TINY.

    t sits one float64 ulp above the pair's float64 distance, the hardest case for the
    margin: with BOX32_PAD = 0 or of the wrong sign this test fails (checked by mutation).
    Random pairs rarely reach the worst-case rounding, so a margin of 4 u still passes
    here; the derivation in prune.py needs 43 u and the code uses 128 u, which the
    static check below holds it to.
    """
    u = 2.0**-24
    assert box32.BOX32_PAD >= 43 * u and box32.BOX32_TINY >= 18 * u
    F, red = _features(_box_pairs(rng, 3000, scale), "jaccard")
    C = box32.box32_columns(F.data)
    assert C is not None
    I = rng.integers(0, len(F.data), 200_000)
    J = np.where(rng.random(I.size) < 0.3, np.roll(I, 1), rng.integers(0, len(F.data), I.size))
    d = np.array([distances.K.box_pair(F.data, i, F.data, j, 0) for i, j in zip(I[:20000], J[:20000])])
    D = distances.pairwise(red, F.data, F.data, F.arg, np.float64)[I, J]
    a, b = F.data[I], F.data[J]
    disjoint = ~((np.minimum(a[:, 2], b[:, 2]) > np.maximum(a[:, 0], b[:, 0]))
                 & (np.minimum(a[:, 3], b[:, 3]) > np.maximum(a[:, 1], b[:, 1])))
    assert disjoint.any() and (~disjoint).any()
    assert np.array_equal(D[:20000], d)
    for t in (np.nextafter(D, np.inf), D, np.nextafter(D, -np.inf)):
        e = np.empty(I.size, np.float32)
        below = np.empty(I.size, np.bool_)
        box32.box32_pairs(C, I, J, t, e, below)
        assert np.all(below[D < t])  # never a false "not below": a row that could win is never settled
        assert np.all(np.abs(e.astype(np.float64) - D) <= 18 * 2.0**-24)  # the derivation's bound (TINY is 7x)
        # Disjoint pairs (and pairs of empty boxes) are decided exactly, so saturated inputs still settle.
        assert np.array_equal(below[disjoint], (D < t)[disjoint]) and np.array_equal(e[disjoint], D[disjoint])


def test_float32_boxes_need_exact_coordinates_in_range(rng):
    X = jittered_boxes(rng, 50)
    assert box32.box32_columns(X) is None  # float64 coordinates that float32 would round
    assert box32.box32_columns(X.astype(np.float32).astype(np.float64)) is not None
    tiny = X.astype(np.float32).astype(np.float64) * 1e-9
    assert box32.box32_columns(tiny.astype(np.float32).astype(np.float64)) is None  # below 2**-20
    for Y in (X, tiny, X * 1e12):
        brute, pruned, _ = both(Y, "jaccard", tile=4)
        assert_same(brute, pruned)


@pytest.mark.parametrize("float32", [False, True])
def test_box_paths_agree_at_scale(float32, rng):
    """Both box paths (float32 and float64) give brute force's answer through every phase at n = 6000."""
    X = jittered_boxes(rng, 6000).astype(np.float32)
    brute, pruned, stats = both_config(X, "jaccard", float32_boxes=float32)
    assert_same(brute, pruned)
    assert stats["rows_counted"] > 0 and stats["rows_skipped"] > 0


@pytest.mark.parametrize("group", [1, 3])
@pytest.mark.parametrize("pivots", [0, 1, 32])
@pytest.mark.parametrize("ratio", [2.0, 1e9])
def test_bucketed_pivots_count_exactly(pivots, ratio, group, rng):
    """The float32 count against the nearest of several bucketed pivots gives brute force's answer.

    ratio 1e9 switches to the count after the first rows, so nearly every row goes through it.
    (Checked by mutation: a window narrower by 0.02 than the triangle inequality allows fails here.)
    """
    # group: rows of one pivot counted a column block at a time
    for X in (jittered_boxes(rng, 4000), jittered_boxes(rng, 3001, sigma=1.0), TIES["duplicates"](rng),
              TIES["mostly_empty"](rng), scattered_boxes(rng, 2000)):
        X = X.astype(np.float32)
        brute, pruned, stats = both_config(X, "jaccard", tile=64, pivots=pivots, ratio=ratio, group=group)
        assert_same(brute, pruned)
        assert stats["rows_full"] + stats["rows_counted"] + stats["rows_skipped"] == len(X)


@pytest.mark.parametrize("n", [4096, 5001, 40_000])
def test_float32_floor_never_exceeds_the_median(n, rng):
    """floor32 (the float32 rows' bound, with its ladder of proposals): an element <= the k-th smallest."""
    rows, k = _floor_rows(rng, n)
    scratch = np.empty(n)
    for name, row in rows.items():
        row = row.astype(np.float32)
        exact = np.partition(row, k - 1)[k - 1]
        floor = box32.floor32(row, k, scratch)
        assert floor <= exact and np.any(row == np.float32(floor)), name
        if name in ("uniform", "ties", "sorted", "reversed"):
            assert floor >= np.quantile(row, 0.45), name


def _bound_both(C, F, rows, k, best, best_index, cols):
    """Whole float32 rows (box32_bound_rows) and open-row ones (box32_bound_open) of the same rows."""
    m, n = len(rows), C.shape[1]
    out = {}
    for name in ("whole", "open"):
        out32 = np.full((m, n), np.nan, np.float32)
        buf = np.empty((m, n))
        scratch = np.empty((m, n // 4 + 4096))
        med = np.empty(m)
        bound = np.empty(m)
        if name == "whole":
            box32.box32_bound_rows(C, np.ascontiguousarray(F.T), rows, k, best, best_index, out32, buf, scratch,
                                    med, bound)
        else:
            box32.box32_bound_open(C, np.ascontiguousarray(F.T), rows, k, best, best_index,
                                    np.ascontiguousarray(C[:, cols]), out32, buf, scratch, med, bound,
                                    bool(np.all(C[4] > 0)))
        out[name] = (out32, med, bound)
    return out


@pytest.mark.parametrize("layout", ["jittered", "unrepresentative sample", "duplicates"])
def test_open_row_bounds_are_floors_and_the_open_distances(layout, rng):
    """box32_bound_open: the float32 distances to the open rows in order, a floor <= brute force's median.

    "unrepresentative sample": the boxes at the strided sample's positions are far from
    every row, so every proposal lies above the median and the exact fallback runs.
    (Checked by mutation: taking the first proposal without its count fails here.)
    """
    n = 8192
    X = jittered_boxes(rng, n).astype(np.float32).astype(np.float64)
    if layout == "unrepresentative sample":
        X[::8] = X[::8] + 500.0  # positions (q n) // s with s = n // 8: all disjoint from the rest
    elif layout == "duplicates":
        X = np.repeat(X[:64], n // 64, axis=0)
    X = X.astype(np.float32).astype(np.float64)
    C = box32.box32_columns(X)
    assert C is not None
    k = (n + 1) // 2
    rows = np.array([1, 2, 3, 4097, 8191], np.int64)
    D = distances.pairwise("box", X, X, 0, np.float64)[rows]
    exact = np.partition(D, k - 1, axis=1)[:, k - 1]
    checked = 0
    for best, best_index in ((np.inf, n), (float(exact.min()), int(rows[np.argmin(exact)])), (0.1, 0)):
        for cols in (np.arange(n), np.sort(rng.choice(n, 3000, replace=False)), np.zeros(0, np.int64)):
            got = _bound_both(C, X, rows, k, best, best_index, cols)
            whole, opened = got["whole"], got["open"]
            assert np.array_equal(opened[0][:, :len(cols)], whole[0][:, cols])
            assert np.array_equal(opened[1], whole[1])  # same rows may win, with the same exact median
            # A floor of brute force's median within the float32 rows' error (what tighten needs);
            # a checked proposal is a floor of the float64 median itself.
            assert np.all(opened[2] <= exact + box32.BOX32_TINY)
            if layout != "unrepresentative sample":
                assert np.all(opened[2] <= exact)
            assert np.all(opened[2] >= exact - 0.15)  # and one worth having
            shut = np.isinf(opened[1])  # rows that cannot win lend a floor; the others their exact median
            assert np.array_equal(opened[2][~shut], exact[~shut])
            if layout == "unrepresentative sample":
                # every proposal fails: the floor is the exact float32 median
                f32 = np.partition(whole[0], k - 1, axis=1)[:, k - 1].astype(np.float64)
                assert np.array_equal(opened[2][shut], f32[shut])
                checked += int(shut.sum())
    if layout == "unrepresentative sample":
        assert checked > 0


@pytest.mark.parametrize("open_rows", [False, True])
def test_open_row_bounds_keep_brute_force_answer(open_rows, rng):
    """The pruned center with open-row bounds gives brute force's answer through every phase."""
    for X in (jittered_boxes(rng, 9000), jittered_boxes(rng, 5001, sigma=1.0), TIES["duplicates"](rng),
              TIES["mostly_empty"](rng), scattered_boxes(rng, 6000)):
        X = X.astype(np.float32)
        brute, pruned, stats = both_config(X, "jaccard", tile=64, open_rows=open_rows)
        assert_same(brute, pruned)
        assert stats["rows_full"] + stats["rows_counted"] + stats["rows_skipped"] == len(X)


@pytest.mark.parametrize("scale", [1e-2, 1.0, 640.0, 1e6])
def test_bare_count_test_is_the_full_one_without_empty_boxes(scale, rng):
    """count32's `simple` test gives the same answer per pair as the full test whenever it is used.

    (Checked by mutation: taking the bare test with empty boxes fails the parity test below. At
    t >= 1 the bare test would count every disjoint pair as below: safe, since over-counting only
    sends rows to the exact pass, but the saturated-boxes pathology again, so it is not used there.)
    """
    X = _box_pairs(rng, 2000, scale)[:-5]  # no canonical empty boxes
    X = X[(X[:, 2] > X[:, 0]) & (X[:, 3] > X[:, 1])]
    C = box32.box32_columns(X.astype(np.float64))
    assert C is not None and np.all(C[4] > 0)
    cols = [C[c] for c in range(5)]
    for t in (0.0, 1e-6, 0.3, 0.9, 1.0 - 2.0 * box32.BOX32_PAD):  # the last t whose loose is < 1
        loose = box32.loose32(t)
        assert loose < 1.0
        for i in rng.choice(len(X), 40, replace=False):
            a = [C[c, i] for c in range(5)]
            for j0 in range(0, len(X), 97):  # short slices: counts per handful of pairs
                sl = [v[j0:j0 + 97] for v in cols]
                full = box32.count32(*a, *sl, loose, 1.0 < t, 0.0 < t, False)
                bare = box32.count32(*a, *sl, loose, 1.0 < t, 0.0 < t, True)
                assert bare == full


@pytest.mark.parametrize("simple", [False, True])
def test_bare_count_test_keeps_brute_force_answer(simple, rng):
    """Jittered boxes take the bare test, empty and disjoint ones the full one: brute force's answer either way."""
    for X in (jittered_boxes(rng, 7000), TIES["mostly_empty"](rng), TIES["duplicates"](rng), scattered_boxes(rng, 5000)):
        X = X.astype(np.float32)
        brute, pruned, stats = both_config(X, "jaccard", tile=64, simple_test=simple)
        assert_same(brute, pruned)


STATS_KEYS = {"method", "evaluated", "recomputed", "pairs", "fraction", "rows_full", "rows_counted", "rows_skipped"}


@pytest.mark.parametrize("method", ["auto", "brute", "pruned"])
def test_stats_are_filled_on_every_path(case, method, rng):
    """Every metric, dtype and method fills the same keys; fraction is a share of the n^2 pairs."""
    metric, params, shape = case
    params = resolve_params(params, shape, rng)
    for dtype in (np.float64, np.float32):
        n = 40
        X = make_samples(metric, rng, n, dtype, shape)
        stats = {}
        got = cs_fast.min_median(X, metric, method=method, stats=stats, **params)
        assert got == cs_fast.min_median(X, metric, method="brute", **params)
        assert STATS_KEYS <= set(stats), sorted(STATS_KEYS - set(stats))
        assert stats["method"] in ("brute", "pruned") and (method == "auto" or stats["method"] == method)
        assert stats["pairs"] == n * n and 0 < stats["evaluated"] <= n * n
        assert stats["fraction"] == stats["evaluated"] / (n * n) and 0.0 < stats["fraction"] <= 1.0
        assert stats["rows_full"] + stats["rows_counted"] + stats["rows_skipped"] == n


def test_stats_fraction_stays_a_share_when_rows_are_recomputed(rng):
    """Boxes: float32 screens refined in float64 and pivot rows are recomputed, not counted twice."""
    X = jittered_boxes(rng, 3000)
    for method in ("brute", "pruned"):
        stats = {}
        cs_fast.min_median(X, "jaccard", method=method, stats=stats)
        assert stats["recomputed"] > 0, stats
        assert 0 < stats["fraction"] <= 1 and stats["evaluated"] <= stats["pairs"]
