"""Import facenet-pytorch or lpips where torchvision cannot be imported.

Both packages import torchvision at module level but use only a sliver of it:

- facenet-pytorch (MTCNN detection): ``torchvision.ops.boxes.batched_nms``;
  ``torchvision.transforms.functional.to_tensor`` is imported too, and used
  only by ``extract_face`` (cropping, which cs_fast does not use).
- lpips: ``torchvision.models.alexnet(pretrained=...).features`` (and vgg16 /
  squeezenet1_1 for the other trunks).

PyPI's torchvision wheels need a CUDA build of torch (``libc10_cuda.so``), so
beside the CPU build of torch (``torch==2.13.0+cpu``) ``import torchvision``
fails. :func:`import_module` then imports the package against a stand-in
torchvision made of :func:`cs_fast.models._nms.batched_nms`, a minimal
``to_tensor`` and a randomly initialized AlexNet trunk. The stand-in lives in
``sys.modules`` only while that one import runs; afterwards ``torchvision``
is whatever it was before (absent, or the real package). Where the real
torchvision imports, it is used and nothing is stood in.
"""

import contextlib
import importlib
import sys
import types

import numpy as np
import torch
from torch import nn

from ._nms import batched_nms

_NAMES = ("torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
          "torchvision.transforms.functional", "torchvision.models")


def real_torchvision_available():
    """Whether the real torchvision imports here (cleaning up after a failed import)."""
    if "torchvision" in sys.modules and not getattr(sys.modules["torchvision"], "_cs_fast_stand_in", False):
        return True
    before = set(sys.modules)
    try:
        importlib.import_module("torchvision.ops")
        return True
    except (ImportError, OSError, RuntimeError):  # absent, or a wheel built for another torch
        for name in set(sys.modules) - before:
            if name == "torchvision" or name.startswith("torchvision."):
                del sys.modules[name]
        return False


def to_tensor(pic):
    """``torchvision.transforms.functional.to_tensor`` for numpy ``(H, W, C)`` images.

    uint8 is scaled to [0, 1], other dtypes are kept; PIL images go through numpy.
    """
    arr = np.asarray(pic)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    out = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return out.float().div(255) if arr.dtype == np.uint8 else out


class _AlexNetTrunk(nn.Module):
    """The convolutional part (``features``) of torchvision's AlexNet.

    Same layers in the same order with torch's default initialization, so for
    one torch seed its weights equal those of ``torchvision.models.alexnet()``
    (whose ``features`` are built first). No classifier: lpips uses only
    ``features``.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )


def _no_download(name):
    def build(pretrained=False, weights=None, **kwargs):
        raise RuntimeError(
            f"torchvision.models.{name}: not available without torchvision (cs_fast's stand-in "
            "has only a randomly initialized alexnet); install torch==2.14.1 torchvision==0.29.1")
    return build


def alexnet(pretrained=False, weights=None, progress=True, **kwargs):
    """Randomly initialized AlexNet trunk; pretrained weights would need a download."""
    if pretrained or weights is not None:
        raise RuntimeError("alexnet: pretrained ImageNet weights need a download and torchvision; "
                           "cs_fast's stand-in builds only a randomly initialized trunk (pnet_rand=True)")
    return _AlexNetTrunk()


def _stand_in_modules():
    mods = {name: types.ModuleType(name) for name in _NAMES}
    for mod in mods.values():
        mod._cs_fast_stand_in = True
    mods["torchvision"].__path__ = []  # a package, so submodule imports resolve to the entries below
    mods["torchvision.ops"].__path__ = []
    mods["torchvision.transforms"].__path__ = []
    mods["torchvision.ops.boxes"].batched_nms = batched_nms
    mods["torchvision.ops"].batched_nms = batched_nms
    mods["torchvision.ops"].boxes = mods["torchvision.ops.boxes"]
    mods["torchvision.transforms.functional"].to_tensor = to_tensor
    mods["torchvision.transforms"].functional = mods["torchvision.transforms.functional"]
    models = mods["torchvision.models"]
    models.alexnet = alexnet
    models.vgg16 = _no_download("vgg16")
    models.squeezenet1_1 = _no_download("squeezenet1_1")
    top = mods["torchvision"]
    top.ops, top.transforms, top.models = mods["torchvision.ops"], mods["torchvision.transforms"], models
    top.__version__ = "cs_fast-stand-in"
    return mods


@contextlib.contextmanager
def _stand_in():
    saved = {name: sys.modules[name] for name in list(sys.modules)
             if name == "torchvision" or name.startswith("torchvision.")}
    for name in saved:
        del sys.modules[name]
    sys.modules.update(_stand_in_modules())
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def import_module(name, stand_in="auto"):
    """Import ``name`` (``'facenet_pytorch'`` or ``'lpips'``), standing in for torchvision if needed.

    Parameters
    ----------
    name : str
        The module to import.
    stand_in : {'auto', True, False}
        ``'auto'``: the stand-in only where the real torchvision does not
        import. True: always (if ``name`` is not imported yet). False: never.

    Returns
    -------
    module

    Raises
    ------
    ImportError
        If the package itself is not installed (e.g. ``pip install --no-deps
        facenet-pytorch==2.6.0 lpips==0.1.4``).
    """
    if name in sys.modules:
        return sys.modules[name]
    if stand_in == "auto":
        stand_in = not real_torchvision_available()
    if not stand_in:
        return importlib.import_module(name)
    with _stand_in():
        return importlib.import_module(name)
