"""Flip test-time augmentation on trained runs: accuracy with and without it, on the same images.

    python benchmarks/experiments/tta_cifar.py --runs RUN [RUN ...] [--json FILE]

Each run's ``model.keras`` is scored on the run's own validation and test splits (reloaded from
``config.json``: the same images training held out) as it is and wrapped by
:func:`edgecv.models.tta.flip_tta`, the model ``edgecv train --tta flip`` saves (the image and its
mirror image through the same layers, scores averaged). Training is not changed by TTA, so the
difference is TTA's alone. A run trained with ``--tta flip`` (airnet's recipe) is scored as saved
and through its plain half (the same layers on the image alone). The cost is reported as MACs (twice the model's, plus the mirror); its
latency is the bench's on a ``--tta flip`` run. Writes benchmarks/results/tta_cifar.json with the
machine record.
"""

from __future__ import annotations

import sys

from _common import measure_runs, run_label


def measure(run) -> dict:
    from edgecv.converters.load import load_run
    from edgecv.models import count_macs
    from edgecv.models.tta import plain_and_flip

    data = load_run(run)  # the run's model and its held-out splits, checked against split.json
    model, tta = plain_and_flip(data.model)  # a --tta flip run: its saved model and plain half
    row = {"run": run_label(run), "model": data.train_config["model"],
           "macs": int(count_macs(model)), "macs_flip_tta": int(count_macs(tta))}
    for name, x, y in (("val", data.val_x, data.val_y), ("test", data.test_x, data.test_y)):
        plain = model.predict(x, batch_size=256, verbose=0).argmax(1) == y
        mirrored = tta.predict(x, batch_size=256, verbose=0).argmax(1) == y
        row[name] = {"images": int(len(y)), "accuracy": round(float(plain.mean()), 5),
                     "accuracy_flip_tta": round(float(mirrored.mean()), 5),
                     "gain_pp": round(100 * float(mirrored.mean() - plain.mean()), 3),
                     "only_tta_right": int((mirrored & ~plain).sum()),
                     "only_plain_right": int((plain & ~mirrored).sum())}
    return row


def summary(row: dict) -> str:
    return f"{row['run']}: " + ", ".join(
        f"{name} {row[name]['accuracy']:.4f} -> {row[name]['accuracy_flip_tta']:.4f} with "
        f"flip TTA ({row[name]['images']} images)" for name in ("val", "test"))


def main(argv: list[str] | None = None) -> int:
    return measure_runs(__doc__, __file__, measure, summary, argv)


if __name__ == "__main__":
    sys.exit(main())
