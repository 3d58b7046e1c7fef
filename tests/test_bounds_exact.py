"""The exact binomial rules of cs_fast.bounds: against a 40-digit reference, and by Monte Carlo coverage.

The reference tail is an mpmath sum of the binomial terms above ``k`` (each term
from log-gamma, then the ratio recurrence), written here from the definition and
sharing no code with scipy. The Monte Carlo tests run each rule on simulated
distances or counts at a level where failures are frequent enough to count
(alpha = 0.1 or 0.2) and check the observed failure rate against the exact
theoretical one; the same simulation with the rank (or threshold) one lower must
fail, so an off-by-one cannot pass.
"""

import math

import mpmath
import numpy as np
import pytest
from scipy.stats import binom

from cs_fast import bounds

mpmath.mp.dps = 40


def mp_tail(m, p, k):
    """P(Binomial(m, p) >= k) in 40-digit arithmetic (k at or above the mean: the terms decay)."""
    if k <= 0:
        return mpmath.mpf(1)
    if k > m:
        return mpmath.mpf(0)
    p = mpmath.mpf(p)
    if p == 0:
        return mpmath.mpf(0)
    q = 1 - p
    if q == 0:
        return mpmath.mpf(1)
    term = mpmath.exp(mpmath.loggamma(m + 1) - mpmath.loggamma(k + 1) - mpmath.loggamma(m - k + 1)
                      + k * mpmath.log(p) + (m - k) * mpmath.log(q))
    total, j, ratio = term, k, p / q
    while j < m:
        term = term * (m - j) / (j + 1) * ratio
        j += 1
        total += term
        if term < total * mpmath.mpf(10) ** -30:
            break
    return total


def _cases(count, seed):
    """(m, p, alpha): m from 1 to 1e8 log-uniform, p near 0, in the middle and near 1, alpha down to 1e-12."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        m = int(round(10 ** rng.uniform(0, 8)))
        kind = rng.integers(3)
        if kind == 0:
            p = 10 ** rng.uniform(-9, -1)
        elif kind == 1:
            p = rng.uniform(0.3, 0.97)
        else:
            p = 1 - 10 ** rng.uniform(-9, -1.5)
        alpha = 10 ** rng.uniform(-12, -1)
        out.append((m, float(p), float(alpha)))
    return out


def _check_rank_against_mpmath(m, p, alpha):
    k = bounds.exact_rank(m, p, alpha)
    if k is None:
        # no rank at all: even the largest of m distances fails, p^m > alpha (up to the 1e-12 padding)
        assert mpmath.mpf(p) ** m > alpha * (1 - 1e-5) or (p + 1e-12) ** m > alpha * (1 - 1e-6)
        return
    assert 1 <= k <= m
    assert mp_tail(m, p, k) <= alpha, (m, p, alpha, k)  # never too small
    if k > 1 and k != bounds.paper_rank(m, p, alpha):
        # and no larger than the padded, hair-trimmed rule needs: k - 1 is refused by the exact tail too
        assert mp_tail(m, min(1.0, p + 1e-12), k - 1) > alpha * (1 - 1e-6) * (1 - 1e-9), (m, p, alpha, k)


@pytest.mark.parametrize("m, p, alpha", _cases(40, 1))
def test_exact_rank_against_a_40_digit_reference(m, p, alpha):
    _check_rank_against_mpmath(m, p, alpha)


@pytest.mark.slow
@pytest.mark.parametrize("m, p, alpha", _cases(400, 2))
def test_exact_rank_against_a_40_digit_reference_many(m, p, alpha):
    _check_rank_against_mpmath(m, p, alpha)


@pytest.mark.parametrize("m, p, alpha", [
    (1, 0.5, 0.6), (1, 0.5, 0.4), (10, 0.999, 1e-12), (10 ** 8, 0.98, 0.005), (10 ** 8, 1e-7, 1e-9),
    (10 ** 8, 1 - 1e-9, 0.005), (1000, 1e-9, 1e-6), (1000, 1e-9, 1e-12), (10 ** 6, 0.5, 1e-12),
])
def test_exact_rank_corners(m, p, alpha):
    _check_rank_against_mpmath(m, p, alpha)


def test_exact_rank_is_never_above_the_papers_and_certifies_wherever_it_does():
    for m, p, alpha in _cases(300, 3):
        k, paper = bounds.exact_rank(m, p, alpha), bounds.paper_rank(m, p, alpha)
        if paper is not None:
            assert k is not None and k <= paper


def test_exact_rank_is_monotone_in_p_and_in_one_over_alpha():
    rng = np.random.default_rng(4)
    for _ in range(60):
        m = int(10 ** rng.uniform(1, 6))
        ps = np.sort(rng.uniform(0.01, 0.999, 12))
        ranks = [bounds.exact_rank(m, float(p), 0.01) for p in ps]
        present = [r for r in ranks if r is not None]
        assert present == sorted(present)  # a larger mass never needs a smaller rank
        assert all(r is None for r in ranks[len(present):])  # and once none certifies, none does
        alphas = np.sort(10 ** rng.uniform(-10, -1, 12))[::-1]
        p = float(rng.uniform(0.1, 0.99))
        ranks = [bounds.exact_rank(m, p, float(a)) for a in alphas]
        present = [r for r in ranks if r is not None]
        assert present == sorted(present)


def test_smallest_m_and_n_by_value_and_by_definition():
    p = bounds.required_mass(0.05, 2.0, 1.0)
    assert (bounds.smallest_m(p, 0.005), bounds.smallest_m(p, 0.005, "paper")) == (314, 9425)
    p25 = bounds.required_mass(0.05, 2.5, 1.0)
    assert (bounds.smallest_m(p25, 0.005), bounds.smallest_m(p25, 0.005, "paper")) == (1223, 141687)
    for rules in bounds.BOUNDS:
        m0 = bounds.smallest_m(p, 0.005, rules)
        assert bounds.certification_rank(m0, p, 0.005, rules).rank is not None
        assert bounds.certification_rank(m0 - 1, p, 0.005, rules).rank is None
    assert (bounds.smallest_n(0.05, 0.005), bounds.smallest_n(0.05, 0.005, "paper")) == (784, 1199)
    for delta, alpha1 in [(0.05, 0.005), (0.1, 0.2), (0.02, 1e-6), (0.3, 0.01)]:
        for rules in bounds.BOUNDS:
            n0 = bounds.smallest_n(delta, alpha1, rules)
            assert not bounds.admissible(n0 - 1, delta, alpha1, rules) if n0 > 1 else True
            assert all(bounds.admissible(n, delta, alpha1, rules) for n in range(n0, n0 + 300))


def test_exact_lemma1_matches_scipy_binomial():
    """Admissible iff P(Binomial(n, 1/2 + delta) < ceil(n/2)) <= alpha1/2, for every n near the edge."""
    for delta, alpha1 in [(0.05, 0.005), (0.1, 0.2), (0.2, 0.05)]:
        n0 = bounds.smallest_n(delta, alpha1)
        for n in range(max(1, n0 - 60), n0 + 60):
            tail = binom.cdf(-(-n // 2) - 1, n, 0.5 + delta)
            if abs(tail - alpha1 / 2) > 1e-9:  # away from a rounding-level tie
                assert bounds.admissible(n, delta, alpha1) == (tail <= alpha1 / 2), (delta, alpha1, n)
            if bounds.admissible(n, delta, alpha1):
                margin = bounds.lemma1_margin(n, alpha1)
                assert binom.cdf(-(-n // 2) - 1, n, 0.5 + margin) == pytest.approx(alpha1 / 2, rel=1e-6)
    assert bounds.admissible(764, 0.05, 0.005) and not bounds.admissible(765, 0.05, 0.005)  # even n admit earlier


def test_center_check_threshold_is_the_one_sided_clopper_pearson_rank():
    for n in (50, 784, 1000, 10_001):
        for delta, alpha1 in [(0.05, 0.005), (0.1, 0.2)]:
            check = bounds.center_check(n // 2, n, delta, alpha1)
            if check.threshold is None:
                continue
            k = check.threshold
            assert binom.sf(k - 1, n, 0.5 - delta) <= alpha1 / 2
            paper = bounds.paper_threshold(n, delta, alpha1)
            assert paper is None or k <= paper
            assert bounds.center_check(k, n, delta, alpha1).passed
            assert not bounds.center_check(k - 1, n, delta, alpha1).passed
            # the reported delta2 is 1/2 minus the Clopper-Pearson lower bound, at or below delta when it passes
            assert bounds.center_check(k, n, delta, alpha1).delta2 <= delta + 1e-9


def test_paper_center_check_is_todays_float_rule():
    for n in (1199, 2000, 10_000):
        for count in range(n // 2 - 60, n // 2 + 60):
            delta1 = math.sqrt(math.log(2 / 0.005) / (2 * n))
            delta2 = 0.5 - (count / n - delta1)
            check = bounds.center_check(count, n, 0.05, 0.005, "paper")
            assert (check.delta1, check.delta2) == (delta1, delta2)
            assert check.passed == (max(delta1, delta2) <= 0.05)
            assert check.passed == (count >= check.threshold)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="bounds: received 'hoeffding'"):
        bounds.center_check(1, 10, 0.05, 0.005, "hoeffding")
    with pytest.raises(TypeError, match="bounds: received 1"):
        bounds.certification_rank(10, 0.5, 0.1, 1)
    with pytest.raises(ValueError, match="count: received 11; expected at most n = 10"):
        bounds.center_check(11, 10, 0.05, 0.005)
    with pytest.raises(ValueError, match="p: received 1.5"):
        bounds.exact_rank(10, 1.5, 0.1)
    with pytest.raises(ValueError, match="alpha: received 0.0"):
        bounds.exact_rank(10, 0.5, 0.0)
    with pytest.raises(ValueError, match="h: received None"):
        bounds.plan()


# ----------------------------------------------------------------------------- Monte Carlo


LAWS = {
    # name: (sampler (rng, size) -> distances, quantile function, atom at the quantile)
    "exponential": (lambda rng, size: rng.exponential(1.0, size), lambda q: -math.log1p(-q)),
    "pareto (tail index 1.1)": (lambda rng, size: rng.pareto(1.1, size), lambda q: (1 - q) ** (-1 / 1.1) - 1),
}


def _rank_failures(trials, m, p, alpha, law, shift, seed):
    """Failures of ``F(R) >= p`` over ``trials`` samples of ``m`` distances, R at rank exact_rank + shift."""
    sampler, quantile = LAWS[law]
    rng = np.random.default_rng(seed)
    k = bounds.certification_rank(m, p, alpha).rank + shift
    q = quantile(p)
    fails = 0
    for _ in range(trials):
        R = bounds.kth_smallest(sampler(rng, m), k)
        fails += R < q  # F(R) < p exactly when R is below the p-quantile (a continuous law)
    return fails, k


def _within(fails, trials, rate, sigmas=4.0):
    se = math.sqrt(rate * (1 - rate) / trials)
    return abs(fails / trials - rate) <= sigmas * se + 1.0 / trials


@pytest.mark.parametrize("law", sorted(LAWS))
@pytest.mark.parametrize("trials", [pytest.param(4000, id="short"),
                                    pytest.param(40_000, id="long", marks=pytest.mark.slow)])
def test_rank_rule_coverage_and_its_off_by_one(law, trials):
    m, p, alpha = 65, 0.9, 0.1  # rank 62: S = 0.0996, just below alpha; rank 61: S = 0.209
    fails, k = _rank_failures(trials, m, p, alpha, law, 0, 1)
    rate = binom.sf(k - 1, m, p)  # P(F(R) < p) for a continuous law: S(m, p, k)
    assert rate <= alpha and _within(fails, trials, rate)
    assert fails / trials <= alpha + 4 * math.sqrt(alpha * (1 - alpha) / trials)
    low, _ = _rank_failures(trials, m, p, alpha, law, -1, 2)
    low_rate = binom.sf(k - 2, m, p)
    assert low_rate > alpha + 8 * math.sqrt(alpha * (1 - alpha) / trials)  # the tight case: k - 1 is far too small
    assert _within(low, trials, low_rate) and low / trials > alpha + 4 * math.sqrt(alpha * (1 - alpha) / trials)


def test_rank_rule_on_an_atomic_law_fails_no_more_than_the_exact_rate():
    """Distances with an atom at the p-quantile: ties only lower the failure probability."""
    rng = np.random.default_rng(5)
    m, p, alpha, trials = 60, 0.9, 0.1, 4000
    k = bounds.certification_rank(m, p, alpha).rank
    # law: 0 w.p. 0.5, 1 w.p. 0.45 (the atom holding the 0.9-quantile), 2 w.p. 0.05; F(R) < p iff R < 1
    fails = sum(bounds.kth_smallest(rng.choice([0.0, 1.0, 2.0], m, p=[0.5, 0.45, 0.05]), k) < 1.0
                for _ in range(trials))
    exact = binom.sf(k - 1, m, 0.5)  # R < 1 iff at least k of the m fall on 0 (probability 0.5 each)
    assert _within(fails, trials, exact) and exact <= binom.sf(k - 1, m, p) <= alpha


@pytest.mark.parametrize("trials", [pytest.param(20_000, id="short"),
                                    pytest.param(400_000, id="long", marks=pytest.mark.slow)])
def test_center_check_false_pass_rate_and_its_off_by_one(trials):
    """A ball of mass exactly 1/2 - delta (the worst case) passes the exact check at most alpha1/2 of the time."""
    n, delta, alpha1 = 60, 0.1, 0.2
    rng = np.random.default_rng(6)
    counts = rng.binomial(n, 0.5 - delta, trials)  # fresh samples within a radius whose ball has mass 0.4
    threshold = bounds.center_check(0, n, delta, alpha1).threshold
    passes = np.array([bounds.center_check(int(c), n, delta, alpha1).passed for c in range(n + 1)])
    false_pass = int(passes[counts].sum())
    rate = binom.sf(threshold - 1, n, 0.5 - delta)
    assert rate <= alpha1 / 2 and _within(false_pass, trials, rate)
    mutant = int((counts >= threshold - 1).sum())
    mutant_rate = binom.sf(threshold - 2, n, 0.5 - delta)
    assert mutant_rate > alpha1 / 2 + 8 * math.sqrt(0.1 * 0.9 / trials) and _within(mutant, trials, mutant_rate)


@pytest.mark.parametrize("trials", [pytest.param(20_000, id="short"),
                                    pytest.param(400_000, id="long", marks=pytest.mark.slow)])
def test_lemma1_failure_rate_at_the_smallest_admissible_n_and_its_off_by_one(trials):
    """At the smallest admissible n, the mass-(1/2 + delta) ball misses ceil(n/2) samples at most alpha1/2 of the time."""
    delta, alpha1 = 0.1, 0.2
    n = bounds.smallest_n(delta, alpha1)
    rng = np.random.default_rng(7)
    inside = rng.binomial(n, 0.5 + delta, trials)
    need = -(-n // 2)
    fails = int((inside < need).sum())
    rate = binom.cdf(need - 1, n, 0.5 + delta)
    assert rate <= alpha1 / 2 and _within(fails, trials, rate)
    # the n just below is refused, and rightly: its ball misses the median more than alpha1/2 of the time
    m = n - 1
    assert not bounds.admissible(m, delta, alpha1)
    miss = int((rng.binomial(m, 0.5 + delta, trials) < -(-m // 2)).sum())
    below = binom.cdf(-(-m // 2) - 1, m, 0.5 + delta)
    assert below > alpha1 / 2 and _within(miss, trials, below)
    # counting the median one sample later (ceil(n/2) + 1 in the ball) would need more than alpha1/2 here
    late = binom.cdf(need, n, 0.5 + delta)
    assert late > alpha1 / 2 and _within(int((inside < need + 1).sum()), trials, late)


def test_binomial_tail_at_its_edges():
    assert bounds.binomial_tail(10, 0.5, 0) == 1.0 == bounds.binomial_tail(10, 0.5, -3)
    assert bounds.binomial_tail(10, 0.5, 11) == 0.0
    assert bounds.binomial_tail(10, 0.0, 1) == 0.0 and bounds.binomial_tail(10, 1.0, 10) == 1.0
    assert bounds.binomial_tail(1, 0.3, 1) == pytest.approx(0.3, rel=1e-15)
    assert bounds.binomial_tail(10, 0.5, 10) == pytest.approx(2.0 ** -10, rel=1e-14)  # the top rank: p^m
    assert bounds.binomial_tail(10, 0.5, 1) == pytest.approx(1 - 2.0 ** -10, rel=1e-14)
    with pytest.raises(TypeError, match="k: received 1.5"):
        bounds.binomial_tail(10, 0.5, 1.5)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_probabilities_at_the_ends_of_the_unit_interval_are_accepted(p):
    assert bounds.quantile_level(p, 100, 0.1) == pytest.approx(p + math.sqrt(math.log(10) / 200))
    k = bounds.exact_rank(100, p, 0.1)
    assert (k == 1) if p == 0.0 else (k is None)
    paper = bounds.certification_rank(100, p, 0.1, "paper").rank
    assert paper == (bounds.order_rank(bounds.quantile_level(p, 100, 0.1), 100) if p == 0.0 else None)
    for bad in (-1e-9, 1 + 1e-9):
        with pytest.raises(ValueError, match="expected a probability in"):
            bounds.quantile_level(bad, 100, 0.1)


def test_the_papers_rank_caps_the_exact_one_whatever_the_exact_search_returns(monkeypatch):
    """The cap is a safety net for a numerically failed search: a rank from it never exceeds the paper's."""
    p = bounds.required_mass(0.05, 1.0, 1.0)
    paper = bounds.paper_rank(5000, p, 0.005)
    for broken in (None, 5000, paper + 1):
        monkeypatch.setattr(bounds, "bisect_rank", lambda m, p, alpha, _r=broken: _r)
        assert bounds.exact_rank(5000, p, 0.005) == paper
    monkeypatch.setattr(bounds, "bisect_rank", lambda m, p, alpha: paper - 7)
    assert bounds.exact_rank(5000, p, 0.005) == paper - 7


def test_clopper_pearson_lower_bound_by_definition():
    assert bounds.clopper_pearson_lower(0, 50, 0.05) == 0.0
    for count, n in [(1, 50), (25, 50), (50, 50), (480, 1000)]:
        lower = bounds.clopper_pearson_lower(count, n, 0.05)
        assert binom.sf(count - 1, n, lower) == pytest.approx(0.05, rel=1e-9)


@pytest.mark.parametrize("delta, alpha1", [(0.05, 0.005), (0.1, 0.2), (0.2, 0.05), (0.02, 0.01)])
def test_the_center_check_and_admissible_agree_on_every_n_near_the_edge(delta, alpha1):
    n0 = bounds.smallest_n(delta, alpha1)
    for n in range(max(1, n0 - 80), n0 + 20):
        check = bounds.center_check(n, n, delta, alpha1)  # every fresh sample inside: passes iff n admits delta
        assert (check.threshold is not None) == check.passed == bounds.admissible(n, delta, alpha1), n
        if check.threshold is not None:
            assert check.threshold <= n // 2 + 1


def test_smallest_n_is_the_start_of_the_last_run_of_admissible_n_by_a_full_scan():
    for delta in (0.03, 0.05, 0.08, 0.15, 0.3, 0.45):
        for alpha1 in (1e-6, 0.005, 0.05, 0.3):
            for rules in bounds.BOUNDS:
                n0 = bounds.smallest_n(delta, alpha1, rules)
                top = bounds.smallest_n(delta, alpha1, "paper") + 4  # from here on both rule sets admit
                ok = [bounds.admissible(n, delta, alpha1, rules) for n in range(1, top + 1)]
                last_bad = max([n for n, a in zip(range(1, top + 1), ok) if not a], default=0)
                assert n0 == last_bad + 1, (delta, alpha1, rules)


def test_plan_rows_by_definition():
    pl = bounds.plan(eps1=0.5, sigma=0.25, n=1000, m=10_000)
    assert pl.h == 2.0 and pl.p == bounds.required_mass(0.05, 2.0, 1.0)
    exact, paper = pl.row("exact"), pl.row("paper")
    assert (exact.n_admissible, paper.n_admissible) == (True, False)
    assert exact.rank == bounds.exact_rank(10_000, pl.p, 0.005) and exact.level == exact.rank / 10_000
    assert paper.rank == bounds.paper_rank(10_000, pl.p, 0.005) and paper.m_for_paper_level == 10_000
    assert exact.m_for_paper_level == bounds.m_for_level(paper.level, pl.p, 0.005) < 10_000
    assert bounds.level_at(exact.m_for_paper_level, pl.p, 0.005) <= paper.level
    assert "exact" in str(pl) and "9425" in str(pl)
    with pytest.raises(ValueError, match="h: received h together"):
        bounds.plan(2.0, eps1=0.5)
    with pytest.raises(ValueError, match="h: received None"):
        bounds.plan(eps1=0.5)


def test_require_certifiable_defaults_are_the_papers():
    assert bounds.require_certifiable(1000, 10_000, eps1=0.5, sigma=0.25).rank == \
        bounds.exact_rank(10_000, bounds.required_mass(0.05, 0.5, 0.25), 0.005)
    with pytest.raises(ValueError, match="^n: received 783"):
        bounds.require_certifiable(783, 10_000, eps1=0.5, sigma=0.25)
    with pytest.raises(ValueError, match="^m: received 313"):
        bounds.require_certifiable(1000, 313, eps1=0.5, sigma=0.25)


def test_a_tail_within_the_hair_below_alpha_is_refused():
    """TAIL_HAIR: a rank whose tail is below alpha by less than one part in 10^6 is not taken (the next one is)."""
    for m, p, k in [(2000, 0.9, 1830), (10 ** 6, 0.983, 983_500), (60, 0.5, 40)]:
        tail = bounds.binomial_tail(m, min(1.0, p + bounds.PROBABILITY_PAD), k)
        assert 1e-12 < tail < 0.5
        inside = tail * (1 + 0.5 * bounds.TAIL_HAIR)  # tail < alpha, but above alpha (1 - hair)
        clear = tail * (1 + 2 * bounds.TAIL_HAIR)  # tail below alpha (1 - hair)
        assert bounds.bisect_rank(m, p, inside) == k + 1 and bounds.bisect_rank(m, p, clear) == k
    # the same margin on Lemma 1: an n whose tail sits just inside alpha1/2 is not admitted
    n, delta = 700, 0.05
    tail = bounds.binomial_tail(n, 0.5 - delta + bounds.PROBABILITY_PAD, n // 2 + 1)
    assert bounds.smallest_n(delta, 2 * tail * (1 + 0.5 * bounds.TAIL_HAIR), "paper") > n  # no Hoeffding rescue
    assert not bounds.admissible(n, delta, 2 * tail * (1 + 0.5 * bounds.TAIL_HAIR))
    assert bounds.admissible(n, delta, 2 * tail * (1 + 2 * bounds.TAIL_HAIR))


def test_m_for_level_is_the_first_of_its_run():
    p = bounds.required_mass(0.05, 1.5, 1.0)
    for target_m in (1000, 2000, 10_000, 50_000):
        target = bounds.level_at(target_m, p, 0.005, "paper")
        m = bounds.m_for_level(target, p, 0.005)
        assert bounds.level_at(m, p, 0.005) <= target
        before = bounds.level_at(m - 1, p, 0.005)
        assert before is None or before > target
    assert bounds.m_for_level(p, p, 0.005) is None  # the level never reaches p itself
    with pytest.raises(TypeError, match="level: received None"):
        bounds.m_for_level(None, p, 0.005)


# Every public function refuses a probability or margin at the edge of its open interval (the
# smallest value a widened check would let through), naming the argument and the interval.
EDGE_CALLS = [
    ("alpha", 1.0, lambda v: bounds.exact_rank(100, 0.9, v)),
    ("alpha", 1.0, lambda v: bounds.clopper_pearson_lower(60, 100, v)),
    ("alpha1", 1.0, lambda v: bounds.lemma1_margin(100, v)),
    ("delta", 0.5, lambda v: bounds.paper_threshold(2000, v, 0.005)),
    ("delta", 0.5, lambda v: bounds.center_check(1500, 2000, v, 0.005)),
    ("alpha1", 1.0, lambda v: bounds.center_check(1500, 2000, 0.05, v)),
    ("alpha2", 1.0, lambda v: bounds.certification_rank(1000, 0.9, v)),
    ("alpha2", 1.0, lambda v: bounds.smallest_m(0.9, v)),
    ("delta", 0.5, lambda v: bounds.admissible(2000, v, 0.005)),
    ("alpha1", 1.0, lambda v: bounds.admissible(2000, 0.05, v)),
    ("delta", 0.5, lambda v: bounds.smallest_n(v, 0.005)),
    ("alpha1", 1.0, lambda v: bounds.smallest_n(0.05, v)),
    ("delta", 0.5, lambda v: bounds.require_certifiable(2000, 1000, 0.5, 0.25, delta=v)),
    ("alpha1", 1.0, lambda v: bounds.require_certifiable(2000, 1000, 0.5, 0.25, alpha1=v)),
    ("alpha2", 1.0, lambda v: bounds.require_certifiable(2000, 1000, 0.5, 0.25, alpha2=v)),
    ("delta", 0.5, lambda v: bounds.plan(2.0, delta=v)),
    ("alpha1", 1.0, lambda v: bounds.plan(2.0, alpha1=v)),
    ("alpha2", 1.0, lambda v: bounds.plan(2.0, alpha2=v)),
]


@pytest.mark.parametrize("name,edge,call", EDGE_CALLS, ids=[f"{i}-{c[0]}" for i, c in enumerate(EDGE_CALLS)])
def test_probabilities_and_margins_at_their_interval_edges_are_refused(name, edge, call):
    for value in (edge, 0.0, -edge):
        with pytest.raises(ValueError, match=rf"{name}: received .*open interval \(0\.0, {edge}\)"):
            call(value)
    with pytest.raises(ValueError, match=f"{name}: received nan; expected a finite number"):
        call(float("nan"))


def test_order_statistic_refuses_a_level_of_zero():
    with pytest.raises(ValueError, match="q: received 0.0"):
        bounds.order_statistic(np.arange(5.0), 0.0)
