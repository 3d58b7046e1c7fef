"""The ``cs-fast bench`` command: run the workloads, print a table, write JSON and PNG plots."""

import argparse
import dataclasses
import os
import sys

from ..output_dir import fresh_output_dir
from . import measure, report, run, workloads


def default_out():
    """A fresh ``./cs_fast_bench_YYYYmmdd-HHMMSS/`` (committed results change only with an explicit ``--out``)."""
    return fresh_output_dir("bench")


def _csv(value):
    return [v for v in value.split(",") if v]


def _threads(value):
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', received {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', received {value!r}")
    return n


def add_bench_arguments(parser):
    """Add the ``bench`` options to an :class:`argparse.ArgumentParser`."""
    keys = [w.key for w in workloads.default_workloads()]
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and short budgets (about a minute or two on 2 cores)")
    parser.add_argument("--out", default=None,
                        help="output folder for results.json, table.txt and the PNG plots (default: a fresh "
                             "./cs_fast_bench_YYYYmmdd-HHMMSS/)")
    parser.add_argument("--workloads", type=_csv, default=None,
                        help=f"comma-separated subset of: {','.join(keys)}")
    parser.add_argument("--ops", type=_csv, default=list(workloads.OPS),
                        help=f"comma-separated subset of: {','.join(workloads.OPS)}")
    parser.add_argument("--budget", type=float, default=None,
                        help="skip a peer call predicted to take longer than this many seconds")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--threads", type=_threads, default=None,
                        help="threads for cs_fast and every peer alike (numba, torch, BLAS); 'auto': the cores "
                             "the load average leaves free (default: numba's count, all cores)")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG files")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end certification timing")
    parser.add_argument("--no-startup", action="store_true",
                        help="skip the cold/warm start timing (cs_fast_apps/bench/startup.py)")
    parser.add_argument("--center", action="store_true",
                        help="only the exact-center rows: brute force vs pruned vs peers (cs_fast_apps.bench.center)")
    parser.add_argument("--center-large", action="store_true",
                        help="with --center: add 10^6 jittered boxes (the pruned search only: minutes)")
    return parser


def main_center(args, log=None):
    """``--center``: write center.json and center.txt into the output folder and print the table."""
    import json

    from .center import run_center, table

    if getattr(args, "threads", None) is not None:
        measure.set_threads(args.threads)
    out_dir = args.out or default_out()
    os.makedirs(out_dir, exist_ok=True)
    rows = run_center(quick=args.quick, large=args.center_large, seed=args.seed, log=log)
    doc = {"machine": measure.machine(), "rows": rows}
    with open(os.path.join(out_dir, "center.json"), "w") as fh:
        json.dump(doc, fh, indent=1, default=str)
    text = table(rows)
    with open(os.path.join(out_dir, "center.txt"), "w") as fh:
        fh.write(text + "\n")
    print(text)
    print(f"\nwrote into {out_dir}: center.json, center.txt")
    return 0


def _select(args):
    available = {w.key: w for w in workloads.default_workloads()}
    chosen = args.workloads or list(available)
    unknown = [k for k in chosen if k not in available]
    if unknown:
        raise ValueError(f"--workloads: unknown {', '.join(unknown)}; expected a comma-separated subset of "
                         f"{','.join(available)}")
    bad_ops = [op for op in args.ops if op not in workloads.OPS]
    if bad_ops or not args.ops:
        raise ValueError(f"--ops: unknown {', '.join(bad_ops) or '(empty)'}; expected a comma-separated subset of "
                         f"{','.join(workloads.OPS)}")
    return [available[k] for k in chosen]


def main_bench(args, *, selected=None, config=None, log=run.stderr_log):
    """Run the benchmark described by parsed ``args``; return 0 (the exit status).

    ``selected`` and ``config`` (a :class:`cs_fast_apps.bench.run.Config`)
    override the workloads and settings derived from ``args`` (tests use
    them for tiny runs). Writes ``results.json``, ``table.txt`` and the plots
    into ``args.out`` (default: a fresh folder, :func:`default_out`) and
    prints the table. Unknown workloads or operations raise ``ValueError``
    before anything runs (``cs-fast`` turns it into one line and status 2).
    """
    if getattr(args, "center", False) or getattr(args, "center_large", False):
        return main_center(args, log)
    if selected is None:
        selected = _select(args)
    elif not args.ops or any(op not in workloads.OPS for op in args.ops):
        _select(args)  # the same message for bad --ops
    if config is None:
        config = run.quick_config(seed=args.seed) if args.quick else run.Config(seed=args.seed)
        if args.budget is not None:
            config = dataclasses.replace(config, budget_s=args.budget)
    if getattr(args, "threads", None) is not None:
        measure.set_threads(args.threads)
    out_dir = args.out or default_out()
    os.makedirs(out_dir, exist_ok=True)
    load = measure.load_status()
    if load["warning"]:
        print(f"cs-fast bench: warning: {load['warning']}", file=sys.stderr, flush=True)
    meta = measure.machine()
    meta["load_average_start"] = load["load_average"][0] if load["load_average"] else None
    meta["load_start"] = load
    rows, ceil = run.run_all(config, selected, args.ops, log)
    e2e = None
    if not args.no_end_to_end:
        from .end_to_end import demo_end_to_end

        log and log("end to end (the demo's digits autoencoder, tv)")
        e2e = demo_end_to_end(quick=config.quick)
    startup_figures = None
    if not getattr(args, "no_startup", False):
        from .startup import format_startup, measure_startup

        log and log("start-up: cs-fast certify cold and warm, import cs_fast")
        startup_figures = measure_startup(runs=1 if config.quick else 3)
    meta["load_average_end"] = measure.load_average()
    meta["load_averages_end"] = measure.load_averages()
    doc = report.document(rows, ceil, meta, dataclasses.asdict(config), e2e)
    if startup_figures:
        doc["startup"] = startup_figures
    table = report.format_table(rows, ceil, meta, quick=config.quick)
    if e2e:
        table += (f"\n\nend to end ({e2e['metric']}, n={e2e['n']}, m={e2e['m']}): total {e2e['total_s']:.3g} s = "
                  f"model {e2e['model_s']:.3g} s + cs_fast {e2e['cs_fast_s']:.3g} s "
                  f"({e2e['model_calls']} model calls; abstained={e2e['abstained']})")
    if startup_figures:
        table += "\n\n" + format_startup(startup_figures)
    report.write_json(os.path.join(out_dir, "results.json"), doc)
    with open(os.path.join(out_dir, "table.txt"), "w") as fh:
        fh.write(table + "\n")
    written = ["results.json", "table.txt"]
    if not args.no_plots:
        try:
            from .plots import plot_all

            written += [os.path.basename(p) for p in plot_all(rows, out_dir, quick=config.quick)]
        except ImportError:
            table += "\n\nno plots: matplotlib is not installed (pip install matplotlib)"
    print(table)
    print(f"\nwrote into {out_dir}: {', '.join(written)}")
    return 0


def main(argv=None):
    """Standalone entry point: ``python -m cs_fast_apps.bench``."""
    parser = add_bench_arguments(argparse.ArgumentParser(prog="cs-fast bench", description=__doc__))
    args = parser.parse_args(argv)
    try:
        return main_bench(args)
    except ValueError as err:
        print(f"cs-fast bench: error: {err}", file=sys.stderr)
        return 2
