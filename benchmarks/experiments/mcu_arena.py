"""TFLite Micro's tensor arena per model: TFLM's own plan against the reordered file and the
offline memory plan of edgecv.converters.arena, and the live-tensor lower bound.

    python benchmarks/experiments/mcu_arena.py [--models NAME ...] [--json PATH]

Every zoo model (``edgecv.models.list_models()``) at its default input size with 3 channels, and
MobileNet v1 with width 0.25 (keras.applications) at 96x96x3, the shape of MLPerf Tiny's Visual
Wake Words model, and at 96x96x1, the shape of TFLM's person_detection example. Each is int8
converted by edgecv (``to_tflite_int8``, calibrated on 300 photos of tests/data/cifar10_mini,
resized) and handed to :func:`edgecv.converters.arena.smallest_arena` with the other 300 photos
quantized as the samples: every candidate's outputs in TFLM's interpreter must equal the
original's on all of them, and the chosen file must load in LiteRT and give the original's
outputs there too (reference kernels).

The arena depends on tensor sizes and lifetimes only, not on the weights: the models are not
trained. Their weights are Keras' random initialisation (seed 0) with each BatchNormalization's
statistics set from the calibration photos (one pass in training mode with momentum 0), so
activations keep a usable range: left at mean 0 / variance 1, an untrained MobileNetV2's logits
span 1e-8 and TFLM aborts the process on its softmax (a multiplier it cannot represent).

Figures per model, from TFLM's recording allocator: ``head`` (the planned activation memory) and
``total`` (head + tail) of the original file (TFLM's greedy plan), the reordered file and the
file with the offline plan; the lower bound (peak of live bytes over the best valid order, with
the reference kernels' scratch buffers); the chosen file's head over the bound (goal: <= 2%),
and the saving in bytes and % of the arena (total) and of the planned memory (head).
Writes benchmarks/results/mcu_arena.json with the machine record.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from _common import RESULTS_DIR

RESULTS = RESULTS_DIR / "mcu_arena.json"
PHOTOS = Path(__file__).resolve().parents[2] / "tests" / "data" / "cifar10_mini"
GOAL_PERCENT = 2.0
# name -> (keras.applications.MobileNet width, input shape)
MOBILENET_V1 = {"mobilenet_v1_0.25_96x96x3": (0.25, (96, 96, 3)),
                "mobilenet_v1_0.25_96x96x1": (0.25, (96, 96, 1))}


def build(name: str):
    """(Keras model, input shape) of a zoo model at its default size (3 channels) or of one of
    ``MOBILENET_V1``."""
    import keras

    from edgecv.models import create_model, get_model_info

    keras.utils.set_random_seed(0)
    if name in MOBILENET_V1:
        alpha, shape = MOBILENET_V1[name]
        return keras.applications.MobileNet(input_shape=shape, alpha=alpha, weights=None,
                                            classes=2), shape
    side = get_model_info(name).default_img_size
    return create_model(name, input_shape=(side, side, 3), num_classes=10), (side, side, 3)


def set_batchnorm_statistics(model, images: np.ndarray) -> None:
    """Every BatchNormalization's moving mean and variance := the statistics of its input on
    ``images`` (one forward pass in training mode with momentum 0, nested models included)."""
    import keras

    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def litert_reference(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """The outputs of LiteRT's reference kernels (BUILTIN_REF), one image at a time."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for x in inputs:
        interpreter.set_tensor(inp["index"], x[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(outputs)


def measure(name: str) -> dict:
    """The row of one model."""
    from edgecv.converters import arena
    from edgecv.converters.tflite import to_tflite_int8
    from edgecv.data import load_dataset
    from edgecv.runtime.tflm import MicroInterpreter
    from edgecv.tflite_schema import operator_types

    start = time.perf_counter()
    keras_model, shape = build(name)
    photos = load_dataset(str(PHOTOS), *shape, val_split=0.0, test_split=0.5, seed=0)
    calibration = photos.train.x.astype(np.float32) / 255
    set_batchnorm_statistics(keras_model, calibration)
    model = to_tflite_int8(keras_model, calibration)
    samples = MicroInterpreter(model).quantize_input(photos.test.x.astype(np.float32) / 255)
    chosen, record = arena.smallest_arena(model, samples)
    litert_identical = bool(np.array_equal(litert_reference(chosen, samples),
                                           litert_reference(model, samples)))
    candidates = record["candidates"]
    original, bound = candidates["tflm"], record["lower_bound"]
    row = {"model": name, "input_shape": list(shape), "model_bytes": len(model),
           "operators": len(operator_types(model)),
           "planned_tensors": len(arena.read_graph(model).sizes),
           "lower_bound": bound, "lower_bound_exact": record["lower_bound_exact"],
           "order_changed": record["order_changed"],
           "tflm_head_over_bound_percent": round(100 * (original["head"] / bound - 1), 2),
           "candidates": candidates, "chosen": record["chosen"],
           "head": record["head"], "total": record["total"],
           "head_over_bound_percent": record["head_over_bound_percent"],
           "goal_met": record["head_over_bound_percent"] <= GOAL_PERCENT,
           "saving_bytes": record["saving_bytes"], "saving_percent": record["saving_percent"],
           "head_saving_percent": round(100 * (original["head"] - record["head"])
                                        / original["head"], 2),
           "outputs_identical_in_tflm_on": record["verified_on"]["inputs"],
           "chosen_identical_in_litert": litert_identical,
           "seconds": round(time.perf_counter() - start, 1)}
    print(f"{name}: TFLM head {original['head']} (bound {bound}, "
          f"+{row['tflm_head_over_bound_percent']}%) -> {row['chosen']} head {row['head']} "
          f"(+{row['head_over_bound_percent']}%), arena {original['total']} -> {row['total']} "
          f"(-{row['saving_percent']}%)", flush=True)
    return row


def main(argv: list[str] | None = None) -> dict:
    from edgecv.models import list_models

    choices = [*list_models(), *MOBILENET_V1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=choices, choices=choices,
                        help="default: every zoo model and both MobileNet v1 shapes")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"default {RESULTS}")
    args = parser.parse_args(argv)

    from edgecv.benchmarks.machine import machine_info

    rows = [measure(name) for name in args.models]
    output = {"command": "python benchmarks/experiments/mcu_arena.py"
                         + (f" --models {' '.join(args.models)}" if args.models != choices else ""),
              "goal": f"the chosen file's head (planned activation memory, TFLM's measurement) "
                      f"within {GOAL_PERCENT}% of the lower bound on every model",
              "weights": "untrained (seed 0), BatchNorm statistics from the calibration photos: "
                         "the arena depends on tensor sizes and lifetimes, not on weights",
              "samples": "300 photos of tests/data/cifar10_mini (the other 300 calibrate)",
              "tflite_micro": metadata.version("tflite-micro"),
              "machine": machine_info(), "models": rows,
              "goal_met": all(row["goal_met"] for row in rows)}
    args.json.write_text(json.dumps(output, indent=2) + "\n")
    return output


if __name__ == "__main__":
    main()
