"""The mixed-precision sq/l2 path: float32 GEMM + rigorous bound + float64 refinement.

* the bound (:func:`cs_fast.kernels.mixed_precision.sq_interval`) contains the
  exact distance on adversarial near-cancellation data, and is tight enough
  there that a bound ten times smaller would fail this test;
* ``min_median`` equals brute force over the canonical float64 distances (the
  ones ``to_center`` returns) bit for bit: index and radius;
* ``cdist``/``pdist`` with float32 output stay within ``CDIST_RTOL`` of the
  float64 distances on nearby samples where a plain float32 GEMM fails.
"""

from fractions import Fraction

import numpy as np
import pytest

import cs_fast
from cs_fast.bindings.distance import to_center64
from cs_fast.kernels.cpu import distances
from cs_fast.kernels import mixed_precision as mp
from cs_fast.metrics import get_metric


def brute_force64(X, metric, **params):
    """Index and radius from the full matrix of canonical float64 distances (``to_center`` rows)."""
    D = np.stack([to_center64(X, X[i], metric, params)[0] for i in range(len(X))])
    k = (len(X) + 1) // 2
    medians = np.sort(D, axis=1)[:, k - 1]
    index = int(np.argmin(medians))  # the first of equal minima
    return index, float(medians[index])


def nearby(rng, n, d, dtype=np.float32, offset=100.0, spread=1e-3):
    """Samples around a far-off base: a plain float32 GEMM cancels catastrophically on them."""
    base = offset + rng.standard_normal(d)
    return (base + spread * rng.standard_normal((n, d))).astype(dtype)


def exact_sq(F):
    """Exact squared distances (rational arithmetic), rounded once to float64."""
    rows = [[Fraction(float(x)) for x in row] for row in F]
    return np.array([[float(sum((a - b) ** 2 for a, b in zip(p, q))) for q in rows] for p in rows])


def gemm_estimates(F):
    """What the CPU path computes: float32 centred rows, their float64 norms, float64 estimates."""
    X, na = distances.centred32(F, F.mean(axis=0, dtype=np.float64))
    dt = (na[:, None] + na[None, :]) - 2.0 * (X @ X.T).astype(np.float64)
    return dt, mp.norm_upper(na, F.shape[1])


def adversarial(rng, dtype, scale):
    """Two antipodal clusters far from their mean, with spreads near float32's resolution there.

    The centred norms are ~2**12 while distances inside a cluster are a few
    float32 ulps of that: the GEMM form cancels almost completely.
    """
    d, L = 8, 2.0 ** 12
    base = L * rng.standard_normal(d)
    sign = np.where(rng.random(20) < 0.5, 1.0, -1.0)[:, None]
    return (sign * base + scale * mp.U32 * L * rng.standard_normal((20, d))).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_interval_holds_the_exact_distance_and_is_not_loose(dtype, scale, rng):
    F = adversarial(rng, dtype, scale)
    dt, a = gemm_estimates(F)
    exact = exact_sq(F)
    canonical = np.stack([to_center64(F, F[i], "sqfeat", {})[0] for i in range(len(F))])
    coef = mp.sq_coefficients(F.shape[1])
    attained = 0.0
    for i in range(len(F)):
        for j in range(len(F)):
            lo, hi = mp.sq_interval(dt[i, j], a[i], a[j], *coef)
            assert lo <= exact[i, j] <= hi and lo <= canonical[i, j] <= hi, (i, j, lo, exact[i, j], hi)
            attained = max(attained, abs(dt[i, j] - exact[i, j]) / (hi - lo))
    # The float32 error reaches more than a tenth of the interval's width: a
    # bound 10x smaller would have missed the exact value above.
    assert attained > 0.1


def test_dropping_the_gemm_term_breaks_containment(rng):
    """The test above can fail: without the GEMM's rounding term the intervals miss."""
    F = adversarial(rng, np.float32, 1.0)
    dt, a = gemm_estimates(F)
    exact = exact_sq(F)
    c, *rest = mp.sq_coefficients(F.shape[1])
    misses = sum(not (lo <= e <= hi) for lo, hi, e in (
        (*mp.sq_interval(dt[i, j], a[i], a[j], 0.0, *rest), exact[i, j])
        for i in range(len(F)) for j in range(len(F))))
    assert misses > 0


def test_tf32_inputs_widen_the_bound():
    plain = mp.sq_coefficients(4096)
    tf32 = mp.sq_coefficients(4096, input_roundoff=mp.UTF32)
    assert tf32[0] > plain[0] + 2 * mp.UTF32 * 0.99
    with pytest.raises(ValueError, match="d: received 0"):
        mp.sq_coefficients(0)


def test_plain_float32_gemm_fails_where_cdist_holds(rng):
    X = nearby(rng, 60, 256)
    ref = get_metric("sqfeat").reference(X, X, {})
    off = ~np.eye(60, dtype=bool)
    # The plain float32 form (the peers' numpy GEMM) on these samples:
    A = X.astype(np.float32)
    naive = np.einsum("ij,ij->i", A, A)[:, None] + np.einsum("ij,ij->i", A, A)[None, :] - 2.0 * (A @ A.T)
    assert np.max(np.abs(naive[off] - ref[off]) / ref[off]) > 0.5
    for metric, R in (("sqfeat", ref), ("l2", np.sqrt(ref))):
        got = cs_fast.cdist(X, X, metric)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, R, rtol=mp.CDIST_RTOL + 1e-6, atol=0)
        assert np.all(np.diag(got) == 0.0)
        cond = cs_fast.pdist(X, metric)
        np.testing.assert_allclose(cond, R[np.triu_indices(60, 1)], rtol=mp.CDIST_RTOL + 1e-6, atol=0)


def test_cdist_recomputes_what_the_bound_cannot_keep(rng):
    """Near-duplicates (distance 0 to the bound's eye) come back as the float64 sums."""
    X = nearby(rng, 30, 64)
    X[10] = X[3]
    X[11] = np.nextafter(X[3], np.float32(np.inf))  # one ulp away in every feature
    D = cs_fast.cdist(X, X, "sqfeat")
    ref = get_metric("sqfeat").reference(X, X, {})
    assert D[3, 10] == 0.0 and D[10, 3] == 0.0
    assert D[3, 11] == np.float32(ref[3, 11]) and D[3, 11] > 0


def test_float64_cdist_keeps_float64_accuracy(rng):
    X = nearby(rng, 40, 32, np.float64)
    np.testing.assert_allclose(cs_fast.cdist(X, X, "sqfeat"), get_metric("sqfeat").reference(X, X, {}),
                               rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 24, 25, 100, 101])
@pytest.mark.parametrize("metric", ["sqfeat", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_min_median_is_brute_force_bit_for_bit(n, metric, dtype, rng):
    X = nearby(rng, n, 48, dtype)
    for tile in (1, 5, None):
        assert cs_fast.min_median(X, metric, tile=tile) == brute_force64(X, metric)
    ref = get_metric(metric).reference(X, X, {})
    k = (n + 1) // 2
    index, radius = cs_fast.min_median(X, metric)
    assert radius == pytest.approx(np.sort(ref, axis=1)[index, k - 1], rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("n", [6, 9, 40, 41])
@pytest.mark.parametrize("metric", ["sqfeat", "l2"])
def test_min_median_ties_and_duplicates(n, metric, rng):
    """Duplicated rows tie exactly; the smallest index among the tied wins, as in brute force."""
    X = nearby(rng, n, 16)
    X[n // 2:] = X[: n - n // 2]  # every row at least twice (odd n: one row thrice)
    X[0] += 5.0  # an outlier first, so index 0 cannot win by position
    got = cs_fast.min_median(X, metric, tile=3)
    assert got == brute_force64(X, metric)
    Y = np.tile(X[1], (n, 1))
    assert cs_fast.min_median(Y, metric) == (0, 0.0)


def test_min_median_weights_and_clusters(rng):
    centers = 50.0 + rng.standard_normal((3, 64))
    X = (centers[rng.integers(0, 3, 301)] + 1e-3 * rng.standard_normal((301, 64))).astype(np.float32)
    w = rng.uniform(0.0, 2.0, 64)
    assert cs_fast.min_median(X, "sqfeat", weights=w) == brute_force64(X, "sqfeat", weights=w)


def test_min_median_refines_few_rows_on_nearby_samples(rng):
    X = nearby(rng, 400, 512)
    F = np.ascontiguousarray(X)
    index, radius, candidates = distances.sq_min_median(F, False, 128)
    assert (index, radius) == brute_force64(X, "sqfeat")
    assert 1 <= candidates <= 40


def test_min_median_falls_back_to_float64_beyond_float32_range(rng):
    X = 1e30 * (1.0 + 1e-3 * rng.standard_normal((9, 4)))  # centred norms beyond float32's GEMM
    assert cs_fast.min_median(X, "sqfeat") == brute_force64(X, "sqfeat")


def test_radius_is_the_to_center_median(rng):
    """What CenterSmoothing relies on: min_median's radius is the lower median of to_center."""
    X = nearby(rng, 201, 100)
    index, radius = cs_fast.min_median(X, "sqfeat")
    d = to_center64(X, X[index], "sqfeat", {})[0]
    assert radius == np.sort(d)[100]
    np.testing.assert_allclose(d, get_metric("sqfeat").reference(X, X[index:index + 1], {})[:, 0],
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("d", [1, 3, 7, 16, 17, 33, 100, 257])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_canonical_rows_have_the_same_bits_on_one_thread_and_in_parallel(d, dtype, rng):
    """to_center (large: parallel blocks) and the refinement (small: one thread) share every bit."""
    F = (100.0 + rng.standard_normal((300, d))).astype(dtype)
    V = np.ascontiguousarray(F[[5, 7, 100]])
    w = 10.0 ** rng.uniform(-4, 4, d)
    tv_arg = (1 << 32) | d  # one channel, one image row of d pixels
    for red, arg in [("sq", 0), ("wsq", w), ("l1", 0), ("tv", (1, d, False, distances.row_mask(1, d)))]:
        block, parallel_fn = distances.row_kernels(red)
        serial, parallel = np.empty((3, 300)), np.empty((3, 300))
        block(F, V, serial, 0, 300, False, arg)
        parallel_fn(F, V, parallel, 7, False, arg)
        assert np.array_equal(serial, parallel), red
        # paired (diag) reads the same loop: d(V[r], F[j]) for the pairs it is given
        diag = np.empty((1, 300))
        block(F, np.ascontiguousarray(F[::-1]), diag, 0, 300, True, arg)
        full = np.empty((300, 300))
        block(F, F, full, 0, 300, False, arg)
        assert np.array_equal(diag[0], full[np.arange(300)[::-1], np.arange(300)]), red
    assert distances.rows("tv", F, V, tv_arg, np.empty((3, 300))) is not None
    X, na = np.empty(F.shape, np.float32), np.empty(300)
    X2, na2 = np.empty(F.shape, np.float32), np.empty(300)
    shift = F.mean(axis=0, dtype=np.float64)
    distances.centre32_block(F, shift, X, na, 0, 300)
    distances.centre32_parallel(F, shift, X2, na2, 7)
    assert np.array_equal(X, X2) and np.array_equal(na, na2)


def test_row_thresholds_keep_only_what_the_bound_keeps(rng):
    """Above a row's threshold every column's own interval passes the cdist test."""
    d = 512
    coef = mp.sq_coefficients(d)
    a = rng.uniform(0.5, 30.0, 50)
    T = np.empty(50)
    distances.accept_thresholds(a, float(a.max()), coef, mp.CDIST_RTOL, T)
    assert np.all(np.isfinite(T)) and np.all(T > 0)
    for i in range(50):
        for dt in T[i] * np.array([1.0, 1.0 + 1e-12, 1.5, 10.0, 1e6]):
            for aj in (a.max(), a.min(), a[i]):
                lo, hi = mp.sq_interval(dt, a[i], aj, *coef)
                assert hi - lo <= mp.CDIST_RTOL * lo
        lo, hi = mp.sq_interval(T[i] / 4, a[i], a.max(), *coef)  # well below: the test fails there
        assert not hi - lo <= mp.CDIST_RTOL * lo


# ----------------------------------------------------------------------------- the host driver (kernels/cpu/mixed.py)

from cs_fast.kernels.cpu import mixed  # noqa: E402


def far_clusters(rng, n, d, dtype=np.float32):
    """Two tight clusters around a far-off base, duplicates and a near-duplicate: counting and ties."""
    base = 300.0 + rng.standard_normal(d)
    X = base + 1e-3 * rng.standard_normal((n, d))
    X[: n // 3] += 2e-3  # a second cluster: many rows with medians near the best
    if n > 1:
        X[n - 1] = X[1]
    if n > 4:
        X[2] = np.nextafter(X[1].astype(dtype), np.inf)
    return np.ascontiguousarray(X.astype(dtype))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 33, 64, 257])
@pytest.mark.parametrize("take_sqrt", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_counting_path_is_brute_force(n, take_sqrt, dtype, rng):
    """Counting pass + partial refinement equals brute force bit for bit: one symmetric product, or row
    tiles of the lower triangle counted both ways (1 row, 3 rows, a third of the rows per tile)."""
    X = far_clusters(rng, n, 40, dtype)
    want = brute_force64(X, "l2" if take_sqrt else "sqfeat")
    for tile in sorted({n, 1, 3, max(1, n // 3)}):
        stats = {}
        assert mixed.min_median("l2" if take_sqrt else "sq", X, 0, tile, stats=stats) == want, tile
        assert 1 <= stats["refined"] <= stats["candidates"] <= n
    assert want == distances.sq_min_median(X, take_sqrt, max(1, n // 3))[:2]  # the previous path agrees


@pytest.mark.parametrize("tile", [500, 128])
def test_counting_path_refines_few_entries(tile, rng):
    """On nearby samples one row is refined, and only the entries near its median are summed in float64."""
    X = nearby(rng, 500, 256)
    stats = {}
    assert mixed.min_median("sq", X, 0, tile, stats=stats) == brute_force64(X, "sqfeat")
    assert stats["refined"] <= 3 and stats["summed"] < 500 * stats["refined"] // 2


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_identical_rows_tie_to_index_zero(n):
    Y = np.tile(np.float32([1e3, -2e3, 5.0]), (n, 1))
    for tile in (n, 3):
        stats = {}
        assert mixed.min_median("l2", Y, 0, tile, stats=stats) == (0, 0.0)
        assert stats["refined"] == 1  # the rest tie at lower end 0 with a larger index: skipped


@pytest.mark.parametrize("data", ["clusters", "adversarial"])
def test_exact_median_is_the_canonical_row_median(data, rng):
    """exact_median (only the ambiguous entries summed) equals a selection on the full canonical row.

    The adversarial samples give intervals far wider than the gaps between
    distances, so the split into below / ambiguous / above matters there.
    """
    X = far_clusters(rng, 61, 24) if data == "clusters" else np.concatenate(
        [adversarial(rng, np.float32, s) for s in (0.1, 1.0, 10.0)])
    n, d = X.shape
    Xc, na = mixed.centred(X, mixed.shift_of(X))
    G = Xc @ Xc.T
    coef = mp.sq_coefficients(d, estimate_roundoff=mp.U32)
    a = mp.norm_upper(na, d)
    full = np.empty((n, n))
    distances.sq_rows(X, X, full)
    for k in sorted({1, 2, n // 2, (n + 1) // 2, n - 1, n}):
        for i in range(n):
            m, summed = mixed.exact_median(X, G[i], na.astype(np.float32), i, a, coef, k)
            assert m == np.partition(full[i], k - 1)[k - 1], (k, i)
            assert 1 <= summed <= n


def test_count_thresholds_are_sound_and_tight(rng):
    """Every estimate whose interval can start at or below U lies under tau; tau is not much larger."""
    d = 512
    coef = mp.sq_coefficients(d, estimate_roundoff=mp.U32)
    a = rng.uniform(0.5, 30.0, 40)
    amax = float(a.max())
    for U in (0.0, 1e-30, 0.3, 50.0, 2.0e4):
        tau = np.empty(40, dtype=np.float32)
        mixed.count_thresholds(a, amax, coef, U, tau)
        for i in range(40):
            t = float(tau[i])
            assert mp.sq_interval(t, a[i], amax, *coef)[0] > U  # at tau the interval starts above U
            # one float32 below it and further down the lower end reaches U: tau is the first such value
            # (within a factor 1 + 2**-20 of it, plus the float32 spacing)
            below = float(np.nextafter(np.float32(t / (1.0 + 2.0 ** -20)), np.float32(0)))
            assert mp.sq_interval(below, a[i], amax, *coef)[0] <= U


def test_sqrt_bucket_top_covers_every_tie(rng):
    for U in np.concatenate([[0.0, 5e-324, 1e-310], rng.uniform(0, 10, 20), [1e300]]):
        V = mixed.sqrt_bucket_top(float(U))
        assert V >= U and np.sqrt(np.nextafter(V, np.inf)) > np.sqrt(U)
        assert np.sqrt(V) >= np.sqrt(U)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 64])
@pytest.mark.parametrize("metric", ["sqfeat", "l2"])
def test_cdist_of_one_set_with_itself(n, metric, rng):
    """cdist(X, X) (one symmetric product, self-distances set to 0) and cdist(X, copy) agree within the bound."""
    X = far_clusters(rng, n, 48)
    ref = get_metric("sqfeat").reference(X, X, {})
    if metric == "l2":
        ref = np.sqrt(ref)
    same = cs_fast.cdist(X, X, metric)
    other = cs_fast.cdist(X, X.copy(), metric)
    for got in (same, other):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=mp.CDIST_RTOL + 1e-6, atol=0)
        assert np.all(np.diag(got) == 0.0)
    if n > 4:
        assert same[1, n - 1] == 0.0 and same[1, 2] > 0.0  # a duplicate, and one ulp apart


@pytest.mark.parametrize("n", [2, 3, 17, 64])
@pytest.mark.parametrize("take_sqrt", [False, True])
def test_condensed_full_and_tiled(n, take_sqrt, rng):
    """pdist's one symmetric product and its row tiles against the later rows give the same entries."""
    X = far_clusters(rng, n, 48)
    ref = get_metric("sqfeat").reference(X, X, {})[np.triu_indices(n, 1)]
    if take_sqrt:
        ref = np.sqrt(ref)
    full = mixed.condensed("l2" if take_sqrt else "sq", X, 0, 4 * n * n)
    for max_bytes in (4 * n, 4 * n * 5):  # one row per tile, five rows per tile
        tiled = mixed.condensed("l2" if take_sqrt else "sq", X, 0, max_bytes)
        np.testing.assert_allclose(tiled, ref, rtol=mp.CDIST_RTOL + 1e-6, atol=0)
    np.testing.assert_allclose(full, ref, rtol=mp.CDIST_RTOL + 1e-6, atol=0)
    np.testing.assert_array_equal(cs_fast.pdist(X, "l2" if take_sqrt else "sqfeat"), full)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["same", "XA", "XB", "XA with empty XB"])
@pytest.mark.parametrize("metric", ["sqfeat", "l2"])
def test_cdist_float32_finiteness_check_rides_on_the_centring(bad, where, metric, rng):
    """The mixed path skips the separate finiteness scan; NaN/inf still raise prepare's own error."""
    X = nearby(rng, 12, 16)
    Y = nearby(rng, 9, 16)
    Xbad = X.copy()
    Xbad[7, 3] = bad
    m = get_metric(metric)
    name = "XB" if where == "XB" else "XA"
    with pytest.raises(ValueError) as expected:
        m.prepare(Xbad, name, {}, cs_fast.metrics.HOST_OPS)
    args = {"same": (Xbad, Xbad), "XA": (Xbad, Y), "XB": (Y, Xbad), "XA with empty XB": (Xbad, Y[:0])}[where]
    with pytest.raises(ValueError) as got:
        cs_fast.cdist(*args, metric)
    assert str(got.value) == str(expected.value)


def test_cdist_float32_nonfinite_after_weights_and_overflow(rng):
    """A zero weight on an inf still raises; finite values whose centring overflows float32 take float64."""
    X = nearby(rng, 6, 8)
    X[2, 5] = np.inf
    w = np.ones(8)
    w[5] = 0.0  # inf * 0 = NaN in the features: still caught
    with pytest.raises(ValueError, match="XA"):
        cs_fast.cdist(X, X, "sqfeat", weights=w)
    big = np.zeros((4, 3), np.float32)
    big[0, 0], big[1, 0] = 3e38, -3e38  # F - shift overflows float32: float64 sums instead
    with np.errstate(over="ignore"):  # the distances themselves overflow float32, as they would anyway
        D = cs_fast.cdist(big, big, "sqfeat")
        ref = get_metric("sqfeat").reference(big, big, {}).astype(np.float32)
    np.testing.assert_array_equal(D, ref)
