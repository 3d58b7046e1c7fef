"""LPIPS as sqfeat on extracted features, checked against the lpips package; the digits generator.

Needs ``pip install --no-deps lpips==0.1.4``; runs on the CPU build of torch (no
torchvision: the trunk is cs_fast's stand-in AlexNet, randomly initialized).
"""

import numpy as np
import pytest
import torch

import cs_fast
from cs_fast.models import perceptual
from cs_fast_apps import perceptual as perceptual_app
from cs_fast.models.lpips_adapter import LPIPSFeatures, lin_weights, load_lpips


@pytest.fixture(scope="module")
def net():
    return load_lpips("alex", seed=0)


def _lpips_matrix(net, x, y, **kw):
    """LPIPS of every pair by the package's own forward (one batched call per row)."""
    with torch.no_grad():
        return torch.stack([net(a[None].expand_as(y), y, **kw).reshape(-1) for a in x]).double()


@pytest.mark.parametrize("size", [32, 45])
def test_sqfeat_of_features_is_lpips(net, size):
    gen = torch.Generator().manual_seed(size)
    x = torch.rand(5, 3, size, size, generator=gen)
    y = torch.rand(3, 3, size, size, generator=gen)
    feats = LPIPSFeatures(net, normalize=True)
    with torch.no_grad():
        fx, fy = feats(x), feats(y)
    ref = _lpips_matrix(net, x, y, normalize=True)
    assert fx.dtype == torch.float32 and fx.shape[0] == 5
    for a, b in [(fx, fy), (fx.double(), fy.double())]:
        d = cs_fast.cdist(a, b, "sqfeat")
        np.testing.assert_allclose(d.double().numpy(), ref.numpy(), rtol=1e-4, atol=1e-7)
    # the same as one network call per pair, self-distances zero
    assert float(cs_fast.cdist(fx, fx, "sqfeat").diagonal().abs().max()) < 1e-6


def test_inputs_in_minus_one_one(net):
    x = 2 * torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) - 1
    with torch.no_grad():
        f = LPIPSFeatures(net)(x)
    np.testing.assert_allclose(cs_fast.cdist(f, f, "sqfeat").double().numpy(), _lpips_matrix(net, x, x).numpy(),
                               rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kw", [{"lpips": False}, {"version": "0.0"}])
def test_variants(kw):
    from cs_fast.models._torchvision_compat import import_module

    lpips = import_module("lpips")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False, **kw).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        f = LPIPSFeatures(net, normalize=True)(x)
    np.testing.assert_allclose(cs_fast.cdist(f, f, "sqfeat").double().numpy(),
                               _lpips_matrix(net, x, x, normalize=True).numpy(), rtol=1e-4, atol=1e-7)


def test_refuses_what_is_not_a_squared_distance(net):
    from cs_fast.models._torchvision_compat import import_module

    lpips = import_module("lpips")
    spatial = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False, spatial=True)
    with pytest.raises(ValueError, match="spatial"):
        LPIPSFeatures(spatial)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        random_lins = lpips.LPIPS(pretrained=False, net="alex", pnet_rand=True, verbose=False)
    assert any((w < 0).any() for w in lin_weights(random_lins))
    with pytest.raises(ValueError, match="negative"):
        LPIPSFeatures(random_lins)
    with pytest.raises(ValueError, match="RGB"):
        LPIPSFeatures(net)(torch.zeros(2, 1, 32, 32))


def test_seeded_trunk_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    a, b, c = load_lpips(seed=5), load_lpips(seed=5), load_lpips(seed=6)
    assert torch.equal(torch.random.get_rng_state(), state)
    wa, wb, wc = (n.net.slice1[0].weight for n in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert all(float(w.min()) >= 0 for w in lin_weights(a))


def test_center_from_features_is_the_lpips_center(net):
    gen = torch.Generator().manual_seed(3)
    base = torch.rand(1, 3, 32, 32, generator=gen)
    x = (base + 0.2 * torch.randn(25, 3, 32, 32, generator=gen)).clamp(0, 1)
    with torch.no_grad():
        f = LPIPSFeatures(net, normalize=True)(x)
    index, radius = cs_fast.min_median(f, "sqfeat")
    full = _lpips_matrix(net, x, x, normalize=True).numpy()
    medians = np.sort(full, axis=1)[:, (len(x) + 1) // 2 - 1]
    assert index == int(np.argmin(medians))
    assert radius == pytest.approx(medians.min(), rel=1e-4)


@pytest.fixture(scope="module")
def model():
    return perceptual.build(size=32, seed=0)


def test_generator_output_layout(model):
    z = perceptual.test_latents(3)
    assert z.shape == (3, 10)
    with torch.no_grad():
        out = model(z)
        images = model.generator(z)
    assert images.shape == (3, 3, 32, 32) and 0 <= float(images.min()) and float(images.max()) <= 1
    assert out.shape == (3, model.n_features + 64) and model.weights.shape == (out.shape[1],)
    feats, small = model.split(out)
    assert small.shape == (3, 1, 8, 8) and torch.equal(model.generator.to_rgb(small), images)
    np.testing.assert_allclose(cs_fast.cdist(out, out, "sqfeat", weights=model.weights).numpy(),
                               cs_fast.cdist(feats, feats, "sqfeat").numpy(), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("candidates", [None, 30])
def test_certify_generator_small(model, candidates, tmp_path):
    z = perceptual.test_latents(1)[0]
    res = perceptual.certify_generator(model, z, eps1=0.1, h=0.5, n=200, m=400, candidates=candidates,
                                       delta=0.25, alpha1=0.05, alpha2=0.05, seed=1, batch_size=200)
    c = res.certificate
    assert not c.abstained, c.reason
    assert c.eps_out == pytest.approx(10 * c.R) and c.smoothing_error <= c.eps_out
    assert c.center.shape == (model.n_features + 64,)
    path = tmp_path / "digit.png"
    perceptual_app.draw_center(model, z, res, path)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_time_centers(model):
    z = perceptual.test_latents(1)[0]
    t = perceptual.time_centers(model, z, 0.2, n=120, candidates=10)
    assert t["dim"] == model.n_features + 64
    assert all(t[k] > 0 for k in ("sample_s", "exact_s", "candidates_s", "authors_s"))
    assert t["authors_exact_s_estimate"] == pytest.approx(t["authors_s"] * 12)
    # the paper's way (network calls per pair) and cs_fast's features pick among the same candidates
    assert t["candidates_radius"] == pytest.approx(t["authors_radius"], rel=1e-4)
    # the exact center's median is the smallest over all samples; candidates are extra samples
    assert 0 < t["exact_radius"] and 0 < t["candidates_radius"]


def test_cli_perceptual(tmp_path, capsys):
    import json

    from cs_fast_apps import cli

    # n = 304: the smallest the exact center check admits at the perceptual delta = 0.08 (cs-fast plan)
    assert cli.main(["perceptual", "--out", str(tmp_path), "--n", "303", "--m", "200", "--eps1", "0.1",
                     "--h", "0.5"]) == 2
    assert "--n: received 303" in capsys.readouterr().err
    rc = cli.main(["perceptual", "--out", str(tmp_path), "--n", "304", "--m", "200", "--eps1", "0.1", "--h", "0.5"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0 and len(lines) == 2
    timing, row = lines
    assert timing["n"] == 304 and timing["candidates"] == perceptual.PAPER_CANDIDATES and timing["exact_s"] > 0
    assert row["candidates"] is None and row["eps1"] == 0.1 and row["sigma"] == pytest.approx(0.2)
    assert row["bounds"] == "exact" and (row["abstained"] or 1 <= row["rank"] <= 200)
    assert (tmp_path / "certificates.json").exists() and (tmp_path / "digit0_h0.5_eps0.1.png").exists()
    assert cli.main(["perceptual", "--size", "16"]) == 2
    assert "--size" in capsys.readouterr().err
