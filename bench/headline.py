"""The README's headline ratios: the issue targets, cs_fast and its peers in one run on the same data.

    python bench/headline.py [--out bench/results/headline.json] [--reps 3] [--threads auto]

1. pairwise ``tv`` for n = 2000 images of 3x32x32 against scipy ``cdist(cityblock)`` and
   ``torch.cdist(p=1)`` on the same finite-difference features;
2. ``min_median`` for n = 10^4 boxes against the authors' method (Python loop over rows,
   vectorized row distances, ``np.median``) and against a full matrix + ``np.partition``.
Every implementation, cs_fast and peers alike, gets one untimed warm-up call (JIT compilation,
first-touch page faults) and then the best of the same ``--reps`` timed calls, on the same number
of threads (``--threads``; numba, torch and BLAS together). The JSON records the load average
and thread counts, and the run warns when the load leaves fewer free cores than its threads.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

import cs_fast
from cs_fast_apps.bench import measure, peers


def best_time(fn, reps):
    """Best of ``reps`` timed calls after one untimed warm-up call; also every time."""
    fn()  # warm-up: compilation and first-touch page faults are not timed
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    p.add_argument("--reps", type=int, default=3, help="timed calls per implementation (all the same)")
    p.add_argument("--threads", default=None,
                   help="threads for every implementation; 'auto': the cores the load average leaves free")
    p.add_argument("--n-images", type=int, default=2000, help="images of the tv pairwise row")
    p.add_argument("--n-boxes", type=int, default=10_000, help="boxes of the min_median rows")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error(f"--reps: expected a positive integer, received {args.reps}")
    if args.threads is not None:
        measure.set_threads(args.threads if args.threads == "auto" else int(args.threads))
    load = measure.load_status()
    if load["warning"]:
        print(f"headline: warning: {load['warning']}", file=sys.stderr)
    rng = np.random.default_rng(0)
    rows = []

    def compare(workload, cs_fn, named_peers, data):
        t_cs, times_cs = best_time(lambda: cs_fn(data), args.reps)
        for name, peer in named_peers:
            t_peer, times_peer = best_time(lambda: peer(data), args.reps)
            rows.append({"workload": workload, "peer": name, "cs_fast_s": t_cs, "peer_s": t_peer,
                         "cs_fast_times_s": times_cs, "peer_times_s": times_peer,
                         "load_1m": measure.load_average()})

    images = rng.random((args.n_images, 3, 32, 32), dtype=np.float32)
    compare(f"tv pairwise, n={args.n_images}, 3x32x32", lambda X: cs_fast.cdist(X, X, "tv"),
            [(name, lambda X, f=f: f(X, X)) for name, f in
             [("scipy cdist cityblock", peers.scipy_cdist("cityblock", peers.tv_features)),
              ("torch.cdist p=1", peers.torch_cdist(1, peers.tv_features))]], images)
    del images

    xy = rng.random((args.n_boxes, 2))
    boxes = np.concatenate([xy, xy + 0.5 * rng.random((args.n_boxes, 2)) + 0.1], axis=1)
    compare("min_median, n=10^4 boxes" if args.n_boxes == 10_000 else f"min_median, n={args.n_boxes} boxes", lambda Z: cs_fast.min_median(Z, "jaccard"),
            [("authors' row loop + np.median", peers.authors_min_median(peers.iou_row_numpy)),
             ("full matrix + np.partition", peers.full_then(peers.iou_matrix_numpy, "np.partition"))], boxes)

    info = measure.machine()
    end = measure.load_averages()
    print(f"machine: {info.get('cpu')}, {info.get('cores')} cores; threads: numba {info['numba_threads']}, "
          f"torch {info['torch_threads']}; load average {load['load_average'][0]:.1f} (start), "
          f"{end[0]:.1f} (end); best of {args.reps} after a warm-up, for every implementation")
    print("| workload | peer | cs_fast | peer time | peer / cs_fast |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['peer']} | {r['cs_fast_s']:.3f} s | {r['peer_s']:.2f} s | "
              f"{r['peer_s'] / r['cs_fast_s']:.1f}x |")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump({"machine": info, "load_start": load, "load_averages_end": end, "reps": args.reps,
                       "timing": f"best of {args.reps} timed calls after one untimed warm-up, every "
                                 "implementation alike", "rows": rows}, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
