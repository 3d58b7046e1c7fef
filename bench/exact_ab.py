"""Before/after timing of issue 24 (exact distances) in one run: the benchmarks' own cs_fast calls, old and new code.

    git worktree add /tmp/old 3e8e45b
    PYTHONPATH=$PWD python bench/exact_ab.py --old /tmp/old --new $PWD --rounds 3 --out bench/results/exact-ab

Each round runs every case in a fresh process for the old tree, then for the
new one (``PYTHONPATH`` picks the tree), so load drifts hit both alike. A case
is the call the benchmark makes, on its data: ``cs-fast bench --quick``'s
cs_fast rows (every workload, op and quick size), ``bench/headline.py``'s two
rows, ``bench/mixed_precision.py``'s rows (with ``--perceptual``'s LPIPS exact
center), then inputs the new exactness is slower on (float64 outputs that are
now the canonical distances, samples far from zero). One thread for numba,
torch and BLAS; each figure is the least *process* time of ``--reps`` calls
after one untimed call (compilation, first touch), which a busy machine
disturbs less than wall time. The load average is recorded beside every
process's figures.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def cases():
    """``(group, name, builder)``: ``builder()`` returns the call to time (data made outside it)."""
    import numpy as np

    import cs_fast
    from cs_fast_apps.bench.workloads import default_workloads

    out = []
    for w in default_workloads():
        for op in ("pairwise", "to_center", "min_median"):
            for n in w.quick_sizes[op]:
                def build(w=w, op=op, n=n):
                    X = w.make(n)
                    if op == "pairwise":
                        return lambda: cs_fast.cdist(X, X, w.metric)
                    if op == "to_center":
                        return lambda: cs_fast.to_center(X, X[n // 2], w.metric)
                    return lambda: cs_fast.min_median(X, w.metric)
                out.append(("bench --quick", f"{w.key} {op} n={n}", build))

    def headline_tv():
        X = np.random.default_rng(0).random((2000, 3, 32, 32), dtype=np.float32)
        return lambda: cs_fast.cdist(X, X, "tv")

    def headline_boxes():
        rng = np.random.default_rng(0)
        xy = rng.random((10_000, 2))
        B = np.concatenate([xy, xy + 0.5 * rng.random((10_000, 2)) + 0.1], axis=1)
        return lambda: cs_fast.min_median(B, "jaccard")

    out += [("headline", "tv pairwise n=2000 3x32x32", headline_tv),
            ("headline", "min_median n=10^4 boxes", headline_boxes)]

    sq = {w.key: w for w in default_workloads()}["sqfeat4096"]
    for op, n in (("min_median", 1000), ("min_median", 4000), ("to_center", 10_000), ("pairwise", 1000)):
        def build(op=op, n=n):
            X = sq.make(n)
            return {"min_median": lambda: cs_fast.min_median(X, "sqfeat"),
                    "to_center": lambda: cs_fast.to_center(X, X[n // 2], "sqfeat"),
                    "pairwise": lambda: cs_fast.cdist(X, X, "sqfeat")}[op]
        out.append(("mixed precision", f"{op} n={n}", build))

    def lpips():
        import torch

        from cs_fast.models import perceptual

        model = perceptual.build()
        z = perceptual.test_latents(1)[0]
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            Z = torch.cat([model(z + 0.01 * torch.randn((500,) + z.shape, generator=g)) for _ in range(4)])
        w = model.weights
        return lambda: cs_fast.min_median(Z, "sqfeat", weights=w)

    out.append(("mixed precision", "lpips exact center n=2000", lpips))

    def adversarial(metric, dtype, n, shape, offset, rel, op="min_median", **params):
        def build():
            rng = np.random.default_rng(1)
            base = offset + max(offset, 1.0) * 0.3 * rng.standard_normal(shape)
            X = (base + max(offset, 1.0) * rel * rng.standard_normal((n,) + shape)).astype(dtype)
            if op == "pairwise":
                return lambda: cs_fast.cdist(X, X, metric, **params)
            return lambda: cs_fast.min_median(X, metric, **params)
        return build

    wts = np.random.default_rng(2).uniform(-4, 4, 256)
    out += [
        ("exactness costs", "tv float32 3x32x32 offset 1e4 noise 1e-4 min_median n=500",
         adversarial("tv", np.float32, 500, (3, 32, 32), 1e4, 1e-4)),
        ("exactness costs", "tv float64 3x32x32 offset 1e6 noise 1e-6 min_median n=500",
         adversarial("tv", np.float64, 500, (3, 32, 32), 1e6, 1e-6)),
        ("exactness costs", "tv float64 3x32x32 pairwise n=500 (float64 output: canonical)",
         adversarial("tv", np.float64, 500, (3, 32, 32), 0.0, 0.1, op="pairwise")),
        ("exactness costs", "l1 float64 d=4096 pairwise n=1000 (float64 output: canonical)",
         adversarial("l1", np.float64, 1000, (4096,), 0.0, 0.1, op="pairwise")),
        ("exactness costs", "sqfeat float64 d=4096 pairwise n=1000 (float64 output: canonical)",
         adversarial("sqfeat", np.float64, 1000, (4096,), 0.0, 0.1, op="pairwise")),
        ("exactness costs", "sqfeat weighted float32 d=256 offset 1e3 min_median n=2000",
         adversarial("sqfeat", np.float32, 2000, (256,), 1e3, 1e-3, weights=10.0 ** wts)),
        ("exactness costs", "angular float64 d=512 tilt 1e-9 min_median n=1000",
         adversarial("angular", np.float64, 1000, (512,), 1.0, 1e-9)),
    ]
    return out


def child(reps):
    """Time every case in this process (the tree on PYTHONPATH); print one JSON line."""
    import numba

    import cs_fast
    from cs_fast_apps.bench import measure

    measure.set_threads(1)
    numba.set_num_threads(1)
    res = {"tree": os.path.dirname(os.path.dirname(os.path.abspath(cs_fast.__file__))),
           "load_start": os.getloadavg(), "times": {}}
    for group, name, build in cases():
        fn = build()
        fn()  # compilation and first touch: not timed
        best = float("inf")
        for _ in range(reps):
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        res["times"][f"{group} | {name}"] = best
    res["load_end"] = os.getloadavg()
    print(json.dumps(res))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="the tree before (a worktree of the base commit)")
    p.add_argument("--new", required=True, help="the tree after")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", default=None, help="folder for ab.json and ab.txt")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.reps)
    runs = []
    for r in range(args.rounds):
        for side, tree in (("old", args.old), ("new", args.new)):
            env = dict(os.environ, PYTHONPATH=tree)
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--old", "-", "--new", "-",
                                   "--reps", str(args.reps)], env=env, capture_output=True, text=True, cwd=tree)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res.update(side=side, round=r)
            runs.append(res)
            print(f"round {r} {side}: load {res['load_start'][0]:.1f} -> {res['load_end'][0]:.1f}", flush=True)
    names = list(runs[0]["times"])
    rows = []
    for name in names:
        old = min(x["times"][name] for x in runs if x["side"] == "old")
        new = min(x["times"][name] for x in runs if x["side"] == "new")
        rows.append({"case": name, "old_s": old, "new_s": new, "new_over_old": new / old})
    lines = [f"before/after (least process time of {args.reps} calls, best of {args.rounds} interleaved rounds, "
             f"one thread); loads (1 min) per process: "
             + ", ".join(f"{x['side']}{x['round']} {x['load_start'][0]:.1f}-{x['load_end'][0]:.1f}" for x in runs),
             f"{'case':<92} {'old':>10} {'new':>10} {'new/old':>8}"]
    for row in rows:
        lines.append(f"{row['case']:<92} {row['old_s'] * 1e3:>8.2f}ms {row['new_s'] * 1e3:>8.2f}ms "
                     f"{row['new_over_old']:>8.3f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "ab.json"), "w") as f:
            json.dump({"command": "PYTHONPATH=$PWD python bench/exact_ab.py " + " ".join(argv or sys.argv[1:]),
                       "runs": runs, "rows": rows}, f, indent=1)
        with open(os.path.join(args.out, "ab.txt"), "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
