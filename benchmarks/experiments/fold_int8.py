"""The export fold on trained runs: int8 TFLite with and without the BatchNormalization after each
max pool folded into the convolution before it, on the same images.

    python benchmarks/experiments/fold_int8.py --runs RUN [RUN ...] [--json FILE]

For each run, the int8 TFLite file is built twice from the same calibration (300 images of the
run's training split, as ``edgecv convert`` takes them): once from ``model.keras`` as it is, once
from its export form (:func:`edgecv.converters.fuse.export_form`, what ``edgecv convert`` builds
from). Both run in LiteRT on the run's test split; accuracy, drop and top-1 agreement are against
the model as it is. Also the file's operators (the folded file has no per-channel MUL / ADD) and
its size. Writes benchmarks/results/fold_int8.json with the machine record.
"""

from __future__ import annotations

import sys
from collections import Counter

from _common import int8_figures, measure_runs, run_label


def measure(run) -> dict:
    from edgecv.converters.fuse import export_form
    from edgecv.converters.load import load_run
    from edgecv.tflite_schema import operator_types

    data = load_run(run)
    reference = data.model.predict(data.test_x, batch_size=256, verbose=0)
    fp32 = float((reference.argmax(1) == data.test_y).mean())
    folded, folds = export_form(data.model, data.calibration[:64])
    row = {"run": run_label(run), "model": data.train_config["model"],
           "test_images": int(len(data.test_y)), "fp32_accuracy": round(fp32, 5),
           "folds": folds}
    for name, model in (("as_trained", data.model), ("folded", folded)):
        blob, row[name] = int8_figures(model, data, reference, fp32)
        ops = Counter(op for op, _ in operator_types(blob))
        row[name]["operators"] = dict(sorted(ops.items()))
    return row


def summary(row: dict) -> str:
    before, after = row["as_trained"], row["folded"]
    return (f"{row['run']}: fp32 {row['fp32_accuracy']:.4f}; int8 as trained "
            f"{before['accuracy']:.4f} (agreement {before['agreement']:.4f}), folded "
            f"{after['accuracy']:.4f} (agreement {after['agreement']:.4f})")


def main(argv: list[str] | None = None) -> int:
    return measure_runs(__doc__, __file__, measure, summary, argv)


if __name__ == "__main__":
    sys.exit(main())
