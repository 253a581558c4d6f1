"""Image folders (one subfolder per class), validated file by file. numpy + OpenCV only.

Keras' ``image_dataset_from_directory`` silently ignores unknown extensions and fails on a bad
JPEG only mid-epoch without naming it; ``cv2.imread`` returns a half-grey image for a truncated
JPEG (shared/RUNTIME_FACTS.md). So every file under the root is checked and decoded once by
:func:`scan_and_load` (which keeps the converted pixels, so loading does not decode again) with
:func:`edgecv.images.check_image_file`; each one that cannot be used (a bad marker, too many
bytes or pixels for the limits of :mod:`edgecv.limits`, an error of OpenCV's) is listed in
``FolderScan.skipped`` with a reason. Nothing is dropped silently.

Class names are the subfolders' names, and they go into labels.txt (one per line), JSON files,
model cards, log lines and plots. A name that one of those cannot hold unchanged is refused with
one DataError naming the folder (:func:`name_problem`): a control character such as a newline
(it would shift every later label in labels.txt), bytes that are not UTF-8 (Python keeps them as
surrogate escapes, which no UTF-8 file can store), a Unicode line separator, or white space at
either end (labels.txt readers strip lines). A file whose name has the same problem is skipped.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecv.errors import DataError
from edgecv.images import check_image_file, read_image
from edgecv.preprocessing import to_model_image


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


# Unicode categories a name may not hold, and what each one is to the user.
_FORBIDDEN_CATEGORIES = {"Cc": "a control character", "Cs": "bytes that are not UTF-8",
                         "Zl": "a line separator", "Zp": "a paragraph separator"}


def name_problem(name: str) -> str | None:
    """What keeps ``name`` (a class name) from going unchanged into labels.txt, JSON and log
    lines, or None: a control character (newline, tab...), bytes that are not UTF-8, a line or
    paragraph separator, or white space at either end."""
    problem = _character_problem(name)
    if problem is None and name != name.strip():
        return "starts or ends with white space"
    return problem


def _character_problem(name: str) -> str | None:
    for char in name:
        category = unicodedata.category(char)
        if category in _FORBIDDEN_CATEGORIES:
            return f"holds {_FORBIDDEN_CATEGORIES[category]} ({shown_name(char)})"
    return None


def shown_name(name: str) -> str:
    """``name`` as one printable line: bytes that are not UTF-8 as ``\\xNN``, control and other
    unprintable characters as Python escapes (``\\n``, ``\\u2028``)."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
                   for char in text)


def _check_class_names(root: str, classes: list[str]) -> None:
    for name in classes:
        problem = name_problem(name)
        if problem is None:
            continue
        undecodable = any(unicodedata.category(char) == "Cs" for char in name)
        fix = ("rename it in UTF-8 (convmv -f latin1 -t utf8 -r --notest converts a tree)"
               if undecodable else "rename it")
        raise DataError(
            f"data folder '{shown_name(root)}': the class folder '{shown_name(name)}' {problem}; "
            f"class names go into labels.txt, JSON and plots as they are: {fix}."
        )


def _list_tree(root_path: Path, follow_symlinks: bool):
    """(classes, candidate files [(relative, class index)], skipped) without reading any file."""
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
    root = str(root_path)
    if not classes:
        raise DataError(
            f"data folder '{root}' has no class subfolders; it expects one subfolder per class, "
            f"like {root}/cat/*.jpg and {root}/dog/*.jpg."
        )
    _check_class_names(root, classes)
    if len(classes) < 2:
        raise DataError(f"data folder '{root}' needs at least 2 classes, found 1: '{classes[0]}'.")
    candidates: list[tuple[str, int]] = []
    for index, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(root_path / name, followlinks=follow_symlinks):
            dirnames.sort()
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                relative = path.relative_to(root_path).as_posix()
                problem = _character_problem(relative)
                if problem is not None:  # its path could not go into split.json or a log line
                    skipped.append(SkippedFile(shown_name(relative),
                                               f"its name {problem}: rename it"))
                elif filename.startswith("."):
                    skipped.append(SkippedFile(relative, "hidden file"))
                elif path.is_symlink() and not follow_symlinks:
                    skipped.append(SkippedFile(relative, "symbolic link (not followed)"))
                else:
                    candidates.append((relative, index))
    return classes, candidates, skipped


def decode_to_model(path: str | os.PathLike, height: int, width: int, channels: int) -> np.ndarray:
    """Validate and decode one file into uint8 HxWxC with the deployed conversion rules.

    The one decoding path of every data route (in-memory load, tf.data streaming), so the pixels
    of a file are the same whichever route reads it. DataError names the file.
    """
    return to_model_image(read_image(path), height, width, channels)


def _workers() -> int:
    # cv2.imdecode/resize release the GIL, so threads decode in parallel; one per core.
    return max(1, min(8, os.cpu_count() or 1))


def _decode_many(root: Path, files: list[str], shape: tuple[int, int, int] | None,
                 out: np.ndarray | None) -> list[str | None]:
    """Check (and with ``shape``, convert into ``out[i]``) every file; returns the reasons
    (None = usable). Files are handed to a thread pool in chunks: one task per small JPEG costs
    about as much as decoding it."""
    from concurrent.futures import ThreadPoolExecutor

    reasons: list[str | None] = [None] * len(files)

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            reason, image = check_image_file(os.path.join(root, files[i]))
            if reason is None and shape is not None:
                try:
                    image = to_model_image(image, *shape)
                except DataError as exc:
                    reason = str(exc)
                if out is not None and reason is None:
                    out[i] = image
            reasons[i] = reason

    chunk = 256
    bounds = [(s, min(s + chunk, len(files))) for s in range(0, len(files), chunk)]
    workers = _workers()
    if workers == 1 or len(bounds) <= 1:
        for start, stop in bounds:
            work(start, stop)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda b: work(*b), bounds):  # re-raises a worker's exception
                pass
    return reasons


def scan_and_load(root: str | os.PathLike, shape: tuple[int, int, int] | None = None, *,
                  max_bytes: int | None = None,
                  follow_symlinks: bool = False) -> tuple[FolderScan, np.ndarray | None]:
    """Validate every file under ``root`` once and, with ``shape=(H, W, C)``, keep its converted
    pixels: returns the scan and uint8 (N, H, W, C) for ``scan.files`` in order.

    Each file is read and decoded exactly once, in parallel threads. The pixels are None without
    ``shape``, or when the candidate files at ``shape`` would need more than ``max_bytes``
    (default None: no limit); the files are then still decoded and converted to validate them.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise DataError(f"data folder '{root}' does not exist or is not a directory.")
    classes, candidates, skipped = _list_tree(root_path, follow_symlinks)
    paths = [relative for relative, _ in candidates]
    keep = shape is not None and (
        max_bytes is None or len(paths) * int(np.prod(shape)) <= max_bytes)
    out = np.empty((len(paths), *shape), np.uint8) if keep else None
    reasons = _decode_many(root_path, paths, shape, out)
    files: list[tuple[str, int]] = []
    for (relative, index), reason in zip(candidates, reasons):
        if reason:
            skipped.append(SkippedFile(relative, reason))
        else:
            files.append((relative, index))
    present = {index for _, index in files}
    for index, name in enumerate(classes):
        if index not in present:
            class_skipped = [s for s in skipped if s.path.startswith(name + "/")]
            detail = "; ".join(f"{s.path}: {s.reason}" for s in class_skipped[:3])
            raise DataError(
                f"class '{name}' has no valid image ({len(class_skipped)} file(s) skipped"
                + (f": {detail}" if detail else "") + ")."
            )
    # Stray top-level entries first, then each class's skips in path order (as listed before).
    skipped.sort(key=lambda s: ("/" in s.path.rstrip("/"), s.path))
    if out is not None and len(files) != len(candidates):
        out = out[np.asarray([r is None for r in reasons], bool)]
    return FolderScan(str(root_path), classes, files, skipped), out


def scan_image_folder(root: str | os.PathLike, *, follow_symlinks: bool = False) -> FolderScan:
    """List the valid images of a class-per-subfolder tree and the skipped files with reasons."""
    return scan_and_load(root, None, follow_symlinks=follow_symlinks)[0]


def load_images(root: str | os.PathLike, files: list[str], height: int, width: int,
                channels: int) -> np.ndarray:
    """Decode ``files`` (paths relative to ``root``) into uint8 (N, H, W, C) with the
    conversion rules of :func:`edgecv.preprocessing.to_model_image`, in parallel threads.
    A file that is not a usable image raises DataError naming it."""
    out = np.empty((len(files), height, width, channels), np.uint8)
    reasons = _decode_many(Path(root), list(files), (height, width, channels), out)
    for relative, reason in zip(files, reasons):
        if reason:
            raise DataError(f"{Path(root) / relative}: {reason}")
    return out
