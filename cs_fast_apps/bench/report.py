"""Text table and JSON document of a benchmark run."""

import json
import math
import time

from .measure import MEMORY_METHOD
from .run import CS_FAST, ratios

COLUMNS = ("n", "impl", "time", "pairs/s", "elem/s", "%sgemm", "%bw", "peak dRSS", "t_peer/t_cs", "agrees", "note")


def _fmt_time(t):
    if t is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t * 1e9:.3g} ns"


def _fmt_rate(x):
    return "-" if x is None else f"{x:.2e}"


def _fmt_pct(x):
    return "-" if x is None else f"{100 * x:.2g}%"


def _fmt_bytes(b):
    if b is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b} B"


def _fmt_agree(a):
    if a is None:
        return "-"
    if "same_index" in a:
        same = "same idx" if a["same_index"] else "other idx"
        return f"{same}, r {a['radius_rel_diff']:.0e}"
    return f"{a['max_rel_diff']:.0e}"


def _cells(r):
    if r["status"] != "ok":
        return [str(r["n"]), r["impl"], r["status"], "", "", "", "", "", "", "", r["reason"] or ""]
    speed = "" if r["impl"] == CS_FAST else ("-" if r["speedup"] is None else f"{r['speedup']:.3g}x")
    return [str(r["n"]), r["impl"], _fmt_time(r["time_s"]), _fmt_rate(r["pairs_per_s"]),
            _fmt_rate(r["elem_ops_per_s"]), _fmt_pct(r["flops_frac"]), _fmt_pct(r["bw_frac"]),
            _fmt_bytes(r["peak_rss_delta_bytes"]), speed, _fmt_agree(r["agreement"]), r["note"] or ""]


LEGEND = """\
columns:
  time         best (least disturbed) of the timed calls at this n; JIT compilation excluded
  pairs/s      distance pairs per second (n^2 for pairwise and min_median, n for to_center; nominal:
               cs_fast's pruned min_median computes fewer pairs than it is credited with)
  elem/s       pairs/s times the features compared per pair
  %sgemm       estimated arithmetic rate as a share of the measured float32 GEMM ceiling; above 100 %
               the estimate counts work that was not done (pruning, bit-parallel popcounts) or the
               kernel beats that ceiling: read it as relative speed, not as hardware use
  %bw          compulsory bytes (inputs once, outputs once) per second as a share of the measured
               copy bandwidth
  peak dRSS    peak resident-memory growth of one separate, untimed call (result included)
  t_peer/t_cs  the peer's best time over cs_fast's in the same run: above 1, cs_fast is faster
  agrees       largest difference from cs_fast's result relative to its largest value; for
               min_median: same center index or not, and the radii's relative difference (peers
               using np.median average the two middle values for even n, cs_fast takes the lower one)"""


def format_table(rows, ceil=None, meta=None, quick=False):
    """The run as aligned text: one block per workload and operation, then :data:`LEGEND`.

    ``time`` is the best of the repeated calls. ``t_peer/t_cs`` is the
    peer's time over cs_fast's in the same run
    (above 1: cs_fast is faster). ``%sgemm`` and ``%bw`` are the estimated
    FLOP/s and compulsory bytes/s as fractions of the measured ceilings.
    The header gives the machine, the thread counts and the load average;
    it says so when the load left fewer free cores than the run's threads.
    """
    lines = []
    if quick:
        lines.append("--quick run: small sizes and short budgets; not the figures to quote")
    if meta:
        lines.append(f"machine: {meta['cpu']}, {meta['cores']} cores; numba {meta['numba']}, torch {meta['torch']}, "
                     f"numpy {meta['numpy']}, scipy {meta['scipy']}, sklearn {meta['sklearn']}")
        blas = ", ".join(f"{b['api']} {b['threads']}" for b in meta.get("blas_threads") or [])
        lines.append(f"threads: numba {meta.get('numba_threads')}, torch {meta.get('torch_threads')}"
                     + (f", BLAS/OpenMP ({blas})" if blas else ""))
        loads = [x for x in (meta.get("load_average_start"), meta.get("load_average_end")) if x is not None]
        if loads:
            busy = (meta.get("load_start") or {}).get("busy")
            lines.append(f"load average {', '.join(f'{x:.1f}' for x in loads)} (start, end)"
                         + (": other processes shared the cores, timings are contended" if busy else ""))
    if ceil:
        lines.append(f"ceilings: sgemm {ceil['sgemm_flops']:.3g} FLOP/s, copy {ceil['copy_bytes_per_s'] / 1e9:.3g} GB/s")
    lines.append(f"memory: {MEMORY_METHOD}")
    groups = {}
    for r in rows:
        groups.setdefault((r["workload"], r["op"]), []).append(r)
    for (wk, op), group in groups.items():
        cells = [list(COLUMNS)] + [_cells(r) for r in group]
        widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS) - 1)]
        lines.append("")
        lines.append(f"== {wk} ({group[0]['metric']}, sample shape {tuple(group[0]['shape'])}) / {op}")
        for c in cells:
            lines.append("  ".join(v.ljust(wd) for v, wd in zip(c, widths)) + "  " + c[-1])
    lines.append("")
    lines.append(LEGEND)
    return "\n".join(lines)


def _clean(x):
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def document(rows, ceil, meta, config, end_to_end=None):
    """The JSON document of a run (see the keys below)."""
    return _clean({
        "meta": dict(meta, timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"), memory_method=MEMORY_METHOD,
                     timing="time_s = best (min) of repeated calls, time_median_s their median, after one "
                            "warm-up call per implementation (JIT compilation excluded) and, at every size, one "
                            "untimed memory-probe call; ratio = t_peer / t_cs_fast (best times) in the same run; "
                            "load_1m per row: the 1-minute load average when the row ran"),
        "config": config,
        "ceilings": ceil,
        "rows": rows,
        "ratios": ratios(rows),
        "end_to_end": end_to_end,
    })


def write_json(path, doc):
    """Write ``doc`` as indented JSON."""
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=1, allow_nan=False)
