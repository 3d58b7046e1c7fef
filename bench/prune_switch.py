"""When the pruned center should stop computing full rows for bounds: a scan of the pruned search's ``ratio``.

    python bench/prune_switch.py [--threads 1] [--out bench/results/prune/switch.txt]

For cheap distances (boxes) :func:`cs_fast.kernels.cpu.prune.min_median` computes
rows in full to tighten the triangle-inequality bounds until a tile of ``m``
full rows settles fewer than ``ratio * m`` other rows, then gives the rest the
counting pass. A full row costs its ``n`` distances plus a selection and a
pass over every bound; a counted row stops early. This scan times the pruned
search for several ``ratio`` (:class:`cs_fast.kernels.cpu.prune.PruneConfig`) on jittered boxes (brute force in the same run
for the ratio), best of three, and the default is set from it. The result is
exact whatever ``ratio`` is (each row is checked against brute force here).
"""

import argparse
import dataclasses
import os
import sys
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--ratios", type=float, nargs="+", default=[2.0, 4.0, 8.0, 16.0, 32.0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import numba

    numba.set_num_threads(args.threads)
    import cs_fast
    from cs_fast_apps.bench import measure
    from cs_fast_apps.bench.center import jittered
    from cs_fast.kernels.cpu import prune

    from cs_fast.bindings.distance import host_tile

    default = prune.DEFAULT_CONFIG.ratio
    jaccard = cs_fast.get_metric("jaccard")
    warm = jittered(np.random.default_rng(1), 300)
    cs_fast.min_median(warm, "jaccard", method="brute")
    cs_fast.min_median(warm, "jaccard", method="pruned")
    lines = [f"threads {args.threads}, load average at start {measure.load_average()}, default RATIO {default}",
             f"{'n':>8}{'impl':>14}{'time s':>9}{'vs brute':>10}{'evaluated':>11}{'full':>7}{'counted':>9}"]

    def best_of(fn, reps=3):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    for n in args.sizes:
        Z = jittered(np.random.default_rng([0, n]), n)
        tb, ref = best_of(lambda: cs_fast.min_median(Z, "jaccard", method="brute"))
        lines.append(f"{n:>8}{'brute':>14}{tb:>9.3f}{'1':>10}")
        F = jaccard.featurize(jaccard.prepare(Z, "Z", {}), {})
        tile = host_tile(jaccard.reduction, n, "pruned")
        for ratio in args.ratios:
            config = dataclasses.replace(prune.DEFAULT_CONFIG, ratio=ratio)
            st = {}
            tp, got = best_of(lambda: prune.min_median(jaccard.reduction, F.data, F.arg, tile, stats=st,
                                                       config=config))
            if (int(got[0]), float(got[1])) != ref:
                raise AssertionError(f"RATIO {ratio}, n {n}: pruned {got} != brute {ref}")
            lines.append(f"{n:>8}{'RATIO ' + format(ratio, 'g'):>14}{tp:>9.3f}{tb / tp:>9.2f}x"
                         f"{100 * (st['evaluated'] + st['recomputed']) / st['pairs']:>10.2f}%{st['rows_full']:>7}{st['rows_counted']:>9}")
            print(lines[-1], flush=True)
    lines.append(f"load average at end {measure.load_average()}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as fh:
            fh.write(f"$ python bench/prune_switch.py --threads {args.threads}\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
