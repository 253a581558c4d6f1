"""Training throughput: `edgecv train` vs a plain `model.fit` of the same model and data.

    python -m edgecv.benchmarks.train_throughput [--model resnet8] [--epochs 10] [--repeats 2]

Both sides train the same registry model on the same digits train split (same batch size, same
validation data, same epochs, no early stop) in this one process, alternating A/B so that drift of
the machine hits both. edgecv's figure is the fit time its run reports in metrics.json (what the
user sees); plain fit is timed around `model.fit` on numpy arrays. Prints images/s and the ratio,
once without augmentation (like for like) and once with edgecv's default augmentation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def plain_fit_images_per_s(model_name: str, epochs: int, batch_size: int, seed: int) -> float:
    import keras

    from edgecv.data import load_dataset
    from edgecv.models import create_model
    from edgecv.preprocessing import Preprocessing
    from edgecv.training.trainer import make_optimizer

    keras.utils.set_random_seed(seed)
    pre = Preprocessing(32, 32, 1)
    ds = load_dataset("digits", 32, 32, 1, seed=seed)
    model = create_model(model_name, pre.input_shape, ds.num_classes)
    model.compile(optimizer=make_optimizer("adam", 1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, x_val = pre.normalize(ds.train.x), pre.normalize(ds.val.x)
    start = time.perf_counter()
    model.fit(x, ds.train.y, batch_size=batch_size, epochs=epochs, shuffle=True,
              validation_data=(x_val, ds.val.y), verbose=0)
    return len(ds.train) * epochs / (time.perf_counter() - start)


def edgecv_images_per_s(model_name: str, epochs: int, batch_size: int, seed: int,
                        augment: bool, workdir: Path) -> float:
    from edgecv.training import TrainConfig, train

    out = Path(tempfile.mkdtemp(dir=workdir))
    config = TrainConfig(model=model_name, epochs=epochs, batch_size=batch_size, seed=seed,
                         augment=augment, patience=10_000, out=str(out / "run"))
    result = train(config, log=lambda _line: None)
    return float(result.metrics["images_per_s"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet8")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    figures: dict[str, list[float]] = {"plain_fit": [], "edgecv_no_augment": [], "edgecv_augment": []}
    with tempfile.TemporaryDirectory() as workdir:
        plain_fit_images_per_s(args.model, 1, args.batch_size, 0)  # warm-up: graph tracing, caches
        for repeat in range(args.repeats):
            figures["plain_fit"].append(plain_fit_images_per_s(args.model, args.epochs,
                                                               args.batch_size, repeat))
            figures["edgecv_no_augment"].append(edgecv_images_per_s(
                args.model, args.epochs, args.batch_size, repeat, False, Path(workdir)))
            figures["edgecv_augment"].append(edgecv_images_per_s(
                args.model, args.epochs, args.batch_size, repeat, True, Path(workdir)))
    medians = {name: statistics.median(values) for name, values in figures.items()}
    result = {
        "model": args.model, "epochs": args.epochs, "batch_size": args.batch_size,
        "repeats": args.repeats, "images_per_s": {k: round(v, 1) for k, v in medians.items()},
        "ratio_no_augment": round(medians["edgecv_no_augment"] / medians["plain_fit"], 3),
        "ratio_augment": round(medians["edgecv_augment"] / medians["plain_fit"], 3),
    }
    print(f"model {args.model}, {args.epochs} epochs, batch {args.batch_size}, "
          f"median of {args.repeats}")
    for name, value in result["images_per_s"].items():
        print(f"  {name:<18} {value:>9.1f} images/s")
    print(f"  edgecv / plain fit: {result['ratio_no_augment']:.3f}x without augmentation, "
          f"{result['ratio_augment']:.3f}x with augmentation")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
