"""Regenerate the committed results under bench/results/, one command per set, on the free cores.

    python bench/regenerate.py --list              # the commands, one per committed set
    python bench/regenerate.py SET [SET ...]       # run those sets (or: all)
    python bench/regenerate.py all --threads 2     # force a thread count

Every set is written only through an explicit ``--out`` (the commands'
defaults go to fresh folders). Threads: the cores the load average leaves
free (:func:`cs_fast_apps.bench.measure.free_cores`) unless ``--threads`` says
otherwise, passed to ``--threads`` where a command has it and to
``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` for all. A busy machine (load average above the free
cores the run needs) is refused unless ``--force``: the committed figures
should come from an idle machine. The sweeps use ``--seed 0 --same-seed``,
the seed the committed certificates were drawn with.
"""

import argparse
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R = "bench/results"

# name -> (what, command as a list; "{threads}" is replaced by the thread count)
SETS = {
    "bench-quick": ("cs-fast bench --quick, every workload, op and peer, plots and the end-to-end split",
                    ["-m", "cs_fast_apps.cli", "bench", "--quick", "--threads", "{threads}", "--out", f"{R}/amd-epyc"]),
    "bench-boxes-full": ("cs-fast bench on boxes min_median at the full sizes (n up to 10^5)",
                         ["-m", "cs_fast_apps.cli", "bench", "--workloads", "boxes", "--ops", "min_median", "--budget",
                          "30", "--no-end-to-end", "--threads", "{threads}", "--out", f"{R}/amd-epyc-boxes-full"]),
    "bench-center": ("cs-fast bench --center: the pruned exact center against brute force",
                     ["-m", "cs_fast_apps.cli", "bench", "--center", "--threads", "{threads}", "--out", f"{R}/prune"]),
    "house-ab": ("cs-fast bench --quick before (f1dc24c) and after the restructuring of issue 26, alternated",
                 ["bench/house_ab.py", "--before", "f1dc24c", "--rounds", "2", "--out", f"{R}/house-ab"]),
    "prune-switch": ("scan of the pruned center's switch from bounds to counting (PruneConfig.ratio) on jittered boxes",
                     ["bench/prune_switch.py", "--threads", "{threads}", "--out", f"{R}/prune/switch.txt"]),
    "center-core-cost": ("what an exact count must evaluate for rows near the center (kd-tree experiment)",
                         ["bench/center_core_cost.py", "--out", f"{R}/prune/core_cost.txt"]),
    "mixed-precision": ("sqfeat through the float32 GEMM with its bound, against float32 peers and float64",
                        ["bench/mixed_precision.py", "--perceptual", "--out", f"{R}/mixed-amd-epyc"]),
    "startup": ("cold and warm start of cs-fast certify on its defaults and import cs_fast, in fresh processes "
                "(every core: no thread limit, as a user runs it)",
                ["-m", "cs_fast_apps.bench.startup", "--runs", "3", "--out", f"{R}/startup-amd-epyc.json"]),
    "headline": ("the README's headline table",
                 ["bench/headline.py", "--threads", "{threads}", "--out", f"{R}/headline-amd-epyc-2core.json"]),
    "faces-astronaut": ("cs-fast faces on the astronaut crop (20,000 MTCNN runs per setting: hours)",
                        ["-m", "cs_fast_apps.cli", "faces", "--min-face-size", "60", "--seed", "0", "--same-seed",
                         "--out", f"{R}/faces-astronaut-amd-epyc"]),
    "faces-lfw0": ("cs-fast faces on LFW face 0",
                   ["-m", "cs_fast_apps.cli", "faces", "--photo", "lfw", "--eps1", "0.1", "0.3", "0.5", "--seed", "0",
                    "--same-seed", "--out", f"{R}/faces-lfw0-amd-epyc"]),
    "faces-authors-units": ("cs-fast faces --authors-units (the README's command; eps1 = 0.5 was committed from a "
                            "second run with --eps1 0.5 --seed 1)",
                            ["-m", "cs_fast_apps.cli", "faces", "--authors-units", "--n", "3000", "--m", "10000", "--eps1",
                             "0.1", "0.3", "0.5", "--h", "2", "--min-face-size", "80", "--threads", "{threads}",
                             "--seed", "0", "--batch-size", "250", "--out", f"{R}/faces-authors-units-amd-epyc"]),
    "audit": ("cs-fast audit: coverage and attacks of the certificates, exact bounds (the default)",
              ["-m", "cs_fast_apps.cli", "audit", "--seed", "9", "--threads", "{threads}", "--bounds", "exact",
               "--out", f"{R}/audit-amd-epyc"]),
    "exact-bounds": ("exact vs paper bounds on the same samples: digits autoencoder (tv), digits generator (LPIPS), "
                     "MTCNN faces (jaccard); about an hour, most of it MTCNN",
                     ["bench/exact_bounds.py", "--models", "digits", "perceptual", "faces", "--threads", "{threads}",
                      "--out", f"{R}/exact-bounds"]),
    "faces-timing": ("MTCNN per image and the non-model share of a face certificate",
                     ["bench/faces_timing.py", "--threads", "{threads}", "--out", f"{R}/faces-timing-amd-epyc.json"]),
    "perceptual": ("cs-fast perceptual, exact center",
                   ["-m", "cs_fast_apps.cli", "perceptual", "--seed", "0", "--same-seed",
                    "--out", f"{R}/perceptual-digits-amd-epyc"]),
    "perceptual-candidates30": ("cs-fast perceptual, 30 candidates",
                                ["-m", "cs_fast_apps.cli", "perceptual", "--candidates", "30", "--seed", "0", "--same-seed",
                                 "--out", f"{R}/perceptual-digits-amd-epyc/candidates30"]),
    "distributed": ("certificates per second in-process vs Ray 1 and 2 workers",
                    ["bench/distributed_throughput.py", "--inputs", "24", "--out", f"{R}/distributed-amd-epyc"]),
    "gpu-model": ("the H100 performance model of the device kernels (ptxas -v for sm_90 and sm_75; an estimate, no GPU needed)",
                  ["bench/gpu_model.py", "--out", f"{R}/gpu-model"]),
    "exact-ab": ("issue 24's before/after: the benchmarks' cs_fast calls on 3e8e45b (git worktree add /tmp/old "
                 "3e8e45b) and on this tree, interleaved",
                 ["bench/exact_ab.py", "--old", "/tmp/old", "--new", REPO, "--rounds", "3", "--reps", "5",
                  "--out", f"{R}/exact-ab"]),
    "mutation": ("mutation testing of bounds.py, smoothing.py, kernels/select.py (not a benchmark; tens of minutes)",
                 ["bench/mutation.py", "--out", f"{R}/mutation"]),
}


def command(name, threads):
    """The shell words of set ``name`` with ``threads`` threads."""
    return [sys.executable] + [w.replace("{threads}", str(threads)) for w in SETS[name][1]]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sets", nargs="*", help=f"'all' or some of: {', '.join(SETS)}")
    p.add_argument("--list", action="store_true", help="print the commands and exit")
    p.add_argument("--threads", type=int, default=None, help="threads (default: the free cores)")
    p.add_argument("--force", action="store_true", help="run even when the machine is busy")
    args = p.parse_args(argv)
    sys.path.insert(0, REPO)
    from cs_fast_apps.bench import measure

    threads = args.threads or measure.free_cores()
    if args.list or not args.sets:
        for name, (what, _) in SETS.items():
            words = ["python" if w == sys.executable else w for w in command(name, threads)]
            print(f"{name:24s} {' '.join(words)}\n{'':24s}   ({what})")
        return 0
    names = list(SETS) if args.sets == ["all"] else args.sets
    unknown = [n for n in names if n not in SETS]
    if unknown:
        p.error(f"unknown sets {', '.join(unknown)}; expected 'all' or some of {', '.join(SETS)}")
    status = measure.load_status(threads_used=threads)
    if status["busy"] and not args.force:
        print(f"regenerate: refusing: {status['warning']} (--force to run anyway)", file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    for name in names:
        cmd = command(name, threads)
        print(f"== {name}: {' '.join(cmd)}  (load average {measure.load_average():.2f}, {threads} threads)",
              flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=REPO, env=env)
        print(f"== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
