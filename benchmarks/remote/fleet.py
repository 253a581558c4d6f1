"""Every ``--on`` device in parallel, one report.

Per device, in its own thread: probe it (:mod:`.probe`), copy what its cache lacks (verified by
SHA-256 on arrival), run the same bench there (:mod:`.agent`) and bring the report back. A
device that fails becomes one row saying why; the others' rows are kept. Devices on the same
machine (``local``, ``local:PYTHON``, an ssh alias of this host: same boot id) take turns, so
their latencies do not compete for the same cores; different machines run at the same time, and
each device's answer is printed as soon as it is known. What a device answers is checked
before it is used (:mod:`.answers`): a bad record is that device's failed row, and no path in
the report comes from a device.

Ctrl-C (or any exception here) closes every device's stdin, which makes the agent remove its job
and exit, then kills the ssh processes still alive: nothing keeps running on a device.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edgecv import __version__
from edgecv.benchmarks.machine import machine_info
from edgecv.benchmarks.recommend import recommend_deployments
from edgecv.benchmarks.remote.answers import (MAX_LINE_BYTES, MAX_MESSAGES_BYTES, MAX_PROBE_BYTES,
                                              BadAnswer, Sent, check_facts, check_report,
                                              parse_message, printable, read_line, read_tail)
from edgecv.benchmarks.remote.devices import Device
from edgecv.benchmarks.remote.ssh import describe_failure, ssh_missing, step_command
from edgecv.benchmarks.row import BenchRow
from edgecv.errors import EdgecvError
from edgecv.modelfile.kinds import KERAS_SUFFIXES, is_saved_model

AGENT = "edgecv.benchmarks.remote.agent"
MIN_PYTHON = (3, 10)
PROBE_TIMEOUT_S = 120
CANCEL_GRACE_S = 5.0


class DeviceFailed(Exception):
    """One line: why this device has no rows."""


@dataclass
class DeviceRun:
    """What happened on one device: its report, or the one line why not."""

    device: Device
    report: dict | None = None
    error: str | None = None
    facts: dict = field(default_factory=dict)
    transfer: dict | None = None
    seconds: float | None = None


@dataclass
class Upload:
    """The files a device needs: {relative path on the device: local file}, and their SHA-256."""

    files: dict[str, Path]
    sha256: dict[str, str]
    artifacts: list[str]
    testset: str | None

    @classmethod
    def of(cls, artifacts: list[Path], testset: Path | None) -> "Upload":
        files, artifact_names = {}, []
        folders = list(dict.fromkeys(path.parent for path in artifacts))
        for path in artifacts:
            relative = f"{folders.index(path.parent)}/{path.name}"
            files[relative] = path
            artifact_names.append(relative)
        for index, folder in enumerate(folders):  # the SHA-256 convert recorded: --checksum
            if (folder / "conversion.json").is_file():
                files[f"{index}/conversion.json"] = folder / "conversion.json"
        if testset is not None:
            files["testset.npz"] = testset
        sha = {relative: _sha256(path) for relative, path in files.items()}
        return cls(files, sha, artifact_names, "testset.npz" if testset else None)

    @property
    def sent(self) -> list[Sent]:
        """The artifacts: where each is on the device, this machine's file, its SHA-256 (what
        a device's row is matched with: its path is never taken from the device)."""
        return [Sent(name, self.files[name], self.sha256[name]) for name in self.artifacts]

    def missing(self, cached: set[str]) -> dict[str, Path]:
        """{SHA-256: local file} of the contents the device does not have yet."""
        return {sha: self.files[relative] for relative, sha in self.sha256.items()
                if sha not in cached}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remote_artifacts(artifacts: list[Path]) -> tuple[list[Path], list[Path]]:
    """(the .tflite/.onnx files a device benches, the Keras models it cannot: TensorFlow is
    not part of the device install)."""
    keep = [p for p in artifacts if p.suffix in (".tflite", ".onnx")]
    return keep, [p for p in artifacts if p not in keep or is_saved_model(p)
                  or p.suffix.lower() in KERAS_SUFFIXES]


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


class _Steps:
    """The child processes of one device's steps; :meth:`cancel` stops them cleanly."""

    def __init__(self, device: Device, ssh_config: str | None):
        self.device, self.ssh_config = device, ssh_config
        self.live: list[subprocess.Popen] = []
        self.cancelled = threading.Event()
        self._lock = threading.Lock()

    def start(self, argv: list[str]) -> subprocess.Popen:
        """Start one step (its own session: :func:`_kill` stops it and what it started)."""
        with self._lock:
            if self.cancelled.is_set():
                raise DeviceFailed("interrupted before it finished")
            # in the home folder, as over ssh: a source tree in the current folder must not
            # stand in for the environment's own edgecv
            process = subprocess.Popen(step_command(self.device, argv, self.ssh_config),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, start_new_session=True,
                                       cwd=Path.home())
            self.live.append(process)
            return process

    def finish(self, process: subprocess.Popen) -> None:
        with self._lock:
            if process in self.live:
                self.live.remove(process)

    def cancel(self) -> None:
        """Close each live step's stdin (the agent then removes its job and exits), wait a
        little, then kill what is left (ssh's exit closes the connection: the agent sees EOF)."""
        self.cancelled.set()
        with self._lock:
            live = list(self.live)
        for process in live:
            try:
                process.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + CANCEL_GRACE_S
        for process in live:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill(process)


def _kill(process: subprocess.Popen) -> None:
    """Kill a step and every process of its session (a wrapper script's Python too), then reap
    it: its pipes close, so no read of its output is left waiting."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:  # gone already
        process.kill()
    process.wait()


class RemoteBench:
    """Probe, copy and bench on one device (ssh or ``local:PYTHON``)."""

    def __init__(self, device: Device, upload: Upload, settings: dict, *, ssh_config: str | None,
                 log: Callable[[str], None], machine_lock: Callable[[str | None], threading.Lock]):
        self.device, self.upload, self.settings = device, upload, settings
        self.steps = _Steps(device, ssh_config)
        self.log, self.machine_lock = log, machine_lock
        self.job = uuid.uuid4().hex[:16]

    def run(self, outcome: DeviceRun) -> None:
        facts = self.probe()
        outcome.facts = facts
        self.check(facts)
        outcome.transfer = self.copy(facts)
        with self.machine_lock(facts.get("boot_id")):
            self.log(f"{self.device.name}: benchmarking")
            outcome.report = self.bench()

    def _fail(self, process, stderr: str, during: str, error: str | None) -> DeviceFailed:
        """Why a step failed: the agent's own error line, else what ssh's exit says."""
        if error:
            return DeviceFailed(error)
        if self.steps.cancelled.is_set():
            return DeviceFailed("interrupted before it finished")
        return DeviceFailed(describe_failure(self.device, process.returncode, stderr,
                                             during=during))

    def _refused(self, exc: BadAnswer) -> DeviceFailed:
        return DeviceFailed(f"refused the answer of {self.device.name}: {exc}; the device must "
                            f"run edgecv {__version__} as released (pip install "
                            f"--force-reinstall 'edgecv=={__version__}' there)")

    def _exchange(self, argv: list[str], feed: Callable, *, limit: int, during: str,
                  timeout: float | None = None) -> tuple[subprocess.Popen, bytes, str]:
        """Run one step: ``feed(stdin)`` in a thread, read its stdout (at most ``limit`` bytes)
        and the tail of its stderr. A step that answers more, or not within ``timeout``
        seconds, is killed: DeviceFailed."""
        process = self.steps.start(argv)
        tail: list[bytes] = []
        threads = [threading.Thread(target=feed, args=(process.stdin,), daemon=True),
                   threading.Thread(target=lambda: tail.append(read_tail(process.stderr)),
                                    daemon=True)]
        for thread in threads:
            thread.start()
        expired = threading.Event()
        timer = threading.Timer(timeout, lambda: (expired.set(), _kill(process))) \
            if timeout else None
        if timer:
            timer.start()
        try:
            stdout = process.stdout.read(limit + 1)
            if len(stdout) > limit:
                _kill(process)
                raise self._refused(BadAnswer(f"more than {limit:,} bytes of answer while "
                                              f"{during}"))
            process.wait()
        finally:
            if timer:
                timer.cancel()
            self.steps.finish(process)
        for thread in threads:
            thread.join(5)
        if expired.is_set():
            raise DeviceFailed(f"{self.device.name} did not answer within {timeout:.0f} s while "
                               f"{during}")
        return process, stdout, printable(b"".join(tail).decode("utf-8", "replace"))

    def probe(self) -> dict:
        if self.device.kind == "ssh" and ssh_missing():
            raise DeviceFailed(ssh_missing())
        script = resources.files("edgecv.benchmarks.remote").joinpath("probe.py").read_bytes()
        days, megabytes = self.device.cache_days, self.device.cache_mb
        process, stdout, stderr = self._exchange(
            [self.device.python, "-", self.device.root, f"{days:g}", f"{megabytes:g}"],
            lambda stdin: _write_all(stdin, script), limit=MAX_PROBE_BYTES, during="connecting",
            timeout=PROBE_TIMEOUT_S)
        if process.returncode != 0:
            raise self._fail(process, stderr, "connect", None)
        try:
            facts = json.loads(stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        except (ValueError, IndexError, RecursionError):
            raise DeviceFailed(f"{self.device.name}: the probe printed no report "
                               f"({stderr.strip().splitlines()[-1:] or 'no message'})") from None
        try:
            return check_facts(facts, __version__)
        except BadAnswer as exc:
            raise self._refused(exc) from None

    def check(self, facts: dict) -> None:
        """One line for the first thing the device lacks, with how to install it."""
        name, python = self.device.name, self.device.python
        install = f"pip install 'edgecv=={__version__}'"
        version = tuple(int(p) for p in facts.get("python", "0.0").split(".")[:2] if p.isdigit())
        if version < MIN_PYTHON:
            raise DeviceFailed(f"{name} has Python {facts.get('python')} at {python}; edgecv needs "
                               f">= {'.'.join(map(str, MIN_PYTHON))}: install a newer Python "
                               "there, or name it with ?python=PATH")
        if facts.get("edgecv") is None:
            raise DeviceFailed(f"edgecv is not installed for {facts.get('python_path', python)} on "
                               f"{name} ({facts.get('edgecv_error')}): {install} there (the device "
                               "side needs no TensorFlow), or name the Python that has it with "
                               "?python=PATH")
        if facts["edgecv"] != __version__:
            raise DeviceFailed(f"{name} has edgecv {facts['edgecv']}, this machine {__version__}: "
                               f"{install} on the device, so both measure and report alike")
        if facts.get("root_error"):
            raise DeviceFailed(f"cannot use {self.device.root} on {name} ({facts['root_error']}); "
                               "give a writable folder with ?dir=PATH")
        machine = facts.get("machine") or {}
        packages = ", ".join(f"{k} {v}" for k, v in (facts.get("packages") or {}).items())
        features = ", ".join((machine.get("int8") or {}).get("features") or []) or "none known"
        self.log(f"{name}: Python {facts['python']}, edgecv {facts['edgecv']}, {packages}; "
                 f"{machine.get('cpu', 'unknown CPU')}, {machine.get('usable_cores')} cores, "
                 f"int8 features: {features}")
        if facts.get("evicted"):
            self.log(f"{name}: removed {len(facts['evicted'])} cached file(s) "
                     f"({facts.get('evicted_bytes', 0) / 1e6:.2f} MB) unused for "
                     f"{self.device.cache_days:g} days or over {self.device.cache_mb:g} MB")
        for target, reason in (facts.get("targets") or {}).items():
            if target in self.settings["target_list"] and reason:
                self.log(f"{name}: no {target} ({reason})")

    def copy(self, facts: dict) -> dict:
        """Send what the device's cache lacks; return what was copied and reused."""
        missing = self.upload.missing(set(facts.get("cached") or []))
        needed = sum(path.stat().st_size for path in missing.values())
        free = facts.get("free_bytes")
        summary = {"copied": len(missing), "copied_bytes": needed,
                   "reused": len(set(self.upload.sha256.values())) - len(missing)}
        self.log(f"{self.device.name}: copying {summary['copied']} file(s), "
                 f"{needed / 1e6:.2f} MB ({summary['reused']} already there)")
        if not missing:
            return summary
        if free is not None and needed > free:
            raise DeviceFailed(f"not enough space on {self.device.name}: {facts.get('root')} has "
                               f"{free / 1e6:.2f} MB free, the files need {needed / 1e6:.2f} MB; "
                               "free space there or give ?dir=PATH on a larger disk")
        process, stdout, stderr = self._exchange(
            [self.device.python, "-m", AGENT, "receive", self.device.root, self.job],
            lambda stdin: self._send(stdin, missing), limit=MAX_MESSAGES_BYTES,
            during="copying files")
        stored, error = set(), None
        try:
            for line in stdout.decode("utf-8", "replace").splitlines():
                message = parse_message(line, ("stored", "error")) or {}
                stored |= {message["stored"]} if "stored" in message else set()
                error = message.get("error", error)
        except BadAnswer as exc:
            raise self._refused(exc) from None
        if process.returncode != 0 or stored != set(missing):
            raise self._fail(process, stderr, "copying files", error)
        return summary

    @staticmethod
    def _send(stdin, missing: dict[str, Path]) -> None:
        try:
            for sha, path in missing.items():
                stdin.write(f"{sha} {path.stat().st_size}\n".encode())
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        stdin.write(chunk)
            stdin.write(b"end\n")
            stdin.close()
        except (OSError, ValueError):  # the device stopped reading: its message says why
            pass

    def bench(self) -> dict:
        manifest = {"files": self.upload.sha256, "artifacts": self.upload.artifacts,
                    "testset": self.upload.testset, "settings": self.settings["device"]}
        process = self.steps.start([self.device.python, "-m", AGENT, "bench",
                                    self.device.root, self.job])
        tail: list[bytes] = []
        stderr_reader = threading.Thread(target=lambda: tail.append(read_tail(process.stderr)),
                                         daemon=True)
        stderr_reader.start()
        report, error = None, None
        try:
            process.stdin.write((json.dumps(manifest) + "\n").encode())
            process.stdin.flush()  # stdin stays open: closing it stops the bench on the device
            for raw in iter(lambda: read_line(process.stdout, MAX_LINE_BYTES), b""):
                message = parse_message(raw.decode("utf-8", "replace").rstrip("\n"),
                                        ("progress", "report", "error"))
                if message is None:
                    continue
                report = message.get("report", report)
                error = message.get("error", error)
                if "progress" in message:
                    row = message["progress"]
                    self.log(f"{self.device.name}: {row['artifact'].split('/')[-1]} on "
                             f"{row['target']}" + (f" x{row['threads']}" if row["threads"] else "")
                             + ("" if row["status"] == "ok" else f" ({row['status']})"))
            process.wait()
        except BadAnswer as exc:
            _kill(process)  # a device that floods or lies is not read any further
            raise self._refused(exc) from None
        except OSError:
            process.wait()
        finally:
            try:
                process.stdin.close()
            except OSError:
                pass
            self.steps.finish(process)
        stderr_reader.join(5)
        if report is None:
            raise self._fail(process, printable(b"".join(tail).decode("utf-8", "replace")),
                             "benchmarking", error)
        try:
            checked = check_report(report, self.upload.sent, self.job,
                                   self.settings["target_list"])
        except BadAnswer as exc:
            raise self._refused(exc) from None
        # computed here from the checked rows: nothing of the device's own choice is read
        checked["recommendations"] = recommend_deployments(
            checked["rows"], self.settings["device"]["max_drop"])
        return checked


def _write_all(stdin, data: bytes) -> None:
    try:
        stdin.write(data)
        stdin.close()
    except (OSError, ValueError):  # the step ended early: its exit and stderr say why
        pass


def _failed_row(device: Device, reason: str) -> dict:
    row = BenchRow(artifact="*", path="*", format="*", target="*", threads=None,
                   status="failed", reason=reason)
    row.device = device.name
    return row.to_dict()


def add_agreement(rows: list[dict], reference: str | None) -> None:
    """Set each row's ``agreement``: the fraction of test images whose top-1 class equals the
    one the ``reference`` device predicted with the same file (SHA-256) on the same target, and
    ``agreement_with`` (the reference's name); None for the reference's own rows and where
    either side has no predictions (no test set, a failed row)."""
    theirs = {}
    for row in rows:
        if row.get("device") == reference and row.get("sha256") and row.get("predictions"):
            theirs.setdefault((row["sha256"], row["target"]), row["predictions"])
    for row in rows:
        row["agreement"], row["agreement_with"] = None, None
        mine = row.get("predictions")
        other = theirs.get((row.get("sha256"), row["target"]))
        if row.get("device") == reference or not mine or not other or len(mine) != len(other):
            continue
        row["agreement"] = round(sum(a == b for a, b in zip(mine, other)) / len(mine), 6)
        row["agreement_with"] = reference


def agreement_reference(runs: list[DeviceRun]) -> str | None:
    """The device every other device's predictions are compared with: ``local`` when it was
    benched, else the first device with a report."""
    names = [run.device.name for run in runs if run.report is not None]
    return "local" if "local" in names else (names[0] if names else None)


def merge_reports(runs: list[DeviceRun], settings: dict, local_machine: dict) -> dict:
    """One report: every device's rows and recommendations tagged with its name, one row per
    failed device, each device's machine record under ``devices``, each row's top-1 agreement
    with the same file on the reference device (:func:`add_agreement`)."""
    rows, recommendations, warnings, devices = [], [], [], []
    for run in runs:
        name = run.device.name
        entry = {"name": name, "spec": run.device.spec, "kind": run.device.kind,
                 "status": "ok" if run.report is not None else "failed", "reason": run.error,
                 "seconds": run.seconds, "transfer": run.transfer,
                 "python": run.facts.get("python"), "edgecv": run.facts.get("edgecv"),
                 "hostname": run.facts.get("hostname"),
                 "machine": (run.report or {}).get("machine") or run.facts.get("machine")}
        devices.append(entry)
        if run.report is None:
            rows.append(_failed_row(run.device, run.error or "no report"))
            continue
        for row in run.report["rows"]:
            rows.append({"device": name, **{k: v for k, v in row.items() if k != "device"}})
        recommendations += [{"device": name, **choice}
                            for choice in run.report.get("recommendations") or []]
        warnings += [f"{name}: {warning}" for warning in run.report.get("warnings") or []]
    add_agreement(rows, agreement_reference(runs))
    return {"edgecv_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": local_machine, "devices": devices, "settings": settings,
            "warnings": warnings, "recommendations": recommendations, "rows": rows}


def bench_on_devices(devices: list[Device], artifacts: list[Path], testset: Path | None,
                     run_local: Callable[[list[Path]], dict], device_settings: dict,
                     settings_record: dict, *, ssh_config: str | None = None,
                     log: Callable[[str], None] = lambda _: None,
                     on_done: Callable[[DeviceRun], None] = lambda _: None
                     ) -> tuple[dict, bool]:
    """Bench ``artifacts`` on every device; return (the merged report, interrupted).

    ``run_local(artifacts)`` is the in-process bench of ``local``; ``device_settings`` are the
    bench settings sent to the other devices (targets and threads as text, parsed there: ``max``
    means the device's cores). ``on_done`` gets each device's outcome as soon as it is known.
    """
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            log(line)

    machine_locks: dict[str, threading.Lock] = {}

    def machine_lock(key: str | None) -> threading.Lock:
        with lock:
            return machine_locks.setdefault(key or uuid.uuid4().hex, threading.Lock())

    on_device, skipped = remote_artifacts(artifacts)
    upload = Upload.of(on_device, testset) if on_device else None
    if skipped and any(d.kind != "local" for d in devices):
        say(f"note: {', '.join(p.name for p in skipped)} run only on 'local' (the device side has "
            "no TensorFlow)")
    runs = [DeviceRun(device) for device in devices]
    benches: dict[str, RemoteBench] = {}
    done: "queue.Queue[DeviceRun]" = queue.Queue()
    settings = {"device": device_settings, "target_list": device_settings["targets"].split(",")}

    def work(run: DeviceRun) -> None:
        start = time.perf_counter()
        try:
            if run.device.kind == "local":
                with machine_lock(boot_id()):
                    say("local: benchmarking")
                    run.report = run_local(artifacts)
            elif upload is None:
                raise DeviceFailed("nothing to run there: only Keras models were given")
            else:
                say(f"{run.device.name}: connecting")
                bench = benches[run.device.name]
                bench.run(run)
        except DeviceFailed as exc:
            run.error = str(exc)
        except EdgecvError as exc:
            run.error = str(exc)
        except Exception as exc:  # a bug: the device's row says so, the others go on
            run.error = f"{type(exc).__name__}: {exc}"
        run.seconds = round(time.perf_counter() - start, 1)
        done.put(run)

    for run in runs:
        if run.device.kind != "local" and upload is not None:
            benches[run.device.name] = RemoteBench(run.device, upload, settings,
                                                   ssh_config=ssh_config, log=say,
                                                   machine_lock=machine_lock)
    threads = [threading.Thread(target=work, args=(run,), daemon=True) for run in runs]
    for thread in threads:
        thread.start()
    finished, interrupted = 0, False
    try:
        while finished < len(runs):
            try:
                run = done.get(timeout=0.2)
            except queue.Empty:
                continue
            finished += 1
            on_done(run)
    except KeyboardInterrupt:
        interrupted = True
        for bench in benches.values():
            bench.steps.cancel()
        for run in runs:
            if run.report is None and run.error is None:
                run.error = "interrupted before it finished"
    local = next((r.report for r in runs if r.device.kind == "local" and r.report), None)
    machine = (local or {}).get("machine") or machine_info()
    return merge_reports(runs, settings_record, machine), interrupted
