"""`edgecv bench --on`: device specs, the device-side agent and probe, and whole benches on a
second Python environment of this machine (`local:PYTHON`, the same steps as over ssh; the ssh
transport itself is tested against a real sshd in test_bench_ssh.py).
"""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from edgecv import __version__
from edgecv.benchmarks.remote import agent
from edgecv.benchmarks.remote.devices import parse_device, parse_devices
from edgecv.benchmarks.remote.ssh import describe_failure, remote_word, step_command
from edgecv.errors import UsageError

PROBE = Path(agent.__file__).with_name("probe.py")


# --- what --on accepts -------------------------------------------------------------------------

def test_ssh_spec_keeps_user_host_port_and_options():
    device = parse_device("ssh://pi@raspberrypi:2222?python=~/venv/bin/python&dir=/data/edgecv")
    assert (device.kind, device.name, device.user, device.host, device.port) == \
        ("ssh", "pi@raspberrypi:2222", "pi", "raspberrypi", 2222)
    assert (device.python, device.root) == ("~/venv/bin/python", "/data/edgecv")
    command = step_command(device, [device.python, "-m", "x", "it's"], ssh_config="/c/cfg")
    assert command[1:3] == ["-F", "/c/cfg"] and "BatchMode=yes" in command
    assert command[command.index("-p") + 1] == "2222" and command[command.index("-l") + 1] == "pi"
    # the device's shell expands ~ and sees one word per argument
    assert command[-1] == "\"$HOME\"/venv/bin/python -m x 'it'\"'\"'s'"
    assert parse_device("ssh://alias").user is None and parse_device("ssh://alias").port is None


@pytest.mark.parametrize("spec, message", [
    ("ftp://pi", "--on takes ssh://"),
    ("ssh://", "names no host"),
    ("ssh://pi:70000", "port must be a number"),
    ("ssh://pi?pyton=x", "unknown option 'pyton'"),
    ("ssh://pi?dir=", "dir= is empty"),
    ("ssh://pi:secret@host", "never takes a password"),
    ("local:/no/such/python", "is not an executable Python"),
])
def test_bad_device_specs_are_usage_errors_naming_the_value(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_device(spec)


def test_a_device_given_twice_is_refused():
    with pytest.raises(UsageError, match="twice"):
        parse_devices(["ssh://pi", "local", "ssh://pi"])


def test_remote_words_are_quoted_for_a_posix_shell():
    assert remote_word("~") == '"$HOME"' and remote_word("a b") == "'a b'"
    assert remote_word("~/x;rm -rf /") == "\"$HOME\"/'x;rm -rf /'"


@pytest.mark.parametrize("stderr, during, expected", [
    ("ssh: connect to host 10.0.0.9 port 22: Connection refused", "connect", "is unreachable"),
    ("ssh: connect to host 10.0.0.9 port 22: Connection timed out", "connect", "is unreachable"),
    ("pi@10.0.0.9: Permission denied (publickey).", "connect", "refused the key"),
    ("Host key verification failed.", "connect", "host key of"),
    ("ssh: Could not resolve hostname nopi: Name or service not known", "connect", "unknown host"),
    ("Connection to 10.0.0.9 closed by remote host.", "benchmarking", "lost the connection"),
    ("Timeout, server 10.0.0.9 not responding.", "benchmarking", "lost the connection"),
])
def test_ssh_failures_become_one_line_with_the_fix(stderr, during, expected):
    line = describe_failure(parse_device("ssh://pi@10.0.0.9"), 255, stderr + "\n", during=during)
    assert expected in line and "\n" not in line


def test_a_missing_python_is_named():
    line = describe_failure(parse_device("ssh://pi?python=/opt/py"), 127,
                            "sh: 1: /opt/py: not found", during="connect")
    assert "no Python at '/opt/py'" in line and "?python=PATH" in line


# --- the device side: receive and probe --------------------------------------------------------

def _stream(*files: bytes, corrupt: int | None = None, cut: bool = False) -> io.BytesIO:
    data = b""
    for index, content in enumerate(files):
        sha = hashlib.sha256(content).hexdigest()
        body = content if index != corrupt else bytes([content[0] ^ 1]) + content[1:]
        data += f"{sha} {len(content)}\n".encode() + body
    return io.BytesIO(data if cut else data + b"end\n")


def _receive(root: Path, stream, capsys) -> list[dict]:
    code = _run_agent(["receive", str(root), "job1"], stream)
    messages = [json.loads(line[len(agent.PREFIX):]) for line in capsys.readouterr().out.splitlines()
                if line.startswith(agent.PREFIX)]
    return code, messages


def _run_agent(argv, stream):
    class Stdin:
        buffer = stream

    saved = sys.stdin
    sys.stdin = Stdin()
    try:
        return agent.main(argv)
    finally:
        sys.stdin = saved


def test_received_files_are_stored_by_sha256(tmp_path, capsys):
    one, two = os.urandom(3000), os.urandom(5)
    code, messages = _receive(tmp_path, _stream(one, two), capsys)
    assert code == 0 and len(messages) == 2
    for content in (one, two):
        assert (tmp_path / "files" / hashlib.sha256(content).hexdigest()).read_bytes() == content
    assert sorted(os.listdir(tmp_path / "files")) == sorted(m["stored"] for m in messages)
    assert os.listdir(tmp_path / "jobs") == []  # the job folder is gone, the cache stays


@pytest.mark.parametrize("damage, expected", [("corrupt", "arrived corrupted"),
                                              ("cut", "ended early")])
def test_a_damaged_or_cut_stream_leaves_no_file(tmp_path, capsys, damage, expected):
    good, bad = os.urandom(100), os.urandom(2000)
    stream = _stream(good, bad, corrupt=1) if damage == "corrupt" else \
        io.BytesIO(_stream(good, bad).getvalue()[:-900])
    code, messages = _receive(tmp_path, stream, capsys)
    assert code == 3 and expected in messages[-1]["error"]
    # the complete first file is kept (verified); nothing partial or wrong is
    assert os.listdir(tmp_path / "files") == [hashlib.sha256(good).hexdigest()]


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, capsys):
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); the size check before "
                    "copying is tested in test_bench_ssh.py")
    try:
        code, messages = _receive(mount, _stream(os.urandom(200_000)), capsys)
        assert code == 3
        assert "the device cannot store a 0.2 MB file" in messages[-1]["error"]
        assert "?dir=PATH" in messages[-1]["error"]
        assert os.listdir(mount / "files") == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _owner(job: Path, pid: int, boot_id: str | None) -> None:
    job.mkdir(parents=True)
    (job / "owner.json").write_text(json.dumps({"pid": pid, "boot_id": boot_id}))


def test_probe_reports_the_device_and_removes_jobs_whose_process_is_gone(tmp_path):
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _owner(tmp_path / "jobs" / "alive", os.getpid(), boot)
    _owner(tmp_path / "jobs" / "killed", dead.pid, boot)
    _owner(tmp_path / "jobs" / "rebooted", os.getpid(), "another-boot")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / ("a" * 64)).write_bytes(b"x")
    (tmp_path / "files" / ("b" * 64 + ".part.killed")).write_bytes(b"half")
    # sent as a script on stdin, as over ssh
    done = subprocess.run([sys.executable, "-", str(tmp_path)], input=PROBE.read_bytes(),
                          capture_output=True, timeout=120)
    facts = json.loads(done.stdout.decode().splitlines()[-1])
    assert facts["edgecv"] == __version__ and facts["boot_id"] == boot
    assert sorted(facts["stale_removed"]) == ["killed", "rebooted"]
    assert os.listdir(tmp_path / "jobs") == ["alive"]
    assert facts["cached"] == ["a" * 64] and facts["free_bytes"] > 0
    assert facts["targets"]["cpu"] is None and facts["machine"]["cpu"]


def test_probe_runs_without_edgecv(tmp_path):
    """Before edgecv is installed on a device the probe still answers (stdlib only)."""
    done = subprocess.run([sys.executable, "-I", "-S", "-", str(tmp_path)],
                          input=PROBE.read_bytes(), capture_output=True, timeout=60,
                          cwd=tmp_path)
    facts = json.loads(done.stdout.decode().splitlines()[-1])
    assert facts["edgecv"] is None and "ModuleNotFoundError" in facts["edgecv_error"]


# --- whole benches on a second environment (local:PYTHON) --------------------------------------

def _wrapper(folder: Path, name: str, body: str) -> Path:
    """A 'python' for a device: a shell script that sets something up and runs this Python."""
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\nexec {sys.executable} \"$@\"\n")
    path.chmod(0o755)
    return path


def _bench(run, *devices, extra=(), timeout=600):
    return run_cli("bench", run, *[a for d in devices for a in ("--on", d)], "--targets", "cpu",
                   "--runs", "5", "--min-time", "0", "--rounds", "2", "--warmup", "1", *extra,
                   timeout=timeout)


@pytest.fixture
def device_run(tiny_run, tmp_path):
    """A copy of the tiny run's export folder (tests change its files)."""
    import shutil

    export = tmp_path / "export"
    shutil.copytree(tiny_run / "export", export)
    return export


@pytest.mark.tf
@pytest.mark.slow
def test_bench_on_a_second_environment_merges_rows_per_device(device_run, tmp_path):
    root = tmp_path / "device-cache"
    python = f"local:{sys.executable}?dir={root}"
    report_path = tmp_path / "bench.json"
    done = _bench(device_run, python, "local", extra=("--json", report_path, "--md",
                                                     tmp_path / "bench.md"))
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    name = f"local:{sys.executable}"
    assert [d["name"] for d in report["devices"]] == [name, "local"]
    rows = {device: [r for r in report["rows"] if r["device"] == device]
            for device in (name, "local")}
    formats = ["tflite_fp32", "tflite_fp16", "tflite_int8", "onnx", "onnx_int8"]
    assert [r["format"] for r in rows[name]] == formats
    assert all(r["status"] == "ok" and r["p50_ms"] > 0 for r in rows[name])
    # the device measured the same test set: same accuracy per artifact as this machine
    local = {r["artifact"]: r["accuracy"] for r in rows["local"]}
    assert all(r["accuracy"] == local[r["artifact"]] for r in rows[name])
    # rows point at this machine's files, not the device's temporary copies
    assert all(Path(r["path"]).parent == device_run for r in rows[name])
    assert {c["device"] for c in report["recommendations"]} == {name, "local"}
    assert all(c["max_drop_from"].endswith("conversion.json") for c in report["recommendations"])
    device = report["devices"][0]
    assert device["status"] == "ok" and device["machine"]["cpu"] and device["edgecv"] == __version__
    assert device["transfer"]["copied"] == 7  # 5 artifacts + conversion.json + testset.npz
    assert f"on {name}: deploy" in done.stdout and "| device |" in (tmp_path / "bench.md").read_text()
    assert sorted(os.listdir(root / "jobs")) == []  # nothing left but the cache
    assert len(os.listdir(root / "files")) == 7

    # a second run copies nothing; a changed test set is the only file copied again
    again = _bench(device_run, python, extra=("--json", report_path))
    assert json.loads(report_path.read_text())["devices"][0]["transfer"]["copied"] == 0
    assert "copying 0 file(s)" in again.stderr
    with np.load(device_run / "testset.npz") as data:
        subset = {key: data[key][:50] if data[key].ndim and len(data[key]) == len(data["y"])
                  else data[key] for key in data.files}
    np.savez(device_run / "testset.npz", **subset)
    third = _bench(device_run, python, extra=("--json", report_path))
    report = json.loads(report_path.read_text())
    assert third.returncode == 0, third.stderr
    assert report["devices"][0]["transfer"]["copied"] == 1
    assert {r["test_images"] for r in report["rows"]} == {50}


@pytest.mark.tf
@pytest.mark.slow
def test_a_device_without_edgecv_or_with_another_version_is_one_row(device_run, tmp_path):
    fake = tmp_path / "old" / "edgecv"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('__version__ = "0.0.1"\n')
    old = _wrapper(tmp_path, "old-python", f"export PYTHONPATH={fake.parent}")
    bare = _wrapper(tmp_path, "bare-python", "")
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")  # no site-packages
    done = _bench(device_run, f"local:{old}?dir={tmp_path / 'c1'}",
                  f"local:{bare}?dir={tmp_path / 'c2'}", "local",
                  extra=("--json", tmp_path / "b.json"))
    assert done.returncode == 1  # failed rows: exit 1, after the report
    report = json.loads((tmp_path / "b.json").read_text())
    failed = {r["device"]: r["reason"] for r in report["rows"] if r["status"] == "failed"}
    assert f"has edgecv 0.0.1, this machine {__version__}" in failed[f"local:{old}"]
    assert f"pip install 'edgecv=={__version__}'" in failed[f"local:{old}"]
    assert "edgecv is not installed" in failed[f"local:{bare}"]
    assert all("\n" not in reason for reason in failed.values())
    assert [r["status"] for r in report["rows"] if r["device"] == "local"] == ["ok"] * 5
    assert f"local:{old}: failed: " in done.stderr and "Traceback" not in done.stderr


@pytest.mark.tf
@pytest.mark.slow
def test_a_slow_device_does_not_hold_back_a_fast_one(device_run, tmp_path):
    slow = _wrapper(tmp_path, "slow-python", "sleep 4")
    done = _bench(device_run, f"local:{slow}?dir={tmp_path / 'c1'}",
                  f"local:{sys.executable}?dir={tmp_path / 'c2'}")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    fast_done = lines.index(f"local:{sys.executable}: done in " +
                            next(l for l in lines if l.startswith(f"local:{sys.executable}: done"))
                            .split(" done in ")[1])
    # the fast device had its answer before the slow one even finished its probe
    slow_copy = next(i for i, l in enumerate(lines) if l.startswith(f"local:{slow}: copying"))
    assert fast_done < slow_copy


@pytest.mark.tf
@pytest.mark.slow
def test_ctrl_c_stops_the_device_removes_its_job_and_keeps_the_report(device_run, tmp_path):
    root = tmp_path / "cache"
    report_path = tmp_path / "b.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "edgecv", "bench", str(device_run), "--on",
         f"local:{sys.executable}?dir={root}", "--targets", "cpu", "--min-time", "60",
         "--json", str(report_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seen = []
    for line in process.stderr:  # wait until the device is benchmarking
        seen.append(line)
        if ": benchmarking" in line:
            break
    time.sleep(3)
    jobs = os.listdir(root / "jobs")
    assert len(jobs) == 1
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130, "".join(seen) + rest
    assert "interrupted" in rest.splitlines()[-1]
    report = json.loads(report_path.read_text())
    assert report["rows"][0]["reason"].endswith("interrupted before it finished")
    assert os.listdir(root / "jobs") == []
    agents = subprocess.run(["pgrep", "-f", jobs[0]], capture_output=True, text=True)
    assert agents.stdout.strip() == ""  # nothing of the job still runs
