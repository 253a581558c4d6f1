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
from edgecv.benchmarks.remote import agent, answers, fleet, probe
from edgecv.benchmarks.remote.devices import Device, parse_device, parse_devices
from edgecv.benchmarks.remote.ssh import describe_failure, remote_word, step_command
from edgecv.errors import UsageError

PROBE = Path(agent.__file__).with_name("probe.py")
FAKE_DEVICE = Path(__file__).with_name("fake_device.py")


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
    ("ftp://pi", "`on` takes ssh://"),
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


@pytest.mark.parametrize("spec, value", [
    ("ssh://-oProxyCommand=touch%20/tmp/edgecv-pwned", "host '-oProxyCommand=touch%20'"),
    ("ssh://-oProxyCommand=sh", "host '-oProxyCommand=sh'"),
    ("ssh://-l@raspberrypi", "user '-l'"),
    ("ssh://pi@-F", "host '-F'"),
    ("ssh://pi;reboot@host", "user 'pi;reboot'"),
    ("ssh://pi@ho$t", "host 'ho$t'"),
    ("ssh://pi@host name", "host 'host name'"),
    ("ssh://a@b@host", "host 'b@host'"),
    ("ssh://pi:0", "received '0'"),
    ("ssh://pi:+22", "received '+22'"),
    ("ssh://pi:22a", "received '22a'"),
    ("ssh://pi:", "received ''"),
    ("ssh://pi\nProxyCommand=x", "control character"),
    ("ssh://pi?python=%1b[2J", "python= holds a control character"),
    ("ssh://pi?cache_mb=-5", "cache_mb= must be a number above 0"),
])
def test_hostile_device_specs_are_refused_before_ssh_runs(spec, value):
    """A host or user that ssh would read as an option (-oProxyCommand=... runs a command on
    older OpenSSH), a character a shell or ssh treats specially, a port that is not a number."""
    with pytest.raises(UsageError) as error:
        parse_device(spec)
    assert value in str(error.value) and "\n" not in str(error.value)
    assert error.value.exit_code == 2


def test_a_hostile_host_is_exit_2_and_runs_nothing(tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(b"x")
    pwned = tmp_path / "pwned"
    done = run_cli("bench", model, "--on", f"ssh://-oProxyCommand=touch%20{pwned.name}",
                   "--targets", "cpu", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "the host '-oProxyCommand=touch%20" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not pwned.exists()


def test_ssh_gets_the_destination_after_double_dash(tmp_path):
    """Even a host that reached step_command unchecked is a destination, not an option: before
    the '--', ssh took it as -oProxyCommand and ran the command (the remote command, a valid
    host name here, became the destination)."""
    pwned = tmp_path / "pwned"
    hostile = Device(spec="-", name="-", kind="ssh", host=f"-oProxyCommand=touch {pwned}")
    command = step_command(hostile, ["localhost"], ssh_config="/dev/null")
    subprocess.run(command, capture_output=True, timeout=30)
    assert not pwned.exists()
    assert command[-3:-1] == ["--", hostile.host]


def test_openssh_runs_the_command_line_with_double_dash(sshd):
    device = parse_device(f"ssh://{sshd.host_alias}")
    command = step_command(device, [sys.executable, "-c", "print('-oX ok')"],
                           ssh_config=str(sshd.config_path))
    assert command.index("--") == command.index(device.host) - 1
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "-oX ok", done.stderr


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
    alive, killed, rebooted, unowned = "a1" * 8, "b2" * 8, "c3" * 8, "d4" * 8
    _owner(tmp_path / "jobs" / alive, os.getpid(), boot)
    _owner(tmp_path / "jobs" / killed, dead.pid, boot)
    _owner(tmp_path / "jobs" / rebooted, os.getpid(), "another-boot")
    (tmp_path / "jobs" / unowned / "run").mkdir(parents=True)  # killed before owner.json
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / ("a" * 64)).write_bytes(b"x")
    (tmp_path / "files" / ("b" * 64 + ".part." + killed)).write_bytes(b"half")
    # sent as a script on stdin, as over ssh
    done = subprocess.run([sys.executable, "-", str(tmp_path)], input=PROBE.read_bytes(),
                          capture_output=True, timeout=120)
    facts = json.loads(done.stdout.decode().splitlines()[-1])
    assert facts["edgecv"] == __version__ and facts["boot_id"] == boot
    assert sorted(facts["stale_removed"]) == sorted([killed, rebooted, unowned])
    assert os.listdir(tmp_path / "jobs") == [alive]
    assert facts["cached"] == ["a" * 64] and facts["free_bytes"] > 0
    assert facts["targets"]["cpu"] is None and facts["machine"]["cpu"]


def test_probe_keeps_what_edgecv_did_not_make_in_a_jobs_folder(tmp_path):
    """?dir= may name a folder that has a jobs/ of its own: only edgecv's job folders go."""
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    (tmp_path / "jobs" / "2024-thesis").mkdir(parents=True)
    (tmp_path / "jobs" / "2024-thesis" / "notes.txt").write_text("mine")
    (tmp_path / "jobs" / ("e5" * 8)).mkdir()
    (tmp_path / "jobs" / ("e5" * 8) / "results.csv").write_text("mine too")  # id-shaped, no owner
    _owner(tmp_path / "jobs" / "not-a-job-id", 999999999, "another-boot")
    done = subprocess.run([sys.executable, "-", str(tmp_path)], input=PROBE.read_bytes(),
                          capture_output=True, timeout=120)
    facts = json.loads(done.stdout.decode().splitlines()[-1])
    assert facts["stale_removed"] == []
    assert sorted(os.listdir(tmp_path / "jobs")) == sorted(["2024-thesis", "e5" * 8, "not-a-job-id"])
    assert (tmp_path / "jobs" / "2024-thesis" / "notes.txt").read_text() == "mine"


def test_probe_runs_without_edgecv(tmp_path):
    """Before edgecv is installed on a device the probe still answers (stdlib only)."""
    done = subprocess.run([sys.executable, "-I", "-S", "-", str(tmp_path)],
                          input=PROBE.read_bytes(), capture_output=True, timeout=60,
                          cwd=tmp_path)
    facts = json.loads(done.stdout.decode().splitlines()[-1])
    assert facts["edgecv"] is None and "ModuleNotFoundError" in facts["edgecv_error"]


# --- what a device answers is checked (fake devices: tests/fake_device.py) ---------------------

LIES = {  # what the device says -> what its one failed row says
    "missing-key": "lacks the key 'p50_ms'",
    "unknown-status": "`status` must be one of ok, unavailable, n/a, failed. Received: status='great'",
    "passwd-path": "at '/etc/passwd', not a file this machine sent",
    "extra-key": "has an unknown key 'run_this'",
    "wrong-type": "threads must be an integer; received '1; reboot'",
    "terminal-escape": "holds a control character",
    "sha256": "the SHA-256 000000000000..., but the file sent has",
    "emulated-mark": "row 0 says emulated=false, but the device's machine record says it runs "
                     "under emulation",
    "predictions": "`predictions` must be None or one class index (an int >= 0) per test image (10)",
    "not-json": "a message that is not JSON",
    "deep": "a message that is not JSON (RecursionError",
    "flood": "a line longer than 33,554,432 bytes",
    "facts": "names a cached file '../../etc/passwd' that is not a SHA-256",
}
DEVICE_SETTINGS = {"targets": "cpu", "threads": "1", "batch": "1", "runs": 5, "min_time_s": 0,
                   "warmup": 1, "rounds": 2, "max_drop": 1.0, "checksum": "warn"}


def _fake_device(folder: Path, lie: str) -> str:
    """A local:PYTHON device whose bench step (or probe) answers ``lie``."""
    python = _wrapper(folder, f"python-{lie}", f"export EDGECV_FAKE={lie}")
    python.write_text(f"#!/bin/sh\nexport EDGECV_FAKE={lie}\n"
                      f"exec {sys.executable} {FAKE_DEVICE} \"$@\"\n")
    return f"local:{python}?dir={folder / ('cache-' + lie)}"


@pytest.fixture
def fake_export(tmp_path):
    """Two artifacts (bytes only: the fake devices do not run them) in an export folder."""
    export = tmp_path / "export"
    export.mkdir()
    for name in ("model_fp32.tflite", "model_int8.tflite"):
        (export / name).write_bytes(os.urandom(2000))
    return export


def test_every_lie_is_that_devices_failed_row_and_the_honest_rows_are_kept(fake_export, tmp_path):
    from edgecv.benchmarks.report.schema import validate_report
    from edgecv.benchmarks.remote import bench_on_devices, parse_devices

    specs = [_fake_device(tmp_path, "honest"), *(_fake_device(tmp_path, lie) for lie in LIES)]
    devices = parse_devices(specs)
    artifacts = sorted(fake_export.glob("*.tflite"))
    started = time.monotonic()
    report, interrupted = bench_on_devices(devices, artifacts, None, lambda _: {}, DEVICE_SETTINGS,
                                           {}, log=lambda _: None)
    assert not interrupted and time.monotonic() - started < 120
    validate_report(report)
    rows = {device.name: [r for r in report["rows"] if r["device"] == device.name]
            for device in devices}
    honest, *liars = devices
    # the honest device's rows, with this machine's paths, and its recommendation
    assert [(r["status"], r["path"]) for r in rows[honest.name]] == \
        [("ok", str(path)) for path in artifacts]
    assert [c["device"] for c in report["recommendations"]] == [honest.name]
    assert report["recommendations"][0]["path"] == str(artifacts[0])
    for device, (lie, expected) in zip(liars, LIES.items()):
        assert len(rows[device.name]) == 1, lie
        row = rows[device.name][0]
        assert row["status"] == "failed" and expected in row["reason"], (lie, row["reason"])
        assert row["reason"].startswith(f"refused the answer of {device.name}: "), row["reason"]
        assert row["reason"].isprintable() and "/etc/passwd" not in row["path"], lie
    assert "/etc/passwd" not in json.dumps([r["path"] for r in report["rows"]])
    assert not any(r["status"] == "great" or "\x1b" in json.dumps(r, ensure_ascii=False)
                   for r in report["rows"])


def test_the_cli_keeps_going_and_predict_never_opens_a_path_a_device_chose(fake_export, tmp_path):
    """The whole command: one failed row per lying device, the report written, no traceback;
    the bench.json it wrote sends predict to this machine's file."""
    from edgecv.deploy import resolve

    report_path = fake_export / "bench.json"
    specs = [_fake_device(tmp_path, lie) for lie in ("passwd-path", "unknown-status",
                                                     "missing-key", "honest")]
    done = run_cli("bench", fake_export, *[a for s in specs for a in ("--on", s)], "--targets",
                   "cpu", "--json", report_path, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "error: 3 row(s) failed" in done.stderr
    report = json.loads(report_path.read_text())
    assert [r["status"] for r in report["rows"]] == ["failed"] * 3 + ["ok", "ok"]
    assert "/etc/passwd" not in report_path.read_text().replace("'/etc/passwd', not a file", "")
    deployment = resolve(fake_export, "cpu")
    assert deployment.model == fake_export / "model_fp32.tflite"
    # with the honest device gone, the liar's answer recommends nothing: no path is taken from it
    done = run_cli("bench", fake_export, "--on", specs[0], "--targets", "cpu", "--json",
                   report_path, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    with pytest.raises(UsageError, match="recommends nothing"):
        resolve(fake_export, "cpu")
    predicted = run_cli("predict", fake_export, fake_export / "model_fp32.tflite")
    assert predicted.returncode == 2 and "/etc/passwd" not in predicted.stderr + predicted.stdout


def test_the_real_probe_and_machine_record_pass_the_checks(tmp_path):
    """The schemas here are those of what an honest device sends (they drift with it)."""
    from edgecv.benchmarks.machine import machine_info

    done = subprocess.run([sys.executable, "-", str(tmp_path), "30", "1000"],
                          input=PROBE.read_bytes(), capture_output=True, timeout=120)
    facts = answers.check_facts(json.loads(done.stdout.decode().splitlines()[-1]), __version__)
    assert facts["edgecv"] == __version__ and facts["evicted"] == []
    answers.check_value(machine_info(), answers.MACHINE, "machine")


def test_a_checked_report_names_this_machines_files_and_keeps_reasons_on_one_line(tmp_path):
    from fake_device import honest_report

    sent = [answers.Sent(f"0/{name}", tmp_path / name, hashlib.sha256(name.encode()).hexdigest())
            for name in ("model_fp32.tflite", "model_int8.tflite")]
    manifest = {"artifacts": [item.relative for item in sent], "settings": {},
                "files": {item.relative: item.sha256 for item in sent}}
    report = honest_report(str(tmp_path / "device"), "job1", manifest)
    report["rows"][1].update(status="failed", reason="ORT failed:\n\tbad node\r\n")
    report["warnings"] = ["governor\nis ondemand"]
    checked = answers.check_report(report, sent, "job1", ["cpu"])
    assert [row["path"] for row in checked["rows"]] == [str(item.local) for item in sent]
    assert checked["rows"][1]["reason"] == "ORT failed: bad node"
    assert checked["warnings"] == ["governor is ondemand"] and set(checked) == \
        {"machine", "warnings", "rows"}  # the device's recommendations are not kept
    with pytest.raises(answers.BadAnswer, match="not a file this machine sent"):
        answers.check_report(honest_report(str(tmp_path / "device"), "job1", manifest), sent,
                             "another-job", ["cpu"])
    with pytest.raises(answers.BadAnswer, match="target 'cpu', which was not asked for"):
        answers.check_report(honest_report(str(tmp_path / "device"), "job1", manifest), sent,
                             "job1", ["gpu"])


def test_an_mcu_row_must_carry_its_host_time_and_no_latency(tmp_path):
    """A device's mcu rows: their time is its reference kernels' (host_reference_kernels_*),
    never a latency a recommendation could take."""
    from fake_device import honest_report

    sent = [answers.Sent("0/model_int8.tflite", tmp_path / "model_int8.tflite", "a" * 64)]
    manifest = {"artifacts": [sent[0].relative], "settings": {},
                "files": {sent[0].relative: sent[0].sha256}}

    def mcu_report(**fields):
        report = honest_report(str(tmp_path / "device"), "job1", manifest)
        report["rows"][0].update(target="mcu", runtime="tflm", threads=None, **fields)
        return report

    host = {"host_reference_kernels_p50_ms": 3.0, "host_reference_kernels_p50_ci_ms": [2.9, 3.1]}
    no_latency = {key: None for key in ("p50_ms", "p50_ci_ms", "mean_ms")}
    checked = answers.check_report(mcu_report(**host, **no_latency), sent, "job1", ["mcu"])
    assert checked["rows"][0]["host_reference_kernels_p50_ms"] == 3.0
    with pytest.raises(answers.BadAnswer, match="reference kernels', yet it carries a latency"):
        answers.check_report(mcu_report(**host), sent, "job1", ["mcu"])
    with pytest.raises(answers.BadAnswer, match="without a host_reference_kernels_p50 above 0"):
        answers.check_report(mcu_report(**no_latency), sent, "job1", ["mcu"])


@pytest.mark.parametrize("line, expected", [
    ('EDGECV {"report": {}, "error": "x"}', "not one of stored, progress, report, error"),
    ('EDGECV ["report"]', "not one of"),
    ('EDGECV {"progress": {"artifact": "m", "target": "cpu", "threads": 1}}', "lacks the key 'status'"),
    ('EDGECV {"progress": {"artifact": "m", "target": "cpu", "threads": 1, "status": "pwn"}}',
     "with the status 'pwn'"),
    ('EDGECV {"error": "\\u001b[31mred"}', "control character"),
    ('EDGECV {"error": "\\u202eevil"}', "control character"),
    ('EDGECV {"error": ' + "9" * 5000 + "}", "not JSON"),
    ('EDGECV {"stored": "../../x"}', "not a SHA-256"),
])
def test_bad_messages_are_refused_with_one_line(line, expected):
    with pytest.raises(answers.BadAnswer) as error:
        answers.parse_message(line, ("stored", "progress", "report", "error"))
    assert expected in str(error.value) and str(error.value).isprintable()


def test_library_chatter_is_not_a_message():
    assert answers.parse_message("INFO: Created TensorFlow Lite XNNPACK delegate", ("report",)) \
        is None


def test_reading_stops_at_the_cap():
    stream = io.BytesIO(b"short\n" + b"x" * 5000)
    assert answers.read_line(stream, 100) == b"short\n"
    with pytest.raises(answers.BadAnswer, match="longer than"):
        answers.read_line(stream, 100)
    assert stream.tell() == 6 + 101  # no more than the cap was read
    assert answers.read_tail(io.BytesIO(b"a" * 100_000 + b"last line"), 20) == \
        b"a" * 11 + b"last line"


# --- the device's cache: private, evicted ------------------------------------------------------

def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_cache_is_private_whatever_the_umask(tmp_path, capsys):
    root = tmp_path / "new" / "cache"
    old = os.umask(0)
    try:
        done = subprocess.run([sys.executable, "-", str(root)], input=PROBE.read_bytes(),
                              capture_output=True, timeout=120)
        code, messages = _receive(root, _stream(os.urandom(300)), capsys)
    finally:
        os.umask(old)
    assert done.returncode == 0 and code == 0, done.stderr
    stored = root / "files" / messages[0]["stored"]
    assert {name: _mode(path) for name, path in (("root", root), ("files", root / "files"),
                                                 ("jobs", root / "jobs"), ("file", stored))} == \
        {"root": 0o700, "files": 0o700, "jobs": 0o700, "file": 0o600}


def test_a_folder_the_user_named_keeps_its_mode(tmp_path):
    tmp_path.chmod(0o755)
    subprocess.run([sys.executable, "-", str(tmp_path)], input=PROBE.read_bytes(),
                   capture_output=True, timeout=120, check=True)
    assert _mode(tmp_path) == 0o755 and _mode(tmp_path / "files") == 0o700


def test_a_job_links_private_files_and_marks_their_use(tmp_path):
    content = os.urandom(100)
    sha = hashlib.sha256(content).hexdigest()
    (tmp_path / "files").mkdir()
    cached = tmp_path / "files" / sha
    cached.write_bytes(content)
    os.utime(cached, (1, 1))
    old = os.umask(0)
    try:
        job = agent.Job(str(tmp_path), "job1")
        job.register()
        run = agent._place(job, {"0/model.tflite": sha})
    finally:
        os.umask(old)
    placed = run / "0" / "model.tflite"
    assert placed.read_bytes() == content and _mode(placed) == 0o600
    assert _mode(run) == _mode(run / "0") == _mode(job.folder) == 0o700
    assert _mode(job.folder / "owner.json") == 0o600
    assert time.time() - cached.stat().st_mtime < 60  # used now: the last to be evicted


def _cached(root: Path, name: str, size: int, age_days: float, now: float) -> str:
    sha = hashlib.sha256(name.encode()).hexdigest()
    path = root / "files" / sha
    path.write_bytes(b"x" * size)
    os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    return sha


def test_eviction_by_age_then_least_recently_used_never_a_running_jobs_file(tmp_path):
    now = time.time()
    (tmp_path / "files").mkdir()
    old = _cached(tmp_path, "old", 10, 40, now)
    old_in_use = _cached(tmp_path, "linked", 10, 40, now)
    (tmp_path / "jobs" / "running").mkdir(parents=True)
    os.link(tmp_path / "files" / old_in_use, tmp_path / "jobs" / "running" / "model.tflite")
    lru = _cached(tmp_path, "lru", 600_000, 5, now)
    newer = _cached(tmp_path, "newer", 600_000, 2, now)
    just_copied = _cached(tmp_path, "just copied", 600_000, 0.01, now)
    (tmp_path / "files" / "notes.txt").write_text("not edgecv's")  # not a SHA-256 name: kept
    removed, freed = probe.evict_cache(str(tmp_path), max_days=30, max_mb=1.5, now=now)
    assert sorted(removed) == sorted([old, lru]) and freed == 600_010
    left = set(os.listdir(tmp_path / "files"))
    assert left == {old_in_use, newer, just_copied, "notes.txt"}
    # nothing over the limits: nothing evicted
    assert probe.evict_cache(str(tmp_path), max_days=30, max_mb=5, now=now) == ([], 0)


def test_the_probe_evicts_with_the_devices_limits(tmp_path):
    now = time.time()
    (tmp_path / "files").mkdir(parents=True)
    stale = _cached(tmp_path, "stale", 10, 3, now)
    kept = _cached(tmp_path, "kept", 10, 1.5, now)
    device = parse_device(f"local:{sys.executable}?dir={tmp_path}&cache_days=2&cache_mb=100")
    assert (device.cache_days, device.cache_mb) == (2, 100)
    done = subprocess.run([sys.executable, "-", str(tmp_path), "2", "100"],
                          input=PROBE.read_bytes(), capture_output=True, timeout=120)
    facts = json.loads(done.stdout.decode().splitlines()[-1])
    assert facts["evicted"] == [stale] and facts["cached"] == [kept]


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
def test_a_device_s_mcu_rows_carry_the_fit_to_the_profiles_asked_for(device_run, tmp_path):
    """--mcu-profile travels to the device, and its mcu rows (arena, fit, host reference time)
    pass the checks of what comes back."""
    pytest.importorskip("tflite_micro", reason="the mcu extra (tflite-micro) is not installed")
    report_path = tmp_path / "bench.json"
    done = run_cli("bench", device_run, "--on", f"local:{sys.executable}?dir={tmp_path / 'c'}",
                   "--targets", "mcu", "--mcu-profile", "pico", "--mcu-profile", "64K,512K",
                   "--runs", "3", "--min-time", "0", "--rounds", "2", "--warmup", "1",
                   "--json", report_path)
    assert done.returncode == 0, done.stderr
    [row] = [r for r in json.loads(report_path.read_text())["rows"]
             if r["format"] == "tflite_int8"]
    assert row["status"] == "ok" and row["device"] == f"local:{sys.executable}"
    assert [f["profile"] for f in row["mcu_fit"]] == ["pico", "64K,512K"]
    assert row["arena_bytes"] > 0 and row["host_reference_kernels_p50_ms"] > 0
    assert row["p50_ms"] is None


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
    # The slow device's Python waits until the fast device's answer has been printed (at most
    # 120 s), so the order below holds on a machine of any speed when devices run side by side,
    # and breaks when one device waits for the other.
    released = tmp_path / "fast-device-done"
    slow = _wrapper(tmp_path, "slow-python",
                    f'i=0; while [ ! -e "{released}" ] && [ $i -lt 2400 ]; do sleep 0.05; '
                    'i=$((i+1)); done')
    fast = f"local:{sys.executable}"
    process = subprocess.Popen(
        [sys.executable, "-m", "edgecv", "bench", str(device_run),
         "--on", f"local:{slow}?dir={tmp_path / 'c1'}", "--on", f"{fast}?dir={tmp_path / 'c2'}",
         "--targets", "cpu", "--runs", "5", "--min-time", "0", "--rounds", "2", "--warmup", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = []
    for line in process.stderr:
        lines.append(line.rstrip("\n"))
        if line.startswith(f"{fast}: done"):
            released.touch()
    process.communicate(timeout=600)
    assert process.returncode == 0, "\n".join(lines)
    fast_done = next(i for i, l in enumerate(lines) if l.startswith(f"{fast}: done"))
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
         "--runs", "1000000000",  # past the 100,000-call cap: busy until interrupted
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
