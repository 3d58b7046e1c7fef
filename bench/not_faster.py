"""Where cs_fast is not faster: every peer row of a bench results file with t_peer / t_cs_fast below 1.

    python bench/not_faster.py [bench/results/amd-epyc/results.json ...]

The README's "where cs_fast is not faster" list is read off this output; rerun
it after regenerating the results. Rows are grouped by workload and operation,
with the range of sizes and of factors (t_cs_fast / t_peer: how many times
faster the peer was).
"""

import json
import sys
from collections import defaultdict


def losses(doc):
    """``{(workload, op, peer): [(n, factor)]}`` with ``factor = t_cs_fast / t_peer > 1``."""
    out = defaultdict(list)
    for r in doc["ratios"]:
        if r["ratio"] is not None and r["ratio"] < 1.0:
            out[(r["workload"], r["op"], r["peer"])].append((r["n"], 1.0 / r["ratio"]))
    return out


def main(argv=None):
    paths = (sys.argv[1:] if argv is None else argv) or ["bench/results/amd-epyc/results.json"]
    for path in paths:
        with open(path) as fh:
            doc = json.load(fh)
        meta = doc["meta"]
        print(f"{path}: quick={doc['config'].get('quick')}, load average {meta.get('load_average_start')}, "
              f"threads numba {meta.get('numba_threads')}, torch {meta.get('torch_threads')}")
        rows = losses(doc)
        if not rows:
            print("  cs_fast is faster than every peer in every row")
        for (wk, op, peer), items in sorted(rows.items()):
            ns = ", ".join(str(n) for n, _ in items)
            lo, hi = min(f for _, f in items), max(f for _, f in items)
            span = f"{lo:.2g}x" if abs(hi - lo) < 0.05 * lo else f"{lo:.2g}-{hi:.2g}x"
            print(f"  {wk} {op}: {peer} faster by {span} (n = {ns})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
