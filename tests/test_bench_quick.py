"""The benchmark report machinery on a tiny workload (seconds): JSON, ratios, timings, agreement."""

import argparse
import json
import math

import numpy as np
import pytest

import cs_fast
from cs_fast_apps.bench import add_bench_arguments, end_to_end, main_bench, measure, run
from cs_fast_apps.bench.workloads import Workload

TINY = [
    Workload("tinyboxes", "jaccard", (4,), 4, 4.0, sizes={},
             quick_sizes={"pairwise": (40, 80), "to_center": (100, 200), "min_median": (40, 80)}),
    Workload("tinytv", "tv", (1, 6, 6), 60, 3.0, sizes={},
             quick_sizes={"pairwise": (30, 60), "to_center": (50, 100), "min_median": (30, 61)}),
]
CONFIG = run.quick_config(budget_s=10.0, cs_budget_s=10.0, min_time=0.0, max_reps=2, gemm_n=256, copy_mib=8,
                          ceiling_reps=2)


# The whole report on tiny workloads still times every peer and the start-up (about 30 s): a slow set.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    parser = add_bench_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--quick", "--out", str(out), "--no-end-to-end", "--no-startup"])
    assert main_bench(args, selected=TINY, config=CONFIG, log=None) == 0
    with open(out / "results.json") as fh:
        return json.load(fh), out


def test_rows_have_finite_timings(report):
    doc, _ = report
    ok = [r for r in doc["rows"] if r["status"] == "ok"]
    assert {(r["workload"], r["op"]) for r in ok} == {(w.key, op) for w in TINY for op in run.workloads.OPS}
    for r in ok:
        for key in ("time_s", "time_median_s", "pairs_per_s", "elem_ops_per_s", "flops_frac", "bw_frac"):
            assert r[key] is not None and math.isfinite(r[key]) and r[key] > 0, (key, r)
        assert r["time_s"] <= r["time_median_s"]
        assert r["peak_rss_delta_bytes"] is not None and r["peak_rss_delta_bytes"] >= 0


def test_every_peer_row_has_a_ratio_from_the_same_run(report):
    doc, _ = report
    rows = doc["rows"]
    cs = {(r["workload"], r["op"], r["n"]): r["time_s"] for r in rows if r["impl"] == run.CS_FAST}
    peers = [r for r in rows if r["impl"] != run.CS_FAST and r["status"] == "ok"]
    assert peers and len(doc["ratios"]) == len(peers)
    by_key = {(q["workload"], q["op"], q["n"], q["peer"]): q["ratio"] for q in doc["ratios"]}
    for r in peers:
        ratio = by_key[(r["workload"], r["op"], r["n"], r["impl"])]
        assert math.isfinite(ratio) and ratio > 0
        assert ratio == pytest.approx(r["time_s"] / cs[(r["workload"], r["op"], r["n"])])


def test_peers_agree_with_cs_fast(report):
    doc, _ = report
    for r in doc["rows"]:
        if r["impl"] == run.CS_FAST or r["status"] != "ok":
            continue
        a = r["agreement"]
        if r["op"] == "min_median":
            if "np.median" not in (r["note"] or ""):  # the lower median is exact
                assert a["same_index"] and a["radius_rel_diff"] < 1e-5, r
        else:
            assert a["max_rel_diff"] < 1e-4, r


def test_table_json_and_plots_written(report):
    doc, out = report
    table = (out / "table.txt").read_text()
    assert "t_peer/t_cs" in table and "tinyboxes" in table
    assert doc["meta"]["memory_method"] == measure.MEMORY_METHOD
    assert doc["ceilings"]["sgemm_flops"] > 0 and doc["ceilings"]["copy_bytes_per_s"] > 0
    pytest.importorskip("matplotlib")
    assert (out / "time_tinyboxes.png").stat().st_size > 0
    assert (out / "memory_tinytv.png").stat().st_size > 0


def test_peak_rss_sees_a_known_allocation():
    size = 64 * 2**20
    with measure.PeakRSS() as probe:
        buf = np.ones(size, dtype=np.uint8)
        del buf
    assert probe.delta >= 0.9 * size
    with measure.PeakRSS() as idle:
        pass
    assert idle.delta < 0.5 * size


def test_predicted_overruns_are_skipped_with_a_reason():
    impl = run.Impl("peer", lambda X: X, 2)
    cfg = run.Config(budget_s=1.0)
    assert run._skip_reason(impl, "pairwise", 2000, {"peer": (1000, 0.5, 10)}, cfg, 2**40).startswith("predicted 2")
    assert run._skip_reason(impl, "pairwise", 2000, {"peer": (1000, 0.1, 10)}, cfg, 2**40) is None
    assert "failed" in run._skip_reason(impl, "pairwise", 2000, {"peer": "error"}, cfg, 2**40)


def test_end_to_end_splits_model_and_cs_fast_time():
    def model(batch):
        return batch.reshape(len(batch), -1)[:, :8] ** 2

    def factory(m):
        return cs_fast.CenterSmoothing(m, "sqfeat", 0.1, batch_size=500, seed=0)

    res = end_to_end(factory, model, np.ones(16), eps1=0.01, n=3000, m=2000)
    assert res["model_calls"] >= 6  # 3000 + 3000 + 2000 samples (+1 base) in batches of 500
    assert 0 < res["model_s"] < res["total_s"]
    assert res["cs_fast_s"] == pytest.approx(res["total_s"] - res["model_s"])


def test_startup_reports_cold_and_warm_certify():
    from cs_fast_apps.bench.startup import format_startup, measure_startup

    s = measure_startup(runs=1, certify_args=["--n", "800", "--m", "400"])
    for key in ("certify_cold", "certify_warm", "import_cs_fast", "import_torch", "python_startup"):
        assert s[key]["runs"] == 1 and s[key]["wall_s"] > 0 and s[key]["cpu_s"] >= 0, key
    assert s["command"] == "cs-fast certify --n 800 --m 400"
    # a fresh numba cache directory: the cold run compiles, the warm one loads everything from it
    assert s["certify_cold"]["kernels_compiled"] > 0 and s["certify_warm"]["kernels_compiled"] == 0
    text = format_startup(s)
    assert "cold" in text and "warm" in text and "load average" in text
