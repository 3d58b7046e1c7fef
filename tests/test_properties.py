"""Hypothesis properties of every metric: symmetry, zero self-distance, relaxed triangle inequality."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import cs_fast
from cs_fast.metrics import get_metric
from conftest import CASES, make_samples, resolve_params

seeds = st.integers(min_value=0, max_value=2**32 - 1)
cases = st.sampled_from(CASES)


@settings(max_examples=40, deadline=None)
@given(case=cases, seed=seeds, float32=st.booleans())
def test_symmetric_and_zero_on_the_diagonal(case, seed, float32):
    metric, params, shape = case
    rng = np.random.default_rng(seed)
    params = resolve_params(params, shape, rng)
    X = make_samples(metric, rng, 6, np.float32 if float32 else np.float64, shape)
    D = np.asarray(cs_fast.cdist(X, X, metric, **params), dtype=np.float64)
    scale = max(1.0, float(np.abs(D).max()))
    np.testing.assert_allclose(D, D.T, atol=1e-5 * scale)
    np.testing.assert_allclose(np.diag(D), 0.0, atol=1e-5 * scale)
    assert (D >= 0).all()


@settings(max_examples=40, deadline=None)
@given(case=cases, seed=seeds)
def test_relaxed_triangle_inequality(case, seed):
    metric, params, shape = case
    rng = np.random.default_rng(seed)
    params = resolve_params(params, shape, rng)
    X = make_samples(metric, rng, 7, np.float64, shape)
    D = cs_fast.cdist(X, X, metric, **params)
    gamma = get_metric(metric).gamma
    # d(a, c) <= gamma (d(a, b) + d(b, c)) for all triples.
    bound = gamma * (D[:, :, None] + D[None, :, :])  # [a, b, c] = d(a,b) + d(b,c)
    assert (D[:, None, :] <= bound + 1e-9).all()


@settings(max_examples=40, deadline=None)
@given(boxes=st.lists(st.tuples(*[st.floats(-1e3, 1e3, allow_nan=False)] * 4), min_size=1, max_size=8))
def test_jaccard_in_unit_interval(boxes):
    X = np.array(boxes)
    D = cs_fast.cdist(X, X, "jaccard")
    assert ((D >= 0) & (D <= 1)).all()
    np.testing.assert_allclose(D, get_metric("jaccard").reference(X, X, {}), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(1, 30))
def test_min_median_ball_holds_at_least_half(seed, n):
    """The returned radius is a real order statistic: the ball around the center holds >= ceil(n/2) samples."""
    rng = np.random.default_rng(seed)
    X = make_samples("jaccard", rng, n)
    index, radius = cs_fast.min_median(X, "jaccard")
    d = cs_fast.to_center(X, X[index], "jaccard")
    assert (d <= radius).sum() >= (n + 1) // 2
    assert (d < radius).sum() < (n + 1) // 2
