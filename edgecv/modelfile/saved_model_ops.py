"""The ops a SavedModel's graph may hold, read from ``saved_model.pb`` before TensorFlow loads it.

A SavedModel carries no Python, but its graph can still act: ``tf.io.write_file``,
``tf.print(output_stream="file://...")``, a checkpoint ``Save`` op, a tf.data reader or a
``py_function`` traced into a serving function run whenever the signature does, and
``tf.saved_model.load`` itself runs graph code before any signature is called: the TF2 loader
calls the ``_initialize`` function of every resource in the object graph
(tensorflow/python/saved_model/load.py, ``Loader.__init__``), the TF1 path
(load_v1_in_v2.py) runs the MetaGraph's ``restore_op_name``, its init op and the table
initializers and local variable initializers named in its collections.

So edgecv parses the protobuf first and checks every op of every MetaGraph: the top-level graph's
nodes and every function of its library, the ones reached through calls, ``If``/``While``/``Case``
branches and bodies and any other function-valued attribute included. What may run is an
allow-list (:data:`CLASSIFIER_OPS`, the ops the zoo's models, Keras 3 and tf.keras 2 exports and
ordinary image classifiers trace to), not a deny-list: an op TensorFlow adds tomorrow is refused
until someone looks at it.

The one exception is the checkpoint plumbing every SavedModel carries, decided by the graph's
structure, never by names (function and node names are the file's to choose):

- what only the MetaGraph's ``saver_def.restore_op_name`` reaches (its input closure in the
  graph, then the functions those nodes call) may also use ``RestoreV2``: the TF1 loader runs it
  with the SavedModel's ``variables/`` prefix; it reads a checkpoint bundle into tensors (at
  worst another checkpoint's values into variables) and can neither write, delete nor run code;
- what only ``saver_def.save_tensor_name`` reaches may also use ``SaveV2`` and
  ``MergeV2Checkpoints`` (which write and delete files), because no loader runs it: the TF2
  loader restores variables with ops its own Python builds (``Loader._restore_checkpoint``), the
  TF1 loader runs the restore op, the init op, the signatures and what its collections name,
  and edgecv never saves a loaded SavedModel.

A saver node or function that is named anywhere else in the MetaGraph (a signature, a
collection such as ``table_initializer``, the object graph whose functions the TF2 loader calls)
or that the rest of the graph reaches is checked as ordinary graph code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgecv.errors import ModelFileError, first_line
from edgecv.modelfile.kinds import SAVED_MODEL_FILE

# Graph plumbing, calls and control flow (the functions they call are walked and checked too).
_PLUMBING = (
    "Const", "Placeholder", "PlaceholderWithDefault", "Identity", "IdentityN", "NoOp",
    "StopGradient", "PreventGradient", "Snapshot", "EnsureShape", "CheckNumerics", "Assert",
    "GuaranteeConst", "PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf", "While",
    "StatelessWhile", "Case", "StatelessCase", "Switch", "Merge", "Enter", "Exit",
    "NextIteration", "LoopCond", "ControlTrigger",
)
# Variables in memory: TF2 resource variables and TF1 reference variables.
_VARIABLES = (
    "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp",
    "AssignSubVariableOp", "VarIsInitializedOp", "ResourceGather", "ResourceGatherNd",
    "VariableV2", "Assign", "AssignAdd", "AssignSub", "IsVariableInitialized",
)
_ELEMENTWISE = (
    "Abs", "Acos", "Acosh", "Add", "AddN", "AddV2", "Asin", "Asinh", "Atan", "Atan2", "Atanh",
    "BiasAdd", "BiasAddV1", "Cast", "Ceil", "ClipByValue", "Cos", "Cosh", "Div", "DivNoNan", "Elu",
    "Equal", "Erf", "Erfc", "Erfinv", "Exp", "Expm1", "Floor", "FloorDiv", "FloorMod", "Greater",
    "GreaterEqual", "Inv", "IsFinite", "IsInf", "IsNan", "LeakyRelu", "Less", "LessEqual", "Log",
    "Log1p", "LogSoftmax", "LogicalAnd", "LogicalNot", "LogicalOr", "Maximum", "Minimum", "Mod",
    "Mul", "MulNoNan", "Neg", "NotEqual", "Pow", "RealDiv", "Reciprocal", "Relu", "Relu6", "Rint",
    "Round", "Rsqrt", "Select", "SelectV2", "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softmax",
    "Softplus", "Softsign", "Sqrt", "Square", "SquaredDifference", "Sub", "Tan", "Tanh",
    "TruncateDiv", "TruncateMod", "Xdivy", "Xlog1py", "Xlogy",
)
# Convolutions, pooling, normalisation, reductions, matrix products, a little linear algebra.
_LAYERS = (
    "Conv", "Conv2D", "Conv3D", "Conv2DBackpropInput", "Conv3DBackpropInputV2",
    "DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput", "MaxPool", "MaxPoolV2",
    "MaxPool3D", "AvgPool", "AvgPool3D", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
    "LRN", "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "All", "Any",
    "ArgMax", "ArgMin", "Max", "Mean", "Min", "Prod", "Sum", "EuclideanNorm", "Cumsum", "Cumprod",
    "CumulativeLogsumexp", "TopKV2", "InTopKV2", "MatrixInverse", "MatrixDeterminant",
    "LogMatrixDeterminant", "MatrixSolve", "MatrixTriangularSolve", "Cholesky", "MatrixBandPart",
    "MatrixDiagV3", "MatrixDiagPartV3", "MatrixSetDiagV3",
)
# Shapes, slicing, joining, gathering.
_ARRAYS = (
    "Shape", "ShapeN", "Size", "Rank", "Reshape", "Squeeze", "ExpandDims", "Transpose",
    "InvertPermutation", "Concat", "ConcatV2", "ConcatOffset", "Pack", "Unpack", "Split", "SplitV",
    "Slice", "StridedSlice", "Tile", "Pad", "PadV2", "MirrorPad", "Fill", "ZerosLike", "OnesLike",
    "Range", "LinSpace", "Gather", "GatherV2", "GatherNd", "ScatterNd", "TensorScatterAdd",
    "TensorScatterUpdate", "TensorStridedSliceUpdate", "Reverse", "ReverseV2", "Roll",
    "BroadcastTo", "BroadcastArgs", "BroadcastGradientArgs", "SpaceToDepth", "DepthToSpace",
    "SpaceToBatchND", "BatchToSpaceND", "Where", "OneHot", "Bucketize",
)
# Images: resizing, crops, the affine transform and colour ops of augmentation layers.
_IMAGES = (
    "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea", "ScaleAndTranslate",
    "CropAndResize", "ExtractImagePatches", "ImageProjectiveTransformV2",
    "ImageProjectiveTransformV3", "AdjustContrastv2", "AdjustHue", "AdjustSaturation",
    "RGBToHSV", "HSVToRGB",
)
# Random numbers for dropout and augmentation (in-memory generators).
_RANDOM = (
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal",
    "StatelessRandomUniform", "StatelessRandomNormal", "StatelessRandomUniformV2",
    "StatelessRandomUniformIntV2", "StatelessRandomNormalV2", "StatelessTruncatedNormalV2",
    "StatelessRandomGetKeyCounter", "StatelessRandomGetAlg", "StatelessRandomGetKeyCounterAlg",
    "RngReadAndSkip", "RngSkip",
)
# Recurrent layers' loops keep their steps in in-memory tensor lists or arrays.
_SEQUENCES = (
    "EmptyTensorList", "TensorListReserve", "TensorListFromTensor", "TensorListGetItem",
    "TensorListSetItem", "TensorListStack", "TensorListLength", "TensorListElementShape",
    "TensorListPushBack", "TensorListPopBack", "TensorArrayV3", "TensorArrayReadV3",
    "TensorArrayWriteV3", "TensorArrayGatherV3", "TensorArrayScatterV3", "TensorArraySizeV3",
    "TensorArrayConcatV3", "TensorArraySplitV3",
)
# Quantization-aware training.
_QUANTIZATION = (
    "FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel",
    "QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3", "QuantizeAndDequantizeV4",
)
CLASSIFIER_OPS = frozenset(_PLUMBING + _VARIABLES + _ELEMENTWISE + _LAYERS + _ARRAYS + _IMAGES
                           + _RANDOM + _SEQUENCES + _QUANTIZATION)
"""Ops that compute on in-memory tensors and variables only: none opens a file, a socket or a
process, or calls back into Python."""
RESTORE_OPS = frozenset({"RestoreV2"})
"""Also allowed where only the saver's restore op reaches (see the module docstring)."""
SAVE_OPS = frozenset({"SaveV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin",
                      "StaticRegexFullMatch", "DisableCopyOnRead"})
"""Also allowed where only the saver's save tensor reaches, which no loader runs."""

# How strictly a node or function is checked: the largest context that reaches it wins.
_SAVE, _RESTORE, _GRAPH = 0, 1, 2
_ALLOWED = {_SAVE: CLASSIFIER_OPS | RESTORE_OPS | SAVE_OPS, _RESTORE: CLASSIFIER_OPS | RESTORE_OPS,
            _GRAPH: CLASSIFIER_OPS}
_NAME_CHARACTER = rb"[A-Za-z0-9_.\-/>]"

# What an op outside the allow-list does, for messages only: the first match wins, and the
# refused ops are listed in this order (the most harmful first).
_WHY_REFUSED = (
    (r"PyFunc", "runs Python"),
    (r"^(WriteFile|Save|SaveSlices|SaveV2|MergeV2Checkpoints)$|Summary|Writer|^Print|^Debug",
     "writes files or logs"),
    (r"Send|Recv|Remote|Collective|Rpc|Nccl|DataService", "talks to other processes or the network"),
    (r"^(ReadFile|MatchingFiles|ImmutableConst)$|Restore|TextFile|Reader|Record|TextLine",
     "reads files"),
    (r"Dataset|Iterator", "runs a tf.data pipeline, which can read files"),
)
_NOT_NEEDED = "not an op an image classifier needs"


@dataclass(frozen=True)
class RefusedOp:
    """An op of a SavedModel's graph that edgecv does not let TensorFlow load: ``op`` (its type),
    ``where`` ("function 'NAME'" or "graph node 'NAME'") and ``why`` (what such an op does)."""

    op: str
    where: str
    why: str

    def __str__(self) -> str:
        return f"{self.op} in {self.where} ({self.why})"


def why_refused(op: str) -> str:
    """What op type ``op`` does that a classifier does not need, in a few words."""
    for pattern, why in _WHY_REFUSED:
        if re.search(pattern, op):
            return why
    return _NOT_NEEDED


def read_saved_model(path: str | Path):
    """The ``SavedModel`` protobuf of directory ``path`` (its ``saved_model.pb``), parsed without
    loading anything. TensorFlow is imported (quietly): its protobuf classes live there."""
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(path)
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / SAVED_MODEL_FILE).read_bytes())
    except Exception as exc:  # protobuf's DecodeError, an unreadable file
        raise ModelFileError(f"cannot load SavedModel '{path}': {SAVED_MODEL_FILE} is not a "
                             f"SavedModel protobuf ({first_line(exc)}).") from exc
    return proto


def refused_ops(saved_model) -> list[RefusedOp]:
    """Every op of every MetaGraph of ``saved_model`` (a parsed ``SavedModel``) that is not
    allowed where it sits, once per (op, place), the most harmful first; empty for a model
    edgecv may load."""
    refused: dict[tuple[str, str], RefusedOp] = {}
    for meta_graph in saved_model.meta_graphs:
        for op, where in _refused_in_meta_graph(meta_graph):
            refused.setdefault((op, where), RefusedOp(op, where, why_refused(op)))
    severity = [why for _, why in _WHY_REFUSED] + [_NOT_NEEDED]
    return sorted(refused.values(), key=lambda item: severity.index(item.why))


def check_saved_model_ops(path: str | Path) -> None:
    """Raise :class:`ModelFileError` (one line: the op, where it sits, what to do) if the
    SavedModel at directory ``path`` has an op outside the allow-list; return otherwise. Nothing
    of the model is loaded or run."""
    refused = refused_ops(read_saved_model(path))
    if refused:
        more = (f" and {len(refused) - 1} more (edgecv info '{path}' lists them)"
                if len(refused) > 1 else "")
        raise ModelFileError(
            f"SavedModel '{path}' not loaded: its graph has the op {refused[0]}{more}; edgecv "
            "loads only SavedModels made of ordinary classifier ops, since loading or running one "
            "runs its graph. Remove the op from the model and export it again.")


def _refused_in_meta_graph(meta_graph) -> list[tuple[str, str]]:
    """(op, where) of each op of one MetaGraph that is not allowed in its context."""
    graph = meta_graph.graph_def
    # name -> nodes and name -> inputs; a name given twice (TensorFlow refuses that) gets both
    functions: dict[str, list] = {}
    for function in graph.library.function:
        functions.setdefault(function.signature.name, []).extend(function.node_def)
    inputs: dict[str, list[str]] = {}
    for node in graph.node:
        inputs.setdefault(node.name, []).extend(node.input)
    elsewhere = _named_elsewhere(meta_graph)
    node_context = _node_contexts(meta_graph.saver_def, inputs, elsewhere)
    function_context = _function_contexts(functions, graph.node, node_context, elsewhere)
    refused = []
    for node in graph.node:
        refused += [(op, f"graph node '{node.name}'")
                    for op in _ops_run(node, functions, node_context[node.name])]
    for name in sorted(function_context):
        for node in functions[name]:
            refused += [(op, f"function '{name}'")
                        for op in _ops_run(node, functions, function_context[name])]
    return refused


def _named_elsewhere(meta_graph):
    """A test: is this node or function name mentioned in the MetaGraph outside its graph and
    saver_def (signatures, collections, the object graph, assets)? Such a name can be run by a
    loader without any graph edge leading to it. Searched in the serialized bytes, with a name
    boundary after it and none required before, so it errs towards "mentioned"."""
    rest = type(meta_graph)()
    rest.CopyFrom(meta_graph)
    rest.ClearField("graph_def")
    rest.ClearField("saver_def")
    blob = rest.SerializeToString()
    return lambda name: re.search(re.escape(name.encode()) + rb"(?!" + _NAME_CHARACTER + rb")",
                                  blob) is not None


def _node_contexts(saver_def, inputs: dict, elsewhere) -> dict[str, int]:
    """Each top-level node's context (``inputs``: node name -> its input names): _SAVE or
    _RESTORE if only the saver's save tensor or restore op reaches it, _GRAPH otherwise."""
    save_nodes = _input_closure(inputs, [saver_def.save_tensor_name])
    restore_nodes = _input_closure(inputs, [saver_def.restore_op_name])
    saver_nodes = save_nodes | restore_nodes
    graph_nodes = _input_closure(inputs, [name for name in inputs if name not in saver_nodes])
    graph_nodes |= _input_closure(inputs, [name for name in saver_nodes - graph_nodes
                                           if elsewhere(name)])
    return {name: _GRAPH if name in graph_nodes else _RESTORE if name in restore_nodes else _SAVE
            for name in inputs}


def _function_contexts(functions: dict, nodes, node_context: dict,
                       elsewhere) -> dict[str, int]:
    """Each library function's context: the largest of its callers' (top-level nodes and other
    functions, transitively); _GRAPH for a function nothing calls (a loader may still call it)
    and for one named elsewhere in the MetaGraph."""
    context: dict[str, int] = {}
    pending: list[str] = []

    def reach(name: str, level: int) -> None:
        if name in functions and context.get(name, -1) < level:
            context[name] = level
            pending.append(name)

    def propagate() -> None:
        while pending:
            caller = pending.pop()
            for node in functions[caller]:
                for callee in _callees(node):
                    reach(callee, context[caller])

    for node in nodes:
        for callee in _callees(node):
            reach(callee, node_context[node.name])
    propagate()
    for name in functions:
        if name not in context or (context[name] < _GRAPH and elsewhere(name)):
            reach(name, _GRAPH)
    propagate()
    return context


def _ops_run(node, functions: dict, level: int) -> list[str]:
    """The op types ``node`` runs that are not allowed at ``level``: its own type unless it calls
    a library function, and any function-valued attribute that names no library function (TF
    then runs the op of that name)."""
    names = [] if node.op in functions else [node.op]
    names += [name for name in _callees(node) if name not in functions and name != node.op]
    return [name for name in names if name not in _ALLOWED[level]]


def _callees(node) -> list[str]:
    """Names ``node`` calls: its op type (a library function is called by its name) and every
    function named in its attributes (``f``, ``then_branch``, ``body``, ``branches``, ...)."""
    names = [node.op]
    stack = list(node.attr.values())
    while stack:
        value = stack.pop()
        kind = value.WhichOneof("value")
        if kind == "func":
            names.append(value.func.name)
            stack.extend(value.func.attr.values())
        elif kind == "list":
            for function in value.list.func:
                names.append(function.name)
                stack.extend(function.attr.values())
    return names


def _input_closure(inputs: dict, roots: list[str]) -> set[str]:
    """Names of the nodes that running ``roots`` (node or tensor names, control inputs too)
    runs: the roots and all their inputs, transitively."""
    seen: set[str] = set()
    stack = [_node_name(root) for root in roots]
    while stack:
        name = stack.pop()
        if name in seen or name not in inputs:
            continue
        seen.add(name)
        stack.extend(_node_name(source) for source in inputs[name])
    return seen


def _node_name(tensor: str) -> str:
    """'^name' or 'name:1' -> 'name'."""
    return tensor.lstrip("^").split(":")[0]
