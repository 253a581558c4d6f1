"""Flip test-time augmentation on trained runs: accuracy with and without it, on the same images.

    python benchmarks/experiments/tta_cifar.py --runs RUN [RUN ...] [--json FILE]

Each run's ``model.keras`` is scored on the run's own validation and test splits (reloaded from
``config.json``: the same images training held out) as it is and wrapped by
:func:`edgecv.models.tta.flip_tta`, the model ``edgecv train --tta flip`` saves (the image and its
mirror image through the same layers, scores averaged). Training is not changed by TTA, so the
difference is TTA's alone. The cost is reported as MACs (twice the model's, plus the mirror); its
latency is the bench's on a ``--tta flip`` run. Writes benchmarks/results/tta_cifar.json with the
machine record.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from _common import run_label, runs_parser
from edgecv.benchmarks.machine import machine_info, machine_warnings


def measure(run) -> dict:
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    from edgecv.data import load_dataset, source_spec
    from edgecv.models import count_macs
    from edgecv.models.tta import flip_tta
    from edgecv.preprocessing import Preprocessing

    record = json.loads((run / "config.json").read_text(encoding="utf-8"))
    pre = Preprocessing.from_dict(record["preprocessing"])
    data = record["data"]
    dataset = load_dataset(source_spec(data), pre.height, pre.width, pre.channels,
                           val_split=data["val_split"], test_split=data["test_split"],
                           seed=data["seed"])
    model = keras.saving.load_model(run / "model.keras")
    if any(layer.name == "tta_mirror" for layer in model.layers):
        raise SystemExit(f"{run}: its model already computes flip TTA (trained with --tta flip)")
    tta = flip_tta(model)
    row = {"run": run_label(run), "model": record["train"]["model"],
           "macs": int(count_macs(model)), "macs_flip_tta": int(count_macs(tta))}
    for name, split in (("val", dataset.val), ("test", dataset.test)):
        x = pre.normalize(split.x)
        plain = model.predict(x, batch_size=256, verbose=0).argmax(1) == split.y
        mirrored = tta.predict(x, batch_size=256, verbose=0).argmax(1) == split.y
        row[name] = {"images": int(len(split.y)), "accuracy": round(float(plain.mean()), 5),
                     "accuracy_flip_tta": round(float(mirrored.mean()), 5),
                     "gain_pp": round(100 * float(mirrored.mean() - plain.mean()), 3),
                     "only_tta_right": int((mirrored & ~plain).sum()),
                     "only_plain_right": int((plain & ~mirrored).sum())}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = runs_parser(__doc__, "tta_cifar.json")
    args = parser.parse_args(argv)
    machine = machine_info()
    command = "python benchmarks/experiments/tta_cifar.py --runs " + " ".join(
        run_label(run) for run in args.runs)
    result = {"benchmark": "tta_cifar", "command": command, "machine": machine,
              "warnings": machine_warnings(machine), "load_average_at_start": os.getloadavg(),
              "runs": []}
    for run in args.runs:
        row = measure(run)
        result["runs"].append(row)
        print(f"{row['run']}: " + ", ".join(
            f"{name} {row[name]['accuracy']:.4f} -> {row[name]['accuracy_flip_tta']:.4f} with "
            f"flip TTA ({row[name]['images']} images)" for name in ("val", "test")))
    result["load_average_at_end"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
