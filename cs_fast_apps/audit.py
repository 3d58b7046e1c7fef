r"""Audit certificates against real perturbations and attacks (``cs-fast audit``).

A certificate at ``x`` claims: with probability at least ``1 -
failure_probability`` over its sampling, every ``x'`` with :math:`\|x' -
x\|_2 \le \epsilon_1` has a smoothed output within ``eps_out`` of the
certified center. The audit tests the claim end to end, through the public
API only (:class:`cs_fast.CenterSmoothing`, :func:`cs_fast.paired`,
:func:`cs_fast.to_center`, :mod:`cs_fast.bounds`):

1. certify at ``x`` (fresh seed per trial);
2. for each perturbation kind, pick ``x'`` on the ``eps1`` ball and smooth
   there (fresh seed): a **violation** is :math:`d(c(x), c(x')) >
   \epsilon_{out}`. Kinds: ``random`` (a uniform direction), ``threshold``
   (a direction toward a decision threshold of the model, given per case),
   ``pgd`` (projected gradient ascent of the mean distance of :math:`f(x' +
   \text{noise})` to the certified center, with expectation over the Gaussian
   noise, through a differentiable surrogate of the base model);
3. **coverage**: the fraction of fresh samples :math:`f(x + \text{noise})`
   within ``R`` of the center, which must be at least
   :math:`p = \Phi(\Phi^{-1}(1/2 + \Delta) + \epsilon_1/\sigma)` for the
   ``eps1`` and ``sigma`` the audit perturbs with (the certificate's ball
   must hold that mass for the Gaussian-smoothing argument to cover
   ``eps1``).

Verdicts are one-sided binomial tests at 1 %: the number of certificates
with a violation (any kind) against the claimed failure probability, and
the pooled coverage count against ``p - alpha2`` (each certificate's ball
holds ``p`` except with probability ``alpha2``). A verdict ``FAIL`` on a
positive control (a case built to break a guarantee) means the audit
detected it, as it must.

The smoothing at ``x'`` has its own center check, which may fail with
probability ``alpha1``; the violation test nevertheless uses the
certificate's failure probability alone (stricter for cs_fast).
"""

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch
from scipy.stats import binomtest

from cs_fast import CenterSmoothing, paired, to_center
from cs_fast.bounds import required_mass
from .output_dir import fresh_output_dir

KINDS = ("random", "threshold", "pgd")
LEVEL = 0.01


@dataclass(frozen=True)
class AuditCase:
    """One row of the audit: a model, its metric and smoothing settings, its inputs.

    Parameters
    ----------
    name : str
    model : callable
        Batch of torch inputs -> batch of outputs.
    metric : str
    sigma, eps1 : float
        Noise and input radius, in the units the audit perturbs ``x`` in.
    inputs : list of torch.Tensor
    trials : int
        Certificates per input (each with fresh noise).
    kinds : tuple of str
        Perturbation kinds (see module docstring).
    threshold : callable, optional
        ``x -> direction`` toward a decision threshold of the model.
    surrogate : callable, optional
        Differentiable stand-in of ``model`` for ``pgd`` (default ``model``).
    units_scale : float
        1 for cs_fast. The authors' face units: the smoother is built on
        inputs multiplied by ``units_scale`` with ``sigma * units_scale``
        while ``eps1`` is passed unscaled (their face script with 255).
    claimed : float, optional
        The failure probability tested against; default the certificate's.
    control : bool
        A positive control: the audit must detect it (verdict FAIL).
    """

    name: str
    model: Callable
    metric: str
    sigma: float
    eps1: float
    inputs: list
    metric_params: dict = field(default_factory=dict)
    n: int = 1000
    m: int = 2000
    alpha1: float = 0.005
    alpha2: float = 0.005
    delta: float = 0.05
    candidates: Optional[int] = None
    allow_weak_candidates: bool = False
    trials: int = 5
    kinds: tuple = KINDS
    threshold: Optional[Callable] = None
    surrogate: Optional[Callable] = None
    units_scale: float = 1.0
    claimed: Optional[float] = None
    control: bool = False
    coverage_samples: int = 200
    pgd_steps: int = 10
    pgd_noise: int = 32
    batch_size: int = 1000
    note: str = ""


# ----------------------------------------------------------------------------- distances


def _torch_distance(metric, a, b, params):
    """Differentiable float distances of rows ``a`` to one output ``b`` (for PGD only)."""
    diff = a - b
    if metric == "l2":
        return diff.flatten(1).norm(dim=1)
    if metric == "l1":
        return diff.flatten(1).abs().sum(dim=1)
    if metric == "sqfeat":
        w = params.get("weights")
        sq = diff.flatten(1) ** 2
        return (sq * torch.as_tensor(np.asarray(w), dtype=sq.dtype)).sum(dim=1) if w is not None else sq.sum(dim=1)
    if metric == "tv":
        tv = (diff[..., 1:] - diff[..., :-1]).abs().flatten(1).sum(dim=1)
        if diff.ndim >= 3:
            tv = tv + (diff[..., 1:, :] - diff[..., :-1, :]).abs().flatten(1).sum(dim=1)
        return tv
    if metric == "jaccard":
        iw = (torch.minimum(a[:, 2], b[2]) - torch.maximum(a[:, 0], b[0])).clamp(min=0)
        ih = (torch.minimum(a[:, 3], b[3]) - torch.maximum(a[:, 1], b[1])).clamp(min=0)
        inter = iw * ih
        area = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
        union = area + (b[2] - b[0]).clamp(min=0) * (b[3] - b[1]).clamp(min=0) - inter
        return 1 - inter / union.clamp(min=1e-12)
    raise ValueError(f"metric: received {metric!r}; the PGD attack supports l2, l1, sqfeat, tv and jaccard")


def _numpy(v):
    return np.asarray(v.detach().cpu() if hasattr(v, "detach") else v)


def _distance(case, a, b):
    """float64 distance of two outputs, with cs_fast's kernels."""
    return float(paired(_numpy(a)[None], _numpy(b)[None], case.metric, **case.metric_params)[0])


# ----------------------------------------------------------------------------- perturbations


def _on_sphere(direction, eps1):
    norm = float(direction.norm())
    if norm == 0 or not math.isfinite(norm):
        raise ValueError("perturbation direction: received a zero or non-finite direction")
    return direction * (eps1 / norm)


def _pgd(case, x, center, gen):
    """PGD with expectation over the Gaussian noise, projected on the eps1 ball."""
    f = case.surrogate or case.model
    c = torch.as_tensor(_numpy(center)).to(x.dtype)
    delta = _on_sphere(torch.randn(x.shape, generator=gen, dtype=x.dtype), case.eps1)
    step = 2.5 * case.eps1 / case.pgd_steps
    for _ in range(case.pgd_steps):
        delta = delta.detach().requires_grad_(True)
        noise = case.sigma * torch.randn((case.pgd_noise,) + tuple(x.shape), generator=gen, dtype=x.dtype)
        loss = _torch_distance(case.metric, f(x + delta + noise).to(c.dtype), c, case.metric_params).mean()
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            g = grad.norm()
            if g > 0:
                delta = delta + step * grad / g
            n = float(delta.norm())
            if n > case.eps1:
                delta = delta * (case.eps1 / n)
    return x + delta.detach()


def _within(x, x2, eps1):
    """``x2`` pulled toward ``x`` until ``||x2 - x||`` (float64, after rounding to x's dtype) is at most eps1."""
    for _ in range(20):
        norm = float((x2.double() - x.double()).norm())
        if norm <= eps1:
            return x2
        x2 = (x.double() + (x2.double() - x.double()) * (eps1 / norm * (1 - 1e-6))).to(x.dtype)
    raise RuntimeError(f"perturbation: cannot round x' into the eps1 ball ({norm} > {eps1})")


def _perturb(case, kind, x, center, gen):
    """An ``x'`` with ``||x' - x||_2 <= eps1`` (on the sphere up to rounding) for one perturbation kind."""
    if kind == "random":
        x2 = x + _on_sphere(torch.randn(x.shape, generator=gen, dtype=x.dtype), case.eps1)
    elif kind == "threshold":
        x2 = x + _on_sphere(case.threshold(x).to(x.dtype), case.eps1)
    elif kind == "pgd":
        x2 = _pgd(case, x, center, gen)
    else:
        raise ValueError(f"kind: received {kind!r}; expected one of {KINDS}")
    return _within(x, x2, case.eps1)


# ----------------------------------------------------------------------------- one case


def _smoother(case, seed, bounds):
    s = case.units_scale
    model = case.model if s == 1.0 else (lambda b, _f=case.model, _s=s: _f(b / _s))
    return CenterSmoothing(model, case.metric, case.sigma * s, metric_params=case.metric_params,
                           batch_size=case.batch_size, seed=seed, candidates=case.candidates,
                           allow_weak_candidates=case.allow_weak_candidates, bounds=bounds)


def _coverage(case, x, cert, gen):
    """How many of ``coverage_samples`` fresh outputs at ``x`` lie within ``R`` of the center."""
    k = case.coverage_samples
    inside = 0
    for start in range(0, k, case.batch_size):
        b = min(case.batch_size, k - start)
        noise = torch.randn((b,) + tuple(x.shape), generator=gen, dtype=x.dtype)
        with torch.no_grad():
            out = case.model(x[None] + case.sigma * noise)
        d = to_center(_numpy(out), _numpy(cert.center), case.metric, **case.metric_params)
        inside += int(np.sum(np.asarray(d) <= cert.R))
    return inside


def run_case(case, root=None, index=0, progress=None, bounds="exact"):
    """Audit one case under the rule set ``bounds``; return its row (counts, rates, verdicts) as a JSON-ready dict."""
    root = np.random.SeedSequence().entropy if root is None else root
    start = time.perf_counter()
    s = case.units_scale
    p_claim = required_mass(case.delta, case.eps1, case.sigma)
    certified = abstained = vacuous = 0
    violations = {k: 0 for k in case.kinds}
    abstained_at = {k: 0 for k in case.kinds}
    any_violation = 0
    inside = samples = 0
    claimed = []
    worst = []
    for i, x in enumerate(case.inputs):
        x = torch.as_tensor(x)
        for t in range(case.trials):
            seeds = np.random.SeedSequence(root, spawn_key=(index, i, t)).spawn(2 + len(case.kinds))
            gen = torch.Generator().manual_seed(int(seeds[0].generate_state(1, np.uint64)[0] >> np.uint64(1)))
            cert = _smoother(case, seeds[1], bounds).certify(x * s, case.eps1, n=case.n, m=case.m, alpha1=case.alpha1,
                                                     alpha2=case.alpha2, delta=case.delta)
            if cert.abstained:
                abstained += 1
                continue
            certified += 1
            vacuous += cert.vacuous
            claimed.append(cert.failure_probability if case.claimed is None else case.claimed)
            if case.coverage_samples:
                inside += _coverage(case, x, cert, gen)
                samples += case.coverage_samples
            hit = False
            for kind, seed in zip(case.kinds, seeds[2:]):
                x2 = _perturb(case, kind, x, cert.center, gen)
                res = _smoother(case, seed, bounds).smooth(x2 * s, n=case.n, alpha1=case.alpha1, delta=case.delta)
                if res.abstained:
                    abstained_at[kind] += 1
                    continue
                d = _distance(case, cert.center, res.center)
                worst.append(d / cert.eps_out if cert.eps_out > 0 else (math.inf if d > 0 else 0.0))
                if d > cert.eps_out:
                    violations[kind] += 1
                    hit = True
            any_violation += hit
            if progress:
                progress(case.name, i, t)
    fp = max(claimed) if claimed else (case.claimed or float("nan"))
    p_viol = binomtest(any_violation, certified, fp, alternative="greater").pvalue if certified else 1.0
    p_cov = (binomtest(inside, samples, max(p_claim - case.alpha2, 0.0), alternative="less").pvalue
             if samples else 1.0)
    fail = p_viol < LEVEL or p_cov < LEVEL
    return {
        "case": case.name, "bounds": bounds, "metric": case.metric, "sigma": case.sigma, "eps1": case.eps1, "n": case.n,
        "m": case.m, "candidates": case.candidates, "units_scale": case.units_scale, "control": case.control,
        "inputs": len(case.inputs), "trials": case.trials, "certified": certified, "abstained": abstained,
        "vacuous": vacuous, "kinds": list(case.kinds), "violations": violations,
        "abstained_at_x2": abstained_at, "any_violation": any_violation,
        "violation_rate": any_violation / certified if certified else None,
        "failure_probability": fp, "p_value_violations": p_viol,
        "max_distance_over_eps_out": max(worst) if worst else None,
        "coverage_inside": inside, "coverage_samples": samples, "coverage": inside / samples if samples else None,
        "required_mass": p_claim, "p_value_coverage": p_cov,
        "verdict": "FAIL" if fail else "pass",
        "detected": (bool(fail) if case.control else None), "seconds": time.perf_counter() - start,
        "root_seed": root, "note": case.note,
    }


# ----------------------------------------------------------------------------- the models


def identity_case(size="full"):
    """The identity in l2, d = 8."""
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(8, generator=gen, dtype=torch.float64) for _ in range(2 if size == "small" else 3)]
    return AuditCase("identity / l2", lambda b: b, "l2", 0.5, 0.5, xs,
                     threshold=lambda x: x, trials=2 if size == "small" else 10,
                     n=300 if size == "small" else 1000, m=500 if size == "small" else 2000,
                     delta=0.15 if size == "small" else 0.1, note="threshold: radial")


JUMP = 1.5  # the box's jump (its side is 2): Jaccard distance 1 - 1/7 between the two positions


def threshold_box(b):
    """R^2 -> a 2x2 box that jumps right by 1.5 where x0 > 0 (Jaccard distance 6/7 across the threshold)."""
    s = JUMP * (b[:, 0] > 0).to(b.dtype)
    zero = torch.zeros_like(s)
    return torch.stack([s, zero, s + 2, zero + 2], dim=1)


def _soft_box(b):
    s = JUMP * torch.sigmoid(b[:, 0] / 0.05)
    zero = torch.zeros_like(s)
    return torch.stack([s, zero, s + 2, zero + 2], dim=1)


def box_case(size="full", units_scale=1.0, control=False):
    """The thresholded box model in jaccard; inputs below the threshold by 1.5, 1, 0.6, 0.3 sigma.

    The authors'-units control uses 1, 0.6, 0.5 sigma, where the ball of the
    small eps1 / (255 sigma) misses the jumped boxes that eps1 / sigma needs.
    """
    sigma = 0.4
    if control:
        offs = (1.0, 0.6) if size == "small" else (1.0, 0.6, 0.5)
    else:
        offs = (1.0, 0.3) if size == "small" else (1.5, 1.0, 0.6, 0.3)
    xs = [torch.tensor([-o * sigma, 0.0], dtype=torch.float64) for o in offs]
    name = "box threshold / jaccard" + (" (authors' units x255)" if units_scale != 1.0 else "")
    return AuditCase(name, threshold_box, "jaccard", sigma, 0.4, xs, threshold=lambda x: torch.tensor([1.0, 0.0]),
                     surrogate=_soft_box, units_scale=units_scale, control=control,
                     trials=3 if size == "small" else 10, n=400 if size == "small" else 1000,
                     m=1000 if size == "small" else 4000, delta=0.1,
                     note="threshold and PGD push x0 across 0, where the box jumps")


def sqfeat_case(size="full"):
    """x^2 features in sqfeat with weights."""
    gen = torch.Generator().manual_seed(2)
    xs = [torch.randn(6, generator=gen, dtype=torch.float64) for _ in range(2 if size == "small" else 3)]
    w = np.linspace(0.2, 2.0, 6)
    return AuditCase("x^2 features / sqfeat", lambda b: b ** 2, "sqfeat", 0.3, 0.3, xs, metric_params={"weights": w},
                     threshold=lambda x: x, trials=2 if size == "small" else 10, n=300 if size == "small" else 1000,
                     m=500 if size == "small" else 2000, delta=0.15 if size == "small" else 0.1,
                     note="threshold: radial (largest output change)")


def digits_case(size="full"):
    """The digits autoencoder in tv; the threshold direction points to another digit."""
    from cs_fast.models.digits import digits_data, load_digits_autoencoder

    model = load_digits_autoencoder()
    images, labels = digits_data("test", return_labels=True)
    count = 2 if size == "small" else 3
    xs = [images[i].double() for i in range(count)]
    others = {int(labels[i]): images[i].double() for i in range(len(labels) - 1, -1, -1)}

    def toward_other(x):
        i = next(j for j in range(count) if torch.equal(xs[j], x))
        label = int(labels[i])
        target = others[(label + 1) % 10] if (label + 1) % 10 in others else images[-1].double()
        return target - x

    def f(b):
        return model(b.float()).double()

    return AuditCase("digits autoencoder / tv", f, "tv", 0.5, 0.5, xs, threshold=toward_other,
                     trials=2 if size == "small" else 5, n=300 if size == "small" else 1000,
                     m=500 if size == "small" else 2000, delta=0.15 if size == "small" else 0.1,
                     batch_size=1000, note="threshold: toward a digit of the next class")


def outlier_model(b):
    """R^2 -> R^2: the input, moved by 10 in its second coordinate where frac(1000 x0) > 0.7 (30 % of the noise)."""
    jump = (torch.frac(1000.0 * b[:, 0].abs()) > 0.7).to(b.dtype)
    return torch.stack([b[:, 0], b[:, 1] + 10.0 * jump], dim=1)


def candidates_case(size="full", candidates=1):
    """Smooth-HD on a model whose single random candidate is an outlier 30 % of the time."""
    control = candidates < 7
    xs = [torch.tensor([0.0, 0.0], dtype=torch.float64), torch.tensor([1.0, -1.0], dtype=torch.float64)]
    # eps1 / sigma = 0.1 and delta = 0.05 keep q below the bulk's 70 %, so a bulk center gets a small R.
    return AuditCase(f"outliers / l2, candidates={candidates}", outlier_model, "l2", 0.5, 0.05, xs,
                     candidates=candidates, allow_weak_candidates=control, kinds=("random",),
                     claimed=0.01 if control else None, control=control,
                     trials=(20 if size == "small" else 30) if control else (3 if size == "small" else 10),
                     n=4000, m=1000 if size == "small" else 2000, delta=0.05,
                     note=("claimed: alpha1 + alpha2 without the 2^-k term" if control else
                           "the same model with enough candidates"))


def faces_case(size="full", units_scale=1.0):
    """MTCNN's top face box on the astronaut crop; threshold: toward a flat grey image (erasing the face).

    MTCNN takes tens of milliseconds per noisy image, so even the full table
    uses few samples (n = 100, m = 200, loose alpha1 and delta, h = 1/2) and
    one or two certificates. The authors'-units control is the paper's h = 2
    (eps1 = 0.5, sigma = 0.25) with alpha2 = 0.005: their ball is certified
    for eps1 / (255 sigma), so it holds far less than the mass p that eps1 /
    sigma = 2 needs.
    """
    from cs_fast.models.faces import TopFaceBox, astronaut, load_mtcnn

    detector = TopFaceBox(load_mtcnn(min_face_size=80))
    image = astronaut()
    authors = units_scale != 1.0
    name = "MTCNN faces / jaccard" + (" (authors' units x255)" if authors else "")
    small = size == "small"
    # h = 0.5, so that m = 200 certifies (q <= 1); the authors' units need no large m
    return AuditCase(name, detector, "jaccard", 0.25, 0.5 if authors else 0.125, [image],
                     threshold=lambda x: torch.full_like(x, 0.5) - x, kinds=("threshold",) if authors else ("random", "threshold"),
                     units_scale=units_scale, control=authors, trials=1 if small or authors else 2,
                     n=100, m=200, alpha1=0.05, alpha2=0.005 if authors else 0.05, delta=0.25,
                     coverage_samples=200 if authors else 50, batch_size=100,
                     note="no PGD: MTCNN's boxes go through NMS, not differentiable")


#: The audit table's cases, in order (:func:`build_cases`).
CASE_NAMES = ("identity", "box", "sqfeat", "digits", "faces", "candidates30", "control-candidates1",
              "control-box-authors-units", "control-faces-authors-units")


def build_cases(size="full", names=None):
    """The audit table's cases (``size='small'``: the tests' quick versions)."""
    makers = {
        "identity": lambda: identity_case(size),
        "box": lambda: box_case(size),
        "sqfeat": lambda: sqfeat_case(size),
        "digits": lambda: digits_case(size),
        "faces": lambda: faces_case(size),
        "candidates30": lambda: candidates_case(size, 30),
        "control-candidates1": lambda: candidates_case(size, 1),
        "control-box-authors-units": lambda: box_case(size, units_scale=255.0, control=True),
        "control-faces-authors-units": lambda: faces_case(size, units_scale=255.0),
    }
    assert tuple(makers) == CASE_NAMES  # one list of names: --cases offers these
    names = list(makers) if names is None else list(names)
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise ValueError(f"cases: received {unknown}; expected some of {list(makers)}")
    # Each case's seeds are keyed by its place in the full table, so a subset reproduces its rows.
    return [(list(makers).index(n), makers[n]()) for n in names], names


# ----------------------------------------------------------------------------- report


def format_table(rows):
    """The audit as a fixed-width text table."""
    head = (f"{'case':<46} {'cert':>4} {'abst':>4} {'vac':>3} {'violations (random/threshold/pgd)':>34} "
            f"{'rate':>6} {'claimed':>8} {'p':>8} {'coverage':>14} {'need':>6} {'verdict':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        v = "/".join(str(r["violations"].get(k, "-")) for k in KINDS)
        rate = "-" if r["violation_rate"] is None else f"{r['violation_rate']:.3f}"
        cov = "-" if r["coverage"] is None else f"{r['coverage_inside']}/{r['coverage_samples']}={r['coverage']:.2f}"
        verdict = r["verdict"] + (" (control: detected)" if r["control"] and r["detected"] else
                                  " (control: MISSED)" if r["control"] else "")
        lines.append(f"{r['case']:<46} {r['certified']:>4} {r['abstained']:>4} {r['vacuous']:>3} "
                     f"{v + ' of ' + str(r['certified']):>34} {rate:>6} {r['failure_probability']:>8.3g} "
                     f"{min(r['p_value_violations'], r['p_value_coverage']):>8.2g} {cov:>14} "
                     f"{r['required_mass']:>6.3f} {verdict}")
    lines.append("cert: certificates (one per trial, fresh noise); abst: abstained; vac: vacuous. Violation: "
                 "d(center(x), center(x')) > eps_out for an x' on the eps1 ball. rate: certificates with any "
                 "violation; claimed: the failure probability tested (one-sided binomial test at 1 %); p: the "
                 "smaller p-value of the violation and coverage tests. coverage: fresh samples at x within R; "
                 "need: p for the audited eps1/sigma (tested against need - alpha2).")
    return "\n".join(lines)


def plot(rows, path):
    """Violation rate vs claimed failure probability, and coverage vs required mass, per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.8), sharey=True)
    y = np.arange(len(rows))[::-1]
    names = [r["case"] for r in rows]
    def color(p):
        return "tab:red" if p < LEVEL else "tab:green"

    rates = [r["violation_rate"] or 0.0 for r in rows]
    a1.barh(y, [max(v, 1e-4) for v in rates], color=[color(r["p_value_violations"]) for r in rows], alpha=0.7)
    a1.scatter([r["failure_probability"] for r in rows], y, marker="|", s=300, color="k", label="claimed")
    a1.set_xscale("log")
    a1.set_xlim(1e-4, 1)
    a1.set_xlabel("violation rate (bar at 1e-4: none); |: claimed failure prob.", fontsize=8)
    a1.set_yticks(y)
    a1.set_yticklabels(names, fontsize=7)
    a1.legend(fontsize=7, loc="lower right")
    a2.barh(y, [r["coverage"] or 0.0 for r in rows], color=[color(r["p_value_coverage"]) for r in rows], alpha=0.7)
    a2.scatter([r["required_mass"] for r in rows], y, marker="|", s=300, color="k", label="required p")
    a2.set_xlim(0, 1.02)
    a2.set_xlabel("coverage: fresh samples at x within R; |: required mass p", fontsize=8)
    a2.legend(fontsize=7, loc="lower left")
    fig.suptitle("cs-fast audit: red = test fails at 1 % (expected on the positive controls, last three), "
                 "green = passes", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_audit(out=None, size="full", names=None, seed=None, stream=None, bounds="exact"):
    """Run the audit table and write ``audit.json``, ``table.txt`` and ``audit.png`` into ``out``.

    Parameters
    ----------
    out : str, optional
        Folder (default: a new ``cs_fast_audit_<time>`` folder).
    size : {'full', 'small'}
        The committed table, or the tests' quick versions.
    names : list of str, optional
        A subset of the cases (see :func:`build_cases`).
    seed : int, optional
        Root seed of every certificate's and smoothing's noise; None draws
        fresh entropy. Recorded in the result.
    stream : file-like, optional
        Where the progress lines and the table go (default stdout).
    bounds : {'exact', 'paper'}
        The rule set of every certificate and smoothing (:class:`cs_fast.CenterSmoothing`).

    Returns
    -------
    dict
        ``{"rows": [...], "seconds": ..., "seed": root seed, "size": size, "bounds": bounds}``.
    """
    stream = sys.stdout if stream is None else stream
    out = fresh_output_dir("audit") if out is None else out
    root = np.random.SeedSequence().entropy if seed is None else int(seed)
    cases, names = build_cases(size, names)
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    rows = []
    for name, (index, case) in zip(names, cases):
        row = run_case(case, root, index, bounds=bounds)
        rows.append(row)
        print(f"{row['case']}: {row['any_violation']}/{row['certified']} violated, coverage "
              f"{row['coverage']}, {row['verdict']} ({row['seconds']:.0f}s)", file=stream, flush=True)
    result = {"size": size, "seed": root, "bounds": bounds, "cases": names, "seconds": time.perf_counter() - start,
              "rows": rows, "certificates": sum(r["certified"] + r["abstained"] for r in rows),
              "command": f"cs-fast audit --size {size} --seed {root} --bounds {bounds} --out {out}"}
    table = format_table(rows)
    print(table, file=stream)
    print(f"{result['certificates']} certificates in {result['seconds']:.0f}s", file=stream)
    with open(os.path.join(out, "table.txt"), "w") as f:
        f.write(table + f"\n{result['certificates']} certificates in {result['seconds']:.0f}s\n")
    with open(os.path.join(out, "audit.json"), "w") as f:
        json.dump(result, f, indent=1)
    try:
        plot(rows, os.path.join(out, "audit.png"))
    except ImportError:
        print("matplotlib is not installed: no audit.png", file=stream)
    return result


def add_audit_arguments(parser):
    """The options of ``cs-fast audit``."""
    parser.add_argument("--size", choices=("full", "small"), default="full",
                        help="full: the committed table (about 15 minutes on 2 loaded cores); small: the tests' sizes")
    parser.add_argument("--cases", nargs="+", default=None, choices=CASE_NAMES, metavar="CASE",
                        help=f"a subset of the cases: {', '.join(CASE_NAMES)} (default: all)")
    parser.add_argument("--seed", type=int, default=None, help="root seed (default fresh entropy, recorded)")
    parser.add_argument("--out", default=fresh_output_dir("audit"),
                        help="folder for audit.json, table.txt, audit.png (default: a fresh "
                             "./cs_fast_audit_YYYYmmdd-HHMMSS/)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is faster on a loaded machine)")
    from .sweep import add_bounds_argument

    add_bounds_argument(parser)


def main_audit(args):
    """``cs-fast audit``: returns 0 when every sound case passes and every control is detected, else 1."""
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: received {args.threads}; expected a positive thread count")
        torch.set_num_threads(args.threads)
    result = run_audit(args.out, args.size, args.cases, args.seed, bounds=args.bounds)
    ok = all((r["verdict"] == "FAIL") if r["control"] else (r["verdict"] == "pass") for r in result["rows"])
    return 0 if ok else 1
