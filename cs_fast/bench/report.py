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


def format_table(rows, ceil=None, meta=None):
    """The run as aligned text: one block per workload and operation.

    ``time`` is the best of the repeated calls. ``t_peer/t_cs`` is the
    peer's time over cs_fast's in the same run
    (above 1: cs_fast is faster). ``%sgemm`` and ``%bw`` are the estimated
    FLOP/s and compulsory bytes/s as fractions of the measured ceilings.
    """
    lines = []
    if meta:
        lines.append(f"machine: {meta['cpu']}, {meta['cores']} cores; numba {meta['numba']}, torch {meta['torch']}, "
                     f"numpy {meta['numpy']}, scipy {meta['scipy']}, sklearn {meta['sklearn']}")
        loads = [x for x in (meta.get("load_average_start"), meta.get("load_average_end")) if x is not None]
        if loads:
            busy = max(loads) > 1.2 * meta["cores"]
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
                            "warm-up call per implementation (JIT compilation excluded); "
                            "ratio = t_peer / t_cs_fast (best times) in the same run"),
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
