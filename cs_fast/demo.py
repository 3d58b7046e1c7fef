"""``cs-fast demo``: certify the digits autoencoder under total variation distance.

The paper's Figure 5 (section 5.3) on scikit-learn's 8x8 digits: for held-out
digits ``x``, certify the TV distance of the smoothed autoencoder's output at
``eps1`` in {0.2, ..., 1.0} with ``sigma = eps1 / h``, ``h`` in {1.5, 2}, and
report per ``(h, eps1)`` the median certified output radius ``eps_out`` and
the median smoothing error ``d(f(x), center)``. For scale: the largest TV
distance between two 8x8 images in [0, 1] is ``2 * 8 * 7 = 112``.

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

EPS1_GRID = (0.2, 0.4, 0.6, 0.8, 1.0)
H_GRID = (1.5, 2.0)
#: A few minutes on a 2-core CPU. n = 4000 keeps the center check's Hoeffding
#: margin (delta1 = 0.027) well under delta = 0.05; at n = 2000 (0.039) the
#: check abstains on a good share of inputs.
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
    if reason.startswith("q ="):
        return "q>1"
    return "other"


def format_table(rows):
    """The Figure 5 numbers as a fixed-width text table.

    Parameters
    ----------
    rows : list of dict
        The ``"rows"`` of :func:`run_demo`'s result.

    Returns
    -------
    str
    """
    head = (f"{'h':>4} {'eps1':>5} {'sigma':>6} {'certified':>9} {'abstained':>17} {'vacuous':>7} "
            f"{'median eps_out':>15} {'median smooth. err':>19}")
    lines = [head, "-" * len(head)]
    for r in rows:
        kinds = r["abstained_by_kind"]
        detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        abst = f"{r['abstained']}" + (f" ({detail})" if detail else "")
        lines.append(f"{r['h']:>4.1f} {r['eps1']:>5.1f} {r['sigma']:>6.3f} "
                     f"{r['certified']:>5d}/{r['count']:<3d} {abst:>17} {r.get('vacuous', 0):>7d} "
                     f"{_fmt(r['median_eps_out'], 15)} {_fmt(r['median_smoothing_error'], 19)}")
    lines.append(f"Medians over certified inputs ('-': none). TV distance; the largest possible "
                 f"between two 8x8 images is {TV_MAX}.")
    lines.append("Abstained: 'center' = the center's ball failed the mass check (raise n), "
                 "'q>1' = m too small for eps1/sigma (raise m). Vacuous: certified eps_out at least the "
                 "metric's largest distance (never for TV, which is unbounded).")
    return "\n".join(lines)


def _certify_grid(model, images, labels, hs, eps1s, n, m, seed, batch_size, progress, same_seed=False):
    """Certify every (h, eps1, input); return the per-input records and the centers to picture."""
    import torch

    from . import CenterSmoothing
    from .models._sweep import setting_seed
    from .progress import progress as progress_bar

    records, centers = [], {}
    total = len(hs) * len(eps1s) * len(images)
    with torch.no_grad():
        base = model(images)
    with progress_bar(total, "certifying", "input", progress) as bar:
        for hi, h in enumerate(hs):
            for ei, eps1 in enumerate(eps1s):
                sigma = eps1 / h
                bar.set_postfix(h=h, eps1=eps1)
                for i, x in enumerate(images):
                    # One independent, recorded seed per (h, eps1, input).
                    ss = setting_seed(seed, (hi, ei, i), same_seed)
                    cs = CenterSmoothing(model, "tv", sigma, batch_size=batch_size, seed=ss, progress=progress)
                    c = cs.certify(x, eps1, n=n, m=m)
                    records.append({
                        "h": h, "eps1": eps1, "sigma": sigma, "input": i, "label": int(labels[i]),
                        "abstained": c.abstained, "reason": c.reason, "eps_out": c.eps_out,
                        "smoothing_error": c.smoothing_error, "R": c.R, "radius": c.radius,
                        "delta1": c.delta1, "delta2": c.delta2, "p": c.p, "q": c.q, "vacuous": c.vacuous,
                        "failure_probability": c.failure_probability, "seed": c.seed, "spawn_key": list(c.spawn_key),
                    })
                    if i < NUM_PICTURES and c.center is not None:
                        centers[(sigma, i)] = np.asarray(c.center, dtype=np.float32).reshape(8, 8)
                    bar.update(1)
    return records, centers, base.numpy().reshape(-1, 8, 8)


def _summarize(records, hs, eps1s):
    rows = []
    for h in hs:
        for eps1 in eps1s:
            rs = [r for r in records if r["h"] == h and r["eps1"] == eps1]
            ok = [r for r in rs if not r["abstained"]]
            kinds = {}
            for r in rs:
                if r["abstained"]:
                    k = _abstain_kind(r["reason"])
                    kinds[k] = kinds.get(k, 0) + 1
            rows.append({
                "h": h, "eps1": eps1, "sigma": eps1 / h, "count": len(rs), "certified": len(ok),
                "abstained": len(rs) - len(ok), "abstained_by_kind": kinds,
                "vacuous": sum(bool(r["vacuous"]) for r in ok),
                "median_eps_out": _median([r["eps_out"] for r in ok]),
                "median_smoothing_error": _median([r["smoothing_error"] for r in ok]),
            })
    return rows


def _plot_curves(rows, hs, path, plt):
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for h in hs:
        rs = [r for r in rows if r["h"] == h]
        x = [r["eps1"] for r in rs]
        nan = float("nan")
        line, = ax.plot(x, [nan if r["median_eps_out"] is None else r["median_eps_out"] for r in rs],
                        "o-", label=f"certified eps_out, h={h:g}")
        ax.plot(x, [nan if r["median_smoothing_error"] is None else r["median_smoothing_error"] for r in rs],
                "s--", color=line.get_color(), label=f"smoothing error, h={h:g}")
    ax.set_xlabel("eps1 (l2 input perturbation)")
    ax.set_ylabel("median TV distance")
    ax.set_title("Certifying total variation distance (8x8 digits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_outputs(images, labels, base, centers, path, plt):
    cols = min(NUM_PICTURES, len(images))
    sigmas = sorted({s for s, _ in centers})
    sigmas = sigmas if len(sigmas) <= 1 else [sigmas[0], sigmas[-1]]
    row_specs = [("input x", lambda i: images[i])]
    row_specs.append(("base f(x)", lambda i: base[i]))
    for s in sigmas:
        row_specs.append((f"smoothed\nsigma={s:.3g}", lambda i, s=s: centers.get((s, i))))
    fig, axes = plt.subplots(len(row_specs), cols, figsize=(1.3 * cols + 1.0, 1.3 * len(row_specs)), squeeze=False)
    for r, (title, get) in enumerate(row_specs):
        for i in range(cols):
            ax = axes[r][i]
            img = get(i)
            if img is None:
                ax.text(0.5, 0.5, "abstained", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            else:
                ax.imshow(img, cmap="gray_r", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"digit {int(labels[i])}", fontsize=8)
            if i == 0:
                ax.set_ylabel(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(out="cs_fast_demo", n=DEFAULTS["n"], m=DEFAULTS["m"], num_inputs=DEFAULTS["num_inputs"], seed=None,
             eps1s=EPS1_GRID, hs=H_GRID, batch_size=5000, progress=True, stream=None, same_seed=False):
    """Certify the TV distance of the smoothed digits autoencoder and write the results.

    For each ``h`` in ``hs``, ``eps1`` in ``eps1s`` and each of the first
    ``num_inputs`` held-out digits, run :meth:`cs_fast.CenterSmoothing.certify`
    with ``sigma = eps1 / h``, each with its own recorded seed
    ``SeedSequence(seed, spawn_key=(h index, eps1 index, input))``.
    Prints the table of :func:`format_table` to ``stream`` and writes into
    ``out``: ``results.json`` (settings, per-(h, eps1) medians, every
    certificate with its abstention reason), ``table.txt``, and, when
    matplotlib is installed, ``curves.png`` (median eps_out and smoothing
    error against eps1, as the paper's Figure 5) and ``outputs.png`` (inputs,
    base-model outputs and smoothed outputs of a few digits).

    Parameters
    ----------
    out : str or path-like
        Output directory, created if needed.
    n, m : int
        Samples to pick and check the center (``n`` each), and to certify (``m``).
    num_inputs : int
        How many held-out digits (the first of the test split).
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
        Every (h, eps1, input) draws from ``seed`` itself (the same noise).

    Returns
    -------
    dict
        The content of ``results.json``; ``files`` lists the files written.

    Raises
    ------
    ImportError
        If scikit-learn (needed for the digits) is not installed.
    """
    from .models._sweep import root_seed
    from .models.digits import digits_data, load_digits_autoencoder

    stream = sys.stdout if stream is None else stream
    for name, v in (("n", n), ("m", m), ("num_inputs", num_inputs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name}: received {v!r}; expected a positive integer")
    images, labels = digits_data("test", return_labels=True)
    if num_inputs > len(images):
        raise ValueError(f"num_inputs: received {num_inputs}; the test split has {len(images)} digits")
    images, labels = images[:num_inputs], labels[:num_inputs]
    hs, eps1s = tuple(float(h) for h in hs), tuple(float(e) for e in eps1s)
    seed = root_seed(seed)
    model = load_digits_autoencoder()
    os.makedirs(out, exist_ok=True)

    t0 = time.perf_counter()
    records, centers, base = _certify_grid(model, images, labels, hs, eps1s, n, m, seed, batch_size, progress,
                                           same_seed)
    elapsed = time.perf_counter() - t0
    rows = _summarize(records, hs, eps1s)
    table = format_table(rows)
    print(table, file=stream)

    files = {"json": os.path.join(out, "results.json"), "table": os.path.join(out, "table.txt")}
    with open(files["table"], "w") as fh:
        fh.write(table + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'cs_fast[demo]'): skipping the PNG plots; "
              "the table and results.json are written.", file=stream)
    else:
        files["curves"] = os.path.join(out, "curves.png")
        files["outputs"] = os.path.join(out, "outputs.png")
        _plot_curves(rows, hs, files["curves"], plt)
        _plot_outputs(images.numpy().reshape(-1, 8, 8), labels, base, centers, files["outputs"], plt)

    result = {
        "settings": {"n": n, "m": m, "num_inputs": num_inputs, "seed": seed, "same_seed": bool(same_seed),
                     "eps1": list(eps1s), "h": list(hs),
                     "metric": "tv", "alpha1": 0.005, "alpha2": 0.005, "delta": 0.05,
                     "model": "cs_fast.models.digits.load_digits_autoencoder()", "data": "digits_data('test')"},
        "seconds": elapsed,
        "rows": rows,
        "records": records,
        "files": files,
    }
    with open(files["json"], "w") as fh:
        json.dump(result, fh, indent=1, allow_nan=False)
    print(f"certified {len(records)} (h, eps1, input) cases in {elapsed:.1f}s; wrote "
          + ", ".join(files.values()), file=stream)
    return result


def add_demo_arguments(parser):
    """Add the demo's options to an :class:`argparse.ArgumentParser` (or subparser)."""
    parser.add_argument("--n", type=int, default=None,
                        help=f"samples to pick and to check the center (default {DEFAULTS['n']}; --paper: {PAPER['n']})")
    parser.add_argument("--m", type=int, default=None,
                        help=f"samples to certify (default {DEFAULTS['m']}; --paper: {PAPER['m']})")
    parser.add_argument("--num-inputs", type=int, default=None,
                        help=f"held-out digits to certify (default {DEFAULTS['num_inputs']}; --paper: {PAPER['num_inputs']})")
    from cs_fast.output_dir import fresh_output_dir  # a new folder per run: results never overwritten

    from .models._sweep import add_seed_arguments

    add_seed_arguments(parser)
    parser.add_argument("--out", default=fresh_output_dir("demo"),
                        help="output directory (default: a fresh ./cs_fast_demo_YYYYmmdd-HHMMSS/)")
    parser.add_argument("--paper", action="store_true",
                        help="the paper's settings: n=10^4, m=10^6, 50 inputs (hours on a laptop CPU)")
    parser.add_argument("--batch-size", type=int, default=5000, help="inputs per model call")
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
                same_seed=args.same_seed)


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

    sys.exit(main_demo(add_demo_arguments(argparse.ArgumentParser(prog="python -m cs_fast.demo")).parse_args()))
