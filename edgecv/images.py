"""Reading image files: validate and decode one file, and list the image files of folders.
numpy + OpenCV only (the device side and the training side's folders both read images here).

``cv2.imread`` returns a half-grey image for a truncated JPEG (shared/RUNTIME_FACTS.md), so a
file's markers are checked before it is decoded, and every refusal comes with a reason. A file from
elsewhere is hostile until checked: its size is checked before it is read
(``EDGECV_MAX_IMAGE_BYTES``), and the width and height its header declares before it is decoded
(``EDGECV_MAX_IMAGE_PIXELS``, see :mod:`edgecv.limits`): a 292 KB PNG decodes to 300 MB, and
OpenCV itself raises ``cv2.error`` on some headers (a BMP 2,000,000 pixels wide), which becomes
the file's reason like any other.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edgecv.errors import DataError, UsageError, first_line
from edgecv.limits import IMAGE_BYTES_ENV, IMAGE_PIXELS_ENV, max_image_bytes, max_image_pixels

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff",
                              ".pgm", ".ppm"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The content kinds whose header image_size reads: those OpenCV decodes the files of
# IMAGE_EXTENSIONS as. OpenCV picks its decoder by content, whatever the extension.
HEADER_KINDS = "JPEG, PNG, BMP, WebP, TIFF or PNM"


def _marker_problem(data: bytes, suffix: str) -> str | None:
    if suffix in (".jpg", ".jpeg"):
        if not data.startswith(b"\xff\xd8"):
            return "not a JPEG (no start-of-image marker)"
        # Some cameras pad after the end marker; look for it near the end.
        if b"\xff\xd9" not in data.rstrip(b"\x00 \r\n\t")[-2:]:
            return "truncated JPEG (no end marker)"
    elif suffix == ".png":
        if not data.startswith(PNG_SIGNATURE):
            return "not a PNG (wrong signature)"
        if b"IEND" not in data[-16:]:
            return "truncated PNG (no IEND chunk)"
    return None


class _BadHeader(ValueError):
    """The header is cut short or holds no usable size (the message says which kind)."""


def _jpeg_size(data: bytes) -> tuple[int, int]:
    # Walk the segments as libjpeg does: bytes before a marker's 0xFF are skipped, fill 0xFFs
    # too; standalone markers have no length; the first frame header (SOFn) holds the size.
    position, end = 2, len(data)
    while True:
        position = data.find(b"\xff", position)
        while 0 <= position < end and data[position] == 0xFF:
            position += 1
        if position < 0 or position >= end:
            raise _BadHeader("JPEG without a frame header")
        marker = data[position]
        position += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue
        if marker in (0xD9, 0xDA):
            raise _BadHeader("JPEG without a frame header before its image data")
        length = int.from_bytes(data[position:position + 2], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if position + 7 > end:
                raise _BadHeader("cut JPEG frame header")
            height = int.from_bytes(data[position + 3:position + 5], "big")
            return int.from_bytes(data[position + 5:position + 7], "big"), height
        if length < 2:
            raise _BadHeader("damaged JPEG segment")
        position += length


def _tiff_size(data: bytes) -> tuple[int, int]:
    order = "little" if data[:2] == b"II" else "big"
    big = data[2:4] in (b"\x2b\x00", b"\x00\x2b")  # BigTIFF: 8-byte offsets and counts
    offset_size, count_size, entry_size = (8, 8, 20) if big else (4, 2, 12)

    def unpack(at: int, size: int) -> int:
        if at + size > len(data):
            raise _BadHeader("cut TIFF header")
        return int.from_bytes(data[at:at + size], order)

    directory = unpack(8 if big else 4, offset_size)
    count = unpack(directory, count_size)
    start = directory + count_size
    # Bounded by the bytes present: a count of 2**64 entries reads no further than the file.
    count = min(count, max(0, (len(data) - start) // entry_size))
    value_at = 4 + offset_size  # tag (2), type (2), count (4 or 8), then the value
    sizes = {}
    for index in range(count):
        entry = start + index * entry_size
        tag, kind = unpack(entry, 2), unpack(entry + 2, 2)
        if tag in (256, 257) and kind in (3, 4, 16):  # SHORT, LONG, LONG8
            sizes[tag] = unpack(entry + value_at, {3: 2, 4: 4, 16: 8}[kind])
    if 256 not in sizes or 257 not in sizes:
        raise _BadHeader("TIFF without its width and height in the first directory")
    return sizes[256], sizes[257]


def _pnm_size(data: bytes) -> tuple[int, int]:
    if data[1:2] == b"7":  # PAM: "WIDTH w" and "HEIGHT h" lines up to ENDHDR
        fields = {}
        for line in data[3:data.find(b"ENDHDR")].splitlines():
            words = line.split()
            if len(words) == 2 and words[0] in (b"WIDTH", b"HEIGHT") and words[1].isdigit():
                fields[words[0]] = int(words[1])
        if len(fields) < 2:
            raise _BadHeader("PAM without WIDTH and HEIGHT")
        return fields[b"WIDTH"], fields[b"HEIGHT"]
    numbers, position = [], 2
    while len(numbers) < 2:  # width and height, after whitespace and '#' comments
        while position < len(data) and (data[position:position + 1].isspace()
                                        or data[position] == ord("#")):
            if data[position] == ord("#"):
                position = data.find(b"\n", position)
                position = len(data) if position < 0 else position
            position += 1
        start = position
        while position < len(data) and data[position:position + 1].isdigit():
            position += 1
        if position == start:
            raise _BadHeader("PNM without its width and height")
        numbers.append(int(data[start:position]))
    return numbers[0], numbers[1]


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:  # canvas size, 24 bits each, minus one
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return (int.from_bytes(data[26:28], "little") & 0x3FFF,
                int.from_bytes(data[28:30], "little") & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")  # 14 bits each, minus one
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise _BadHeader("WebP without a VP8, VP8L or VP8X header")


def _bmp_size(data: bytes) -> tuple[int, int]:
    header = int.from_bytes(data[14:18], "little")
    if header == 12 and len(data) >= 22:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
    if header >= 16 and len(data) >= 26:  # a negative height is a top-down image
        return (abs(int.from_bytes(data[18:22], "little", signed=True)),
                abs(int.from_bytes(data[22:26], "little", signed=True)))
    raise _BadHeader("damaged BMP header")


def image_size(data: bytes) -> tuple[str, int, int]:
    """(kind, width, height) declared by the header of a JPEG, PNG, BMP, WebP, TIFF or PNM
    (PBM/PGM/PPM/PAM) file's bytes, without decoding it. The kind is recognised from the content,
    by the signatures OpenCV picks its decoder with, whatever the file's extension.

    Raises ValueError when the content is none of those kinds or its header is cut or damaged.
    """
    try:
        if data.startswith(b"\xff\xd8\xff"):
            return ("JPEG", *_jpeg_size(data))
        if data.startswith(PNG_SIGNATURE):
            if data[12:16] != b"IHDR" or len(data) < 24:
                raise _BadHeader("PNG without its IHDR header")
            return "PNG", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if data.startswith(b"BM"):
            return ("BMP", *_bmp_size(data))
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return ("WebP", *_webp_size(data))
        if data[:4] in (b"II\x2a\x00", b"MM\x00\x2a", b"II\x2b\x00", b"MM\x00\x2b"):
            return ("TIFF", *_tiff_size(data))
        if data[:1] == b"P" and data[1:2] in b"1234567" and data[2:3].isspace():
            return ("PNM", *_pnm_size(data))
    except IndexError:
        raise _BadHeader("cut header") from None
    raise ValueError(f"not a {HEADER_KINDS} image (by its content)")


def _decode(data: bytes):
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def _suffix(path: str) -> str:
    """``Path(path).suffix.lower()`` without building a Path (this runs once per file)."""
    name = os.path.basename(path)
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def _read_limited(path: str, max_bytes: int) -> tuple[str | None, bytes]:
    """(reason, b"") when the file cannot be read or is larger than ``max_bytes``, else
    (None, its bytes): the size is checked before anything is read into memory."""
    try:
        # O_NONBLOCK: opening a FIFO named like an image must not wait for a writer for ever.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})", b""
    try:
        with open(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return "not a regular file (a FIFO, socket or device)", b""
            if info.st_size > max_bytes:
                return _too_large(info.st_size, max_bytes), b""
            # read(n) allocates n bytes first: ask for the size known, then (only if the file
            # grew meanwhile) for the rest up to the limit, never more.
            data = handle.read(info.st_size + 1)
            if len(data) > info.st_size:
                data += handle.read(max_bytes + 1 - len(data))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})", b""
    if len(data) > max_bytes:
        return _too_large(len(data), max_bytes), b""
    return None, data


def _too_large(size: int, max_bytes: int) -> str:
    return (f"file of {size:,} bytes is larger than {IMAGE_BYTES_ENV}={max_bytes:,} "
            f"(raise it to read larger images)")


def check_image_file(path: str | os.PathLike) -> tuple[str | None, np.ndarray | None]:
    """(reason, None) for an unusable file, (None, image) for a good one (decoded as
    ``cv2.IMREAD_UNCHANGED``, 8 or 16 bit).

    Before decoding: the file's size (at most ``EDGECV_MAX_IMAGE_BYTES``, default 256 MiB, checked
    before it is read), its markers, and the width x height its header declares (at most
    ``EDGECV_MAX_IMAGE_PIXELS``, default 8192 x 8192). A ``cv2.error`` while decoding is a reason
    too.
    """
    path = os.fspath(path)
    suffix = _suffix(path)
    if suffix not in IMAGE_EXTENSIONS:
        return f"unsupported extension '{suffix or '(none)'}'", None
    reason, data = _read_limited(path, max_image_bytes())
    if reason:
        return reason, None
    if not data:
        return "empty file", None
    problem = _marker_problem(data, suffix)
    if problem:
        return problem, None
    try:
        kind, width, height = image_size(data)
    except ValueError as exc:
        return str(exc), None
    max_pixels = max_image_pixels()
    if width * height > max_pixels:
        return (f"{kind} header declares {width}x{height} = {width * height:,} pixels, more than "
                f"{IMAGE_PIXELS_ENV}={max_pixels:,} (raise it to read larger images)"), None
    import cv2

    try:
        image = _decode(data)
    except cv2.error as exc:  # OpenCV's own limits and decoder faults: a bad file like another
        detail = f"{exc.err} in {exc.func}" if getattr(exc, "err", "") else first_line(exc)
        return f"OpenCV cannot decode it ({detail})", None
    if image is None:
        return "cannot be decoded", None
    if image.size == 0:
        return "empty image", None
    if image.dtype not in (np.uint8, np.uint16):
        return f"unsupported pixel type {image.dtype}", None
    return None, image


def validate_image_file(path: str | os.PathLike) -> str | None:
    """None if ``path`` is a usable image, else a short reason."""
    return check_image_file(Path(path))[0]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` (as ``cv2.IMREAD_UNCHANGED``) after validation; DataError names the file."""
    reason, image = check_image_file(Path(path))
    if reason:
        raise DataError(f"{path}: {reason}")
    return image


def image_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given (whatever their extension: a bad one becomes an error record) and the
    image files under each folder, recursively, in sorted order."""
    paths: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            paths.extend(sorted(
                p for p in path.rglob("*") if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)))
        elif path.exists():
            paths.append(path)
        else:
            raise UsageError(f"'{path}' does not exist; give image files or folders.")
    if not paths:
        raise UsageError(f"no image files found in {', '.join(map(str, inputs))} "
                         f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))}).")
    return paths
