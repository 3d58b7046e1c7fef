"""Run the device-kernel tests (tests/cuda_sim) under the CUDA simulator.

``NUMBA_ENABLE_CUDASIM`` is read when numba is imported, which this process
has long done, so the simulator run needs a process of its own.
"""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest
from conftest import SIMULATOR_RUNS, SimulatorRuns

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _simulated_suite(config, selection):
    """Check one selection of tests/cuda_sim run under the simulator (started at collection, see conftest)."""
    runs = getattr(config, "cs_fast_simulator", None)
    proc = runs.result(selection) if runs is not None else SimulatorRuns.run(selection)
    assert not isinstance(proc, subprocess.TimeoutExpired), f"tests/cuda_sim -m {selection!r} ran past its time limit"
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    summary = output.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), summary
    assert "skipped" not in summary and "failed" not in summary, summary


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda is not installed")
def test_device_kernels_pass_under_the_cuda_simulator(request):
    """Every device module at small sizes, and a share of the long parameter grids (tests/cuda_sim/conftest.py)."""
    _simulated_suite(request.config, SIMULATOR_RUNS["test_device_kernels_pass_under_the_cuda_simulator"])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda is not installed")
def test_device_kernels_at_full_size_pass_under_the_cuda_simulator(request):
    """The rest: production block sizes, many-block selections, the fuzz and the full parameter grids."""
    _simulated_suite(request.config, SIMULATOR_RUNS["test_device_kernels_at_full_size_pass_under_the_cuda_simulator"])


def test_import_needs_no_numba_cuda():
    code = (
        "import sys\n"
        "sys.modules['numba.cuda'] = None  # as if numba-cuda were absent\n"
        "import numpy as np\n"
        "import cs_fast.kernels.cuda as ck\n"
        "try:\n"
        "    ck.pairwise('l1', np.zeros((1, 1)), np.zeros((1, 1)), 0, np.float64)\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    proc = _run(["-c", code])
    assert proc.returncode == 0, proc.stderr
    assert "numba-cuda" in proc.stdout and "pip install numba-cuda" in proc.stdout


def _ptx_signatures(nt):
    """(kernel selector, argument types) covering every kernel x reduction x dtype."""
    A2 = lambda dt: nt.Array(dt, 2, "C")  # noqa: E731
    A1 = lambda dt: nt.Array(dt, 1, "C")  # noqa: E731
    dtypes = {"mask": [nt.uint64]}
    for red in ("box", "l1", "sq", "l2", "grouped_l2", "angular", "tv", "tv2", "wsq"):
        dtypes[red] = [nt.float64, nt.float32]
    for red, dts in dtypes.items():
        arg = A1(nt.float64) if red == "wsq" else nt.int64  # weighted sqfeat: the device weights
        for dt in dts:
            for out in (nt.float64, nt.float32):
                for slot in (0, 1):  # generic, tiled
                    yield (red, slot), (A2(dt), A2(dt), arg, A2(out))
            for slot in (2, 3):  # to_center, paired
                yield (red, slot), (A2(dt), A2(dt), arg, A1(nt.float64))
    for dt, key in ((nt.float64, nt.uint64), (nt.float32, nt.uint32)):
        args = (A2(dt), A2(key), nt.int64, nt.int64, nt.uint64, nt.uint64, A1(nt.float64), A1(nt.float64))
        yield ("common", 1), args
    yield ("common", 2), (A1(nt.float64), nt.int64, nt.int64, A1(nt.float64), A1(nt.int64))
    # order_statistic's multi-block radix select
    yield ("common", 3), (nt.int64, A1(nt.uint64), A1(nt.int64), A1(nt.int64))
    for key in (nt.uint64, nt.uint32):
        yield ("common", 4), (A1(key), nt.uint64, nt.uint64, nt.uint64, nt.uint64, A1(nt.uint64), A1(nt.int64))
    yield ("common", 5), (A1(nt.int64), nt.uint64, A1(nt.uint64), A1(nt.int64))
    # to_center with a warp per row (the long sums)
    for red in ("l1", "sq", "l2"):
        for dt in (nt.float64, nt.float32):
            yield (red, 5), (A2(dt), A2(dt), nt.int64, A1(nt.float64))
    # the box min_median's float32 boxes and fused count-and-select
    yield ("l1_blocked", 0), (A2(nt.float32), A2(nt.float32), A2(nt.float32))
    yield ("box_fused", 0), (A2(nt.float64), A2(nt.float32))
    yield ("box_fused", 1), (A2(nt.float64), A2(nt.float32), A1(nt.int64), nt.int64, nt.int64, nt.int64, nt.uint64,
                             nt.uint64, A1(nt.float64), A1(nt.int64), A2(nt.float64), A2(nt.uint64), A1(nt.uint64))
    # min_median's survivors-only select (shared-memory keys, no find pass) and the fused count
    yield ("common", 6), (A2(nt.uint64), A1(nt.int64), A1(nt.int64), nt.int64, nt.int64, nt.int64, nt.uint64,
                          nt.uint64, A1(nt.uint64), A1(nt.int32))
    for red, dts in dtypes.items():
        if red == "box":
            continue
        arg = A1(nt.float64) if red == "wsq" else nt.int64
        for dt in dts:
            yield ("count", red, 0), (A2(dt), nt.int64, nt.int64, arg, nt.int64, A1(nt.float64), A1(nt.int64),
                                      A1(nt.int64), A1(nt.int64), A1(nt.float64))
            yield ("count", red, 1), (A2(dt), A1(nt.int64), A1(nt.int64), arg, A2(nt.float64))
    # the float32 count of l1 (tv) with its margin
    yield ("count", "l1", 3), (A2(nt.float32), nt.int64, nt.int64, nt.int64, nt.int64, A1(nt.float64), A1(nt.int64),
                               A1(nt.int64), A1(nt.int64), A1(nt.float64))
    # ... and over register-blocked tiles
    yield ("count", "l1", 4), (A2(nt.float32), nt.int64, nt.int64, nt.int64, nt.int64, A1(nt.float64), A1(nt.int64),
                               A1(nt.int64), A1(nt.int64), A1(nt.float64))


@pytest.mark.slow
def test_kernels_compile_to_ptx_for_a_real_gpu(ptx_target):
    """Type-check and compile every kernel for the real CUDA target (sm_80), no GPU needed.

    The simulator runs the kernels as Python, so it cannot catch what only the
    compiler rejects (a non-constant shared-array shape, uint64/int64 mixing).
    Needs libNVVM (pip install nvidia-nvvm, or numba-cuda[cu13]); skips without it.
    """
    cuda, nt = ptx_target
    from cs_fast.kernels import reductions
    from cs_fast.kernels.cuda import blocked, box, direct, radix, runtime
    from cs_fast.kernels.cuda import count as fused_count

    config = runtime.DEFAULT
    rows = radix.row_select(config.shared_keys)
    multi = radix.multiblock_select()
    # The kernels by the selectors of _ptx_signatures (production sizes: small=False).
    common = (None, rows.select_rows, radix.fold_kernel(), multi.select_init, multi.select_histogram,
              multi.select_digit, rows.select_slots)
    count = 0
    for (group, *rest), args in _ptx_signatures(nt):
        slot = rest[-1]
        kernels = (common if group == "common"
                   else box.box_kernels(config.box_margin, config.box_tiny, config.box_check_sweeps,
                                        config.shared_keys) if group == "box_fused"
                   else blocked.kernel("l1", wide=False, small=False) if group == "l1_blocked"
                   else fused_count.kernels(rest[0], small=False) if group == "count"
                   else direct.reduction_kernels(reductions.get(group), False))
        kernel = kernels[slot]
        if kernel is None:  # no tiled kernel for this reduction
            continue
        if isinstance(kernel, tuple):  # (kernel, rows a block, threads a side): the blocked count
            kernel = kernel[0]
        ptx, _ = cuda.compile_ptx(kernel.py_func, args, cc=(8, 0))
        assert ".entry" in ptx
        count += 1
    # 38 pairwise + 13 to_center + 13 paired + 2 select + 1 fold, and issue 15's 4 multi-block
    # select + 6 warp-per-row to_center + the register-blocked float32 l1 + 2 box kernels, and the
    # survivors' select + the fused count and survivors' rows of 5 reductions x 2 dtypes (mask: 1)
    # + the float32 l1 count, one-pair-a-thread and register-blocked; the canonical tv, tv2 and wsq
    # (3 reductions x 2 dtypes: the generic kernel for 2 outputs, to_center, paired; the count and rows)
    assert count == 80 + 1 + 2 * 11 + 2 + 3 * 2 * 4 + 3 * 2 * 2


def test_deferred_check_kernels_compile_to_ptx(ptx_target):
    """The device ledger of the certification pipeline's deferred checks, for a real GPU (sm_80)."""
    cuda, nt = ptx_target
    import cs_fast.kernels.cuda.featurize as kf

    kernels = kf.kernels()
    A = lambda dt, nd=1: nt.Array(dt, nd, "C")  # noqa: E731
    for name, args in [("zero_ints", (A(nt.int32),)), ("ledger_init", (A(nt.int64, 2),)),
                       ("count_into", (A(nt.int32), nt.int64, A(nt.int64, 2), nt.int64, nt.int64))]:
        ptx, _ = cuda.compile_ptx(kernels[name].py_func, args, cc=(8, 0))
        assert ".entry" in ptx, name


@pytest.mark.slow
def test_register_blocked_kernels_compile_to_ptx(ptx_target):
    """cuda/blocked's kernels, every reduction, both modes and the dtypes pairwise/min_median pass (sm_80)."""
    cuda, nt = ptx_target
    import cs_fast.kernels.cuda.blocked as cb

    A2 = lambda dt: nt.Array(dt, 2, "C")  # noqa: E731
    f32, f64 = nt.float32, nt.float64
    count = 0
    for red in cb.REDUCTIONS:
        for wide, ins, outs in ((False, (f32,), (f32,)), (True, (f32, f64), (f32, f64))):
            kernel = cb.kernel(red, wide, small=False)[0]
            for dt in ins:
                for out in outs:
                    ptx, _ = cuda.compile_ptx(kernel.py_func, (A2(dt), A2(dt), A2(out)), cc=(8, 0))
                    assert ".entry" in ptx and "bar.sync" in ptx
                    count += 1
    assert count == 15


@pytest.mark.slow
def test_gpu_model_quick_mode_compiles_and_estimates(ptx_target, tmp_path):
    """bench/gpu_model.py --quick: five kernels through ptxas for sm_90 and the H100 estimate, in CI.

    Guards the committed model (bench/results/gpu-model): no spills, registers
    within full-occupancy budgets, and every workload's figure shown with its
    arithmetic and marked as an estimate. Skips without libNVVM or ptxas.
    """
    import shutil

    if not (os.environ.get("PTXAS") or shutil.which("ptxas") or os.path.exists("/usr/local/bin/ptxas")):
        pytest.skip("ptxas is not installed")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    proc = _run(["bench/gpu_model.py", "--quick", "--out", str(tmp_path)], env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json

    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["estimate"] is True and doc["quick"] is True
    assert len(doc["kernels"]) == 5
    for name, entry in doc["kernels"].items():
        r = entry["sm_90"]
        assert r["spill_store_bytes"] == 0 and r["spill_load_bytes"] == 0, name
        # the register-blocked l1 holds 4 x 4 float32 and float64 sums a thread (118 on sm_90 when committed);
        # the box count's float64 fallback is the relative-error box formula (66 on sm_90: three 256-thread
        # blocks an SM instead of four; forcing 64 spills)
        limit = 128 if "blocked" in name else 72 if name.startswith("box_rows") else 64
        assert r["registers"] <= limit, (name, r["registers"])
    names = [w["name"] for w in doc["workloads"]]
    assert any("boxes min_median" in n for n in names) and any("order_statistic" in n for n in names)
    assert all(w["arithmetic"] for w in doc["workloads"])
    text = (tmp_path / "model.md").read_text()
    assert "ESTIMATE" in text and "ptxas -v" in text
