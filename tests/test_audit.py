"""The coverage audit: sound models pass, the positive controls are detected, perturbations stay on the ball."""

import json

import numpy as np
import pytest
import torch

import cs_fast
from cs_fast import bounds
from cs_fast_apps import audit
from cs_fast_apps.cli import main as cli_main

ROOT = 20261125  # a fixed root seed: every test below is deterministic


def _check_row(row, case):
    assert row["certified"] + row["abstained"] == len(case.inputs) * case.trials
    assert row["certified"] > 0
    assert all(0 <= v <= row["certified"] for v in row["violations"].values())
    assert row["any_violation"] <= row["certified"]
    assert row["required_mass"] == bounds.required_mass(case.delta, case.eps1, case.sigma)
    assert row["coverage_samples"] == row["certified"] * case.coverage_samples
    json.dumps(row)


@pytest.mark.parametrize("name", ["identity", "box", "sqfeat", "digits", "candidates30"])
def test_sound_models_pass_the_audit(name):
    [(index, case)], _ = audit.build_cases("small", [name])
    row = audit.run_case(case, ROOT, index)
    _check_row(row, case)
    assert row["verdict"] == "pass" and row["any_violation"] == 0, row
    assert row["coverage"] >= row["required_mass"] - case.alpha2
    assert row["failure_probability"] == case.alpha1 + case.alpha2 + (0 if case.candidates is None
                                                                        else 2.0 ** -case.candidates)


def test_box_model_is_exact_where_it_can_be_and_vacuous_near_its_jump():
    # Near the jump eps_out >= 1 (vacuous, so nothing to violate); the threshold and PGD attacks push
    # x toward the jump by eps1 and never move the smoothed box beyond eps_out.
    case = audit.box_case("small")
    row = audit.run_case(case, ROOT, 1)
    assert row["vacuous"] > 0 and row["any_violation"] == 0


@pytest.mark.parametrize("name, detector", [
    ("control-candidates1", "violations"),       # a single candidate is an outlier 30 % of the time
    ("control-box-authors-units", "coverage"),   # the ball of eps1 / (255 sigma) misses mass eps1 / sigma needs
])
def test_positive_controls_are_detected(name, detector):
    [(index, case)], _ = audit.build_cases("small", [name])
    assert case.control
    row = audit.run_case(case, ROOT, index)
    _check_row(row, case)
    assert row["verdict"] == "FAIL" and row["detected"] is True
    if detector == "violations":
        assert row["p_value_violations"] < audit.LEVEL and row["any_violation"] >= 3
        assert row["failure_probability"] == 0.01  # what the certificate would claim without 2**-k
    else:
        assert row["p_value_coverage"] < audit.LEVEL and row["coverage"] < row["required_mass"]


@pytest.mark.slow
def test_faces_pass_and_the_authors_face_units_are_caught():
    (sound, control), _ = audit.build_cases("small", ["faces", "control-faces-authors-units"])
    row = audit.run_case(sound[1], ROOT, sound[0])
    _check_row(row, sound[1])
    assert row["verdict"] == "pass", row
    row = audit.run_case(control[1], ROOT, control[0])
    assert row["verdict"] == "FAIL" and row["detected"] and row["p_value_coverage"] < audit.LEVEL


def test_perturbations_stay_on_the_ball_and_pgd_beats_random_on_average():
    case = audit.box_case("small")
    x = case.inputs[0]
    center = audit.threshold_box(x[None])[0]
    gen = torch.Generator().manual_seed(0)
    for kind in audit.KINDS:
        x2 = audit._perturb(case, kind, x, center, gen)
        assert float((x2 - x).norm()) <= case.eps1 * (1 + 1e-12)
    # PGD through the smoothed surrogate moves x0 toward the jump: the threshold direction
    x2 = audit._perturb(case, "pgd", x, center, gen)
    assert x2[0] - x[0] > 0.9 * case.eps1
    with pytest.raises(ValueError, match="kind"):
        audit._perturb(case, "nope", x, center, gen)


@pytest.mark.parametrize("metric, params, shape", [
    ("l2", {}, (5,)), ("l1", {}, (5,)), ("sqfeat", {"weights": np.linspace(0.5, 2, 5)}, (5,)),
    ("tv", {}, (2, 4, 3)), ("tv", {}, (7,)), ("jaccard", {}, None),
])
def test_attack_distances_match_the_kernels(metric, params, shape):
    gen = torch.Generator().manual_seed(3)
    if shape is None:
        lo = torch.rand(6, 2, generator=gen, dtype=torch.float64)
        a = torch.cat([lo, lo + torch.rand(6, 2, generator=gen, dtype=torch.float64)], dim=1)
    else:
        a = torch.rand((6,) + shape, generator=gen, dtype=torch.float64)
    got = audit._torch_distance(metric, a[1:], a[0], params).numpy()
    want = cs_fast.to_center(a[1:].numpy(), a[0].numpy(), metric, **params)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_cli_audit_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "audit"
    rc = cli_main(["audit", "--size", "small", "--cases", "sqfeat", "control-candidates1", "--seed", str(ROOT),
                   "--out", str(out)])
    assert rc == 0  # the sound case passes and the control is detected
    text = capsys.readouterr().out
    assert "x^2 features / sqfeat" in text and "control: detected" in text
    result = json.loads((out / "audit.json").read_text())
    assert [r["case"] for r in result["rows"]] == ["x^2 features / sqfeat", "outliers / l2, candidates=1"]
    assert result["seed"] == ROOT and result["certificates"] == sum(r["certified"] + r["abstained"]
                                                                    for r in result["rows"])
    assert (out / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "verdict" in (out / "table.txt").read_text()
    # the same root seed reproduces the rows (each case's seeds depend on its place in the full table)
    again = audit.run_audit(str(tmp_path / "again"), "small", ["sqfeat"], ROOT, stream=open("/dev/null", "w"))
    assert {k: v for k, v in again["rows"][0].items() if k != "seconds"} == \
        {k: v for k, v in result["rows"][0].items() if k != "seconds"}
    with pytest.raises(SystemExit) as info:  # argparse refuses it, listing the cases
        cli_main(["audit", "--cases", "nope"])
    assert info.value.code == 2
