"""File and output plumbing: atomic writes (a killed process never leaves a half-written
artifact, a power cut neither an empty nor a half-written one) and capturing what native
libraries print to file descriptors 1 and 2."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter before 3.13)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the same directory; rename it onto ``path`` on success.

    Before the rename the temporary (every file of it, for a directory) is flushed to disk
    (fsync), and the folder after it, so after a power cut ``path`` is the old file or the
    whole new one: without it, a journaling file system may commit the rename before the data
    and leave an empty file. The temporary name ends in ``suffix`` (default: ``path``'s suffix; Keras insists on
    ``.keras`` and on ``.weights.h5`` for weights, matplotlib picks the format from it). On an
    exception the temporary file is removed and ``path`` is untouched. A process killed
    mid-write (SIGKILL, power loss) cannot remove it: the temporary is named
    ``.STEM.PID-XXXXXXXX.partial.SUFFIX``, and the next atomic write into the same folder
    deletes those whose process is gone (:func:`remove_stale_partials`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path.parent)
    # The writer's process id in the name tells a later writer whether the file is garbage.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}-",
                               suffix=f".partial{path.suffix if suffix is None else suffix}",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 less the umask),
        # so artifacts and reports stay readable to a web server or a copy step.
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp_path, (0o777 if tmp_path.is_dir() else 0o666) & ~_umask())
        _fsync_tree(tmp_path)
        os.replace(tmp_path, path)
        fsync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def fsync_directory(folder: str | os.PathLike) -> None:
    """Flush ``folder``'s entries (a file created, renamed or removed in it) to disk. A no-op
    where directories cannot be opened for that (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):  # not openable this way here: nothing to flush
        return
    try:
        os.fsync(fd)
    except OSError:  # a file system that cannot fsync a directory (some network mounts)
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """fsync a file, or every file and folder under a directory (a SavedModel), before its
    rename; a writer that wrote nothing leaves nothing to flush."""
    if not path.is_dir():
        if path.exists():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return
    for folder, _, names in os.walk(path):
        for name in names:
            _fsync_tree(Path(folder) / name)
        fsync_directory(folder)


# What atomic_path names its temporaries: "." + stem + "." + writer's pid + "-" + mkstemp's
# random part + ".partial" + suffix.
_PARTIAL_NAME = re.compile(r"^\..+\.(?P<pid>\d+)-[A-Za-z0-9_]+\.partial(\.|$)")


def is_temporary_name(name: str) -> bool:
    """True if ``name`` is one of :func:`atomic_path`'s temporaries (its writer alive or not)."""
    return _PARTIAL_NAME.match(name) is not None


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Delete the temporaries that :func:`atomic_path` left in ``folder`` (and its subfolders
    with ``recursive``) when their process was killed; return their paths. Only those whose
    writer no longer runs on this machine go: a concurrent writer's stay."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = _PARTIAL_NAME.match(entry.name)
        if match and not _process_exists(int(match["pid"])):
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:  # gone already, or not ours to delete: garbage, never an error
                continue
            removed.append(Path(entry.path))
        elif recursive and entry.is_dir(follow_symlinks=False):
            removed += remove_stale_partials(entry.path, recursive=True)
    return removed


def read_labels(path: str | os.PathLike) -> list[str]:
    """Class names from a labels file (one per line, in output order; blank lines ignored)."""
    from edgecv.errors import UsageError

    path = Path(path)
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                  if line.strip()]
    except FileNotFoundError:
        raise UsageError(f"`labels` file '{path}' does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read `labels` '{path}': {exc}.") from exc
    if not labels:
        raise UsageError(f"`labels` '{path}' holds no class names.")
    return labels


def size_on_disk(path: str | os.PathLike) -> int:
    """Bytes of a file, or of every file under a directory (a SavedModel)."""
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, data) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


# One redirection of fds 1 and 2 for the whole process, however many threads capture at once
# (the verifying thread opens interpreters while the main thread converts): each thread saving
# and restoring the fds itself let the last one out restore a temporary file as stdout, and
# every later line of the command was lost.
_capture_lock = threading.Lock()
_capture: dict = {"depth": 0, "saved": {}, "file": None}


@contextlib.contextmanager
def captured_output(replay_on_error: bool = True):
    """Redirect file descriptors 1 and 2 to a temporary file; replay what was written meanwhile
    on stderr on error (unless ``replay_on_error`` is False: the caller turns the error into its
    own message). Thread-safe: concurrent captures share one redirection, undone by the last.
    Yields a function that returns the text written to the capture since the block began (a
    native library's report, e.g. TFLite Micro's allocations; other threads' output may be in
    it too)."""
    with _capture_lock:
        if _capture["depth"] == 0:
            sys.stdout.flush()
            sys.stderr.flush()
            _capture["file"] = tempfile.TemporaryFile()
            _capture["saved"] = {fd: os.dup(fd) for fd in (1, 2)}
            for fd in (1, 2):
                os.dup2(_capture["file"].fileno(), fd)
        _capture["depth"] += 1
        captured = _capture["file"]
        start = os.lseek(captured.fileno(), 0, os.SEEK_END)
    replay = None
    try:
        yield lambda: os.pread(captured.fileno(), 1 << 24, start).decode(errors="replace")
    except BaseException:
        if replay_on_error:
            replay = os.pread(captured.fileno(), 1 << 24, start).decode(errors="replace")[-20000:]
        raise
    finally:
        with _capture_lock:
            _capture["depth"] -= 1
            if _capture["depth"] == 0:
                _restore(_capture["saved"])
                _capture["file"].close()
                _capture["file"] = None
        if replay:
            sys.stderr.write(replay)


def echo(line: str, err: bool = False) -> None:
    """Print one line of the command's own output (stderr with ``err``), also while another
    thread has fds 1 and 2 captured (:func:`captured_output`): then it goes to the saved
    terminal descriptor, where a plain print would land in the capture and be dropped."""
    with _capture_lock:
        if _capture["depth"]:
            os.write(_capture["saved"][2 if err else 1], (line + "\n").encode())
            return
        stream = sys.stderr if err else sys.stdout
        stream.write(line + "\n")
        stream.flush()


def _restore(saved: dict[int, int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in list(saved.items()):
        os.dup2(copy, fd)
        os.close(copy)
        del saved[fd]
