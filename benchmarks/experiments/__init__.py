"""edgecv.benchmarks.experiments: one-off research scripts, each run as ``python -m
edgecv.benchmarks.experiments.NAME`` and each writing its figures to ``benchmarks/results/``.

They use the product (the bench engine, converters, training) but nothing in edgecv imports them.
"""

import argparse
from pathlib import Path

# The committed results live beside the engine, not in this package: benchmarks/results/.
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def runs_parser(doc: str, json_name: str) -> argparse.ArgumentParser:
    """The parser of an experiment over run directories: ``--runs RUN...`` and ``--json``
    (default ``benchmarks/results/<json_name>``); the description is ``doc``'s first line."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / json_name)
    return parser


def run_label(run: Path | str) -> str:
    """How results files name a run directory: ``RUNS/<its name>`` (no local path)."""
    return f"RUNS/{Path(run).name}"
