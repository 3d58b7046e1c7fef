"""``cs-fast bench --quick`` before and after a restructuring, alternated in one session: the ratios must agree.

    python bench/house_ab.py --before f1dc24c [--rounds 2] [--out bench/results/house-ab]

Checks out ``--before`` into a temporary git worktree and runs the quick benchmark report of that
commit and of this checkout in turn (before, after, before, after, ...), each in a fresh process
with the same arguments, so that both see the same machine state. It then compares, for every
row of ``ratios`` (cs_fast against a peer, per workload, operation and size), the median ratio of
each side, and the spread between rounds of one side as the noise. Writes ``ab.json`` and
``ab.txt`` to ``--out`` with the command and the load average.
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
            before, after = [], []
            for r in range(args.rounds):
                before.append(run_report(old, tmp / f"before{r}"))
                after.append(run_report(ROOT, tmp / f"after{r}"))
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
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ab.txt").write_text(text + "\n")
        (out / "ab.json").write_text(json.dumps(
            {"before": args.before, "rounds": args.rounds,
             "rows": [{"workload": k[0], "op": k[1], "n": k[2], "peer": k[3], "before": b, "after": a,
                       "after_over_before": q, "noise": s} for k, b, a, q, s in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
