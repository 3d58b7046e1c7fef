"""min_median against brute force: full matrix, sort each row, take the lower median."""

import numpy as np
import pytest

import cs_fast
from cs_fast.metrics import get_metric
from conftest import make_samples, resolve_params
from large_reference import LARGE_CASES, SIZES, large_case_id, lower_medians, reference_rows, samples


def brute_force(X, metric, params):
    D = get_metric(metric).reference(X, X, params)
    k = (len(X) + 1) // 2
    medians = np.sort(D, axis=1)[:, k - 1]
    return int(np.argmin(medians)), float(medians.min())


@pytest.mark.parametrize("n", [1, 2, 7, 24, 25])
@pytest.mark.parametrize("tile", [1, 5, None])
def test_min_median_matches_brute_force(case, n, tile, rng):
    metric, params, shape = case
    params = resolve_params(params, shape, rng)
    X = make_samples(metric, rng, n, np.float64, shape)
    index, radius = cs_fast.min_median(X, metric, tile=tile, **params)
    ref_index, ref_radius = brute_force(X, metric, params)
    assert radius == pytest.approx(ref_radius, rel=1e-9, abs=1e-12)
    assert index == ref_index


@pytest.mark.parametrize("n", [6, 9])
def test_ties_keep_the_smallest_index(n):
    """Identical rows tie exactly; the first of them wins."""
    X = np.tile(np.array([[1.0, 2.0, 3.0]]), (n, 1))
    X[0] += 50  # an outlier first, so the winner is not trivially index 0
    assert cs_fast.min_median(X, "l2") == (1, 0.0)


def test_ties_between_distinct_rows_of_equal_median():
    # Points at 0, 1, 2, 3, 10 (k = 3): rows 1 and 2 both have lower median 1, the others 2.
    X = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    assert cs_fast.min_median(X, "l1") == (1, 1.0)


def test_even_n_uses_the_lower_median():
    # Distances from row 0: 0, 1, 10, 11 -> lower median (2nd smallest) is 1, not 5.5.
    X = np.array([[0.0], [1.0], [10.0], [11.0]])
    index, radius = cs_fast.min_median(X, "l1")
    assert radius == 1.0


def test_float32_boxes_match_float64_brute_force(rng):
    X = make_samples("jaccard", rng, 301, np.float32)
    index, radius = cs_fast.min_median(X, "jaccard", tile=16)
    ref_index, ref_radius = brute_force(X, "jaccard", {})
    assert (index, radius) == (ref_index, pytest.approx(ref_radius, rel=1e-12))


@pytest.mark.parametrize("metric", ["l1", "sqfeat", "tv"])
def test_tiled_paths_match_brute_force_on_clustered_data(metric, rng):
    """Tight clusters make many equal-ish medians: pruning must not drop the winner."""
    centers = rng.standard_normal((3, 2, 4, 4))
    X = centers[rng.integers(0, 3, 90)] + 1e-3 * rng.standard_normal((90, 2, 4, 4))
    if metric != "tv":
        X = X.reshape(90, -1)
    got = cs_fast.min_median(X, metric, tile=7)
    ref = brute_force(X, metric, {})
    assert got[0] == ref[0] and got[1] == pytest.approx(ref[1], rel=1e-9)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("ci", range(len(LARGE_CASES)), ids=[large_case_id(c) for c in LARGE_CASES])
def test_min_median_matches_brute_force_across_tile_boundaries(ci, n):
    """Sizes past the row tiles (256), the counting blocks (512, 2048) and the doubling tiles, every metric.

    The production path (default tile, pruning by the best median so far) against float64 brute force:
    the lower median of every row, computed block by block (:mod:`large_reference`).
    """
    metric, params, shape = LARGE_CASES[ci]
    X, params = samples(metric, params, shape, n)
    med = lower_medians(ci, n)
    index, radius = cs_fast.min_median(X, metric, **params)
    assert radius == pytest.approx(med.min(), rel=1e-9, abs=1e-12)
    assert index == int(np.argmin(med))  # ties (the data hold exact duplicates) keep the smallest index
    # The vectorized reference is the pair-by-pair definition (Metric.reference) on the winning row.
    row = get_metric(metric).reference(X[index:index + 1], X, params)[0]
    np.testing.assert_allclose(reference_rows(metric, params, X[index:index + 1], X)[0], row, rtol=1e-12, atol=1e-14)
