"""`edgecv bench --on ssh://...` against a real OpenSSH server on 127.0.0.1 (tests/sshd.py) and a
second virtual environment as the device: the whole bench, the fault cases (refused key,
unreachable port, no Python, a full disk, a connection lost mid-run, a device process killed as a
reboot would, Ctrl-C), and that nothing keeps running on the device afterwards.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from edgecv import __version__
from sshd import make_venv

pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def device_python(tmp_path_factory):
    return make_venv(tmp_path_factory.mktemp("device") / "venv")


@pytest.fixture
def device_run(tiny_run, tmp_path):
    import shutil

    export = tmp_path / "export"
    shutil.copytree(tiny_run / "export", export)
    return export


# A row's timing stops at 100,000 calls whatever --min-time says (a tiny model on a fast CPU does
# that in seconds); this many --runs keeps the device benchmarking until the test stops it.
UNTIL_STOPPED = "1000000000"


def _spec(alias: str, python: Path, root: Path) -> str:
    return f"ssh://{alias}?python={python}&dir={root}"


def _bench_args(run, config, *specs, min_time="0", runs="5", json_path=None):
    return ["bench", run, *[a for s in specs for a in ("--on", s)], "--ssh-config", config,
            "--targets", "cpu", "--runs", runs, "--min-time", min_time, "--rounds", "2",
            "--warmup", "1", *(["--json", json_path] if json_path else [])]


def _agents(root: str, step: str = "") -> str:
    """The pids of the device-side agents (of ``step``: bench or receive) working in ``root``
    (not the local ssh client, whose command line names the same command)."""
    found = subprocess.run(["pgrep", "-f", f"edgecv.benchmarks.remote.agent {step}.*{root}"],
                           capture_output=True, text=True).stdout.split()
    return " ".join(pid for pid in found if _name(int(pid)) not in ("ssh", None))


def _name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def test_bench_over_ssh_merges_the_device_and_this_machine(sshd, device_python, device_run,
                                                           tmp_path):
    root = tmp_path / "device-cache"
    report_path = tmp_path / "bench.json"
    spec = _spec(sshd.host_alias, device_python, root)
    done = run_cli(*_bench_args(device_run, sshd.config_path, spec, "local",
                                json_path=report_path), "--html", tmp_path / "bench.html")
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    device = report["devices"][0]
    assert device["name"] == sshd.host_alias and device["status"] == "ok"
    # the device's own record: the venv's Python ran the bench
    assert device["machine"]["python"] and device["edgecv"] == __version__
    assert device["transfer"] == {"copied": 7, "copied_bytes": device["transfer"]["copied_bytes"],
                                  "reused": 0}
    rows = [r for r in report["rows"] if r["device"] == sshd.host_alias]
    assert [r["status"] for r in rows] == ["ok"] * 5
    local = {r["artifact"]: r["accuracy"] for r in report["rows"] if r["device"] == "local"}
    assert all(r["accuracy"] == local[r["artifact"]] for r in rows)
    assert [c["device"] for c in report["recommendations"]] == [sshd.host_alias, "local"]
    assert f"Device {sshd.host_alias}" in (tmp_path / "bench.html").read_text()
    assert os.listdir(root / "jobs") == [] and len(os.listdir(root / "files")) == 7

    again = run_cli(*_bench_args(device_run, sshd.config_path, spec, json_path=report_path))
    assert again.returncode == 0, again.stderr
    assert json.loads(report_path.read_text())["devices"][0]["transfer"]["copied"] == 0


def test_every_fault_is_one_row_and_the_other_devices_are_kept(sshd, device_python, device_run,
                                                               tmp_path):
    config = tmp_path / "ssh_config"
    refused = sshd.client_config("edgecv-refused", key=sshd.other_key_path)
    with socket_closed() as port:
        closed = sshd.client_config("edgecv-closed", port=port)
    config.write_text("\n".join(Path(p).read_text() for p in (sshd.config_path, refused, closed)))
    specs = {
        "edgecv-refused": _spec("edgecv-refused", device_python, tmp_path / "c1"),
        "edgecv-closed": _spec("edgecv-closed", device_python, tmp_path / "c2"),
        "no-python": f"ssh://{sshd.host_alias}?python=/no/such/python3&dir={tmp_path / 'c3'}",
    }
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                             capture_output=True).returncode == 0
    if mounted:  # a device whose disk cannot hold the files
        specs["full-disk"] = f"ssh://{sshd.user}@{sshd.host_alias}?python={device_python}&dir={small}"
    leftover = None
    try:
        done = run_cli(*_bench_args(device_run, config, *specs.values(), "local",
                                    json_path=tmp_path / "b.json"))
        if mounted:
            leftover = os.listdir(small / "files")
    finally:
        if mounted:
            subprocess.run(["umount", str(small)], check=False)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    reasons = {r["device"]: r["reason"] for r in report["rows"] if r["status"] == "failed"}
    assert "edgecv-refused refused the key" in reasons["edgecv-refused"]
    assert "ssh-copy-id" in reasons["edgecv-refused"]
    assert "edgecv-closed is unreachable (ssh: connect to host 127.0.0.1 port" in \
        reasons["edgecv-closed"]
    assert "no Python at '/no/such/python3'" in reasons[f"{sshd.host_alias}"]
    if mounted:
        full = reasons[f"{sshd.user}@{sshd.host_alias}"]
        assert "not enough space on" in full and "?dir=PATH" in full
        assert leftover == []  # nothing half-copied
    assert all("\n" not in reason for reason in reasons.values())
    assert [r["status"] for r in report["rows"] if r["device"] == "local"] == ["ok"] * 5


class socket_closed:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""

    def __enter__(self):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc):
        return False


@pytest.fixture
def long_bench():
    """Start `edgecv bench` with 60 s rows on one device; return (process, stderr so far) once the
    device benchmarks. The process is killed at the end if a failed test left it running."""
    started = []

    def start(run, config, spec, report_path):
        started.append(_start_long_bench(run, config, spec, report_path))
        return started[-1]

    yield start
    for process, _ in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _start_long_bench(run, config, spec, report_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "edgecv", *map(str, _bench_args(run, config, spec, min_time="60",
                                                               runs=UNTIL_STOPPED,
                                                               json_path=report_path))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seen = []
    for line in process.stderr:
        seen.append(line)
        if ": benchmarking" in line:
            break
    return process, seen


def _wait_until(condition, timeout=20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _session_of(pid: int) -> int:
    """The sshd process that serves the connection ``pid`` runs under."""
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        name, parent = stat[stat.index("(") + 1:stat.rindex(")")], int(stat.rsplit(")", 1)[1].split()[1])
        if name.startswith("sshd"):
            return pid
        pid = parent
    raise AssertionError("no sshd above the agent")


@pytest.mark.parametrize("fault", ["connection lost", "ctrl-c"])
def test_a_run_cut_short_leaves_nothing_running_on_the_device(sshd, device_python, device_run,
                                                              tmp_path, fault, long_bench):
    root = tmp_path / "cache"
    report_path = tmp_path / "b.json"
    process, seen = long_bench(device_run, sshd.config_path,
                                      _spec(sshd.host_alias, device_python, root), report_path)
    assert _wait_until(lambda: _agents(str(root), "bench")), "".join(seen)
    agent = int(_agents(str(root), "bench").split()[0])
    assert _wait_until(lambda: len(os.listdir(root / "jobs")) == 1)
    if fault == "connection lost":
        os.kill(_session_of(agent), signal.SIGKILL)  # the network drops the session
    else:
        process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    # the device notices the closed connection, removes the job and exits
    assert _wait_until(lambda: not _agents(str(root)))
    assert os.listdir(root / "jobs") == []
    row = json.loads(report_path.read_text())["rows"][0]
    if fault == "connection lost":
        assert process.returncode == 1, rest
        assert f"lost the connection to {sshd.host_alias} while benchmarking" in row["reason"]
    else:
        assert process.returncode == 130, rest
        assert row["reason"] == "interrupted before it finished"


def test_a_device_that_dies_mid_run_is_cleaned_up_on_the_next_run(sshd, device_python,
                                                                  device_run, tmp_path,
                                                                  long_bench):
    root = tmp_path / "cache"
    spec = _spec(sshd.host_alias, device_python, root)
    process, seen = long_bench(device_run, sshd.config_path, spec, tmp_path / "b.json")
    assert _wait_until(lambda: _agents(str(root), "bench")), "".join(seen)
    assert _wait_until(lambda: len(os.listdir(root / "jobs")) == 1)
    os.kill(int(_agents(str(root), "bench").split()[0]), signal.SIGKILL)  # as a power cut would: no cleanup
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 1, rest
    assert "lost the connection" in json.loads((tmp_path / "b.json").read_text())["rows"][0]["reason"]
    assert len(os.listdir(root / "jobs")) == 1  # the dead job is still there ...
    done = run_cli(*_bench_args(device_run, sshd.config_path, spec))
    assert done.returncode == 0, done.stderr
    assert os.listdir(root / "jobs") == []  # ... until the next run's probe removes it
