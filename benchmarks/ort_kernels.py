"""How much of a quantized ONNX model ONNX Runtime really runs in integer kernels.

A QDQ model only marks where to quantize; ONNX Runtime's graph optimizer fuses
DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv (and MatMul/Gemm/Add/pooling alike)
where its selectors match. What it does not fuse runs in float between a dequantize and a
quantize, slower than the fp32 model. The bench report says, per ONNX int8 file, how many of the
quantized convolutions and matrix products became integer kernels on the CPU provider.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

# Ops that compute a convolution / matrix product in integers (ai.onnx and com.microsoft).
INTEGER_KERNELS = ("QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QGemm",
                   "MatMulIntegerToFloat", "DynamicQuantizeMatMul")
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


def quantized_weighted_ops(graph) -> int:
    """Convolutions / matrix products of a QDQ graph whose weight comes through DequantizeLinear
    (what the quantizer meant to run in int8)."""
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear"
                   for out in node.output}
    return sum(1 for node in graph.node if node.op_type in WEIGHTED_OPS and len(node.input) > 1
               and node.input[1] in dequantized)


def integer_kernel_report(model) -> dict | None:
    """``{"quantized": N, "integer": M, "float": N - M, "ops": {op: count}}`` for a quantized
    ONNX model (a file path or a ModelProto) on ONNX Runtime's CPU provider at its default (full)
    optimisation level; None for a float model, a file onnx cannot read, or a device without the
    ``onnx`` package (it comes with the [train] extra; the runtime needs only onnxruntime)."""
    try:
        import onnx
    except ImportError:
        return None
    import onnxruntime as ort

    if not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model))
        except Exception:  # a corrupt file fails with its own reason when it is opened
            return None
    quantized = quantized_weighted_ops(model.graph)
    if not quantized:
        return None
    with tempfile.TemporaryDirectory() as workdir:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(workdir) / "optimized.onnx")
        try:
            ort.InferenceSession(model.SerializeToString(), options,
                                 providers=["CPUExecutionProvider"])
            optimized = onnx.load(options.optimized_model_filepath)
        except Exception:
            return None
    ops = Counter(node.op_type for node in optimized.graph.node)
    integer = sum(ops[name] for name in INTEGER_KERNELS)
    return {"quantized": quantized, "integer": min(integer, quantized),
            "float": max(quantized - integer, 0),
            "ops": {name: count for name, count in sorted(ops.items())}}
