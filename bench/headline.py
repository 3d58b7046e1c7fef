"""The README's headline ratios: the issue targets, cs_fast and its peers in one run on the same data.

    python bench/headline.py [--out bench/results/headline.json]

1. pairwise ``tv`` for n = 2000 images of 3x32x32 against scipy ``cdist(cityblock)`` and
   ``torch.cdist(p=1)`` (threads = cores) on the same finite-difference features;
2. ``min_median`` for n = 10^4 boxes against the authors' method (Python loop over rows,
   vectorized row distances, ``np.median``) and against a full matrix + ``np.partition``.
Best of ``--reps`` timed calls each, after an untimed warm-up (JIT compilation excluded).
"""

import argparse
import json
import os
import time

import numpy as np

import cs_fast
from cs_fast.bench import measure, peers


def best_time(fn, reps):
    fn()  # warm-up: compilation and first-touch page faults are not timed
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []

    images = rng.random((2000, 3, 32, 32), dtype=np.float32)
    t_cs = best_time(lambda: cs_fast.cdist(images, images, "tv"), args.reps)
    for name, peer in [("scipy cdist cityblock", peers.scipy_cdist("cityblock", peers.tv_features)),
                       ("torch.cdist p=1", peers.torch_cdist(1, peers.tv_features))]:
        t_peer = best_time(lambda: peer(images, images), 1)
        rows.append(("tv pairwise, n=2000, 3x32x32", name, t_cs, t_peer))

    xy = rng.random((10_000, 2))
    boxes = np.concatenate([xy, xy + 0.5 * rng.random((10_000, 2)) + 0.1], axis=1)
    t_cs = best_time(lambda: cs_fast.min_median(boxes, "jaccard"), args.reps)
    for name, peer in [("authors' row loop + np.median", peers.authors_min_median(peers.iou_row_numpy)),
                       ("full matrix + np.partition", peers.full_then(peers.iou_matrix_numpy, "np.partition"))]:
        t_peer = best_time(lambda: peer(boxes), 1)
        rows.append(("min_median, n=10^4 boxes", name, t_cs, t_peer))

    info = measure.machine()
    print(f"machine: {info.get('cpu')}, {info.get('cores')} cores; load average {os.getloadavg()[0]:.1f}")
    print(f"| workload | peer | cs_fast | peer time | peer / cs_fast |")
    print(f"|---|---|---|---|---|")
    for workload, name, t_cs, t_peer in rows:
        print(f"| {workload} | {name} | {t_cs:.3f} s | {t_peer:.2f} s | {t_peer / t_cs:.1f}x |")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump({"machine": info, "rows": [dict(zip(("workload", "peer", "cs_fast_s", "peer_s"), r))
                                                 for r in rows]}, fh, indent=1)


if __name__ == "__main__":
    main()
