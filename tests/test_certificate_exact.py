"""Every quantity of a certificate, recomputed independently of the code under test.

The noise is drawn from the same seed streams as :class:`cs_fast.CenterSmoothing`
(``SeedSequence(seed).spawn(4)``: center sample, mass check, certification,
candidates; numpy noise from ``default_rng(stream)`` batch by batch). From there on
nothing of cs_fast is used: distances come from the formulas below, the center from a
full distance matrix and ``np.sort``, the bounds from scipy, the rank from the rule the
docs state. The cases keep eps_out well below the metric's largest value, so a wrong R
shows (an eps_out above 1 for a Jaccard distance would hold whatever R is).

The certificate fields are read through :func:`_field`, so the tests hold whether a
field sits on the certificate or on the smoothing result it carries.
"""

import json
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import beta as beta_dist
from scipy.stats import binom, norm

import cs_fast
from cs_fast import bounds
from cs_fast_apps import cli

ALPHA1 = ALPHA2 = 0.005
EPS = np.finfo(np.float64).eps


# ----------------------------------------------------------------------------- models


def box_model(x):
    """(b, 3) -> (b, 4) boxes whose corners move smoothly with the input."""
    x1 = x[:, 0]
    y1 = x[:, 1]
    return np.stack([x1, y1, x1 + 2.0 + 0.3 * x[:, 2], y1 + 1.5 - 0.2 * x[:, 2]], axis=1)


W_LIN = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0], [0.3, 0.3, 0.3], [0.0, -0.7, 0.4]])


def linear_model(x):
    return x @ W_LIN.T


def image_model(x):
    """(b, 6) -> (b, 1, 3, 4) images, so that tv sees rows and columns."""
    b = x.shape[0]
    grid = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    out = grid[None] * x[:, :1, None] + np.outer(x[:, 1:4].sum(axis=1), np.ones(12)).reshape(b, 3, 4) * 0.1
    out = out + np.tanh(x[:, 4:5, None]) * grid[None, ::-1]
    return out[:, None]


# ----------------------------------------------------------------------- distances


def jaccard_ref(A, B):
    ax1, ay1, ax2, ay2 = (A[:, None, k] for k in range(4))
    bx1, by1, bx2, by2 = (B[None, :, k] for k in range(4))
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0.0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0.0, None)
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return 1.0 - inter / union  # the models here never make an empty box


def l2_ref(A, B):
    A = A.reshape(len(A), -1)
    B = B.reshape(len(B), -1)
    return np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(axis=2))


def sqfeat_ref(weights):
    def d(A, B):
        A = A.reshape(len(A), -1)
        B = B.reshape(len(B), -1)
        return (weights * (A[:, None, :] - B[None, :, :]) ** 2).sum(axis=2)

    return d


def tv_ref(A, B):
    """Total variation of each difference image: all vertical and horizontal neighbours, l1 over channels."""
    out = np.empty((len(A), len(B)))
    for i in range(len(A)):
        diff = A[i][None] - B  # (nb, C, H, W)
        out[i] = (np.abs(np.diff(diff, axis=2)).sum(axis=(1, 2, 3))
                  + np.abs(np.diff(diff, axis=3)).sum(axis=(1, 2, 3)))
    return out


def dist_matrix(dist, A, B, block=500):
    return np.concatenate([dist(A[i:i + block], B) for i in range(0, len(A), block)], axis=0)


# ----------------------------------------------------------------------- reference


def draw(model, x, sigma, count, stream, batch_size):
    """The model's outputs on ``count`` noisy copies of ``x``, drawn as CenterSmoothing draws them."""
    rng = np.random.default_rng(stream)
    outs = []
    done = 0
    while done < count:
        b = min(batch_size, count - done)
        noise = rng.standard_normal((b,) + x.shape).astype(x.dtype, copy=False)
        outs.append(model(x[None] + sigma * noise))
        done += b
    return np.concatenate(outs, axis=0)


def lower_median_rows(D):
    k = (D.shape[1] + 1) // 2  # the ceil(n/2)-th smallest, itself included
    return np.sort(D, axis=1)[:, k - 1]


def rank_rule(q, m):
    """The documented rank: ceil(q m) of the float q, one more where q m is within a few ulps of an integer."""
    exact = math.ceil(q * m)
    nearest = round(q * m)
    if abs(q * m - nearest) <= 8 * EPS * max(1.0, abs(q * m)):
        exact = nearest + 1
    return max(1, min(m, exact))


def exact_tail_rank(m, p, alpha):
    """The smallest k with P(Binomial(m, p) >= k) <= alpha, from scipy.stats.binom by a scan (None: none)."""
    if p ** m > alpha:
        return None
    k = max(1, int(m * p))
    while k > 1 and binom.sf(k - 2, m, p) <= alpha:
        k -= 1
    while binom.sf(k - 1, m, p) > alpha:
        k += 1
    return k


def exact_check(count, n, delta):
    """(passed, threshold, delta1, delta2) of the exact center check, from scipy.stats alone."""
    half = -(-n // 2)
    admissible = binom.cdf(half - 1, n, 0.5 + delta) <= ALPHA1 / 2
    delta1 = brentq(lambda d: binom.cdf(half - 1, n, 0.5 + d) - ALPHA1 / 2, 0.0, 0.5, xtol=1e-15) if n > 1 else None
    threshold = exact_tail_rank(n, 0.5 - delta, ALPHA1 / 2) if admissible else None
    lower = 0.0 if count == 0 else beta_dist.ppf(ALPHA1 / 2, count, n - count + 1)
    return admissible and count >= threshold, threshold, delta1, 0.5 - lower


def reference(model, dist, gamma, x, sigma, eps1, n, m, seed, delta, batch_size=1000, candidates=None,
              rules="paper"):
    """Every quantity of the certificate, from the definitions, under the paper's or the exact rules."""
    streams = np.random.SeedSequence(seed).spawn(4)
    Z = draw(model, x, sigma, n, streams[0], batch_size)
    if candidates is None:
        meds = lower_median_rows(dist_matrix(dist, Z, Z))
        pool = Z
    else:
        pool = draw(model, x, sigma, candidates, streams[3], batch_size)
        meds = lower_median_rows(dist_matrix(dist, pool, Z))
    order = np.argsort(meds, kind="stable")
    index = int(order[0])
    # the recomputation is only meaningful if the winner is not a rounding-level tie
    assert meds[order[1]] - meds[order[0]] > 1e-9 * max(1.0, meds[order[0]])
    center = pool[index]
    radius = float(meds[index])
    fresh = dist(draw(model, x, sigma, n, streams[1], batch_size), center[None])[:, 0]
    # no fresh distance may sit at the radius within rounding, or the count would be ambiguous
    assert np.min(np.abs(fresh - radius)) > 1e-9 * max(1.0, radius)
    count = int(np.sum(fresh <= radius))
    p = float(norm.cdf(norm.ppf(0.5 + delta) + eps1 / sigma))
    if rules == "paper":
        delta1 = math.sqrt(math.log(2.0 / ALPHA1) / (2.0 * n))
        delta2 = 0.5 - (count / n - delta1)
        q = p + math.sqrt(math.log(1.0 / ALPHA2) / (2.0 * m))
        passed = max(delta1, delta2) <= delta
        rank = rank_rule(q, m) if q <= 1.0 else None
        threshold = None
    else:
        passed, threshold, delta1, delta2 = exact_check(count, n, delta)
        q = None
        rank = exact_tail_rank(m, p, ALPHA2)
    out = dict(center=center, radius=radius, count=count, delta1=delta1, delta2=delta2, p=p, q=q,
               threshold=threshold, abstained=not passed or rank is None)
    if out["abstained"]:
        return out
    cert_d = np.sort(dist(draw(model, x, sigma, m, streams[2], batch_size), center[None])[:, 0])
    R = float(cert_d[rank - 1])
    # neighbouring order statistics are far apart: a rank off by one cannot pass as rounding
    for other in (rank - 2, rank):
        if 0 <= other < m:
            assert abs(cert_d[other] - R) > 1e-9 * max(R, 1e-300)
    out.update(rank=rank, level=rank / m, R=R, eps_out=gamma * (1.0 + 2.0 * gamma) * R,
               smoothing_error=float(dist(model(x[None]), center[None])[0, 0]),
               plain_median=float(np.median(cert_d)))
    return out


def _field(obj, name):
    if hasattr(obj, name):
        return getattr(obj, name)
    for inner in vars(obj).values():  # a certificate that holds its smoothing result
        if hasattr(inner, name) and not isinstance(inner, np.ndarray):
            return getattr(inner, name)
    raise AttributeError(name)


def assert_matches(cert, ref, rel=1e-12):
    assert _field(cert, "abstained") == ref["abstained"]
    assert np.array_equal(np.asarray(_field(cert, "center")), ref["center"])
    assert _field(cert, "radius") == pytest.approx(ref["radius"], rel=rel, abs=1e-15)
    assert _field(cert, "count") == ref["count"]
    if _field(cert, "bounds") == "exact":
        assert _field(cert, "threshold") == ref["threshold"]
        assert _field(cert, "delta1") == pytest.approx(ref["delta1"], rel=1e-9)
        assert _field(cert, "delta2") == pytest.approx(ref["delta2"], rel=1e-9)
        assert cert.q is None
    else:
        assert _field(cert, "delta1") == pytest.approx(ref["delta1"], rel=1e-14)
        # delta2 = 1/2 - (count/n - delta1): equal to the last bits means the same count
        assert _field(cert, "delta2") == pytest.approx(ref["delta2"], rel=1e-12, abs=1e-14)
        assert cert.q == pytest.approx(ref["q"], rel=1e-14)
    assert cert.p == pytest.approx(ref["p"], rel=1e-14)
    assert cert.rank == ref["rank"] and cert.level == ref["rank"] / cert.m
    assert cert.R == pytest.approx(ref["R"], rel=rel, abs=1e-15)
    assert cert.eps_out == pytest.approx(ref["eps_out"], rel=rel, abs=1e-15)
    assert cert.smoothing_error == pytest.approx(ref["smoothing_error"], rel=rel, abs=1e-15)
    # the certified radius is a high quantile, never the median of the certification distances
    assert cert.R > ref["plain_median"] * (1 + 1e-6)


# -------------------------------------------------------------------------- cases

X3 = np.array([0.3, -0.2, 0.1])
X6 = np.array([0.8, 0.1, -0.3, 0.2, 0.5, -0.1])
WEIGHTS = np.array([0.5, 1.0, 2.0, 0.25, 1.5])

CASES = {
    # name: (model, metric, params, reference distance, gamma, x, sigma, eps1, metric maximum)
    "jaccard": (box_model, "jaccard", {}, jaccard_ref, 1.0, X3, 0.05, 0.03, 1.0),
    "l2": (linear_model, "l2", {}, l2_ref, 1.0, X3, 0.1, 0.05, None),
    "tv": (image_model, "tv", {}, tv_ref, 1.0, X6, 0.1, 0.05, None),
    "sqfeat": (linear_model, "sqfeat", {"weights": WEIGHTS}, sqfeat_ref(WEIGHTS), 2.0, X3, 0.1, 0.05, None),
}


def _smoother(name, seed, **kw):
    model, metric, params, _, _, _, sigma, _, _ = CASES[name]
    return cs_fast.CenterSmoothing(model, metric, sigma, metric_params=params, seed=seed, **kw)


@pytest.mark.parametrize("rules", ["exact", "paper"])
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("n", [1000, 1001])  # even n: the lower median is the n/2-th smallest
def test_certificate_equals_independent_recomputation(name, n, rules):
    model, _, _, dist, gamma, x, sigma, eps1, top = CASES[name]
    m = 20_000
    seed = 100 + n
    cert = _smoother(name, seed, bounds=rules).certify(x, eps1, n=n, m=m, alpha1=ALPHA1, alpha2=ALPHA2, delta=0.1)
    ref = reference(model, dist, gamma, x, sigma, eps1, n, m, seed, delta=0.1, rules=rules)
    assert not ref["abstained"]
    assert cert.bounds == rules
    assert_matches(cert, ref)
    assert cert.gamma == gamma and cert.beta == 2 * gamma
    if top is not None:  # a non-vacuous certificate, so that R is what is being tested
        assert cert.eps_out < 0.5 * top


@pytest.mark.parametrize("rules", ["exact", "paper"])
@pytest.mark.parametrize("name", ["jaccard", "sqfeat"])
def test_smooth_hd_certificate_equals_independent_recomputation(name, rules):
    model, _, _, dist, gamma, x, sigma, eps1, _ = CASES[name]
    n, m, k, seed = 800, 10_000, 30, 7
    cert = _smoother(name, seed, candidates=k, bounds=rules).certify(x, eps1, n=n, m=m, alpha1=ALPHA1,
                                                                      alpha2=ALPHA2, delta=0.1)
    ref = reference(model, dist, gamma, x, sigma, eps1, n, m, seed, delta=0.1, candidates=k, rules=rules)
    assert_matches(cert, ref)


@pytest.mark.parametrize("rules", ["exact", "paper"])
def test_smooth_result_equals_independent_recomputation(rules):
    model, _, _, dist, gamma, x, sigma, _, _ = CASES["l2"]
    res = _smoother("l2", 11, bounds=rules).smooth(x, n=999, alpha1=ALPHA1, delta=0.1)
    ref = reference(model, dist, gamma, x, sigma, 0.0, 999, 1000, 11, delta=0.1, rules=rules)
    assert not res.abstained and res.bounds == rules
    assert np.array_equal(res.center, ref["center"])
    assert res.radius == pytest.approx(ref["radius"], rel=1e-12)
    assert res.count == ref["count"]
    assert res.delta1 == pytest.approx(ref["delta1"], rel=1e-9 if rules == "exact" else 1e-14)
    assert res.delta2 == pytest.approx(ref["delta2"], rel=1e-9 if rules == "exact" else 1e-12, abs=1e-14)


def test_abstention_threshold_is_max_of_delta1_delta2_by_value():
    """Paper rules: abstain exactly when max(delta1, delta2) > delta: delta just above and just below that value."""
    model, _, _, dist, gamma, x, sigma, eps1, _ = CASES["l2"]
    n, m, seed = 1000, 2000, 3
    ref = reference(model, dist, gamma, x, sigma, eps1, n, m, seed, delta=0.2)
    worst = max(ref["delta1"], ref["delta2"])
    assert 0.0 < worst < 0.2
    above = _smoother("l2", seed, bounds="paper").certify(x, eps1, n=n, m=m, delta=worst * (1 + 1e-9))
    below = _smoother("l2", seed, bounds="paper").certify(x, eps1, n=n, m=m, delta=worst * (1 - 1e-9))
    assert not above.abstained and above.R is not None
    assert below.abstained and below.R is None and below.eps_out is None
    assert "delta" in below.reason


def test_exact_check_passes_at_its_threshold_and_fails_one_below():
    """Exact rules: a delta whose threshold is exactly the observed count passes; the next one down fails."""
    model, _, _, dist, gamma, x, sigma, eps1, _ = CASES["l2"]
    n, m, seed = 1000, 2000, 3
    count = reference(model, dist, gamma, x, sigma, eps1, n, m, seed, delta=0.2, rules="exact")["count"]
    # the deltas at which the threshold steps onto and just past the count
    deltas = np.linspace(0.02, 0.3, 2801)
    thresholds = [exact_tail_rank(n, 0.5 - d, ALPHA1 / 2) for d in deltas]
    at = float(deltas[[i for i, t in enumerate(thresholds) if t == count][-1]])
    above = float(deltas[[i for i, t in enumerate(thresholds) if t == count + 1][0]])
    ok = _smoother("l2", seed).certify(x, eps1, n=n, m=m, delta=at)
    bad = _smoother("l2", seed).certify(x, eps1, n=n, m=m, delta=above)
    assert ok.threshold == count and not ok.abstained
    assert bad.threshold == count + 1 and bad.abstained and bad.R is None
    assert f"{count} of {n} fresh samples" in bad.reason and f"threshold {count + 1}" in bad.reason


@pytest.mark.parametrize("rules", ["exact", "paper"])
def test_m_just_enough_certifies_with_the_top_rank_and_one_less_is_refused(rules):
    """The smallest m that certifies gives the largest distance (rank m); one sample fewer is refused up front."""
    model, _, _, dist, gamma, x, sigma, _, _ = CASES["l2"]
    n, seed, delta, eps1 = 1000, 5, 0.1, 0.2
    p = float(norm.cdf(norm.ppf(0.5 + delta) + eps1 / sigma))
    if rules == "paper":
        m = math.ceil(math.log(1.0 / ALPHA2) / (2.0 * (1.0 - p) ** 2))  # q <= 1 from here on
    else:
        m = math.ceil(math.log(ALPHA2) / math.log(p))  # p^m <= alpha2 from here on
    ok = _smoother("l2", seed, bounds=rules).certify(x, eps1, n=n, m=m, delta=delta)
    ref = reference(model, dist, gamma, x, sigma, eps1, n, m, seed, delta=delta, rules=rules)
    assert not ok.abstained and ok.rank == ref["rank"] == m
    assert ok.R == pytest.approx(ref["R"], rel=1e-12)
    calls = []

    def counted(b):
        calls.append(len(b))
        return model(b)

    smoother = cs_fast.CenterSmoothing(counted, "l2", sigma, seed=seed, bounds=rules)
    with pytest.raises(ValueError, match=rf"^m: received {m - 1}; .*Expected m >= {m}"):
        smoother.certify(x, eps1, n=n, m=m - 1, delta=delta)
    assert calls == []  # refused before any model call


# ----------------------------------------------------------------------- ranks by value


@pytest.mark.parametrize("q, m, rank", [
    (0.51, 10, 6),  # 5.1 -> 6
    (0.49, 10, 5),  # 4.9 -> 5
    (0.5, 10, 6),  # q m = 5 exactly: one more, conservatively
    (0.3, 10, 4),  # float 0.3 * 10 rounds to 3.0 exactly: 4
    (0.29, 100, 30),  # float 0.29 * 100 = 28.999999999999996, 1 ulp below 29: 30
    (0.57, 100, 58),  # 56.99999999999999: 58
    (0.8715276, 1_000_000, 871528),  # 871527.6: plain ceiling
    (1.0 / 3.0, 3, 2),  # float 1/3 * 3 = 1.0: 2
    (1.0, 7, 7),  # clipped to m
    (1e-9, 1000, 1),  # at least 1
    (0.999, 1000, 1000),  # 999.0 exactly -> 1000
    (0.9985, 1000, 999),  # 998.5 -> 999
])
def test_order_rank_by_value(q, m, rank):
    assert bounds.order_rank(q, m) == rank
    assert rank_rule(q, m) == rank  # the reference rule of this file says the same


def test_order_statistic_by_value_on_the_boundary():
    d = np.arange(1.0, 11.0)[::-1].copy()  # 10..1, unsorted for the selection
    assert bounds.order_statistic(d, 0.5) == 6.0  # rank 6 (q m = 5 is an integer)
    assert bounds.order_statistic(d, 0.49) == 5.0
    assert bounds.order_statistic(d, 0.51) == 6.0
    assert bounds.order_statistic(d, 0.1) == 2.0  # 0.1 * 10 = 1.0 -> rank 2
    assert bounds.order_statistic(d, 0.05) == 1.0


# ------------------------------------------------------------------ the other front doors


def test_compat_certificate_equals_independent_recomputation():
    from cs_fast.compat import Smooth, l2_dist

    model, _, _, dist, gamma, x, sigma, eps1, _ = CASES["l2"]
    n, m, seed = 1000, 20_000, 21
    for rules in ("exact", "paper"):
        shim = Smooth(model, l2_dist, sigma, n_pred=n, n_cert=m, delta=0.1, seed=seed, bounds=rules)
        eps_out, error = shim.certify(x, eps1)
        ref = reference(model, dist, gamma, x, sigma, eps1, n, m, seed, delta=0.1, rules=rules)
        assert eps_out == pytest.approx(ref["eps_out"], rel=1e-12)
        assert error == pytest.approx(ref["smoothing_error"], rel=1e-12)
        assert shim.bounds == rules and shim.last_certificate.bounds == rules


@pytest.mark.parametrize("rules", ["exact", "paper"])
def test_cli_certificate_equals_independent_recomputation(tmp_path, capsys, monkeypatch, rules):
    model, _, _, dist, gamma, _, sigma, eps1, _ = CASES["jaccard"]
    inputs = np.stack([X3, X3 + 0.5])
    np.save(tmp_path / "x.npy", inputs)
    (tmp_path / "cert_exact_model.py").write_text(
        "import numpy as np\n"
        "def boxes(x):\n"
        "    x = np.asarray(x)\n"
        "    x1, y1 = x[:, 0], x[:, 1]\n"
        "    return np.stack([x1, y1, x1 + 2.0 + 0.3 * x[:, 2], y1 + 1.5 - 0.2 * x[:, 2]], axis=1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out.jsonl"
    n, m, seed = 1000, 20_000, 9
    rc = cli.main(["certify", "--model", "cert_exact_model:boxes", "--inputs", str(tmp_path / "x.npy"),
                   "--metric", "jaccard", "--sigma", str(sigma), "--eps1", str(eps1), "--n", str(n),
                   "--m", str(m), "--delta", "0.1", "--seed", str(seed), "--output", str(out), "--bounds", rules])
    assert rc == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["input"] for r in rows] == [0, 1]
    # the CLI's inputs arrive as torch tensors: draw the reference noise the same way
    import torch

    from cs_fast.seeds import input_seed

    for i, (row, x) in enumerate(zip(rows, inputs)):
        # the one seed rule: input i draws from input_seed(--seed, i)
        ref = reference_torch(model, dist, gamma, torch.from_numpy(x), sigma, eps1, n, m, input_seed(seed, i),
                              delta=0.1, rules=rules)
        assert not row["abstained"] and row["bounds"] == rules and row["rank"] == ref["rank"]
        assert row["R"] == pytest.approx(ref["R"], rel=1e-12)
        assert row["eps_out"] == pytest.approx(ref["eps_out"], rel=1e-12)
        assert row["eps_out"] < 0.5
        cert = cs_fast.Certificate.from_dict({k: v for k, v in row.items() if k != "input"})
        assert np.array_equal(np.asarray(cert.center), ref["center"])
        assert cert.R == row["R"] and cert.seed == input_seed(seed, i) and row["run_seed"] == seed


def reference_torch(model, dist, gamma, x, sigma, eps1, n, m, seed, delta, batch_size=1000, rules="paper"):
    """:func:`reference` for a torch input: torch noise from the stream's first 64 bits, batch by batch."""
    import torch

    def torch_draw(count, stream):
        gen = torch.Generator()
        gen.manual_seed(int(stream.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))
        outs = []
        done = 0
        while done < count:
            b = min(batch_size, count - done)
            noise = torch.randn((b,) + tuple(x.shape), generator=gen, dtype=x.dtype)
            outs.append(np.asarray(model((x.unsqueeze(0) + sigma * noise).numpy())))
            done += b
        return np.concatenate(outs, axis=0)

    streams = np.random.SeedSequence(seed).spawn(4)
    Z = torch_draw(n, streams[0])
    meds = lower_median_rows(dist_matrix(dist, Z, Z))
    center = Z[int(np.argmin(meds))]
    p = float(norm.cdf(norm.ppf(0.5 + delta) + eps1 / sigma))
    q = p + math.sqrt(math.log(1.0 / ALPHA2) / (2.0 * m))
    rank = rank_rule(q, m) if rules == "paper" else exact_tail_rank(m, p, ALPHA2)
    cert_d = np.sort(dist(torch_draw(m, streams[2]), center[None])[:, 0])
    R = float(cert_d[rank - 1])
    return dict(center=center, R=R, rank=rank, eps_out=gamma * (1.0 + 2.0 * gamma) * R)


# ----------------------------------------------------------------- selection and reporting


def test_lower_median_and_order_statistic_are_the_exact_order_statistics_on_any_order():
    """Random orders and ties: a selection that reads one position past the partition point would show."""
    from cs_fast.bindings.backend import HOST

    rng = np.random.default_rng(5)
    for trial in range(300):
        size = int(rng.integers(1, 60))
        d = rng.integers(0, max(2, size // 2), size).astype(np.float64) + rng.random(size) * (trial % 2)
        k = (size + 1) // 2
        assert HOST.lower_median(d.copy()) == np.sort(d)[k - 1]
        q = float(rng.uniform(0.01, 1.0))
        assert bounds.order_statistic(d.copy(), q) == np.sort(d)[bounds.order_rank(q, size) - 1]


def test_vacuous_from_equality_on():
    import dataclasses

    model, _, _, _, _, x, sigma, eps1, top = CASES["jaccard"]
    cert = _smoother("jaccard", 3).certify(x, eps1, n=400, m=2000, delta=0.2, alpha1=0.05, alpha2=0.05)
    assert not cert.abstained and not cert.vacuous
    assert dataclasses.replace(cert, eps_out=top).vacuous  # eps_out = the largest distance: says nothing
    assert not dataclasses.replace(cert, eps_out=np.nextafter(top, 0.0)).vacuous


def test_weak_candidates_message_names_the_smallest_sufficient_k():
    with pytest.raises(ValueError, match=r"candidates >= 7 \(the paper uses 30\)"):
        _smoother("l2", 0, candidates=6).certify(X3, 0.05, n=400, m=2000)
    with pytest.raises(ValueError, match=r"candidates >= 5 "):
        _smoother("l2", 0, candidates=4).certify(X3, 0.05, n=400, m=2000, alpha1=0.02, alpha2=0.02)
