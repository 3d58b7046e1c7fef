"""``cs-fast perceptual``: center timings and the LPIPS sweep of the digits generator (paper section 5.2).

The generator, its LPIPS output and one certificate are the library's
(:mod:`cs_fast.models.perceptual`: :func:`~cs_fast.models.perceptual.build`,
:func:`~cs_fast.models.perceptual.certify_generator`, ...); this module times
the centers, runs the sweep, draws the images and writes
``certificates.json``. ``python -m cs_fast_apps.perceptual`` runs it without
the ``cs-fast`` command.
"""

import argparse
import json
import os

import torch

from cs_fast.models.perceptual import (PAPER_CANDIDATES, PAPER_DELTA, PAPER_EPS1, PAPER_H, PAPER_M, PAPER_N, build,
                                       certify_generator, test_latents, time_centers)

from .sweep import (add_seed_arguments, add_statistics_arguments, certificate_fields, refuse_uncertifiable_sweep,
                    statistics, sweep)


def draw_center(model, z, result, path):
    """Base image and smoothed image (the center's) side by side, as the paper's Fig. 4b (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.no_grad():
        base = model.generator(z[None])[0, 0]
    c = result.certificate
    fig, axes = plt.subplots(1, 2, figsize=(4, 2.3), dpi=120)
    axes[0].imshow(base.numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("base model", fontsize=8)
    if c.center is not None:
        small = model.split(c.center)[1]
        axes[1].imshow(model.generator.to_rgb(small)[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1].set_title(f"smoothed: eps_out={c.eps_out:.3g}" if c.eps_out is not None else "smoothed", fontsize=8)
    else:
        axes[1].set_title("abstained", fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    error = "-" if c.smoothing_error is None else f"{c.smoothing_error:.3g}"
    fig.suptitle(f"eps1={result.eps1:g}, h={result.h:g}, smoothing error={error}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def add_perceptual_arguments(parser):
    """The options of ``cs-fast perceptual`` (and ``python -m cs_fast_apps.perceptual``)."""
    from .output_dir import fresh_output_dir  # a new folder per run: results never overwritten

    parser.add_argument("--out", default=fresh_output_dir("perceptual"),
                        help="folder for certificates.json and the PNGs (default: a fresh ./cs_fast_perceptual_YYYYmmdd-HHMMSS/)")
    parser.add_argument("--n", type=int, default=PAPER_N, help="samples to pick and to check the center")
    parser.add_argument("--m", type=int, default=PAPER_M, help="samples to certify the center")
    parser.add_argument("--eps1", type=float, nargs="+", default=list(PAPER_EPS1))
    parser.add_argument("--h", type=float, nargs="+", default=list(PAPER_H), help="sigma = eps1 / h")
    parser.add_argument("--size", type=int, default=32, help="generated image side (at least 32)")
    parser.add_argument("--latent", type=int, default=0, help="index of the held-out digit")
    parser.add_argument("--candidates", type=int, default=None,
                        help=f"Smooth-HD candidate centers (the paper's {PAPER_CANDIDATES}); default: exact center")
    add_seed_arguments(parser)
    add_statistics_arguments(parser, delta=PAPER_DELTA)


def main_perceptual(args):
    """Time the exact vs 30-candidate center, then certify the LPIPS of the digits generator."""
    if args.n < 1 or args.m < 1:
        raise ValueError(f"--n, --m: received {args.n}, {args.m}; expected positive sample counts")
    if args.size < 32:
        raise ValueError(f"--size: received {args.size}; expected at least 32 (AlexNet's trunk needs it)")
    if args.latent < 0:
        raise ValueError(f"--latent: received {args.latent}; expected a held-out digit index >= 0")
    refuse_uncertifiable_sweep(args)
    model = build(size=args.size)
    z = test_latents(args.latent + 1)[args.latent]
    timing = time_centers(model, z, args.eps1[0] / args.h[0], n=args.n, seed=0 if args.seed is None else args.seed)
    print(json.dumps(timing), flush=True)

    def certify_one(h, eps1, seed):
        res = certify_generator(model, z, eps1, h, args.n, args.m, seed=seed, candidates=args.candidates,
                                **statistics(args))
        draw_center(model, z, res, os.path.join(args.out, f"digit{args.latent}_h{h:g}_eps{eps1:g}.png"))
        return {"eps1": eps1, "h": h, "sigma": res.sigma, "candidates": res.candidates, "seconds": res.seconds,
                **certificate_fields(res.certificate, ("eps_out", "R", "smoothing_error", "radius", "abstained",
                                                       "reason", "bounds", "rank", "level", "count", "threshold",
                                                       "vacuous", "failure_probability", "seed", "spawn_key"))}

    return sweep(args.out, args.h, args.eps1, certify_one, report={"timing": timing, "rows": []}, seed=args.seed,
                 same_seed=args.same_seed, input_index=args.latent)


def main(argv=None):
    """``python -m cs_fast_apps.perceptual``: center timings and the paper's sweep, as JSON and PNGs."""
    parser = argparse.ArgumentParser(description=main_perceptual.__doc__)
    add_perceptual_arguments(parser)
    return main_perceptual(parser.parse_args(argv))


if __name__ == "__main__":
    main()
