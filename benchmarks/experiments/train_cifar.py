"""Time to accuracy on CIFAR-10 photos: `edgecv train` with its defaults, as DAWNBench reports it.

    python benchmarks/experiments/train_cifar.py \\
        --data ../shared/data/cifar10_train.tar.xz
        [--model resnet8 --model ds_cnn ...] [--epochs N] [--target 0.85] [--json PATH]
        [--update] [--label NAME] [--keep DIR] [--adopt RUN] [--extra EDGECV_TRAIN_OPTIONS...]

    # the committed benchmarks/results/train_cifar.json (the Intel AMX rows; the AMD rows are
    # from earlier versions of this script, each row has its command and machine):
    python benchmarks/experiments/train_cifar.py --data ../shared/data/cifar10_train.tar.xz \
        --update --model resnet8 --epochs 50
    python benchmarks/experiments/train_cifar.py --data ../shared/data/cifar10_train.tar.xz \
        --update --model resnet8 --epochs 50 --label sgd --extra --optimizer sgd --lr 0.05
    python benchmarks/experiments/train_cifar.py --data ../shared/data/cifar10_train.tar.xz \
        --update --model resnet8 --epochs 100 --label 100-epochs --extra --patience 30
    # trained by `edgecv train ... --optimizer sgd --lr 0.05 --weight-decay 5e-4
    # --label-smoothing 0.1 --out RUN`, then recorded:
    python benchmarks/experiments/train_cifar.py --data ../shared/data/cifar10_train.tar.xz \
        --update --adopt RUN --label sgd-wd-ls
    python benchmarks/experiments/train_cifar.py --data ../shared/data/cifar10_train.tar.xz \
        --update --model mobilenet_v2 --epochs 7 --label 96px
    # the AMD AVX-512 BF16 rows:
    python benchmarks/experiments/train_cifar.py --data ../shared/data/cifar10_train.tar.xz \
        --update --model resnet8 --label time-limit-30m --extra --time-limit 30m
    python benchmarks/experiments/train_cifar.py --data ../shared/data/cifar10_train.tar.xz \
        --update --model resnet8 --label time-limit-30m-split-90-5-5 --extra --time-limit 30m \
        --val-split 0.05 --test-split 0.05

Each model is trained by the real CLI in a fresh process (``edgecv train --data ARCHIVE --model
M``, plus ``--epochs`` / ``--img-size`` / ``--extra`` when given), on edgecv's seeded split of the
archive (15% validation, 15% test, seed 0). Recorded per model: the curve of validation accuracy
against cumulative training wall time (``epoch_time_s`` of history.csv: fit time including the
validation pass, not data loading), the first time validation accuracy reached ``--target``, the
held-out test accuracy of the saved (best validation loss) model, images/s, parameters and MACs,
and the whole wall time of the command. Default output: benchmarks/results/train_cifar.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS_DIR
from edgecv.rundir import RunDir
from edgecv.training.config import TrainConfig
from edgecv.benchmarks.machine import machine_info, machine_warnings



def time_to_accuracy(history: dict[str, list[float]], target: float) -> dict:
    """The (cumulative seconds, validation accuracy) curve and when it first reached ``target``."""
    curve, elapsed = [], 0.0
    for seconds, accuracy in zip(history.get("epoch_time_s", []), history.get("val_accuracy", [])):
        elapsed += seconds
        curve.append([round(elapsed, 1), round(accuracy, 4)])
    reached = next((point for point in curve if point[1] >= target), None)
    return {"curve_s_val_accuracy": curve,
            "target": target,
            "time_to_target_s": reached[0] if reached else None,
            "epochs_to_target": curve.index(reached) + 1 if reached else None}


def run_model(data: str, model: str, args, workdir: Path) -> dict:
    """Train ``model`` once through the CLI and collect its figures."""
    run_dir = workdir / (model if args.label == "default" else f"{model}-{args.label}")
    command = ["edgecv", "train", "--data", data, "--model", model, "--out", str(run_dir),
               "--no-tensorboard", *(["--epochs", str(args.epochs)] if args.epochs else []),
               *args.extra]
    load_before = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    load = {"load_average_at_start": load_before, "load_average_at_end": os.getloadavg()}
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        return {"model": model, "command": " ".join(command), "failed": tail, **load}
    return run_row(run_dir, " ".join(command), wall, load, args.target)


def adopted_row(run_dir: Path, target: float) -> dict:
    """The row of a run already trained by ``edgecv train`` on this machine (``--adopt``): its
    command is rebuilt from config.json, and the command's wall time and the load around it
    are unknown (null); its epoch times are in the curve as for any other row."""
    config = json.loads(RunDir(run_dir).config.read_text())
    train = config["train"]
    defaults = TrainConfig()
    options = [f"--{key.replace('_', '-')} {train[key]}"
               for key in ("weight_decay", "label_smoothing", "optimizer", "lr", "lr_schedule",
                           "warmup_epochs", "patience")
               if key in train and train[key] != getattr(defaults, key)]
    command = " ".join(["edgecv", "train", "--data", train["data"], "--model", train["model"],
                        "--out", str(run_dir), "--no-tensorboard", "--epochs",
                        str(train["epochs"]), *options])
    return {**run_row(run_dir, command, None,
                      {"load_average_at_start": None, "load_average_at_end": None}, target),
            "adopted": True}


def run_row(run_dir: Path, command: str, wall: float | None, load: dict, target: float) -> dict:
    """The figures of one finished run directory."""
    from edgecv.training.report import read_history

    files = RunDir(run_dir)
    metrics = json.loads(files.metrics.read_text())
    config = json.loads(files.config.read_text())
    history = read_history(files.history)
    return {
        "model": config["train"]["model"],
        "command": command,
        "recipe": {key: config["train"][key] for key in (
            "img_size", "channels", "epochs", "batch_size", "optimizer", "lr", "weight_decay",
            "label_smoothing", "lr_schedule",
            "warmup_epochs", "augment", "flip", "crop_pad", "tta", "model_options",
            "deterministic", "precision", "patience", "time_limit")
            if key in config["train"]},
        "split": config["data"]["sizes"],
        "test_accuracy": metrics["test_accuracy"],
        "best_val_accuracy": max(history.get("val_accuracy", [0.0])),
        "epochs_run": metrics["epochs_run"],
        "training_time_s": metrics["training_time_s"],
        "command_wall_s": None if wall is None else round(wall, 1),
        "images_per_s": metrics["images_per_s"],
        "params": metrics["params"],
        "macs": metrics["macs"],
        **time_to_accuracy(history, target),
        **load,
        "machine": machine_info(),  # rows added with --update may come from another machine
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the CIFAR-10 archive or folder")
    parser.add_argument("--model", action="append", help="repeatable; default resnet8")
    parser.add_argument("--epochs", type=int, help="default: edgecv's default")
    parser.add_argument("--target", type=float, default=0.85,
                        help="validation accuracy to time (default 0.85, MLPerf Tiny's target)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="further `edgecv train` options, after everything else")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "train_cifar.json")
    parser.add_argument("--update", action="store_true", help="keep the other models' rows of "
                        "an existing --json (each row carries its own command and load)")
    parser.add_argument("--label", default="default",
                        help="the recipe's name in the file (rows are keyed by model and label, "
                        "so --update with another label adds a row beside the default one)")
    parser.add_argument("--adopt", type=Path, help="record a run directory already trained by "
                        "`edgecv train` on this machine instead of training (its row has no "
                        "command wall time or load record: `adopted`)")
    parser.add_argument("--keep", type=Path, help="write the run directories here (default: a "
                        "temporary folder, deleted) so that int8_cifar can convert them")
    args = parser.parse_args(argv)
    if args.adopt:
        if not RunDir(args.adopt).metrics.is_file():
            parser.error(f"--adopt {args.adopt} is not a finished edgecv run (no metrics.json).")
        args.model = [json.loads(RunDir(args.adopt).config.read_text())["train"]["model"]]
    if not Path(args.data).exists():
        parser.error(f"--data {args.data} does not exist; give the CIFAR-10 archive's path.")

    machine = machine_info()
    result = {"benchmark": "train_cifar", "data": Path(args.data).name, "machine": machine,
              "warnings": machine_warnings(machine), "load_average_at_start": os.getloadavg(),
              "models": []}
    if args.update and args.json.exists():
        rerun = {(model, args.label) for model in args.model or ["resnet8"]}
        earlier = json.loads(args.json.read_text())
        # rows from before the per-row machine record ran on the file's machine
        result["models"] = [{**row, "machine": row.get("machine", earlier.get("machine"))}
                            for row in earlier.get("models", [])
                            if (row["model"], row.get("label", "default")) not in rerun]
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.keep or Path(scratch)
        for model in args.model or ["resnet8"]:
            row = {"label": args.label,
                   **(adopted_row(args.adopt, args.target) if args.adopt
                      else run_model(args.data, model, args, workdir))}
            result["models"].append(row)
            if "failed" in row:
                print(f"{model}: failed: {row['failed']}", flush=True)
                continue
            reached = row["time_to_target_s"]
            print(f"{model}: test {row['test_accuracy']:.4f}, best val "
                  f"{row['best_val_accuracy']:.4f}, {row['epochs_run']} epochs in "
                  f"{row['training_time_s']:.0f} s ({row['images_per_s']} images/s); "
                  + (f"val >= {args.target:.0%} after {reached:.0f} s"
                     if reached else f"never reached {args.target:.0%}"), flush=True)
    # Epoch times are wall time: a busy machine inflates them (compare the quietest epochs).
    result["load_average_at_end"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.exit(0 if all("failed" not in row for row in main()["models"]) else 1)
