"""What the emulated aarch64 device costs to build and whether every artifact runs there alike.

    python benchmarks/experiments/arm64_qemu.py --runs RUN [RUN...] [--host-packages] \\
        [--json PATH]

    # the committed benchmarks/results/arm64_qemu.json: the tiny run of tests/conftest.py
    # (seed_cnn, 16x16 digits: fp32, fp16, int8, ONNX, ONNX int8):
    python benchmarks/experiments/arm64_qemu.py --runs RUNS/tiny --host-packages

    # a CIFAR-10 resnet8 (edgecv train --data ../shared/data/cifar10_train.tar.xz --model
    # resnet8 --time-limit 3m, then edgecv convert RUN --fp16 --dynamic --int8 --int16x8 --onnx)
    # added to it on 1,000 of its test images (its 7 files on the whole 7,500-image split under
    # emulation had not ended after 50 min on a 2-core machine at load 13):
    python benchmarks/experiments/arm64_qemu.py --runs RUNS/cifar-resnet8 \\
        --test-images 1000 --add-runs ~/.cache/edgecv/arm64-qemu/device

Setup (benchmarks/devices/arm64_qemu.sh, each a fresh process, wall time): ``cold`` builds a new
folder with empty caches (apt lists and .debs, pip's cache: everything downloaded); ``reuse`` runs
it again on that folder; ``warm_cortex_a72`` builds a second new folder with the caches the cold
build filled, as a Cortex-A72 (``--cpu cortex-a72``); ``from_nothing`` adds the host packages to
the cold build. The host packages (qemu-user-static, binfmt-support) are already installed then; with
``--host-packages`` (root) their install is timed too, as ``apt-get install --reinstall`` from an
empty download folder: what a fresh machine adds.

Then per run, ``edgecv bench RUN/export --on local --on local:DEVICE --targets cpu
--no-keras``: per artifact the accuracy on x86 and on the aarch64 device, the top-1
agreement of the device with x86 (goal: accuracy within 0.5 pp, agreement >= 99.9%), and the
emulated p50 (not a board's speed). Then the int8 files again on ``DEVICE_MAX``, the same
device with QEMU's default CPU (``QEMU_CPU=max``); ``no_cpuinfo`` runs the runtimes with the
device's sysroot but without its /proc/cpuinfo; ``int8_outputs_by_qemu_cpu`` compares the last
run's int8 .tflite outputs with x86's, value by value, on 20 seeded inputs under each emulated
CPU (the A76 and A72 devices, the A72 under the A76's cpuinfo, ``max`` with and without SME or
SVE): the evidence for what the script sets up and why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import run_label, runs_parser
from edgecv.benchmarks.machine import machine_info

SCRIPT = Path(__file__).resolve().parents[1] / "devices" / "arm64_qemu.sh"
BENCH = ("--targets", "cpu", "--no-keras", "--runs", "20", "--min-time", "0.2", "--rounds", "3",
         "--warmup", "3")
GOAL_PP, GOAL_AGREEMENT = 0.5, 0.999


def _build(folder: Path, env: dict, *options: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(["bash", str(SCRIPT), str(folder), *options], capture_output=True,
                          text=True,
                          env={**os.environ, "EDGECV_HOST_PYTHON": sys.executable, **env})
    wall = round(time.perf_counter() - start, 1)
    if done.returncode != 0:
        raise SystemExit(f"arm64_qemu.sh failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall, done.stdout.strip().splitlines()[-1]


def _host_ready() -> bool:
    binfmt = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    return Path("/usr/bin/qemu-aarch64-static").exists() and binfmt.exists() \
        and binfmt.read_text().startswith("enabled")


def _host_packages_s(folder: Path) -> float:
    """Wall time of installing qemu-user-static and binfmt-support from an empty download
    folder (apt-get install --reinstall), as root."""
    (folder / "partial").mkdir(parents=True)
    start = time.perf_counter()
    subprocess.run(["apt-get", "-qq", "-y", "-o", "Dpkg::Lock::Timeout=120", "-o",
                    f"Dir::Cache::archives={folder}", "install",
                    "--reinstall", "--no-install-recommends", "qemu-user-static",
                    "binfmt-support"], check=True, capture_output=True, stdin=subprocess.DEVNULL,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return round(time.perf_counter() - start, 1)


def _variant(python: str, folder: Path, name: str, *, cpu: str | None = None,
             sysroot: str | None = None) -> str:
    """The device's wrapper with another QEMU_CPU or QEMU_LD_PREFIX."""
    text = Path(python).read_text()
    lines = []
    for line in text.splitlines():
        if line.startswith("export QEMU_LD_PREFIX="):
            prefix = sysroot or line.split("'")[1]
            line = f"export QEMU_LD_PREFIX='{prefix}' QEMU_CPU='{cpu or line.split(chr(39))[3]}'"
        lines.append(line)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return str(path)


def _no_cpuinfo(python: str, folder: Path, tflite: Path) -> dict:
    """The runtimes on the device's sysroot without its /proc/cpuinfo: what each does."""
    sysroot = Path(python).parent / "sysroot"
    shadow = folder / "sysroot-without-cpuinfo"
    shadow.mkdir()
    for part in sysroot.iterdir():
        if part.name != "proc":
            (shadow / part.name).symlink_to(part)
    wrapper = _variant(python, folder, "python-no-cpuinfo", sysroot=str(shadow))
    checks = {"onnxruntime": "import onnxruntime",
              "litert": "from ai_edge_litert.interpreter import Interpreter; "
                        f"i = Interpreter(model_path={str(tflite)!r}); i.allocate_tensors(); "
                        "i.invoke()"}
    found = {}
    for name, code in checks.items():
        done = subprocess.run([wrapper, "-c", code + "; print('ran')"], capture_output=True,
                              text=True, cwd="/", timeout=600)
        last = (done.stderr.strip().splitlines() or [""])[-1]
        found[name] = {"exit_code": done.returncode, "ran": done.stdout.strip() == "ran",
                       "stderr_last_line": last}
    return found


# Runs a .tflite on saved inputs, one at a time, and saves its outputs: the same code on x86
# (the reference) and on the device under each QEMU_CPU.
INVOKE = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
inputs = np.load(sys.argv[1])
interpreter = Interpreter(model_path=sys.argv[2])
interpreter.allocate_tensors()
given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
outputs = []
for one in inputs:
    interpreter.set_tensor(given["index"], one[None])
    interpreter.invoke()
    outputs.append(interpreter.get_tensor(taken["index"])[0])
np.save(sys.argv[3], np.stack(outputs))
"""
QEMU_CPUS = ("max", "max,sme=off", "max,sve=off")  # on the Cortex-A76 device's sysroot


def _int8_outputs_by_cpu(devices: dict[str, str], folder: Path, tflite: Path,
                         count: int = 20) -> dict:
    """The int8 file's outputs on ``count`` seeded random inputs on each of ``devices`` ({label:
    its Python}), compared value by value with the same file on x86: which emulated CPU (and
    /proc/cpuinfo) changes them (with QEMU's ``max``, LiteRT's int8 accuracy fell to chance)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    given = Interpreter(model_path=str(tflite)).get_input_details()[0]
    info = np.iinfo(given["dtype"])
    inputs = np.random.default_rng(0).integers(info.min, info.max + 1,
                                               (count, *given["shape"][1:])).astype(given["dtype"])
    np.save(folder / "inputs.npy", inputs)

    def outputs(executable: str, name: str):
        saved = folder / f"outputs-{name}.npy"
        done = subprocess.run([executable, "-c", INVOKE, str(folder / "inputs.npy"), str(tflite),
                               str(saved)], capture_output=True, text=True, cwd="/", timeout=600)
        if done.returncode != 0:
            return None, (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]
        return np.load(saved).astype(np.int64), None

    reference, error = outputs(sys.executable, "x86")
    if reference is None:
        raise SystemExit(f"the int8 file does not run on x86: {error}")
    found = {}
    for number, (label, wrapper) in enumerate(devices.items()):
        emulated, error = outputs(wrapper, str(number))
        found[label] = {"error": error} if emulated is None else {
            "values": int(reference.size),
            "values_differing": int((emulated != reference).sum()),
            "max_difference_steps": int(np.abs(emulated - reference).max()),
            "top1_differing": int((emulated.reshape(count, -1).argmax(1)
                                   != reference.reshape(count, -1).argmax(1)).sum())}
    return found


def _bench(models: list[Path], devices: dict[str, str], cache: Path) -> tuple[float, dict]:
    report_path = cache / "bench.json"
    command = [sys.executable, "-m", "edgecv", "bench", *map(str, models), "--on", "local",
               *[a for python in devices.values()
                 for a in ("--on", f"local:{python}?dir={cache / 'device-cache'}")], *BENCH,
               "--json", str(report_path)]
    report_path.unlink(missing_ok=True)  # the previous bench's must not pass for this one's
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd="/")
    wall = round(time.perf_counter() - start, 1)
    if done.returncode != 0 or not report_path.is_file():
        raise SystemExit(f"edgecv bench failed: {done.stderr.strip().splitlines()[-1:]}")
    return wall, json.loads(report_path.read_text())


def _per_artifact(report: dict, devices: dict[str, str]) -> dict:
    names = {f"local:{python}": role for role, python in devices.items()}
    rows = {}
    for row in report["rows"]:
        role = "x86" if row["device"] == "local" else names.get(row["device"])
        if role and row.get("batch") in (1, None):
            rows.setdefault(row["artifact"], {})[role] = row
    table = {}
    for artifact, by_role in rows.items():
        x86, arm, arm_max = by_role.get("x86"), by_role.get("aarch64"), by_role.get("aarch64_max")
        entry = {"format": (x86 or arm)["format"],
                 "x86_accuracy": x86 and x86["accuracy"], "x86_p50_ms": x86 and x86["p50_ms"]}
        if arm is not None:
            entry.update({
                "aarch64_status": arm["status"], "aarch64_reason": arm["reason"],
                "aarch64_accuracy": arm["accuracy"], "aarch64_agreement": arm["agreement"],
                "accuracy_difference_pp": None if arm["accuracy"] is None or x86 is None
                else round((arm["accuracy"] - x86["accuracy"]) * 100, 3),
                "aarch64_emulated_p50_ms": arm["p50_ms"], "aarch64_emulated": arm["emulated"]})
            entry["meets_goal"] = entry["accuracy_difference_pp"] is not None and \
                abs(entry["accuracy_difference_pp"]) <= GOAL_PP and \
                (arm["agreement"] or 0) >= GOAL_AGREEMENT
        if arm_max is not None:
            entry.update({"qemu_cpu_max_status": arm_max["status"],
                          "qemu_cpu_max_accuracy": arm_max["accuracy"],
                          "qemu_cpu_max_agreement": arm_max["agreement"]})
        table[artifact] = entry
    return table


def _subset_export(run: Path, count: int, scratch: Path) -> Path:
    """A copy of ``run``'s export whose testset.npz holds ``count`` class-stratified test images
    (seed 0): TFLite's reference kernels under emulation take minutes per thousand images."""
    import shutil

    import numpy as np

    from edgecv.converters.calibration import stratified_indices

    folder = scratch / f"subset-{run.name}" / "export"
    folder.mkdir(parents=True)
    for item in (run / "export").iterdir():
        if item.is_file() and item.name != "testset.npz":
            shutil.copy2(item, folder / item.name)
    with np.load(run / "export" / "testset.npz") as saved:
        data = {key: saved[key] for key in saved.files}
    index = np.sort(stratified_indices(data["y"], count, seed=0, total=len(data["y"])))
    np.savez(folder / "testset.npz", **{key: value[index] if key != "labels" else value
                                       for key, value in data.items()})
    return folder.parent


def _measure_runs(run_dirs: list[Path], devices: dict[str, str], scratch: Path,
                  test_images: int | None) -> tuple[dict, dict | None]:
    """Per run: its export benched on x86 and the aarch64 device, then its int8 files with
    QEMU's default CPU; (the per-run figures, the device's machine record)."""
    python = devices["aarch64"]
    runs, device_machine = {}, None
    for source in run_dirs:
        run = _subset_export(source, test_images, scratch) if test_images else source
        wall, report = _bench([run / "export"], {"aarch64": python}, scratch)
        records = {d["name"]: d for d in report["devices"]}
        device_machine = records[f"local:{python}"]["machine"]
        failed = {d["name"]: d["reason"] for d in report["devices"] if d["status"] != "ok"}
        # QEMU's default CPU: the int8 files only (float ones were not at issue), with x86
        max_wall, max_report = _bench(sorted((run / "export").glob("*int8*")),
                                      {"aarch64_max": devices["aarch64_max"]}, scratch)
        failed |= {d["name"]: d["reason"] for d in max_report["devices"] if d["status"] != "ok"}
        table = _per_artifact(report, devices)
        for artifact, entry in _per_artifact(max_report, devices).items():
            table[artifact].update({k: v for k, v in entry.items()
                                    if k.startswith("qemu_cpu_max")})
        runs[run_label(source)] = {
            "bench_wall_s": wall, "qemu_cpu_max_bench_wall_s": max_wall, "test_images": next(
                (r["test_images"] for r in report["rows"] if r["test_images"]), None),
            "failed_devices": failed, "artifacts": table,
            "all_meet_goal": all(e.get("meets_goal") for e in table.values()),
            "recommendations": [{k: c[k] for k in ("device", "artifact", "threads")}
                                for c in report["recommendations"]]}
    return runs, device_machine


def add_runs(args) -> dict:
    """``--add-runs DEVICE_DIR``: the runs benched on that device (built there if missing) and
    added to the results file, whose setup and evidence are kept."""
    result = json.loads(args.json.read_text())
    _, python = _build(args.add_runs, {})
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        devices = {"aarch64": python,
                   "aarch64_max": _variant(python, scratch, "python-qemu-cpu-max", cpu="max")}
        runs, _ = _measure_runs(args.runs, devices, scratch, args.test_images)
    for figures in runs.values():
        figures["machine"] = machine_info()  # this session's, beside the file's first
    result["runs"].update(runs)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for label, figures in runs.items():
        print(f"{label}: bench {figures['bench_wall_s']} s, goal met: {figures['all_meet_goal']}")
        for artifact, entry in figures["artifacts"].items():
            print(f"  {artifact}: {entry}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = runs_parser(__doc__, "arm64_qemu.json")
    parser.add_argument("--host-packages", action="store_true",
                        help="also time the install of qemu-user-static and binfmt-support "
                             "(root)")
    parser.add_argument("--test-images", type=int, default=None,
                        help="bench each run on this many class-stratified test images")
    parser.add_argument("--add-runs", type=Path, metavar="DEVICE_DIR", default=None,
                        help="only bench the runs, on the device built (or reused) in "
                             "DEVICE_DIR, and add them to the existing --json")
    args = parser.parse_args(argv)
    if args.add_runs:
        return add_runs(args)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        setup = {"host_packages_installed_before": _host_ready()}
        if args.host_packages:
            setup["host_packages_install_s"] = _host_packages_s(scratch / "apt-archives")
        caches = {"EDGECV_ARM64_CACHE": str(scratch / "apt-cache"),
                  "PIP_CACHE_DIR": str(scratch / "pip-cache")}
        setup["cold_s"], python = _build(scratch / "device", caches)
        setup["reuse_s"], _ = _build(scratch / "device", caches)
        # a second folder from the caches the cold build filled, as a Pi 4's core
        setup["warm_cortex_a72_s"], python_a72 = _build(scratch / "device-a72", caches, "--cpu",
                                                        "cortex-a72")
        # what a fresh machine of this kind pays before the first bench: the host packages
        # (when timed) and the cold build
        setup["from_nothing_s"] = round(setup.get("host_packages_install_s", 0.0)
                                        + setup["cold_s"], 1)
        setup["folder_mb"] = round(sum(p.stat().st_size for p in (scratch / "device").rglob("*")
                                       if p.is_file() and not p.is_symlink()) / 1e6, 1)
        devices = {"aarch64": python,
                   "aarch64_max": _variant(python, scratch, "python-qemu-cpu-max", cpu="max")}
        runs, device_machine = _measure_runs(args.runs, devices, scratch, args.test_images)
        run = args.runs[-1]
        tflite = next(Path(run / "export").glob("*_int8.tflite"), None) or \
            next(Path(run / "export").glob("*.tflite"))
        cpus = {"cortex-a76": python, "cortex-a72": python_a72,
                # QEMU's Cortex-A72 under the A76's cpuinfo, which claims dot product (asimddp)
                "cortex-a72 under the cortex-a76 cpuinfo": _variant(
                    python, scratch, "python-a72-a76-cpuinfo", cpu="cortex-a72"),
                **{cpu: _variant(python, scratch, f"python-{cpu.replace(',', '-')}", cpu=cpu)
                   for cpu in QEMU_CPUS}}
        evidence = {"no_cpuinfo": _no_cpuinfo(python, scratch, tflite.resolve()),
                    "int8_outputs_by_qemu_cpu": {"file": f"{run_label(run)}/export/{tflite.name}",
                                                 **_int8_outputs_by_cpu(cpus, scratch,
                                                                        tflite.resolve())}}
    result = {
        "benchmark": "arm64_qemu", "machine": machine_info(), "device_machine": device_machine,
        "settings": {"bench": list(BENCH), "devices": {"aarch64": "QEMU_CPU cortex-a76",
                                                       "aarch64_max": "QEMU_CPU max"},
                     "goal": {"accuracy_pp": GOAL_PP, "agreement": GOAL_AGREEMENT}},
        "setup": setup, "runs": runs, "evidence": evidence,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"setup": setup, "evidence": evidence}, indent=1))
    for label, figures in runs.items():
        print(f"{label}: bench {figures['bench_wall_s']} s, goal met: {figures['all_meet_goal']}")
        for artifact, entry in figures["artifacts"].items():
            print(f"  {artifact}: {entry}")
    return result


if __name__ == "__main__":
    main()
