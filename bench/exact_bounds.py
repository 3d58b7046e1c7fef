"""Exact vs paper bounds on the three models of the paper's kinds, from the same samples.

For every (model, input, h, eps1) one certification is sampled once with the
public three-step API (``CenterSmoothing.certify_center`` with the exact rules,
whose center check passes whenever the paper's does, then
``certification_distances`` for ``m_max`` distances). Both rule sets then judge
those samples: the center check (``cs_fast.bounds.center_check`` on the same
count) and ``R`` at every certification size ``m`` of a grid, as the
``certification_rank(m, p, alpha2, bounds)``-th smallest of the first ``m``
distances (a prefix of an i.i.d. sample is an i.i.d. sample).

Reported per model: median eps_out and abstentions under each rule set at the
paper's m and at m/10; the m each rule set needs to reach the paper rules'
median eps_out at the paper's m; end-to-end seconds per certificate at that
equal eps_out (one setting, both rule sets run afresh through ``certify`` and
timed); the plot of median eps_out against m.

    python bench/exact_bounds.py --models digits perceptual faces --out bench/results/exact-bounds
    python bench/exact_bounds.py --quick --out /tmp/exact-bounds      # small sizes, a minute
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch

import cs_fast
from cs_fast import bounds
from cs_fast.seeds import input_seed

ALPHA = 0.005


def _digits(quick):
    from cs_fast_apps.demo import pick_inputs
    from cs_fast.models.digits import digits_data, load_digits_autoencoder

    model = load_digits_autoencoder()
    images, labels = digits_data("test", return_labels=True)
    picked = pick_inputs(labels, 2 if quick else 5)
    return dict(name="digits autoencoder / tv", model=model, metric="tv", params={}, inputs=[images[i] for i in picked],
                input_ids=[int(i) for i in picked], hs=(1.5, 2.0), eps1s=(0.2, 1.0) if quick else (0.2, 0.6, 1.0),
                n=2000 if quick else 10_000, m=20_000 if quick else 1_000_000, delta=0.05, batch_size=5000,
                paper="Figure 5 (section 5.3): n = 10^4, m = 10^6", timing=(2.0, 0.6))


def _perceptual(quick):
    from cs_fast.models import perceptual

    model = perceptual.build()
    count = 2 if quick else 3
    z = perceptual.test_latents(count)
    return dict(name="digits generator / LPIPS (sqfeat)", model=model, metric="sqfeat",
                params={"weights": model.weights}, inputs=[z[i] for i in range(count)], input_ids=list(range(count)),
                hs=perceptual.PAPER_H, eps1s=(0.01, 0.05) if quick else (0.01, 0.03, 0.05),
                n=1000 if quick else perceptual.PAPER_N, m=5000 if quick else perceptual.PAPER_M,
                delta=perceptual.PAPER_DELTA, batch_size=500,
                paper="section 5.2: n = 2000, m = 10^4, delta = 0.08 (exact center)", timing=(1.5, 0.03))


def _faces(quick):
    from cs_fast.models import faces

    detector = faces.TopFaceBox(faces.load_mtcnn(min_face_size=60))
    return dict(name="MTCNN faces / jaccard", model=detector, metric="jaccard", params={},
                inputs=[faces.astronaut()], input_ids=["astronaut crop"], hs=faces.PAPER_H,
                eps1s=(0.1,) if quick else (0.1, 0.3), n=800 if quick else faces.PAPER_N,
                m=2000 if quick else faces.PAPER_M, delta=0.05, batch_size=100,
                paper="section 5.1: n = 5000, m = 10^4, h = 1 and 2", timing=(1.0, 0.1))


MODELS = {"digits": _digits, "perceptual": _perceptual, "faces": _faces}
#: The model names the results carry, by key (to read results written without their key).
NAMES = {"digits": "digits autoencoder / tv", "perceptual": "digits generator / LPIPS (sqfeat)",
         "faces": "MTCNN faces / jaccard"}


def m_grid(m_max, low=100, points=24):
    """A geometric grid of certification sizes up to ``m_max``, with ``m_max / 10`` and ``m_max`` in it."""
    grid = {int(round(v)) for v in np.geomspace(low, m_max, points)} | {m_max // 10, m_max}
    return sorted(g for g in grid if 1 <= g <= m_max)


def judge(dists, count, n, p, gamma, beta, delta, grid):
    """Both rule sets on one sample: the center check, then eps_out at every prefix size of ``grid``."""
    out = {}
    for rules in bounds.BOUNDS:
        check = bounds.center_check(count, n, delta, ALPHA, rules)
        row = {"check_passed": check.passed, "threshold": check.threshold, "reason": check.reason, "eps_out": {}}
        for m in grid:
            rank = bounds.certification_rank(m, p, ALPHA, rules).rank
            if check.passed and rank is not None:
                R = bounds.kth_smallest(dists[:m], rank)
                row["eps_out"][m] = bounds.certified_radius(R, gamma, beta)
            else:
                row["eps_out"][m] = None
        out[rules] = row
    return out


def sample(cfg, x, seed, h, eps1):
    """(count, distances, p, seconds) of one sampled certification, or None when even the exact check fails."""
    sigma = eps1 / h
    smoother = cs_fast.CenterSmoothing(cfg["model"], cfg["metric"], sigma, metric_params=cfg["params"], seed=seed,
                                       batch_size=cfg["batch_size"])
    start = time.perf_counter()
    stage = smoother.certify_center(x, eps1, n=cfg["n"], m=cfg["m"], delta=cfg["delta"])
    count = stage.fields["count"]
    if stage.certificate is not None:
        return count, None, stage.fields["p"], smoother, time.perf_counter() - start
    dists = np.asarray(smoother.certification_distances(x, stage.center_sample, cfg["m"]))
    return count, dists, stage.fields["p"], smoother, time.perf_counter() - start


def _eps_out(record, rules, m):
    """eps_out of one sampled certificate under ``rules`` at size ``m``; an abstention counts as infinite."""
    judged = record["judged"]
    v = None if judged is None else judged[rules]["eps_out"][m]
    return math.inf if v is None else v


def median_curve(records, rules, h, grid):
    """Median eps_out over every sampled certificate of one h at each m (None where over half abstain).

    An abstention counts as an infinite eps_out, the worst certificate, so that
    both rule sets' medians are taken over the same certificates.
    """
    curve = {}
    for m in grid:
        med = float(np.median([_eps_out(r, rules, m) for r in records if r["h"] == h]))
        curve[m] = med if math.isfinite(med) else None
    return curve


def median_ratio(records, h, m):
    """Median of eps_out exact / paper over the certificates both rule sets certify at ``m``."""
    ratios = [_eps_out(r, "exact", m) / _eps_out(r, "paper", m) for r in records
              if r["h"] == h and math.isfinite(_eps_out(r, "paper", m)) and _eps_out(r, "paper", m) > 0]
    return (float(np.median(ratios)), len(ratios)) if ratios else (None, 0)


def matching_m(curve, target, grid):
    """The smallest m of the grid from which the median eps_out stays at or below ``target``."""
    ok = None
    for m in reversed(grid):
        v = curve[m]
        if v is None or v > target:
            break
        ok = m
    return ok


def time_certificates(cfg, h, eps1, m_by_rules, seed):
    """End-to-end seconds of ``certify`` for each rule set at its own m (the same seed: the same center).

    One small untimed certificate first (the smallest n and m that certify), so that compiling the
    kernels and the model's first-call costs fall on neither rule set.
    """
    small_n = bounds.smallest_n(cfg["delta"], ALPHA)
    warm = cs_fast.CenterSmoothing(cfg["model"], cfg["metric"], eps1 / h, metric_params=cfg["params"], seed=seed,
                                   batch_size=cfg["batch_size"])
    warm.certify(cfg["inputs"][0], eps1, n=small_n, m=bounds.smallest_m(bounds.required_mass(cfg["delta"], h, 1.0),
                                                                        ALPHA), delta=cfg["delta"])
    out = {}
    for rules, m in m_by_rules.items():
        if m is None:
            continue
        smoother = cs_fast.CenterSmoothing(cfg["model"], cfg["metric"], eps1 / h, metric_params=cfg["params"],
                                           seed=seed, batch_size=cfg["batch_size"], bounds=rules)
        start = time.perf_counter()
        cert = smoother.certify(cfg["inputs"][0], eps1, n=cfg["n"], m=m, delta=cfg["delta"])
        out[rules] = {"m": m, "seconds": time.perf_counter() - start, "eps_out": cert.eps_out,
                      "abstained": cert.abstained, "model_calls": 2 * cfg["n"] + m}
    return out


def run_model(key, quick, seed, log):
    cfg = MODELS[key](quick)
    grid = m_grid(cfg["m"])
    gamma = cs_fast.get_metric(cfg["metric"]).gamma
    records = []
    started = time.perf_counter()
    for i, x in enumerate(cfg["inputs"]):
        ss = input_seed(seed, i)
        for h in cfg["hs"]:
            for eps1 in cfg["eps1s"]:
                count, dists, p, _, seconds = sample(cfg, x, ss, h, eps1)
                judged = None if dists is None else judge(dists, count, cfg["n"], p, gamma, 2 * gamma, cfg["delta"],
                                                          grid)
                records.append({"input": cfg["input_ids"][i], "h": h, "eps1": eps1, "p": p, "count": count,
                                "sampling_seconds": seconds, "judged": judged})
                msg = {k: records[-1][k] for k in ("input", "h", "eps1", "count")}
                if judged:
                    msg.update({r: judged[r]["eps_out"][cfg["m"]] for r in bounds.BOUNDS})
                log(f"{key}: {msg} ({seconds:.1f} s)")
    summary = []
    for h in cfg["hs"]:
        curves = {r: median_curve(records, r, h, grid) for r in bounds.BOUNDS}
        target = curves["paper"][cfg["m"]]
        need = {r: (None if target is None else matching_m(curves[r], target, grid)) for r in bounds.BOUNDS}
        here = [r for r in records if r["h"] == h]

        def abstained(rules, m):
            return sum(1 for r in here if r["judged"] is None or r["judged"][rules]["eps_out"][m] is None)

        summary.append({
            "h": h, "certificates": len(here),
            "median_eps_out": {r: {"m": curves[r][cfg["m"]], "m/10": curves[r][cfg["m"] // 10]} for r in bounds.BOUNDS},
            "abstained": {r: {"m": abstained(r, cfg["m"]), "m/10": abstained(r, cfg["m"] // 10)} for r in bounds.BOUNDS},
            "median_ratio_exact_over_paper": {"m": median_ratio(here, h, cfg["m"]),
                                               "m/10": median_ratio(here, h, cfg["m"] // 10)},
            "m_to_match_paper_at_m": need, "curves": curves})
    th, te = cfg["timing"]
    row = next(s for s in summary if s["h"] == th)
    timing = time_certificates(cfg, th, te, row["m_to_match_paper_at_m"], input_seed(seed, 0))
    return {"model": cfg["name"], "paper_settings": cfg["paper"], "n": cfg["n"], "m": cfg["m"], "delta": cfg["delta"],
            "alpha1": ALPHA, "alpha2": ALPHA, "hs": list(cfg["hs"]), "eps1s": list(cfg["eps1s"]),
            "inputs": cfg["input_ids"], "grid": grid, "records": records, "summary": summary,
            "timing": {"h": th, "eps1": te, "note": "m per rule set: the m that matches the paper rules' median "
                       "eps_out at the paper's m (first input); certify() timed end to end", **timing},
            "seconds": time.perf_counter() - started}


def fmt(v, spec="{:.4g}"):
    return "-" if v is None else spec.format(v)


def table(results):
    lines = []
    for res in results:
        lines.append(f"{res['model']}: n = {res['n']}, m = {res['m']}, delta = {res['delta']}, alpha1 = alpha2 = "
                     f"{ALPHA}; {len(res['inputs'])} input(s) x eps1 {res['eps1s']} per h ({res['paper_settings']})")
        head = (f"  {'h':>4}  {'median eps_out at m':>24}  {'at m/10':>24}  {'abstained at m | m/10':>24}  "
                f"{'m to match paper at m':>22}  {'exact/paper at m (both cert.)':>30}")
        lines.append(head)
        lines.append(f"  {'':>4}  {'exact / paper':>24}  {'exact / paper':>24}  {'exact / paper':>24}  "
                     f"{'exact / paper':>22}  {'median ratio (count)':>30}")
        for s in res["summary"]:
            me, ma = s["median_eps_out"]["exact"], s["median_eps_out"]["paper"]
            ab = s["abstained"]
            need = s["m_to_match_paper_at_m"]
            lines.append(f"  {s['h']:>4g}  {fmt(me['m']) + ' / ' + fmt(ma['m']):>24}  "
                         f"{fmt(me['m/10']) + ' / ' + fmt(ma['m/10']):>24}  "
                         f"{str(ab['exact']['m']) + ' | ' + str(ab['exact']['m/10']) + ' / ' + str(ab['paper']['m']) + ' | ' + str(ab['paper']['m/10']):>24}  "
                         f"{fmt(need['exact'], '{}') + ' / ' + fmt(need['paper'], '{}'):>22}  "
                         f"{fmt(s['median_ratio_exact_over_paper']['m'][0], '{:.3f}') + ' (' + str(s['median_ratio_exact_over_paper']['m'][1]) + ')':>30}")
        t = res["timing"]
        parts = [f"{r}: m = {t[r]['m']}, {t[r]['seconds']:.1f} s, eps_out {fmt(t[r]['eps_out'])}"
                 for r in bounds.BOUNDS if r in t]
        lines.append(f"  end to end at equal eps_out (h = {t['h']:g}, eps1 = {t['eps1']:g}, one certificate): "
                     + "; ".join(parts))
        lines.append(f"  ({res['seconds']:.0f} s for this model, load average {res['load_before'][0]:.1f} before, "
                     f"{res['load_after'][0]:.1f} after; medians over every sampled certificate, an abstention "
                     "counting as an infinite eps_out: '-' where over half abstain)")
        lines.append("")
    return "\n".join(lines)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 4), squeeze=False)
    for ax, res in zip(axes[0], results):
        for s in res["summary"]:
            color = None
            for rules, style in (("exact", ".-"), ("paper", ".--")):
                curve = s["curves"][rules]
                ms = [m for m in res["grid"] if curve[m] is not None]
                line, = ax.plot(ms, [curve[m] for m in ms], style, color=color, label=f"{rules}, h = {s['h']:g}",
                                ms=4)
                color = line.get_color()
        ax.axvline(res["m"], color="gray", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("m (certification samples)")
        ax.set_ylabel("median eps_out")
        ax.set_title(f"{res['model']}\nn = {res['n']}; dotted: the paper's m", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Same samples, two rule sets: exact binomial (solid) vs Hoeffding/DKW (dashed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["digits", "perceptual", "faces"])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not the committed figures)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--out", required=True)
    ap.add_argument("--update", action="store_true",
                    help="keep the other models' results of --out/results.json and replace these models'")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw table.txt and eps_out_vs_m.png from --out/results.json")
    args = ap.parse_args(argv)
    if args.replot:
        args.models = []
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    load_before = os.getloadavg()
    path = os.path.join(args.out, "results.json")
    results, runs = [], []
    if (args.update or args.replot) and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        runs = old.get("runs") or [{"command": old.get("command"), "models": None,
                                    "load_before": old.get("load_before")}]
        for r in old["results"]:
            r.setdefault("key", next(k for k, name in NAMES.items() if name == r["model"]))
            r.setdefault("command", old.get("command"))
            r.setdefault("load_before", old.get("load_before"))
            r.setdefault("load_after", old.get("load_after"))
            for summary in r["summary"]:  # JSON made the m keys strings
                summary["curves"] = {rules: {int(m): v for m, v in c.items()} for rules, c in summary["curves"].items()}
        results = [r for r in old["results"] if r["key"] not in args.models]
    command = "python bench/exact_bounds.py " + " ".join(argv or sys.argv[1:])
    runs = [r for r in runs if r["command"] != command]  # a rerun of the same command replaces it
    if not args.replot:
        runs.append({"command": command, "models": args.models, "load_before": list(load_before)})
    for key in args.models:
        res = run_model(key, args.quick, args.seed, lambda s: print(s, file=sys.stderr, flush=True))
        res.update(key=key, command=command, load_before=list(load_before), load_after=list(os.getloadavg()))
        results.append(res)
        results.sort(key=lambda r: list(MODELS).index(r["key"]))
        with open(path, "w") as f:
            json.dump({"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "torch_threads": torch.get_num_threads(), "runs": runs, "results": results}, f, indent=1)
    text = table(results)
    header = (f"made by: {'; '.join(r['command'] for r in runs)}\n"
              f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
              "the load average before and after each model is in results.json\n\n")
    with open(os.path.join(args.out, "table.txt"), "w") as f:
        f.write(header + text + "\n")
    plot(results, os.path.join(args.out, "eps_out_vs_m.png"))
    print(header + text)


if __name__ == "__main__":
    main()
