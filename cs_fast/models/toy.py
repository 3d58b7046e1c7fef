"""A built-in toy detector: the bounding box of the bright blob in a small grayscale image.

It needs no weights and runs in microseconds, so `cs-fast certify` has a
default model that works offline: a 3x3 box blur (which shrinks pixel noise
by 3x), a threshold at 0.5, and the box ``[x1, y1, x2, y2]`` (pixel edges) of
the pixels above it. No pixel above the threshold gives the empty box
``[0, 0, 0, 0]`` (Jaccard distance 1 to any face, 0 to another empty box).
"""

import torch
import torch.nn.functional as F


def blob_detector(images):
    """Boxes of the blobs in a batch of (b, H, W) images, shape (b, 4), float32."""
    if images.ndim != 3:
        raise ValueError(f"images: received shape {tuple(images.shape)}; expected (batch, H, W)")
    blurred = F.avg_pool2d(images[:, None], 3, stride=1, padding=1, count_include_pad=False)[:, 0]
    on = blurred > 0.5
    rows = on.any(dim=2)
    cols = on.any(dim=1)
    h, w = images.shape[1:]
    iy = torch.arange(h, device=images.device)
    ix = torch.arange(w, device=images.device)
    big = torch.tensor(10**6, device=images.device)
    y1 = torch.where(rows, iy, big).min(dim=1).values
    y2 = torch.where(rows, iy, -1).max(dim=1).values + 1
    x1 = torch.where(cols, ix, big).min(dim=1).values
    x2 = torch.where(cols, ix, -1).max(dim=1).values + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=1).to(torch.float32)
    return torch.where(rows.any(dim=1, keepdim=True), boxes, torch.zeros_like(boxes))


def blob_image(size=16, top=4, left=5, height=6, width=7):
    """A (size, size) float32 image with a bright rectangle on a dark background."""
    img = torch.zeros(size, size)
    img[top:top + height, left:left + width] = 1.0
    return img


def blob_images():
    """The default inputs of ``cs-fast certify --model toy-blob``: one :func:`blob_image`, shape (1, 16, 16)."""
    return blob_image()[None]
