"""What the research scripts of ``benchmarks/experiments/`` share. Each script runs from a
checkout as ``python benchmarks/experiments/NAME.py`` (its folder is then first on ``sys.path``,
so it imports this module as ``_common``) and writes its figures to ``benchmarks/results/``.

They are not part of the installed package (pyproject.toml lists no package here, and the folder
has no ``__init__.py``): they use the product (the bench engine, converters, training) but
nothing in edgecv imports them.
"""

import argparse
import json
import os
from pathlib import Path
from typing import Callable

# The committed results live beside the engine, not in this package: benchmarks/results/.
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def runs_parser(doc: str, json_name: str) -> argparse.ArgumentParser:
    """The parser of an experiment over run directories: ``--runs RUN...`` and ``--json``
    (default ``benchmarks/results/<json_name>``); the description is ``doc``'s first line."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / json_name)
    return parser


def int8_figures(model, data, reference, fp32: float) -> tuple[bytes, dict]:
    """The int8 TFLite file of ``model`` (int8 I/O, calibrated on the run ``data``'s
    calibration images as convert takes them) and its figures on ``data``'s test split in
    LiteRT against the ``reference`` scores (the model as it is, accuracy ``fp32``)."""
    import tempfile

    from edgecv.converters.tflite import to_tflite_int8
    from edgecv.converters.verify import agreement, artifact_scores
    from edgecv.modelfile.reference import reference_of

    blob = to_tflite_int8(reference_of(model), data.calibration, io="int8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model_int8.tflite"
        path.write_bytes(blob)
        scores = artifact_scores(path, data.test_x)
    accuracy = float((scores.argmax(1) == data.test_y).mean())
    return blob, {"accuracy": round(accuracy, 5), "drop_pp": round(100 * (fp32 - accuracy), 3),
                  "agreement": round(agreement(scores, reference), 5), "size_bytes": len(blob)}


def run_label(run: Path | str) -> str:
    """How results files name a run directory: ``RUNS/<its name>`` (no local path)."""
    return f"RUNS/{Path(run).name}"


def measure_runs(doc: str, script: str, measure: Callable[[Path], dict],
                 summary: Callable[[dict], str], argv: list[str] | None = None) -> int:
    """The main of an experiment over run directories (``script``: its file name, its results
    file ``<stem>.json`` by default): ``measure(run)`` gives each run's row (``summary(row)``
    prints it), written under ``runs`` with the command, the machine record and the load
    average before and after."""
    from edgecv.benchmarks.machine import machine_info, machine_warnings

    stem = Path(script).stem
    args = runs_parser(doc, f"{stem}.json").parse_args(argv)
    machine = machine_info()
    command = f"python benchmarks/experiments/{stem}.py --runs " + " ".join(
        run_label(run) for run in args.runs)
    result = {"benchmark": stem, "command": command, "machine": machine,
              "warnings": machine_warnings(machine), "load_average_at_start": os.getloadavg(),
              "runs": []}
    for run in args.runs:
        row = measure(run)
        result["runs"].append(row)
        print(summary(row), flush=True)
    result["load_average_at_end"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0
