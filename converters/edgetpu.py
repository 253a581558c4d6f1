"""Edge TPU: a static compatibility report without the compiler, and ``edgetpu_compiler`` when present.

The Edge TPU runs a model only if it is fully int8/uint8 quantized, has static shapes, tensors of
at most 4 dimensions with batch 1, and uses the supported operators. The compiler maps the graph
from its start up to the first operator it cannot run; that operator and everything after it
run on the CPU. The static report applies those rules to the file, op by op, so a user learns
before buying hardware (or installing the compiler) where the graph would split.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from edgecv.errors import ConversionError
from edgecv.tflite_schema import builtin_op_names, tflite_schema

# The supported-operations table of the Coral documentation (Edge TPU compiler 16), as TFLite
# builtin operator names.
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "HARD_SWISH", "L2_NORMALIZATION", "LOGISTIC", "MAXIMUM", "MAX_POOL_2D",
    "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN",
    "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUARED_DIFFERENCE", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
})
QUANTIZED_TYPES = {"int8", "uint8", "int32"}  # int32 for biases and shape operands


def _operator_problems(name: str, tensors: list[dict]) -> list[str]:
    problems = []
    if name not in EDGETPU_OPS:
        problems.append(f"operator {name} is not supported by the Edge TPU")
    for tensor in tensors:
        if tensor["dtype"] not in QUANTIZED_TYPES:
            problems.append(f"tensor '{tensor['name']}' is {tensor['dtype']}, not int8/uint8")
        if len(tensor["shape"]) > 4:
            problems.append(f"tensor '{tensor['name']}' has {len(tensor['shape'])} dimensions (max 4)")
        if any(d < 0 for d in tensor["signature"]):
            problems.append(f"tensor '{tensor['name']}' has a dynamic shape {tensor['signature']}")
        if not tensor["constant"] and len(tensor["shape"]) == 4 and tensor["shape"][0] != 1:
            problems.append(f"tensor '{tensor['name']}' has batch {tensor['shape'][0]} (must be 1)")
    return problems


def static_report(model: bytes) -> dict:
    """Check every operator of a TFLite model against the Edge TPU's rules.

    Returns ``{"operators": [{"index", "op", "edgetpu": bool, "problems": [...]}],
    "first_unsupported": index | None, "ops_on_edgetpu": n, "ops_on_cpu": n, "summary": str}``.
    """
    schema = tflite_schema()
    op_names = builtin_op_names()
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    root = schema.Model.GetRootAs(model, 0)
    codes = [op_names.get(max(root.OperatorCodes(i).BuiltinCode(),
                              root.OperatorCodes(i).DeprecatedBuiltinCode()), "UNKNOWN")
             for i in range(root.OperatorCodesLength())]
    graph = root.Subgraphs(0)
    operators = []
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        tensor_ids = [i for i in (*op.InputsAsNumpy().tolist(), *op.OutputsAsNumpy().tolist())
                      if i >= 0] if op.InputsLength() + op.OutputsLength() else []
        tensors = []
        for tid in tensor_ids:
            t = graph.Tensors(tid)
            shape = t.ShapeAsNumpy().tolist() if t.ShapeLength() else []
            signature = t.ShapeSignatureAsNumpy().tolist() if t.ShapeSignatureLength() else shape
            constant = root.Buffers(t.Buffer()).DataLength() > 0  # weights, biases
            tensors.append({"name": (t.Name() or b"").decode(), "dtype": type_names[t.Type()],
                            "shape": shape, "signature": signature, "constant": constant})
        name = codes[op.OpcodeIndex()]
        problems = _operator_problems(name, tensors)
        operators.append({"index": index, "op": name, "edgetpu": not problems, "problems": problems})
    first = next((o["index"] for o in operators if not o["edgetpu"]), None)
    on_tpu = len(operators) if first is None else first
    summary = (f"all {len(operators)} operators can run on the Edge TPU" if first is None else
               f"{on_tpu} of {len(operators)} operators can run on the Edge TPU; the graph splits "
               f"at operator {first} ({operators[first]['op']}: {operators[first]['problems'][0]}), "
               f"and it and the {len(operators) - first - 1} after it run on the CPU")
    return {"operators": operators, "first_unsupported": first, "ops_on_edgetpu": on_tpu,
            "ops_on_cpu": len(operators) - on_tpu, "summary": summary}


def find_compiler() -> str | None:
    """Path of ``edgetpu_compiler`` on PATH, or None."""
    return shutil.which("edgetpu_compiler")


def parse_compiler_log(log: str) -> dict:
    """The operator counts and per-op status table of an ``edgetpu_compiler -s`` log."""
    counts = {}
    for key, pattern in (("ops_on_edgetpu", r"operations that will run on Edge TPU:\s*(\d+)"),
                         ("ops_on_cpu", r"operations that will run on CPU:\s*(\d+)")):
        match = re.search(pattern, log)
        if match:
            counts[key] = int(match.group(1))
    table = []
    for line in log.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)\s+(.+)$", line.strip())
        if match and match.group(1).isupper():
            table.append({"op": match.group(1), "count": int(match.group(2)),
                          "status": match.group(3).strip()})
    return {**counts, "operators": table}


def compile_for_edgetpu(model_path: Path, out_dir: Path, compiler: str, timeout: float = 600):
    """Run ``edgetpu_compiler -s -o OUT MODEL``; return (compiled path, parsed log, raw log)."""
    result = subprocess.run([compiler, "-s", "-o", str(out_dir), str(model_path)],
                            capture_output=True, text=True, timeout=timeout, check=False)
    log = result.stdout + result.stderr
    if result.returncode != 0:
        last = log.strip().splitlines()[-1] if log.strip() else f"exit code {result.returncode}"
        raise ConversionError(f"edgetpu_compiler failed (exit {result.returncode}): {last}")
    compiled = out_dir / f"{model_path.stem}_edgetpu.tflite"
    if not compiled.is_file():
        raise ConversionError(f"edgetpu_compiler reported success but wrote no {compiled.name}")
    return compiled, parse_compiler_log(log), log
