"""A device that lies: stands in for the agent's ``bench`` step (or the probe) of a
``local:PYTHON`` device in tests/test_bench_remote.py.

``python fake_device.py -m edgecv.benchmarks.remote.agent bench ROOT JOB`` reads the manifest
like the agent, answers an honest report of the files it was sent (rows built as
:mod:`edgecv.benchmarks.suite` builds them: BenchRow, this machine's record), then applies the
lie named by ``EDGECV_FAKE`` before printing it. ``python fake_device.py - ROOT ...`` (the probe
step) runs the real probe and, for ``EDGECV_FAKE=facts``, breaks its answer.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from edgecv.benchmarks.machine import machine_info
from edgecv.benchmarks.recommend import recommend_deployments
from edgecv.benchmarks.row import BenchRow

PREFIX = "EDGECV "


def honest_report(root: str, job: str, manifest: dict) -> dict:
    run = Path(os.path.expanduser(root)).resolve() / "jobs" / job / "run"
    rows = []
    for index, name in enumerate(manifest["artifacts"]):
        p50 = 0.2 + 0.1 * index
        rows.append(BenchRow(
            artifact=name.split("/")[-1], path=str(run / name), format="tflite_fp32",
            runtime="litert", target="cpu", threads=1, batch=1, status="ok", reason=None,
            size_bytes=1000 + index, sha256=manifest["files"][name], accuracy=0.9,
            test_images=10, init_ms=1.0, first_ms=1.0, mean_ms=p50, std_ms=0.01, min_ms=p50,
            p50_ms=p50, p50_ci_ms=[p50 - 0.01, p50 + 0.01], p90_ms=p50, p99_ms=p50, max_ms=p50,
            throughput_per_s=1000 / p50, runs=5, rounds=2, samples_ms=[p50] * 5).to_dict())
    return {"edgecv_version": "x", "created": "now", "machine": machine_info(),
            "settings": manifest["settings"], "warnings": [],
            "recommendations": recommend_deployments(rows, 1.0), "rows": rows}


def lie(kind: str, report: dict) -> list[str]:
    """The stdout lines of a device telling the lie ``kind``."""
    row = report["rows"][0]
    if kind == "missing-key":
        del row["p50_ms"]
    elif kind == "unknown-status":
        row["status"] = "great"
    elif kind == "passwd-path":
        row["path"] = "/etc/passwd"
        for choice in report["recommendations"]:
            choice["path"] = "/etc/passwd"
    elif kind == "extra-key":
        row["run_this"] = "rm -rf ~"
    elif kind == "wrong-type":
        row["threads"] = "1; reboot"
    elif kind == "terminal-escape":
        row.update(status="failed", reason="\x1b[2J\x1b[1;1Hall good")
    elif kind == "sha256":
        row["sha256"] = "0" * 64
    elif kind == "emulated-mark":  # emulated, but its rows' timings pass for a real CPU's
        report["machine"]["emulation"] = {"handler": "qemu-aarch64",
                                          "interpreter": "/usr/bin/qemu-aarch64", "qemu_cpu": None}
    elif kind == "predictions":  # more predictions than test images
        row["predictions"] = [0] * (row["test_images"] + 1)
    elif kind == "not-json":
        return [PREFIX + "{'report': oops"]
    elif kind == "deep":
        return [PREFIX + '{"error": ' + "[" * 100_000 + "]" * 100_000 + "}"]
    elif kind == "flood":  # one endless line: never a newline
        sys.stdout.write(PREFIX + '{"report": "')
        chunk = "x" * (1 << 16)
        while True:
            sys.stdout.write(chunk)
    return ["chatter a library printed", PREFIX + json.dumps({"report": report})]


def main(argv: list[str]) -> int:
    kind = os.environ.get("EDGECV_FAKE", "honest")
    if argv[:1] == ["-"]:  # the probe: run the real one, break its answer if asked
        done = subprocess.run([sys.executable, *argv], stdin=sys.stdin, capture_output=True,
                              text=True)
        facts = json.loads(done.stdout.splitlines()[-1])
        if kind == "facts":
            facts["cached"] = ["../../etc/passwd"]
        print(json.dumps(facts))
        return done.returncode
    if argv[:3] != ["-m", "edgecv.benchmarks.remote.agent", "bench"]:  # receive: the real agent
        os.execv(sys.executable, [sys.executable, *argv])
    root, job = argv[3], argv[4]
    manifest = json.loads(sys.stdin.readline())
    report = honest_report(root, job, manifest)
    for line in ([] if kind == "honest" else lie(kind, report)) or \
            [PREFIX + json.dumps({"report": report})]:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
