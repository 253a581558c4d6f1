"""Archives of a class-folder tree (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.xz``), unpacked
once into a cache keyed by the archive's content SHA-256. Standard library only.

Safety: every member is checked before anything is written, and the archive is refused with one
:class:`~edgecv.errors.DataError` line naming it and the member when a member would land outside
the cache (absolute path, ``..``), is a symbolic or hard link, or is a device file or FIFO. Tar
extraction additionally runs with the standard library's ``data`` filter (PEP 706) as a second
line of defence. Unpacking goes to a temporary folder next to the cache entry and is renamed into
place in one step, so a killed unpack never leaves a half-filled cache that a later run would
trust.

Cache location: ``$EDGECV_CACHE_DIR/datasets/<sha256>/`` (default ``~/.cache/edgecv``, or
``$XDG_CACHE_HOME/edgecv`` when that is set).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from edgecv.errors import DataError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz")
# Folders archivers add beside the real content: removed after unpacking.
_IGNORED_TOP = ("__MACOSX",)


def is_archive(path: str | os.PathLike) -> bool:
    """True if ``path``'s name ends with one of :data:`ARCHIVE_SUFFIXES` (case-insensitive)."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def cache_root() -> Path:
    """``$EDGECV_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgecv``, else ``~/.cache/edgecv``."""
    if os.environ.get("EDGECV_CACHE_DIR"):
        return Path(os.environ["EDGECV_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "edgecv"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:  # hashlib.file_digest is 3.11+; edgecv supports 3.10
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _member_problem(name: str) -> str | None:
    """Why a member name may not be unpacked (absolute, escapes the root), or None."""
    posix = name.replace("\\", "/")  # a zip written on Windows may use backslashes
    if posix.startswith("/") or PurePosixPath(posix).is_absolute() or (
            len(posix) > 1 and posix[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "points outside the archive root ('..')"
    return None


def _check_tar(tar: tarfile.TarFile) -> None:
    for member in tar.getmembers():
        problem = _member_problem(member.name)
        if problem is None:
            if member.issym():
                problem = f"is a symbolic link (to '{member.linkname}')"
            elif member.islnk():
                problem = f"is a hard link (to '{member.linkname}')"
            elif member.isdev() or member.isfifo():
                problem = "is a device file or FIFO"
            elif not (member.isfile() or member.isdir()):
                problem = f"has an unsupported member type ({member.type!r})"
        if problem:
            raise _Refused(f"member '{member.name}' {problem}")


def _check_zip(archive: zipfile.ZipFile) -> None:
    for info in archive.infolist():
        problem = _member_problem(info.filename)
        mode = info.external_attr >> 16  # Unix mode bits, when a Unix zip tool wrote them
        if problem is None and mode:
            kind = stat.S_IFMT(mode)
            if stat.S_ISLNK(mode):
                problem = "is a symbolic link"
            elif kind and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                problem = "is a device file or FIFO"
        if problem:
            raise _Refused(f"member '{info.filename}' {problem}")
    # A CRC mismatch surfaces as BadZipFile during extraction (zipfile checks every member it
    # reads to the end), so there is no separate testzip() pass decompressing everything twice.


class _Refused(Exception):
    """A member that must not be unpacked (turned into one DataError line by the caller)."""


def _extract(path: Path, target: Path) -> None:
    if str(path).lower().endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            _check_zip(archive)
            archive.extractall(target)
    else:
        with tarfile.open(path) as tar:  # compression detected from the content
            _check_tar(tar)
            tar.extractall(target, filter="data")


def dataset_root(unpacked: Path) -> Path:
    """The class-folder root inside an unpacked archive: its single top-level folder when it has
    one (``train/<class>/...``), else the unpack folder itself."""
    top = [p for p in unpacked.iterdir() if not p.name.startswith(".")]
    if len(top) == 1 and top[0].is_dir():
        return top[0]
    return unpacked


def unpack_archive(path: str | os.PathLike) -> tuple[Path, str]:
    """Unpack ``path`` into the cache (once) and return (class-folder root, sha256).

    A second call with the same content finds ``<cache>/datasets/<sha256>`` and unpacks nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data archive '{path}' does not exist or is not a file.")
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise DataError(f"data archive '{path}' cannot be read ({exc.strerror or exc}).") from exc
    datasets = cache_root() / "datasets"
    final = datasets / digest
    if final.is_dir():  # only ever created by the atomic rename below: complete
        return dataset_root(final), digest
    try:
        datasets.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}-", dir=datasets))
    except OSError as exc:
        raise DataError(
            f"cannot create the dataset cache under '{datasets}' ({exc.strerror or exc}); set "
            f"EDGECV_CACHE_DIR to a writable folder."
        ) from exc
    try:
        _extract(path, tmp)
        for name in _IGNORED_TOP:  # macOS Finder's resource forks would read as a class folder
            shutil.rmtree(tmp / name, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a concurrent unpack of the same archive: a real failure
                raise
    except _Refused as exc:
        raise DataError(f"data archive '{path}' refused: {exc}; unpack it yourself and check "
                        f"its content, or rebuild it without such members.") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError,
            RuntimeError) as exc:
        # gzip/lzma/zlib errors derive from OSError/ValueError; a truncated stream is EOFError.
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(f"data archive '{path}' is corrupt or not a supported archive "
                        f"({reason}); expected {', '.join(ARCHIVE_SUFFIXES)} of a class-folder "
                        f"tree.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after a successful rename
    return dataset_root(final), digest
