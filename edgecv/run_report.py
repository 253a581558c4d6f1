"""The run's report that ``edgecv pipeline`` (:func:`edgecv.api.pipeline`) writes:
``RUN/report.html`` (training, conversion and verification, the bench) with ``bench.json`` and
``bench.md`` beside it.
"""

from __future__ import annotations

from pathlib import Path

from edgecv.results import Conversion
from edgecv.rundir import RunDir

# The report's conversion columns: (header, ConversionRow field, value -> shown number), in the
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


def conversion_section(conversion: Conversion):
    """The conversion table (conversion.json) as a report Section."""
    from edgecv.benchmarks.report import Section
    from edgecv.converters.rounding import rounding_text
    from edgecv.converters.verify import disagreements_text

    rows = [{**{header: None if getattr(row, field) is None else shown(getattr(row, field))
                for header, field, shown in CONVERSION_COLUMNS},
             "worst class": _worst_class_text(row.worst_class),
             "disagreements": disagreements_text(row.disagreements) or None}
            for row in conversion.artifacts]
    text = (f"Keras test accuracy {100 * conversion.keras_accuracy:.2f}% on "
            f"{conversion.test_images} held-out images; every artifact was run in its runtime on "
            f"the same images. Calibration: {conversion.calibration_samples} training images.")
    split = next((row.rounding for row in conversion.artifacts if row.rounding), None)
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


def write_run_report(run_dir: Path, report: dict, conversion: Conversion) -> Path:
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
