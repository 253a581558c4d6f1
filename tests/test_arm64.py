"""The emulated aarch64 device (benchmarks/devices/arm64_qemu.sh) and what its rows carry: the
emulation in the machine record, the `emulated` mark that keeps their timings out of every
recommendation, the top-1 agreement with the same file on another device.

The unit tests need no emulation and no TensorFlow. The last test builds (or reuses) the device
with the script and benches the tiny run on it next to this machine. From nothing it took 63 s
on this loaded 2-core machine (benchmarks/results/arm64_qemu.json, `from_nothing_s`: 15 s for
the host packages, 48 s for a build with empty caches), and the tiny run's bench 55 s: about
2 min of CI's 90 (the suite takes about 8), so CI runs it: .ci/run installs QEMU and sets
EDGECV_REQUIRE_ARM64=1. The device folder is built once per machine and reused
($EDGECV_ARM64_DIR, default ~/.cache/edgecv/arm64-qemu/device): a later run only checks it
(about 10 s) and reinstalls edgecv when its source changed. Without qemu-user-static, root or
the network it skips, unless EDGECV_REQUIRE_ARM64=1.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from edgecv.benchmarks import machine, suite
from edgecv.benchmarks.recommend import recommend_deployments
from edgecv.benchmarks.remote import answers
from edgecv.benchmarks.remote.devices import Device
from edgecv.benchmarks.remote.fleet import DeviceRun, add_agreement, merge_reports
from edgecv.benchmarks.report import markdown_table, validate_report, write_html
from edgecv.benchmarks.report.tables import answer_lines
from tiny_tflite import tiny_tflite, with_card

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "devices" / "arm64_qemu.sh"
# Debian's qemu-user-static registers these for aarch64 ELF executables (/usr/share/binfmts)
AARCH64_MAGIC = "7f454c460201010000000000000000000200b700"
AARCH64_MASK = "ffffffffffffff00fffffffffffffffffeffffff"
QEMU = {"handler": "qemu-aarch64", "interpreter": "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
        "qemu_cpu": "cortex-a76"}


# --- how emulation is detected ----------------------------------------------------------------

def _binfmt(folder: Path, state: str = "enabled") -> Path:
    folder.mkdir()
    (folder / "register").write_text("")
    (folder / "status").write_text("enabled\n")
    (folder / "qemu-aarch64").write_text(
        f"{state}\ninterpreter {QEMU['interpreter']}\nflags: PF\noffset 0\n"
        f"magic {AARCH64_MAGIC}\nmask {AARCH64_MASK}\n")
    return folder


def _elf(path: Path, machine_bytes: bytes) -> str:
    """An ELF header of a 64-bit little-endian executable for ``machine_bytes`` (e_machine)."""
    path.write_bytes(bytes.fromhex("7f454c4602010100") + bytes(8) + b"\x02\x00" + machine_bytes
                     + bytes(100))
    return str(path)


def test_a_python_the_kernel_hands_to_qemu_is_emulated(tmp_path, monkeypatch):
    binfmt = _binfmt(tmp_path / "binfmt_misc")
    arm = _elf(tmp_path / "python-aarch64", b"\xb7\x00")
    x86 = _elf(tmp_path / "python-x86_64", b"\x3e\x00")
    monkeypatch.setenv("QEMU_CPU", "cortex-a76")
    assert machine.emulation(arm, str(binfmt)) == QEMU
    monkeypatch.delenv("QEMU_CPU")
    assert machine.emulation(arm, str(binfmt))["qemu_cpu"] is None  # QEMU's default CPU
    assert machine.emulation(x86, str(binfmt)) is None  # runs natively: no handler matches
    assert machine.emulation(arm, str(tmp_path / "not-mounted")) is None
    disabled = _binfmt(tmp_path / "disabled", "disabled")
    assert machine.emulation(arm, str(disabled)) is None


def test_the_machine_record_says_whether_it_is_emulated():
    record = machine.machine_info()
    assert "emulation" in record
    answers.check_value(record, answers.MACHINE, "machine")
    answers.check_value({**record, "emulation": QEMU}, answers.MACHINE, "machine")


def test_64_bit_arm_cpus_are_named_by_board_and_core(tmp_path):
    core = ("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd asimddp\n"
            "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n"
            "CPU part\t: 0xd0b\nCPU revision\t: 1\n\n")
    path = tmp_path / "cpuinfo"
    path.write_text(core * 4 + "Revision\t: c04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n")
    assert machine.cpu_model(str(path)) == "Raspberry Pi 5 Model B Rev 1.0 (ARM Cortex-A76)"
    path.write_text(core * 2)  # what arm64_qemu.sh writes: no board
    assert machine.cpu_model(str(path)) == "ARM Cortex-A76"
    path.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 1\n"
                    "model name\t: AMD EPYC 7B13\n")  # x86's "model" number is not its name
    assert machine.cpu_model(str(path)) == "AMD EPYC 7B13"


# --- rows of an emulated machine: marked, never recommended --------------------------------------

@pytest.fixture
def pixel_model(tmp_path):
    """input (1, 8, 8, 1) + 0 with 64 labels: the top-1 class of an image is its brightest pixel,
    so every prediction is known; and a test set of 6 such images (one labelled wrong)."""
    from edgecv.testset import save_testset

    model = tmp_path / "export" / "model_fp32.tflite"
    model.parent.mkdir()
    model.write_bytes(with_card(tiny_tflite(), [str(i) for i in range(64)]))
    images = np.zeros((6, 8, 8, 1), np.uint8)
    for index in range(6):
        images[index].flat[9 * index] = 255
    testset = save_testset(tmp_path / "export" / "testset.npz", images,
                           np.array([0, 9, 18, 27, 36, 0]), [str(i) for i in range(64)],
                           list(range(6)))
    return model, testset


SETTINGS = suite.BenchSettings(targets=["cpu"], runs=3, min_time_s=0, rounds=1, warmup=0)


def test_an_emulated_machine_marks_its_rows_and_recommends_nothing(pixel_model, monkeypatch):
    model, testset = pixel_model
    native = suite.run_benchmark([model], SETTINGS, testset)
    (row,) = native["rows"]
    assert row["predictions"] == [0, 9, 18, 27, 36, 45] and row["accuracy"] == 5 / 6
    assert row["emulated"] is False and native["recommendations"][0]["artifact"] == model.name

    monkeypatch.setattr(suite, "machine_info", lambda: {**machine.machine_info(),
                                                        "emulation": QEMU})
    emulated = suite.run_benchmark([model], SETTINGS, testset)
    validate_report(emulated)
    (row,) = emulated["rows"]
    assert row["status"] == "ok" and row["emulated"] is True and row["p50_ms"] > 0
    assert row["predictions"] == [0, 9, 18, 27, 36, 45]  # accuracy and predictions stay real
    assert emulated["recommendations"] == []
    (line,) = answer_lines(emulated)
    assert line.startswith("no recommendation: measured under QEMU user mode (binfmt_misc "
                           "handler qemu-aarch64, QEMU_CPU cortex-a76)")
    text = markdown_table(emulated)
    assert "| cpu (emulated) |" in text and "emulated by QEMU user mode" in text


def test_recommendations_never_use_emulated_timings():
    def row(artifact, p50, emulated):
        return {"artifact": artifact, "path": f"/x/{artifact}", "format": "tflite_int8",
                "runtime": "litert", "target": "cpu", "threads": 1, "batch": 1, "status": "ok",
                "p50_ms": p50, "p50_ci_ms": [p50 * 0.99, p50 * 1.01], "accuracy": 0.9,
                "size_bytes": 1000, "emulated": emulated}

    rows = [row("fast_but_emulated.tflite", 0.01, True), row("real.tflite", 0.5, False)]
    (choice,) = recommend_deployments(rows, 1.0)
    assert choice["artifact"] == "real.tflite" and "fast_but_emulated" not in choice["reason"]
    assert recommend_deployments(rows[:1], 1.0) == []


# --- the answers of an emulated device, and agreement between devices ------------------------------

def _row(device, artifact, sha, predictions, accuracy, *, emulated=False, status="ok"):
    return {"device": device, "artifact": artifact, "path": f"/x/{artifact}", "format": "onnx",
            "runtime": "onnxruntime", "target": "cpu", "threads": 1, "batch": 1,
            "emulated": emulated, "status": status, "reason": None, "size_bytes": 10,
            "sha256": sha, "accuracy": accuracy, "test_images": len(predictions),
            "p50_ms": 1.0, "p50_ci_ms": [0.9, 1.1], "predictions": predictions}


def test_agreement_is_with_the_same_file_on_the_reference_device():
    rows = [_row("local", "a.onnx", "a" * 64, [1, 2, 3, 4], 0.75),
            _row("local", "b.onnx", "b" * 64, [0, 0, 0, 0], 0.25),
            _row("arm", "a.onnx", "a" * 64, [1, 2, 3, 0], 0.5, emulated=True),
            _row("arm", "b.onnx", "b" * 64, [0, 0, 0, 0], 0.25, emulated=True),
            _row("arm", "c.onnx", "c" * 64, [0, 0, 0, 0], 0.25, emulated=True)]
    add_agreement(rows, "local")
    assert [(r["agreement"], r["agreement_with"]) for r in rows] == \
        [(None, None), (None, None), (0.75, "local"), (1.0, "local"), (None, None)]

    # merged: `local` is the reference wherever it was listed; the report shows the agreement
    def run(name, device_rows, machine_record):
        outcome = DeviceRun(Device(spec=name, name=name, kind="local" if name == "local"
                                   else "python"))
        outcome.report = {"machine": machine_record, "warnings": [], "recommendations": [],
                          "rows": [{k: v for k, v in r.items() if k != "device"}
                                   for r in device_rows]}
        return outcome

    native = machine.machine_info()
    report = merge_reports([run("arm", rows[2:4], {**native, "emulation": QEMU}),
                            run("local", rows[:2], native)], {}, native)
    validate_report(report)
    assert [r["agreement"] for r in report["rows"]] == [0.75, 1.0, None, None]
    text = markdown_table(report)
    header = next(line for line in text.splitlines() if line.startswith("| device"))
    assert "| accuracy | agreement |" in header
    assert "| arm | a.onnx | onnx | cpu (emulated) |" in text and "| 75.00% |" in text
    assert "top-1 agreement of arm with local on the same files: lowest 75.00% (a.onnx, 2 " \
           "file(s) compared); accuracy differs by at most 25.00 pp" in text
    assert "on arm: no recommendation: measured under QEMU user mode" in text


def test_html_report_marks_emulated_rows_and_shows_agreement(tmp_path):
    native = machine.machine_info()
    rows = [_row("local", "a.onnx", "a" * 64, [1, 2], 1.0),
            _row("arm", "a.onnx", "a" * 64, [1, 2], 1.0, emulated=True)]
    add_agreement(rows, "local")
    report = {"machine": native, "rows": rows, "warnings": [], "recommendations": [],
              "devices": [{"name": "local", "machine": native},
                          {"name": "arm", "machine": {**native, "emulation": QEMU}}]}
    write_html(report, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "cpu (emulated)" in page and ">100.00%<" in page
    assert "on arm: no recommendation: measured under QEMU user mode" in page


def test_a_checked_report_keeps_its_emulated_mark_consistent_with_its_machine(tmp_path):
    from fake_device import honest_report

    sent = [answers.Sent("0/m.tflite", tmp_path / "m.tflite", "c" * 64)]
    manifest = {"artifacts": ["0/m.tflite"], "settings": {}, "files": {"0/m.tflite": "c" * 64}}

    def report(emulation, mark):
        answer = honest_report(str(tmp_path / "device"), "job1", manifest)
        answer["machine"]["emulation"] = emulation
        answer["rows"][0]["emulated"] = mark
        return answer

    checked = answers.check_report(report(QEMU, True), sent, "job1", ["cpu"])
    assert checked["rows"][0]["emulated"] is True
    with pytest.raises(answers.BadAnswer, match="row 0 says emulated=true, but the device's "
                                                "machine record says it runs natively"):
        answers.check_report(report(None, True), sent, "job1", ["cpu"])
    answer = report(None, False)
    answer["rows"][0].update(predictions=[1] * (answers.MAX_PREDICTIONS + 1))
    with pytest.raises(answers.BadAnswer, match="predictions must be a list \\(of at most 200,000"):
        answers.check_report(answer, sent, "job1", ["cpu"])


@pytest.mark.parametrize("change, message", [
    ({"emulated": "yes"}, "`emulated` must be true or false"),
    ({"agreement": 1.5}, "`agreement` is a fraction in [0, 1]"),
    ({"predictions": [1, 2, 3]}, "one class index (an int >= 0) per test image (2)"),
    ({"predictions": [1, -2]}, "one class index (an int >= 0) per test image (2)"),
])
def test_the_schema_refuses_bad_marks_and_predictions(change, message):
    row = {**_row("arm", "a.onnx", "a" * 64, [1, 2], 1.0), **change}
    with pytest.raises(ValueError) as error:
        validate_report({"rows": [row]})
    assert message in str(error.value)


# --- the device itself ----------------------------------------------------------------------------

def test_the_script_refuses_bad_arguments_and_a_folder_it_did_not_make(tmp_path):
    def script(*args):
        return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True,
                              text=True, timeout=60)

    done = script(tmp_path / "d", "--cpu", "max")
    assert done.returncode == 2 and "--cpu must be cortex-a76" in done.stderr
    assert not (tmp_path / "d").exists()
    assert script().returncode == 2 and script("a", "b").returncode == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    done = script(tmp_path / "mine")
    assert done.returncode == 1 and "was not made by arm64_qemu.sh" in done.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep" and \
        os.listdir(tmp_path / "mine") == ["notes.txt"]


def _skip_or_fail(reason: str):
    if os.environ.get("EDGECV_REQUIRE_ARM64") == "1":
        pytest.fail(f"{reason}; EDGECV_REQUIRE_ARM64=1 requires the emulated aarch64 device")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def arm64_python():
    """The emulated device's Python: benchmarks/devices/arm64_qemu.sh run on $EDGECV_ARM64_DIR
    (built the first time, reused after)."""
    if not (Path("/usr/bin/qemu-aarch64-static").exists() or os.environ.get(
            "EDGECV_REQUIRE_ARM64") == "1"):
        _skip_or_fail("no qemu-user-static (apt install qemu-user-static binfmt-support)")
    folder = os.environ.get("EDGECV_ARM64_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgecv",
        "arm64-qemu", "device")
    done = subprocess.run(["bash", str(SCRIPT), folder], capture_output=True, text=True,
                          timeout=1800, env={**os.environ, "EDGECV_HOST_PYTHON": sys.executable})
    if done.returncode != 0:
        _skip_or_fail(f"arm64_qemu.sh could not build the device: "
                      f"{(done.stderr.strip().splitlines() or ['no message'])[-1]}")
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.arm64
def test_every_artifact_runs_on_the_emulated_aarch64_device(arm64_python, tiny_run, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(tiny_run / "export", export)
    device = f"local:{arm64_python}"
    report_path = tmp_path / "bench.json"
    done = run_cli("bench", export, "--on", "local", "--on", f"{device}?dir={tmp_path / 'cache'}",
                   "--targets", "cpu", "--runs", "5", "--min-time", "0", "--rounds", "2",
                   "--warmup", "1", "--json", report_path, "--md", tmp_path / "bench.md",
                   timeout=900)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    arm = next(d for d in report["devices"] if d["name"] == device)
    assert arm["machine"]["machine"] == "aarch64" and arm["machine"]["cpu"] == "ARM Cortex-A76"
    assert arm["machine"]["emulation"]["qemu_cpu"] == "cortex-a76"
    assert report["machine"]["emulation"] is None  # this machine runs natively
    rows = {name: {r["artifact"]: r for r in report["rows"] if r["device"] == name}
            for name in ("local", device)}
    assert sorted(rows[device]) == sorted(rows["local"]) and len(rows[device]) == 5
    for artifact, row in rows[device].items():
        assert row["status"] == "ok" and row["emulated"] is True, row["reason"]
        assert abs(row["accuracy"] - rows["local"][artifact]["accuracy"]) <= 0.005, artifact
        assert row["agreement"] >= 0.999 and row["agreement_with"] == "local", artifact
        assert rows["local"][artifact]["emulated"] is False
    assert [c["device"] for c in report["recommendations"]] == ["local"]
    assert f"on {device}: no recommendation: measured under QEMU user mode" in done.stdout
    assert "cpu (emulated)" in (tmp_path / "bench.md").read_text()
