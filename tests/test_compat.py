"""The authors' Smooth interface and dist_fn signature on cs_fast's kernels."""

import numpy as np
import pytest
import torch

import cs_fast
from cs_fast import compat
from cs_fast.metrics import get_metric


def authors_meb(samples, dist_fn):
    """Their row-by-row center search, with the lower median (our documented semantics)."""
    best, center = np.inf, None
    n = len(samples)
    for i in range(n):
        d = np.asarray(dist_fn(samples, samples[i].repeat(n, *[1] * (samples.ndim - 1))))
        med = np.sort(d)[(n + 1) // 2 - 1]
        if med < best:
            best, center = med, samples[i]
    return center, best


@pytest.mark.parametrize("name, data", [
    ("jaccard_dist", lambda g: torch.cat([g, g + 1 + torch.rand_like(g)], dim=1)),
    ("tv_dist", lambda g: g.reshape(-1, 1, 2, 1).repeat(1, 3, 2, 4)),
    ("l2_dist", lambda g: g),
])
def test_dist_fn_is_rowwise_and_meb_matches_row_loop(name, data):
    g = torch.Generator().manual_seed(0)
    samples = data(torch.rand(40, 2, generator=g))
    dist_fn = getattr(compat, name)
    d = dist_fn(samples, samples.flip(0))
    assert isinstance(d, torch.Tensor) and d.shape == (40,)
    ref = get_metric(dist_fn.metric).reference(samples.numpy(), samples.flip(0).numpy(), {})
    np.testing.assert_allclose(d.numpy(), np.diag(ref), rtol=1e-5, atol=1e-6)
    center, radius = compat.meb(samples, dist_fn)
    ref_center, ref_radius = authors_meb(samples, dist_fn)
    assert torch.equal(center, ref_center) and radius == pytest.approx(ref_radius, rel=1e-6)


def test_paired_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="XB: received 3 rows but XA has 4"):
        cs_fast.bindings.distance.paired(np.zeros((4, 2)), np.zeros((3, 2)), "l2")


def test_smooth_certify_follows_their_convention():
    def model(b):
        return torch.cat([b - 1, b + 1], dim=1)

    sm = compat.Smooth(model, compat.jaccard_dist, sigma=0.25, n_pred=2000, n_cert=5000, delta=0.1, seed=0)
    eps_out, err = sm.certify(torch.zeros(2), eps_in=0.25)
    assert eps_out == pytest.approx(sm.last_certificate.eps_out) and eps_out > 0 and err >= 0
    assert sm.bounds == "exact" == sm.last_certificate.bounds
    # a center check that fails: their -1.0, and the reason on the full certificate
    seen = []

    def drifting(b):  # the check's sample lands far from the center's
        seen.append(len(b))
        return model(b) + (0.0 if sum(seen) <= 2000 else 50.0)

    drift = compat.Smooth(drifting, compat.jaccard_dist, sigma=0.25, n_pred=2000, n_cert=5000, delta=0.1, seed=0)
    assert drift.certify(torch.zeros(2), eps_in=0.25)[0] == -1.0
    assert "center check failed" in drift.last_certificate.reason
    # an n that can never certify is refused before any model call, naming their argument's value
    small = compat.Smooth(model, compat.jaccard_dist, sigma=0.25, n_pred=50, n_cert=100, seed=0)
    with pytest.raises(ValueError, match="^n: received 50"):
        small.certify(torch.zeros(2), eps_in=0.25)
    center, good = sm.compute_center(torch.zeros(2))
    assert good and center.shape == (4,)


def test_smooth_rejects_wrong_radius_coeff_and_python_dist_fn():
    with pytest.raises(ValueError, match="radius_coeff: received 3.*10"):
        compat.Smooth(lambda b: b, compat.sqfeat_dist, 0.1, radius_coeff=3)
    with pytest.raises(TypeError, match="dist_fn: received"):
        compat.Smooth(lambda b: b, lambda a, b: (a - b).norm(dim=1), 0.1)
