"""Regenerate the committed benchmark report of the default run (benchmarks/results/).

    python benchmarks/experiments/default_report.py [--run RUN] [--out benchmarks/results] \
        [--repeats 5]

Without ``--run`` it runs the Quick start's ``edgecv pipeline`` (resnet8 on digits, offline)
into a temporary folder, with a thread sweep of 1 and 2; with ``--run`` it benchmarks an
existing, converted run instead. Then the performance goals
(``goals.py`` beside this script, with the model-size sweep). Writes ``bench_default.{json,md,html}`` and ``goals.json``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import RESULTS_DIR
from edgecv.rundir import RunDir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="an existing converted run (default: train one)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        if args.run is None:
            run = Path(workdir) / "run"
            subprocess.run([sys.executable, "-m", "edgecv", "pipeline", "--out", str(run),
                            "--threads", "1,2"], check=True)
            files = RunDir(run)
            for source, target in ((files.bench_json, "bench_default.json"),
                                   (files.bench_markdown, "bench_default.md"),
                                   (files.report_html, "bench_default.html")):
                shutil.copy(source, args.out / target)
        else:
            run = args.run
            subprocess.run([sys.executable, "-m", "edgecv", "bench", str(run), "--threads", "1,2",
                            "--json", str(args.out / "bench_default.json"),
                            "--md", str(args.out / "bench_default.md"),
                            "--html", str(args.out / "bench_default.html")], check=True)
        subprocess.run([sys.executable, str(Path(__file__).with_name("goals.py")), str(run),
                        "--zoo", "--repeats", str(args.repeats), "--json", str(args.out / "goals.json")],
                       check=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
