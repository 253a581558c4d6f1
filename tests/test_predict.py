"""`edgecv predict` through the real CLI on a real LiteRT model built without TensorFlow: one
record per image, and an image that fails (unreadable, or pixels the model cannot take) is its
own error record while the others are still classified."""

import json

import cv2
import numpy as np
import pytest

from conftest import run_cli
from tiny_tflite import tiny_tflite, with_card

LABELS = [f"p{i}" for i in range(64)]


@pytest.fixture
def pixel_model(tmp_path):
    """An 8x8 gray 'model' whose 64 scores are its input pixels: the label of an image with one
    bright pixel is that pixel's position."""
    path = tmp_path / "pixels.tflite"
    path.write_bytes(with_card(tiny_tflite(shape=(1, 8, 8, 1), constant=0.0), LABELS))
    return path


def bright_pixel_png(path, index):
    image = np.zeros((8, 8), np.uint8)
    image[divmod(index, 8)] = 255
    assert cv2.imwrite(str(path), image)


def gray_alpha_pam(path):
    """A Netpbm PAM file with gray+alpha tuples: OpenCV decodes it to (8, 8, 2), which is no
    image kind the conversion rules cover (gray, BGR, BGRA), so preprocessing refuses it."""
    header = b"P7\nWIDTH 8\nHEIGHT 8\nDEPTH 2\nMAXVAL 255\nTUPLTYPE GRAYSCALE_ALPHA\nENDHDR\n"
    path.write_bytes(header + bytes(8 * 8 * 2))
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and decoded.shape == (8, 8, 2)  # it does decode


def test_an_image_that_decodes_but_fails_preprocessing_is_one_error_record(pixel_model, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    bright_pixel_png(folder / "a.png", 29)
    gray_alpha_pam(folder / "b.pgm")
    bright_pixel_png(folder / "c.png", 5)
    (folder / "d.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(30))  # undecodable, as before

    result = run_cli("predict", pixel_model, folder, "--json", "--top-k", "1", timeout=120)
    assert result.returncode == 0, result.stderr  # some images were classified
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"].rsplit("/", 1)[1] for r in records] == ["a.png", "b.pgm", "c.png", "d.png"]
    assert records[0]["label"] == "p29" and records[2]["label"] == "p5"
    assert set(records[1]) == {"path", "error"}
    assert "unsupported image shape (8, 8, 2)" in records[1]["error"]
    assert "b.pgm" in records[1]["error"]
    assert set(records[3]) == {"path", "error"}

    table = run_cli("predict", pixel_model, folder, timeout=120)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert len(lines) == 4
    assert "b.pgm: error: " in lines[1] and "unsupported image shape" in lines[1]
    assert "p29" in lines[0] and "p5" in lines[2]


def test_exit_1_when_no_image_could_be_classified(pixel_model, tmp_path):
    only = tmp_path / "only.pgm"
    gray_alpha_pam(only)
    result = run_cli("predict", pixel_model, only, timeout=120)
    assert result.returncode == 1
    assert result.stdout.count(": error: ") == 1 and "Traceback" not in result.stderr
