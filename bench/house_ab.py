"""``cs-fast bench --quick`` before and after a restructuring, alternated in one session: the ratios must agree.

    python bench/house_ab.py --before f1dc24c [--rounds 2] [--out bench/results/house-ab]

Checks out ``--before`` into a temporary git worktree and runs the quick benchmark report of that
commit and of this checkout in turn (before, after, before, after, ...), each in a fresh process
with the same arguments, so that both see the same machine state. It then compares, for every
row of ``ratios`` (cs_fast against a peer, per workload, operation and size), the median ratio of
each side, and the spread between rounds of one side as the noise. A ratio moves when either side
does, so each round also times cs_fast's own ``to_center`` (best of 30 calls) on a few workloads.
Writes ``ab.json``, ``ab.txt`` and ``to_center.txt`` to ``--out`` with the command and the load
average.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--quick", "--no-plots", "--no-startup", "--no-end-to-end"]


def _module(checkout):
    """The report's module in ``checkout`` (it moved from the library to the applications)."""
    return "cs_fast_apps.bench" if (checkout / "cs_fast_apps" / "bench").is_dir() else "cs_fast.bench"


def run_report(checkout, out):
    env = dict(os.environ, PYTHONPATH=str(checkout))
    subprocess.run([sys.executable, "-m", _module(checkout), *ARGS, "--out", str(out)], cwd=checkout, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "results.json").read_text())


# cs_fast.to_center alone, best of 30 calls, float32 inputs: (metric, per-sample shape, n).
TO_CENTER = [("tv", (1, 28, 28), 10_000), ("tv", (1, 28, 28), 1_000), ("jaccard", (4,), 1_000),
             ("tv", (3, 32, 32), 5_000), ("sqfeat", (4096,), 1_000)]
_TIMER = """
import json, sys, time
import numpy as np
import cs_fast
rng = np.random.default_rng(0)
out = []
for metric, shape, n in json.loads(sys.argv[1]):
    Z = rng.random([n] + shape).astype(np.float32)
    if metric == "jaccard":
        Z = np.concatenate([Z[:, :2], Z[:, :2] + Z[:, 2:]], axis=1)
    cs_fast.to_center(Z, Z[0], metric)
    best = float("inf")
    for _ in range(30):
        t0 = time.perf_counter()
        cs_fast.to_center(Z, Z[0], metric)
        best = min(best, time.perf_counter() - t0)
    out.append(best)
print(json.dumps(out))
"""


def to_center_times(checkout):
    """Seconds of ``cs_fast.to_center`` for each of :data:`TO_CENTER`, in ``checkout``'s library."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    proc = subprocess.run([sys.executable, "-c", _TIMER, json.dumps(TO_CENTER)], cwd=checkout, env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _key(row):
    return row["workload"], row["op"], row["n"], row["peer"]


def compare(before, after):
    """Rows of (key, median before, median after, after / before, noise): noise is the larger relative spread."""
    table = {}
    for side, runs in (("before", before), ("after", after)):
        for run in runs:
            for row in run["ratios"]:
                table.setdefault(_key(row), {"before": [], "after": []})[side].append(row["ratio"])
    rows = []
    for key, sides in sorted(table.items(), key=lambda kv: str(kv[0])):
        if not sides["before"] or not sides["after"]:
            continue
        b, a = statistics.median(sides["before"]), statistics.median(sides["after"])
        spread = max((max(v) - min(v)) / statistics.median(v) for v in sides.values())
        rows.append((key, b, a, a / b, spread))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the commit to compare against")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "before"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(old), args.before], cwd=ROOT, check=True)
        try:
            before, after, times = [], [], []
            for r in range(args.rounds):
                before.append(run_report(old, tmp / f"before{r}"))
                after.append(run_report(ROOT, tmp / f"after{r}"))
                times.append((to_center_times(old), to_center_times(ROOT)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
    rows = compare(before, after)
    ratios = [r[3] for r in rows]
    lines = [f"$ python bench/house_ab.py --before {args.before} --rounds {args.rounds}",
             f"load average at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}",
             f"{len(rows)} ratios (cs_fast vs a peer); after/before: median {statistics.median(ratios):.3f}, "
             f"min {min(ratios):.3f}, max {max(ratios):.3f}",
             f"{'workload':<12}{'op':<11}{'n':>7}  {'peer':<28}{'before':>9}{'after':>9}{'a/b':>7}{'noise':>7}"]
    for (workload, op, n, peer), b, a, q, spread in rows:
        lines.append(f"{workload:<12}{op:<11}{n:>7}  {peer[:27]:<28}{b:>9.3g}{a:>9.3g}{q:>7.2f}{spread:>7.2f}")
    text = "\n".join(lines)
    print(text)
    timing = [f"$ python bench/house_ab.py --before {args.before} --rounds {args.rounds}   (cs_fast.to_center alone, "
              "best of 30 calls, float32; ms)",
              f"{'workload':<24}" + "".join(f"{'before ' + str(r + 1):>11}{'after ' + str(r + 1):>10}"
                                             for r in range(args.rounds))]
    for i, (metric, shape, n) in enumerate(TO_CENTER):
        cells = "".join(f"{b[i] * 1e3:>11.3f}{a[i] * 1e3:>10.3f}" for b, a in times)
        timing.append(f"{metric + str(tuple(shape)) + ' n=' + str(n):<24}{cells}")
    print("\n".join(timing))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ab.txt").write_text(text + "\n")
        (out / "to_center.txt").write_text("\n".join(timing) + "\n")
        (out / "ab.json").write_text(json.dumps(
            {"before": args.before, "rounds": args.rounds,
             "to_center": [{"metric": m, "shape": list(sh), "n": n,
                            "before_s": [b[i] for b, _ in times], "after_s": [a[i] for _, a in times]}
                           for i, (m, sh, n) in enumerate(TO_CENTER)],
             "rows": [{"workload": k[0], "op": k[1], "n": k[2], "peer": k[3], "before": b, "after": a,
                       "after_over_before": q, "noise": s} for k, b, a, q, s in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
