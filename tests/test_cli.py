"""``cs-fast certify``: JSON lines out, bad arguments answered with one line and exit status 2."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from cs_fast_apps import cli
from cs_fast.models.toy import blob_detector, blob_image

# Enough samples for the toy detector to certify at sigma 0.25 with loose alphas.
SMALL = ["--n", "400", "--m", "800", "--alpha1", "0.05", "--alpha2", "0.05", "--delta", "0.2", "--batch-size", "400"]


def _run(capsys, argv):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_certify_builtin_toy_writes_one_line_per_input_and_eps1(capsys):
    rc, rows, err = _run(capsys, ["certify", *SMALL, "--eps1", "0.1", "0.2"])
    # stderr is empty but for the one-line notice when this process compiles the kernels (cold cache)
    assert rc == 0 and [line for line in err.splitlines() if "compiling the numba kernels" not in line] == []
    assert [(r["input"], r["eps1"]) for r in rows] == [(0, 0.1), (0, 0.2)]
    for r in rows:
        assert r["metric"] == "jaccard" and r["sigma"] == 0.25
        assert not r["abstained"], r["reason"]
        # the toy image's blob box, exactly: every noisy sample finds the same blob
        assert r["center"]["array"] == blob_detector(blob_image()[None])[0].tolist()
        assert r["eps_out"] == pytest.approx(3 * r["R"])


def test_certify_module_callable_with_npy_and_pt_inputs(tmp_path, capsys):
    x = torch.stack([blob_image(), blob_image(top=8, left=2)])
    np.save(tmp_path / "x.npy", x.numpy())
    torch.save(x, tmp_path / "x.pt")
    common = ["certify", "--model", "cs_fast.models.toy:blob_detector", "--metric", "jaccard", "--sigma", "0.25",
              *SMALL, "--eps1", "0.1", "--seed", "3"]
    rc, from_npy, _ = _run(capsys, [*common, "--inputs", str(tmp_path / "x.npy")])
    assert rc == 0 and [r["input"] for r in from_npy] == [0, 1]
    assert [r["center"]["array"] for r in from_npy] == blob_detector(x).tolist()
    out = tmp_path / "out.jsonl"
    rc, printed, _ = _run(capsys, [*common, "--inputs", str(tmp_path / "x.pt"), "--output", str(out)])
    assert rc == 0 and printed == []
    assert [json.loads(line) for line in out.read_text().splitlines()] == from_npy  # same seed, same certificates


def test_certify_lines_are_certificate_records_with_fresh_recorded_seeds(capsys):
    from cs_fast import Certificate

    from cs_fast.seeds import input_seed

    rc, rows, _ = _run(capsys, ["certify", *SMALL, "--eps1", "0.1", "0.1"])
    assert rc == 0
    a, b = rows
    assert a == b and a["seed"] == input_seed(a["run_seed"], 0)  # one input: its seed at every eps1
    rc, other, _ = _run(capsys, ["certify", *SMALL, "--eps1", "0.1"])
    assert other[0]["run_seed"] != a["run_seed"]  # no --seed: fresh entropy for every run
    for r in rows:
        record = {k: v for k, v in r.items() if k not in ("input", "run_seed")}
        cert = Certificate.from_dict(r)
        assert cert.to_dict() == record and set(r) == {"input", "run_seed", *record}
        assert r["vacuous"] is False and r["failure_probability"] == pytest.approx(0.1)
    rc, again, _ = _run(capsys, ["certify", *SMALL, "--eps1", "0.1", "--seed", str(b["run_seed"])])
    assert again == [b]  # the recorded run seed reproduces the line exactly


def test_certify_weak_candidates_need_the_flag(capsys):
    argv = ["certify", *SMALL, "--eps1", "0.1", "--candidates", "2"]  # 2**-2 > alpha1 + alpha2 = 0.1
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "candidates: received 2" in err and "allow_weak_candidates" in err
    rc, rows, _ = _run(capsys, [*argv, "--allow-weak-candidates"])
    assert rc == 0 and rows[0]["candidates"] == 2 and rows[0]["failure_probability"] == pytest.approx(0.35)


@pytest.mark.parametrize("argv, names", [
    (["certify", "--model", "nocolon"], "--model"),
    (["certify", "--model", "no_such_module_xyz:f", "--metric", "l2", "--sigma", "1"], "--model"),
    (["certify", "--model", "cs_fast.models.toy:nothing", "--metric", "l2", "--sigma", "1"], "--model"),
    (["certify", "--model", "cs_fast.models.toy:blob_detector", "--sigma", "1"], "--metric"),
    (["certify", "--model", "cs_fast.models.toy:blob_detector", "--metric", "jaccard"], "--sigma"),
    (["certify", "--model", "cs_fast.models.toy:blob_detector", "--metric", "jaccard", "--sigma", "1"], "--inputs"),
    (["certify", "--inputs", "x.csv"], "--inputs"),
    (["certify", "--metric", "hamming"], "metric"),
    (["certify", "--sigma", "-1"], "sigma"),
    (["certify", "--n", "0"], "n"),
])
def test_certify_bad_arguments_exit_2_with_one_line(capsys, argv, names):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.startswith("cs-fast certify: error:") and names in err and len(err.strip().splitlines()) == 1


def test_certify_unreadable_inputs(tmp_path, capsys):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    torch.save({"x": torch.zeros(2)}, tmp_path / "dict.pt")
    for path, expected in [(tmp_path / "bad.npy", "is not a readable .npy file"), (tmp_path / "dict.pt", "holds a dict")]:
        assert cli.main(["certify", "--inputs", str(path)]) == 2
        assert expected in capsys.readouterr().err


def test_console_script_is_installed_and_never_prints_a_traceback():
    exe = os.path.join(os.path.dirname(sys.executable), "cs-fast")
    assert os.path.exists(exe), "pip install -e . should install the cs-fast console script"
    ok = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "certify" in ok.stdout and "faces" in ok.stdout and "perceptual" in ok.stdout
    bad = subprocess.run([exe, "certify", "--n", "-5"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "n: received -5" in bad.stderr
    unknown = subprocess.run([exe, "nonsense"], capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
