"""cs_fast on a GPU against torch's CUDA peers, same data, same run (run by bench/gpu_session.sh).

What it times (device-synchronized, minimum of ``--reps`` interleaved rounds
after a warm-up call, so compilation is excluded):

* boxes ``min_median`` up to n = 10**5 (torch IoU matrix + ``kthvalue`` as
  the peer where the n x n float32 matrix fits);
* tv 1x28x28 pairwise (``torch.cdist(p=1)`` on the finite differences; on a
  GPU also the l1 kernels alone: register-blocked narrow and wide, and the
  tiled kernel they replaced);
* sqfeat d = 4096: ``min_median`` (cuBLAS through CuPy with the bound of
  :mod:`cs_fast.kernels.mixed_precision`, against the torch float32 GEMM +
  ``kthvalue`` and cs_fast's direct float64 device kernels), ``cdist`` and
  ``to_center``; the answers are checked (index equal to the direct float64
  path, distances within ``CDIST_RTOL``);
* the pruned center where that strategy is present (boxes ``min_median``
  goes through it then);
* certification overhead beyond the model: the digits autoencoder in ``tv``
  at n = 10**4, m = 10**6 (``cs_fast_apps.bench.end_to_end``), model on the device.

``--device cpu --tiny`` runs the same code on the CPU at toy sizes (the CI
smoke test); ``--dry-run`` prints the plan and checks the imports.
"""

import argparse
import importlib.util
import json
import os
import pkgutil
import sys
import time

import numpy as np

_K = 1000
PLAN = {
    "boxes_min_median": [1 * _K, 10 * _K, 100 * _K],
    "tv_pairwise": [1 * _K, 10 * _K],
    "tv_min_median": [1 * _K, 10 * _K],
    "sqfeat_min_median": [1 * _K, 4 * _K, 10 * _K],
    "sqfeat_pairwise": [1 * _K, 4 * _K],
    "sqfeat_to_center": [10 * _K, 100 * _K],
    "end_to_end": [(10 * _K, 1000 * _K)],
}
TINY = {
    "boxes_min_median": [50], "tv_pairwise": [20], "tv_min_median": [20], "sqfeat_min_median": [30], "sqfeat_pairwise": [20],
    "sqfeat_to_center": [40], "end_to_end": [(16, 64)],
}
PEER_MAX_BYTES = 8 << 30  # a peer's n x n float32 matrix must fit in this


def pruned_strategy():
    """Name of a pruned-center kernel module when one has landed (None otherwise)."""
    import cs_fast.kernels

    names = [m.name for m in pkgutil.iter_modules(cs_fast.kernels.__path__)]
    return next((n for n in names if "prune" in n), None)


def plan_lines(sizes):
    lines = [f"{key}: n = {', '.join(str(s) for s in v)}" for key, v in sizes.items()]
    lines.append(f"pruned center: {pruned_strategy() or 'not present (boxes min_median uses brute force)'}")
    return lines


def check_imports(device):
    """Import what the run needs; return a list of (name, version or error)."""
    out = []
    for name in ("numpy", "numba", "torch", "cs_fast"):
        mod = __import__(name)
        out.append((name, getattr(mod, "__version__", "?")))
    for name in ("cupy", "numba.cuda"):
        if importlib.util.find_spec(name.split(".")[0]) is None:
            out.append((name, "not installed"))
            continue
        try:
            mod = __import__(name, fromlist=["_"])
            out.append((name, getattr(mod, "__version__", "ok")))
        except Exception as err:  # a broken install says so rather than stopping the plan
            out.append((name, f"import failed: {err}"))
    if device == "cuda":
        import torch

        out.append(("torch.cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"))
    return out


class Timer:
    def __init__(self, device, reps):
        import torch

        self.torch = torch
        self.device = device
        self.reps = reps

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def run(self, fns):
        """Warm-up call each, then ``reps`` interleaved rounds; (min seconds, first outputs)."""
        outs = {}
        for name, fn in fns.items():
            outs[name] = fn()
            self.sync()
        best = {name: float("inf") for name in fns}
        for _ in range(self.reps):
            for name, fn in fns.items():
                self.sync()
                t = time.perf_counter()
                fn()
                self.sync()
                best[name] = min(best[name], time.perf_counter() - t)
        return best, outs


def _workload(key):
    from cs_fast_apps.bench.workloads import default_workloads

    return next(w for w in default_workloads() if w.key == key)


def _iou_kth(torch, B):
    x1, y1, x2, y2 = B.unbind(1)
    area = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    iw = (torch.minimum(x2[:, None], x2[None]) - torch.maximum(x1[:, None], x1[None])).clamp(min=0)
    ih = (torch.minimum(y2[:, None], y2[None]) - torch.maximum(y1[:, None], y1[None])).clamp(min=0)
    inter = iw * ih
    union = area[:, None] + area[None] - inter
    D = torch.where(union > 0, 1 - inter / union, torch.zeros((), device=B.device))
    meds = D.kthvalue((len(B) + 1) // 2, dim=1).values
    i = int(torch.argmin(meds))
    return i, float(meds[i])


def _sq_gemm(torch, A, B):
    return ((A * A).sum(1)[:, None] + (B * B).sum(1)[None] - 2.0 * (A @ B.T)).clamp_(min=0)


def _with_attribute(module, name, value, fn):
    """Run ``fn`` with ``module.name`` set to ``value``, restored afterwards."""
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        return fn()
    finally:
        setattr(module, name, saved)


def _direct_float64(fn):
    """Run ``fn`` with the device's CuPy path switched off (cs_fast's direct float64 kernels)."""
    from cs_fast.kernels.cuda import mixed

    return _with_attribute(mixed, "cupy", lambda: None, fn)


def _count_switch(blocked, fn):
    """Run ``fn`` with the device min_median's register-blocked float32 tv count on or off.

    The front doors pass no config down, so the count's launcher is wrapped to
    run with ``DeviceConfig.l1_blocked_count = blocked`` (the config is its
    last argument).
    """
    import dataclasses

    from cs_fast.kernels.cuda import count

    real = count.count_rows

    def count_rows(*args):
        return real(*args[:-1], dataclasses.replace(args[-1], l1_blocked_count=blocked))

    return _with_attribute(count, "count_rows", count_rows, fn)


def _blocked_kernel_peers(Fd):
    """The l1 device kernels alone on given tv features (float32): the register-blocked kernel in its
    narrow (float32 sums) and wide (float64: min_median's tiles) modes, and the tiled kernel before them."""
    import numpy as np
    from numba import cuda

    from cs_fast.kernels import cuda as ck
    from cs_fast.kernels.cuda import blocked as cb
    from cs_fast.kernels.cuda import direct

    F = cuda.as_cuda_array(Fd.detach())
    n = F.shape[0]

    def blocked(wide):
        return cb.launch("l1", F, F, ck.empty((n, n), np.float64 if wide else np.float32), wide)

    def tiled():
        return direct.launch_pairwise("l1", F, F, 0, ck.empty((n, n), np.float64))  # the tiled kernel

    return {"kernel: blocked narrow (float32 sums)": lambda: blocked(False),
            "kernel: blocked wide (float64 sums)": lambda: blocked(True),
            "kernel: tiled float64 (before)": tiled}


def run(device, sizes, reps, log):
    import torch

    import cs_fast

    T = Timer(device, reps)
    rows = []

    def record(key, n, best, outs, check=None):
        row = {"case": key, "n": n, "seconds": best, "check": check or {},
               "ratio_over_cs_fast": {k: v / best["cs_fast"] for k, v in best.items() if k != "cs_fast"}}
        rows.append(row)
        log(f"{key} n={n}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in best.items()) + f" {row['check']}")

    def on(X):
        return torch.from_numpy(np.ascontiguousarray(X)).to(device)

    for n in sizes["boxes_min_median"]:
        B = on(_workload("boxes").make(n))
        fns = {"cs_fast": lambda: cs_fast.min_median(B, "jaccard")}
        if 4 * n * n * 3 <= PEER_MAX_BYTES:
            fns["torch IoU+kthvalue"] = lambda: _iou_kth(torch, B)
        best, outs = T.run(fns)
        record("boxes_min_median", n, best, outs, {"index": outs["cs_fast"][0], "radius": outs["cs_fast"][1]})

    from cs_fast.metrics import tv_differences

    for n in sizes["tv_pairwise"]:
        X = _workload("tv1x28x28").make(n)
        Xd = on(X)
        Fd = on(tv_differences(X).reshape(n, -1))
        fns = {"cs_fast": lambda: cs_fast.cdist(Xd, Xd, "tv"),
               "torch.cdist p=1 (features given)": lambda: torch.cdist(Fd, Fd, p=1)}
        if device == "cuda":
            fns.update(_blocked_kernel_peers(Fd))
        best, outs = T.run(fns)
        a, b = outs["cs_fast"].double(), outs["torch.cdist p=1 (features given)"].double()
        check = {"max_rel_diff_torch": float((a - b).abs().max() / a.abs().max())}
        if device == "cuda":  # float32 sums against the float64 ones, entrywise, and the derived bound
            from cs_fast.kernels.cuda import blocked as cb

            w = torch.as_tensor(outs["kernel: blocked wide (float64 sums)"], device=device)
            v = torch.as_tensor(outs["kernel: blocked narrow (float32 sums)"], device=device).double()
            rel = ((v - w).abs() / w.clamp(min=1e-300))[w > 0]
            check.update(narrow_max_rel_vs_wide=float(rel.max()) if rel.numel() else 0.0, bound=cb.bound("l1"))
        record("tv_pairwise", n, best, outs, check)

    for n in sizes["tv_min_median"]:
        X = _workload("tv1x28x28").make(n)
        Xd = on(X)
        Fd = on(tv_differences(X).reshape(n, -1))
        fns = {"cs_fast": lambda: cs_fast.min_median(Xd, "tv", method="brute"),
               "cs_fast one-pair-a-thread count": lambda: _count_switch(
                   False, lambda: cs_fast.min_median(Xd, "tv", method="brute"))}
        if 4 * n * n * 2 <= PEER_MAX_BYTES:
            fns["torch.cdist p=1+kthvalue"] = lambda: _kth(torch, torch.cdist(Fd, Fd, p=1))
        best, outs = T.run(fns)
        record("tv_min_median", n, best, outs,
               {"index": outs["cs_fast"][0], "radius": outs["cs_fast"][1],
                "identical_to_one_pair_count": list(outs["cs_fast"]) == list(outs["cs_fast one-pair-a-thread count"])})

    sq = _workload("sqfeat4096")
    for n in sizes["sqfeat_min_median"]:
        Z = on(sq.make(n))
        fns = {"cs_fast": lambda: cs_fast.min_median(Z, "sqfeat"),
               "cs_fast direct float64": lambda: _direct_float64(lambda: cs_fast.min_median(Z, "sqfeat"))}
        if 4 * n * n * 2 <= PEER_MAX_BYTES:
            fns["torch GEMM+kthvalue"] = lambda: _kth(torch, _sq_gemm(torch, Z, Z))
        best, outs = T.run(fns)
        record("sqfeat_min_median", n, best, outs,
               {"index": outs["cs_fast"][0], "direct_index": outs["cs_fast direct float64"][0],
                "identical_to_direct": list(outs["cs_fast"]) == list(outs["cs_fast direct float64"])})

    from cs_fast.kernels import mixed_precision as mp

    for n in sizes["sqfeat_pairwise"]:
        Z = on(sq.make(n))
        best, outs = T.run({"cs_fast": lambda: cs_fast.cdist(Z, Z, "sqfeat"),
                            "torch GEMM": lambda: _sq_gemm(torch, Z, Z),
                            "cs_fast direct (no CuPy: float32 sums, float64 flushes)":
                                lambda: _direct_float64(lambda: cs_fast.cdist(Z, Z, "sqfeat"))})
        ref = cs_fast.cdist(Z.double(), Z.double(), "sqfeat")  # float64 inputs: float64 sums (untimed)
        got = outs["cs_fast"].double()
        rel = ((got - ref).abs() / ref.clamp(min=1e-300))[ref > 0]
        record("sqfeat_pairwise", n, best, outs,
               {"max_rel_diff_vs_float64": float(rel.max()) if rel.numel() else 0.0, "stated": mp.CDIST_RTOL})

    for n in sizes["sqfeat_to_center"]:
        Z = on(sq.make(n))
        c = Z[n // 2]
        best, outs = T.run({"cs_fast": lambda: cs_fast.to_center(Z, c, "sqfeat"),
                            "torch row": lambda: ((Z - c) ** 2).sum(1)})
        record("sqfeat_to_center", n, best, outs)

    for n, m in sizes["end_to_end"]:
        from cs_fast_apps.bench.end_to_end import WARMUP, end_to_end
        from cs_fast.models.digits import digits_data, load_digits_autoencoder

        model = load_digits_autoencoder(map_location=device)
        x = torch.as_tensor(digits_data("test")[0], dtype=torch.float32, device=device)

        def factory(wrapped):
            return cs_fast.CenterSmoothing(wrapped, "tv", 0.2, batch_size=10_000, seed=0)

        end_to_end(factory, model, x, **WARMUP)  # compile outside the timing
        # toy sizes (the CPU check of this script) certify only with loose settings, like the warm-up
        e2e = end_to_end(factory, model, x, **(dict(WARMUP, n=n, m=m) if n < 1000 else dict(eps1=0.4, n=n, m=m)))
        rows.append({"case": "end_to_end", **e2e})
        log(f"end_to_end digits tv n={n} m={m}: total {e2e['total_s']:.3g} s = model {e2e['model_s']:.3g} s "
            f"+ cs_fast {e2e['cs_fast_s']:.3g} s (abstained={e2e['abstained']})")
    return rows


def _kth(torch, D):
    meds = D.kthvalue((D.shape[0] + 1) // 2, dim=1).values
    i = int(torch.argmin(meds))
    return i, float(meds[i])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (smoke test)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=None, help="folder for gpu_bench.json and gpu_bench.txt")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, check imports, run nothing")
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else PLAN
    for line in plan_lines(sizes):
        print("plan:", line)
    for name, version in check_imports(args.device):
        print(f"import: {name} {version}")
    if args.dry_run:
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device visible to torch", file=sys.stderr)
            return 2
    lines = []

    def log(line):
        print(line, flush=True)
        lines.append(line)

    from cs_fast_apps.bench import measure

    meta = {"machine": measure.machine(), "load_average_start": measure.load_average(), "device": args.device}
    if args.device == "cuda":
        import torch

        meta["gpu"] = torch.cuda.get_device_name(0)
    rows = run(args.device, sizes, args.reps, log)
    meta["load_average_end"] = measure.load_average()
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "gpu_bench.json"), "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=1, default=str)
        with open(os.path.join(args.out, "gpu_bench.txt"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
