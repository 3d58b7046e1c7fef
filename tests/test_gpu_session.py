"""bench/gpu_session.sh, the one command for a lent GPU: its dry run here, and its benchmark's code on the CPU."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHON=sys.executable)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    return env


def test_dry_run_prints_the_plan_and_checks_imports(tmp_path):
    out = tmp_path / "res"
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh"), "--dry-run", "--out", str(out)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    for needle in ("install the cuda extra", "pip install -e .[cuda]", "tests/cuda_sim", "bench/gpu_bench.py", "bench/gpu_model.py",
                   "boxes_min_median: n = 1000, 10000, 100000", "end_to_end: n = (10000, 1000000)",
                   "import: cs_fast", "dry run: imports ok"):
        assert needle in text, (needle, text)
    assert not out.exists()  # a dry run writes nothing


def test_unknown_option_is_refused():
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_session.sh"), "--bogus"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr


def test_gpu_bench_code_runs_on_the_cpu_at_toy_sizes(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--device", "cpu", "--tiny",
                           "--reps", "1", "--out", str(tmp_path)], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "gpu_bench.json").read_text())
    cases = {row["case"] for row in doc["rows"]}
    assert cases == {"boxes_min_median", "tv_pairwise", "tv_min_median", "sqfeat_min_median", "sqfeat_pairwise",
                     "sqfeat_to_center", "end_to_end"}
    tv = next(r for r in doc["rows"] if r["case"] == "tv_min_median")
    assert tv["check"]["identical_to_one_pair_count"] is True
    sq = next(r for r in doc["rows"] if r["case"] == "sqfeat_min_median")
    assert sq["check"]["identical_to_direct"] is True
