"""Benchmark of the exact center: brute force vs the pruned search vs peers, same data, same run.

``cs-fast bench --center`` (``--center-large`` adds 10^6 jittered boxes). Each
row times ``min_median(method='brute')`` and ``min_median(method='pruned')``
on the same samples, checks they agree bit for bit, and reports the fraction
of the ``n^2`` distances the pruned search evaluated; peers (the authors' loop,
a full matrix and ``np.partition``) run where their ``n^2`` matrix or time fits.
Timings exclude JIT compilation (every implementation is warmed up on a small
input first) and record the load average beside them.

Workloads: boxes jittered around one box (sigma 6 px, as
:mod:`cs_fast_apps.bench.workloads`); scattered boxes (mostly disjoint: nearly every
distance is exactly 1, nothing prunes); identical samples; and the digits
autoencoder's outputs under Gaussian input noise (sigma 0.25) in ``tv``.
"""

import time

import numba
import numpy as np

from . import measure, peers

SIZES = {"boxes_jittered": (10_000, 100_000), "boxes_scattered": (10_000,), "identical": (10_000,),
         "digits_tv": (10_000,)}
QUICK_SIZES = {"boxes_jittered": (3_000,), "boxes_scattered": (3_000,), "identical": (3_000,), "digits_tv": (1_000,)}
LARGE = {"boxes_jittered": (1_000_000,)}
PEER_MAX_N = 10_000  # peers hold the n x n matrix or loop over n rows in Python
BRUTE_MAX_N = 100_000  # brute force at 10^6 takes many minutes: the large row times the pruned search only


def jittered(rng, n):
    return (np.array([30.0, 40.0, 80.0, 120.0]) + rng.normal(0.0, 6.0, (n, 4))).astype(np.float32)


def _scattered(rng, n):
    xy = rng.uniform(0.0, 2000.0, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(2.0, 8.0, (n, 2))], axis=1).astype(np.float32)


def _identical(rng, n):
    return np.tile(jittered(rng, 1), (n, 1))


def digits_tv(rng, n, sigma=0.25):
    import torch

    from cs_fast.models.digits import digits_data, load_digits_autoencoder

    model = load_digits_autoencoder()
    x = digits_data("test")[:1].float().reshape(1, 1, 8, 8)
    noise = torch.from_numpy(rng.standard_normal((n, 1, 8, 8)).astype(np.float32)) * sigma
    with torch.no_grad():
        return model(x + noise).numpy()


MAKERS = {"boxes_jittered": ("jaccard", jittered), "boxes_scattered": ("jaccard", _scattered),
          "identical": ("jaccard", _identical), "digits_tv": ("tv", digits_tv)}


def _peer_impls(metric):
    return [impl for impl in peers.peers(metric, "min_median") if impl.name in ("authors loop", "full+np.partition")]


def _time(fn, reps):
    best = None
    out = None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        t = time.perf_counter() - t0
        best = t if best is None else min(best, t)
    return best, out


def run_center(quick=False, large=False, seed=0, log=None, probe_memory=True):
    """Rows of the center benchmark (list of dicts), brute force and pruned on the same data.

    Each row: ``workload``, ``metric``, ``n``, ``impl``, ``time_s`` (best of
    the repeats), ``speedup_vs_brute``, ``fraction_evaluated`` (pruned only),
    ``same_as_brute`` (index and radius equal), ``peak_rss_delta_bytes`` (one
    separate probe run, pruned and brute), ``load_average`` and ``threads`` (numba's).
    """
    import cs_fast

    sizes = dict(QUICK_SIZES if quick else SIZES)
    if large:
        sizes = {k: tuple(v) + LARGE.get(k, ()) for k, v in sizes.items()}
    rows = []
    for key, ns in sizes.items():
        metric, make = MAKERS[key]
        warm = make(np.random.default_rng([seed, 1]), 300)
        cs_fast.min_median(warm, metric, method="brute")
        cs_fast.min_median(warm, metric)
        for n in ns:
            Z = make(np.random.default_rng([seed, n]), n)
            reps = 1 if n >= 100_000 else 3
            load = measure.load_average()
            with_brute = n <= BRUTE_MAX_N
            tb, brute = _time(lambda: cs_fast.min_median(Z, metric, method="brute"), reps) if with_brute else (None, None)
            stats = {}
            tp, pruned = _time(lambda: cs_fast.min_median(Z, metric, method="pruned", stats=stats), reps)
            mem = {}
            if probe_memory:
                for method in ("brute", "pruned") if with_brute else ("pruned",):
                    with measure.PeakRSS() as probe:
                        cs_fast.min_median(Z, metric, method=method)
                    mem[method] = probe.delta
            base = dict(workload=key, metric=metric, n=n, load_average=load, threads=numba.get_num_threads())
            work = (stats["evaluated"] + stats["recomputed"]) / stats["pairs"]  # distance evaluations / n^2
            if with_brute:
                rows.append(dict(base, impl="cs_fast brute", time_s=tb, speedup_vs_brute=1.0, fraction_evaluated=None,
                                 same_as_brute=True, peak_rss_delta_bytes=mem.get("brute")))
            rows.append(dict(base, impl="cs_fast pruned", time_s=tp, speedup_vs_brute=tb / tp if tb else None,
                             fraction_evaluated=work, rows_full=stats["rows_full"],
                             rows_counted=stats["rows_counted"], rows_skipped=stats["rows_skipped"],
                             same_as_brute=(pruned == brute) if brute else None,
                             peak_rss_delta_bytes=mem.get("pruned")))
            log and log(f"{key} n={n}: brute {tb} s, pruned {tp:.3f} s, "
                        f"{100 * work:.2f} % of n^2 evaluated, same={pruned == brute}, load {load}")
            if n <= PEER_MAX_N:
                for impl in _peer_impls(metric):
                    impl.fn(warm)
                    t, out = _time(lambda: impl.fn(Z), 1)
                    rows.append(dict(base, impl=impl.name, time_s=t, speedup_vs_brute=tb / t, fraction_evaluated=1.0,
                                     same_as_brute=(int(out[0]) == brute[0]), peak_rss_delta_bytes=None,
                                     note=impl.note))
                    log and log(f"  {impl.name}: {t:.3f} s")
    return rows


def table(rows):
    """Plain-text table of :func:`run_center` rows."""
    head = f"{'workload':<16}{'n':>9}  {'impl':<18}{'time s':>9}{'vs brute':>10}{'evaluated':>11}{'same':>6}{'RSS MiB':>9}{'load':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        frac = "" if r["fraction_evaluated"] is None else f"{100 * r['fraction_evaluated']:.2f} %"
        rss = "" if r.get("peak_rss_delta_bytes") is None else f"{r['peak_rss_delta_bytes'] / 2**20:.0f}"
        load = "" if r["load_average"] is None else f"{r['load_average']:.1f}"
        vs = "" if r["speedup_vs_brute"] is None else f"{r['speedup_vs_brute']:.3g}x"
        lines.append(f"{r['workload']:<16}{r['n']:>9}  {r['impl']:<18}{r['time_s']:>9.3f}"
                     f"{vs:>10}{frac:>11}{str(r['same_as_brute']):>6}{rss:>9}{load:>6}")
    return "\n".join(lines)
