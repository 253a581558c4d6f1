"""Image folders with every kind of bad file: each one is skipped and named, never dropped silently."""

import os

import cv2
import numpy as np
import pytest

from edgecv.data.folder import load_images, scan_and_load, scan_image_folder
from edgecv.errors import DataError
from edgecv.images import read_image


def jpeg_bytes(image):
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.fixture
def messy_folder(tmp_path):
    root = tmp_path / "data"
    for name in ("cat", "dog", "fox"):
        (root / name).mkdir(parents=True)
    red = np.zeros((20, 30, 3), np.uint8)
    red[..., 2] = 255
    cv2.imwrite(str(root / "cat" / "red.png"), red)
    (root / "cat" / "photo.jpg").write_bytes(jpeg_bytes(red))
    cv2.imwrite(str(root / "dog" / "gray.png"), np.full((10, 10), 100, np.uint8))
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 200
    cv2.imwrite(str(root / "dog" / "alpha.png"), rgba)
    cv2.imwrite(str(root / "fox" / "deep.png"), np.full((10, 10), 65535, np.uint16))
    (root / "fox" / "nested").mkdir()
    cv2.imwrite(str(root / "fox" / "nested" / "inner.png"), red)
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    full = jpeg_bytes(noise)
    (root / "cat" / "truncated.jpg").write_bytes(full[: int(len(full) * 0.6)])
    (root / "cat" / "empty.png").write_bytes(b"")
    (root / "dog" / "text.jpg").write_text("this is not a jpeg")
    (root / "dog" / "notes.txt").write_text("readme")
    (root / "fox" / "anim.gif").write_bytes(b"GIF89a" + bytes(20))
    (root / "fox" / ".hidden.png").write_bytes(b"")
    png = (root / "cat" / "red.png").read_bytes()
    (root / "fox" / "cut.png").write_bytes(png[: len(png) - 20])
    cv2.imwrite(str(root / "stray.png"), red)
    return root, full


def test_scan_keeps_valid_files_and_names_every_skip(messy_folder):
    root, _ = messy_folder
    scan = scan_image_folder(root)
    assert scan.classes == ["cat", "dog", "fox"]
    assert scan.files == [("cat/photo.jpg", 0), ("cat/red.png", 0), ("dog/alpha.png", 1),
                          ("dog/gray.png", 1), ("fox/deep.png", 2), ("fox/nested/inner.png", 2)]
    reasons = {s.path: s.reason for s in scan.skipped}
    expected = {
        "cat/truncated.jpg": "truncated JPEG (no end marker)",
        "cat/empty.png": "empty file",
        "dog/text.jpg": "not a JPEG",
        "dog/notes.txt": "unsupported extension '.txt'",
        "fox/anim.gif": "unsupported extension '.gif'",
        "fox/.hidden.png": "hidden file",
        "fox/cut.png": "truncated PNG",
        "stray.png": "not inside a class folder",
    }
    assert set(reasons) == set(expected)
    for path, fragment in expected.items():
        assert fragment in reasons[path], (path, reasons[path])
    assert scan.counts() == {"cat": 2, "dog": 2, "fox": 2}


def test_truncated_jpeg_would_fool_opencv(messy_folder):
    """Why the end-marker check exists: cv2.imread decodes the truncated file to a full-size image
    (grey where the data is missing) with only a warning on stderr."""
    root, _ = messy_folder
    image = cv2.imread(str(root / "cat" / "truncated.jpg"))
    assert image is not None and image.shape == (64, 64, 3)
    with pytest.raises(DataError, match="truncated.jpg: truncated JPEG"):
        read_image(root / "cat" / "truncated.jpg")


def test_load_applies_the_conversion_rules(messy_folder):
    root, _ = messy_folder
    scan = scan_image_folder(root)
    paths = [p for p, _ in scan.files]
    rgb = load_images(root, paths, 8, 8, 3)
    gray = load_images(root, paths, 8, 8, 1)
    assert rgb.shape == (6, 8, 8, 3) and rgb.dtype == np.uint8 and gray.shape == (6, 8, 8, 1)
    by_name = dict(zip(paths, range(len(paths))))
    assert tuple(rgb[by_name["cat/red.png"], 0, 0]) == (255, 0, 0)
    assert abs(int(gray[by_name["cat/red.png"], 0, 0, 0]) - 76) <= 1
    assert tuple(rgb[by_name["dog/gray.png"], 0, 0]) == (100, 100, 100)
    assert tuple(rgb[by_name["dog/alpha.png"], 0, 0]) == (0, 0, 200)
    assert rgb[by_name["fox/deep.png"]].min() == 255


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="one subfolder per class"):
        scan_image_folder(tmp_path / "empty")
    single = tmp_path / "single" / "cat"
    single.mkdir(parents=True)
    cv2.imwrite(str(single / "a.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="at least 2 classes, found 1: 'cat'"):
        scan_image_folder(tmp_path / "single")
    (tmp_path / "single" / "dog").mkdir()
    (tmp_path / "single" / "dog" / "bad.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(DataError, match=r"class 'dog' has no valid image \(1 file\(s\) skipped: "
                                        r"dog/bad.jpg: truncated JPEG"):
        scan_image_folder(tmp_path / "single")


def test_loading_a_folder_decodes_each_file_once(messy_folder, monkeypatch):
    from edgecv import images
    from edgecv.data import load_dataset

    root, _ = messy_folder
    decoded = []
    real = images._decode

    def counting(data):
        decoded.append(len(data))
        return real(data)

    monkeypatch.setattr(images, "_decode", counting)
    ds = load_dataset(str(root), 8, 8, 3, val_split=0, test_split=0)
    assert len(ds.train) == 6
    # Files refused by their markers never reach the decoder; each valid one is decoded once
    # (validation and loading used to decode every file twice).
    assert len(decoded) == 6


def test_scan_and_load_keeps_the_pixels_load_images_gives(messy_folder):
    root, _ = messy_folder
    scan, x = scan_and_load(root, (8, 8, 3))
    assert scan.files == scan_image_folder(root).files
    np.testing.assert_array_equal(x, load_images(root, [p for p, _ in scan.files], 8, 8, 3))
    over_budget, none = scan_and_load(root, (8, 8, 3), max_bytes=100)
    assert none is None and over_budget.files == scan.files


@pytest.mark.parametrize("name, fragment", [
    (b"line\nbreak", r"'line\\nbreak' holds a control character \(\\n\)"),
    (b"caf\xe9", r"'caf\\xe9' holds bytes that are not UTF-8 \(\\xe9\).*convmv"),
    (b"tab\there", r"holds a control character \(\\t\)"),
    ("para\u2029graph".encode(), r"holds a paragraph separator \(\\u2029\)"),
    (b"cat ", r"'cat ' starts or ends with white space"),
])
def test_a_class_name_that_labels_txt_or_json_cannot_hold_is_refused(tmp_path, name, fragment):
    """Issue 31: a class named with a newline shifted every later label in labels.txt, and a
    Latin-1 folder name (undecodable on a UTF-8 file system) left a traceback and half a run.
    Both are refused when the folder is read, in one line naming the folder and the fix."""
    root = tmp_path / "data"
    png = cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes()
    for folder in (b"dog", name):
        path = os.path.join(os.fsencode(root), folder)  # bytes: any name the file system takes
        os.makedirs(path)
        with open(os.path.join(path, b"a.png"), "wb") as handle:
            handle.write(png)
    with pytest.raises(DataError, match=fragment) as error:
        scan_image_folder(root)
    assert "\n" not in str(error.value) and "rename it" in str(error.value)
    str(error.value).encode("utf-8")  # printable as it is


def test_a_file_whose_name_is_not_utf8_is_skipped_and_named(tmp_path):
    root = tmp_path / "data"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        cv2.imwrite(str(root / name / "ok.png"), np.zeros((4, 4), np.uint8))
    # (OpenCV 5.1's imwrite/imread crash on such a path; edgecv reads files with open())
    os.rename(os.fsencode(root / "cat" / "ok.png"), os.fsencode(root / "dog") + b"/caf\xe9.png")
    cv2.imwrite(str(root / "cat" / "ok.png"), np.zeros((4, 4), np.uint8))
    scan = scan_image_folder(root)
    assert scan.files == [("cat/ok.png", 0), ("dog/ok.png", 1)]
    assert [(s.path, s.reason) for s in scan.skipped] == [
        ("dog/caf\\xe9.png", "its name holds bytes that are not UTF-8 (\\xe9): rename it")]
