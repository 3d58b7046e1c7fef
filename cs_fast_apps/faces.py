"""``cs-fast faces``: the paper's face sweep (section 5.1) over (h, eps1), its pictures and its report.

The base model, its inputs and one certificate are the library's
(:mod:`cs_fast.models.faces`: :class:`~cs_fast.models.faces.TopFaceBox`,
:func:`~cs_fast.models.faces.certify_face`, ...); this module runs them over a
sweep, draws the boxes and writes ``certificates.json``. ``python -m
cs_fast_apps.faces`` runs it without the ``cs-fast`` command.
"""

import argparse
import os

import numpy as np
import torch

from cs_fast.models.faces import (PAPER_EPS1, PAPER_H, PAPER_M, PAPER_N, ReplayDetector, TopFaceBox, astronaut,
                                  certify_face, lfw_faces, load_mtcnn)

from .sweep import (add_seed_arguments, add_statistics_arguments, certificate_fields, refuse_uncertifiable_sweep,
                    statistics, sweep)


def draw_boxes(image, boxes, path, title=None):
    """Save ``image`` with boxes drawn on it as a PNG.

    Parameters
    ----------
    image : torch.Tensor
        ``(3, H, W)`` in [0, 1].
    boxes : dict
        Label -> ``(box, colour)``; empty boxes are listed in the legend only.
    path : str or path-like
    title : str, optional
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(4, 4 * image.shape[1] / image.shape[2]), dpi=120)
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
    for label, (box, colour) in boxes.items():
        x1, y1, x2, y2 = (float(v) for v in np.asarray(box).reshape(4))
        empty = x2 <= x1 or y2 <= y1
        ax.add_patch(Rectangle((x1, y1), max(x2 - x1, 0), max(y2 - y1, 0), fill=False, edgecolor=colour,
                               linewidth=2, label=label + (" (no face)" if empty else "")))
    ax.legend(loc="lower right", fontsize=7)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_certificate(image, result, path):
    """Base box (green) and smoothed box (blue) of a :class:`~cs_fast.models.faces.FaceCertificate` (paper Fig. 3b)."""
    c = result.certificate
    boxes = {"base model": (result.base_box, "limegreen")}
    if c.center is not None:
        boxes["smoothed"] = (np.asarray(c.center), "royalblue")
    if c.abstained:
        title = f"eps1={result.eps1:g}, h={result.h:g}: abstained"
    else:
        title = (f"eps1={result.eps1:g}, h={result.h:g}: eps_out={c.eps_out:.3f}, "
                 f"smoothing error={c.smoothing_error:.3f}")
    draw_boxes(image, boxes, path, title)


def summary(result):
    """A JSON-ready dict of a :class:`~cs_fast.models.faces.FaceCertificate`."""
    c = result.certificate
    out = {k: getattr(result, k) for k in ("eps1", "h", "sigma", "n", "m", "seconds", "authors_units")}
    out["base_box"] = [float(v) for v in np.asarray(result.base_box)]
    out["smoothed_box"] = None if c.center is None else [float(v) for v in np.asarray(c.center)]
    return {**out, **certificate_fields(c)}


def add_faces_arguments(parser):
    """The options of ``cs-fast faces`` (and ``python -m cs_fast_apps.faces``)."""
    from .output_dir import fresh_output_dir  # a new folder per run: results never overwritten

    parser.add_argument("--out", default=fresh_output_dir("faces"),
                        help="folder for certificates.json and the PNGs (default: a fresh ./cs_fast_faces_YYYYmmdd-HHMMSS/)")
    parser.add_argument("--n", type=int, default=PAPER_N, help="samples to pick and to check the center")
    parser.add_argument("--m", type=int, default=PAPER_M, help="samples to certify the center")
    parser.add_argument("--eps1", type=float, nargs="+", default=list(PAPER_EPS1))
    parser.add_argument("--h", type=float, nargs="+", default=list(PAPER_H), help="sigma = eps1 / h")
    add_seed_arguments(parser)
    add_statistics_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=100, help="images per MTCNN call")
    parser.add_argument("--min-face-size", type=int, default=20,
                        help="MTCNN's smallest face in pixels (facenet-pytorch's default 20; larger is faster)")
    parser.add_argument("--photo", choices=("astronaut", "lfw"), default="astronaut",
                        help="scikit-image's astronaut (224 x 224 face crop) or a face of its LFW subset")
    parser.add_argument("--full-photo", action="store_true", help="astronaut: the 512 x 512 photo, not the face crop")
    parser.add_argument("--lfw-index", type=int, default=0, help="lfw: which of the 100 faces (0-99)")
    parser.add_argument("--lfw-size", type=int, default=64, help="lfw: upscaled side in pixels (MTCNN needs >= 50)")
    parser.add_argument("--progress", action="store_true", help="tqdm progress bars")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default torch's; 1 is much faster on a loaded machine)")
    parser.add_argument("--authors-units", action="store_true",
                        help="also certify every setting as the authors' face script does (sigma * 255 on 0..255 "
                             "images, eps1 unscaled: certificates for eps1 / 255), with the same seed; plots both "
                             "curves in authors_units.png")


def main_faces(args):
    """Certify the top face box of a sample photo for every (h, eps1); JSON lines and PNGs."""
    if args.n < 1 or args.m < 1:
        raise ValueError(f"--n, --m: received {args.n}, {args.m}; expected positive sample counts")
    if args.min_face_size < 12:
        raise ValueError(f"--min-face-size: received {args.min_face_size}; expected at least 12 (P-net's window)")
    refuse_uncertifiable_sweep(args)
    if args.photo == "lfw":
        if not 0 <= args.lfw_index < 100:
            raise ValueError(f"--lfw-index: received {args.lfw_index}; expected 0 <= index < 100")
        if args.lfw_size < 12:
            raise ValueError(f"--lfw-size: received {args.lfw_size}; expected at least 12 pixels")
        image = lfw_faces(args.lfw_index + 1, size=args.lfw_size)[args.lfw_index]
        name = f"lfw{args.lfw_index}"
    else:
        image = astronaut(crop=not args.full_photo)
        name = "astronaut"
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: received {args.threads}; expected a positive thread count")
        torch.set_num_threads(args.threads)
    detector = TopFaceBox(load_mtcnn(min_face_size=args.min_face_size))
    replay = ReplayDetector(detector)

    def certify_one(h, eps1, seed):
        replay.record()
        res = certify_face(image, eps1, h, args.n, args.m, detector=replay if args.authors_units else detector,
                           seed=seed, batch_size=args.batch_size, progress=args.progress, **statistics(args))
        draw_certificate(image, res, os.path.join(args.out, f"{name}_h{h:g}_eps{eps1:g}.png"))
        row = {**summary(res), "photo": name, "min_face_size": args.min_face_size,
               "full_photo": bool(args.full_photo) and name == "astronaut"}
        if args.authors_units:
            replay.replay()
            misses = replay.misses
            theirs = certify_face(image, eps1, h, args.n, args.m, detector=replay, seed=seed,
                                  batch_size=args.batch_size, progress=args.progress, authors_units=True,
                                  **statistics(args))
            row["authors"] = {**summary(theirs), "batches_detected_afresh": replay.misses - misses}
        return row

    rows = sweep(args.out, args.h, args.eps1, certify_one, seed=args.seed, same_seed=args.same_seed,
                 input_index=args.lfw_index if args.photo == "lfw" else 0)
    if args.authors_units:
        plot_authors_units(rows, os.path.join(args.out, "authors_units.png"),
                           f"{name}, n={args.n}, m={args.m}")
    return rows


def plot_authors_units(rows, path, title=""):
    """eps_out against eps1 per h: cs_fast's certificates (solid) and the authors' units (dashed).

    Parameters
    ----------
    rows : list of dict
        Rows of ``cs-fast faces --authors-units`` (each with an ``"authors"`` row).
    path : str or path-like
        The PNG to write.
    title : str
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=120)
    nan = float("nan")
    for h in sorted({r["h"] for r in rows}):
        rs = sorted((r for r in rows if r["h"] == h), key=lambda r: r["eps1"])
        x = [r["eps1"] for r in rs]
        line, = ax.plot(x, [nan if r["eps_out"] is None else r["eps_out"] for r in rs], "o-",
                        label=f"cs_fast, h={h:g} (eps1/sigma = {h:g})")
        ax.plot(x, [nan if r["authors"]["eps_out"] is None else r["authors"]["eps_out"] for r in rs], "s--",
                color=line.get_color(), label=f"authors' units, h={h:g} (eps1/sigma = {h:g}/255)")
    ax.set_xlabel("eps1 (l2 input radius, pixels in [0, 1])")
    ax.set_ylabel("certified eps_out (Jaccard distance)")
    ax.set_title(f"Face box certificates: correct vs authors' units\n{title}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    """``python -m cs_fast_apps.faces``: the paper's sweep on the astronaut photo, as JSON and PNGs."""
    parser = argparse.ArgumentParser(description=main_faces.__doc__)
    add_faces_arguments(parser)
    return main_faces(parser.parse_args(argv))


if __name__ == "__main__":
    main()
