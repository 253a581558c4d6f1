"""How long `edgecv convert RUN --all` takes, against its slowest single artifact.

    python -m edgecv.benchmarks.experiments.convert_time --runs RUN... [--json PATH]

Converts each run with every format except QAT (``--all``) into a temporary folder, records the
wall time of the whole call (loading and verification included) and each artifact's own
``convert_s`` from ``conversion.json``. Goal (issue 12): ``--all`` no slower than 2x the single
slowest artifact.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgecv.benchmarks.experiments import RESULTS_DIR
from edgecv.rundir import ExportDir, RunDir

GOAL = 2.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "convert_time.json")
    args = parser.parse_args(argv)

    from edgecv.benchmarks.machine import machine_info
    from edgecv.converters.convert import convert_run
    from edgecv.converters.formats import FORMATS
    from edgecv.errors import AccuracyDropError
    from edgecv.timing import Stopwatch

    formats = [f for f in FORMATS if f not in ("int8_qat", "edgetpu")]
    results = []
    for run in args.runs:
        with tempfile.TemporaryDirectory() as workdir:
            watch = Stopwatch()
            try:
                convert_run(run, formats, out_dir=workdir, log=lambda _: None)
            except AccuracyDropError:
                pass  # the figures are what matter here; conversion.json is written
            wall = watch.elapsed()
            report = json.loads(ExportDir(Path(workdir)).conversion.read_text())
        per = {row["format"]: row["convert_s"] for row in report["artifacts"]}
        slowest = max(per, key=per.get)
        config = json.loads(RunDir(run).config.read_text())
        record = {"run": f"RUNS/{run.name}", "model": config.get("train", {}).get("model"),
                  "formats": formats, "wall_s": round(wall, 1), "convert_s": per,
                  "sum_convert_s": round(sum(per.values()), 1), "slowest": slowest,
                  "wall_over_slowest": round(wall / per[slowest], 2)}
        record["goal"] = "met" if record["wall_over_slowest"] <= GOAL else "missed"
        results.append(record)
        print(f"{record['model']}: --all {wall:.1f} s, slowest {slowest} {per[slowest]:.1f} s "
              f"({record['wall_over_slowest']}x; goal <= {GOAL}x {record['goal']})", flush=True)
    output = {"command": "python -m edgecv.benchmarks.experiments.convert_time --runs "
                         + " ".join(f"RUNS/{r.name}" for r in args.runs),
              "goal": f"--all wall time <= {GOAL}x the slowest single artifact's convert_s",
              "machine": machine_info(), "runs": results}
    args.json.write_text(json.dumps(output, indent=2) + "\n")
    return output


if __name__ == "__main__":
    main()
