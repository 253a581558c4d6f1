"""Image folders (one subfolder per class), validated file by file. numpy + OpenCV only.

Keras' ``image_dataset_from_directory`` silently ignores unknown extensions and fails on a bad
JPEG only mid-epoch without naming it; ``cv2.imread`` returns a half-grey image for a truncated
JPEG (shared/RUNTIME_FACTS.md). So every file under the root is checked and decoded once by
:func:`scan_image_folder`; each one that cannot be used is listed in ``FolderScan.skipped`` with
a reason. Nothing is dropped silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecv.errors import DataError
from edgecv.preprocessing import to_model_image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff",
                              ".pgm", ".ppm"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class SkippedFile:
    path: str  # relative to the root, POSIX style
    reason: str


@dataclass
class FolderScan:
    root: str
    classes: list[str]
    files: list[tuple[str, int]]  # (relative path, class index) of valid images, sorted
    skipped: list[SkippedFile] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Valid images per class."""
        counts = dict.fromkeys(self.classes, 0)
        for _, index in self.files:
            counts[self.classes[index]] += 1
        return counts


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


def _check(path: Path) -> tuple[str | None, np.ndarray | None]:
    """(reason, None) for an unusable file, (None, image) for a good one."""
    suffix = path.suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        return f"unsupported extension '{suffix or '(none)'}'", None
    try:
        data = path.read_bytes()
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
    return _check(Path(path))[0]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` (as ``cv2.IMREAD_UNCHANGED``) after validation; DataError names the file."""
    reason, image = _check(Path(path))
    if reason:
        raise DataError(f"{path}: {reason}")
    return image


def scan_image_folder(root: str | os.PathLike, *, follow_symlinks: bool = False) -> FolderScan:
    """List the valid images of a class-per-subfolder tree and the skipped files with reasons."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise DataError(f"data folder '{root}' does not exist or is not a directory.")
    classes = sorted(p.name for p in root_path.iterdir()
                     if p.is_dir() and not p.name.startswith(".")
                     and (follow_symlinks or not p.is_symlink()))
    skipped: list[SkippedFile] = []
    for entry in sorted(root_path.iterdir()):
        if entry.is_symlink() and not follow_symlinks:
            skipped.append(SkippedFile(entry.name, "symbolic link (not followed)"))
        elif entry.is_file():
            skipped.append(SkippedFile(entry.name, "not inside a class folder"))
        elif entry.is_dir() and entry.name.startswith("."):
            skipped.append(SkippedFile(entry.name + "/", "hidden folder"))
    if not classes:
        raise DataError(
            f"data folder '{root}' has no class subfolders; it expects one subfolder per class, "
            f"like {root}/cat/*.jpg and {root}/dog/*.jpg."
        )
    if len(classes) < 2:
        raise DataError(f"data folder '{root}' needs at least 2 classes, found 1: '{classes[0]}'.")

    files: list[tuple[str, int]] = []
    for index, name in enumerate(classes):
        class_skipped = []
        for dirpath, dirnames, filenames in os.walk(root_path / name, followlinks=follow_symlinks):
            dirnames.sort()
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                relative = path.relative_to(root_path).as_posix()
                if filename.startswith("."):
                    reason = "hidden file"
                elif path.is_symlink() and not follow_symlinks:
                    reason = "symbolic link (not followed)"
                else:
                    reason = _check(path)[0]
                if reason:
                    class_skipped.append(SkippedFile(relative, reason))
                else:
                    files.append((relative, index))
        skipped.extend(class_skipped)
        if not any(cls == index for _, cls in files):
            detail = "; ".join(f"{s.path}: {s.reason}" for s in class_skipped[:3])
            raise DataError(
                f"class '{name}' has no valid image ({len(class_skipped)} file(s) skipped"
                + (f": {detail}" if detail else "") + ")."
            )
    return FolderScan(str(root_path), classes, files, skipped)


def load_images(root: str | os.PathLike, files: list[str], height: int, width: int,
                channels: int) -> np.ndarray:
    """Decode ``files`` (paths relative to ``root``) into uint8 (N, H, W, C) with the
    conversion rules of :func:`edgecv.preprocessing.to_model_image`."""
    out = np.empty((len(files), height, width, channels), np.uint8)
    for i, relative in enumerate(files):
        out[i] = to_model_image(read_image(Path(root) / relative), height, width, channels)
    return out
