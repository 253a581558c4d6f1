"""What `edgecv bench --on` costs and whether it measures what a bench on the device itself does.

    python benchmarks/experiments/remote_bench.py --runs RUN \\
        --on "ssh://HOST?python=PATH" [--ssh-config FILE] [--repeats 3] [--json PATH]

    # the committed benchmarks/results/remote_bench.json: the device is this machine reached over
    # ssh (a real sshd on 127.0.0.1, started by tests/sshd.py's start_sshd, with a second
    # virtual environment as the device's Python), so both sides run on the same CPU:
    python benchmarks/experiments/remote_bench.py --runs RUNS/cifar-resnet8 \\
        --on "ssh://edgecv-test?python=/tmp/device/venv/bin/python" --ssh-config /tmp/sshd/ssh_config

Each command runs through the real CLI in a fresh process, on the CPU target without the Keras
model, in this order: one cold `--on` run (into a fresh device cache folder: every file copied),
then ``--repeats`` pairs of a warm `--on` run (nothing to copy) and a plain local bench, taking
turns. Recorded: the wall time of each command, what was copied, and per artifact the p50 the
device measured and the p50 the local bench measured, with their 90% intervals. When the device
is this machine, the p50s should agree: the ratio shows what the ssh path adds to a measurement
(nothing, if it works: it times the same calls in the same code).
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import run_label, runs_parser
from edgecv.benchmarks.machine import machine_info, machine_warnings

BENCH = ("--targets", "cpu", "--no-keras")


def _timed(command: list[str]) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as folder:
        report_path = Path(folder) / "bench.json"
        start = time.perf_counter()
        done = subprocess.run([*command, "--json", str(report_path)], capture_output=True,
                              text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
        return round(wall, 2), json.loads(report_path.read_text())


def _p50s(report: dict, device: str | None) -> dict[str, dict]:
    return {row["artifact"]: {"p50_ms": row["p50_ms"], "p50_ci_ms": row["p50_ci_ms"]}
            for row in report["rows"]
            if row["status"] == "ok" and row.get("device") == device and row.get("batch") == 1}


def main(argv: list[str] | None = None) -> dict:
    parser = runs_parser(__doc__, "remote_bench.json")
    parser.add_argument("--on", required=True, help="the device, as edgecv bench --on takes it")
    parser.add_argument("--ssh-config", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    run = args.runs[0]
    machine = machine_info()
    with tempfile.TemporaryDirectory() as cache:
        spec = args.on + ("&" if "?" in args.on else "?") + f"dir={cache}"
        remote = ["edgecv", "bench", str(run), "--on", spec, *BENCH,
                  *(["--ssh-config", args.ssh_config] if args.ssh_config else [])]
        local = ["edgecv", "bench", str(run), *BENCH]
        cold_s, cold = _timed(remote)
        device = cold["devices"][0]
        warm_s, local_s, pairs, warm_copied = [], [], [], []
        for _ in range(args.repeats):
            seconds, warm = _timed(remote)
            warm_s.append(seconds)
            warm_copied.append(warm["devices"][0]["transfer"]["copied"])
            seconds, here = _timed(local)
            local_s.append(seconds)
            pairs.append((_p50s(warm, device["name"]), _p50s(here, None)))
    artifacts = sorted(pairs[0][0])
    per_artifact = {}
    for name in artifacts:
        on_device = [p[0][name]["p50_ms"] for p in pairs]
        here = [p[1][name]["p50_ms"] for p in pairs]
        per_artifact[name] = {
            "device_p50_ms": on_device, "local_p50_ms": here,
            "device_over_local_median": round(statistics.median(
                d / h for d, h in zip(on_device, here)), 3)}
    result = {
        "benchmark": "remote_bench", "run": run_label(run), "machine": machine,
        "warnings": machine_warnings(machine),
        "device": {key: device.get(key) for key in ("name", "python", "edgecv", "hostname")},
        "device_is_this_machine": device.get("hostname") == platform.node(),
        "settings": {"bench": list(BENCH), "repeats": args.repeats},
        "cold": {"wall_s": cold_s, "transfer": device["transfer"]},
        "warm_wall_s": warm_s, "local_wall_s": local_s,
        "warm_over_local_wall_median": round(statistics.median(
            w / lo for w, lo in zip(warm_s, local_s)), 3),
        "warm_files_copied": warm_copied,
        "p50": per_artifact,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("cold", "warm_wall_s", "local_wall_s",
                                             "warm_over_local_wall_median")}, indent=1))
    for name, figures in per_artifact.items():
        print(f"{name}: device/local p50 {figures['device_over_local_median']}")
    return result


if __name__ == "__main__":
    main()
