"""Keras -> ONNX (tf2onnx) and ONNX -> ONNX int8 (onnxruntime.quantization, static, QDQ); an
int8 TFLite file -> ONNX with its own int8 graph (:func:`from_tflite`, tf2onnx's TFLite reader:
how QAT's learned ranges and a TFLite float mix reach ONNX Runtime).

tf2onnx 1.17 needs an explicit ``input_signature`` with Keras 3, and ``model.output_names`` set
to avoid a KeyError 'keras_tensor_N' (shared/RUNTIME_FACTS.md). A SavedModel (not a Keras model)
goes through ``from_function`` over its serving signature.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgecv.errors import ConversionError, UsageError, first_line
from edgecv.io import captured_output
from edgecv.tf_import import import_tensorflow

INPUT_NAME = "input"
OUTPUT_NAME = "scores"


def to_onnx(model, opset: int = 17):
    """Return the ONNX ModelProto of a Keras model or a SavedModel's serving signature (NHWC
    float32 input named ``input``, batch dimension dynamic), checked with ``onnx.checker``.
    Default opset 17."""
    import onnx

    tf = import_tensorflow()
    if not 13 <= opset <= 21:
        raise UsageError(f"`opset` must be between 13 and 21, received {opset}.")
    import tf2onnx  # noqa: F401  (missing: an ImportError, not a conversion failure)

    from edgecv.modelfile.reference import reference_of

    spec = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)]
    try:
        with captured_output():
            proto = reference_of(model).tf2onnx_proto(spec, opset, OUTPUT_NAME)
    except Exception as exc:  # tf2onnx raises many kinds; all mean the same to a user
        first = first_line(exc, 240)
        raise ConversionError(f"ONNX conversion of '{model.name}' failed: {first}") from exc
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"tf2onnx produced an invalid ONNX model: {exc}"[:300]) from exc
    return proto


def from_tflite(data: bytes, opset: int = 17):
    """The ONNX model of a quantized TFLite file with its int8 graph kept: tf2onnx's TFLite
    reader writes each int8 tensor as QuantizeLinear / DequantizeLinear with the file's own
    scales and zero points, and ONNX Runtime fuses them into its integer kernels where its
    selectors match. So ranges a TFLite file learned (quantization-aware training) reach ONNX
    Runtime unchanged, where quantizing the float ONNX model again would calibrate new ones.
    An int8 / uint8 input or output is wrapped in QuantizeLinear / DequantizeLinear with the
    file's own parameters: the model takes and returns float32 like every edgecv ONNX file
    (input ``input``, output ``scores``). Checked with ``onnx.checker``."""
    import onnx
    import tf2onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgecv.converters.cards import tflite_io_quantization

    if not 13 <= opset <= 21:
        raise UsageError(f"`opset` must be between 13 and 21, received {opset}.")
    with tempfile.TemporaryDirectory() as workdir:
        source = Path(workdir) / "model.tflite"
        source.write_bytes(data)
        try:
            with captured_output():
                proto, _ = tf2onnx.convert.from_tflite(str(source), opset=opset)
        except Exception as exc:  # tf2onnx raises many kinds; all mean the same to a user
            first = first_line(exc, 240)
            raise ConversionError(f"ONNX conversion of the int8 TFLite file failed: {first}") from exc
    graph = proto.graph
    _, _, in_q, out_q = tflite_io_quantization(data)
    nodes, tail = [], []
    for is_input, value, quant, float_name in ((True, graph.input[0], in_q, INPUT_NAME),
                                               (False, graph.output[0], out_q, OUTPUT_NAME)):
        if quant is None:  # a float input / output: only its name changes
            _rename_tensor(graph, value.name, float_name)
            continue
        inner = value.name if value.name != float_name else \
            _rename_tensor(graph, value.name, f"{float_name}_{quant.dtype}")
        params = [numpy_helper.from_array(np.array(quant.scale, np.float32), f"{float_name}_scale"),
                  numpy_helper.from_array(np.array(quant.zero_point, quant.dtype),
                                          f"{float_name}_zero_point")]
        graph.initializer.extend(params)
        shape = [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]
        replacement = helper.make_tensor_value_info(float_name, TensorProto.FLOAT, shape)
        if is_input:
            nodes.append(helper.make_node("QuantizeLinear", [float_name, *(p.name for p in params)],
                                          [inner], name=f"{float_name}_quantize"))
            graph.input.remove(value)
            graph.input.insert(0, replacement)
        else:
            tail.append(helper.make_node("DequantizeLinear", [inner, *(p.name for p in params)],
                                         [float_name], name=f"{float_name}_dequantize"))
            graph.output.remove(value)
            graph.output.insert(0, replacement)
    ordered = [*nodes, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(ordered)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"tf2onnx produced an invalid ONNX model: {exc}"[:300]) from exc
    return proto


def _rename_tensor(graph, old: str, new: str) -> str:
    """Rename tensor ``old`` to ``new`` everywhere in ``graph`` (node inputs and outputs, graph
    inputs and outputs); returns ``new``."""
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new
    for value in (*graph.input, *graph.output):
        if value.name == old:
            value.name = new
    return new


class CalibrationReader:
    """onnxruntime ``CalibrationDataReader``: up to 32 samples per ``get_next()``; ``rewind()`` makes it
    reusable (ONNX Runtime's own readers can be consumed only once)."""

    def __init__(self, samples: np.ndarray, input_name: str = INPUT_NAME):
        if samples.ndim != 4 or len(samples) == 0:
            raise UsageError(
                f"calibration data must be a non-empty (N, H, W, C) batch, received {samples.shape}."
            )
        self.samples = samples.astype(np.float32)
        self.input_name = input_name
        self._position = 0

    # Batches of samples, not one at a time: the same ranges and histograms (every calibrator
    # reduces over all samples), 300 session runs fewer.
    batch_size = 32

    def get_next(self) -> dict | None:
        if self._position >= len(self.samples):
            return None
        sample = self.samples[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        return {self.input_name: sample}

    def rewind(self) -> None:
        self._position = 0


CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# Activation / weight integer types ONNX int8 may use (see to_onnx_int8 and to_onnx_int8_best):
# U8S8 with 7-bit weights (reduce_range) is the default and the fastest on x86.
INTEGER_TYPES = {
    "u8s8": {"activation_type": "uint8", "weight_type": "int8"},
    # 8-bit weights everywhere but the stem, which stays float: see to_onnx_int8
    "u8s8+float-stem": {"activation_type": "uint8", "weight_type": "int8", "reduce_range": False,
                        "float_stem": True},
    "s8s8": {"activation_type": "int8", "weight_type": "int8"},
    "u8u8": {"activation_type": "uint8", "weight_type": "uint8"},
}
# Layout-only ops between the model input and its first convolution.
_LAYOUT_OPS = ("Transpose", "Reshape", "Cast", "Identity")


def stem_nodes(prepared) -> list[str]:
    """The first convolution / matrix product fed (through layout ops only) by the graph input:
    the layer whose input is the image itself, the one whose u8 x s8 pair sums saturate."""
    current = {i.name for i in prepared.graph.input}
    for node in prepared.graph.node:  # topologically sorted
        if not set(node.input) & current:
            continue
        if node.op_type in _LAYOUT_OPS:
            current |= set(node.output)
        elif node.op_type in ("Conv", "Gemm", "MatMul"):
            return [node.name]
    return []


def to_onnx_int8(fp32_model, calibration: np.ndarray, *, per_channel: bool = True,
                 activation_type: str = "uint8", weight_type: str = "int8", quant_format: str = "QDQ",
                 reduce_range: bool | None = None, method: str = "minmax",
                 nodes_to_exclude: list[str] | None = None, float_stem: bool = False,
                 prepared=None):
    """Static int8 quantization of an fp32 ONNX ModelProto; returns the quantized ModelProto.

    ``method``: how activation ranges come from the calibration data: ``minmax`` (default),
    ``entropy`` (KL-divergence threshold) or ``percentile`` (99.999th percentile of |x|);
    :func:`to_onnx_int8_best` measures them. ``nodes_to_exclude``: names of nodes (of the
    graph after ``quant_pre_process``, see :func:`prepared_model`) that stay in float;
    ``float_stem`` adds the first convolution (:func:`stem_nodes`) to them. ``prepared``: the
    :func:`prepared_model` of ``fp32_model`` when the caller already made it (it is the same for
    every quantization of one model; made here otherwise).

    Runs ``quant_pre_process`` (shape inference + graph optimisation) first, as ONNX Runtime
    recommends. Defaults: QDQ format, per-channel int8 weights, uint8 activations (U8S8), and
    for U8S8 ``reduce_range`` (weights in 7 bits, see below; ``None`` = on for U8S8 only).
    U8S8 because it is what is fast on x86 CPUs: on the 2-core test machine (resnet8, batch 1)
    the S8S8 file ran at 0.68x (1 thread) / 0.42x (2 threads) the speed of fp32, U8S8 at 1.27x /
    1.18x (python benchmarks/experiments/onnx_int8_settings.py; benchmarks/results/). U8S8 with 7-bit
    weights has the same kernels: 1.30x / 1.26x in the committed run on a shared machine
    (1.30-1.53x / 1.23-1.26x over 3 runs), U8U8 0.91x / 0.91x.
    """
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise UsageError(f"`onnx_calibration` must be auto or one of {', '.join(methods)}, "
                         f"received '{method}'.")
    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    if activation_type not in types or weight_type not in types:
        raise UsageError(f"quantization types must be int8 or uint8, received activations="
                         f"{activation_type}, weights={weight_type}.")
    formats = {"QDQ": QuantFormat.QDQ, "QOperator": QuantFormat.QOperator}
    if quant_format not in formats:
        raise UsageError(f"quant format must be QDQ or QOperator, received {quant_format}.")
    if reduce_range is None:
        # ONNX Runtime's U8S8 kernels on x86 CPUs without VNNI (AVX2, like the 2-core test
        # machine) use VPMADDUBSW, which adds pairs of u8*s8 products into a saturating int16:
        # 255*127*2 overflows it, 255*64*2 does not. On the default run (resnet8, digits) 8-bit
        # per-channel weights saturated 2.4% of the stem conv's pair sums (its input is the image,
        # whose strokes quantize near 255, and every channel gets a +-127 weight), 9.9% of its
        # outputs were off by up to 82 steps, and accuracy fell from 99.63% to 92.94%. The ranges
        # were right: the same file run without graph optimisation (float DQ -> op -> Q, no integer
        # kernels) kept 99.63%. 7-bit weights keep 99.63% with the same fused graph and speed;
        # U8U8 and S8S8 do not saturate but are slower than fp32 here. (TFLite's int8 kernels
        # accumulate in int32, so its int8 model was unaffected.)
        reduce_range = activation_type == "uint8" and weight_type == "int8"
    reader = CalibrationReader(calibration)
    if method != "minmax":  # the histogram calibrators stack per-run outputs: equal batches only
        reader.batch_size = 1
    with tempfile.TemporaryDirectory() as workdir:
        if prepared is None:
            prepared = prepared_model(fp32_model)
        source, output = Path(workdir) / "prepared.onnx", Path(workdir) / "int8.onnx"
        onnx.save(prepared, source)
        exclude = list(nodes_to_exclude or []) + (stem_nodes(prepared) if float_stem else [])
        try:
            with captured_output():
                quantize_static(str(source), str(output), reader,
                                quant_format=formats[quant_format], per_channel=per_channel,
                                activation_type=types[activation_type],
                                weight_type=types[weight_type], reduce_range=reduce_range,
                                calibrate_method=methods[method],
                                nodes_to_exclude=exclude)
        except Exception as exc:
            raise ConversionError(f"ONNX int8 quantization failed: {exc}"[:300]) from exc
        return onnx.load(output)


def prepared_model(fp32_model):
    """The fp32 ModelProto after ``quant_pre_process`` (shape inference + graph optimisation),
    as ONNX Runtime recommends before quantizing; node names for ``nodes_to_exclude`` are this
    graph's."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as workdir:
        source, prepared = Path(workdir) / "fp32.onnx", Path(workdir) / "prepared.onnx"
        onnx.save(fp32_model, source)
        try:
            with captured_output():
                quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except Exception as exc:
            raise ConversionError(f"ONNX int8 pre-processing failed: {exc}"[:300]) from exc
        return onnx.load(prepared)


def run_onnx(proto, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Scores of an ONNX ModelProto on ``x`` in onnxruntime (CPU)."""
    session = _session(proto)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + batch]})[0]
                           for i in range(0, len(x), batch)])


def to_onnx_int8_best(fp32_model, calibration: np.ndarray, check_x: np.ndarray,
                      reference_scores: np.ndarray, check_y: np.ndarray | None = None,
                      budget=None, methods=CALIBRATION_METHODS,
                      types=INTEGER_TYPES, **kwargs) -> tuple[object, dict]:
    """The ONNX int8 model to ship: quantize with every recipe of ``types`` (names of
    :data:`INTEGER_TYPES`, MinMax ranges), score each on ``check_x`` (a validation slice, never
    the test split) against ``reference_scores``
    (:func:`edgecv.converters.verify.slice_row`), count the convolutions ONNX Runtime fuses into integer kernels
    and time each one (interleaved rounds, one image, 1 thread, on this machine). Among the
    recipes within ``budget`` (a :class:`~edgecv.converters.verify.Budget`, default 1.0 pp), the
    fastest wins; recipes whose p50 intervals overlap it are
    tied and the one that agrees best with the reference wins the tie. When none is within
    budget, the one that agrees best (``--recover`` may follow). Then the calibration
    ``methods`` are tried for the winning recipe and the best-agreeing kept.
    Returns the ModelProto and a record of every figure.

    Why (benchmarks/results/onnx_int8_cifar.json): on this AVX2 CPU without VNNI, choosing by
    agreement alone picked S8S8 for the CIFAR-10 resnet8, of whose 10 quantized convolutions
    ONNX Runtime fuses only 4 (0.65x the speed of fp32), and U8U8 for ds_cnn (0.73x); U8S8
    with 8-bit weights saturates the int16 pair sums of VPMADDUBSW in the stem, whose input is
    the image (fused vs unfused agreement 98.7% on resnet8's stem alone), and with 7-bit weights
    everywhere loses 0.75 pp; keeping only the stem in float ("u8s8+float-stem") matched the
    unfused 8-bit model's agreement (99.2%) at U8S8 speed."""
    from edgecv.converters.verify import Budget, agreement, budget_drop, slice_row
    from edgecv.timing import time_rounds

    budget = budget or Budget()
    checked = {}
    for name in types:
        if name not in INTEGER_TYPES:
            raise UsageError(f"ONNX integer types must be among {', '.join(INTEGER_TYPES)}, "
                             f"received '{name}'.")
    kwargs.setdefault("prepared", prepared_model(fp32_model))  # once, not once per candidate
    protos, record = {}, {"agreement": {}, "drop_pp": {}, "integer_kernels": {}, "p50_ms": {}}
    for name in types:
        protos[name] = to_onnx_int8(fp32_model, calibration, method=methods[0],
                                    **INTEGER_TYPES[name], **kwargs)
        scores = run_onnx(protos[name], check_x)
        key = f"{name}/{methods[0]}"
        checked[name] = slice_row(scores, check_y, reference_scores)
        record["agreement"][key] = round(checked[name].agreement, 5)
        record["drop_pp"][name] = budget_drop(checked[name])
        record["integer_kernels"][name] = integer_kernels(protos[name])
    sessions = {name: _session(proto, threads=1) for name, proto in protos.items()}
    sample = {INPUT_NAME: check_x[:1]}
    timings = dict(zip(sessions, time_rounds(
        [lambda s=s: s.run(None, sample) for s in sessions.values()], rounds=5, runs=100,
        min_time_s=0.25, warmup=10)))
    for name, timing in timings.items():
        record["p50_ms"][name] = [round(v, 4) for v in (timing.stats.p50_ms,
                                                         *timing.p50_interval())]
    by_agreement = lambda n: record["agreement"][f"{n}/{methods[0]}"]  # noqa: E731
    within = [n for n in types if budget.fits(checked[n])]
    limit = budget.describe()
    if within:
        fastest = min(within, key=lambda n: record["p50_ms"][n][0])
        low, high = record["p50_ms"][fastest][1:]
        tied = [n for n in within if record["p50_ms"][n][1] <= high and low <= record["p50_ms"][n][2]]
        chosen = max(tied, key=by_agreement)
        why = (f"the fastest within {limit} on the check slice"
               + (f" (tied with {', '.join(t for t in tied if t != chosen)}: best agreement)"
                  if len(tied) > 1 else ""))
    else:
        chosen = max(types, key=by_agreement)
        why = f"none within {limit}: the best agreement"
    best = (methods[0], protos[chosen])
    for method in methods[1:]:
        proto = to_onnx_int8(fp32_model, calibration, method=method, **INTEGER_TYPES[chosen],
                             **kwargs)
        key = f"{chosen}/{method}"
        record["agreement"][key] = round(agreement(run_onnx(proto, check_x), reference_scores), 5)
        if record["agreement"][key] > record["agreement"][f"{chosen}/{best[0]}"]:
            best = (method, proto)
    return best[1], {"method": best[0], "types": chosen, "why": why, **record}


def _session(proto, threads: int | None = None):
    """An ONNX Runtime CPU session on a ModelProto (``threads`` intra-op threads; None: its
    default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def integer_kernels(proto) -> dict | None:
    """:func:`edgecv.benchmarks.ort_kernels.integer_kernel_report` without the op list."""
    from edgecv.benchmarks.ort_kernels import integer_kernel_report

    report = integer_kernel_report(proto)
    return None if report is None else {k: report[k] for k in ("quantized", "integer", "float")}
