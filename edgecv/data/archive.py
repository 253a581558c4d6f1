"""Archives of a class-folder tree (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.xz``), unpacked
once into a cache keyed by the archive's content SHA-256. Standard library only.

Safety: each member is checked before it is written, and the archive is refused with one
:class:`~edgecv.errors.DataError` line naming it and the member when a member would land outside
the cache (absolute path, ``..``), is a symbolic or hard link, a device file or FIFO, or a sparse
file (a 420-byte tar.xz declared a 64 GiB one). Tar members also pass the standard library's
``data`` filter (PEP 706) as a second line of defence.

Limits (:class:`UnpackLimits`), checked as the archive streams, on the bytes really read from
the archive and written, never on the sizes its headers declare alone (those only refuse
earlier): what one member may unpack to, the disk space the whole unpack takes (each file counted
in whole blocks of the file system, as it is stored), against a budget and the free space, the
number of members, and the ratio of disk taken to archive read that only a decompression bomb
reaches. A refused unpack leaves nothing behind.

Unpacking goes to a temporary folder next to the cache entry, is flushed to disk and renamed into
place in one step, so a killed unpack (or a power loss) never leaves a half-filled cache that a
later run would trust; the temporary folder of an unpack whose process is gone is removed by the
next unpack (:func:`edgecv.io.remove_stale_partials`).

Cache location: ``$EDGECV_CACHE_DIR/datasets/<sha256>/`` (default ``~/.cache/edgecv``, or
``$XDG_CACHE_HOME/edgecv`` when that is set).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import lzma
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgecv.errors import DataError
from edgecv.io import remove_stale_partials
from edgecv.limits import IMAGE_BYTES_ENV, MAX_IMAGE_BYTES, env_limit, max_image_bytes

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz")
# Folders archivers add beside the real content: removed after unpacking.
_IGNORED_TOP = ("__MACOSX",)
UNPACK_BYTES_ENV = "EDGECV_MAX_UNPACK_BYTES"
ARCHIVE_MEMBERS_ENV = "EDGECV_MAX_ARCHIVE_MEMBERS"
UNPACK_RATIO_ENV = "EDGECV_MAX_UNPACK_RATIO"
_CHUNK = 1 << 20


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


@dataclass(frozen=True)
class UnpackLimits:
    """What unpacking one archive may take. CIFAR-10's 50,000 JPEGs (a 15.5 MB tar.xz) take
    205 MB of disk, a ratio of 13.5 at most (benchmarks/results/archive_unpack.json): far inside
    each.

    Args:
        max_bytes: disk space the unpack may take, each file rounded up to whole blocks of the
            file system (env ``EDGECV_MAX_UNPACK_BYTES``, default 16 GiB); never more than the
            free space less ``free_margin_bytes``.
        max_members: files and folders (env ``EDGECV_MAX_ARCHIVE_MEMBERS``, default 1,000,000);
            never more than the free inodes less 10,000.
        max_member_bytes: bytes of one member (env ``EDGECV_MAX_IMAGE_BYTES``, default 256 MiB:
            the largest image file edgecv reads).
        max_ratio: disk taken per byte read from the archive (env ``EDGECV_MAX_UNPACK_RATIO``,
            default 200; deflate alone reaches 1,032), judged once ``ratio_after_bytes``
            (default 64 MiB) are taken.
        free_margin_bytes: free space the unpack leaves on the cache's disk (default 1 GiB).
    """

    max_bytes: int = 16 * 1024**3
    max_members: int = 1_000_000
    max_member_bytes: int = MAX_IMAGE_BYTES
    max_ratio: int = 200
    ratio_after_bytes: int = 64 * 1024**2
    free_margin_bytes: int = 1024**3

    @classmethod
    def from_env(cls) -> UnpackLimits:
        """The defaults, with each limit that has an environment variable read from it."""
        return cls(max_bytes=env_limit(UNPACK_BYTES_ENV, cls.max_bytes),
                   max_members=env_limit(ARCHIVE_MEMBERS_ENV, cls.max_members, "members"),
                   max_member_bytes=max_image_bytes(),
                   max_ratio=env_limit(UNPACK_RATIO_ENV, cls.max_ratio,
                                       "bytes of disk per byte of archive"))


_INODE_MARGIN = 10_000
_TRUSTED = "if the archive is trusted"


def _mib(size: int) -> str:
    return f"{size / 1024**2:,.1f} MiB"


class _Refused(Exception):
    """A member that must not be unpacked (turned into one DataError line by the caller); ``fix``
    ends that line."""

    def __init__(self, detail: str, fix: str = "unpack it yourself and check its content, or "
                                               "rebuild it without such members"):
        super().__init__(detail)
        self.fix = fix


class _CannotWrite(Exception):
    """Writing into the cache failed (no space, read-only, permissions): not the archive's fault."""


class _CountingFile(io.FileIO):
    """The archive file, counting the bytes tarfile/zipfile really read from it."""

    bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer) -> int:
        count = super().readinto(buffer) or 0
        self.bytes_read += count
        return count


class _Budget:
    """What the unpack has taken so far, checked against the limits at every chunk written."""

    def __init__(self, limits: UnpackLimits, archive: _CountingFile, cache: Path):
        self.limits, self.archive, self.cache = limits, archive, cache
        self.free = shutil.disk_usage(cache).free
        self.max_bytes = min(limits.max_bytes, self.free - limits.free_margin_bytes)
        self.block, self.free_inodes = 4096, None
        if hasattr(os, "statvfs"):
            fs = os.statvfs(cache)
            self.block = fs.f_frsize or self.block
            if fs.f_files:  # file systems without an inode table (btrfs) report 0
                self.free_inodes = fs.f_favail
        self.max_members = limits.max_members
        if self.free_inodes is not None:
            self.max_members = min(self.max_members, self.free_inodes - _INODE_MARGIN)
        self.members = 0
        self.taken = 0  # disk bytes of the finished members
        self.current = 0  # bytes written of the member being unpacked

    def disk(self, size: int) -> int:
        """Disk a file of ``size`` bytes takes: whole blocks, one at least (its inode and
        directory entry cost about that, and make many empty files a bomb too)."""
        return max(1, -(-size // self.block)) * self.block

    def start(self, name: str, declared: int) -> None:
        """Count a new member; refuse early what its declared size alone already exceeds."""
        self.members += 1
        self.current = 0
        if self.members > self.max_members:
            raise self.too_many(name)
        if declared > self.limits.max_member_bytes:
            raise self.member_too_large(name, f"declares {declared:,} bytes,")
        if self.taken + self.disk(declared) > self.max_bytes:
            raise self.too_much(name)

    def add(self, name: str, size: int) -> None:
        """Count ``size`` more bytes of the current member, before they are written."""
        self.current += size
        # tarfile and zipfile stop a member at its declared size, refused above already: this
        # holds whatever a reader lets through.
        if self.current > self.limits.max_member_bytes:
            raise self.member_too_large(name, "unpacks to")
        self._check(name, self.taken + self.disk(self.current))

    def finish(self, name: str) -> None:
        self.taken += self.disk(self.current)
        self.current = 0
        self._check(name, self.taken)

    def _check(self, name: str, disk: int) -> None:
        if disk > self.max_bytes:
            raise self.too_much(name)
        read = max(1, self.archive.bytes_read)
        if disk > self.limits.ratio_after_bytes and disk > self.limits.max_ratio * read:
            raise _Refused(
                f"at member '{name}' it had taken {_mib(disk)} of disk from {read:,} bytes of "
                f"archive, a ratio of {disk / read:,.0f}, above {UNPACK_RATIO_ENV}="
                f"{self.limits.max_ratio}: only a decompression bomb unpacks so much",
                f"raise {UNPACK_RATIO_ENV} {_TRUSTED}")

    def member_too_large(self, name: str, how: str) -> _Refused:
        cap = self.limits.max_member_bytes
        return _Refused(f"member '{name}' {how} more than {IMAGE_BYTES_ENV}={cap:,} bytes "
                        f"({_mib(cap)}), the largest file edgecv reads as an image",
                        f"raise {IMAGE_BYTES_ENV} {_TRUSTED}")

    def too_much(self, name: str) -> _Refused:
        if self.max_bytes < self.limits.max_bytes:
            return _Refused(
                f"at member '{name}' unpacking it needs more than the {_mib(self.free)} free in "
                f"'{self.cache}' less a margin of {_mib(self.limits.free_margin_bytes)}",
                "free space there or set EDGECV_CACHE_DIR to a folder on a larger disk")
        return _Refused(f"at member '{name}' unpacking it takes more than {UNPACK_BYTES_ENV}="
                        f"{self.limits.max_bytes:,} bytes ({_mib(self.limits.max_bytes)}) of "
                        f"disk", f"raise {UNPACK_BYTES_ENV} {_TRUSTED}")

    def too_many(self, name: str) -> _Refused:
        if self.max_members < self.limits.max_members:
            return _Refused(
                f"at member '{name}' it holds more members than the {self.free_inodes:,} free "
                f"inodes of '{self.cache}' less {_INODE_MARGIN:,}",
                "free inodes there or set EDGECV_CACHE_DIR to another file system")
        return _Refused(f"at member '{name}' it holds more than {ARCHIVE_MEMBERS_ENV}="
                        f"{self.limits.max_members:,} files and folders",
                        f"raise {ARCHIVE_MEMBERS_ENV} {_TRUSTED}")


def _posix_name(name: str) -> str:
    return name.replace("\\", "/")  # a zip written on Windows may use backslashes


def _member_problem(name: str) -> str | None:
    """Why a member name may not be unpacked (absolute, escapes the root), or None."""
    posix = _posix_name(name)
    if posix.startswith("/") or PurePosixPath(posix).is_absolute() or (
            len(posix) > 1 and posix[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "points outside the archive root ('..')"
    return None


def _tar_member_problem(member: tarfile.TarInfo) -> str | None:
    problem = _member_problem(member.name)
    if problem is None:
        if member.issym():
            problem = f"is a symbolic link (to '{member.linkname}')"
        elif member.islnk():
            problem = f"is a hard link (to '{member.linkname}')"
        elif member.isdev() or member.isfifo():
            problem = "is a device file or FIFO"
        elif member.issparse() or member.type == tarfile.GNUTYPE_SPARSE:
            # Its holes cost nothing in the archive: 420 bytes of tar.xz declared 64 GiB.
            problem = f"is a sparse file (of {member.size:,} bytes)"
        elif not (member.isfile() or member.isdir()):
            problem = f"has an unsupported member type ({member.type!r})"
    return problem


def _check_zip(archive: zipfile.ZipFile, budget: _Budget) -> None:
    """Every member's name and kind, and what the declared sizes alone already exceed, before
    anything is written (the central directory lists them all)."""
    declared = 0
    for index, info in enumerate(archive.infolist()):
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
        if index >= budget.max_members:
            raise budget.too_many(info.filename)
        if info.file_size > budget.limits.max_member_bytes:
            raise budget.member_too_large(info.filename, f"declares {info.file_size:,} bytes,")
        declared += budget.disk(info.file_size)
        if declared > budget.max_bytes:
            raise budget.too_much(info.filename)
    # A CRC mismatch surfaces as BadZipFile during extraction (zipfile checks every member it
    # reads to the end), so there is no separate testzip() pass decompressing everything twice.


class _Writer:
    """Writes checked members under ``target``, counting each chunk in ``budget`` before it is
    written. Errors of the writing side become _CannotWrite; those of the reading side (a damaged
    archive) pass through."""

    def __init__(self, target: Path, budget: _Budget):
        self.target, self.budget = str(target), budget
        self.folders = {self.target}  # made already: one mkdir per folder, not one per file

    def _folder(self, path: str, name: str) -> None:
        if path not in self.folders:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise self._failure(exc, name) from exc
            self.folders.add(path)

    @staticmethod
    def _failure(exc: OSError, name: str) -> Exception:
        if isinstance(exc, (FileExistsError, IsADirectoryError, NotADirectoryError)):
            return _Refused(f"member '{name}' has the path of another member, file and folder")
        return _CannotWrite(f"{exc.strerror or exc} at '{name}'")

    def member(self, name: str, declared: int, source=None) -> None:
        """One member: a folder (``source`` None) or a file whose bytes ``source`` reads."""
        self.budget.start(name, declared)
        parts = [part for part in PurePosixPath(_posix_name(name)).parts if part not in ("", ".")]
        path = os.path.join(self.target, *parts)
        if source is None:
            self._folder(path, name)
        elif parts:
            self._folder(os.path.dirname(path), name)
            try:
                out = open(path, "wb")
            except OSError as exc:
                raise self._failure(exc, name) from exc
            with out:
                while chunk := source.read(_CHUNK):
                    self.budget.add(name, len(chunk))
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise _CannotWrite(f"{exc.strerror or exc} at '{name}'") from exc
        self.budget.finish(name)


def _extract_tar(archive: _CountingFile, writer: _Writer) -> None:
    # One pass over the stream ("r|*": compression detected from the content): each member is
    # checked when its header is read, before its bytes are.
    with tarfile.open(fileobj=archive, mode="r|*") as tar:
        while (member := tar.next()) is not None:
            problem = _tar_member_problem(member)
            if problem:
                raise _Refused(f"member '{member.name}' {problem}")
            try:
                tarfile.data_filter(member, writer.target)
            except tarfile.FilterError as exc:
                raise _Refused(f"member '{member.name}' is refused by tarfile's data "
                               f"filter ({exc})") from None
            writer.member(member.name, member.size,
                          tar.extractfile(member) if member.isfile() else None)


def _extract_zip(archive: _CountingFile, writer: _Writer) -> None:
    with zipfile.ZipFile(archive) as zipped:
        _check_zip(zipped, writer.budget)
        for info in zipped.infolist():
            if info.is_dir() or info.filename.endswith("\\"):  # a Windows tool's folder
                writer.member(info.filename, 0)
            else:
                with zipped.open(info) as source:
                    writer.member(info.filename, info.file_size, source)


def _extract(path: Path, target: Path, limits: UnpackLimits) -> None:
    with _CountingFile(path) as archive:
        writer = _Writer(target, _Budget(limits, archive, target.parent))
        if str(path).lower().endswith(".zip"):
            _extract_zip(archive, writer)
        else:
            _extract_tar(archive, writer)


def _flush_to_disk(folder: Path) -> None:
    """Make what was written under ``folder`` durable before it is renamed into the cache: one
    syncfs(2) of its file system on Linux (0.3-0.4 s after unpacking CIFAR-10's 50,000 files,
    where an fsync of each file and folder took 7-12 s: benchmarks/results/archive_unpack.json;
    sync(2) would flush every other file system too), else one sync(2)."""
    syncfs = None
    if sys.platform.startswith("linux"):
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    if syncfs is None:
        if hasattr(os, "sync"):
            os.sync()
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename into it survives a power loss (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dataset_root(unpacked: Path) -> Path:
    """The class-folder root inside an unpacked archive: its single top-level folder when it has
    one (``train/<class>/...``), else the unpack folder itself."""
    top = [p for p in unpacked.iterdir() if not p.name.startswith(".")]
    if len(top) == 1 and top[0].is_dir():
        return top[0]
    return unpacked


def unpack_archive(path: str | os.PathLike,
                   limits: UnpackLimits | None = None) -> tuple[Path, str]:
    """Unpack ``path`` into the cache (once) and return (class-folder root, sha256).

    A second call with the same content finds ``<cache>/datasets/<sha256>`` and unpacks nothing.
    ``limits`` (default None: :meth:`UnpackLimits.from_env`) bound what the unpack may take; an
    archive over one is refused with a DataError naming the member, the limit and its variable.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data archive '{path}' does not exist or is not a file.")
    limits = limits or UnpackLimits.from_env()
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise DataError(f"data archive '{path}' cannot be read ({exc.strerror or exc}).") from exc
    datasets = cache_root() / "datasets"
    remove_stale_partials(datasets)  # unpacks killed before their rename
    final = datasets / digest
    if final.is_dir():  # only ever created by the atomic rename below: complete
        return dataset_root(final), digest
    try:
        datasets.mkdir(parents=True, exist_ok=True)
        # Named as edgecv.io.atomic_path names its temporaries (writer's pid, '.partial'), so that
        # remove_stale_partials knows one whose process is gone.
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}.{os.getpid()}-", suffix=".partial",
                                    dir=datasets))
    except OSError as exc:
        raise DataError(
            f"cannot create the dataset cache under '{datasets}' ({exc.strerror or exc}); set "
            f"EDGECV_CACHE_DIR to a writable folder."
        ) from exc
    try:
        _extract(path, tmp, limits)
        for name in _IGNORED_TOP:  # macOS Finder's resource forks would read as a class folder
            shutil.rmtree(tmp / name, ignore_errors=True)
        try:
            _flush_to_disk(tmp)
        except OSError as exc:
            raise _CannotWrite(f"{exc.strerror or exc} flushing it to disk") from exc
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a concurrent unpack of the same archive: a real failure
                raise _CannotWrite(f"cannot rename '{tmp.name}' to '{digest}'") from None
        with contextlib.suppress(OSError):  # the entry is complete; at worst a power loss
            _fsync_folder(datasets)         # undoes the rename and the next run unpacks again
    except _Refused as exc:
        raise DataError(f"data archive '{path}' refused: {exc}; {exc.fix}.") from None
    except _CannotWrite as exc:
        raise DataError(f"data archive '{path}' cannot be unpacked into '{datasets}' ({exc}); "
                        f"check that it is writable with space free, or set EDGECV_CACHE_DIR "
                        f"to another folder.") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError,
            zlib.error, lzma.LZMAError) as exc:
        # gzip/bz2 errors derive from OSError; a truncated stream is EOFError; a damaged deflate
        # or LZMA member of a zip raises zlib.error / LZMAError.
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(f"data archive '{path}' is corrupt or not a supported archive "
                        f"({reason}); expected {', '.join(ARCHIVE_SUFFIXES)} of a class-folder "
                        f"tree.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after a successful rename
    return dataset_root(final), digest
