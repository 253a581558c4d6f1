"""What the research scripts of ``benchmarks/experiments/`` share. Each script runs from a
checkout as ``python benchmarks/experiments/NAME.py`` (its folder is then first on ``sys.path``,
so it imports this module as ``_common``) and writes its figures to ``benchmarks/results/``.

They are not part of the installed package (pyproject.toml lists no package here, and the folder
has no ``__init__.py``): they use the product (the bench engine, converters, training) but
nothing in edgecv imports them.
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
