"""Where the time of a face certificate goes: MTCNN per image, and everything that is not MTCNN.

    python bench/faces_timing.py [--out bench/results/faces-timing.json] [--images 100] [--reps 3]

The README's face-detection figures, measured by one command:

1. MTCNN's time per image on noisy copies of the astronaut crop (the images a
   certificate feeds it), in batches of ``--images``, at facenet-pytorch's
   default ``min_face_size=20`` and at the README's 60; best of ``--reps``
   batches after a warm-up batch.
2. The non-model share of one certificate at the paper's n = 5000,
   m = 10^4: the same :meth:`cs_fast.CenterSmoothing.certify` with a stand-in
   model that returns a box at once (the base box moved by the input's mean
   noise, so the boxes differ and every distance is computed), timed by
   :func:`cs_fast_apps.bench.end_to_end`: ``cs_fast_s`` is noise sampling,
   distances, center selection and bounds; ``kernels_s`` the distance
   kernels alone (``min_median`` of n boxes, ``to_center`` of n + m).

Needs facenet-pytorch and scikit-image. Records load average and thread counts.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from cs_fast_apps.bench import end_to_end, measure
from cs_fast_apps.bench.end_to_end import WARMUP


def mtcnn_per_image(min_face_size, images, reps, sigma=0.1, seed=0):
    """Best-of-``reps`` seconds per image of :class:`TopFaceBox` on ``images`` noisy astronaut crops."""
    from cs_fast.models.faces import TopFaceBox, astronaut, load_mtcnn

    detector = TopFaceBox(load_mtcnn(min_face_size=min_face_size))
    x = astronaut()
    gen = torch.Generator().manual_seed(seed)
    batch = x[None] + sigma * torch.randn((images,) + tuple(x.shape), generator=gen)
    with torch.no_grad():
        detector(batch)  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            detector(batch)
            times.append(time.perf_counter() - t0)
    return min(times) / images, [t / images for t in times]


def non_model_share(n=5000, m=10_000, eps1=0.1, h=1.0):
    """:func:`end_to_end` of one face-sized certificate with a model that returns boxes at once."""
    import cs_fast
    from cs_fast.models.faces import astronaut

    x = astronaut()
    base = torch.tensor([64.7, 59.8, 156.6, 176.8])  # the committed base box of the astronaut crop

    mean = float(x.mean())

    def instant_boxes(batch):
        # Moves by about a pixel under the noise, so boxes differ and distances are not all zero.
        shift = 2000.0 * (batch.reshape(len(batch), -1).mean(dim=1, keepdim=True) - mean)
        return base[None] + shift * torch.tensor([1.0, 1.0, -1.0, 1.0])

    def factory(model):
        return cs_fast.CenterSmoothing(model, "jaccard", eps1 / h, batch_size=100, seed=0)

    end_to_end(factory, instant_boxes, x, **WARMUP)  # compile the kernels first
    res = end_to_end(factory, instant_boxes, x, eps1=eps1, n=n, m=m)
    # The kernels alone on boxes of the same spread: the center of n, the check on n, the m distances.
    gen = torch.Generator().manual_seed(1)
    Z = instant_boxes(x[None] + (eps1 / h) * torch.randn((n + n + m,) + tuple(x.shape), generator=gen)).numpy()
    t0 = time.perf_counter()
    i, _ = cs_fast.min_median(Z[:n], "jaccard")
    cs_fast.to_center(Z[n:2 * n], Z[i], "jaccard")
    cs_fast.to_center(Z[2 * n:], Z[i], "jaccard")
    res["kernels_s"] = time.perf_counter() - t0
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    p.add_argument("--images", type=int, default=100, help="images per timed MTCNN batch")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--n", type=int, default=5000, help="samples to pick and check the center (the paper's)")
    p.add_argument("--m", type=int, default=10_000, help="samples to certify (the paper's)")
    p.add_argument("--threads", default=None, help="threads (numba, torch, BLAS); 'auto': the free cores")
    args = p.parse_args(argv)
    if args.threads is not None:
        measure.set_threads(args.threads if args.threads == "auto" else int(args.threads))
    load = measure.load_status()
    if load["warning"]:
        print(f"faces_timing: warning: {load['warning']}", file=sys.stderr)
    doc = {"machine": measure.machine(), "load_start": load, "mtcnn": {}}
    for size in (20, 60):
        best, each = mtcnn_per_image(size, args.images, args.reps)
        doc["mtcnn"][f"min_face_size={size}"] = {"seconds_per_image": best, "per_image_each_rep": each,
                                                 "images": args.images}
        print(f"MTCNN min_face_size={size}: {1e3 * best:.1f} ms per image (best of {args.reps} batches of "
              f"{args.images})")
    share = non_model_share(args.n, args.m)
    doc["non_model_share"] = share
    print(f"certificate n={args.n}, m={args.m} with an instant box model: total {share['total_s']:.3f} s, model "
          f"{share['model_s']:.3f} s, everything else {share['cs_fast_s']:.3f} s (noise sampling included); "
          f"cs_fast's kernels alone {share['kernels_s']:.3f} s")
    doc["load_averages_end"] = measure.load_averages()
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(doc, fh, indent=1, default=str)
    return doc


if __name__ == "__main__":
    main()
