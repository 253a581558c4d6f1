"""Training throughput: `edgecv train` vs a plain `model.fit` of the same model and data.

    python benchmarks/experiments/train_throughput.py [--data digits|PATH] [--model resnet8]
        [--epochs 10] [--batch-size N] [--repeats 2] [--json PATH]

    # CIFAR-10 photos at 32x32x3 (the committed train_throughput_cifar.json):
    python benchmarks/experiments/train_throughput.py \
        --data ../shared/data/cifar10_train.tar.xz --epochs 1 --variants plain_fit plain_fit_onednn edgecv_default \
        --json benchmarks/results/train_throughput_cifar.json

    # streamed from disk vs in memory (the committed train_stream_cifar.json):
    python benchmarks/experiments/train_throughput.py \
        --data ../shared/data/cifar10_train.tar.xz --epochs 2 --variants edgecv_default edgecv_streamed \
        --json benchmarks/results/train_stream_cifar.json

Every measurement runs in a fresh process (TensorFlow's op-determinism switch is process-wide, so
sharing a process would leak one variant's setting into the next), variants interleaved so that
drift of the machine hits all of them. Each trains the same registry model on the same
train split of ``--data`` with the same batch size (default: edgecv's default for that data),
validation data and epoch count (no early stop).

Variants:
- ``plain_fit``: ``model.fit`` on normalised numpy arrays, nothing else (what a user writes),
  with TensorFlow's own oneDNN choice (off on CPUs without AVX-512/AMX-class features, such as
  the AMD AVX2 machine here).
- ``plain_fit_onednn``: the same with ``TF_ENABLE_ONEDNN_OPTS=1``, which edgecv sets on x86-64.
- ``plain_fit_bfloat16``: ``plain_fit_onednn`` under Keras' ``mixed_bfloat16`` policy (the
  classifier in float32, as edgecv does): the bare fit that ``edgecv_like_for_like`` is to be
  compared with on a CPU where ``--precision auto`` trains in bfloat16.
- ``plain_fit_deterministic``: the same with ``enable_op_determinism()``.
- ``edgecv_like_for_like``: ``edgecv train`` with every callback but no augmentation and no
  op determinism, i.e. the same work as ``plain_fit`` plus edgecv's bookkeeping.
- ``edgecv_nondeterministic``: ``edgecv train`` as shipped but ``--no-deterministic``: with
  ``edgecv_default`` it isolates what op determinism costs.
- ``edgecv_default``: ``edgecv train`` as shipped (augmentation, deterministic ops, oneDNN on
  x86-64): the augmentation is extra work a plain fit does not do (affine for digits, crop + flip
  for photos).
- ``edgecv_default_no_onednn``: as shipped but ``TF_ENABLE_ONEDNN_OPTS=0``: what the oneDNN
  default is worth inside edgecv.
- ``edgecv_float32``: as shipped but ``--precision float32``: with ``edgecv_default`` it
  isolates what mixed bfloat16 (``--precision auto`` on CPUs with AMX-BF16 / AVX512-BF16) is
  worth; on other CPUs the two are the same.
- ``edgecv_streamed``: as shipped, with the train split streamed from disk
  (``EDGECV_MAX_MEMORY_BYTES=0``; for a folder or archive only, the built-in and Keras datasets
  are arrays): with ``edgecv_default`` (in memory) it isolates what streaming costs.
- ``edgecv_xla``: ``--no-deterministic --xla on`` (Keras' ``jit_compile=True``; Keras turns
  XLA off under op determinism, so edgecv refuses ``--xla on`` with it): with
  ``edgecv_nondeterministic`` (``--xla auto``, which is off on a CPU-only machine) it isolates
  what XLA compilation of the training step is worth on this CPU.

images/s = training images x epochs / wall time of the fit call (edgecv: as in metrics.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgecv.benchmarks.machine import machine_info, machine_warnings

VARIANTS = ("plain_fit", "plain_fit_onednn", "plain_fit_bfloat16", "plain_fit_deterministic", "edgecv_like_for_like",
            "edgecv_nondeterministic", "edgecv_default", "edgecv_default_no_onednn",
            "edgecv_float32", "edgecv_streamed", "edgecv_xla")
# TF_ENABLE_ONEDNN_OPTS per variant (None: unset, TensorFlow's own choice for the CPU; the other
# variants get edgecv's default through edgecv.tf_import, "1" on x86-64).
ONEDNN_ENV = {"plain_fit": None, "plain_fit_deterministic": None, "plain_fit_onednn": "1",
              "plain_fit_bfloat16": "1",
              "edgecv_default_no_onednn": "0"}


def measure(variant: str, data: str, model_name: str, epochs: int, batch_size: int,
            seed: int) -> float:
    """Train once in this process and return images/s."""
    import os

    if variant in ONEDNN_ENV:  # read once, when TensorFlow loads: set it before the import
        if ONEDNN_ENV[variant] is None:
            os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
        else:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = ONEDNN_ENV[variant]
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf  # directly: edgecv.tf_import would set the variable
    else:
        from edgecv.tf_import import import_tensorflow

        tf = import_tensorflow()
    if variant.startswith("plain"):
        import keras

        from edgecv.data import load_dataset
        from edgecv.models import create_model
        from edgecv.preprocessing import Preprocessing
        from edgecv.training.config import TrainConfig, resolve
        from edgecv.training.recipe import make_loss, make_optimizer

        if variant == "plain_fit_deterministic":
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(seed)
        config = resolve(TrainConfig(data=data, model=model_name))
        size, channels = config.img_size, config.channels
        pre = Preprocessing(size, size, channels)
        ds = load_dataset(data, size, size, channels, seed=seed)
        if variant == "plain_fit_bfloat16":
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = create_model(model_name, pre.input_shape, ds.num_classes)
        if variant == "plain_fit_bfloat16":
            model.get_layer("scores").dtype_policy = "float32"
        # the model's own recipe (optimizer, learning rate, weight decay, label smoothing), the
        # constant rate a user writes first (the schedule costs nothing per step)
        model.compile(optimizer=make_optimizer(config.optimizer, config.lr, config.weight_decay),
                      loss=make_loss(config.label_smoothing), metrics=["accuracy"])
        x, x_val = pre.normalize(ds.train.x), pre.normalize(ds.val.x)
        start = time.perf_counter()
        model.fit(x, ds.train.y, batch_size=batch_size, epochs=epochs, shuffle=True,
                  validation_data=(x_val, ds.val.y), verbose=0)
        return len(ds.train) * epochs / (time.perf_counter() - start)

    from edgecv.training import TrainConfig, train

    like_for_like = variant == "edgecv_like_for_like"
    deterministic = variant in ("edgecv_default", "edgecv_default_no_onednn", "edgecv_float32",
                                "edgecv_streamed")
    if variant == "edgecv_streamed":
        os.environ["EDGECV_MAX_MEMORY_BYTES"] = "0"  # read when the data loads
    with tempfile.TemporaryDirectory() as workdir:
        config = TrainConfig(data=data, model=model_name, epochs=epochs, batch_size=batch_size,
                             seed=seed, augment="none" if like_for_like else "auto",
                             deterministic=deterministic, patience=10_000,
                             precision="float32" if variant == "edgecv_float32" else "auto",
                             xla="on" if variant == "edgecv_xla" else "auto",
                             tensorboard=False, out=str(Path(workdir) / "run"))
        return float(train(config, log=lambda _line: None).metrics["images_per_s"])


def _auto_precision() -> dict:
    """What ``--precision auto`` trains in on this machine's CPU (no GPU is used here)."""
    from edgecv.runtime import cpu_flags
    from edgecv.training.precision import resolve_precision

    precision, reason = resolve_precision("auto", flags=cpu_flags(), gpus=0, strategy="default")
    return {"precision": precision, "reason": reason}


def default_batch_size(data: str, model: str) -> int:
    """edgecv's default batch for ``data`` (it depends on the training split's size)."""
    from edgecv.data import load_dataset
    from edgecv.training.config import TrainConfig, resolve, resolve_for_data

    config = resolve(TrainConfig(data=data, model=model))
    dataset = load_dataset(data, config.img_size, config.img_size, config.channels)
    return resolve_for_data(config, len(dataset.train)).batch_size


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", help="digits (default), a folder or archive")
    parser.add_argument("--model", default="resnet8")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int,
                        help="default: edgecv's default for the data (32, or 64 from 10,000 images)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                        help="which to run (default all; plain_fit is the reference, always run)")
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch_size is None:
        args.batch_size = default_batch_size(args.data, args.model)

    if args.one:
        print(measure(args.one, args.data, args.model, args.epochs, args.batch_size, args.seed))
        return {}

    variants = ["plain_fit"] + [v for v in args.variants if v != "plain_fit"]
    figures: dict[str, list[float]] = {variant: [] for variant in variants}
    for repeat in range(args.repeats):
        for variant in variants:
            out = subprocess.run(
                [sys.executable, __file__,
                 "--one", variant, "--data", args.data, "--model", args.model, "--epochs", str(args.epochs),
                 "--batch-size", str(args.batch_size), "--seed", str(repeat)],
                capture_output=True, text=True, check=True)
            figures[variant].append(float(out.stdout.strip().splitlines()[-1]))
            print(f"  repeat {repeat + 1}: {variant:<24} {figures[variant][-1]:8.1f} images/s",
                  flush=True)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    plain = medians["plain_fit"]
    result = {
        "data": Path(args.data).name, "model": args.model, "epochs": args.epochs,
        "batch_size": args.batch_size,
        "repeats": args.repeats, "images_per_s": {k: round(v, 1) for k, v in medians.items()},
        "TF_ENABLE_ONEDNN_OPTS": {v: ONEDNN_ENV.get(v, "edgecv default (1 on x86-64)") or "unset"
                                  for v in variants},
        "ratio_vs_plain_fit": {k: round(v / plain, 3) for k, v in medians.items()},
        "all_runs_images_per_s": {k: [round(v, 1) for v in values] for k, values in figures.items()},
        "machine": machine_info(),
        "warnings": machine_warnings(machine_info()),
    }
    result["precision_auto"] = _auto_precision()
    print(f"model {args.model}, {args.epochs} epochs, batch {args.batch_size}, "
          f"median of {args.repeats}, each in a fresh process")
    for name in variants:
        print(f"  {name:<24} {result['images_per_s'][name]:>8.1f} images/s  "
              f"{result['ratio_vs_plain_fit'][name]:.3f}x plain fit")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
