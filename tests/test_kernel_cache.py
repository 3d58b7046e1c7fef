"""Warm start: the CPU kernels come from numba's on-disk cache in every process after the first.

Checked through numba's compile events (``numba:compile`` fires only when a
function is really compiled, not when it is loaded from the cache), never by
timing. Each check runs fresh processes with a cache directory of its own.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Counts the compile events of cs_fast's own functions, then runs the code after it.
_COUNT = """
import json, os, sys
from numba.core import event
import cs_fast.kernels.cpu.runtime as jit
package = os.path.dirname(os.path.dirname(os.path.abspath(jit.__file__))) + os.sep
compiled = []
class Count(event.Listener):
    def on_start(self, ev):
        f = ev.data["dispatcher"].py_func.__code__.co_filename
        if f.startswith(package):
            compiled.append(ev.data["dispatcher"].py_func.__qualname__)
    def on_end(self, ev):
        pass
event.register("numba:compile", Count())
"""

_WORK = _COUNT + """
import numpy as np
import cs_fast
rng = np.random.default_rng(0)
A = rng.random((9, 5)); B = rng.random((9, 5))
xy = rng.random((30, 2)) * 10
boxes = np.concatenate([xy, xy + 1 + rng.random((30, 2)) * 3], axis=1)
out = {
    "l1": cs_fast.paired(A, B, metric="cityblock").tolist(),
    "sq": cs_fast.paired(A, B, metric="sqeuclidean").tolist(),
    "center": [float(v) for v in cs_fast.min_median(boxes, metric="jaccard")],
}
print(json.dumps({"compiled": compiled, "out": out}))
"""


def _run(code, env, cwd=ROOT):
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _env(pythonpath, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    env.update(PYTHONPATH=str(pythonpath), NUMBA_NUM_THREADS="2", **extra)
    return env


def _result(proc):
    import json

    return json.loads(proc.stdout.strip().splitlines()[-1])


def _copy_package(tmp_path):
    # Run with cwd=tmp_path: python -c puts the working directory first on sys.path.
    dest = tmp_path / "src"
    shutil.copytree(ROOT / "cs_fast", dest / "cs_fast", ignore=shutil.ignore_patterns("__pycache__", "weights"))
    return dest


def test_import_compiles_nothing(tmp_path):
    proc = _run(_COUNT + "import cs_fast, cs_fast_apps.cli, cs_fast.kernels.cpu\nprint(compiled)\n",
                _env(ROOT, NUMBA_CACHE_DIR=str(tmp_path)))
    assert proc.stdout.strip() == "[]"


def test_second_process_loads_kernels_from_the_cache(tmp_path):
    env = _env(ROOT, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    first = _result(_run(_WORK, env))
    second = _result(_run(_WORK, env))
    assert first["compiled"], "the first process should compile (empty cache directory)"
    assert second["compiled"] == [], f"recompiled instead of loading from the cache: {second['compiled']}"
    # Same results, and l1 and sq (same signature, different pair function) did not share a cache entry.
    assert second["out"] == first["out"]
    assert second["out"]["l1"] != second["out"]["sq"]
    assert any(p.suffix == ".nbc" for p in (tmp_path / "cache").rglob("*"))


@pytest.mark.slow
def test_cli_says_once_that_it_compiles(tmp_path):
    env = _env(ROOT, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    args = ["-m", "cs_fast_apps.cli", "certify", "--n", "800", "--m", "2000", "--seed", "0"]
    runs = [subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600) for _ in range(2)]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr[-4000:]
    assert runs[0].stderr.count("compiling the numba kernels") == 1, runs[0].stderr
    assert "compiling" not in runs[1].stderr, runs[1].stderr
    assert runs[0].stdout == runs[1].stdout


def test_edited_kernel_sources_are_not_served_stale(tmp_path):
    # numba itself checks only the cached function's own file; the pair functions live in pair.py.
    src = _copy_package(tmp_path)
    env = _env(src, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    # Two disjoint boxes: distance 1, from box_value in pair.py (distances.py's generic rows driver inlines it).
    code = _COUNT + ("import numpy as np, cs_fast\nprint(cs_fast.paired(np.array([[0, 0, 1, 1.0]] * 2), "
                     "np.array([[2, 2, 3, 3.0]] * 2), metric='jaccard').tolist())\n")
    assert _run(code, env, cwd=tmp_path).stdout.strip().splitlines()[-1] == "[1.0, 1.0]"
    pair_py = src / "cs_fast" / "kernels" / "pair.py"
    text = pair_py.read_text()
    edited = text.replace("apart = 0.0 if (ax2 <= ax1) & (bx2 <= bx1) else 1.0",
                          "apart = 0.0 if (ax2 <= ax1) & (bx2 <= bx1) else 2.0")
    assert edited != text
    pair_py.write_text(edited)
    assert _run(code, env, cwd=tmp_path).stdout.strip().splitlines()[-1] == "[2.0, 2.0]"


def test_read_only_package_caches_in_the_user_cache(tmp_path):
    # A package directory numba cannot write to (here: __pycache__ is a file, which blocks even
    # root): the kernels are cached in the user-wide cache directory instead.
    src = _copy_package(tmp_path)
    for d in (src / "cs_fast").rglob("*"):
        if d.is_dir():
            (d / "__pycache__").write_text("")
    (src / "cs_fast" / "__pycache__").write_text("")
    env = _env(src, XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONDONTWRITEBYTECODE="1")
    first = _result(_run(_WORK, env, cwd=tmp_path))
    second = _result(_run(_WORK, env, cwd=tmp_path))
    assert first["compiled"] and second["compiled"] == []
    assert any(p.suffix == ".nbc" for p in (tmp_path / "xdg" / "numba").rglob("*"))


def test_no_writable_cache_anywhere_still_works(tmp_path):
    src = _copy_package(tmp_path)
    (src / "cs_fast" / "kernels" / "__pycache__").write_text("")
    (tmp_path / "xdg").write_text("")  # the user cache directory cannot be created either
    env = _env(src, XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONDONTWRITEBYTECODE="1")
    code = "import numpy as np, cs_fast\nprint(cs_fast.paired(np.zeros((2, 3)), np.ones((2, 3)), metric='cityblock').tolist())\n"
    assert _run(code, env, cwd=tmp_path).stdout.strip() == "[3.0, 3.0]"
