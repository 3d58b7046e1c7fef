"""The ``cs-fast bench`` command itself: argument errors, metadata, default output folder, headline runs.

Tiny workloads only (seconds); no timing is asserted.
"""

import argparse
import fnmatch
import importlib.util
import json
import os
import pathlib
import time

import numba
import pytest

from cs_fast_apps import cli
from cs_fast_apps.bench import add_bench_arguments, main_bench, measure, run
from cs_fast_apps.bench.workloads import Workload
from cs_fast_apps.output_dir import PATTERN, fresh_output_dir

TINY = [Workload("tinyboxes", "jaccard", (4,), 4, 4.0, sizes={},
                 quick_sizes={"pairwise": (40,), "to_center": (100,), "min_median": (41,)})]
CONFIG = run.quick_config(budget_s=10.0, cs_budget_s=10.0, min_time=0.0, max_reps=2, gemm_n=128, copy_mib=4,
                          ceiling_reps=1)
REPO = pathlib.Path(__file__).resolve().parents[1]


def _args(*argv):
    fast = ["--quick", "--no-end-to-end", "--no-startup"]  # the start-up timing has a test of its own
    return add_bench_arguments(argparse.ArgumentParser()).parse_args([*fast, *argv])


@pytest.mark.parametrize("argv, flag, bad", [
    (["--workloads", "boxes,nope"], "--workloads", "nope"),
    (["--ops", "pairwise,median"], "--ops", "median"),
])
def test_unknown_workloads_or_ops_exit_2_with_one_line(argv, flag, bad, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cs-fast bench: error: ") and flag in lines[0] and bad in lines[0]
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # rejected before any folder is made or anything runs


def test_python_m_cs_fast_apps_bench_exits_2_too(capsys, monkeypatch, tmp_path):
    from cs_fast_apps.bench.command import main

    monkeypatch.chdir(tmp_path)
    assert main(["--ops", "nope"]) == 2
    assert "--ops" in capsys.readouterr().err


def test_bad_threads_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--threads", "0"])
    assert exc.value.code == 2
    assert "--threads" in capsys.readouterr().err


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """A tiny run with no --out from a folder that holds committed-looking results."""
    root = tmp_path_factory.mktemp("repo")
    committed = root / "bench" / "results" / "amd-epyc"
    committed.mkdir(parents=True)
    (committed / "results.json").write_text('{"committed": true}')
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main_bench(_args(), selected=TINY, config=CONFIG, log=None) == 0
    finally:
        os.chdir(cwd)
    return root


def test_default_output_is_a_fresh_folder_not_bench_results(default_run):
    root = default_run
    assert (root / "bench" / "results" / "amd-epyc" / "results.json").read_text() == '{"committed": true}'
    assert sorted(p.name for p in (root / "bench" / "results").iterdir()) == ["amd-epyc"]
    made = [p for p in root.iterdir() if p.name != "bench"]
    assert len(made) == 1 and made[0].name.startswith("cs_fast_bench_")
    assert fnmatch.fnmatch(made[0].name, PATTERN)
    assert (made[0] / "results.json").is_file() and (made[0] / "table.txt").is_file()


def test_results_record_load_and_threads(default_run):
    out = next(p for p in default_run.iterdir() if p.name.startswith("cs_fast_bench_"))
    doc = json.loads((out / "results.json").read_text())
    meta = doc["meta"]
    load = meta["load_start"]
    assert len(load["load_average"]) == 3 and all(x >= 0 for x in load["load_average"])
    assert load["cores"] >= 1 and load["threads"] == meta["numba_threads"] >= 1
    assert isinstance(load["busy"], bool) and (load["warning"] is not None) == load["busy"]
    assert meta["torch_threads"] >= 1 and len(meta["load_averages_end"]) == 3
    if importlib.util.find_spec("threadpoolctl"):
        assert isinstance(meta["blas_threads"], list)
        assert all(b["threads"] >= 1 for b in meta["blas_threads"])
    assert all(r["load_1m"] is not None and r["load_1m"] >= 0 for r in doc["rows"])
    table = (out / "table.txt").read_text()
    assert f"threads: numba {meta['numba_threads']}, torch {meta['torch_threads']}" in table
    assert "load average" in table


def test_table_has_a_legend_and_says_quick(default_run):
    out = next(p for p in default_run.iterdir() if p.name.startswith("cs_fast_bench_"))
    table = (out / "table.txt").read_text()
    assert table.startswith("--quick run")
    legend = table[table.index("columns:"):]
    for column in ("%sgemm", "%bw", "agrees", "t_peer/t_cs", "peak dRSS"):
        assert f"\n  {column} " in legend, column
    assert "above 100 %" in legend


def test_quick_plots_say_they_are_quick(default_run):
    pytest.importorskip("matplotlib")
    from PIL import Image

    out = next(p for p in default_run.iterdir() if p.name.startswith("cs_fast_bench_"))
    pngs = sorted(out.glob("*.png"))
    assert pngs
    for png in pngs:
        assert "--quick" in Image.open(png).text["Description"], png


def test_busy_machine_warns_and_is_recorded(monkeypatch, tmp_path, capsys):
    cores = measure._cores()
    monkeypatch.setattr(measure, "load_averages", lambda: [cores + 3.0, cores + 2.0, 1.0])
    status = measure.load_status(threads_used=cores)
    assert status["busy"] and status["free_cores"] == 1 and "busy" in status["warning"]
    assert main_bench(_args("--out", str(tmp_path), "--no-plots"), selected=TINY, config=CONFIG, log=None) == 0
    assert "warning: the machine is busy" in capsys.readouterr().err
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["meta"]["load_start"]["busy"] is True
    assert "timings are contended" in (tmp_path / "table.txt").read_text()
    monkeypatch.setattr(measure, "load_averages", lambda: [0.0, 0.0, 0.0])
    assert measure.load_status(threads_used=cores)["busy"] is False


def test_threads_option_sets_every_library(tmp_path):
    import torch

    before = (numba.get_num_threads(), torch.get_num_threads())
    try:
        assert main_bench(_args("--out", str(tmp_path), "--no-plots", "--threads", "1"), selected=TINY,
                          config=CONFIG, log=None) == 0
        meta = json.loads((tmp_path / "results.json").read_text())["meta"]
        assert meta["numba_threads"] == 1 and meta["torch_threads"] == 1 and meta["load_start"]["threads"] == 1
        if meta["blas_threads"]:
            assert all(b["threads"] == 1 for b in meta["blas_threads"])
    finally:
        measure.set_threads(before[0])
        torch.set_num_threads(before[1])


def test_set_threads_rejects_bad_counts():
    for bad in (0, -1, 10**6, 1.5, True, "two"):
        with pytest.raises(ValueError, match="threads"):
            measure.set_threads(bad)


def test_memory_probe_is_a_separate_untimed_call():
    calls = []

    def fn():
        calls.append(time.perf_counter())
        if len(calls) == 1:
            time.sleep(0.3)  # the probe call: slow (as fresh page faults are); no timed call may see it
        return len(calls)

    res = measure.time_call(fn, (), min_time=0.0, max_reps=3)
    assert len(calls) == len(res["times"]) + 1 == 2
    assert max(res["times"]) < 0.2 and res["peak_rss_delta"] is not None
    calls.clear()
    res = measure.time_call(fn, (), min_time=10.0, max_reps=3, probe_memory=False)
    assert len(calls) == len(res["times"]) == 3 and res["peak_rss_delta"] is None


def test_fresh_output_dir_never_reuses_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = time.mktime((2026, 11, 25, 15, 50, 12, 0, 0, -1))
    first = fresh_output_dir("bench", now)
    assert first == "cs_fast_bench_20261125-155012" and fnmatch.fnmatch(first, PATTERN)
    os.makedirs(first)
    second = fresh_output_dir("bench", now)
    assert second == first + "-2" and fnmatch.fnmatch(second, PATTERN)


def test_gitignore_ignores_the_default_folders():
    lines = (REPO / ".gitignore").read_text().splitlines()
    assert PATTERN + "/" in lines


def test_every_command_defaults_to_a_fresh_folder(tmp_path, monkeypatch):
    """Every ``cs-fast`` subcommand with ``--out`` (demo, faces, perceptual, audit, ...) defaults to a new folder."""
    monkeypatch.chdir(tmp_path)
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    checked = []
    for command, parser in sub.choices.items():
        out = next((a for a in parser._actions if "--out" in a.option_strings), None)
        if out is None:
            continue
        if out.default is None:  # chosen when the command runs (bench: default_run above)
            assert command == "bench"
            continue
        assert out.default.startswith(f"cs_fast_{command}_") and fnmatch.fnmatch(out.default, PATTERN), command
        assert not os.path.isabs(out.default) and not os.path.exists(out.default)
        checked.append(command)
    assert {"demo", "faces", "perceptual"} <= set(checked)


def test_headline_gives_every_implementation_the_same_runs(tmp_path, capsys):
    out = tmp_path / "headline.json"
    rows = _script("headline").main(["--n-images", "40", "--n-boxes", "60", "--reps", "2", "--out", str(out)])
    assert len(rows) == 4
    for r in rows:
        assert len(r["cs_fast_times_s"]) == len(r["peer_times_s"]) == 2
        assert r["cs_fast_s"] == min(r["cs_fast_times_s"]) and r["peer_s"] == min(r["peer_times_s"])
    doc = json.loads(out.read_text())
    assert doc["reps"] == 2 and len(doc["load_start"]["load_average"]) == 3
    assert doc["machine"]["numba_threads"] >= 1 and "best of 2" in capsys.readouterr().out


def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_committed_results_set_has_one_regeneration_command(capsys):
    regen = _script("regenerate")
    outs = []
    for name in regen.SETS:
        words = regen.command(name, 2)
        outs.append(words[words.index("--out") + 1])
        assert "{threads}" not in " ".join(words)
    committed = [f"bench/results/{p.name}" for p in (REPO / "bench" / "results").iterdir() if not p.name.startswith(".")]
    for path in committed:
        assert path in outs, f"{path}: no command in bench/regenerate.py writes it"
    assert len(outs) == len(set(outs))
    assert regen.main(["--list", "--threads", "3"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in regen.SETS) and "--threads 3" in listing
