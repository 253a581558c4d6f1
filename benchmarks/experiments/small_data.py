"""Which model for how many photos: airnet (the photo recipe) against resnet8 on 1,000 and 5,000
CIFAR-10 training images, time to accuracy and accuracy at the end.

    python benchmarks/experiments/small_data.py --data ../shared/data/cifar10_train.tar.xz \\
        [--sizes 1000 5000] [--models airnet resnet8] [--epochs 30] [--json PATH] [--keep DIR]

The archive is split 70/15/15 (seed 0, :func:`edgecv.data.load_dataset`'s fixed default; a
subset this small gets the same split from ``edgecv train``, whose cap of 2,500 held-out images
only applies from 16,667 images). From its train split a class-balanced subset is drawn (seeded) and copied into a class-folder tree of
``size / 0.7`` images, so that ``edgecv train`` on that folder (its own 70/15/15 split) trains on
``size`` images. Each model is trained there by the real CLI (``--model M --epochs N``, the rest
the model's recipe, fresh process each) and then scored on the archive's whole test split (7,500
images none of the subsets holds), so every row is measured on the same held-out photos.
Recorded per row: the validation curve against training time (history.csv's epoch times), the
test accuracy of the saved model, the best epoch, images/s. Default output:
benchmarks/results/train_small_data.json, with the machine record.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import RESULTS_DIR
from edgecv.benchmarks.machine import machine_info, machine_warnings
from edgecv.rundir import RunDir

TRAIN_FRACTION = 0.7  # edgecv train's default split: 15% validation, 15% test


def make_subset(dataset, size: int, folder: Path, seed: int = 0) -> int:
    """Copy a class-balanced sample of ``dataset``'s train split, ``size / 0.7`` images, into
    ``folder/<class>/``; returns how many were copied."""
    total = int(round(size / TRAIN_FRACTION))
    rng = np.random.default_rng(seed)
    per_class = total // dataset.num_classes
    chosen = []
    for label in range(dataset.num_classes):
        members = np.flatnonzero(dataset.train.y == label)
        chosen.extend(rng.permutation(members)[:per_class].tolist())
    root = Path(dataset.source["unpacked_root"])
    for index in chosen:
        relative = dataset.train.ids[index]
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)
    return len(chosen)


def test_accuracy(run_dir: Path, test_images: np.ndarray, test_labels: np.ndarray) -> float:
    """Top-1 accuracy of the run's saved model on the archive's test split."""
    import keras

    from edgecv.preprocessing import Preprocessing

    config = json.loads(RunDir(run_dir).config.read_text())
    model = keras.saving.load_model(RunDir(run_dir).model, compile=False)
    scores = model.predict(Preprocessing.from_dict(config["preprocessing"]).normalize(test_images),
                           batch_size=500, verbose=0)
    return float(np.mean(scores.argmax(axis=1) == test_labels))


def curve(run_dir: Path) -> list[list[float]]:
    """(cumulative training seconds, validation accuracy) per epoch."""
    from edgecv.training.report import read_history
    from train_cifar import time_to_accuracy

    history = read_history(RunDir(run_dir).history)
    return time_to_accuracy(history, target=1.0)["curve_s_val_accuracy"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the CIFAR-10 archive or class folders")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--models", nargs="+", default=["airnet", "resnet8"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "train_small_data.json")
    parser.add_argument("--keep", type=Path, help="keep the subsets and runs here")
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        parser.error(f"--data {args.data} does not exist; give the CIFAR-10 archive's path.")

    from edgecv.data import load_dataset
    from edgecv.data.archive import is_archive, unpack_archive
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    dataset = load_dataset(args.data, 32, 32, 3, seed=0)
    unpacked = unpack_archive(args.data)[0] if is_archive(args.data) else Path(args.data)
    dataset.source["unpacked_root"] = str(unpacked)
    machine = machine_info()
    result = {"benchmark": "train_small_data", "data": Path(args.data).name, "machine": machine,
              "warnings": machine_warnings(machine), "test_images": len(dataset.test),
              "load_average_at_start": os.getloadavg(), "rows": []}
    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep or Path(scratch)
        for size in args.sizes:
            subset = work / f"subset-{size}"
            if not subset.is_dir():
                make_subset(dataset, size, subset)
            for model in args.models:
                run_dir = work / f"{model}-{size}"
                command = ["edgecv", "train", "--data", str(subset), "--model", model,
                           "--epochs", str(args.epochs), "--no-tensorboard", "--overwrite",
                           "--out", str(run_dir)]
                start = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True)
                wall = time.perf_counter() - start
                shown = " ".join(["edgecv", "train", "--data", f"SUBSET-{size}", *command[4:-1],
                                  f"RUNS/{model}-{size}"])
                if done.returncode != 0:
                    result["rows"].append({"model": model, "train_images": size,
                                           "command": shown, "failed": done.stderr[-500:]})
                    print(f"{model} on {size}: failed", flush=True)
                    continue
                metrics = json.loads(RunDir(run_dir).metrics.read_text())
                row = {"model": model, "train_images": metrics["train_images"],
                       "command": shown,
                       "test_accuracy": round(test_accuracy(run_dir, dataset.test.x,
                                                            dataset.test.y), 4),
                       "own_split_test_accuracy": metrics["test_accuracy"],
                       "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
                       "training_time_s": metrics["training_time_s"],
                       "command_wall_s": round(wall, 1),
                       "images_per_s": metrics["images_per_s"], "params": metrics["params"],
                       "curve_s_val_accuracy": curve(run_dir)}
                result["rows"].append(row)
                print(f"{model} on {row['train_images']}: test {row['test_accuracy']:.4f} "
                      f"after {row['training_time_s']:.0f} s ({row['epochs_run']} epochs)",
                      flush=True)
    result["load_average_at_end"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.exit(0 if all("failed" not in row for row in main()["rows"]) else 1)
