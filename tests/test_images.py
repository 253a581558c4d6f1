"""Image files that would fill memory or crash OpenCV (issue 31, item 4): a header declaring
gigapixels is refused before decoding, a file over the size limit before reading, and a cv2.error
becomes the file's reason like any other bad file. numpy + OpenCV only."""

import os
import struct
import threading
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest

from edgecv import images
from edgecv.data.folder import scan_image_folder
from edgecv.errors import DataError, UsageError
from edgecv.images import check_image_file, image_size, read_image


@pytest.fixture(autouse=True)
def default_limits(monkeypatch):
    monkeypatch.delenv("EDGECV_MAX_IMAGE_PIXELS", raising=False)
    monkeypatch.delenv("EDGECV_MAX_IMAGE_BYTES", raising=False)


@pytest.fixture
def decodes(monkeypatch):
    """The sizes of what reaches OpenCV's decoder."""
    seen = []
    real = images._decode

    def counting(data):
        seen.append(len(data))
        return real(data)

    monkeypatch.setattr(images, "_decode", counting)
    return seen


def png_header(width, height):
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (images.PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def jpeg_header(width, height):
    jfif = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes.fromhex(
        "012200021101031101")
    return b"\xff\xd8" + jfif + frame + b"\xff\xd9"


def bmp_header(width, height):
    return (b"BM" + struct.pack("<IHHI", 54, 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0) + bytes(64))


def webp_header(width, height):
    payload = bytes(4) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def tiff_header(width, height, order="<", big=False):
    if big:
        entries = [struct.pack(order + "HHQQ", tag, 16, 1, value)
                   for tag, value in ((256, width), (257, height))]
        return ((b"II" if order == "<" else b"MM") + struct.pack(order + "HHHQ", 43, 8, 0, 16)
                + struct.pack(order + "Q", len(entries)) + b"".join(entries) + bytes(8))
    entries = [struct.pack(order + "HHII", tag, 4, 1, value)
               for tag, value in ((256, width), (257, height))]
    return ((b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
            + struct.pack(order + "H", len(entries)) + b"".join(entries) + bytes(4))


HUGE = {  # file name -> a small file whose header declares 100,000 x 100,000 pixels
    "huge.png": png_header(100_000, 100_000),
    "huge.jpg": jpeg_header(65_000, 65_000),  # 16-bit sizes: 4.2 gigapixels at most
    "huge.bmp": bmp_header(100_000, -100_000),
    "huge.webp": webp_header(100_000, 100_000),
    "huge.tif": tiff_header(100_000, 100_000),
    "huge_mm.tiff": tiff_header(100_000, 100_000, ">"),
    "huge_bigtiff.tiff": tiff_header(100_000, 100_000, "<", big=True),
    "huge.pgm": b"P5\n# a comment\n100000 100000\n255\n" + bytes(64),
    "huge.ppm": b"P7\nWIDTH 100000\nHEIGHT 100000\nDEPTH 3\nMAXVAL 255\nENDHDR\n" + bytes(64),
}


@pytest.mark.parametrize("name", sorted(HUGE))
def test_a_header_declaring_gigapixels_is_refused_before_decoding(tmp_path, decodes, name):
    path = tmp_path / name
    path.write_bytes(HUGE[name])
    reason, image = check_image_file(path)
    assert image is None and "EDGECV_MAX_IMAGE_PIXELS=67,108,864" in reason, reason
    assert ("65000x65000" if name == "huge.jpg" else "100000x100000") in reason
    assert decodes == []  # OpenCV never saw it
    with pytest.raises(DataError) as info:
        read_image(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


ENCODINGS = [(".jpg", 3), (".png", 3), (".png", 4), (".bmp", 3), (".webp", 3), (".tiff", 3),
             (".pgm", 1), (".ppm", 3)]


@pytest.mark.parametrize("suffix, channels", ENCODINGS)
def test_the_header_size_of_real_files_is_their_decoded_size(tmp_path, monkeypatch, decodes,
                                                             suffix, channels):
    """40x30 images as OpenCV writes them: the header says 1,200 pixels, so a limit of 1,199
    refuses them before decoding and 1,200 lets them decode at that size."""
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, channels), dtype=np.uint8)
    path = tmp_path / f"image{suffix}"
    assert cv2.imwrite(str(path), pixels[..., 0] if channels == 1 else pixels)
    assert image_size(path.read_bytes())[1:] == (40, 30)
    monkeypatch.setenv("EDGECV_MAX_IMAGE_PIXELS", "1199")
    reason, _ = check_image_file(path)
    assert reason and "40x30 = 1,200 pixels" in reason and decodes == []
    monkeypatch.setenv("EDGECV_MAX_IMAGE_PIXELS", "1200")
    reason, image = check_image_file(path)
    assert reason is None and image.shape[:2] == (30, 40) and len(decodes) == 1


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    path.write_bytes(png_header(10, 10))
    os.truncate(path, 8_000_000)  # 8 MB, sparse: nothing of it is worth reading
    monkeypatch.setenv("EDGECV_MAX_IMAGE_BYTES", "1000000")
    tracemalloc.start()
    try:
        reason, image = check_image_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert image is None and reason == ("file of 8,000,000 bytes is larger than "
                                        "EDGECV_MAX_IMAGE_BYTES=1,000,000 (raise it to read "
                                        "larger images)")
    assert peak < 1_000_000  # the file was never read into memory
    monkeypatch.setenv("EDGECV_MAX_IMAGE_BYTES", "-1")
    with pytest.raises(UsageError, match="EDGECV_MAX_IMAGE_BYTES must be a whole number of bytes"):
        check_image_file(path)
    monkeypatch.setenv("EDGECV_MAX_IMAGE_PIXELS", "many")
    monkeypatch.delenv("EDGECV_MAX_IMAGE_BYTES")
    path.write_bytes(png_header(10, 10))
    with pytest.raises(UsageError, match="EDGECV_MAX_IMAGE_PIXELS must be a whole number of pixels"):
        check_image_file(path)


def test_a_cv2_error_is_the_files_reason_not_a_traceback(tmp_path):
    """A BMP 2,000,000 pixels wide and 1 high is within the pixel limit, but OpenCV's own width
    limit makes cv2.imdecode raise cv2.error: it is listed like any bad file."""
    from edgecv.camera.sources import FolderReader

    root = tmp_path / "data"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        cv2.imwrite(str(root / name / "ok.png"), np.full((8, 8, 3), 90, np.uint8))
    wide = root / "dog" / "wide.bmp"
    wide.write_bytes(bmp_header(2_000_000, 1))
    with pytest.raises(cv2.error):  # what OpenCV does with it
        cv2.imdecode(np.frombuffer(wide.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    skipped = {s.path: s.reason for s in scan_image_folder(root).skipped}
    assert skipped["dog/wide.bmp"].startswith("OpenCV cannot decode it (")
    assert "CV_IO_MAX_IMAGE_WIDTH" in skipped["dog/wide.bmp"]
    with pytest.raises(DataError, match="wide.bmp: OpenCV cannot decode it") as info:
        read_image(wide)
    assert "\n" not in str(info.value)
    reader = FolderReader([wide, root / "cat" / "ok.png"])  # camera/predict read files this way
    frame, failed = reader.read()
    assert frame.shape == (8, 8, 3) and failed == 1 and "OpenCV cannot decode" in reader.failures[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_an_image_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    result = []
    worker = threading.Thread(target=lambda: result.append(check_image_file(fifo)), daemon=True)
    worker.start()
    worker.join(10)
    assert result and result[0][0] == "not a regular file (a FIFO, socket or device)"
