"""TFLite Micro on every zoo model, on digits and on CIFAR-10: its agreement with the LiteRT int8
file and with LiteRT's reference kernels, accuracy, arena and model bytes.

    python -m edgecv.benchmarks.experiments.mcu_zoo ../shared/data/cifar10_train.tar.xz \\
        [--time-limit 3m] [--digits-time-limit 1m] [--cifar-test-images 2000] [--models ...]

Each zoo model (``edgecv models``) is trained here briefly at its default input size
(``edgecv train --data D --model M --time-limit T``; agreement between runtimes does not need a
fully trained model, and the figures say how long each trained), then converted by
``edgecv convert RUN --int8 --mcu`` (:func:`edgecv.converters.convert.convert_run`, the same
code), which verifies the microcontroller export in TFLite Micro's interpreter: on digits the
whole test split; on CIFAR-10 a class-stratified ``--cifar-test-images`` of it (TFLM's reference
kernels take up to a few hundred ms per image on this machine, and the whole split is 7,500
images per model). The goal per model: top-1 agreement with the LiteRT int8 file (XNNPACK, what
``edgecv bench`` times on a CPU) >= 99.9%; TFLM's reference kernels are expected bit-exact with
LiteRT's (``BUILTIN_REF``). Writes benchmarks/results/mcu_zoo.json with the machine record.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from edgecv.benchmarks.experiments import RESULTS_DIR

RESULTS = RESULTS_DIR / "mcu_zoo.json"
GOAL_AGREEMENT_VS_LITERT = 0.999


def train_run(data: str, model: str, time_limit: float, out: Path, log) -> tuple[Path, dict]:
    """Train ``model`` on ``data`` for ``time_limit`` seconds into ``out``; (run, what trained)."""
    from edgecv.models import get_model_info
    from edgecv.rundir import RunDir
    from edgecv.training import TrainConfig, train

    size = get_model_info(model).default_img_size
    start = time.perf_counter()
    train(TrainConfig(data=data, model=model, img_size=size, time_limit=time_limit,
                      tensorboard=False, out=str(out)), log=log)
    history = RunDir(out).history.read_text().strip().splitlines()
    metrics = json.loads(RunDir(out).metrics.read_text())
    return out, {"img_size": size, "time_limit_s": time_limit, "epochs": len(history) - 1,
                 "train_s": round(time.perf_counter() - start, 1),
                 "test_accuracy": metrics["test_accuracy"]}


def load_subset(run: Path, test_images: int | None):
    """The run as convert loads it, its test split cut to a class-stratified ``test_images``
    (None: all of it)."""
    from edgecv.converters.calibration import stratified_indices
    from edgecv.converters.load import load_run

    data = load_run(run)
    if test_images is None or test_images >= len(data.test_x):
        return data
    index = stratified_indices(data.test_y, test_images, seed=0, total=len(data.test_x))
    data.test_x, data.test_y = data.test_x[index], data.test_y[index]
    data.test_images = data.test_images[index]
    data.test_ids = [data.test_ids[i] for i in index]
    return data


def measure(data, out: Path, log) -> dict:
    """``convert --int8 --mcu`` of a loaded run; the figures of its int8 and mcu rows."""
    from edgecv.converters.convert import convert_run

    start = time.perf_counter()
    report = convert_run(data, ["int8", "mcu"], out_dir=out, max_drop=100, log=log)
    rows = {row["format"]: row for row in report["artifacts"]}
    int8, mcu = rows["int8"], rows["mcu"]
    record = json.loads((out / "mcu" / "mcu.json").read_text())
    tflm = mcu["tflm"]
    return {"test_images": report["test_images"], "keras_accuracy": report["keras_accuracy"],
            "litert_int8_accuracy": int8["accuracy"], "tflm_accuracy": mcu["accuracy"],
            "tflm_agreement_vs_keras": mcu["agreement"],
            "tflm_agreement_vs_litert": tflm["agreement_vs_litert"],
            "tflm_max_diff_steps_vs_litert": tflm["max_diff_steps_vs_litert"],
            "tflm_agreement_vs_reference_kernels": tflm["agreement_vs_reference_kernels"],
            "tflm_bit_exact_vs_reference_kernels": tflm["bit_exact_vs_reference_kernels"],
            "tflm_outputs_differing_from_reference_kernels":
                tflm["outputs_differing_from_reference_kernels"],
            "tflm_max_diff_steps_vs_reference_kernels": tflm["max_diff_steps_vs_reference_kernels"],
            "outputs": tflm["outputs"],
            "arena": {k: record["arena"][k] for k in ("total", "head", "tail", "reserved")},
            "model_bytes": record["model_bytes"],
            "ops": {op["op"]: op["count"] for op in record["ops"]},
            "mcu_verify_s": mcu["verify_s"], "convert_s": round(time.perf_counter() - start, 1),
            "meets_goal": tflm["agreement_vs_litert"] >= GOAL_AGREEMENT_VS_LITERT}


def main(argv: list[str] | None = None) -> int:
    from edgecv.models import list_models
    from edgecv.training.timeplan import parse_duration

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cifar", help="the CIFAR-10 archive (cifar10_train.tar.xz) or folder")
    parser.add_argument("--models", nargs="+", default=list_models(), help="default: every zoo "
                        "model")
    parser.add_argument("--datasets", nargs="+", default=["digits", "cifar10"],
                        choices=("digits", "cifar10"))
    parser.add_argument("--time-limit", default="3m", help="training time per CIFAR-10 model")
    parser.add_argument("--digits-time-limit", default="1m", help="training time per digits "
                        "model")
    parser.add_argument("--cifar-test-images", type=int, default=2000, help="class-stratified "
                        "test images per CIFAR-10 model (default 2000; 0: the whole split)")
    parser.add_argument("--out", default=str(RESULTS), help=f"default {RESULTS}")
    args = parser.parse_args(argv)
    from edgecv.benchmarks.machine import machine_info
    from edgecv.io import write_json_atomic
    from edgecv.runtime.tflm import tflm_version

    limits = {"digits": parse_duration(args.digits_time_limit),
              "cifar10": parse_duration(args.time_limit)}
    sources = {"digits": "digits", "cifar10": args.cifar}
    subsets = {"digits": None, "cifar10": args.cifar_test_images or None}
    results = []
    out = Path(args.out)

    def save() -> None:  # after every model: a long run keeps what it measured
        write_json_atomic(out, {
            "benchmark": "mcu_zoo", "goal": {"tflm_agreement_vs_litert": GOAL_AGREEMENT_VS_LITERT},
            "machine": machine_info(), "tflite_micro": tflm_version(),
            "command": " ".join(["python -m edgecv.benchmarks.experiments.mcu_zoo",
                                 *sys.argv[1:]]),
            "test_split": {"digits": "all of it", "cifar10": (
                f"a class-stratified {args.cifar_test_images} of it (seed 0)"
                if args.cifar_test_images else "all of it")},
            "models": results})

    with tempfile.TemporaryDirectory() as workdir:
        for dataset in args.datasets:
            for model in args.models:
                print(f"== {dataset} {model}", flush=True)
                run, trained = train_run(sources[dataset], model, limits[dataset],
                                         Path(workdir) / f"{dataset}-{model}", lambda _: None)
                data = load_subset(run, subsets[dataset])
                figures = measure(data, Path(workdir) / f"{dataset}-{model}-export", print)
                results.append({"dataset": dataset, "model": model, "trained": trained,
                                **figures})
                save()
    print(f"wrote {out}")
    for r in results:
        print(f"{r['dataset']:<8} {r['model']:<15} acc keras {r['keras_accuracy']:.4f} tflm "
              f"{r['tflm_accuracy']:.4f}  agree litert {100 * r['tflm_agreement_vs_litert']:.2f}% "
              f"ref {100 * r['tflm_agreement_vs_reference_kernels']:.2f}% "
              f"(bit-exact {r['tflm_bit_exact_vs_reference_kernels']})  arena "
              f"{r['arena']['total']} model {r['model_bytes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
