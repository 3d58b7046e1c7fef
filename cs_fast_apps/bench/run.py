"""Run the workloads: cs_fast and its peers on the same data, in the same process and run.

For each workload, operation and size, cs_fast runs first, then every peer
on the same arrays; each row records its time (best of the repeated calls,
the least disturbed on a shared machine; the median is kept too), throughput, peak RSS growth,
fraction of the measured ceilings, its agreement with cs_fast, and (peers)
the speedup ``t_peer / t_cs_fast`` of that same run, and the 1-minute load
average when it ran. Every implementation is called once on a small input
before any timing, so JIT compilation is never timed; at every size, one
untimed call probes the peak memory before the timed calls (so no timed call
pays the probe's fresh page faults). A run that is predicted (from the previous size, by the operation's
time and memory order) to take longer than the budget or to not fit in
memory is recorded as skipped, with the reason, not silently dropped.
"""

import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import measure, peers, workloads
from .peers import Impl

CS_FAST = "cs_fast"


@dataclass(frozen=True)
class Config:
    """Knobs of one benchmark run.

    Attributes
    ----------
    quick : bool
        Use the workloads' quick sizes.
    budget_s : float
        A peer call predicted to take longer than this is skipped.
    cs_budget_s : float
        The same for cs_fast (larger: it is what the run is about).
    min_time, max_reps : float, int
        Repeat each call until ``min_time`` seconds or ``max_reps`` calls.
    mem_fraction : float
        Skip a call predicted to need more than this fraction of available memory.
    check_elems : int
        Compare results with cs_fast when they hold at most this many entries.
    seed : int
        Data seed.
    gemm_n, copy_mib, ceiling_reps : int
        Sizes and repeats of the ceiling measurements (:func:`measure.ceilings`).
    """

    quick: bool = False
    budget_s: float = 60.0
    cs_budget_s: float = 300.0
    min_time: float = 1.0
    max_reps: int = 5
    mem_fraction: float = 0.5
    check_elems: int = 40_000_000
    seed: int = 0
    gemm_n: int = 2048
    copy_mib: int = 256
    ceiling_reps: int = 5


def quick_config(**overrides):
    """The ``--quick`` settings: small sizes, short budgets, few repeats."""
    base = dict(quick=True, budget_s=1.0, cs_budget_s=30.0, min_time=0.1, max_reps=3, gemm_n=1536, copy_mib=128,
                ceiling_reps=3)
    base.update(overrides)
    return Config(**base)


def cs_fast_impl(metric, op):
    """cs_fast's own call for ``op`` as an :class:`Impl`."""
    import cs_fast

    if op == "pairwise":
        return Impl(CS_FAST, lambda XA, XB: cs_fast.cdist(XA, XB, metric), 2)
    if op == "to_center":
        return Impl(CS_FAST, lambda Z, c: cs_fast.to_center(Z, c, metric), 1)
    return Impl(CS_FAST, lambda Z: cs_fast.min_median(Z, metric), 1, "row tiles, never the n x n matrix")


# Sizes of the pytest-benchmark suites (bench/test_bench_*.py): a few seconds per case.
SUITE_N = {"boxes": 2000, "masks28x28": 1000, "tv1x28x28": 500, "tv3x32x32": 250, "sqfeat4096": 500}


def suite_cases(op, scale=1.0):
    """``(workload, n, impl)`` for every implementation of ``op`` (pytest-benchmark parametrization).

    ``scale`` multiplies the sizes of :data:`SUITE_N` (``to_center`` runs 10x larger n).
    """
    out = []
    for w in workloads.default_workloads():
        n = max(2, int(SUITE_N[w.key] * scale * (10 if op == "to_center" else 1)))
        for impl in [cs_fast_impl(w.metric, op)] + peers.peers(w.metric, op):
            out.append((w, n, impl))
    return out


def op_args(op, X):
    """Arguments of ``op`` on the samples ``X``."""
    if op == "pairwise":
        return (X, X)
    if op == "to_center":
        return (X, X[len(X) // 2])
    return (X,)


def _agreement(op, ref, out, limit):
    """Relative max difference to cs_fast (``min_median``: index equal and radius difference)."""
    if ref is None or out is None:
        return None
    if op == "min_median":
        return {"same_index": int(out[0]) == int(ref[0]),
                "radius_rel_diff": abs(out[1] - ref[1]) / max(abs(ref[1]), 1e-300)}
    a = np.asarray(ref)
    if a.size > limit:
        return None
    b = np.asarray(out)
    scale = max(float(np.max(np.abs(a))), 1e-300)
    return {"max_rel_diff": float(np.max(np.abs(b.astype(np.float64) - a))) / scale}


def _row(w, op, n, name, **extra):
    row = dict(workload=w.key, metric=w.metric, shape=list(w.shape), op=op, n=n, impl=name,
               status="ok", reason=None, time_s=None, time_median_s=None, reps=0, pairs_per_s=None,
               elem_ops_per_s=None, flops_frac=None, bw_frac=None, peak_rss_delta_bytes=None,
               speedup=None, agreement=None, note=None, load_1m=measure.load_average())
    row.update(extra)
    return row


def _fill_rates(row, w, op, n, t, ceil):
    p = workloads.pairs(op, n)
    row["pairs_per_s"] = p / t
    row["elem_ops_per_s"] = p * w.elems / t
    row["flops_frac"] = p * w.elems * w.flops_per_elem / t / ceil["sgemm_flops"]
    row["bw_frac"] = workloads.compulsory_bytes(w, op, n) / t / ceil["copy_bytes_per_s"]


def _skip_reason(impl, op, n, history, cfg, avail):
    """Why ``impl`` should not run at ``n`` (None: run it)."""
    last = history.get(impl.name)
    if last == "error":
        return "failed at a smaller n"
    budget = cfg.cs_budget_s if impl.name == CS_FAST else cfg.budget_s
    cap = cfg.mem_fraction * avail
    if last is None:
        if impl.mem_order == 2 and 24.0 * n * n > cap:
            return f"an n x n matrix needs ~{24.0 * n * n / 2**30:.1f} GiB > {cap / 2**30:.1f} GiB cap"
        return None
    n0, t0, m0 = last
    t_pred = t0 * (n / n0) ** workloads.time_order(op)
    if t_pred > budget:
        return f"predicted {t_pred:.3g} s > budget {budget:g} s"
    if m0:
        m_pred = m0 * (n / n0) ** impl.mem_order
        if m_pred > cap:
            return f"predicted peak {m_pred / 2**30:.1f} GiB > {cap / 2**30:.1f} GiB cap"
    return None


def _warm_up(impl, w, op, seed):
    """One call on a small input (JIT compilation, thread pools); an error message or None."""
    try:
        impl.fn(*op_args(op, w.make(64, seed)))
    except Exception as exc:  # a peer that cannot run here is reported, not fatal
        return f"{type(exc).__name__}: {exc}"
    return None


def run_workload(w, op, cfg, ceil, log=None):
    """All rows of one workload and operation (cs_fast first at every size)."""
    impls = [cs_fast_impl(w.metric, op)] + peers.peers(w.metric, op)
    history = {}
    rows = []
    for impl in impls:
        t0 = time.perf_counter()
        err = _warm_up(impl, w, op, cfg.seed)
        log and log(f"  warm-up {impl.name}: {time.perf_counter() - t0:.2f} s")
        if err:
            history[impl.name] = "error"
            log and log(f"  {impl.name}: warm-up failed: {err}")
    sizes = (w.quick_sizes if cfg.quick else w.sizes)[op]
    avail = measure.available_memory() or 8 * 2**30
    for n in sizes:
        X = w.make(n, cfg.seed)
        args = op_args(op, X)
        ref = None
        t_cs = None
        for impl in impls:
            reason = _skip_reason(impl, op, n, history, cfg, avail)
            if reason:
                rows.append(_row(w, op, n, impl.name, status="skipped", reason=reason, note=impl.note or None))
                continue
            log and log(f"  {w.key} {op} n={n} {impl.name}")
            try:
                res = measure.time_call(impl.fn, args, min_time=cfg.min_time, max_reps=cfg.max_reps)
            except Exception as exc:
                history[impl.name] = "error"
                rows.append(_row(w, op, n, impl.name, status="error", reason=f"{type(exc).__name__}: {exc}"))
                continue
            out = res.pop("result")
            row = _row(w, op, n, impl.name, time_s=res["min"], time_median_s=res["median"],
                       reps=len(res["times"]), peak_rss_delta_bytes=res["peak_rss_delta"],
                       note=impl.note or None)
            _fill_rates(row, w, op, n, res["min"], ceil)
            if impl.name == CS_FAST:
                ref, t_cs = out, res["min"]
            else:
                row["speedup"] = res["min"] / t_cs if t_cs else None
                row["agreement"] = _agreement(op, ref, out, cfg.check_elems)
            del out
            history[impl.name] = (n, res["min"], res["peak_rss_delta"])
            rows.append(row)
        del X, args, ref
    return rows


def run_all(cfg, selected=None, ops=workloads.OPS, log=None, ceil=None):
    """Run every selected workload and operation.

    Parameters
    ----------
    cfg : Config
    selected : list of Workload, optional
        Defaults to :func:`cs_fast_apps.bench.workloads.default_workloads`.
    ops : sequence of str
        Among ``'pairwise'``, ``'to_center'``, ``'min_median'``.
    log : callable, optional
        Receives progress lines.
    ceil : dict, optional
        Precomputed :func:`cs_fast_apps.bench.measure.ceilings`; measured when None.

    Returns
    -------
    (list of dict, dict)
        The rows and the ceilings.
    """
    if ceil is None:
        ceil = measure.ceilings(cfg.gemm_n, cfg.copy_mib, cfg.ceiling_reps)
    rows = []
    for w in selected or workloads.default_workloads():
        for op in ops:
            log and log(f"{w.key} / {op}")
            rows.extend(run_workload(w, op, cfg, ceil, log))
    return rows, ceil


def stderr_log(line):
    """Progress printer for the command line."""
    print(line, file=sys.stderr, flush=True)


def ratios(rows):
    """Flat list of ``{workload, op, n, peer, ratio}`` with ``ratio = t_peer / t_cs_fast``."""
    return [dict(workload=r["workload"], op=r["op"], n=r["n"], peer=r["impl"], ratio=r["speedup"])
            for r in rows if r["impl"] != CS_FAST and r["speedup"] is not None and math.isfinite(r["speedup"])]
