"""``cs-fast demo``: certify the digits autoencoder under total variation distance.

The paper's Figure 5 (section 5.3) on scikit-learn's 8x8 digits: for held-out
digits ``x`` (one per class while classes last), certify the TV distance of the
smoothed autoencoder's output at ``eps1`` in {0.2, ..., 1.0} with noise
``sigma = eps1 / h``, ``h`` in {1.5, 2}, and report per ``(h, eps1)`` the
median certified output radius ``eps_out`` and the median smoothing error
``d(f(x), center)``. Every certificate is made under both rule sets of
:mod:`cs_fast.bounds` from the same samples
(:meth:`cs_fast.CenterSmoothing.compare_bounds`), so the table and the plot show
what the exact bounds gain. For scale: the largest TV distance between two 8x8
images with pixels in [0, 1] is ``2 * 8 * 7 = 112``.

Wiring into a command line takes two lines::

    add_demo_arguments(subparsers.add_parser("demo", help="..."))
    ...
    return main_demo(args)
"""

import json
import os
import sys
import time

import numpy as np

from cs_fast.bounds import BOUNDS

EPS1_GRID = (0.2, 0.4, 0.6, 0.8, 1.0)
H_GRID = (1.5, 2.0)
#: A few minutes on a 2-core CPU.
DEFAULTS = {"n": 4000, "m": 20_000, "num_inputs": 5}
#: The paper's settings.
PAPER = {"n": 10_000, "m": 1_000_000, "num_inputs": 50}
TV_MAX = 2 * 8 * 7
NUM_PICTURES = 5


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _fmt(v, width=8, prec=3):
    return f"{'-':>{width}}" if v is None else f"{v:>{width}.{prec}f}"


def _abstain_kind(reason):
    """Short label of an abstention reason, for the table."""
    if reason.startswith("center check"):
        return "center"
    if reason.startswith("n too small"):
        return "n"
    if reason.startswith("q =") or reason.startswith("p^m"):
        return "m"
    return "other"


def pick_inputs(labels, count):
    """Indices of ``count`` held-out digits: the first of each class in order, then the next ones.

    Different classes show different outputs; past ten inputs the rest of the
    split follows in its order.
    """
    labels = [int(v) for v in labels]
    first = []
    for i, c in enumerate(labels):
        if c not in {labels[j] for j in first}:
            first.append(i)
    rest = [i for i in range(len(labels)) if i not in first]
    return (first + rest)[:count]


def format_table(rows, primary="exact"):
    """The Figure 5 numbers as a fixed-width text table, the ``primary`` rule set first.

    Parameters
    ----------
    rows : list of dict
        The ``"rows"`` of :func:`run_demo`'s result.
    primary : {'exact', 'paper'}

    Returns
    -------
    str
    """
    order = [primary] + [b for b in BOUNDS if b != primary]
    head = f"{'h':>4} {'eps1':>5} {'sigma':>6} " + " ".join(
        f"{b + ': certified':>16} {'median eps_out':>15}" for b in order) + f" {'median smooth. err':>19}"
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = []
        for b in order:
            s = r["by_bounds"][b]
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(s["abstained_by_kind"].items()))
            cells.append(f"{s['certified']:>10d}/{r['count']:<3d}{'*' if kinds else ' ':>2} "
                         f"{_fmt(s['median_eps_out'], 15)}")
        lines.append(f"{r['h']:>4.1f} {r['eps1']:>5.1f} {r['sigma']:>6.3f} " + " ".join(cells)
                     + f" {_fmt(r['median_smoothing_error'], 19)}")
    lines.append("")
    lines.append("h = eps1 / sigma: the input radius in units of the noise. eps_out: the certified radius of the "
                 "smoothed output (TV distance)")
    lines.append(f"around its center, for every input within l2 distance eps1; the largest TV distance between "
                 f"two 8x8 images in [0, 1] is {TV_MAX}.")
    lines.append("Medians over the inputs a rule set certified ('-': none). The same samples are ranked under "
                 "both rule sets: exact binomial")
    lines.append("bounds and the paper's Hoeffding/DKW bounds, each failing with probability at most "
                 "alpha1 + alpha2 = 0.01.")
    notes = [f"  h = {r['h']:g}, eps1 = {r['eps1']:g}, {b}: "
             + ", ".join(f"{k} {v}" for k, v in sorted(r["by_bounds"][b]["abstained_by_kind"].items()))
             for r in rows for b in order if r["by_bounds"][b]["abstained_by_kind"]]
    if notes:
        lines.append("* abstentions ('center': the center's ball failed the mass check, raise n; 'm': m is too "
                     "small for eps1 / sigma, raise m; 'n': n too small for delta):")
        lines.extend(notes)
    return "\n".join(lines)


def _certify_grid(model, images, labels, hs, eps1s, n, m, seed, batch_size, progress, same_seed=False):
    """Certify every (h, eps1, input) under both rule sets; return the records and the centers to picture."""
    import torch

    from cs_fast import CenterSmoothing
    from cs_fast.progress import progress as progress_bar
    from cs_fast.seeds import input_seed

    records, centers = [], {}
    total = len(hs) * len(eps1s) * len(images)
    with torch.no_grad():
        base = model(images)
    with progress_bar(total, "certifying", "input", progress) as bar:
        for h in hs:
            for eps1 in eps1s:
                sigma = eps1 / h
                bar.set_postfix(h=h, eps1=eps1)
                for i, x in enumerate(images):
                    # Input i draws from input_seed(seed, i) at every (h, eps1), as `cs-fast certify` does.
                    ss = seed if same_seed else input_seed(seed, i)
                    cs = CenterSmoothing(model, "tv", sigma, batch_size=batch_size, seed=ss, progress=progress)
                    for rules, c in cs.compare_bounds(x, eps1, n=n, m=m).items():
                        records.append({
                            "h": h, "eps1": eps1, "sigma": sigma, "input": i, "label": int(labels[i]), "bounds": rules,
                            "abstained": c.abstained, "reason": c.reason, "eps_out": c.eps_out,
                            "smoothing_error": c.smoothing_error, "R": c.R, "rank": c.rank, "level": c.level,
                            "radius": c.radius, "count": c.count, "threshold": c.threshold, "delta1": c.delta1,
                            "delta2": c.delta2, "p": c.p, "q": c.q, "vacuous": c.vacuous,
                            "failure_probability": c.failure_probability, "seed": c.seed,
                            "spawn_key": list(c.spawn_key),
                        })
                        if i < NUM_PICTURES and c.center is not None:
                            centers[(h, eps1, i, rules)] = (np.asarray(c.center, dtype=np.float32).reshape(8, 8),
                                                            c.eps_out)
                    bar.update(1)
    return records, centers, base.numpy().reshape(-1, 8, 8)


def _summarize(records, hs, eps1s):
    rows = []
    for h in hs:
        for eps1 in eps1s:
            here = [r for r in records if r["h"] == h and r["eps1"] == eps1]
            by = {}
            for b in BOUNDS:
                rs = [r for r in here if r["bounds"] == b]
                ok = [r for r in rs if not r["abstained"]]
                kinds = {}
                for r in rs:
                    if r["abstained"]:
                        k = _abstain_kind(r["reason"])
                        kinds[k] = kinds.get(k, 0) + 1
                by[b] = {"certified": len(ok), "abstained": len(rs) - len(ok), "abstained_by_kind": kinds,
                         "vacuous": sum(bool(r["vacuous"]) for r in ok),
                         "median_eps_out": _median([r["eps_out"] for r in ok]),
                         "median_level": _median([r["level"] for r in ok])}
            # the same center under both rule sets: one smoothing error per input whose center passed a check
            errors = {r["input"]: r["smoothing_error"] for r in here if r["smoothing_error"] is not None}
            rows.append({"h": h, "eps1": eps1, "sigma": eps1 / h, "count": len(here) // len(BOUNDS),
                         "by_bounds": by, "median_smoothing_error": _median(list(errors.values()))})
    return rows


def _plot_curves(rows, hs, settings, path, plt):
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    nan = float("nan")
    for h in hs:
        rs = [r for r in rows if r["h"] == h]
        x = [r["eps1"] for r in rs]
        color = None
        for b, style in (("exact", "o-"), ("paper", "o--")):
            y = [nan if r["by_bounds"][b]["median_eps_out"] is None else r["by_bounds"][b]["median_eps_out"]
                 for r in rs]
            line, = ax.plot(x, y, style, color=color, label=f"eps_out, {b} bounds, h={h:g}",
                            mfc="white" if b == "paper" else None)
            color = line.get_color()
            for r in rs:  # mark every abstention: an x on the axis where all abstained, a count otherwise
                s = r["by_bounds"][b]
                if s["abstained"] and s["certified"] == 0:
                    ax.plot([r["eps1"]], [0.0], "x", color=color, ms=9, mew=2, clip_on=False)
                elif s["abstained"]:
                    ax.annotate(f"{s['abstained']}/{r['count']} abst.", (r["eps1"], s["median_eps_out"]),
                                textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
        ax.plot(x, [nan if r["median_smoothing_error"] is None else r["median_smoothing_error"] for r in rs],
                "s:", color=color, label=f"smoothing error d(f(x), center), h={h:g}")
    ax.plot([], [], "x", color="gray", label="x on the axis: every input abstained")
    ax.set_xlabel("eps1 (l2 input perturbation); sigma = eps1 / h")
    ax.set_ylabel(f"median TV distance (the largest possible is {TV_MAX})")
    ax.set_title(f"Certified TV radius of the digits autoencoder\n"
                 f"n = {settings['n']}, m = {settings['m']}, {settings['num_inputs']} held-out digits; "
                 f"h = eps1 / sigma", fontsize=10)
    ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_outputs(images, labels, base, centers, primary, path, plt):
    cols = min(NUM_PICTURES, len(images))
    settings = sorted({(h, e) for h, e, _, b in centers if b == primary})
    settings = settings if len(settings) <= 2 else [settings[0], settings[-1]]
    row_specs = [("input x", lambda i: (images[i], None)), ("base f(x)", lambda i: (base[i], None))]
    for h, e in settings:
        row_specs.append((f"smoothed\nh={h:g}, eps1={e:g}", lambda i, h=h, e=e: centers.get((h, e, i, primary))))
    fig, axes = plt.subplots(len(row_specs), cols, figsize=(1.5 * cols + 1.2, 1.5 * len(row_specs)), squeeze=False)
    for r, (title, get) in enumerate(row_specs):
        for i in range(cols):
            ax = axes[r][i]
            got = get(i)
            if got is None:
                ax.text(0.5, 0.5, "abstained", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            else:
                img, eps_out = got
                ax.imshow(img, cmap="gray_r", vmin=0.0, vmax=1.0)
                if eps_out is not None:
                    ax.set_xlabel(f"eps_out {eps_out:.2f}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"digit {int(labels[i])}", fontsize=8)
            if i == 0:
                ax.set_ylabel(title, fontsize=8)
    fig.suptitle(f"smoothed outputs ({primary} bounds; eps_out in TV, largest possible {TV_MAX})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(out="cs_fast_demo", n=DEFAULTS["n"], m=DEFAULTS["m"], num_inputs=DEFAULTS["num_inputs"], seed=None,
             eps1s=EPS1_GRID, hs=H_GRID, batch_size=5000, progress=True, stream=None, same_seed=False,
             bounds="exact"):
    """Certify the TV distance of the smoothed digits autoencoder and write the results.

    For each ``h`` in ``hs``, ``eps1`` in ``eps1s`` and each of ``num_inputs``
    held-out digits (:func:`pick_inputs`), run
    :meth:`cs_fast.CenterSmoothing.compare_bounds` with ``sigma = eps1 / h``:
    one set of samples, a certificate under each rule set. Input ``i`` draws
    its noise from :func:`cs_fast.seeds.input_seed` ``(seed, i)`` at every
    setting. Prints the table of :func:`format_table` to ``stream`` and
    writes into ``out``: ``results.json`` (settings, per-(h, eps1) medians
    under both rule sets, every certificate with its abstention reason),
    ``table.txt``, and, when matplotlib is installed, ``curves.png`` (median
    eps_out against eps1, exact solid and paper dashed, abstentions marked,
    and the smoothing error, as the paper's Figure 5) and ``outputs.png``
    (inputs, base-model outputs and smoothed outputs of a few digits).

    Parameters
    ----------
    out : str or path-like
        Output directory, created if needed.
    n, m : int
        Samples to pick and check the center (``n`` each), and to certify (``m``).
    num_inputs : int
        How many held-out digits.
    seed : int, optional
        The root seed; None (the default) draws fresh OS entropy, recorded in
        ``results.json``.
    eps1s, hs : sequence of float
        The grid; ``sigma = eps1 / h``.
    batch_size : int
        Inputs per model call.
    progress : bool
        Show tqdm progress bars (on stderr).
    stream : file-like, optional
        Where the table goes; default ``sys.stdout``.
    same_seed : bool
        Every input draws from ``seed`` itself (the same noise).
    bounds : {'exact', 'paper'}
        The rule set shown first in the table and in ``outputs.png``; both are computed.

    Returns
    -------
    dict
        The content of ``results.json``; ``files`` lists the files written.

    Raises
    ------
    ImportError
        If scikit-learn (needed for the digits) is not installed.
    ValueError
        For a bad option, or when ``n`` or ``m`` cannot certify some setting
        under either rule set (before any model call).
    """
    from cs_fast.bounds import check_bounds, require_certifiable
    from cs_fast.models.digits import digits_data, load_digits_autoencoder
    from cs_fast.seeds import root_seed

    stream = sys.stdout if stream is None else stream
    for name, v in (("n", n), ("m", m), ("num_inputs", num_inputs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: received {v!r}; expected a positive integer")
    bounds = check_bounds(bounds)
    hs, eps1s = tuple(float(h) for h in hs), tuple(float(e) for e in eps1s)
    for h in hs:  # the exact rule set certifies whenever the paper's does: refuse only what neither can
        for eps1 in eps1s:
            require_certifiable(n, m, eps1, eps1 / h, bounds="exact")
    all_images, all_labels = digits_data("test", return_labels=True)
    if num_inputs > len(all_images):
        raise ValueError(f"num_inputs: received {num_inputs}; the test split has {len(all_images)} digits")
    picked = pick_inputs(all_labels, num_inputs)
    images, labels = all_images[picked], all_labels[picked]
    seed = root_seed(seed)
    model = load_digits_autoencoder()
    os.makedirs(out, exist_ok=True)

    t0 = time.perf_counter()
    records, centers, base = _certify_grid(model, images, labels, hs, eps1s, n, m, seed, batch_size, progress,
                                           same_seed)
    elapsed = time.perf_counter() - t0
    rows = _summarize(records, hs, eps1s)
    table = format_table(rows, bounds)
    print(table, file=stream)
    settings = {"n": n, "m": m, "num_inputs": num_inputs, "inputs": [int(i) for i in picked], "seed": seed,
                "same_seed": bool(same_seed), "eps1": list(eps1s), "h": list(hs), "bounds": bounds,
                "metric": "tv", "alpha1": 0.005, "alpha2": 0.005, "delta": 0.05,
                "model": "cs_fast.models.digits.load_digits_autoencoder()", "data": "digits_data('test')"}

    files = {"json": os.path.join(out, "results.json"), "table": os.path.join(out, "table.txt")}
    with open(files["table"], "w") as fh:
        fh.write(table + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib, or pip install -e '.[demo]' in the cs_fast "
              "clone): skipping the PNG plots; the table and results.json are written.", file=stream)
    else:
        files["curves"] = os.path.join(out, "curves.png")
        files["outputs"] = os.path.join(out, "outputs.png")
        _plot_curves(rows, hs, settings, files["curves"], plt)
        _plot_outputs(images.numpy().reshape(-1, 8, 8), labels, base, centers, bounds, files["outputs"], plt)

    result = {"settings": settings, "seconds": elapsed, "rows": rows, "records": records, "files": files}
    with open(files["json"], "w") as fh:
        json.dump(result, fh, indent=1, allow_nan=False)
    print(f"certified {len(records) // len(BOUNDS)} (h, eps1, input) cases under both bounds in {elapsed:.1f}s; "
          "wrote " + ", ".join(files.values()), file=stream)
    return result


def add_demo_arguments(parser):
    """Add the demo's options to an :class:`argparse.ArgumentParser` (or subparser)."""
    parser.add_argument("--n", type=int, default=None,
                        help=f"samples to pick and to check the center (default {DEFAULTS['n']}; --paper: {PAPER['n']})")
    parser.add_argument("--m", type=int, default=None,
                        help=f"samples to certify (default {DEFAULTS['m']}; --paper: {PAPER['m']})")
    parser.add_argument("--num-inputs", type=int, default=None,
                        help=f"held-out digits to certify (default {DEFAULTS['num_inputs']}; --paper: {PAPER['num_inputs']})")
    from cs_fast_apps.output_dir import fresh_output_dir  # a new folder per run: results never overwritten

    from .sweep import add_bounds_argument, add_seed_arguments

    add_seed_arguments(parser, rule="input i draws from a seed derived from (seed, i) at every (h, eps1), as in "
                                    "cs-fast certify")
    add_bounds_argument(parser)
    parser.add_argument("--out", default=fresh_output_dir("demo"),
                        help="output directory (default: a fresh ./cs_fast_demo_YYYYmmdd-HHMMSS/)")
    parser.add_argument("--paper", action="store_true",
                        help="the paper's settings: n=10^4, m=10^6, 50 inputs (hours on a laptop CPU)")
    parser.add_argument("--batch-size", type=int, default=5000, help="inputs per model call (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def demo_options(args):
    """Keyword arguments of :func:`run_demo` from parsed arguments.

    ``--paper`` switches the defaults of ``--n``, ``--m`` and ``--num-inputs``
    to the paper's; an explicit value wins either way.
    """
    base = PAPER if args.paper else DEFAULTS
    opts = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in base.items()}
    return dict(opts, out=args.out, seed=args.seed, batch_size=args.batch_size, progress=not args.no_progress,
                same_seed=args.same_seed, bounds=args.bounds)


def main_demo(args):
    """Run the demo from parsed arguments (see :func:`add_demo_arguments`); return an exit code."""
    try:
        run_demo(**demo_options(args))
    except (ImportError, ValueError) as err:  # a missing extra or a bad option: one line, exit 2
        print(f"cs-fast demo: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    import argparse

    sys.exit(main_demo(add_demo_arguments(argparse.ArgumentParser(prog="python -m cs_fast_apps.demo")).parse_args()))
