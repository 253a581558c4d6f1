"""edgecv.benchmarks.experiments: one-off research scripts, each run as ``python -m
edgecv.benchmarks.experiments.NAME`` and each writing its figures to ``benchmarks/results/``.

They use the product (the bench engine, converters, training) but nothing in edgecv imports them.
"""

from pathlib import Path

# The committed results live beside the engine, not in this package: benchmarks/results/.
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
