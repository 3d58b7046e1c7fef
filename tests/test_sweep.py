"""The (h, eps1) sweep of ``cs-fast faces`` and ``perceptual`` (:mod:`cs_fast_apps.sweep`): seeds and records."""

import json

import numpy as np
import pytest

import cs_fast
from cs_fast_apps import sweep

SMALL = dict(n=400, m=800, alpha1=0.05, alpha2=0.05, delta=0.2)


def test_sweeps_give_every_setting_its_own_recorded_seed(tmp_path, capsys):
    seen = []

    def certify_one(h, eps1, seed):
        c = cs_fast.CenterSmoothing(lambda b: b, "l2", eps1 / h, seed=seed).certify(np.zeros(2), eps1, **SMALL)
        seen.append(c)
        return {"h": h, "eps1": eps1, **sweep.certificate_fields(c)}

    rows = sweep.sweep(tmp_path, [1.0, 2.0], [0.1, 0.2], certify_one, seed=7, input_index=3)
    assert [r["spawn_key"] for r in rows] == [[3, 0, 0], [3, 0, 1], [3, 1, 0], [3, 1, 1]]
    assert all(r["seed"] == 7 and r["root_seed"] == 7 for r in rows)
    assert len({round(c.radius / c.sigma, 12) for c in seen}) == 4  # distinct noise for every setting
    # one row reproduced from its record
    again = cs_fast.CenterSmoothing(lambda b: b, "l2", 0.1 / 2.0, seed=seen[2].seed_sequence()).certify(
        np.zeros(2), 0.1, **SMALL)
    assert again.to_dict() == seen[2].to_dict()
    same = sweep.sweep(tmp_path, [1.0], [0.1, 0.2], certify_one, seed=7, same_seed=True)
    assert [r["spawn_key"] for r in same] == [[], []]
    assert seen[-1].radius / seen[-1].sigma == pytest.approx(seen[-2].radius / seen[-2].sigma, rel=1e-9)  # same noise
    fresh = sweep.sweep(tmp_path, [1.0], [0.1], certify_one)
    assert fresh[0]["root_seed"] == fresh[0]["seed"] and fresh[0]["root_seed"] >= 2 ** 32
    json.loads((tmp_path / "certificates.json").read_text())
    capsys.readouterr()
