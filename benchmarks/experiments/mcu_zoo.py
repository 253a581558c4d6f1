"""TFLite Micro on every zoo model, on digits and on CIFAR-10: its agreement with the LiteRT int8
file and with LiteRT's reference kernels, accuracy, arena and model bytes.

    python benchmarks/experiments/mcu_zoo.py ../shared/data/cifar10_train.tar.xz \\
        [--time-limit 3m] [--digits-time-limit 1m] [--cifar-test-images 2000] [--models ...] \\
        [--keep DIR]
    python benchmarks/experiments/mcu_zoo.py --explain DIR   # from the exports kept

Each zoo model (``edgecv models``) is trained here briefly at its default input size
(``edgecv train --data D --model M --time-limit T``; agreement between runtimes does not need a
fully trained model, and the figures say how long each trained), then converted by
``edgecv convert RUN --int8 --mcu`` (:func:`edgecv.converters.convert.convert_run`, the same
code), which verifies the microcontroller export in TFLite Micro's interpreter: on digits the
whole test split; on CIFAR-10 a class-stratified ``--cifar-test-images`` of it (TFLM's reference
kernels take up to a few hundred ms per image on this machine, and the whole split is 7,500
images per model). The goal per model: top-1 agreement with the LiteRT int8 file on LiteRT's
reference kernels (``BUILTIN_REF``, what TFLM's kernels follow) >= 99.9%. Against LiteRT's
default kernels (XNNPACK, what ``edgecv bench`` times on a CPU) the agreement is reported strict
and counting a tie as agreeing with each of its classes
(:func:`edgecv.runtime.base.agreement_counting_ties`), beside ``litert_kernels``: the same two
figures between XNNPACK and the reference kernels on the same file and images. TFLM's reference
kernels were expected bit-exact
with LiteRT's (``BUILTIN_REF``); a model where they are not gets
``divergence_from_reference_kernels`` (:func:`divergence`): which operator's output differs
first, by how many elements and steps, and for each FULLY_CONNECTED which rounding of its
requantization each runtime's outputs follow. Writes benchmarks/results/mcu_zoo.json with the
machine record; a model whose conversion fails gets its one-line ``error`` and the rest go on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import RESULTS_DIR

RESULTS = RESULTS_DIR / "mcu_zoo.json"
GOAL_AGREEMENT = 0.999
# The goal holds TFLM to LiteRT's reference kernels (BUILTIN_REF), the implementation TFLM's
# kernels follow and the correctness anchor. Against LiteRT's default kernels (XNNPACK,
# what users bench) the agreement is reported strict and counting ties (int8 softmax scores are
# multiples of 1/256, two classes often share the top one and argmax gives it to the lower
# index), beside ``litert_kernels``: the same two figures between XNNPACK and the reference
# kernels on the same file and images, which bound what any runtime following the reference
# kernels can reach (session 21's decision, mcu_zoo.json).
GOAL_METRIC = "tflm_agreement_vs_reference_kernels"
TIES = "tflm_agreement_vs_litert_counting_ties"


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


def adopted_run(run: Path) -> tuple[str, dict]:
    """A run directory trained by ``edgecv train`` (``--adopt``): its model, and what trained
    as :func:`train_run` records it (``adopted``: no command timed here)."""
    from edgecv.rundir import RunDir

    config = json.loads(RunDir(run).config.read_text())["train"]
    history = RunDir(run).history.read_text().strip().splitlines()
    metrics = json.loads(RunDir(run).metrics.read_text())
    return config["model"], {"img_size": config["img_size"], "time_limit_s": config["time_limit"],
                             "epochs": len(history) - 1, "adopted": str(run),
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


# When TFLM's and LiteRT's reference kernels' outputs differ, every operator's output is compared
# on this many images: those whose outputs differ first, then the first of the split.
DIVERGENCE_IMAGES = 50


def with_outputs(model: bytes, tensors: list[int]) -> bytes:
    """``model`` with ``tensors`` (operators' outputs) as its outputs, in that order."""
    from edgecv.tflite_schema import pack_model, unpack_model

    tree = unpack_model(model)
    tree.subgraphs[0].outputs = list(tensors)
    return pack_model(tree, len(model) + 1024)


def reference_outputs(model: bytes, x: np.ndarray) -> list[np.ndarray]:
    """Every output of ``model`` in LiteRT's reference kernels (BUILTIN_REF) on ``x`` (the
    model's input type), one image at a time: one (N, ...) array per output, in order."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    inp, outs = interpreter.get_input_details()[0], interpreter.get_output_details()
    outputs = [[] for _ in outs]
    for image in x:
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        for column, out in zip(outputs, outs):
            column.append(interpreter.get_tensor(out["index"])[0].copy())
    return [np.stack(column) for column in outputs]


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: ``real`` = multiplier * 2**(shift - 31), the multiplier a
    Q31 integer (frexp, rounded half away from zero)."""
    if real == 0:
        return 0, 0
    fraction, shift = math.frexp(real)
    multiplier = int(math.floor(abs(fraction) * (1 << 31) + 0.5)) * (1 if fraction > 0 else -1)
    if multiplier == 1 << 31:
        multiplier, shift = multiplier // 2, shift + 1
    return multiplier, shift


def requantize(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray,
               single_rounding: bool) -> np.ndarray:
    """int32 accumulators times a Q31 multiplier and 2**shift, rounded as TFLite's
    MultiplyByQuantizedMultiplier does: twice (gemmlowp's rounding doubling high multiply, then
    a rounding right shift: the default build) or once (TFLITE_SINGLE_ROUNDING, and the int64
    overload every build has)."""
    acc, multiplier, shift = (np.asarray(v, np.int64) for v in (acc, multiplier, shift))
    if single_rounding:
        total = 31 - shift
        return (acc * multiplier + (np.int64(1) << (total - 1))) >> total
    product = (acc << np.maximum(shift, 0)) * multiplier
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # divided, toward zero
    right = np.maximum(-shift, 0)
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


def fully_connected_rounding(model: bytes, index: int, inputs: dict, outputs: dict) -> dict:
    """For the FULLY_CONNECTED operator ``index`` of ``model``: per runtime (``inputs`` /
    ``outputs``: runtime -> that runtime's input and output of the operator, int8), how many
    output elements the requantization rounded twice and rounded once reproduce."""
    from edgecv.tflite_schema import tflite_schema

    schema = tflite_schema()
    root = schema.Model.GetRootAs(model, 0)
    graph = root.Subgraphs(0)
    op = graph.Operators(index)
    source, weights, bias = (int(t) for t in op.InputsAsNumpy()[:3])
    output = int(op.Outputs(0))

    def quantization(t):
        q = graph.Tensors(t).Quantization()
        return q.ScaleAsNumpy().astype(np.float64), int(q.ZeroPointAsNumpy()[0])

    def constant(t, dtype):
        return root.Buffers(graph.Tensors(t).Buffer()).DataAsNumpy().view(dtype)

    options = schema.FullyConnectedOptions()
    table = op.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    (in_scale, in_zero), (w_scale, _), (out_scale, out_zero) = (
        quantization(source), quantization(weights), quantization(output))
    w = constant(weights, np.int8).reshape(graph.Tensors(weights).ShapeAsNumpy()).astype(np.int64)
    b = constant(bias, np.int32).astype(np.int64) if bias >= 0 else 0
    scales = np.broadcast_to(w_scale, (w.shape[0],))
    pairs = [quantize_multiplier(float(in_scale[0]) * float(s) / float(out_scale[0]))
             for s in scales]
    multiplier, shift = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    relu = options.FusedActivationFunction() == schema.ActivationFunctionType.RELU
    low, high = (out_zero if relu else -128), 127
    record = {"per_channel": len(w_scale) > 1, "elements": int(outputs["tflm"].size)}
    for runtime in ("tflm", "reference_kernels"):
        source_values = inputs[runtime].reshape(len(inputs[runtime]), -1).astype(np.int64)
        acc = (source_values - in_zero) @ w.T + b
        seen = outputs[runtime].reshape(acc.shape)
        for name, single in (("rounded_twice", False), ("rounded_once", True)):
            expected = np.clip(requantize(acc, multiplier, shift, single) + out_zero, low, high)
            record[f"{runtime}_matches_{name}"] = int((expected == seen).sum())
    return record


def divergence(model: bytes, test_x: np.ndarray, scan: int | None = None,
               sample: int = DIVERGENCE_IMAGES) -> dict:
    """Where TFLM's reference kernels and LiteRT's (BUILTIN_REF) part on ``model`` (the int8
    file): the images of the first ``scan`` (default: all) whose outputs differ (run again: the
    verification keeps only counts); then, on those (up to ``sample``) and the first images of
    the split, ``sample`` in all, every operator's output (all of them made outputs of the file)
    in execution order: elements differing, of how many, the largest difference in integer
    steps, and for a FULLY_CONNECTED which rounding of its requantization each
    runtime's outputs follow (:func:`fully_connected_rounding`); ``first_op``: the first
    operator whose output differs."""
    from edgecv.runtime.tflm import MicroInterpreter
    from edgecv.tflite_schema import operators, tflite_schema

    micro = MicroInterpreter(model)
    x = micro.quantize_input(test_x[:scan])
    tflm, reference = micro.invoke(x), reference_outputs(model, x)[0]
    differing = np.flatnonzero((tflm != reference).reshape(len(x), -1).any(1))
    record = {"images_scanned": int(len(x)), "images_differing": int(len(differing)),
              "outputs_differing": int((tflm != reference).sum()), "outputs": int(tflm.size),
              "differing_outputs": [
                  {"image": int(i), "tflm": tflm[i].tolist(), "reference_kernels":
                   reference[i].tolist()} for i in differing[:10]],
              "ops": [], "first_op": None}
    if not len(differing):
        return record
    chosen = list(differing[:sample])
    chosen += [i for i in range(len(x)) if i not in set(chosen)][:sample - len(chosen)]
    schema = tflite_schema()
    graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    activations = (schema.TensorType.INT8, schema.TensorType.UINT8)
    # shape arithmetic (SHAPE, STRIDED_SLICE, PACK of int32) rounds nothing: left out
    ops = [(index, op.name, int(graph.Operators(index).Outputs(0)))
           for index, op in enumerate(operators(model))
           if graph.Tensors(int(graph.Operators(index).Outputs(0))).Type() in activations]
    tensors = list(dict.fromkeys([t for _, _, t in ops] + [
        int(graph.Operators(index).Inputs(0)) for index, name, _ in ops
        if name == "FULLY_CONNECTED"]))
    everything = with_outputs(model, tensors)
    samples = x[chosen]
    seen = {"tflm": dict(zip(tensors, MicroInterpreter(everything).invoke_outputs(samples))),
            "reference_kernels": dict(zip(tensors, reference_outputs(everything, samples)))}
    record["sample_images"] = len(chosen)
    for index, name, tensor in ops:
        a, b = (seen[r][tensor].astype(np.int64) for r in ("tflm", "reference_kernels"))
        row = {"index": index, "op": name,
               "tensor": (graph.Tensors(tensor).Name() or b"").decode(errors="replace"),
               "elements_differing": int((a != b).sum()), "elements": int(a.size),
               "max_diff_steps": int(np.abs(a - b).max()) if a.size else 0}
        if name == "FULLY_CONNECTED":
            source = int(graph.Operators(index).Inputs(0))
            row["rounding"] = fully_connected_rounding(
                model, index, {r: seen[r][source] for r in seen},
                {r: seen[r][tensor] for r in seen})
        record["ops"].append(row)
        if row["elements_differing"] and record["first_op"] is None:
            record["first_op"] = row
    return record


def litert_disagreements(path: Path, test_x: np.ndarray) -> dict:
    """The images on which TFLM's top-1 and the same file's in LiteRT (XNNPACK, what ``edgecv
    bench`` times) differ, counted as the verification counts them (argmax of the scores: a tie
    goes to the lower class index): for each, both top-1 classes and the margin between the top
    two scores in output steps in each runtime (0: a tie); how many are a tie in either
    runtime, how many images hold a tie in each, and the agreement on the images where neither
    runtime ties."""
    from edgecv.converters.verify import artifact_scores
    from edgecv.runtime.tflm import MicroInterpreter

    scale = MicroInterpreter(path.read_bytes()).output["scale"]
    tflm = artifact_scores(path, test_x, target="mcu")
    litert = artifact_scores(path, test_x)

    def margins(scores: np.ndarray) -> np.ndarray:
        top = np.sort(scores, axis=1)
        return np.rint((top[:, -1] - top[:, -2]) / scale).astype(int)

    tflm_margin, litert_margin = margins(tflm), margins(litert)
    differing = np.flatnonzero(tflm.argmax(1) != litert.argmax(1))
    untied = (tflm_margin > 0) & (litert_margin > 0)
    return {"images": int(len(test_x)), "disagreements": int(len(differing)),
            "ties_among_them": int(((tflm_margin == 0) | (litert_margin == 0))[differing].sum()),
            "images_with_a_tie": {"tflm": int((tflm_margin == 0).sum()),
                                  "litert": int((litert_margin == 0).sum())},
            "agreement_where_neither_ties": float(
                (tflm.argmax(1) == litert.argmax(1))[untied].mean()) if untied.any() else None,
            "images_where_neither_ties": int(untied.sum()),
            "rows": [{"image": int(i), "tflm_top1": int(tflm[i].argmax()),
                      "litert_top1": int(litert[i].argmax()),
                      "tflm_margin_steps": int(tflm_margin[i]),
                      "litert_margin_steps": int(litert_margin[i])} for i in differing]}


def litert_kernels(path: Path, test_x: np.ndarray) -> dict:
    """The same file in LiteRT's default kernels (XNNPACK) against its reference kernels
    (``BUILTIN_REF``): top-1 agreement, strict and counting ties. What two kernel sets of one
    runtime give, beside what TFLM and LiteRT give."""
    from edgecv.converters.verify import agreement, agreement_counting_ties, artifact_scores

    litert = artifact_scores(path, test_x)
    reference = artifact_scores(path, test_x, reference_kernels=True)
    return {"agreement": agreement(litert, reference),
            "agreement_counting_ties": agreement_counting_ties(litert, reference)}


def plan_figures(plan: dict) -> dict:
    """mcu.json's ``plan`` without its per-candidate details: the plan chosen, the lower bound,
    the arena of TFLM's own plan and of the one chosen, the saving."""
    keys = ("plan", "chosen", "lower_bound", "lower_bound_exact", "order_changed", "head",
            "total", "saving_bytes", "saving_percent", "head_over_bound_percent", "reason")
    return {**{key: plan[key] for key in keys if key in plan},
            "tflm_own": plan["candidates"]["tflm"],
            "candidates": {name: {k: v for k, v in c.items() if k in (
                "total", "head", "planned", "rejected", "outputs_identical")}
                for name, c in plan["candidates"].items()}}


def measure(data, out: Path, log) -> dict:
    """``convert --int8 --mcu`` of a loaded run; the figures of its int8 and mcu rows."""
    from edgecv.converters.convert import convert_run

    start = time.perf_counter()
    report = convert_run(data, ["int8", "mcu"], out_dir=out, max_drop=100, log=log)
    int8, mcu = report.row("int8"), report.row("mcu")
    record = json.loads((out / "mcu" / "mcu.json").read_text())
    tflm = mcu.tflm
    return {"test_images": report.test_images, "keras_accuracy": report.keras_accuracy,
            "litert_int8_accuracy": int8.accuracy, "tflm_accuracy": mcu.accuracy,
            "litert_int8_agreement_vs_keras": int8.agreement,
            "tflm_agreement_vs_keras": mcu.agreement,
            "tflm_agreement_vs_litert": tflm["agreement_vs_litert"],
            TIES: tflm["agreement_vs_litert_counting_ties"],
            "tflm_max_diff_steps_vs_litert": tflm["max_diff_steps_vs_litert"],
            "tflm_agreement_vs_reference_kernels": tflm["agreement_vs_reference_kernels"],
            "tflm_bit_exact_vs_reference_kernels": tflm["bit_exact_vs_reference_kernels"],
            "tflm_outputs_differing_from_reference_kernels":
                tflm["outputs_differing_from_reference_kernels"],
            "tflm_max_diff_steps_vs_reference_kernels": tflm["max_diff_steps_vs_reference_kernels"],
            "outputs": tflm["outputs"],
            "arena": {k: record["arena"][k] for k in ("total", "head", "tail", "reserved")},
            "plan": plan_figures(record["plan"]), "model_bytes": record["model_bytes"],
            "ops": {op["op"]: op["count"] for op in record["ops"]},
            "mcu_verify_s": mcu.verify_s, "convert_s": round(time.perf_counter() - start, 1),
            "meets_goal": tflm["agreement_vs_reference_kernels"] >= GOAL_AGREEMENT,
            "litert_kernels": litert_kernels(out / "model_int8.tflite", data.test_x),
            **({} if tflm["agreement_vs_litert"] == 1 else {
                "litert_disagreements": litert_disagreements(out / "mcu" / "model.tflite",
                                                             data.test_x)}),
            **({} if tflm["bit_exact_vs_reference_kernels"] else {
                "divergence_from_reference_kernels": divergence(
                    (out / "model_int8.tflite").read_bytes(), data.test_x)})}


def explain(results: Path, exports: Path) -> None:
    """From the exports kept in ``exports`` (``DATASET-MODEL-export``: the files and the test
    images verified, as ``--keep`` leaves them), add to every model of ``results``
    (mcu_zoo.json) the goal's agreement counting ties and ``litert_kernels``, to every model
    below 100% agreement with LiteRT its ``litert_disagreements``, and to every model not
    bit-exact with LiteRT's reference kernels its ``divergence_from_reference_kernels`` over the
    whole test split (a run before this scanned only its first 250 images); what is there
    already is kept, and a model whose export was not kept gets what needs none. UsageError
    if an export's figures are not the ones the results counted (another export, or other
    images)."""
    from edgecv.converters.verify import agreement, agreement_counting_ties, artifact_scores
    from edgecv.errors import UsageError
    from edgecv.io import write_json_atomic
    from edgecv.runtime import read_card
    from edgecv.testset import load_testset

    record = json.loads(results.read_text())
    for row in record["models"]:
        if "error" in row:
            continue
        export = exports / f"{row['dataset']}-{row['model']}-export"
        row["meets_goal"] = row[GOAL_METRIC] >= GOAL_AGREEMENT
        if row["tflm_agreement_vs_litert"] == 1:  # counting ties cannot lower an agreement
            row.setdefault(TIES, 1.0)
        if not export.is_dir():  # not kept: what needs no export is filled in above
            continue
        card = read_card(export / "model_int8.tflite")
        x = card.preprocessing.normalize(load_testset(export / "testset.npz").x)
        if TIES not in row:
            path = export / "mcu" / "model.tflite"
            tflm, litert = artifact_scores(path, x, target="mcu"), artifact_scores(path, x)
            if round(agreement(tflm, litert), 9) != round(row["tflm_agreement_vs_litert"], 9):
                raise UsageError(f"{export} is not the export {results} measured: its "
                                 "agreement with LiteRT differs.")
            row[TIES] = agreement_counting_ties(tflm, litert)
        if "litert_kernels" not in row:
            row["litert_kernels"] = litert_kernels(export / "model_int8.tflite", x)
        if row["tflm_agreement_vs_litert"] < 1 and "litert_disagreements" not in row:
            found = litert_disagreements(export / "mcu" / "model.tflite", x)
            if len(x) != row["test_images"] or round(1 - found["disagreements"] / len(x), 9) \
                    != round(row["tflm_agreement_vs_litert"], 9):
                raise UsageError(f"{export} is not the export {results} measured: its "
                                 "agreement with LiteRT differs.")
            row["litert_disagreements"] = found
            print(f"{row['dataset']} {row['model']}: {found['disagreements']} disagreements "
                  f"with LiteRT, {found['ties_among_them']} of them a tie", flush=True)
        scanned = (row.get("divergence_from_reference_kernels") or {}).get("images_scanned")
        if not row["tflm_bit_exact_vs_reference_kernels"] and scanned != row["test_images"]:
            parted = divergence((export / "model_int8.tflite").read_bytes(), x)
            if parted["outputs_differing"] != row["tflm_outputs_differing_from_reference_kernels"]:
                raise UsageError(f"{export} is not the export {results} measured: its outputs "
                                 "differing from LiteRT's reference kernels differ.")
            row["divergence_from_reference_kernels"] = parted
            print(f"{row['dataset']} {row['model']}: first differs at "
                  f"{(parted['first_op'] or {}).get('op')}", flush=True)
    record["goal"] = {GOAL_METRIC: GOAL_AGREEMENT}
    record["explained"] = (f"{TIES}, litert_kernels, litert_disagreements and "
                           "divergence_from_reference_kernels from the run's exports by python "
                           f"benchmarks/experiments/mcu_zoo.py --explain {exports}")
    write_json_atomic(results, record)


def main(argv: list[str] | None = None) -> int:
    from edgecv.models import list_models
    from edgecv.training.timeplan import parse_duration

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cifar", nargs="?", help="the CIFAR-10 archive (cifar10_train.tar.xz) "
                        "or folder")
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
    parser.add_argument("--keep", help="train and export into this folder and keep it (default: "
                        "a temporary one)")
    parser.add_argument("--adopt", nargs="+", default=[], metavar="RUN", help="measure these "
                        "CIFAR-10 run directories (trained by `edgecv train` on this machine) "
                        "instead of training; --models and --datasets are then not used")
    parser.add_argument("--explain", metavar="EXPORTS", help="measure nothing: add to --out "
                        "what the disagreements are, from the exports kept in EXPORTS")
    args = parser.parse_args(argv)
    if args.explain:
        explain(Path(args.out), Path(args.explain))
        return 0
    if "cifar10" in args.datasets and not args.cifar and not args.adopt:
        parser.error("give the CIFAR-10 archive or folder (or --datasets digits)")
    from edgecv.benchmarks.machine import machine_info
    from edgecv.errors import EdgecvError
    from edgecv.io import write_json_atomic
    from edgecv.runtime.tflm import tflm_version

    limits = {"digits": parse_duration(args.digits_time_limit),
              "cifar10": parse_duration(args.time_limit)}
    sources = {"digits": "digits", "cifar10": args.cifar}
    subsets = {"digits": None, "cifar10": args.cifar_test_images or None}
    results = []
    out = Path(args.out)
    jobs = ([("cifar10", adopted_run(Path(run))[0], Path(run)) for run in args.adopt]
            if args.adopt else
            [(dataset, model, None) for dataset in args.datasets for model in args.models])

    def save() -> None:  # after every model: a long run keeps what it measured
        write_json_atomic(out, {
            "benchmark": "mcu_zoo", "goal": {GOAL_METRIC: GOAL_AGREEMENT},
            "machine": machine_info(), "tflite_micro": tflm_version(),
            "command": " ".join(["python benchmarks/experiments/mcu_zoo.py",
                                 *sys.argv[1:]]),
            "test_split": {"digits": "all of it", "cifar10": (
                f"a class-stratified {args.cifar_test_images} of it (seed 0)"
                if args.cifar_test_images else "all of it")},
            "models": results})

    with (contextlib.nullcontext(args.keep) if args.keep else
          tempfile.TemporaryDirectory()) as workdir:
        for dataset, model, given in jobs:
            print(f"== {dataset} {model}", flush=True)
            if given is None:
                run, trained = train_run(sources[dataset], model, limits[dataset],
                                         Path(workdir) / f"{dataset}-{model}", lambda _: None)
            else:
                run, (_, trained) = given, adopted_run(given)
            data = load_subset(run, subsets[dataset])
            try:
                figures = measure(data, Path(workdir) / f"{dataset}-{model}-export", print)
            except EdgecvError as exc:  # recorded, and the other models still measured
                print(f"{dataset} {model}: {exc}", flush=True)
                figures = {"error": str(exc)}
            results.append({"dataset": dataset, "model": model, "trained": trained,
                            **figures})
            save()
    print(f"wrote {out}")
    for r in results:
        if "error" in r:
            print(f"{r['dataset']:<8} {r['model']:<15} {r['error']}")
            continue
        print(f"{r['dataset']:<8} {r['model']:<15} acc keras {r['keras_accuracy']:.4f} tflm "
              f"{r['tflm_accuracy']:.4f}  agree litert {100 * r['tflm_agreement_vs_litert']:.2f}% "
              f"ref {100 * r['tflm_agreement_vs_reference_kernels']:.2f}% "
              f"(bit-exact {r['tflm_bit_exact_vs_reference_kernels']})  arena "
              f"{r['arena']['total']} model {r['model_bytes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
