"""training/strategy.py: ``--strategy multiworker`` for real (two worker processes on 127.0.0.1),
its failure modes, and honest TPU detection (runtime/tpu.py: a device node alone is not a TPU).

The two-worker tests start real ``python -m edgecv train`` processes with TF_CONFIG; TensorFlow
ignores SIGTERM (its preemption notifier catches it), so every process is SIGKILLed in a finally.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from edgecv.benchmarks.suite import BenchSettings, run_benchmark

from edgecv.errors import StrategyUnavailable
from edgecv.runtime import targets, tpu
from edgecv.training import strategy

WORKER_TIMEOUT_S = 240  # one worker: TensorFlow start-up, 2 epochs of lenet5 on digits, saving


def free_ports(count: int) -> list[int]:
    """Ports the OS says are free right now (bound to port 0, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def start_worker(args: list[str], env: dict, tmp: Path, name: str) -> subprocess.Popen:
    with open(tmp / f"{name}.log", "w") as out:  # a file, not a pipe: a full pipe blocks TF
        return subprocess.Popen([sys.executable, "-m", "edgecv", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)


def worker_env(tmp_dir: Path, config: str, **extra: str) -> dict:
    env = {**os.environ, "TF_CONFIG": config, "TMPDIR": str(tmp_dir), **extra}
    env.pop("EDGECV_CPU_DEVICES", None)
    return env


def finish(processes: list[subprocess.Popen], timeout: float) -> list[int]:
    try:
        return [p.wait(timeout=timeout) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.slow
@pytest.mark.tf
def test_two_workers_train_one_run_written_by_the_chief(tmp_path):
    ports = free_ports(2)
    run = tmp_path / "run"
    scratch = [tmp_path / "tmp0", tmp_path / "tmp1"]
    for d in scratch:
        d.mkdir()
    args = ["train", "--strategy", "multiworker", "--model", "lenet5", "--data", "digits",
            "--epochs", "2", "--batch-size", "32", "--img-size", "16", "--no-tensorboard", "--out", str(run)]
    workers = [start_worker(args, worker_env(scratch[i], tf_config(ports, i)), tmp_path, f"w{i}")
               for i in range(2)]
    codes = finish(workers, WORKER_TIMEOUT_S)
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    assert "multi-worker mirrored over 2 worker(s)" in logs[0]
    assert "run saved to" in logs[0] and "worker 1 done" in logs[1]

    # Exactly one complete run: the chief's files, no backup left, nothing from worker 1.
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints", "config.json", "confusion_matrix.png", "history.csv", "labels.txt",
        "metrics.json", "model.keras", "split.json", "training_curves.png"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["best.weights.h5"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2
    assert metrics["test_accuracy"] > 0.3  # it learned (10 classes: chance is 0.1)
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["strategy"] == "multiworker"
    assert config["train"]["deterministic"] is True  # op determinism works with collectives
    # Both workers saw the same cross-worker metrics, so their epoch lines are identical.
    epochs = [re.findall(r"^epoch.*?(loss \S+ +acc \S+ +val_loss \S+ +val_acc \S+)", log, re.MULTILINE)
              for log in logs]
    assert len(epochs[0]) == 2 and epochs[0] == epochs[1]
    # The non-chief wrote into its own temporary directory and removed it.
    assert list(scratch[1].iterdir()) == []


@pytest.mark.slow
@pytest.mark.tf
def test_worker_whose_peer_never_comes_up_gives_up_with_one_line(tmp_path):
    ports = free_ports(2)
    run = tmp_path / "run"
    args = ["train", "--strategy", "multiworker", "--model", "lenet5", "--epochs", "1",
            "--out", str(run)]
    env = worker_env(tmp_path, tf_config(ports, 0), EDGECV_MULTIWORKER_TIMEOUT="3")
    lone = start_worker(args, env, tmp_path, "lone")
    assert finish([lone], WORKER_TIMEOUT_S) == [1]
    log = tmp_path / "lone.log"
    for _ in range(50):  # the line comes from a reporter process that may outlive the worker
        errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
        if errors:
            break
        time.sleep(0.1)
    assert len(errors) == 1, log.read_text()
    assert f"127.0.0.1:{ports[1]}" in errors[0] and "waited 3 s" in errors[0]
    assert "Traceback" not in (tmp_path / "lone.log").read_text()
    assert not (run / "model.keras").exists()


@pytest.mark.parametrize("raw, fragment", [
    ("", "needs the TF_CONFIG environment variable"),
    ("{not json", "not valid multi-worker JSON"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "task worker/2 is not in its cluster"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}',
     "lists an address twice"),
])
def test_bad_tf_config_is_one_clear_error(raw, fragment):
    with pytest.raises(StrategyUnavailable, match=fragment):
        strategy.multiworker_role(raw)


def test_chief_is_the_chief_task_else_worker_zero():
    workers = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": %d}}'
    assert strategy.multiworker_role(workers % 0).is_chief
    assert not strategy.multiworker_role(workers % 1).is_chief
    with_chief = ('{"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, '
                  '"task": {"type": "%s", "index": 0}}')
    chief = strategy.multiworker_role(with_chief % "chief")
    assert chief.is_chief and chief.num_workers == 2 and chief.peers == ["a:1"]
    assert not strategy.multiworker_role(with_chief % "worker").is_chief


def test_bad_timeout_value_is_refused(monkeypatch):
    monkeypatch.setenv(strategy.MULTIWORKER_TIMEOUT_ENV, "soon")
    with pytest.raises(StrategyUnavailable, match="received 'soon'"):
        strategy.multiworker_timeout()


@pytest.fixture
def fake_tpu_evidence(monkeypatch):
    """No TPU variables; /dev/accel0 and /dev/vfio/0 "exist"; libtpu as the test sets it."""
    for variable in ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE", "TPU_LIBRARY_PATH"):
        monkeypatch.delenv(variable, raising=False)
    nodes = {"/dev/accel*": ["/dev/accel0"], "/dev/vfio/[0-9]*": ["/dev/vfio/0"]}
    monkeypatch.setattr("edgecv.runtime.tpu.glob.glob", lambda pattern: nodes.get(pattern, []))
    targets.probe.cache_clear()
    yield monkeypatch
    targets.probe.cache_clear()


def test_device_nodes_without_libtpu_are_not_a_tpu(fake_tpu_evidence, tmp_path):
    real = importlib.util.find_spec
    fake_tpu_evidence.setattr("importlib.util.find_spec",
                              lambda name, *a: None if name == "libtpu" else real(name, *a))
    assert tpu.tpu_address() is None
    reason = targets.probe("tpu", "keras")
    assert "/dev/accel0" in reason and "libtpu is not installed" in reason
    # bench: one "unavailable" row with that reason, not a failed row and exit 1.
    report = run_benchmark([tmp_path / "model.keras"], BenchSettings(targets=["tpu"]))
    statuses = {(row["target"], row["status"]) for row in report["rows"]}
    assert statuses == {("tpu", "unavailable")}
    assert "libtpu is not installed" in report["rows"][0]["reason"]


def test_device_nodes_with_libtpu_are_a_local_tpu(fake_tpu_evidence, tmp_path):
    library = tmp_path / "libtpu.so"
    library.write_bytes(b"\x7fELF")
    fake_tpu_evidence.setenv("TPU_LIBRARY_PATH", str(library))
    assert tpu.tpu_address() == "local"
    assert tpu.tpu_missing_reason() is None


def test_tpu_name_is_used_as_given(fake_tpu_evidence):
    fake_tpu_evidence.setenv("TPU_NAME", "my-tpu")
    assert tpu.tpu_address() == "my-tpu"
