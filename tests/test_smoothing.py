"""CenterSmoothing on toy models whose smoothed output is known."""

import numpy as np
import pytest
import torch

import cs_fast
from cs_fast import bounds


def box_model(batch):
    """A 2x2 box centred at the 2-D input (torch in, torch out)."""
    return torch.cat([batch - 1.0, batch + 1.0], dim=1)


def linear_model(batch):
    """numpy in, numpy out: a fixed linear map R^3 -> R^4."""
    W = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0], [0.3, 0.3, 0.3]])
    return batch @ W.T


def test_certificate_fields_and_guarantee_on_box_model():
    sm = cs_fast.CenterSmoothing(box_model, "jaccard", sigma=0.25, seed=1)
    x = torch.tensor([0.3, -0.2])
    cert = sm.certify(x, eps1=0.25, n=4000, m=20_000)
    assert not cert.abstained and cert.reason is None
    assert isinstance(cert.center, torch.Tensor) and cert.center.shape == (4,)
    assert cert.gamma == 1.0 and cert.beta == 2.0
    assert cert.eps_out == pytest.approx(3 * cert.R)
    assert cert.p == pytest.approx(bounds.required_mass(0.05, 0.25, 0.25))
    assert cert.bounds == "exact" and cert.q is None
    assert cert.delta1 == bounds.lemma1_margin(4000, 0.005)
    assert max(cert.delta1, cert.delta2) <= 0.05 and cert.count >= cert.threshold
    assert cert.rank == bounds.exact_rank(20_000, cert.p, 0.005) and cert.level == cert.rank / 20_000
    assert 0 <= cert.smoothing_error <= cert.eps_out
    paper = cs_fast.CenterSmoothing(box_model, "jaccard", sigma=0.25, seed=1, bounds="paper").certify(
        x, eps1=0.25, n=4000, m=20_000)
    assert paper.delta1 == pytest.approx(bounds.smoothing_margin(4000, 0.005))
    assert paper.q == pytest.approx(bounds.quantile_level(cert.p, 20_000, 0.005))
    assert paper.rank == bounds.order_rank(paper.q, 20_000) > cert.rank
    # the same samples ranked both ways: the exact R is never the larger
    assert torch.equal(paper.center, cert.center) and paper.count == cert.count and cert.R <= paper.R
    # The smoothed box of every perturbed input (eps1 away, several directions) stays within eps_out.
    rng = np.random.default_rng(0)
    for _ in range(4):
        direction = rng.standard_normal(2)
        x2 = x + torch.tensor(0.25 * direction / np.linalg.norm(direction), dtype=x.dtype)
        moved = cs_fast.CenterSmoothing(box_model, "jaccard", sigma=0.25, seed=2).smooth(x2, n=4000)
        assert not moved.abstained
        d = cs_fast.cdist(cert.center[None], moved.center[None], "jaccard")[0, 0]
        assert d <= cert.eps_out


def test_linear_model_smoothed_output_is_near_the_mean_and_certified():
    x = np.array([0.5, -1.0, 2.0])
    sm = cs_fast.CenterSmoothing(linear_model, "l2", sigma=0.1, seed=3)
    cert = sm.certify(x, eps1=0.1, n=4000, m=10_000, delta=0.1)
    assert isinstance(cert.center, np.ndarray)
    assert not cert.abstained
    # The center of a Gaussian cloud sits near its mean f(x): within a fraction of the cloud's scale.
    assert np.linalg.norm(cert.center - linear_model(x[None])[0]) < 0.15
    moved = cs_fast.CenterSmoothing(linear_model, "l2", sigma=0.1, seed=4).smooth(x + np.array([0.1, 0, 0]), n=4000, delta=0.1)
    assert not moved.abstained
    assert np.linalg.norm(moved.center - cert.center) <= cert.eps_out


def test_two_valued_model_smooths_to_the_majority_output():
    """f(x) is box A when x + noise > 0 else box B; at x = 0.5, sigma = 0.5 A has 84% of the mass."""
    A = torch.tensor([0.0, 0.0, 1.0, 1.0])
    B = torch.tensor([5.0, 5.0, 6.0, 6.0])

    def model(batch):
        return torch.where(batch[:, :1] > 0, A, B)

    res = cs_fast.CenterSmoothing(model, "jaccard", 0.5, seed=0).smooth(torch.tensor([0.5]), n=2000)
    assert not res.abstained and res.radius == 0.0
    assert torch.equal(res.center, A)


def test_same_seed_same_certificate_and_different_seed_differs():
    x = torch.tensor([0.0, 0.0])
    a = cs_fast.CenterSmoothing(box_model, "jaccard", 0.3, seed=7).certify(x, 0.2, n=2000, m=2000, delta=0.1)
    b = cs_fast.CenterSmoothing(box_model, "jaccard", 0.3, seed=7).certify(x, 0.2, n=2000, m=2000, delta=0.1)
    c = cs_fast.CenterSmoothing(box_model, "jaccard", 0.3, seed=8).certify(x, 0.2, n=2000, m=2000, delta=0.1)
    assert not a.abstained
    assert a.R == b.R and torch.equal(a.center, b.center) and a.delta2 == b.delta2
    assert a.R != c.R


def test_smooth_and_certify_agree_on_the_center():
    sm = cs_fast.CenterSmoothing(box_model, "jaccard", 0.3, seed=5)
    x = torch.tensor([1.0, 2.0])
    assert torch.equal(sm.smooth(x, n=2000, delta=0.1).center, sm.certify(x, 0.1, n=2000, m=1000, delta=0.1).center)


@pytest.mark.parametrize("rules, words", [("exact", "n too small for delta at alpha1"), ("paper", "delta1 = 0.2448")])
def test_smooth_abstains_and_certify_refuses_when_n_too_small_for_delta(rules, words):
    calls = []

    def model(b):
        calls.append(len(b))
        return box_model(b)

    sm = cs_fast.CenterSmoothing(model, "jaccard", 0.3, seed=0, bounds=rules)
    res = sm.smooth(torch.zeros(2), n=50)  # paper: delta1 = sqrt(ln(400)/100) = 0.245 > 0.05
    assert res.abstained and res.center is None and res.threshold is None
    assert words in res.reason and "delta = 0.05" in res.reason
    calls.clear()
    smallest = bounds.smallest_n(0.05, 0.005, rules)
    with pytest.raises(ValueError, match=rf"^n: received 50; with bounds='{rules}'.*Expected n >= {smallest}"):
        sm.certify(torch.zeros(2), 0.1, n=50, m=10_000)
    assert calls == []  # refused before any model call


def test_abstains_when_the_ball_does_not_hold_half_the_mass():
    """A model that drifts between the center sample and the check: the fresh sample misses the ball."""
    calls = []

    def drifting(batch):
        calls.append(len(batch))
        shift = 0.0 if sum(calls) <= 2000 else 100.0
        return torch.cat([batch - 1 + shift, batch + 1 + shift], dim=1)

    res = cs_fast.CenterSmoothing(drifting, "jaccard", 0.3, seed=0).smooth(torch.zeros(2), n=2000, delta=0.1)
    assert res.abstained and res.center is None and res.count == 0
    assert "0 of 2000 fresh samples" in res.reason and f"threshold {res.threshold}" in res.reason
    calls.clear()
    paper = cs_fast.CenterSmoothing(drifting, "jaccard", 0.3, seed=0, bounds="paper").smooth(
        torch.zeros(2), n=2000, delta=0.1)
    assert paper.abstained and "delta2" in paper.reason and "only 0.0000 of fresh samples" in paper.reason


def test_certify_refuses_an_m_that_cannot_certify_and_compare_bounds_says_why():
    sm = cs_fast.CenterSmoothing(box_model, "jaccard", 0.25, seed=0)
    with pytest.raises(ValueError, match=r"^m: received 300; .*p\^m > alpha2.*Expected m >= 314"):
        sm.certify(torch.zeros(2), eps1=0.5, n=2000, m=300)  # h = 2
    with pytest.raises(ValueError, match=r"^m: received 9000; with bounds='paper'.*q = .* > 1.*Expected m >= 9425"):
        cs_fast.CenterSmoothing(box_model, "jaccard", 0.25, seed=0, bounds="paper").certify(
            torch.zeros(2), eps1=0.5, n=2000, m=9000)
    both = sm.compare_bounds(torch.zeros(2), eps1=0.5, n=2000, m=9000)
    assert not both["exact"].abstained and both["exact"].rank < 9000
    paper = both["paper"]
    assert paper.abstained and paper.q > 1 and paper.eps_out is None and "q = " in paper.reason
    assert paper.center is not None and paper.smoothing_error == both["exact"].smoothing_error
    with pytest.raises(ValueError, match=r"^m: received 100; .*no m can"):  # p rounds to 1
        cs_fast.CenterSmoothing(box_model, "jaccard", 0.1, seed=0).compare_bounds(torch.zeros(2), 1.0, n=2000, m=100)


@pytest.mark.parametrize("seed", [4, 5])
def test_compare_bounds_equals_two_separate_runs_bit_for_bit(seed):
    x = torch.tensor([0.3, -0.2])
    both = cs_fast.CenterSmoothing(box_model, "jaccard", 0.25, seed=seed).compare_bounds(x, 0.3, n=2000, m=12_000)
    for rules, cert in both.items():
        alone = cs_fast.CenterSmoothing(box_model, "jaccard", 0.25, seed=seed, bounds=rules).certify(
            x, 0.3, n=2000, m=12_000)
        assert cert.to_dict() == alone.to_dict()
    exact, paper = both["exact"], both["paper"]
    assert exact.count == paper.count and exact.threshold < paper.threshold
    if seed == 4:  # 965 of 2000 within the radius: enough for the exact check (964), not the paper's (978)
        assert not exact.abstained and paper.abstained and "delta2" in paper.reason
    else:
        assert exact.R < paper.R


def test_squared_distance_gets_factor_ten():
    sm = cs_fast.CenterSmoothing(linear_model, "sqfeat", 0.1, seed=0)
    cert = sm.certify(np.zeros(3), 0.05, n=2000, m=5000, delta=0.1)
    assert not cert.abstained
    assert cert.gamma == 2.0 and cert.beta == 4.0
    assert cert.eps_out == pytest.approx(10 * cert.R)


def test_smooth_hd_candidates():
    sm = cs_fast.CenterSmoothing(linear_model, "l2", 0.1, seed=0, candidates=30)
    res = sm.smooth(np.zeros(3), n=2000, delta=0.1)
    exact = cs_fast.CenterSmoothing(linear_model, "l2", 0.1, seed=0).smooth(np.zeros(3), n=2000, delta=0.1)
    assert not res.abstained
    # The best of 30 candidates has a median radius at most twice the exact center's (beta = 2).
    assert exact.radius <= res.radius <= 2 * exact.radius


def test_progress_bar_reports_batches(capsys):
    sm = cs_fast.CenterSmoothing(box_model, "jaccard", 0.3, seed=0, progress=True, batch_size=100)
    sm.smooth(torch.zeros(2), n=300)
    assert "center samples" in capsys.readouterr().err


def test_batches_cover_exactly_n_samples():
    calls = []

    def counting(batch):
        calls.append(len(batch))
        return batch

    cs_fast.CenterSmoothing(counting, "l2", 0.1, seed=0, batch_size=64).smooth(np.zeros(2), n=150)
    assert calls == [64, 64, 22, 64, 64, 22]  # center sample, then mass-check sample


def test_returned_centers_are_copies_of_their_own():
    """A caller who edits a returned center changes neither what the smoother keeps nor another result."""
    def constant_model(batch):
        return np.zeros((len(batch), 4)) + 2.0

    sm = cs_fast.CenterSmoothing(constant_model, "l2", sigma=0.1, seed=3)
    x = np.array([0.5, -0.2, 1.0])
    stage = sm.certify_center(x, eps1=0.05, n=2000, m=20000)
    assert stage.certificate is None  # the check passed: the stage waits for its m distances
    kept = np.array(stage.center_sample)
    smoothed = sm.smooth(x, n=2000)
    results = sm.compare_bounds(x, eps1=0.05, n=2000, m=20000)
    a, b = results["exact"].center, results["paper"].center
    assert not np.shares_memory(a, b) and not np.shares_memory(a, stage.center_sample)
    a[...] = 1e9
    smoothed.center[...] = -1e9
    assert np.all(b == 2.0) and np.array_equal(stage.center_sample, kept)
