"""``edgecv pipeline``: train -> convert -> verify -> bench -> one HTML report, in the run directory.

Each step is the same code as its own command (``train``, ``convert``, ``bench``); the pipeline
only chains them and gathers their outputs into ``RUN/report.html`` (with ``bench.json`` and
``bench.md`` beside it). A conversion that loses more accuracy than ``--max-drop`` does not
stop the pipeline before the report is written: the report shows it, then the command exits 1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgecv.errors import EdgecvError
from edgecv.rundir import RunDir

# The formats a deployment is chosen among; the others are an `edgecv convert --all` away.
PIPELINE_FORMATS = ["fp32", "fp16", "int8", "onnx", "onnx_int8"]

# The report's conversion columns: (header, conversion.json key, value -> shown number), in the
# units a reader compares (MB, %, pp) and to the digits that differ between artifacts.
CONVERSION_COLUMNS = (
    ("format", "format", str), ("file", "file", str),
    ("size MB", "size_bytes", lambda size: round(size / 1e6, 3)),
    ("size vs fp32", "size_ratio_vs_fp32", lambda ratio: round(ratio, 3)),
    ("accuracy %", "accuracy", lambda accuracy: round(100 * accuracy, 2)),
    ("drop pp", "accuracy_drop_pp", lambda drop: round(drop, 2)),
    ("agreement %", "agreement", lambda agreement: round(100 * agreement, 2)),
    ("max abs diff", "max_abs_diff", lambda diff: float(f"{diff:.3g}")),
    ("convert s", "convert_s", lambda seconds: round(seconds, 1)),
)


def _worst_class_text(worst: dict | None) -> str | None:
    """``"cat -1.2 pp (n=210)"``: the class that lost most, so an average cannot hide it."""
    if not worst:
        return None
    return f"{worst['class']} {-worst['drop_pp']:+.1f} pp (n={worst['count']})"


def conversion_section(report: dict):
    """The conversion table (conversion.json) as a report Section."""
    from edgecv.benchmarks.report import Section
    from edgecv.converters.rounding import rounding_text
    from edgecv.converters.verify import disagreements_text

    rows = [{**{header: None if row.get(key) is None else shown(row[key])
                for header, key, shown in CONVERSION_COLUMNS},
             "worst class": _worst_class_text(row.get("worst_class")),
             "disagreements": disagreements_text(row) or None}
            for row in report["artifacts"]]
    text = (f"Keras test accuracy {100 * report['keras_accuracy']:.2f}% on "
            f"{report['test_images']} held-out images; every artifact was run in its runtime on "
            f"the same images. Calibration: {report['calibration_samples']} training images.")
    split = next((row["rounding"] for row in report["artifacts"] if row.get("rounding")), None)
    if split:
        text += (f" The int8 file missed the budget; its rounding apart (kernels moved onto "
                 f"their int8 grid, then that model's own int8 file): {rounding_text(split)}.")
    return Section("Conversion and verification", text=text, table=rows)


def training_section(run_dir: Path):
    """Training curves, confusion matrix and the headline metrics as a report Section."""
    import json

    from edgecv.benchmarks.report import Section

    run = RunDir(run_dir)
    metrics = json.loads(run.metrics.read_text())
    config = json.loads(run.config.read_text())
    data = config["data"].get("name") or config["data"].get("path")
    text = (f"{config['train']['model']} on {data}: test accuracy {100 * metrics['test_accuracy']:.2f}%, "
            f"{metrics['params']:,} parameters, {metrics['epochs_run']} epochs in "
            f"{metrics['training_time_s']:.0f} s ({metrics['images_per_s']:.0f} images/s).")
    return Section("Training", text=text,
                   images=(run.training_curves, run.confusion_matrix))


def run_pipeline(train_config, *, bench_settings, overwrite: bool = False,
                 max_drop: float = 1.0, min_agreement: float | None = None,
                 recover: bool = False, qat_epochs: int | None = None,
                 log: Callable[[str], None] = print,
                 progress: Callable[[dict], None] | None = None
                 ) -> tuple[Path, dict, EdgecvError | None]:
    """Run every step; return (run directory, bench report, the conversion's accuracy error or
    None). ``max_drop`` and ``min_agreement`` are the budget (``--max-drop``,
    ``--min-agreement``), refused before training when out of range; ``recover`` follows an int8
    file over budget with a mixed one; ``qat_epochs`` (None:
    no QAT) adds the quantization-aware int8 file. ``progress`` is called with each bench row as
    it is measured."""
    from edgecv.benchmarks.suite import discover, find_testset, run_benchmark
    from edgecv.converters.convert import convert_run
    from edgecv.converters.formats import with_qat
    from edgecv.converters.verify import Budget
    from edgecv.errors import AccuracyDropError
    from edgecv.training import train

    Budget(max_drop, min_agreement)  # a bad budget is refused before minutes of training
    result = train(train_config, overwrite=overwrite, log=log)
    run_dir = Path(result.run_dir)
    run = RunDir(run_dir)
    formats = with_qat(PIPELINE_FORMATS) if qat_epochs else PIPELINE_FORMATS
    log(f"converting {', '.join(formats)}" + (" (--recover)" if recover else ""))
    drop_error = None
    try:
        conversion = convert_run(run_dir, formats, max_drop=max_drop,
                                 min_agreement=min_agreement, recover=recover,
                                 qat_epochs=qat_epochs, log=log)
    except AccuracyDropError as exc:  # the report is written; show it, fail at the end
        drop_error = exc
        import json

        conversion = json.loads(run.export.conversion.read_text())
    artifacts = discover([run_dir])
    log(f"benchmarking {len(artifacts)} model(s) on {', '.join(bench_settings.targets)}")
    report = run_benchmark(artifacts, bench_settings, find_testset(artifacts), progress=progress)
    write_run_report(run_dir, report, conversion)
    log(f"wrote {run.report_html}")
    return run_dir, report, drop_error


def write_run_report(run_dir: Path, report: dict, conversion: dict) -> Path:
    """Write the pipeline's reports into ``run_dir``: ``bench.json``, ``bench.md`` and
    ``report.html`` (training, conversion and verification, the bench), titled
    "edgecv pipeline: RUN". Returns the HTML report's path."""
    from edgecv.benchmarks import report as writer

    run = RunDir(run_dir)
    title = writer.report_title("pipeline", [run_dir])
    writer.write_json(report, run.bench_json)
    writer.write_markdown(report, run.bench_markdown, title)
    writer.write_html(report, run.report_html,
                      [training_section(run_dir), conversion_section(conversion)], title)
    return run.report_html
