"""MTCNN face boxes (facenet-pytorch) certified in Jaccard distance, and the torchvision stand-in.

Needs ``pip install --no-deps facenet-pytorch==2.6.0`` plus scikit-image,
pillow and requests; runs on the CPU build of torch (no torchvision).
"""

import sys

import numpy as np
import pytest
import torch

import cs_fast
from cs_fast.models import faces
from cs_fast.models._nms import SMALL, batched_nms
from cs_fast_apps import faces as faces_app

# Boxes of the real facenet-pytorch 2.6.0 + torchvision 0.29.1 (torch 2.14.1), printed by
# `python bench/mtcnn_reference_boxes.py --stand-in no --noisy 40` (that script also runs the stand-in): the stand-in
# gave the same float32 values on torch 2.14.1 and 2.13.0+cpu, and the same boxes on 40 noisy
# copies of the astronaut crop.
ASTRONAUT_CROP_BOX = [67.5342, 60.16297, 155.7105, 173.6123]
LFW50_BOXES = [[3.38006, -0.572677, 40.14988, 49.938446], [-5.268374, -4.916938, 38.608654, 51.083813],
               [-2.997651, -4.501103, 40.309658, 47.936745], [2.139613, -1.161252, 39.66457, 48.735203]]


@pytest.fixture(scope="module")
def detector():
    return faces.TopFaceBox()


def _area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def _reference_nms(boxes, scores, idxs, threshold):
    """Plain greedy NMS in float64 over each group, by decreasing score (stable)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep, removed = [], set()
    for a, i in enumerate(order):
        if i in removed:
            continue
        keep.append(i)
        for j in order[a + 1:]:
            if idxs[j] != idxs[i] or j in removed:
                continue
            w = min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0])
            h = min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1])
            inter = max(w, 0) * max(h, 0)
            union = _area(boxes[i]) + _area(boxes[j]) - inter
            if inter > 0 and inter / union > threshold:
                removed.add(j)
    return keep


@pytest.mark.parametrize("n", [0, 1, 40, 300, SMALL // 4 + 50])  # both of torchvision's routes
def test_batched_nms_is_greedy_nms_per_group(rng, n):
    xy = rng.integers(0, 60, size=(n, 2))
    wh = rng.integers(1, 25, size=(n, 2))  # integer boxes: IoUs of exactly 0.5 occur
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float64)
    scores = rng.permutation(n).astype(np.float64)  # distinct scores: one correct answer
    idxs = rng.integers(0, 3, size=n)
    keep = batched_nms(torch.tensor(boxes), torch.tensor(scores), torch.tensor(idxs), 0.5)
    assert keep.dtype == torch.int64
    assert keep.tolist() == _reference_nms(boxes.tolist(), scores.tolist(), idxs.tolist(), 0.5)


def test_batched_nms_validates_shapes():
    with pytest.raises(ValueError, match="boxes"):
        batched_nms(torch.zeros(3, 5), torch.zeros(3), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        batched_nms(torch.zeros(3, 4), torch.zeros(2), torch.zeros(3), 0.5)


def test_stand_in_leaves_no_torchvision_behind(detector):
    mods = [m for name, m in sys.modules.items() if name == "torchvision" or name.startswith("torchvision.")]
    assert not any(getattr(m, "_cs_fast_stand_in", False) for m in mods)


def test_astronaut_box_matches_facenet_with_torchvision(detector):
    image = faces.astronaut()
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32
    box = detector(image[None])
    assert box.shape == (1, 4) and box.dtype == torch.float32
    np.testing.assert_allclose(box[0].numpy(), ASTRONAUT_CROP_BOX, atol=1e-3)


def test_lfw_faces_found_and_non_faces_empty(detector):
    x = faces.lfw_faces(4, size=50)
    assert x.shape == (4, 3, 50, 50) and 0 <= float(x.min()) and float(x.max()) <= 1
    np.testing.assert_allclose(detector(x).numpy(), LFW50_BOXES, atol=1e-3)
    blank = torch.full((2, 3, 50, 50), 0.5)
    assert torch.equal(detector(blank), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="x"):
        detector(torch.zeros(3, 50, 50))


def test_select_probability_or_largest():
    # two faces side by side, the right one twice as large
    small, large = faces.lfw_faces(2, size=60), faces.lfw_faces(2, size=120)
    canvas = torch.full((1, 3, 130, 200), 0.5)
    canvas[0, :, 35:95, 5:65] = small[0]
    canvas[0, :, 5:125, 75:195] = large[1]
    mtcnn = faces.load_mtcnn()
    boxes, probs = mtcnn.detect((canvas * 255).permute(0, 2, 3, 1))
    assert len(boxes[0]) == 2
    by_prob = faces.TopFaceBox(mtcnn, select="probability")(canvas)[0].numpy()
    by_size = faces.TopFaceBox(mtcnn, select="largest")(canvas)[0].numpy()
    np.testing.assert_array_equal(by_prob, boxes[0][int(np.argmax(probs[0]))])
    areas = (boxes[0][:, 2] - boxes[0][:, 0]) * (boxes[0][:, 3] - boxes[0][:, 1])
    np.testing.assert_array_equal(by_size, boxes[0][int(np.argmax(areas))])
    assert by_size[0] > 70  # the large face, on the right
    with pytest.raises(ValueError, match="select"):
        faces.TopFaceBox(mtcnn, select="first")


# Few samples: loose alphas and delta, and h = 0.5 so that q stays below 1 with m = 300.
SMALL_RUN = {"n": 200, "m": 300, "alpha1": 0.05, "alpha2": 0.05, "delta": 0.25, "batch_size": 100}


def test_certify_face_small(detector, tmp_path):
    image = faces.lfw_faces(1, size=50)[0]
    res = faces.certify_face(image, eps1=0.05, h=0.5, detector=detector, seed=3, **SMALL_RUN)
    c = res.certificate
    assert not c.abstained, c.reason
    assert res.sigma == pytest.approx(0.1) and (res.n, res.m) == (200, 300)
    assert c.eps_out == pytest.approx(3 * c.R)
    assert c.center.shape == (4,)
    # the smoothed box is one of MTCNN's boxes and overlaps the base box
    base = torch.as_tensor(res.base_box)[None]
    assert float(cs_fast.cdist(base, c.center[None], "jaccard")[0, 0]) == pytest.approx(c.smoothing_error)
    assert c.smoothing_error < 0.3 and c.eps_out < 1
    path = tmp_path / "face.png"
    faces_app.draw_certificate(image, res, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    row = faces_app.summary(res)
    assert row["eps_out"] == c.eps_out and len(row["smoothed_box"]) == 4


def test_no_face_certifies_the_empty_box(detector):
    blank = torch.full((3, 50, 50), 0.5)
    res = faces.certify_face(blank, eps1=0.05, h=0.5, detector=detector, seed=0, n=50, m=200,
                             alpha1=0.1, alpha2=0.1, delta=0.25, batch_size=100)
    c = res.certificate
    assert not c.abstained and c.R == 0 and c.eps_out == 0
    assert torch.equal(c.center, torch.zeros(4)) and c.smoothing_error == 0


@pytest.mark.slow
def test_authors_units_certify_eps1_over_255_sigma_on_the_same_samples(detector):
    from cs_fast import bounds

    image = faces.lfw_faces(1, size=50)[0]
    replay = faces.ReplayDetector(detector)
    ours = faces.certify_face(image, eps1=0.05, h=0.5, detector=replay, seed=3, **SMALL_RUN)
    replay.replay()
    theirs = faces.certify_face(image, eps1=0.05, h=0.5, detector=replay, seed=3, authors_units=True, **SMALL_RUN)
    assert replay.misses == 0  # the same noisy images (up to float rounding), batch for batch
    a, b = ours.certificate, theirs.certificate
    assert theirs.authors_units and b.sigma == pytest.approx(255 * a.sigma) and b.eps1 == a.eps1
    assert b.p == bounds.required_mass(0.25, 0.05, 255 * 0.1) < a.p == bounds.required_mass(0.25, 0.05, 0.1)
    assert torch.equal(a.center, b.center) and a.radius == b.radius and a.smoothing_error == b.smoothing_error
    assert b.eps_out <= a.eps_out and b.R <= a.R
    # a changed image is detected afresh, not replayed
    replay.replay()
    replay(image[None] + 0.5)
    assert replay.misses == 1


@pytest.mark.skipif(not __import__("cs_fast.models._torchvision_compat", fromlist=["x"]).real_torchvision_available(),
                    reason="cross-check against the real torchvision: it does not import beside CPU torch 2.13 "
                           "(run in a venv with torch==2.14.1 torchvision==0.29.1)")
def test_stand_in_equals_real_torchvision(rng):
    import torchvision
    import facenet_pytorch.models.utils.detect_face as detect_face

    for trial in range(60):
        n = int(rng.integers(1, 2500))  # both of torchvision's routes
        xy, wh = rng.uniform(0, 100, size=(n, 2)), rng.uniform(1, 30, size=(n, 2))
        if trial % 2:
            xy, wh = np.round(xy), np.round(wh)
        boxes = torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32)
        scores = torch.tensor(rng.uniform(size=n), dtype=torch.float32)
        idxs = torch.tensor(rng.integers(0, 4, size=n))
        assert torch.equal(batched_nms(boxes, scores, idxs, 0.5), torchvision.ops.batched_nms(boxes, scores, idxs, 0.5))
    det = faces.TopFaceBox(faces.load_mtcnn(stand_in=False))
    x = faces.astronaut()[None] + 0.2 * torch.randn(20, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    real = det(x)
    original = detect_face.batched_nms
    try:
        detect_face.batched_nms = batched_nms
        assert torch.equal(det(x), real)
    finally:
        detect_face.batched_nms = original
