"""Bounds against hand-worked values and their defining properties."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from cs_fast import bounds


@pytest.mark.parametrize("ratio, expected", [(1.0, 0.8699), (1.5, 0.9480), (2.0, 0.9832)])
def test_required_mass_hand_values(ratio, expected):
    # Phi(Phi^-1(0.55) + r): Phi^-1(0.55) = 0.12566; Phi(1.12566) = 0.8699, Phi(1.62566) = 0.9480, Phi(2.12566) = 0.9832
    assert bounds.required_mass(0.05, ratio, 1.0) == pytest.approx(expected, abs=1e-4)
    assert bounds.required_mass(0.05, 0.5 * ratio, 0.5) == pytest.approx(expected, abs=1e-4)


def test_required_mass_at_zero_eps_is_half_plus_delta():
    assert bounds.required_mass(0.05, 0.0, 0.3) == pytest.approx(0.55)


def test_smoothing_margin_hand_value():
    # sqrt(ln(2/0.005) / 20000) = sqrt(5.99146 / 20000) = 0.017308
    assert bounds.smoothing_margin(10_000, 0.005) == pytest.approx(0.0173082, rel=1e-5)


def test_quantile_level_hand_value():
    # 0.8699 + sqrt(ln(200) / 2e6) = 0.8699 + 0.0016276
    assert bounds.quantile_level(0.8699, 1_000_000, 0.005) == pytest.approx(0.8715276, rel=1e-6)


def test_order_statistic_is_the_ceil_rank_never_interpolated():
    d = np.arange(1.0, 11.0)  # 1..10
    assert bounds.order_statistic(d, 0.5) == 6.0  # q m = 5 is an integer: rank 6 (order_rank)
    assert bounds.order_statistic(d, 0.51) == 6.0  # ceil(5.1) = 6, interpolation would give 5.1
    assert bounds.order_statistic(d, 0.95) == 10.0
    assert bounds.order_statistic(d, 1.0) == 10.0
    assert bounds.order_statistic(d[::-1], 0.09) == 1.0


def test_order_rank_never_rounds_down():
    for m in [7, 100, 1_000_000]:
        for q in np.linspace(0.01, 1.0, 97):
            k = bounds.order_rank(q, m)
            assert k >= q * m - 1e-9 and k <= m


def test_order_statistic_refuses_q_above_one():
    with pytest.raises(ValueError, match="q"):
        bounds.order_statistic([1.0, 2.0], 1.01)


def test_certified_radius_factors():
    assert bounds.certified_radius(0.1, 1.0, 2.0) == pytest.approx(0.3)  # metric: 3R
    assert bounds.certified_radius(0.1, 2.0, 4.0) == pytest.approx(1.0)  # squared distance: 10R


def test_required_mass_matches_definition_on_a_grid():
    for delta in [0.01, 0.05, 0.2]:
        for r in [0.0, 0.3, 2.5]:
            assert bounds.required_mass(delta, r, 1.0) == pytest.approx(norm.cdf(norm.ppf(0.5 + delta) + r))


@pytest.mark.parametrize("call, name", [
    (lambda: bounds.smoothing_margin(0, 0.1), "n"),
    (lambda: bounds.smoothing_margin(10, 1.0), "alpha1"),
    (lambda: bounds.smoothing_margin(10, 0.0), "alpha1"),
    (lambda: bounds.required_mass(0.5, 1.0, 1.0), "delta"),
    (lambda: bounds.required_mass(0.0, 1.0, 1.0), "delta"),
    (lambda: bounds.required_mass(0.05, -1.0, 1.0), "eps1"),
    (lambda: bounds.required_mass(0.05, 1.0, 0.0), "sigma"),
    (lambda: bounds.quantile_level(0.5, 0, 0.1), "m"),
    (lambda: bounds.quantile_level(0.5, 10, 1.5), "alpha2"),
    (lambda: bounds.order_statistic([], 0.5), "distances"),
    (lambda: bounds.order_statistic([1.0, math.nan], 0.5), "distances"),
])
def test_bad_arguments_are_named(call, name):
    with pytest.raises((ValueError, TypeError), match=name):
        call()
