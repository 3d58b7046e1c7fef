"""``cs-fast faces`` (:mod:`cs_fast_apps.faces`): the sweep over (h, eps1), its pictures and report, and the
``mtcnn`` built-in model of ``cs-fast certify``.

Needs ``pip install --no-deps facenet-pytorch==2.6.0`` plus scikit-image,
pillow and requests; runs on the CPU build of torch (no torchvision).
"""

import json

import numpy as np
import pytest

from cs_fast.models import faces
from cs_fast_apps import cli
from cs_fast_apps import faces as faces_app

# test_faces.py's LFW50_BOXES[2]: the real facenet-pytorch's box of the third LFW face at 50 x 50 pixels
LFW50_BOX2 = [-2.997651, -4.501103, 40.309658, 47.936745]


@pytest.mark.slow
def test_main_writes_json_and_png(tmp_path, monkeypatch):
    monkeypatch.setattr(faces_app, "astronaut", lambda crop=True: faces.lfw_faces(1, size=50)[0])
    # the smallest sizes that can certify h = 1 under the exact rules (cs-fast plan --h 1): n = 784, m = 38
    rows = faces_app.main(["--out", str(tmp_path), "--n", "784", "--m", "38", "--eps1", "0.1", "--h", "1",
                           "--batch-size", "400"])
    assert len(rows) == 1 and rows[0]["bounds"] == "exact" and rows[0]["m"] == 38
    assert rows[0]["abstained"] or rows[0]["rank"] == 38  # 38 samples: only the largest distance certifies
    assert (tmp_path / "certificates.json").exists() and (tmp_path / "astronaut_h1_eps0.1.png").exists()


def test_main_refuses_sizes_that_cannot_certify_before_loading_mtcnn(tmp_path, monkeypatch):
    monkeypatch.setattr(faces_app, "load_mtcnn", lambda **kw: pytest.fail("MTCNN loaded for a refused run"))
    with pytest.raises(ValueError, match=r"^--n: received 40; .*Expected n >= 784.*at --h 1, --eps1 0.1"):
        faces_app.main(["--out", str(tmp_path), "--n", "40", "--m", "100", "--eps1", "0.1", "--h", "1"])
    with pytest.raises(ValueError, match=r"^--m: received 5000; with bounds='paper'.*Expected m >= 9425"):
        faces_app.main(["--out", str(tmp_path), "--n", "2000", "--m", "5000", "--eps1", "0.2", "--h", "2",
                        "--bounds", "paper"])


@pytest.mark.slow
def test_faces_authors_units_plots_both_curves(tmp_path, monkeypatch):
    monkeypatch.setattr(faces_app, "astronaut", lambda crop=True: faces.lfw_faces(1, size=50)[0])
    rows = faces_app.main(["--out", str(tmp_path), "--n", "40", "--m", "800", "--eps1", "0.1", "--h", "1", "2",
                           "--authors-units", "--seed", "5", "--batch-size", "200", "--delta", "0.25",
                           "--alpha1", "0.05", "--alpha2", "0.05"])
    assert len(rows) == 2 and all(r["authors"]["authors_units"] and not r["authors_units"] for r in rows)
    assert [r["spawn_key"] for r in rows] == [[0, 0, 0], [0, 1, 0]] and rows[0]["seed"] == 5
    assert all(r["authors"]["batches_detected_afresh"] == 0 for r in rows)
    assert (tmp_path / "authors_units.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_cli_faces_and_mtcnn_builtin(tmp_path, capsys):
    rc = cli.main(["faces", "--out", str(tmp_path), "--n", "60", "--m", "200", "--eps1", "0.05", "--h", "0.5",
                   "--min-face-size", "60", "--batch-size", "60", "--delta", "0.25", "--alpha1", "0.05"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0 and len(rows) == 1 and rows[0]["min_face_size"] == 60 and rows[0]["n"] == 60
    # the face crop's base box, from the same MTCNN settings
    assert rows[0]["base_box"] == pytest.approx(
        faces.TopFaceBox(faces.load_mtcnn(min_face_size=60))(faces.astronaut()[None])[0].tolist())
    assert (tmp_path / "astronaut_h0.5_eps0.05.png").exists()
    rc = cli.main(["certify", "--model", "mtcnn", "--n", "60", "--m", "100", "--eps1", "0.05", "--batch-size", "60",
                   "--delta", "0.25", "--alpha1", "0.05"])
    row = json.loads(capsys.readouterr().out)
    assert rc == 0 and row["metric"] == "jaccard" and row["sigma"] == 0.1 and row["input"] == 0
    assert rc == 0 and cli.main(["faces", "--min-face-size", "5"]) == 2
    assert "--min-face-size" in capsys.readouterr().err


def test_cli_says_what_to_install_without_facenet(monkeypatch, capsys):
    def missing(name, stand_in="auto"):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(faces, "import_module", missing)
    faces.default_detector.cache_clear()  # top_face_boxes builds its detector afresh, without facenet
    assert cli.main(["certify", "--model", "mtcnn", "--n", "12", "--m", "50", "--eps1", "0.05", "--delta", "0.25",
                     "--alpha1", "0.05", "--alpha2", "0.05"]) == 2
    err = capsys.readouterr().err
    assert "pip install --no-deps facenet-pytorch==2.6.0" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_faces_on_an_lfw_face(tmp_path, capsys):
    rc = cli.main(["faces", "--photo", "lfw", "--lfw-index", "2", "--lfw-size", "50", "--out", str(tmp_path),
                   "--n", "200", "--m", "300", "--eps1", "0.05", "--h", "0.5", "--batch-size", "100", "--delta", "0.25",
                   "--alpha1", "0.05"])
    row = json.loads(capsys.readouterr().out)
    assert rc == 0 and row["photo"] == "lfw2" and not row["full_photo"]
    np.testing.assert_allclose(row["base_box"], LFW50_BOX2, atol=1e-3)
    assert (tmp_path / "lfw2_h0.5_eps0.05.png").exists()
    for bad in (["--lfw-index", "100"], ["--lfw-size", "8"]):
        assert cli.main(["faces", "--photo", "lfw", *bad]) == 2
        assert bad[0] in capsys.readouterr().err
