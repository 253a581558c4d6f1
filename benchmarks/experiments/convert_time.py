"""How long `edgecv convert RUN --all` takes, against converting its slowest artifact alone.

    python benchmarks/experiments/convert_time.py --runs RUN... [--json PATH]

For each run, in fresh processes and in this order: the whole ``--all`` (every format but QAT
and Edge TPU), then each format alone (``convert_run(RUN, [FORMAT])``, which also writes the
fp32 reference, as ``edgecv convert`` always does). Every process pays the same fixed costs
(importing TensorFlow, loading the model and the data, the Keras reference scores), so the
ratio compares what a user waits for. Recorded: the wall time of each process, and from the
``--all`` conversion.json each artifact's ``convert_s`` (build) and ``verify_s`` (its
verification on the held-out test split, which runs on another thread while the next
formats build).

Goal (issue 12): ``--all`` no slower than 2x the slowest single artifact converted alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import run_label, runs_parser
from edgecv.rundir import ExportDir, RunDir

GOAL = 2.0
CHILD = """
import sys
from edgecv.converters.convert import convert_run
from edgecv.errors import AccuracyDropError
try:
    convert_run(sys.argv[1], sys.argv[3].split(","), out_dir=sys.argv[2], log=lambda _: None)
except AccuracyDropError:
    pass  # the times are what matter here; conversion.json is written
"""


def timed_conversion(run: Path, formats: list[str]) -> tuple[float, dict]:
    """Wall seconds of one conversion in a fresh process, and its conversion.json."""
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", CHILD, str(run), workdir, ",".join(formats)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        return wall, json.loads(ExportDir(Path(workdir)).conversion.read_text())


def measure(run: Path, formats: list[str]) -> dict:
    wall_all, report = timed_conversion(run, formats)
    print(f"{run.name}: --all {wall_all:.1f} s", flush=True)
    alone = {}
    for fmt in formats:
        alone[fmt] = round(timed_conversion(run, [fmt])[0], 1)
        print(f"{run.name}: {fmt} alone {alone[fmt]:.1f} s", flush=True)
    slowest = max(alone, key=alone.get)
    rows = {row["format"]: row for row in report["artifacts"]}
    config = json.loads(RunDir(run).config.read_text())
    record = {"run": run_label(run), "model": config.get("train", {}).get("model"),
              "test_images": report["test_images"], "formats": formats,
              "all_wall_s": round(wall_all, 1), "alone_wall_s": alone,
              "slowest_alone": slowest,
              "all_over_slowest_alone": round(wall_all / alone[slowest], 2),
              "convert_s": {f: rows[f]["convert_s"] for f in formats},
              "verify_s": {f: rows[f].get("verify_s") for f in formats}}
    record["goal"] = "met" if record["all_over_slowest_alone"] <= GOAL else "missed"
    print(f"{record['model']}: --all {wall_all:.1f} s, slowest alone {slowest} "
          f"{alone[slowest]:.1f} s ({record['all_over_slowest_alone']}x; goal <= {GOAL}x "
          f"{record['goal']})", flush=True)
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = runs_parser(__doc__, "convert_time.json")
    args = parser.parse_args(argv)

    from edgecv.benchmarks.machine import machine_info
    from edgecv.converters.formats import FORMATS

    formats = [f for f in FORMATS if f not in ("int8_qat", "edgetpu")]
    results = [measure(run, formats) for run in args.runs]
    output = {"command": "python benchmarks/experiments/convert_time.py --runs "
                         + " ".join(run_label(r) for r in args.runs),
              "goal": f"--all wall time <= {GOAL}x the wall time of converting the slowest "
                      "single format alone (fresh processes, same run and data)",
              "machine": machine_info(), "runs": results}
    args.json.write_text(json.dumps(output, indent=2) + "\n")
    return output


if __name__ == "__main__":
    main()
