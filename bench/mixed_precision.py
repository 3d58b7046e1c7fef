"""Targets of the mixed-precision sq path (issue 13), timed in one run on the same data.

For ``sqfeat`` d = 4096 (the ``cs-fast bench`` workload ``sqfeat4096``):
``min_median`` at n = 1000 and 4000, ``to_center`` at n = 10**4, pairwise at
n = 1000; cs_fast against the fastest float32 peers (numpy / torch GEMM and a
selection) and against cs_fast's previous float64 path. Every implementation
gets the same number of repeats, interleaved (so load drifts hit them alike);
the minimum is reported, with the load average before and after. Each row also
checks the answer: ``min_median`` index and radius against brute force over
the canonical float64 distances (identical, bit for bit), pairwise against the
float64 reference (within ``mixed_precision.CDIST_RTOL``).

``--perceptual`` adds the LPIPS exact center of ``cs-fast perceptual``
(n = 2000 samples of 5824 features; the README's committed figure: 1.35 s).

Run from the repository root::

    PYTHONPATH=$PWD python bench/mixed_precision.py --perceptual --out bench/results/mixed-amd-epyc

One thread for cs_fast and every peer by default (``--threads N``: numba,
torch and every loaded BLAS through threadpoolctl); the JSON's machine record
lists the pools and their thread counts.
"""

import argparse
import json
import os
import time

import numpy as np

import cs_fast
from cs_fast_apps.bench import measure, peers
from cs_fast_apps.bench.workloads import default_workloads
from cs_fast.kernels.cpu import distances, mixed
from cs_fast.kernels import mixed_precision as mp


def _time(fns, reps):
    """Minimum seconds of each callable over ``reps`` interleaved rounds (after one warm-up call each)."""
    outs = {name: fn() for name, fn in fns.items()}
    best = {name: np.inf for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best, outs


def _brute_force64(F, k):
    """Index and lower median from every canonical float64 row (cs_fast's to_center kernel)."""
    n = len(F)
    meds = np.empty(n)
    row = np.empty((1, n))
    for i in range(n):
        distances.sq_rows(F, F[i:i + 1], row)
        meds[i] = np.partition(row[0], k - 1)[k - 1]
    i = int(np.argmin(meds))
    return i, float(meds[i])


def run_targets(reps, check_brute_force=True, log=print):
    w = next(w for w in default_workloads() if w.key == "sqfeat4096")
    rows = []
    plans = [("min_median", 1000), ("min_median", 4000), ("to_center", 10000), ("pairwise", 1000)]
    for op, n in plans:
        X = w.make(n)
        args = (X,) if op == "min_median" else ((X, X[n // 2]) if op == "to_center" else (X, X))
        fns = {"cs_fast": {"min_median": lambda: cs_fast.min_median(X, "sqfeat"),
                           "to_center": lambda: cs_fast.to_center(X, X[n // 2], "sqfeat"),
                           "pairwise": lambda: cs_fast.cdist(X, X, "sqfeat")}[op]}
        for impl in peers.peers("sqfeat", op):
            if impl.name.startswith(("numpy GEMM", "numpy row", "torch GEMM", "full+np.partition", "cs_fast float64")):
                fns[impl.name] = (lambda impl=impl: impl.fn(*args))
        measure.set_threads(measure.threads())  # again: also limits the BLAS/OpenMP pools the peers loaded
        load0 = measure.load_average()
        best, outs = _time(fns, reps)
        load1 = measure.load_average()
        check = {}
        if op == "min_median":
            stats = {}
            mixed.min_median("sq", np.ascontiguousarray(X), 0, n, stats=stats)
            check["rows_given_an_interval"] = stats["candidates"]
            check["rows_refined"] = stats["refined"]
            check["float64_distances_summed"] = stats["summed"]
            if check_brute_force:
                check["brute_force_float64"] = list(_brute_force64(X, (n + 1) // 2))
                check["identical"] = list(outs["cs_fast"]) == check["brute_force_float64"]
        elif op == "pairwise":
            ref = outs["cs_fast float64 (previous)"].astype(np.float64)
            got = outs["cs_fast"].astype(np.float64)
            check["max_rel_diff_vs_float64"] = float(np.max(np.abs(got - ref) / np.maximum(ref, 1e-300)
                                                            * (ref > 0)))
            check["stated_bound"] = mp.CDIST_RTOL
        else:
            ref = outs["cs_fast float64 (previous)"]
            pos = ref > 0
            check["max_rel_diff_vs_previous"] = float(np.max(np.abs(outs["cs_fast"] - ref)[pos] / ref[pos]))
        row = {"op": op, "n": n, "d": 4096, "seconds": best, "reps": reps, "load_average": [load0, load1],
               "ratio_peer_over_cs_fast": {k: best[k] / best["cs_fast"] for k in best if k != "cs_fast"},
               "check": check}
        rows.append(row)
        log(_format(row))
    return rows


def _format(row):
    parts = [f"{row['op']} n={row['n']}: cs_fast {row['seconds']['cs_fast'] * 1e3:.1f} ms"]
    for k, v in row["seconds"].items():
        if k != "cs_fast":
            parts.append(f"{k} {v * 1e3:.1f} ms ({row['ratio_peer_over_cs_fast'][k]:.2f}x)")
    return "; ".join(parts) + f" | load {row['load_average']} | {row['check']}"


def run_perceptual(reps, n=2000, log=print):
    """The LPIPS exact center (``cs-fast perceptual``'s ``exact_s``) and the previous float64 path on the same samples."""
    import torch

    from cs_fast.models import perceptual

    model = perceptual.build()
    z = perceptual.test_latents(1)[0]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        Z = torch.cat([model(z + 0.01 * torch.randn((min(500, n - i),) + z.shape, generator=g))
                       for i in range(0, n, 500)])
    w = model.weights
    Fw = np.ascontiguousarray((Z.numpy() * np.sqrt(np.asarray(w, np.float64))).astype(np.float32))
    previous = peers.previous_float64("min_median")
    measure.set_threads(measure.threads())
    load0 = measure.load_average()
    best, outs = _time({"cs_fast": lambda: cs_fast.min_median(Z, "sqfeat", weights=w),
                        "cs_fast float64 (previous)": lambda: previous(Fw)}, reps)
    row = {"op": "lpips exact center", "n": n, "d": int(Z.shape[1]), "seconds": best, "reps": reps,
           "load_average": [load0, measure.load_average()], "committed_readme_s": 1.35,
           "ratio_peer_over_cs_fast": {"cs_fast float64 (previous)": best["cs_fast float64 (previous)"] / best["cs_fast"]},
           "check": {"index": outs["cs_fast"][0], "previous_index": outs["cs_fast float64 (previous)"][0],
                     "radius": outs["cs_fast"][1], "previous_radius": outs["cs_fast float64 (previous)"][1]}}
    log(_format(row))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--perceptual", action="store_true", help="also time the LPIPS exact center (n = 2000)")
    parser.add_argument("--no-brute-force", action="store_true", help="skip the O(n^2 d) float64 brute-force check")
    parser.add_argument("--out", default=None, help="folder for mixed_precision.json and .txt")
    parser.add_argument("--threads", type=int, default=1,
                        help="numba, torch and BLAS threads, one count for cs_fast and every peer (default 1)")
    args = parser.parse_args(argv)
    measure.set_threads(args.threads)
    lines = []

    def log(line):
        print(line, flush=True)
        lines.append(line)

    rows = run_targets(args.reps, not args.no_brute_force, log)
    if args.perceptual:
        rows.append(run_perceptual(args.reps, log=log))
    meta = measure.machine()  # after the runs: every pool they loaded, with the counts they ran with
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "mixed_precision.json"), "w") as fh:
            json.dump({"machine": meta, "rows": rows}, fh, indent=1, default=str)
        with open(os.path.join(args.out, "mixed_precision.txt"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
