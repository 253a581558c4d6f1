"""Killed at any moment, nothing is half-written.

`edgecv train`, `convert` and `bench` are killed with SIGKILL at random points, three seeds per
command: after the k-th change seen in their folder (k drawn from the early, middle and late
third of what a run changes there) plus a random pause. After every kill, each file in the run
/ export folder is absent, the previous complete version or the new complete one: it parses or
loads in full (JSON, CSV, PNG, .keras and .npz zips, HDF5, TFLite through the flatbuffer
verifier, ONNX through its checker, TensorBoard logs record by record), and conversion.json and
bench.json describe files that exist with their recorded SHA-256. The only other files allowed
are the atomic writer's temporaries of a killed process (hidden ``.NAME.PID-XXXX.partial.EXT``).
Every kill is followed by the next run of the same command (for training ``--resume`` once
config.json exists, the documented way to continue a killed run), which must start; the last
must finish and leave a complete folder with no temporary left.

The killed train and convert runs are forked from a process that has imported TensorFlow
(``ZYGOTE``): they run the CLI from ``main()`` on, so a kill costs the work done, not 10 s of
import. Bench runs and the last run of each chain are plain ``python -m edgecv`` processes.
The three chains run at the same time, each in its own folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

SEEDS = (11, 22, 33)
TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)-[A-Za-z0-9_]+\.partial(\.[^/]*)?$")
TRAIN = ("train", "--model", "seed_cnn", "--img-size", "8", "--epochs", "2")
# Other settings than the conftest run's export (calibration 100, ONNX auto), so the int8 files
# of a complete run differ from the previous ones: a mix of old and new files is visible.
CONVERT = ("--int8", "--onnx", "--onnx-calibration", "minmax", "--calib-samples", "50",
           "--max-drop", "100")
BENCH = ("--targets", "cpu", "--runs", "20", "--min-time", "0", "--warmup", "2")
# Where the kills land: after the k-th change seen in the command's folder (polled every
# 10 ms; see count_changes), k drawn from 1..N, N about 3/4 of what a complete run shows there
# (a 2-epoch training 33, a conversion over a previous one 7-9, bench over its reports 3-5).
# The three seeds of a chain draw from the first, the last and the middle third of that range,
# so that every chain is killed early, late and midway (in that order: the last rerun then
# usually resumes a training instead of starting it again). Then a further pause drawn from
# 0..J seconds (for training up to 1 s, so that some kills land while an epoch computes).
POLL_S = 0.01
STRATA = (0, 2, 1)
CHANGES = {"train": 24, "convert": 5, "bench": 3}
JITTER_S = {"train": 1.0, "convert": 0.5, "bench": 0.01}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- complete files

def check_json(path: Path) -> None:
    json.loads(path.read_text(encoding="utf-8"))


def check_text(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "does not end with a newline"


def check_csv(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "empty, or the last row is cut"
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "epoch" and all(len(row) == len(rows[0]) for row in rows), rows


def check_png(path: Path) -> None:
    import cv2

    data = path.read_bytes()
    assert data.endswith(b"IEND\xaeB`\x82"), "no PNG end chunk"
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is not None


def check_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None, "a member fails its CRC"


def check_keras(path: Path) -> None:
    check_zip(path)
    with zipfile.ZipFile(path) as archive:
        assert {"config.json", "model.weights.h5"} <= set(archive.namelist())


def check_npz(path: Path) -> None:
    check_zip(path)
    with np.load(path, allow_pickle=False) as data:
        for name in data.files:
            data[name]


def check_h5(path: Path) -> None:
    import h5py

    with h5py.File(path, "r") as handle:
        handle.visititems(lambda _name, item: item[()] if isinstance(item, h5py.Dataset) else None)


def check_tflite(path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    Interpreter(model_content=path.read_bytes())  # runs the flatbuffer verifier


def check_onnx(path: Path) -> None:
    import onnx

    onnx.checker.check_model(onnx.load_model_from_string(path.read_bytes()))


def check_html(path: Path) -> None:
    assert path.read_text(encoding="utf-8").rstrip().endswith("</html>"), "cut before </html>"


def check_tfevents(path: Path) -> None:
    """TensorBoard's append-only log: length-framed records (8-byte length, 4-byte CRC, data,
    4-byte CRC). Each record is written whole; TensorBoard reads a log that is still growing."""
    data = path.read_bytes()
    position = 0
    while position < len(data):
        assert position + 12 <= len(data), f"a record header is cut at byte {position}"
        length = int.from_bytes(data[position:position + 8], "little")
        position += 12 + length + 4
    assert position == len(data), "the last record is cut"


CHECKS = {".json": check_json, ".txt": check_text, ".csv": check_csv, ".png": check_png,
          ".keras": check_keras, ".npz": check_npz, ".h5": check_h5, ".tflite": check_tflite,
          ".onnx": check_onnx, ".md": check_text, ".html": check_html}


def check_folder(root: Path, *, temporaries_of: set[int]) -> list[str]:
    """Problems with the files under ``root``: a file that is not complete, an unknown file, a
    temporary that is not from one of the killed processes ``temporaries_of``, and a
    conversion.json or bench.json that describes a missing file or another SHA-256."""
    problems = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root)
        match = TEMPORARY.match(path.name)
        if match:
            if int(match["pid"]) not in temporaries_of:
                problems.append(f"{name}: a temporary file that should be gone")
            continue
        check = check_tfevents if ".tfevents." in path.name else CHECKS.get(path.suffix)
        if check is None:
            problems.append(f"{name}: unknown file")
            continue
        try:
            check(path)
        except Exception as exc:  # noqa: BLE001 (the reason is the finding)
            problems.append(f"{name}: not complete: {type(exc).__name__}: {exc}")
    for conversion in root.rglob("conversion.json"):
        for row in _json_or_none(conversion, "artifacts"):
            problems += describes(conversion, conversion.parent / row["file"], row.get("sha256"))
    for report in root.rglob("bench.json"):
        for row in _json_or_none(report, "rows"):
            if row.get("sha256"):
                problems += describes(report, Path(row["path"]), row["sha256"])
    return problems


def _json_or_none(path: Path, key: str) -> list:
    try:
        return json.loads(path.read_text())[key]
    except ValueError:
        return []  # reported above as not complete


def describes(report: Path, path: Path, recorded: str) -> list[str]:
    if not path.is_file():
        return [f"{report.name} lists {path.name}, which does not exist"]
    if sha256(path) != recorded:
        return [f"{report.name} records another SHA-256 for {path.name} than the file has"]
    return []


# ----------------------------------------------------------------------------- kills

def snapshot(root: Path) -> dict:
    files = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            try:
                stat = os.stat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            files[os.path.join(folder, name)] = (stat.st_size, stat.st_mtime_ns)
    return files


# The runs that are killed are forked from a process that has imported TensorFlow and edgecv
# already (a "zygote", as Android starts apps): from `edgecv.cli.main()` on they run the same
# code as `python -m edgecv`, without the 10 s of import that would otherwise make up most of
# each kill's cost. It reaps its children at once, as a shell does, and logs their exit codes.
ZYGOTE = r"""
import json, os, select, sys, traceback
from edgecv.tf_import import import_tensorflow
import_tensorflow()
import edgecv.cli
import edgecv.converters.convert, edgecv.training.trainer  # noqa: F401  (preloaded)

exits = sys.argv[1]
sys.stdout.write("ready\n")
sys.stdout.flush()


def child(request):
    code = 1
    try:
        os.chdir(request["cwd"])
        out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        sys.argv = ["edgecv", *request["args"]]
        try:
            edgecv.cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


pending = b""
while True:
    readable = select.select([0], [], [], 0.01)[0]
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        with open(exits, "a") as handle:
            handle.write(f"{pid} {os.waitstatus_to_exitcode(status)}\n")
    if not readable:
        continue
    chunk = os.read(0, 65536)
    if not chunk:
        break
    pending += chunk
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(json.loads(line))
        os.write(1, b"%d\n" % pid)
"""


class Zygote:
    """Forks ``edgecv ARGS`` runs from a process with TensorFlow imported."""

    def __init__(self, folder: Path):
        self.exits = folder / "zygote-exits.txt"
        self.exits.touch()
        self.errors = folder / "zygote.err"
        with open(self.errors, "wb") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-c", ZYGOTE, str(self.exits)], cwd=folder,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=errors)
        self.lock = threading.Lock()
        self.started: bool | None = None

    def wait_ready(self) -> None:
        with self.lock:
            if self.started is None:
                self.started = self.process.stdout.readline() == b"ready\n"
        if not self.started:
            raise AssertionError("the zygote did not start: "
                                 + self.errors.read_text(errors="replace")[-2000:])

    def spawn(self, args, cwd: Path, out: Path) -> ForkedRun:
        self.wait_ready()
        request = {"args": [str(a) for a in args], "cwd": str(cwd), "out": str(out)}
        with self.lock:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            pid = int(self.process.stdout.readline())
        return ForkedRun(pid, self.exits)

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ForkedRun:
    """A zygote's child, with the parts of Popen's interface that a chain uses."""

    def __init__(self, pid: int, exits: Path):
        self.pid, self.exits, self.returncode = pid, exits, None

    def poll(self) -> int | None:
        if self.returncode is None:
            text = self.exits.read_text()
            lines = text[:text.rfind("\n") + 1].splitlines()  # whole lines only
            codes = [int(code) for pid, code in (line.split() for line in lines)
                     if int(pid) == self.pid]
            if codes and not os.path.exists(f"/proc/{self.pid}"):  # reaped: its temp files
                self.returncode = codes[-1]                        # may be cleaned up now
        return self.returncode

    def send_signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = 600) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode


def count_changes(before: dict, now: dict) -> int:
    """Files that appeared, went, or changed between two snapshots. A temporary file growing and
    a TensorBoard log being appended to do not count: how often those are seen depends on the
    machine's speed, and the kill points should not."""
    changed = 0
    for path in before.keys() | now.keys():
        if path not in before or path not in now:
            changed += 1
        elif before[path] != now[path]:
            name = os.path.basename(path)
            changed += not (TEMPORARY.match(name) or ".tfevents." in name)
    return changed


class Chain:
    """Runs one command again and again in ``folder``, killing each run at a seeded random
    point (:meth:`kill_at_random`) and checking the files, then once to the end
    (:meth:`finish`, a fresh ``python -m edgecv``); ``problems`` lists what was wrong."""

    def __init__(self, kind: str, folder: Path, watched: Path, zygote: Zygote | None = None):
        self.kind, self.folder, self.watched, self.zygote = kind, folder, watched, zygote
        self.started = time.monotonic()
        self.killed_pids: set[int] = set()
        self.log: list[str] = []
        self.problems: list[str] = []

    def start(self, args, *, fork: bool = False):
        out = self.folder / f"{self.kind}.out"
        if fork and self.zygote is not None:
            return self.zygote.spawn(args, self.folder, out)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        with open(out, "ab") as handle:
            return subprocess.Popen([sys.executable, "-m", "edgecv", *map(str, args)],
                                    cwd=self.folder, env=env, stdin=subprocess.DEVNULL,
                                    stdout=handle, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return (self.folder / f"{self.kind}.out").read_text(errors="replace")[-3000:]

    def kill_at_random(self, args, seed: int) -> None:
        rng = random.Random(seed)
        stratum, strata = STRATA[SEEDS.index(seed)], len(STRATA)
        most = CHANGES[self.kind]
        changes = rng.randint(1 + most * stratum // strata, max(1, most * (stratum + 1) // strata))
        jitter = rng.uniform(0.0, JITTER_S[self.kind])
        process = self.start(args, fork=True)
        before, seen = snapshot(self.watched), 0
        deadline = time.monotonic() + 300
        while process.poll() is None and seen < changes and time.monotonic() < deadline:
            time.sleep(POLL_S)
            now = snapshot(self.watched)
            seen += count_changes(before, now)
            before = now
        time.sleep(jitter)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        if process.returncode == -signal.SIGKILL:
            self.killed_pids.add(process.pid)
            self.log.append(f"seed {seed}: killed after {seen} change(s) + {jitter * 1000:.0f} ms "
                            f"(drawn: {changes}) at {time.monotonic() - self.started:.1f} s")
        else:
            self.log.append(f"seed {seed}: finished before the kill (code {process.returncode})")
            if process.returncode != 0:
                self.problems.append(f"{self.kind} {args}: exited {process.returncode} "
                                     f"before the kill:\n{self.output()}")
        self.problems += [f"after the {self.kind} kill of seed {seed}: {problem}" for problem in
                          check_folder(self.watched, temporaries_of=self.killed_pids)]

    def finish(self, args) -> None:
        process = self.start(args)
        process.wait(timeout=600)
        self.log.append(f"run to the end: code {process.returncode} at "
                        f"{time.monotonic() - self.started:.1f} s")
        if process.returncode != 0:
            self.problems.append(f"the rerun {self.kind} {args} exited {process.returncode}:\n"
                                 f"{self.output()}")
        self.problems += [f"after the {self.kind} rerun: {problem}" for problem in
                          check_folder(self.watched, temporaries_of=set())]


def train_args(run: Path) -> list:
    """The next run of the training command: ``--resume`` once the run exists (its training
    was interrupted), the plain command while it does not."""
    return [*TRAIN, "--out", run, *(["--resume"] if (run / "config.json").is_file() else [])]


def train_chain(folder: Path, zygote: Zygote) -> Chain:
    """Kill a training and each next run of it; a run that finished before its kill makes the
    next seed start a new one (a resumed run writes less than a new one)."""
    runs = [folder / "run-1"]
    chain = Chain("train", folder, runs[-1], zygote)
    runs[-1].mkdir()  # watched from the start; an empty folder is what a new run may use
    for seed in SEEDS:
        if (runs[-1] / "metrics.json").is_file():  # written last: complete
            runs.append(folder / f"run-{len(runs) + 1}")
            runs[-1].mkdir()
            chain.watched = runs[-1]
        chain.kill_at_random(train_args(runs[-1]), seed)
    if not (runs[-1] / "metrics.json").is_file():
        chain.finish(train_args(runs[-1]))
    for run in runs:
        for name in ("model.keras", "metrics.json", "history.csv", "labels.txt", "split.json"):
            if not (run / name).is_file():
                chain.problems.append(f"the finished run {run.name} has no {name}")
    return chain


def convert_chain(folder: Path, tiny_run: Path, zygote: Zygote) -> Chain:
    run = folder / "run"
    shutil.copytree(tiny_run, run)
    export = run / "export"
    old_int8 = sha256(export / "model_int8.tflite")
    args = ["convert", run, *CONVERT]
    chain = Chain("convert", folder, export, zygote)
    for seed in SEEDS:
        chain.kill_at_random(args, seed)
    chain.finish(args)
    if sha256(export / "model_int8.tflite") == old_int8:
        chain.problems.append("the new int8 model is the old one: the test saw no old/new mix")
    return chain


def bench_chain(folder: Path, tiny_run: Path) -> Chain:
    run = folder / "run"
    shutil.copytree(tiny_run, run)
    args = ["bench", run / "export", *BENCH, "--json", run / "bench.json", "--md",
            run / "bench.md", "--html", run / "bench.html"]
    chain = Chain("bench", folder, run)
    chain.finish(args)  # the previous complete reports
    for seed in SEEDS:
        chain.kill_at_random(args, seed)
    chain.finish(args)
    return chain


@pytest.fixture(scope="module")
def chains(request, tmp_path_factory):
    """The three chains, run at the same time in threads (each waits on its child processes).
    Training starts first, while this process builds the conftest run that the conversion and
    bench chains start from."""
    results: dict = {}

    def run(kind, job):
        try:
            results[kind] = job()
        except BaseException as exc:  # noqa: BLE001 (reported by the test of that chain)
            results[kind] = exc

    def start(kind, job) -> threading.Thread:
        thread = threading.Thread(target=run, args=(kind, job), daemon=True)
        thread.start()
        return thread

    zygote = Zygote(tmp_path_factory.mktemp("zygote"))
    try:
        threads = [start("train", lambda: train_chain(tmp_path_factory.mktemp("kill-train"),
                                                      zygote))]
        tiny_run = request.getfixturevalue("tiny_run")
        threads += [start("convert", lambda: convert_chain(tmp_path_factory.mktemp("kill-convert"),
                                                           tiny_run, zygote)),
                    start("bench", lambda: bench_chain(tmp_path_factory.mktemp("kill-bench"),
                                                       tiny_run))]
        for thread in threads:
            thread.join(900)
    finally:
        zygote.close()
    return results


def outcome(chains: dict, kind: str) -> Chain:
    result = chains.get(kind)
    if isinstance(result, BaseException):
        raise result
    assert result is not None, f"the {kind} chain did not finish"
    assert not result.problems, "\n".join(result.log + result.problems)
    assert result.killed_pids, "no kill landed before the end: " + "; ".join(result.log)
    print("\n".join(result.log))
    return result


@pytest.mark.slow
@pytest.mark.tf
def test_train_killed_at_random_points_leaves_complete_files_and_resumes(chains):
    outcome(chains, "train")


@pytest.mark.slow
@pytest.mark.tf
def test_convert_killed_at_random_points_keeps_conversion_json_true(chains):
    outcome(chains, "convert")


@pytest.mark.slow
@pytest.mark.tf
def test_bench_killed_at_random_points_keeps_its_reports_complete(chains):
    outcome(chains, "bench")


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    """Without TensorFlow: the temporary of a process that died mid-write goes at the next
    atomic write into the folder; a live writer's stays; other hidden files are not touched."""
    from edgecv.io import atomic_path, remove_stale_partials, write_text_atomic

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".model.{dead_pid}-abc123xy.partial.tflite"
    stale_dir = tmp_path / f".saved_model.{dead_pid}-qwerty12.partial"
    live = tmp_path / f".report.{os.getpid()}-zzzzzzzz.partial.md"
    keep = [tmp_path / ".model.abc123xy.partial.tflite",  # no process id: not ours to judge
            tmp_path / ".hidden.json", tmp_path / "model.tflite"]
    stale_dir.mkdir()
    (stale_dir / "saved_model.pb").write_bytes(b"half")
    for path in (stale, live, *keep):
        path.write_bytes(b"x")
    with atomic_path(tmp_path / "conversion.json") as tmp:
        assert TEMPORARY.match(tmp.name) and f".{os.getpid()}-" in tmp.name
        tmp.write_text("{}")
    assert not stale.exists() and not stale_dir.exists()
    assert live.exists() and all(path.exists() for path in keep)
    sub = tmp_path / "checkpoints" / "backup"
    sub.mkdir(parents=True)
    nested = sub / f".latest.{dead_pid}-abcdefgh.partial.weights.h5"
    nested.write_bytes(b"x")
    assert remove_stale_partials(tmp_path) == []  # not recursive by default
    assert remove_stale_partials(tmp_path, recursive=True) == [nested]
    write_text_atomic(tmp_path / "labels.txt", "a\n")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted(
        [live.name, keep[0].name, keep[1].name])


def _interrupted_run(run: Path, *files: str) -> None:
    """A run folder as a killed `edgecv train` leaves it: config.json and ``files``."""
    from edgecv.training import TrainConfig

    run.mkdir(parents=True)
    config = TrainConfig(model="seed_cnn", img_size=8, epochs=2, out=str(run))
    (run / "config.json").write_text(json.dumps({"edgecv_version": "0.1.0",
                                                 "train": config.to_dict()}))
    for name in files:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("x")


def test_resume_without_a_backup_starts_the_run_again_instead_of_refusing(tmp_path):
    """Killed before its first backup (or after the last, before metrics.json): --resume
    keeps config.json, deletes the rest, and the run starts again with its saved options."""
    from edgecv.errors import UsageError
    from edgecv.training import TrainConfig
    from edgecv.training.trainer import prepare_run_dir

    run = tmp_path / "run"
    _interrupted_run(run, "split.json", "history.csv", "checkpoints/best.weights.h5",
                     "model.keras", "logs/train/events.out.tfevents.1.v2")
    config, run_dir = prepare_run_dir(TrainConfig(out=str(run)), overwrite=False, resume=True,
                                      resume_epochs=5)
    assert run_dir == run and config.model == "seed_cnn" and config.epochs == 5
    assert [p.name for p in run.iterdir()] == ["config.json"]

    (run / "metrics.json").write_text("{}")  # written last: the run is complete
    with pytest.raises(UsageError, match="already finished"):
        prepare_run_dir(TrainConfig(out=str(run)), overwrite=False, resume=True)

    backed_up = tmp_path / "backed-up"
    _interrupted_run(backed_up, "checkpoints/backup/latest.weights.h5", "history.csv")
    prepare_run_dir(TrainConfig(out=str(backed_up)), overwrite=False, resume=True)
    assert (backed_up / "checkpoints/backup/latest.weights.h5").is_file()  # continued, not reset
    assert (backed_up / "history.csv").is_file()


def test_a_dead_writers_temporary_does_not_make_a_run_folder_look_used(tmp_path):
    from edgecv.training import TrainConfig
    from edgecv.training.trainer import prepare_run_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / f".config.{int(dead.stdout)}-abcdefgh.partial.json").write_text('{"tra')
    _config, run_dir = prepare_run_dir(TrainConfig(model="seed_cnn", out=str(run)),
                                       overwrite=False, resume=False)
    assert run_dir == run and list(run.iterdir()) == []

    _interrupted_run(tmp_path / "old", "model.keras", "checkpoints/best.weights.h5")
    prepare_run_dir(TrainConfig(model="seed_cnn", out=str(tmp_path / "old")), overwrite=True,
                    resume=False)
    assert list((tmp_path / "old").iterdir()) == []
