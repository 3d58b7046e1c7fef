"""Cold and warm start: what a new process pays before it does any work.

The CPU kernels are compiled by numba on first use and then served from its
on-disk cache (:mod:`cs_fast.kernels.cpu.runtime`). This measures, in fresh
processes, with an empty numba cache directory of its own (the repository's
``__pycache__`` is left alone):

* ``import cs_fast``;
* ``cs-fast certify`` on its defaults (the toy detector, n = 10^4, m = 10^5)
  with an empty cache (cold: compiles the kernels) and again (warm: loads
  them), and ``import torch`` for scale (the certify command needs it for
  the model).

Wall time and the children's CPU time (user + system) are reported, the
median over ``runs`` processes, with the load average: under load the wall
time grows, the CPU time much less. The certify runs also count the cs_fast
functions numba compiled (the most over the runs): the cold run compiles,
a warm run should compile none.

Run alone: ``python -m cs_fast_apps.bench.startup [--runs 3] [--out startup.json]``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from .measure import load_average

# `cs-fast certify`, counting the numba compilations of cs_fast's own functions (0 when all load
# from the cache): the count says cold or warm whatever the machine's load does to the timings.
_CERTIFY = """
import sys
from numba.core import event
import cs_fast.kernels.cpu.runtime as jit
compiled = []
class Count(event.Listener):
    def on_start(self, ev):
        if ev.data["dispatcher"].py_func.__code__.co_filename.startswith(jit.PACKAGE_DIR):
            compiled.append(1)
    def on_end(self, ev):
        pass
event.register("numba:compile", Count())
from cs_fast_apps.cli import main
status = main(["certify", *sys.argv[1:]])
print("compiled:", len(compiled), file=sys.stderr)
sys.exit(status)
"""
CERTIFY = [sys.executable, "-c", _CERTIFY]


def _timed(argv, env):
    """(wall s, children's user + sys CPU s, stderr) of one process; raises if it fails."""
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr[-2000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, proc.stderr


def _median(samples):
    result = {"wall_s": statistics.median(s[0] for s in samples), "cpu_s": statistics.median(s[1] for s in samples),
              "runs": len(samples)}
    counts = [int(line.split()[1]) for s in samples for line in s[2].splitlines() if line.startswith("compiled:")]
    if counts:
        result["kernels_compiled"] = max(counts)
    return result


def measure_startup(runs=3, certify_args=()):
    """Cold and warm start figures (a dict, JSON-ready); ``runs`` warm processes of each kind.

    ``certify_args`` are added to the certify command (the defaults when empty).
    """
    load_start = load_average()
    certify = CERTIFY + list(certify_args)
    with tempfile.TemporaryDirectory(prefix="cs_fast_numba_cache_") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        cold = _timed(certify, env)
        warm = [_timed(certify, env) for _ in range(runs)]
    env = dict(os.environ)
    result = {
        "certify_cold": _median([cold]),
        "certify_warm": _median(warm),
        "import_cs_fast": _median([_timed([sys.executable, "-c", "import cs_fast"], env) for _ in range(runs)]),
        "import_torch": _median([_timed([sys.executable, "-c", "import torch"], env) for _ in range(runs)]),
        "python_startup": _median([_timed([sys.executable, "-c", "pass"], env) for _ in range(runs)]),
        "command": " ".join(["cs-fast certify", *certify_args]) if certify_args else "cs-fast certify (defaults)",
        "load_average_start": load_start,
        "load_average_end": load_average(),
    }
    return result


def format_startup(s):
    """A few lines of text for :func:`measure_startup`'s result."""
    rows = [
        ("cs-fast certify, cold (compiles the kernels)", s["certify_cold"]),
        ("cs-fast certify, warm (kernels from numba's cache)", s["certify_warm"]),
        ("import cs_fast", s["import_cs_fast"]),
        ("import torch (for scale; certify's model needs it)", s["import_torch"]),
        ("python -c pass", s["python_startup"]),
    ]
    lines = ["start-up (fresh processes; median wall and CPU seconds):"]
    lines += [f"  {name:<52} {r['wall_s']:6.2f} s wall {r['cpu_s']:6.2f} s cpu  ({r['runs']} run(s))"
              + (f", {r['kernels_compiled']} functions compiled" if "kernels_compiled" in r else "")
              for name, r in rows]
    lines.append(f"  load average {s['load_average_start']} -> {s['load_average_end']}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cs_fast_apps.bench.startup", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="warm processes of each kind (default: %(default)s)")
    parser.add_argument("--out", help="also write the figures as JSON here (default: print only)")
    args = parser.parse_args(argv)
    result = measure_startup(args.runs)
    print(format_startup(result))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
