"""MTCNN face detection as a box model for center smoothing (paper section 5.1).

The paper certifies the Jaccard distance (1 - IoU) of the box a pre-trained
MTCNN face detector puts around a face: ``n = 5000``, ``m = 10^4``,
``eps1 = 0.1 .. 0.5`` and ``sigma = eps1 / h`` for ``h`` in {1, 2}. The
detector here is facenet-pytorch's MTCNN, whose P-, R- and O-net weights ship
inside its package (nothing is downloaded). facenet-pytorch pins old torch
and torchvision releases and needs only ``batched_nms`` of torchvision on the
detection path, so it is installed without its dependencies and, where
torchvision does not import (beside the CPU build of torch), imported against
cs_fast's stand-in (:mod:`cs_fast.models._torchvision_compat`)::

    pip install -e '.[models]'    # pillow, requests (imported by facenet_pytorch), scikit-image
    pip install --no-deps facenet-pytorch==2.6.0

Images are ``(3, H, W)`` float tensors with values in [0, 1]; the noise
``sigma`` is in those units (the authors add ``sigma * 255`` to 0..255
images, the same thing). Boxes are ``(x1, y1, x2, y2)`` in pixels; "no face"
is the empty box ``[0, 0, 0, 0]``.
"""

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._sweep import (add_seed_arguments, add_statistics_arguments, certificate_fields, refuse_uncertifiable_sweep,
                     statistics, sweep)
from ._torchvision_compat import import_module

#: The paper's settings for faces (section 5.1).
PAPER_N, PAPER_M = 5000, 10_000
PAPER_EPS1 = (0.1, 0.2, 0.3, 0.4, 0.5)
PAPER_H = (1.0, 2.0)
#: Rows and columns of the astronaut photo kept by :func:`astronaut`: a 224 x 224
#: crop with the face (about 90 x 110 pixels) at its native resolution, as in
#: CelebA's 178 x 218 photos, at a fifth of the full photo's detection cost.
ASTRONAUT_CROP = (slice(0, 224), slice(112, 336))


def load_mtcnn(device="cpu", stand_in="auto", **kwargs):
    """facenet-pytorch's pre-trained MTCNN, set to keep every face.

    Parameters
    ----------
    device : str or torch.device
    stand_in : {'auto', True, False}
        See :func:`cs_fast.models._torchvision_compat.import_module`.
    **kwargs
        Passed to ``facenet_pytorch.MTCNN`` (``min_face_size=20``,
        ``thresholds=[0.6, 0.7, 0.7]``, ``factor=0.709`` by default).

    Returns
    -------
    facenet_pytorch.MTCNN

    Raises
    ------
    ImportError
        If facenet-pytorch is not installed.
    """
    try:
        facenet = import_module("facenet_pytorch", stand_in=stand_in)
    except ImportError as err:
        raise ImportError("MTCNN needs facenet-pytorch: pip install --no-deps facenet-pytorch==2.6.0 "
                          "(and pillow, requests: pip install -e '.[models]' in the cs_fast clone)") from err
    kwargs = {"keep_all": True, "select_largest": False, **kwargs}
    return facenet.MTCNN(device=device, **kwargs)


class TopFaceBox(nn.Module):
    """Images ``(b, 3, H, W)`` in [0, 1] -> the top face box of each, ``(b, 4)`` float32.

    Parameters
    ----------
    mtcnn : facenet_pytorch.MTCNN, optional
        Defaults to :func:`load_mtcnn`.
    select : {'probability', 'largest'}
        Which face when MTCNN finds several: the most probable one, or the
        largest (the authors' code used MTCNN's default, the largest).
    clamp : bool
        Clip the (noisy) images to [0, 1] before detection. Off by default,
        as in the authors' experiment; either way the smoothed model is
        certified, as the clipping is part of the base model.
    """

    def __init__(self, mtcnn=None, select="probability", clamp=False):
        super().__init__()
        if select not in ("probability", "largest"):
            raise ValueError(f"select: received {select!r}; expected 'probability' or 'largest'")
        self.mtcnn = load_mtcnn() if mtcnn is None else mtcnn
        self.select = select
        self.clamp = bool(clamp)

    def forward(self, x):
        """Top box per image; ``[0, 0, 0, 0]`` where no face is found."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x: received shape {tuple(x.shape)}; expected (b, 3, H, W)")
        if self.clamp:
            x = x.clamp(0.0, 1.0)
        # MTCNN takes channels-last images in 0..255.
        boxes, probs = self.mtcnn.detect((x.float() * 255.0).permute(0, 2, 3, 1))
        out = np.zeros((x.shape[0], 4), dtype=np.float32)
        for i, (b, p) in enumerate(zip(boxes, probs)):
            if b is None:
                continue
            b = np.asarray(b, dtype=np.float32)
            if self.select == "probability":
                j = int(np.argmax(np.asarray(p, dtype=np.float64)))
            else:
                j = int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
            out[i] = b[j]
        return torch.from_numpy(out).to(x.device)


class ReplayDetector:
    """Record a detector's outputs, then replay them for inputs that match the recorded ones.

    ``cs-fast faces --authors-units`` certifies every setting twice with the
    same seed: cs_fast's way, on [0, 1] images, and the authors' way, on
    0..255 images with the noise scaled by 255. The model then sees the same
    noisy images (the authors' divided back by 255) up to float rounding, in
    the same batches, so the second run replays the first one's boxes. Each
    replayed batch is checked against a fingerprint of the recorded one (a
    strided subsample of its pixels, to 1e-4); a batch that does not match is
    detected afresh (counted in ``misses``).
    """

    def __init__(self, detector, stride=997):
        self.detector = detector
        self.stride = stride
        self.tape, self.position, self.replaying, self.misses = [], 0, False, 0

    def record(self):
        self.tape, self.replaying = [], False

    def replay(self):
        self.position, self.replaying = 0, True

    def _fingerprint(self, images):
        return images.reshape(images.shape[0], -1)[:, ::self.stride].double().clone()

    def __call__(self, images):
        key = self._fingerprint(images)
        if not self.replaying:
            out = self.detector(images)
            self.tape.append((key, out.clone()))
            return out
        if self.position < len(self.tape):
            seen, out = self.tape[self.position]
            self.position += 1
            if seen.shape == key.shape and torch.allclose(seen, key, rtol=0.0, atol=1e-4):
                return out.clone()
        self.misses += 1
        return self.detector(images)


_DEFAULT_DETECTOR = []


def top_face_boxes(images):
    """``cs-fast certify --model mtcnn``: :class:`TopFaceBox` with defaults, built on first use.

    Parameters
    ----------
    images : torch.Tensor
        ``(b, 3, H, W)`` in [0, 1].

    Returns
    -------
    torch.Tensor
        ``(b, 4)`` float32 boxes, ``[0, 0, 0, 0]`` where no face is found.
    """
    if not _DEFAULT_DETECTOR:
        _DEFAULT_DETECTOR.append(TopFaceBox())
    with torch.no_grad():
        return _DEFAULT_DETECTOR[0](images)


def astronaut_batch():
    """The default inputs of ``cs-fast certify --model mtcnn``: the astronaut face crop, ``(1, 3, 224, 224)``."""
    return astronaut()[None]


def astronaut(crop=True):
    """scikit-image's astronaut photo (Eileen Collins) as a ``(3, H, W)`` float32 tensor in [0, 1].

    Parameters
    ----------
    crop : bool
        Keep the 224 x 224 crop :data:`ASTRONAUT_CROP` around the face;
        otherwise the full 512 x 512 photo.
    """
    from skimage import data

    img = data.astronaut()
    if crop:
        img = img[ASTRONAUT_CROP]
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float() / 255.0


def lfw_faces(count=100, size=64):
    """Faces of scikit-image's LFW subset, upscaled to RGB ``(count, 3, size, size)`` in [0, 1].

    The subset holds 100 grey 25 x 25 face crops (then 100 non-faces); MTCNN
    finds every face from ``size=50`` up (bicubic upscaling) and no face in
    the non-faces.

    Parameters
    ----------
    count : int
        How many of the 100 faces, from the first.
    size : int
        Output height and width in pixels.
    """
    from skimage import data

    faces = torch.from_numpy(data.lfw_subset()[:count]).float()[:, None]
    up = nn.functional.interpolate(faces, size=(size, size), mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0).repeat(1, 3, 1, 1).contiguous()


@dataclass(frozen=True)
class FaceCertificate:
    """One face certificate: the settings, the base model's box and the :class:`cs_fast.Certificate`.

    ``certificate.center`` is the smoothed box, ``certificate.eps_out`` the
    certified bound on the Jaccard distance (1 - IoU) between it and the
    smoothed box of any input within ``eps1`` in l2, and
    ``certificate.smoothing_error`` its Jaccard distance to ``base_box``.
    """

    eps1: float
    h: float
    sigma: float
    n: int
    m: int
    base_box: Any
    certificate: Any
    seconds: float
    authors_units: bool = False


def certify_face(image, eps1, h=2.0, n=PAPER_N, m=PAPER_M, *, detector=None, seed=None, batch_size=100,
                 progress=False, authors_units=False, bounds="exact", **kwargs):
    """Certify the Jaccard distance of the top face box of ``image`` (paper section 5.1).

    With probability at least ``1 - alpha1 - alpha2``, for every image within
    l2 distance ``eps1`` of ``image``, the smoothed detector's box has IoU at
    least ``1 - eps_out`` with the returned smoothed box.

    Parameters
    ----------
    image : torch.Tensor
        ``(3, H, W)`` in [0, 1].
    eps1 : float
        Input l2 radius, in [0, 1] pixel units.
    h : float
        ``eps1 / sigma``: the noise is ``sigma = eps1 / h``.
    n, m : int
        Samples to pick and check the center (each), and to certify it.
        The paper's 5000 and 10^4 mean 2 n + m = 20,000 MTCNN runs.
    detector : TopFaceBox, optional
    seed : int or numpy.random.SeedSequence, optional
        Seed of the noise: the same seed gives the same certificate. None
        (the default) draws fresh entropy, recorded in the certificate.
    batch_size : int
        Images per MTCNN call.
    progress : bool
        tqdm progress bars.
    authors_units : bool
        Reproduce the authors' face script instead: the image in 0..255, the
        smoother built with ``sigma * 255``, but ``eps1`` passed unscaled, so
        the certificate (which records ``sigma * 255`` and ``eps1``) holds for
        perturbations of l2 norm ``eps1 / 255`` in [0, 1] units, not ``eps1``:
        its ``p`` uses ``eps1 / (255 sigma)`` in place of ``eps1 / sigma``.
        The noisy images are the same as without it (same seed). For
        comparison only; such a certificate does not cover ``eps1``.
    bounds : {'exact', 'paper'}
        The statistics (:class:`cs_fast.CenterSmoothing`).
    **kwargs
        ``alpha1``, ``alpha2``, ``delta`` of :meth:`cs_fast.CenterSmoothing.certify`.

    Returns
    -------
    FaceCertificate
    """
    from ..smoothing import CenterSmoothing

    detector = TopFaceBox() if detector is None else detector
    eps1, h = float(eps1), float(h)
    if not h > 0:
        raise ValueError(f"h: received {h}; expected h > 0")
    sigma = eps1 / h
    with torch.no_grad():
        base_box = detector(image[None])[0].numpy()
    if authors_units:
        def model(images255):
            return detector(images255 / 255.0)

        smoother = CenterSmoothing(model, "jaccard", sigma * 255.0, batch_size=batch_size, seed=seed,
                                   progress=progress, bounds=bounds)
        x = image * 255.0
    else:
        smoother = CenterSmoothing(detector, "jaccard", sigma, batch_size=batch_size, seed=seed, progress=progress,
                                   bounds=bounds)
        x = image
    start = time.perf_counter()
    cert = smoother.certify(x, eps1, n=n, m=m, **kwargs)
    seconds = time.perf_counter() - start
    return FaceCertificate(eps1, h, sigma, n, m, base_box, cert, seconds, bool(authors_units))


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
    """Base box (green) and smoothed box (blue) of a :class:`FaceCertificate`, as the paper's Fig. 3b."""
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
    """A JSON-ready dict of a :class:`FaceCertificate`."""
    c = result.certificate
    out = {k: getattr(result, k) for k in ("eps1", "h", "sigma", "n", "m", "seconds", "authors_units")}
    out["base_box"] = [float(v) for v in np.asarray(result.base_box)]
    out["smoothed_box"] = None if c.center is None else [float(v) for v in np.asarray(c.center)]
    return {**out, **certificate_fields(c)}


def add_faces_arguments(parser):
    """The options of ``cs-fast faces`` (and ``python -m cs_fast.models.faces``)."""
    from cs_fast.output_dir import fresh_output_dir  # a new folder per run: results never overwritten

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
    """``python -m cs_fast.models.faces``: the paper's sweep on the astronaut photo, as JSON and PNGs."""
    parser = argparse.ArgumentParser(description=main_faces.__doc__)
    add_faces_arguments(parser)
    return main_faces(parser.parse_args(argv))


if __name__ == "__main__":
    main()
