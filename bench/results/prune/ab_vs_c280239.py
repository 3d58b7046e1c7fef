"""A/B in one process: brute force, the pruned search at c280239 (cs_fast_old), and the working tree's.

Setup (the old package under another name, so both import side by side):
    mkdir -p /tmp/pr/oldpkg && git archive c280239 cs_fast | tar -x -C /tmp/pr/oldpkg
    mv /tmp/pr/oldpkg/cs_fast /tmp/pr/oldpkg/cs_fast_old
Run from the worktree root (PYTHONPATH=$PWD):
    python bench/results/prune/ab_vs_c280239.py boxes_jittered 100000 1 3
One thread is timed with time.thread_time (CPU time of the calling thread, which runs
numba's one worker): on the shared machine under load 5-50 it moved far less than wall time.
Same data, same tile, interleaved repeats, best of the repeats; prints the load range.
"""
import os, sys, time, numpy as np, numba
sys.path.insert(0, os.getcwd()); sys.path.insert(1, "/tmp/pr/oldpkg")
import cs_fast
from cs_fast.kernels import prune as new
from cs_fast_old.kernels import prune as old
from cs_fast.metrics import get_metric, check_metric_params, reduction_for
from cs_fast_apps.bench.center import MAKERS
work = sys.argv[1]; n = int(sys.argv[2]); threads = int(sys.argv[3]); reps = int(sys.argv[4]) if len(sys.argv) > 4 else 2
impls = sys.argv[5].split(",") if len(sys.argv) > 5 else ["brute", "old", "new"]
numba.set_num_threads(threads)
metric, make = MAKERS[work]
def feats(Z):
    m = get_metric(metric); p = check_metric_params(m, {})
    F = m.featurize(m.prepare(Z, "Z", p), p); return F, reduction_for(m, F)
def tile_for(n):
    return max(threads, min(1024, (256 * 2**20) // (8 * n + 8 * min(n, n // 4 + 4096))))
W = make(np.random.default_rng([0, 1]), 3000)
FW, red = feats(W)
old.min_median(red, FW.data, FW.arg, tile_for(3000)); new.min_median(red, FW.data, FW.arg, tile_for(3000))
cs_fast.min_median(W, metric, method="brute")
Z = make(np.random.default_rng([0, n]), n)
F, red = feats(Z)
clock = time.thread_time if threads == 1 else time.perf_counter
fns = {"brute": lambda st: cs_fast.min_median(Z, metric, method="brute"),
       "old": lambda st: old.min_median(red, F.data, F.arg, tile_for(n), stats=st),
       "new": lambda st: new.min_median(red, F.data, F.arg, tile_for(n), stats=st)}
best = {}; frac = {}; answers = {}; loads = []
for rep in range(reps):
    for name in impls:
        st = {}; loads.append(os.getloadavg()[0])
        t0 = clock(); r = fns[name](st); t = clock() - t0
        answers[name] = (int(r[0]), float(r[1])); best[name] = min(best.get(name, 9e9), t); frac[name] = st.get("fraction")
same = len(set(answers.values())) == 1
line = f"{work} n={n} threads={threads} clock={'thread_time' if threads == 1 else 'wall'} reps={reps} same={same} load {min(loads):.1f}-{max(loads):.1f}: " + ", ".join(
    f"{k} {v:.3f} s" + (f" ({100 * frac[k]:.2f} % evaluated)" if frac[k] else "") for k, v in best.items())
if "brute" in best:
    line += " | vs brute: " + ", ".join(f"{k} {best['brute'] / v:.2f}x" for k, v in best.items() if k != "brute")
print(line, flush=True)
