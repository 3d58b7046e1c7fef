"""The digits autoencoder (shipped weights, training script) and the TV demo built on it."""

import argparse
import io
import json
import math
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("sklearn")

from cs_fast_apps import demo  # noqa: E402
from cs_fast.models import train_digits  # noqa: E402
from cs_fast.models.digits import DigitsAutoencoder, digits_data, load_digits_autoencoder  # noqa: E402


def _mse(a, b):
    return float(((a - b) ** 2).mean())


def test_digits_data_split_is_fixed_and_scaled():
    train, test, everything = digits_data("train"), digits_data("test"), digits_data("all")
    assert test.dtype == torch.float32 and test.shape[1:] == (1, 8, 8)
    assert len(train) + len(test) == len(everything) == 1797
    assert 0.0 <= float(everything.min()) and float(everything.max()) <= 1.0
    assert torch.equal(test, digits_data("test"))
    images, labels = digits_data("test", return_labels=True)
    assert torch.equal(images, test) and labels.shape == (len(test),) and set(labels.tolist()) <= set(range(10))
    with pytest.raises(ValueError, match="split"):
        digits_data("validation")


def test_shipped_weights_beat_the_mean_image():
    model = load_digits_autoencoder()
    assert not model.training
    test = digits_data("test")
    mean_image = digits_data("train").mean(0, keepdim=True)
    baseline = _mse(mean_image.expand_as(test), test)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        clean = model(test)
        noisy = model(test + 0.3 * torch.randn(test.shape, generator=gen))
    assert clean.shape == test.shape
    assert 0.0 <= float(clean.min()) and float(clean.max()) <= 1.0
    # Shipped model: about 0.013 clean, 0.02 at sigma 0.3, against 0.073 for the mean image.
    assert _mse(clean, test) < 0.4 * baseline
    assert _mse(noisy, test) < 0.6 * baseline


def test_training_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, hist_a = train_digits.train_digits_autoencoder(epochs=1, seed=3)
    b, _ = train_digits.train_digits_autoencoder(epochs=1, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert len(hist_a) == 1 and math.isfinite(hist_a[0])
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ValueError, match="sigma_min"):
        train_digits.train_digits_autoencoder(epochs=1, sigma_min=0.5, sigma_max=0.1)


def test_training_script_writes_a_loadable_state_dict(tmp_path):
    out = tmp_path / "ae.pt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd()] + sys.path))
    proc = subprocess.run([sys.executable, "-m", "cs_fast.models.train_digits", "--out", str(out), "--epochs", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "saved" in proc.stdout
    model = load_digits_autoencoder(out)
    assert isinstance(model, DigitsAutoencoder) and not model.training
    with torch.no_grad():
        assert model(digits_data("test")[:4]).shape == (4, 1, 8, 8)


def _check_outputs(result, out, plots=True):
    files = result["files"]
    names = {"json", "table"} | ({"curves", "outputs"} if plots else set())
    assert set(files) == names
    for path in files.values():
        assert os.path.getsize(path) > 0 and os.path.dirname(path) == str(out)
    with open(files["json"]) as fh:
        assert json.load(fh) == json.loads(json.dumps(result))
    for rec in result["records"]:
        if rec["abstained"]:
            assert isinstance(rec["reason"], str) and rec["reason"]
            assert rec["eps_out"] is None
        else:
            assert rec["reason"] is None
            assert math.isfinite(rec["eps_out"]) and rec["eps_out"] >= 0
            assert 0 <= rec["smoothing_error"] <= rec["eps_out"]
    for row in result["rows"]:
        for b in ("exact", "paper"):
            s = row["by_bounds"][b]
            assert s["certified"] + s["abstained"] == row["count"]
            assert sum(s["abstained_by_kind"].values()) == s["abstained"]
    # both rule sets judge the same samples: one record each per (h, eps1, input), same center count
    pairs = {}
    for rec in result["records"]:
        pairs.setdefault((rec["h"], rec["eps1"], rec["input"]), {})[rec["bounds"]] = rec
    for pair in pairs.values():
        assert set(pair) == {"exact", "paper"} and pair["exact"]["count"] == pair["paper"]["count"]
        if not pair["paper"]["abstained"]:  # the exact rule set certifies wherever the paper's does, no looser
            assert not pair["exact"]["abstained"] and pair["exact"]["R"] <= pair["paper"]["R"]


def test_run_demo_counts_abstentions_under_each_rule_set(tmp_path):
    # n = 800 is too few for the paper's Hoeffding margin (delta1 = 0.061 > delta = 0.05), enough for the exact one
    buf = io.StringIO()
    result = demo.run_demo(out=tmp_path, n=800, m=2000, num_inputs=2, eps1s=(0.2,), hs=(2.0,), seed=0,
                           progress=False, stream=buf)
    _check_outputs(result, tmp_path)
    (row,) = result["rows"]
    paper, exact = row["by_bounds"]["paper"], row["by_bounds"]["exact"]
    assert (row["count"], paper["abstained"], paper["abstained_by_kind"]) == (2, 2, {"center": 2})
    assert paper["median_eps_out"] is None and exact["certified"] == 2
    assert all("delta1" in r["reason"] for r in result["records"] if r["bounds"] == "paper")
    table = buf.getvalue()
    assert "0/2" in table and "h = 2, eps1 = 0.2, paper: center 2" in table
    assert f"{exact['median_eps_out']:.3f}" in table
    with open(result["files"]["table"]) as fh:
        assert fh.read().strip() in table
    # the inputs are held-out digits of different classes
    assert len({r["label"] for r in result["records"]}) == 2


def test_run_demo_refuses_what_neither_rule_set_can_certify(tmp_path):
    with pytest.raises(ValueError, match="^n: received 100"):
        demo.run_demo(out=tmp_path, n=100, m=2000, num_inputs=1, eps1s=(0.2,), hs=(2.0,), progress=False,
                      stream=io.StringIO())
    with pytest.raises(ValueError, match="^m: received 200"):
        demo.run_demo(out=tmp_path, n=1000, m=200, num_inputs=1, eps1s=(0.2,), hs=(2.0,), progress=False,
                      stream=io.StringIO())


def test_run_demo_certifies(tmp_path):
    buf = io.StringIO()
    result = demo.run_demo(out=tmp_path, n=4000, m=5000, num_inputs=1, eps1s=(0.2,), hs=(1.5,),
                           progress=False, stream=buf, bounds="paper")
    _check_outputs(result, tmp_path)
    rec = next(r for r in result["records"] if r["bounds"] == "paper")
    assert not rec["abstained"], rec["reason"]
    assert rec["sigma"] == pytest.approx(0.2 / 1.5)
    (row,) = result["rows"]
    assert row["by_bounds"]["paper"]["median_eps_out"] == rec["eps_out"]
    assert row["median_smoothing_error"] == rec["smoothing_error"]
    table = buf.getvalue()
    assert f"{rec['eps_out']:.3f}" in table
    assert table.index("paper: certified") < table.index("exact: certified")  # the chosen rule set first


def test_run_demo_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    buf = io.StringIO()
    result = demo.run_demo(out=tmp_path, n=800, m=2000, num_inputs=1, eps1s=(0.2,), hs=(2.0,),
                           progress=False, stream=buf)
    _check_outputs(result, tmp_path, plots=False)
    assert "matplotlib is not installed" in buf.getvalue()


def test_demo_arguments_and_paper_settings(tmp_path, capsys):
    parser = demo.add_demo_arguments(argparse.ArgumentParser())
    opts = demo.demo_options(parser.parse_args([]))
    assert (opts["n"], opts["m"], opts["num_inputs"], opts["bounds"]) == (4000, 20_000, 5, "exact")
    assert demo.demo_options(parser.parse_args(["--bounds", "paper"]))["bounds"] == "paper"
    assert opts["out"].startswith("cs_fast_demo_")  # a fresh folder per run (cs_fast_apps/output_dir.py)
    opts = demo.demo_options(parser.parse_args(["--paper"]))
    assert (opts["n"], opts["m"], opts["num_inputs"]) == (10_000, 1_000_000, 50)
    opts = demo.demo_options(parser.parse_args(["--paper", "--m", "1000", "--seed", "7"]))
    assert (opts["n"], opts["m"], opts["seed"]) == (10_000, 1000, 7)
    # A bad option is one line on stderr and exit status 2, not a traceback.
    args = parser.parse_args(["--n", "0", "--out", str(tmp_path), "--no-progress"])
    assert demo.main_demo(args) == 2
    assert "n: received 0" in capsys.readouterr().err
