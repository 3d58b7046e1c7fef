"""The MTCNN boxes that tests/test_faces.py pins: ASTRONAUT_CROP_BOX and LFW50_BOXES.

    python bench/mtcnn_reference_boxes.py [--noisy 40] [--stand-in auto|yes|no]

Runs :class:`cs_fast.models.faces.TopFaceBox` (facenet-pytorch 2.6.0, default
settings: ``min_face_size=20``, most probable face) on the two inputs the test
uses, the 224 x 224 astronaut crop and the first four LFW faces upscaled to
50 x 50, and prints them as the test's Python literals. The pinned values
came from the real torchvision 0.29.1 NMS (torch 2.14.1, where torchvision
imports); ``--stand-in no`` reproduces that where torchvision is installed,
``--stand-in yes`` forces cs_fast's NMS (the CPU build of torch, where
torchvision does not import), ``auto`` takes the real one when it imports.
``--noisy K`` also compares the two NMS on K noisy copies of the astronaut
crop (sigma 0.1, seed 0) when the real torchvision is available, the check
behind the test's comment. Needs facenet-pytorch and scikit-image.
"""

import argparse
import sys

import numpy as np
import torch


def _fmt(values):
    return "[" + ", ".join(f"{float(v):.7g}" for v in values) + "]"


def boxes(stand_in):
    from cs_fast.models import faces

    detector = faces.TopFaceBox(faces.load_mtcnn(stand_in=stand_in))
    with torch.no_grad():
        astronaut = detector(faces.astronaut()[None])[0].numpy()
        lfw = detector(faces.lfw_faces(4, size=50)).numpy()
    return detector, astronaut, lfw


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stand-in", choices=["auto", "yes", "no"], default="auto")
    p.add_argument("--noisy", type=int, default=0, help="also compare both NMS on this many noisy crops")
    args = p.parse_args(argv)
    from cs_fast.models import faces
    from cs_fast.models._torchvision_compat import real_torchvision_available

    real = real_torchvision_available()
    stand_in = {"auto": "auto", "yes": True, "no": False}[args.stand_in]
    _, astronaut, lfw = boxes(stand_in)
    nms = "cs_fast stand-in" if stand_in is True or (stand_in == "auto" and not real) else "torchvision"
    print(f"# torch {torch.__version__}, NMS: {nms}")
    print(f"ASTRONAUT_CROP_BOX = {_fmt(astronaut)}")
    print("LFW50_BOXES = [" + ", ".join(_fmt(b) for b in lfw) + "]")
    if args.noisy:
        if not real:
            print("--noisy: the real torchvision does not import here; nothing to compare", file=sys.stderr)
            return 1
        gen = torch.Generator().manual_seed(0)
        x = faces.astronaut()
        batch = x[None] + 0.1 * torch.randn((args.noisy,) + tuple(x.shape), generator=gen)
        with torch.no_grad():
            a = boxes(True)[0](batch).numpy()
            b = boxes(False)[0](batch).numpy()
        same = np.array_equal(a, b)
        print(f"{args.noisy} noisy crops: stand-in and torchvision boxes {'identical' if same else 'DIFFER'} "
              f"(max difference {np.max(np.abs(a - b)):.3g} px)")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
