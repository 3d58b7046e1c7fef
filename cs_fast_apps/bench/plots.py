"""Scaling plots of a benchmark run (matplotlib, Agg backend, PNG files)."""

import os

from .run import CS_FAST
from .workloads import OPS, time_order


def _series(rows, key):
    """``impl -> ([n], [value])`` of the rows with a positive ``key``."""
    out = {}
    for r in rows:
        v = r.get(key)
        if r["status"] == "ok" and v:
            xs, ys = out.setdefault(r["impl"], ([], []))
            xs.append(r["n"])
            ys.append(v)
    return out


def _reference(ax, xs, y0, order, label):
    """A black ``n**order`` line through ``(xs[0], y0)``: dashed for n^2, dotted for n."""
    if len(xs) < 2:
        return
    lo, hi = min(xs), max(xs)
    style = "k--" if order == 2 else "k:"
    ax.plot([lo, hi], [y0, y0 * (hi / lo) ** order], style, lw=1.0, label=label)


def _panel(ax, rows, key, orders, ylabel, title):
    series = _series(rows, key)
    for impl, (xs, ys) in sorted(series.items(), key=lambda kv: kv[0] != CS_FAST):
        ax.plot(xs, ys, "o-", lw=2.2 if impl == CS_FAST else 1.0, label=impl)
    anchor = series.get(CS_FAST) or next(iter(series.values()), None)
    if anchor:
        all_n = sorted({n for xs, _ in series.values() for n in xs})
        for order in orders:
            ref_x = [x for x in all_n if x >= anchor[0][0]]
            _reference(ax, ref_x, anchor[1][0], order, f"O(n^{order})" if order != 1 else "O(n)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (samples)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=6)


def plot_all(rows, out_dir, quick=False):
    """Write ``time_<workload>.png`` and ``memory_<workload>.png``; return their paths.

    ``quick``: the run used ``--quick`` sizes; every figure says so in its
    title (a few small n, short budgets: slopes are rough).

    Time: best time vs n per implementation, log-log, with the operation's
    O(n^2) (``to_center``: O(n)) slope through cs_fast's first point. Memory:
    peak RSS growth vs n for ``min_median`` and ``pairwise``, with O(n) and
    O(n^2) slopes: cs_fast's ``min_median`` streams row tiles (O(n)), the
    full-matrix approaches hold n^2 distances.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tag = " (--quick: small n, rough)" if quick else ""
    # The PNG's own text says what run drew it, for a reader who finds the file alone.
    meta = {"Description": ("cs-fast bench --quick run: small sizes, short budgets" if quick
                            else "cs-fast bench full run")}
    paths = []
    by_workload = {}
    for r in rows:
        by_workload.setdefault(r["workload"], []).append(r)
    for wk, wrows in by_workload.items():
        ops = [op for op in OPS if any(r["op"] == op for r in wrows)]
        fig, axes = plt.subplots(1, len(ops), figsize=(5 * len(ops), 4), squeeze=False)
        for ax, op in zip(axes[0], ops):
            _panel(ax, [r for r in wrows if r["op"] == op], "time_s", (time_order(op),), "time (s)",
                   f"{wk}: {op}{tag}")
        if quick:
            fig.suptitle("quick run: small sizes, short budgets", fontsize=9, color="firebrick")
        fig.tight_layout()
        paths.append(os.path.join(out_dir, f"time_{wk}.png"))
        fig.savefig(paths[-1], dpi=110, metadata=meta)
        plt.close(fig)

        mem_ops = [op for op in ("min_median", "pairwise") if op in ops]
        if not mem_ops:
            continue
        fig, axes = plt.subplots(1, len(mem_ops), figsize=(5 * len(mem_ops), 4), squeeze=False)
        for ax, op in zip(axes[0], mem_ops):
            _panel(ax, [r for r in wrows if r["op"] == op], "peak_rss_delta_bytes", (1, 2),
                   "peak RSS growth (bytes)", f"{wk}: {op} memory{tag}")
        if quick:
            fig.suptitle("quick run: small sizes, short budgets", fontsize=9, color="firebrick")
        fig.tight_layout()
        paths.append(os.path.join(out_dir, f"memory_{wk}.png"))
        fig.savefig(paths[-1], dpi=110, metadata=meta)
        plt.close(fig)
    return paths
