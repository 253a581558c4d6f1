"""``--recover``: keep the tensors that int8 crushes in float, in TFLite and in ONNX.

Why tensors, not layers: a tensor's int8 scale is set at its producer and its damage shows at
its consumers. When one channel of an activation has a range hundreds of times the others (an
outlier channel; TFLite and ONNX Runtime quantize activations per tensor), the others fall below
one quantization step and read as 0. Keeping only the producer in float changes nothing (the
consumer re-quantizes its input with the same range: measured, agreement unchanged), keeping
only the consumer neither (it reads the crushed int8 values). So the unit kept in float is a
tensor: its producer and all its consumers.

Ranking: per quantized tensor, the share of its live channels (float RMS > 0) whose RMS is
below one step (``crushed``), then the layer's own error in steps (RMSE / scale, from
:mod:`edgecv.converters.quant_debug`). A tensor crushed this way keeps RMSE/scale under 0.5 (every
value rounds to its nearest step) and a high SQNR (the outlier channel dominates the signal), so
neither of those alone finds it.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgecv.converters import aeq
from edgecv.converters.cards import with_onnx_card, with_tflite_card
from edgecv.converters.quant_debug import crushed_share
from edgecv.converters.verify import (Budget, artifact_scores, budget_drop, check_data_scores,
                                      figures, score_drops, slice_row, verify_artifact)
from edgecv.errors import EdgecvError
from edgecv.results import ConversionRow

# a tensor counts as crushed when at least this share of its live channels is under one step
CRUSHED_SHARE = 0.25
# --recover-mix: what the worst tensors of a TFLite int8 model get (see recover)
RECOVER_MIXES = ("auto", "int16", "float")
MIXED_STEM = "model_int8_mixed"  # + .tflite / .onnx: the mixed model --recover writes


def check_recover_mix(mix: str) -> None:
    """Refuse an unknown ``--recover-mix`` value (UsageError naming the choices)."""
    if mix not in RECOVER_MIXES:
        from edgecv.errors import unknown_name

        raise unknown_name("`recover_mix` value", mix, RECOVER_MIXES)


def rank_tensors(rows: list[dict]) -> list[dict]:
    """Crushed tensors first (most crushed first), then the lowest SQNR (RMSE/scale breaks
    ties); ``rows`` from :func:`edgecv.converters.quant_debug.layer_errors`.

    SQNR rather than RMSE/scale: with min/max ranges nearly every tensor rounds to its nearest
    step (RMSE/scale ~0.29 throughout), so RMSE/scale hardly ranks; SQNR is the damage relative
    to the signal. Measured on ds_cnn trained on 6,000 CIFAR photos: the logits
    (FULLY_CONNECTED) were the only tensor under 30 dB (3.3 dB), and keeping them and the
    softmax in float raised test agreement from 97.6% to 98.1%."""
    def key(row):
        crushed = row.get("crushed") or 0.0
        sqnr = row.get("sqnr_db")
        return (crushed >= CRUSHED_SHARE, crushed if crushed >= CRUSHED_SHARE else 0.0,
                -sqnr if sqnr is not None else -math.inf, row["rmse_over_scale"])

    return sorted(rows, key=key, reverse=True)


# --- TFLite ---------------------------------------------------------------------------------------

def tflite_consumers(model: bytes) -> dict[str, list[str]]:
    """{tensor name: output tensor names of the ops that read it} of a TFLite model (the op
    names ``denylisted_nodes`` matches are their output tensors' names)."""
    from edgecv.tflite_schema import tflite_schema

    schema = tflite_schema()
    graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    name = [graph.Tensors(i).Name().decode() for i in range(graph.TensorsLength())]
    consumers: dict[str, list[str]] = {}
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        outputs = [name[i] for i in op.OutputsAsNumpy().tolist() if i >= 0] \
            if op.OutputsLength() else []
        for i in (op.InputsAsNumpy().tolist() if op.InputsLength() else []):
            if i >= 0:
                consumers.setdefault(name[i], []).extend(outputs)
    return consumers


def tflite_float_nodes(tensors: Sequence[str], consumers: dict[str, list[str]]) -> list[str]:
    """The ops to denylist to keep ``tensors`` in float: each tensor's producer (named by the
    tensor) and its consumers, without repeats, in order."""
    nodes: list[str] = []
    for tensor in tensors:
        for node in [tensor, *consumers.get(tensor, [])]:
            if node not in nodes:
                nodes.append(node)
    return nodes


# --- ONNX -----------------------------------------------------------------------------------------

def onnx_ranking(prepared, int8_proto, samples: np.ndarray) -> list[dict]:
    """Per activation tensor that the int8 ONNX model quantizes: crushed share (float
    activations of the prepared fp32 model vs the scale of its QuantizeLinear) and the SQNR
    (dB) of its quantize-dequantize, worst first (:func:`rank_tensors` order)."""
    import onnx
    from onnx import numpy_helper

    initial = {t.name: numpy_helper.to_array(t) for t in int8_proto.graph.initializer}
    scales = {}
    for node in int8_proto.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in initial:
            scale = initial[node.input[1]]
            if scale.size == 1:  # activations (per-tensor); weights are per-channel constants
                scales[node.input[0]] = float(scale)
    produced = {out for node in prepared.graph.node for out in node.output}
    names = [n for n in scales if n in produced]
    if not names:
        return []
    probe = onnx.ModelProto()
    probe.CopyFrom(prepared)
    known = {o.name for o in probe.graph.output}
    for name in names:
        if name not in known:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    import onnxruntime as ort

    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    wanted = [outputs.index(n) for n in names]
    values = session.run(None, {session.get_inputs()[0].name: samples})
    rows = []
    for name, index in zip(names, wanted):
        tensor = np.asarray(values[index], np.float64)
        scale = scales[name]
        # NCHW inside the ONNX graph: put channels last for the per-channel RMS
        channels_last = np.moveaxis(tensor, 1, -1) if tensor.ndim == 4 else tensor
        noise = tensor - np.round(tensor / scale) * scale
        signal = float(np.sum(tensor ** 2))
        rows.append({"tensor": name, "crushed": round(crushed_share([channels_last], scale), 4),
                     "rmse_over_scale": round(float(np.sqrt(np.mean(noise ** 2))) / scale, 4),
                     "scale": scale,
                     "sqnr_db": round(10 * math.log10(signal / max(float(np.sum(noise ** 2)),
                                                                    1e-30)), 2) if signal else None})
    return rank_tensors(rows)


def onnx_float_nodes(prepared, tensors: Sequence[str]) -> list[str]:
    """Node names (of the prepared graph) for ``nodes_to_exclude`` that keep ``tensors`` in
    float: each tensor's producer and its consumers."""
    nodes: list[str] = []
    for tensor in tensors:
        for node in prepared.graph.node:
            if (tensor in node.output or tensor in node.input) and node.name not in nodes:
                nodes.append(node.name)
    return nodes


# --- the search -----------------------------------------------------------------------------------

def p50_ms(path, sample: np.ndarray, runs: int = 200, min_time_s: float = 0.5) -> float:
    """Median single-image latency (ms, 1 thread) of an artifact in its runtime, timed by the
    project's one timing loop (:func:`edgecv.timing.time_backend`) after a warm-up run; at
    least ``runs`` calls and ``min_time_s``, at most 20 x ``runs``."""
    from edgecv.runtime import open_backend
    from edgecv.timing import time_backend

    with open_backend(path, threads=1, checksum="off") as backend:
        return time_backend(backend, sample, runs=runs, min_time_s=min_time_s, warmup=1,
                            max_runs=20 * runs).p50_ms


def recover(run, kind: str, keras_scores: np.ndarray, keras_accuracy: float | None,
            budget: Budget, out, log, onnx_fp32=None, onnx_method: str = "minmax",
            onnx_types: str = "u8s8", mix: str = "auto", tflite_mix: ConversionRow | None = None,
            opset: int = 17) -> ConversionRow:
    """The cheapest mixed model within ``budget`` (``--max-drop``, ``--min-agreement``). For
    TFLite (``mix``, ``--recover-mix``):
    ``int16`` gives the worst tensors 16-bit activations (:func:`_int16_first`, the AI Edge
    Quantizer's per-layer recipes: int16x8 kernels; its ``steps``), then, if int16 alone does
    not fit, one mix of int16 and float layers, falling back to the TF converter's float mix
    when none fits; ``float`` keeps them in float (below); ``auto`` (default)
    makes both and ships the faster one within budget (:func:`_faster_mix`; int16 alone needs
    the quantizer installed). ONNX: float. Keep the worst tensors (:func:`rank_tensors`; 1, 2,
    4, ... of them, each with its producer and consumers) in float until it fits the budget.
    ``kind``: ``tflite`` (denylisted nodes of the QuantizationDebugger, from
    ``model_int8.tflite``) or ``onnx`` (``nodes_to_exclude``, from ``model_int8.onnx`` quantized
    with ``onnx_method`` and ``onnx_types``; needs ``onnx_fp32``); for ONNX, ``tflite_mix`` (the
    row of a float mix this conversion wrote for TFLite) adds a second candidate, that file's
    graph in ONNX (:func:`_carried_mix`, :func:`_own_or_carried`). Writes the best attempt as
    ``model_int8_mixed.tflite`` / ``model_int8_mixed.onnx``; returns its row with the float
    tensors, the float ops and the latency cost vs full int8.

    How many tensors go back to float is decided on :func:`~edgecv.converters.verify.check_data`
    (a stratified validation slice), never on the test split: the test split verifies only the
    chosen artifact, so its figures stay an honest estimate. ``within_budget`` is judged on the
    test split like every other row."""
    import hashlib

    from edgecv.converters.quant_debug import layer_errors, selectively_quantized
    from edgecv.io import atomic_path

    check_recover_mix(mix)
    # Every k-th calibration image, not the first 64: the calibration sample is in split order,
    # which for a class-folder source is class order (the first 64 were 2 classes of 10).
    debug = run.calibration[::max(1, len(run.calibration) // 64)][:64]
    check_x, check_y, where, check_reference = check_data_scores(run)
    if keras_accuracy is None:  # the test split has no labels: the budget judges agreement
        check_y = None
    check = (check_x, check_y, where, check_reference)
    int16_row = int16_data = int16_steps = None
    if kind == "tflite" and mix in ("auto", "int16"):
        if not aeq.available():
            if mix == "int16":
                raise EdgecvError(f"`recover_mix='int16'` needs the AI Edge Quantizer: "
                                  f"{aeq.INSTALL}.")
        else:
            fp32 = (out / "model_fp32.tflite").read_bytes()  # always written, before int8
            int16_row, int16_data, int16_steps = _int16_first(run, fp32, debug, check,
                                                              budget, log)
            if int16_row is not None and mix == "int16":
                return _finish(int16_row, int16_data, run, out / "model_int8.tflite",
                               out / f"{MIXED_STEM}.tflite", keras_scores, keras_accuracy,
                               budget, log)
    if kind == "tflite":
        full = out / "model_int8.tflite"
        ranking = rank_tensors(layer_errors(run.model, run.calibration, debug))
        consumers = tflite_consumers(full.read_bytes())
    else:
        import onnx

        from edgecv.converters.onnx import INTEGER_TYPES, prepared_model, to_onnx_int8

        full = out / "model_int8.onnx"
        prepared = prepared_model(onnx_fp32)
        ranking = onnx_ranking(prepared, onnx.load(full), debug)
    path = out / f"{MIXED_STEM}{full.suffix}"
    fmt = "int8_mixed" if kind == "tflite" else "onnx_int8_mixed"
    carried = limit = stopped_at = None
    if kind == "onnx" and tflite_mix is not None:
        carried = _carried_mix(out / tflite_mix.file, tflite_mix, fmt, path.name, run,
                               (check_x, check_y, where, check_reference), budget, opset, log)
        if carried is not None and carried["fits"]:
            # both fit -> the one with fewer float ops: ONNX's own steps past that cannot win
            limit = len(carried["row"].float_layers)
    row = found = None
    for count in _doubling(len(ranking)):
        tensors = [r["tensor"] for r in ranking[:count]]
        if kind == "tflite":
            nodes = tflite_float_nodes(tensors, consumers)
            try:
                data = selectively_quantized(run.model, run.calibration, nodes)
            except ValueError as exc:  # the debugger refuses a model with nothing left to debug
                if row is None:
                    raise
                log(f"recover    stopped at {count} tensors ({exc}); keeping the last attempt")
                break
            data = with_tflite_card(data, run, "tflite_int8_mixed", {"float_layers": nodes})
        else:
            nodes = onnx_float_nodes(prepared, tensors)
            if limit is not None and len(nodes) > limit:
                stopped_at = len(nodes)
                log(f"recover    {fmt}: ONNX's own mix stopped before {len(nodes)} float ops: "
                    f"the TFLite mix's graph fits with {limit}")
                break
            proto = to_onnx_int8(onnx_fp32, run.calibration, method=onnx_method,
                                 **INTEGER_TYPES[onnx_types], nodes_to_exclude=nodes,
                                 prepared=prepared)
            data = with_onnx_card(proto, run, "onnx_int8_mixed")
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        row = ConversionRow(format=fmt, file=path.name, mix="int8, float", size_bytes=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), float_tensors=tensors,
                            float_layers=nodes)
        found = slice_row(artifact_scores(path, check_x), check_y, check_reference)
        log(f"recover    {fmt}: {len(tensors)} tensor(s), {len(nodes)} op(s) in float: on the "
            f"{where}: agreement {found.agreement:.4f}, drop "
            f"{budget_drop(found):+.2f} pp")
        if budget.fits(found):
            break
    data = None
    if row is None and carried is None:
        raise EdgecvError(f"`recover`: {full.name} has no quantized tensor to keep in float.")
    if row is None:  # ONNX's own first step already had more float ops than the carried mix
        row, data = carried["row"], carried["data"]
        row.alternative = {"float_layers": stopped_at, "made": False}  # ONNX's own mix
        log(f"recover    {fmt}: the TFLite mix's graph ({row.from_file})")
        return _finish(row, data, run, full, path, keras_scores, keras_accuracy, budget, log)
    row.chosen_on, row.check_agreement = where, round(found.agreement, 5)
    row.check_drop_pp = budget_drop(found)
    if int16_row is not None:  # both mixes were made: the faster one within budget
        row, data = _faster_mix(row, budget.fits(found), int16_row, int16_data,
                                path, run.test_x[:1], log)
    elif int16_steps:
        row.int16_steps = int16_steps  # tried, did not fit
    if carried is not None:
        row, data = _own_or_carried(row, budget.fits(found), carried, run, path, log)
    return _finish(row, data, run, full, path, keras_scores, keras_accuracy, budget, log)


def _faster_mix(float_row: ConversionRow, float_fits: bool, int16_row: ConversionRow,
                int16_data: bytes, path, sample: np.ndarray,
                log) -> tuple[ConversionRow, bytes | None]:
    """Both mixed models were made: the int16 one (within budget on the check slice) and the
    float one at ``path``. The faster one on this machine (1 thread) wins if the float one is
    within budget too, else the int16 one; the other is summarised as ``alternative``. (LiteRT
    runs int16x8 with reference kernels on CPU, so there float is usually faster; on a target
    without float kernels int16 is the only mix.)"""
    summary = {"float": {"mix": "int8, float", "float_layers": len(float_row.float_layers),
                         "check_drop_pp": float_row.check_drop_pp},
               "int16": {"mix": int16_row.mix, "int16_layers": len(int16_row.int16_layers),
                         "float_layers": len(int16_row.float_layers),
                         "check_drop_pp": int16_row.check_drop_pp}}
    if not float_fits:
        int16_row.alternative = {**summary["float"], "within_budget_on_check": False}
        return int16_row, int16_data
    with tempfile.TemporaryDirectory() as workdir:
        candidate = Path(workdir) / "int16.tflite"
        candidate.write_bytes(int16_data)
        timings = {"float": p50_ms(path, sample), "int16": p50_ms(candidate, sample)}
    chosen = min(timings, key=timings.get)
    other = "int16" if chosen == "float" else "float"
    log(f"recover    both mixes fit: float {timings['float']:.3f} ms, int16 "
        f"{timings['int16']:.3f} ms (1 thread): {chosen}")
    row, data = (float_row, None) if chosen == "float" else (int16_row, int16_data)
    row.alternative = {**summary[other], "p50_ms_1_thread": round(timings[other], 4)}
    return row, data


def _carried_mix(tflite_path: Path, tflite_row: ConversionRow, fmt: str, file: str, run,
                 check: tuple, budget: Budget, opset: int, log) -> dict | None:
    """The TFLite float mix's graph carried to ONNX (:func:`edgecv.converters.onnx.from_tflite`:
    the TF converter's ranges, its float layers), judged on the check slice: {"row", "data",
    "fits"}, or None when the file does not convert. Each calibration rounds its own way, and
    on a depthwise-heavy model no small ONNX mix of ONNX Runtime's own recovers where the TFLite
    one did (mobilenet_v2: all ops float against 50, see docs/guides/int8.md)."""
    from edgecv.converters.onnx import from_tflite
    from edgecv.errors import ConversionError

    check_x, check_y, where, check_reference = check
    try:
        proto = from_tflite(tflite_path.read_bytes(), opset)
    except ConversionError as exc:
        log(f"recover    {tflite_path.name} does not convert to ONNX ({exc}); ONNX's own mix")
        return None
    data = with_onnx_card(proto, run, "onnx_int8_mixed")
    row = ConversionRow(format=fmt, file=file, mix="int8, float", from_file=tflite_path.name,
                        float_tensors=tflite_row.float_tensors,
                        float_layers=tflite_row.float_layers, chosen_on=where)
    with tempfile.TemporaryDirectory() as workdir:
        candidate = Path(workdir) / "from_tflite.onnx"
        candidate.write_bytes(data)
        found = slice_row(artifact_scores(candidate, check_x), check_y, check_reference)
    row.check_agreement, row.check_drop_pp = round(found.agreement, 5), budget_drop(found)
    log(f"recover    {tflite_path.name} in ONNX ({len(row.float_layers)} float op(s)): on "
        f"the {where}: agreement {found.agreement:.4f}, drop {budget_drop(found):+.2f} pp")
    return {"row": row, "data": data, "fits": budget.fits(found)}


def _own_or_carried(own: ConversionRow, own_fits: bool, carried: dict, run, path: Path,
                    log) -> tuple[ConversionRow, bytes | None]:
    """ONNX Runtime's own mix (``own``, written at ``path``; ``nodes_to_exclude`` around the
    worst tensors of its own calibration) or the TFLite mix's graph (``carried``, from
    :func:`_carried_mix`), both judged on the same check slice: when both fit, the one with
    fewer float ops (the point of a mix is to stay int8: ONNX's own ladder can end with every
    op in float, which fits and runs at fp32 speed but is no int8 model), the faster (1 thread)
    on a tie; else the one that fits, else the one that agrees more. The other is summarised
    as ``alternative``. (:func:`recover` stops ONNX's own ladder before it passes the carried
    mix's float-op count when that one fits: those steps could not win.)"""
    fits, data = carried["fits"], carried["data"]
    carried = dataclasses.replace(carried["row"])
    timings = {}
    ops = {"own": len(own.float_layers), "carried": len(carried.float_layers)}
    if fits and own_fits and ops["own"] == ops["carried"]:
        sample = run.test_x[:1]
        with tempfile.TemporaryDirectory() as workdir:
            candidate = Path(workdir) / "from_tflite.onnx"
            candidate.write_bytes(data)
            timings = {"own": p50_ms(path, sample), "carried": p50_ms(candidate, sample)}
        take_carried = timings["carried"] < timings["own"]
        why = "both fit with as many float ops: the faster, 1 thread"
    elif fits and own_fits:  # the point of a mix is to stay int8
        take_carried = ops["carried"] < ops["own"]
        why = "both fit: the one with fewer float ops"
    elif fits or own_fits:
        take_carried, why = fits, "the one within budget on the check slice"
    else:
        take_carried = carried.check_agreement > own.check_agreement
        why = "neither fits: the one that agrees more"
    chosen, other = (carried, own) if take_carried else (own, carried)
    alternative = {"from": other.from_file, "check_agreement": other.check_agreement,
                   "check_drop_pp": other.check_drop_pp}
    chosen.alternative = {key: value for key, value in alternative.items() if value is not None}
    chosen.alternative.update(float_layers=len(other.float_layers),
                              within_budget_on_check=fits if other is carried else own_fits)
    if timings:
        chosen.alternative["p50_ms_1_thread"] = round(
            timings["own" if other is own else "carried"], 4)
    log("recover    onnx_int8_mixed: "
        + (f"the TFLite mix's graph ({carried.from_file})" if take_carried else "ONNX's own mix")
        + f" ({why})")
    return chosen, data if take_carried else None


def _finish(row: ConversionRow, data: bytes | None, run, full, path, keras_scores,
            keras_accuracy, budget: Budget, log) -> ConversionRow:
    """Write ``data`` (when given; else it is at ``path`` already), verify the chosen mixed
    artifact on the test split and time it against full int8 (1 thread)."""
    import hashlib

    from edgecv.io import atomic_path

    if data is not None:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        row.size_bytes, row.sha256 = len(data), hashlib.sha256(data).hexdigest()
    verify_artifact(row, path, run, keras_scores)
    score_drops(row, keras_accuracy)
    log(f"recover    {row.format} on the test split: {figures(row)}")
    sample = run.test_x[:1]
    full_ms, mixed_ms = p50_ms(full, sample), p50_ms(path, sample)
    row.p50_ms_1_thread = round(mixed_ms, 4)
    row.latency_cost_vs_int8 = round(mixed_ms / full_ms, 3)
    row.within_budget = budget.fits(row)
    log(f"recover    {len(row.float_layers)} float op(s), "
        f"{len(row.int16_layers or [])} int16 op(s); p50 {mixed_ms:.3f} ms vs "
        f"{full_ms:.3f} ms for full int8 ({row.latency_cost_vs_int8}x)")
    return row


def _doubling(n: int) -> list[int]:
    """1, 2, 4, ... up to and including ``n``."""
    counts, count = [], 1
    while n and count < n:
        counts.append(count)
        count *= 2
    return counts + [n] if n else []


def _int16_first(run, fp32: bytes, debug: np.ndarray, check: tuple, budget: Budget,
                 log) -> tuple[ConversionRow | None, bytes | None, list[dict]]:
    """The cheaper mixes before the TF converter's float one, all made by the AI Edge
    Quantizer's per-layer recipes and ranked by its SNR: first 16-bit activations (int16x8
    kernels) for the worst tensors (1, 2, 4, ... of them, each with its producer and
    consumers), the rest int8; if even every ranked tensor in int16 misses ``budget`` on the
    check slice, one mix of the three: the worst 1, 2, 4, ... tensors in float and the other
    ranked ones in int16. The first attempt within budget wins. Returns (row, file bytes,
    steps), or (None, None, steps) when no attempt fits. ``fp32``: the float TFLite file;
    ``check``: the check slice (x, y or None, where, reference scores) that
    :func:`recover` made."""
    ranking = [r["tensor"] for r in aeq.tensor_errors(fp32, run.calibration, debug)
               if r["snr_db"] is not None]
    consumers = tflite_consumers(fp32)
    check_x, check_y, where, reference = check
    plans = ([(ranking[:count], []) for count in _doubling(len(ranking))]
             + [(ranking[count:], ranking[:count]) for count in _doubling(len(ranking))])
    steps = []
    with tempfile.TemporaryDirectory() as workdir:
        candidate = Path(workdir) / "mixed.tflite"
        for int16_tensors, float_tensors in plans:
            float_ops = tflite_float_nodes(float_tensors, consumers) if float_tensors else []
            int16_ops = [op for op in tflite_float_nodes(int16_tensors, consumers)
                         if op not in float_ops] if int16_tensors else []
            data = with_tflite_card(aeq.quantize_mixed(fp32, run.calibration, int16_ops, float_ops),
                                    run, "tflite_int8_mixed", {"int16_layers": int16_ops,
                                                               "float_layers": float_ops})
            candidate.write_bytes(data)
            found = slice_row(artifact_scores(candidate, check_x), check_y, reference)
            steps.append({"int16_tensors": len(int16_tensors), "int16_ops": len(int16_ops),
                          "float_tensors": len(float_tensors), "float_ops": len(float_ops),
                          "check_drop_pp": budget_drop(found),
                          "check_agreement": round(found.agreement, 5)})
            log(f"recover    int8_mixed: {len(int16_ops)} op(s) with int16 activations, "
                f"{len(float_ops)} in float (AI Edge Quantizer): on the {where}: agreement "
                f"{found.agreement:.4f}, drop {budget_drop(found):+.2f} pp")
            if budget.fits(found):
                mix = ", ".join(["int8"] + (["int16 activations"] if int16_ops else [])
                                + (["float"] if float_ops else []))
                row = ConversionRow(format="int8_mixed", file=f"{MIXED_STEM}.tflite", mix=mix,
                                    quantizer="ai-edge-quantizer",
                                    int16_tensors=int16_tensors, int16_layers=int16_ops,
                                    float_tensors=float_tensors, float_layers=float_ops,
                                    steps=steps, chosen_on=where,
                                    check_agreement=round(found.agreement, 5),
                                    check_drop_pp=budget_drop(found))
                return row, data, steps
            if int16_tensors == ranking and not float_tensors:
                log("recover    int16 activations on every ranked tensor do not fit the "
                    "budget: the worst in float next, the others int16")
    log("recover    no mix of the AI Edge Quantizer fits the budget: the TF converter's float mix")
    return None, None, steps
