"""The device side of ``edgecv bench --on``: ``python -m edgecv.benchmarks.remote.agent``.

``receive ROOT JOB`` stores the files streamed on stdin (``SHA256 SIZE\\n`` + bytes, ..., ``end``)
in ROOT/files/SHA256, each written to ``SHA256.part.JOB`` first and renamed only once its
SHA-256 matches and it is on disk (fsync), so the cache never holds a partial or corrupt file.
The cache is private: its folders 0700, its files 0600, whatever the umask; a file's mtime is
its last use, which :func:`edgecv.benchmarks.remote.probe.evict_cache` evicts by.

``bench ROOT JOB`` reads one JSON manifest line on stdin (files as {relative path: SHA-256}, the
artifacts, the test set, the settings), links the cached files into ROOT/jobs/JOB/run under their
names, runs :func:`edgecv.benchmarks.suite.run_benchmark` and prints the report. stdin then stays
open for the whole run: when it closes (Ctrl-C on the workstation, the connection lost) the job is
removed and the process exits at once, so nothing keeps running on the device.

Every message for the workstation is one line ``EDGECV {json}`` on stdout (anything else a
library prints is ignored): ``{"stored": SHA}``, ``{"progress": row}``, ``{"report": report}`` or
``{"error": one line}``. ROOT/jobs/JOB/owner.json (pid, boot id) lets the next run's probe remove a
job whose process is gone (a reboot, a kill -9).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from edgecv.benchmarks.remote.probe import private_dir
from edgecv.io import fsync_directory

PREFIX = "EDGECV "
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
CHUNK = 1 << 20


class AgentError(Exception):
    """A failure reported to the workstation as one line."""


def emit(message: dict) -> None:
    sys.stdout.write(PREFIX + json.dumps(message, default=_plain) + "\n")
    sys.stdout.flush()


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Job:
    """ROOT/jobs/JOB and its partial files; removed exactly once, by whoever gets there first."""

    def __init__(self, root: str, job: str):
        if not job.replace("-", "").isalnum():
            raise AgentError(f"bad job id '{job}'")
        self.root = Path(os.path.expanduser(root)).resolve()
        self.files = self.root / "files"
        self.folder = self.root / "jobs" / job
        self.id = job
        self._lock = threading.Lock()
        self._removed = False

    def register(self) -> None:
        for folder in (self.files, self.root / "jobs", self.folder):
            private_dir(folder)
        boot_id = None
        try:
            boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            pass
        with _private_file(self.folder / "owner.json") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "boot_id": boot_id}).encode())

    def remove(self) -> None:
        with self._lock:
            if self._removed:
                return
            self._removed = True
            shutil.rmtree(self.folder, ignore_errors=True)
            for leftover in self.files.glob(f"*.part.{self.id}"):
                leftover.unlink(missing_ok=True)


def _private_file(path: Path):
    """``path`` created for writing (binary), 0600 whatever the umask; it must not exist."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    os.fchmod(fd, 0o600)
    return open(fd, "wb")


def _space_error(job: Job, size: int, exc: OSError) -> AgentError:
    try:
        free = shutil.disk_usage(job.files).free
    except OSError:
        free = None
    where = f"{job.files} has {free / 1e6:.1f} MB free" if free is not None else str(job.files)
    return AgentError(f"the device cannot store a {size / 1e6:.1f} MB file ({exc.strerror}): "
                      f"{where}; free space there or give ?dir=PATH on a larger disk")


def receive(job: Job, stream) -> None:
    """Store every file of ``stream`` in the cache, verified by SHA-256."""
    job.register()
    while True:
        header = stream.readline().decode("ascii", "replace").strip()
        if not header:
            raise AgentError("the file stream ended early (the connection was closed)")
        if header == "end":
            return
        sha, size = header.split()
        size = int(size)
        part = job.files / f"{sha}.part.{job.id}"
        digest, remaining = hashlib.sha256(), size
        try:
            with _private_file(part) as handle:
                while remaining:
                    chunk = stream.read(min(CHUNK, remaining))
                    if not chunk:
                        raise AgentError("the file stream ended early (the connection was closed)")
                    digest.update(chunk)
                    handle.write(chunk)
                    remaining -= len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            part.unlink(missing_ok=True)
            if exc.errno in FULL_DISK:
                raise _space_error(job, size, exc) from exc
            raise AgentError(f"cannot write {part}: {exc.strerror}") from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        if digest.hexdigest() != sha:
            part.unlink(missing_ok=True)
            raise AgentError(f"a file arrived corrupted (SHA-256 {digest.hexdigest()[:12]}..., "
                             f"expected {sha[:12]}...); run again")
        os.replace(part, job.files / sha)
        fsync_directory(job.files)  # the rename itself survives a power cut
        emit({"stored": sha})


def _watch(stream, job: Job) -> None:
    """Block until the workstation closes stdin, then remove the job and exit at once."""
    try:
        while stream.read(CHUNK):
            pass
    except OSError:
        pass
    job.remove()
    os._exit(130)


def _place(job: Job, files: dict[str, str]) -> Path:
    """Link each cached file into the job's run folder under its name, checking its SHA-256."""
    run = job.folder / "run"
    private_dir(run)
    for relative, sha in files.items():
        source, destination = job.files / sha, (run / relative).resolve()
        if run.resolve() not in destination.parents:
            raise AgentError(f"refused file name '{relative}' (outside the job folder)")
        if not source.is_file():
            raise AgentError(f"{relative} is not in the device's cache ({source}); run again")
        if sha256_of(source) != sha:
            source.unlink(missing_ok=True)
            raise AgentError(f"the device's cached copy of {relative} was corrupt (SHA-256 "
                             "differs) and is removed; run again to copy it")
        private_dir(destination.parent)
        os.utime(source)  # its last use: the cache evicts the least recently used
        os.chmod(source, 0o600)  # a file an older edgecv cached readable to others
        try:
            os.link(source, destination)
        except OSError:  # a file system without hard links (FAT): a private copy
            shutil.copyfile(source, destination)
            os.chmod(destination, 0o600)
    return run


def bench(job: Job, stream) -> None:
    """Run the bench of the manifest (first stdin line) on the linked files; print the report."""
    from edgecv.benchmarks.suite import BenchSettings, parse_counts, parse_threads, run_benchmark
    from edgecv.runtime.boards import parse_profiles
    from edgecv.runtime.targets import parse_targets

    job.register()
    manifest = json.loads(stream.readline() or b"null")
    if not isinstance(manifest, dict):
        raise AgentError("no manifest received (the connection was closed)")
    threading.Thread(target=_watch, args=(stream, job), daemon=True).start()
    run = _place(job, manifest["files"])
    given = manifest["settings"]
    settings = BenchSettings(targets=parse_targets(given["targets"]),
                             threads=parse_threads(given["threads"]),
                             batches=parse_counts(given["batch"], "`batch`"),
                             runs=given["runs"], min_time_s=given["min_time_s"],
                             warmup=given["warmup"], rounds=given["rounds"],
                             max_drop=given["max_drop"], checksum=given["checksum"],
                             mcu_profiles=parse_profiles(given.get("mcu_profiles")))
    testset = run / manifest["testset"] if manifest.get("testset") else None

    def progress(row: dict) -> None:
        emit({"progress": {key: row[key] for key in ("artifact", "target", "threads", "status")}})

    report = run_benchmark([run / name for name in manifest["artifacts"]], settings, testset,
                           progress=progress)
    emit({"report": report})


def _stop(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("receive", "bench"):
        sys.stderr.write("usage: python -m edgecv.benchmarks.remote.agent receive|bench ROOT JOB\n")
        return 2
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    command, root, job_id = argv
    stream = sys.stdin.buffer
    job = None
    try:
        job = Job(root, job_id)
        (receive if command == "receive" else bench)(job, stream)
        return 0
    except AgentError as exc:
        emit({"error": str(exc)})
        return 3
    except Exception as exc:  # EdgecvError (one line) or a bug (its traceback on stderr)
        from edgecv.errors import EdgecvError

        if not isinstance(exc, EdgecvError):
            import traceback

            traceback.print_exc()
        emit({"error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, EdgecvError)
              else str(exc)})
        return 1
    finally:  # the cache stays; the job folder and any partial file go
        if job is not None:
            job.remove()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
