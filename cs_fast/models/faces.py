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

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

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


@functools.lru_cache(maxsize=1)
def default_detector():
    """The :class:`TopFaceBox` with defaults behind :func:`top_face_boxes`, built on first use and kept.

    ``default_detector.cache_clear()`` drops it: the next call builds it afresh.
    """
    return TopFaceBox()


def top_face_boxes(images):
    """``cs-fast certify --model mtcnn``: :func:`default_detector`, a :class:`TopFaceBox` with defaults.

    Parameters
    ----------
    images : torch.Tensor
        ``(b, 3, H, W)`` in [0, 1].

    Returns
    -------
    torch.Tensor
        ``(b, 4)`` float32 boxes, ``[0, 0, 0, 0]`` where no face is found.
    """
    with torch.no_grad():
        return default_detector()(images)


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
