"""Reading image files: validate and decode one file, and list the image files of folders.
numpy + OpenCV only (the device side and the training side's folders both read images here).

``cv2.imread`` returns a half-grey image for a truncated JPEG (shared/RUNTIME_FACTS.md), so a
file's markers are checked before it is decoded, and every refusal comes with a reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edgecv.errors import DataError, UsageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff",
                              ".pgm", ".ppm"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def _decode(data: bytes):
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def _suffix(path: str) -> str:
    """``Path(path).suffix.lower()`` without building a Path (this runs once per file)."""
    name = os.path.basename(path)
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def check_image_file(path: str | os.PathLike) -> tuple[str | None, np.ndarray | None]:
    """(reason, None) for an unusable file, (None, image) for a good one (decoded as
    ``cv2.IMREAD_UNCHANGED``, 8 or 16 bit)."""
    path = os.fspath(path)
    suffix = _suffix(path)
    if suffix not in IMAGE_EXTENSIONS:
        return f"unsupported extension '{suffix or '(none)'}'", None
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})", None
    if not data:
        return "empty file", None
    problem = _marker_problem(data, suffix)
    if problem:
        return problem, None
    image = _decode(data)
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
