"""Greedy non-maximum suppression, per group, in numba (no torchvision needed).

Semantics of ``torchvision.ops.batched_nms``: boxes are ``(x1, y1, x2, y2)``
with area ``(x2 - x1) * (y2 - y1)`` (no ``+ 1``), boxes of different groups
never suppress each other, and within a group the highest-scoring box that is
left is kept and removes every box of IoU strictly greater than the
threshold with it. Scores are visited in decreasing order, ties in index
order (a stable sort, as torchvision's CPU kernel does). The IoU is computed
in the boxes' own dtype and compared with the threshold in float64, as
torchvision's kernel does (with integer boxes, IoUs of exactly 0.5 or 0.7
occur, and ``float32(0.7) < 0.7``).

torchvision 0.29 takes one of two routes, and the route shows in the result:
up to :data:`SMALL` box coordinates it runs one NMS over boxes shifted apart by
``group * (max coordinate + 1)`` (in float32 that shift rounds the coordinates,
so borderline IoUs can fall either way), above that one NMS per group and a
final (unstable) sort of the kept indices by score. Both routes are mirrored
here, so that MTCNN run on this stand-in gives the boxes it gives on
torchvision.
"""

import numpy as np
import torch

from ..kernels.cpu.runtime import kernel

#: Up to this many box coordinates (boxes.numel()), torchvision's CPU route shifts groups apart.
SMALL = 4000


@kernel(nogil=True)  # served by numba's on-disk cache after the first run
def _greedy(boxes, order, groups, threshold):
    """Indices kept by greedy NMS, visiting ``order`` (sorted by decreasing score)."""
    n = order.shape[0]
    suppressed = np.zeros(n, dtype=np.bool_)
    keep = np.empty(n, dtype=np.int64)
    kept = 0
    for a in range(n):
        i = order[a]
        if suppressed[i]:
            continue
        keep[kept] = i
        kept += 1
        x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        area_i = (x2 - x1) * (y2 - y1)
        for b in range(a + 1, n):
            j = order[b]
            if suppressed[j] or groups[j] != groups[i]:
                continue
            w = min(x2, boxes[j, 2]) - max(x1, boxes[j, 0])
            h = min(y2, boxes[j, 3]) - max(y1, boxes[j, 1])
            if w <= 0 or h <= 0:
                continue
            inter = w * h
            area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
            if inter / (area_i + area_j - inter) > threshold:
                suppressed[j] = True
    return keep[:kept]


def batched_nms(boxes, scores, idxs, iou_threshold):
    """Greedy non-maximum suppression within each group of boxes.

    A stand-in for ``torchvision.ops.batched_nms`` with the same arguments,
    result and semantics (see the module docstring).

    Parameters
    ----------
    boxes : torch.Tensor
        ``(N, 4)`` boxes ``(x1, y1, x2, y2)``, float32 or float64.
    scores : torch.Tensor
        ``(N,)`` scores.
    idxs : torch.Tensor
        ``(N,)`` integer group of each box (e.g. the image it belongs to).
    iou_threshold : float
        Boxes with IoU strictly above this are suppressed.

    Returns
    -------
    torch.Tensor
        int64 indices of the kept boxes, by decreasing score, on ``boxes``'
        device.
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes: received shape {tuple(boxes.shape)}; expected (N, 4)")
    n = boxes.shape[0]
    device = boxes.device
    if scores.shape != (n,) or idxs.shape != (n,):
        raise ValueError(f"scores, idxs: received shapes {tuple(scores.shape)}, {tuple(idxs.shape)}; "
                         f"expected ({n},) each")
    if n == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes, scores, idxs = boxes.detach().cpu(), scores.detach().cpu(), idxs.detach().cpu()
    order = torch.sort(scores, descending=True, stable=True)[1].numpy()
    if boxes.numel() <= SMALL:
        shifted = boxes + (idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes)))[:, None]
        single = np.zeros(n, dtype=np.int64)
        keep = _greedy(shifted.contiguous().numpy(), order, single, float(iou_threshold))
        return torch.from_numpy(keep).to(device)
    groups = idxs.to(torch.int64).numpy()
    keep = np.sort(_greedy(boxes.contiguous().numpy(), order, groups, float(iou_threshold)))
    keep = torch.from_numpy(keep)
    return keep[torch.sort(scores[keep], descending=True)[1]].to(device)

