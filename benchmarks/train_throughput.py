"""Training throughput: `edgecv train` vs a plain `model.fit` of the same model and data.

    python -m edgecv.benchmarks.train_throughput [--model resnet8] [--epochs 10] [--repeats 2]

Every measurement runs in a fresh process (TensorFlow's op-determinism switch is process-wide, so
sharing a process would leak one variant's setting into the next), variants interleaved so that
drift of the machine hits all of them. Each trains the same registry model on the same digits
train split with the same batch size, validation data and epoch count (no early stop).

Variants:
- ``plain_fit``: ``model.fit`` on normalised numpy arrays, nothing else (what a user writes).
- ``plain_fit_deterministic``: the same with ``enable_op_determinism()``.
- ``edgecv_like_for_like``: ``edgecv train`` with every callback but no augmentation and no
  op determinism, i.e. the same work as ``plain_fit`` plus edgecv's bookkeeping.
- ``edgecv_default``: ``edgecv train`` as shipped (augmentation, deterministic ops).

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

VARIANTS = ("plain_fit", "plain_fit_deterministic", "edgecv_like_for_like", "edgecv_default")


def measure(variant: str, model_name: str, epochs: int, batch_size: int, seed: int) -> float:
    """Train once in this process and return images/s."""
    from edgecv.tf_import import import_tensorflow

    tf = import_tensorflow()
    if variant.startswith("plain"):
        import keras

        from edgecv.data import load_dataset
        from edgecv.models import create_model, get_model_info
        from edgecv.preprocessing import Preprocessing
        from edgecv.training.recipe import make_optimizer

        if variant == "plain_fit_deterministic":
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(seed)
        size = get_model_info(model_name).default_img_size
        pre = Preprocessing(size, size, 1)
        ds = load_dataset("digits", size, size, 1, seed=seed)
        model = create_model(model_name, pre.input_shape, ds.num_classes)
        model.compile(optimizer=make_optimizer("adam", 3e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        x, x_val = pre.normalize(ds.train.x), pre.normalize(ds.val.x)
        start = time.perf_counter()
        model.fit(x, ds.train.y, batch_size=batch_size, epochs=epochs, shuffle=True,
                  validation_data=(x_val, ds.val.y), verbose=0)
        return len(ds.train) * epochs / (time.perf_counter() - start)

    from edgecv.training import TrainConfig, train

    like_for_like = variant == "edgecv_like_for_like"
    with tempfile.TemporaryDirectory() as workdir:
        config = TrainConfig(model=model_name, epochs=epochs, batch_size=batch_size, seed=seed,
                             augment=not like_for_like, deterministic=not like_for_like,
                             patience=10_000, out=str(Path(workdir) / "run"))
        return float(train(config, log=lambda _line: None).metrics["images_per_s"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet8")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)  # child process
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        print(measure(args.one, args.model, args.epochs, args.batch_size, args.seed))
        return {}

    figures: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for repeat in range(args.repeats):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, "-m", "edgecv.benchmarks.train_throughput", "--one", variant,
                 "--model", args.model, "--epochs", str(args.epochs),
                 "--batch-size", str(args.batch_size), "--seed", str(repeat)],
                capture_output=True, text=True, check=True)
            figures[variant].append(float(out.stdout.strip().splitlines()[-1]))
            print(f"  repeat {repeat + 1}: {variant:<24} {figures[variant][-1]:8.1f} images/s",
                  flush=True)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    plain = medians["plain_fit"]
    result = {
        "model": args.model, "epochs": args.epochs, "batch_size": args.batch_size,
        "repeats": args.repeats, "images_per_s": {k: round(v, 1) for k, v in medians.items()},
        "ratio_vs_plain_fit": {k: round(v / plain, 3) for k, v in medians.items()},
    }
    print(f"model {args.model}, {args.epochs} epochs, batch {args.batch_size}, "
          f"median of {args.repeats}, each in a fresh process")
    for name in VARIANTS:
        print(f"  {name:<24} {result['images_per_s'][name]:>8.1f} images/s  "
              f"{result['ratio_vs_plain_fit'][name]:.3f}x plain fit")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
