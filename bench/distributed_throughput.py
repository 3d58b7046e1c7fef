"""Certificates per second on the demo workload: in-process, Ray with 1 worker, Ray with 2 workers.

The demo's workload (the digits autoencoder certified in TV, n = 4000, m = 20 000 per input,
eps1 = 0.5, sigma = 0.25) on the first ``--inputs`` held-out digits, the three ways in one run:

- in-process: ``CenterSmoothing(..., seed=input_seed(seed, i)).certify`` one input after the other,
  with every core's threads;
- Ray, 1 worker (all cores' threads) and 2 workers (cores / 2 threads each), through
  ``cs_fast.distributed.certify_many``, Ray's start-up timed apart from the certificates.

It checks that the three give the same certificates, and writes ``results.json`` and ``table.txt``.
Ray's overhead per input is (Ray 1 worker time per input, start-up excluded) minus (in-process
time per input). Run it on an idle machine:

    python bench/distributed_throughput.py --inputs 24 --out bench/results/distributed-amd-epyc
"""

import argparse
import json
import os
import time

import numpy as np


def _model_factory():
    from cs_fast.models.digits import load_digits_autoencoder

    return load_digits_autoencoder().eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=24, help="held-out digits to certify (default: %(default)s)")
    parser.add_argument("--n", type=int, default=4000, help="default: %(default)s (the demo's)")
    parser.add_argument("--m", type=int, default=20_000, help="default: %(default)s (the demo's)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default: %(default)s)")
    parser.add_argument("--out", required=True, help="results directory")
    args = parser.parse_args(argv)

    import numba
    import ray
    import torch

    import cs_fast
    from cs_fast.bench.measure import load_status
    from cs_fast.distributed import certify_many, input_seed
    from cs_fast.models.digits import digits_data

    cores = os.cpu_count()
    images = digits_data("test")[: args.inputs]
    params = dict(metric="tv", sigma=0.25, eps1=0.5, n=args.n, m=args.m)
    kw = dict(n=args.n, m=args.m)
    before = load_status(threads_used=cores)

    # In-process (after one warm-up input, so that JIT compilation is not timed).
    model = _model_factory()
    torch.set_num_threads(cores)
    numba.set_num_threads(cores)
    cs_fast.CenterSmoothing(model, "tv", 0.25, seed=1).certify(images[0], 0.5, n=500, m=1000)
    t0 = time.perf_counter()
    local = {}
    for i in range(len(images)):
        sm = cs_fast.CenterSmoothing(model, "tv", 0.25, seed=input_seed(args.seed, i))
        local[i] = sm.certify(images[i], 0.5, **kw).to_dict()
    in_process = time.perf_counter() - t0

    rows = {"in-process": {"seconds": in_process, "workers": 1, "threads": cores}}
    for workers in (1, 2):
        t0 = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, configure_logging=False)
        startup = time.perf_counter() - t0
        # Warm each worker (model load and kernel cache) on a tiny run, then time the dataset.
        list(certify_many(_model_factory, images[:workers], metric="tv", sigma=0.25, eps1=0.5, n=500, m=1000,
                          seed=1, workers=workers))
        t0 = time.perf_counter()
        got, done_at = {}, []
        for i, cert in certify_many(_model_factory, images, seed=args.seed, workers=workers, **params):
            got[i] = cert
            done_at.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - t0
        ray.shutdown()
        # Steady state: from the first completion of each worker to the last (each run starts fresh
        # workers, whose model load and kernel-cache load are a fixed cost, not a per-input one).
        steady = (len(images) - workers) / (done_at[-1] - done_at[workers - 1])
        same = all(got[i].to_dict() == local[i] for i in range(len(images)))
        rows[f"ray, {workers} worker{'s' if workers > 1 else ''}"] = {
            "seconds": seconds, "startup_seconds": startup, "workers": workers, "steady_certs_per_second": steady,
            "first_completion_seconds": done_at[workers - 1],
            "threads": max(1, cores // workers), "identical_to_in_process": same}

    rows["in-process"]["steady_certs_per_second"] = len(images) / in_process
    per_input = {k: 1.0 / v["steady_certs_per_second"] for k, v in rows.items()}
    overhead = per_input["ray, 1 worker"] / per_input["in-process"] - 1.0
    speedup = rows["ray, 2 workers"]["steady_certs_per_second"] / rows["ray, 1 worker"]["steady_certs_per_second"]
    result = {"inputs": len(images), "params": params, "cores": cores, "rows": rows,
              "per_input_seconds": per_input, "ray_overhead_per_input": overhead,
              "two_workers_over_one": speedup, "machine_before": before, "machine_after": load_status(threads_used=cores)}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = [f"{len(images)} inputs, digits autoencoder in tv, n = {args.n}, m = {args.m}, {cores} cores",
             f"{'how':<16} {'workers':>7} {'threads':>7} {'total s':>8} {'s/input':>8} {'certs/s':>8} {'same':>5}"]
    for k, v in rows.items():
        lines.append(f"{k:<16} {v['workers']:>7} {v['threads']:>7} {v['seconds']:>8.2f} {per_input[k]:>8.3f} "
                     f"{v['steady_certs_per_second']:>8.3f} {str(v.get('identical_to_in_process', '-')):>5}")
    lines.append("s/input and certs/s: steady state, from each worker's first completion to the last (a run's "
                 "fresh workers load the model and the kernel cache first: a fixed cost, in 'total s')")
    lines.append(f"Ray overhead per input (1 worker vs in-process): {100 * overhead:+.1f} %; "
                 f"2 workers / 1 worker: {speedup:.2f}x; Ray start-up {rows['ray, 1 worker']['startup_seconds']:.1f} s "
                 "(in no row)")
    lines.append(f"load average before: {before.get('load_average')}")
    with open(os.path.join(args.out, "table.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
