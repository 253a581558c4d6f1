"""SavedModels are read op by op before TensorFlow loads them (edgecv.modelfile.saved_model_ops).

Every zoo model, the Keras 2 files, a classifier with layers the zoo does not use and a TF1
SavedModel pass; hostile graphs that write, read or list files, run Python, print or dump to a
file, save a checkpoint or run a tf.data reader (in a signature, a nested function, a cond or
while body, a resource initializer the loader runs, a TF1 saver's restore op or a collection the
TF1 loader runs) are refused in one line that names the op and its function, by `convert`, `info`
and `bench`, and their side effect never happens.
"""

import json
import re
import shutil

import numpy as np
import pytest

from conftest import run_cli
from edgecv.models import list_models

pytestmark = pytest.mark.tf

SPEC_SHAPE = [None, 8, 8, 1]


# --- hostile SavedModels, built here; each one's side effect would touch `target` ----------------

def _classifier(side_effect):
    """A tf.Module whose serving signature looks like an 8x8 gray, 3-class classifier and runs
    ``side_effect(x)`` first."""
    import tensorflow as tf

    class Classifier(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.ones([1, 3]))

        @tf.function(input_signature=[tf.TensorSpec(SPEC_SHAPE, tf.float32)])
        def serve(self, x):
            side_effect(x)
            return {"scores": tf.nn.softmax(tf.matmul(tf.reduce_mean(x, [1, 2]), self.w))}

    return Classifier()


def _saved(side_effect):
    def build(directory, target):
        import tensorflow as tf

        module = _classifier(lambda x: side_effect(x, str(target)))
        tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return build


def _write(target):
    import tensorflow as tf

    tf.io.write_file(target, "pwned")


def _nested(x, target):
    import tensorflow as tf

    @tf.function
    def inner(x):
        _write(target)
        return x
    return inner(x)


def _in_cond(x, target):
    import tensorflow as tf

    def then():
        _write(target)
        return tf.constant(1)
    return tf.cond(tf.reduce_sum(x) > -1.0, then, lambda: tf.constant(0))


def _in_while(x, target):
    import tensorflow as tf

    def body(i):
        _write(target)
        return i + 1
    return tf.while_loop(lambda i: i < tf.shape(x)[0], body, [tf.constant(0)])


def _py_function(x, target):
    import tensorflow as tf

    return tf.py_function(lambda: open(target, "w").close(), [], [])


def _numpy_function(x, target):
    import tensorflow as tf

    return tf.numpy_function(lambda: np.float32(open(target, "w").close() or 0), [], tf.float32)


def _resource_initializer(directory, target):
    """A resource whose initializer writes: tf.saved_model.load runs it, no signature needed."""
    import tensorflow as tf

    class Trap(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="trap")

        def _initialize(self):
            _write(str(target))

    module = _classifier(lambda x: None)
    module.trap = Trap()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})


def _tf1_saved_model(directory):
    """A TF1 SavedModel (graph, Saver, no object graph) of the same classifier."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, SPEC_SHAPE, name="x")
        # a constant initializer: another test file may have turned op determinism on in this
        # process, and then an unseeded random one fails
        w = v1.get_variable("w", [1, 3], initializer=v1.ones_initializer())
        scores = tf.nn.softmax(tf.matmul(tf.reduce_mean(x, [1, 2]), w), name="scores")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            v1.saved_model.simple_save(session, str(directory), {"x": x}, {"scores": scores})


def _edit_meta_graph(directory, change):
    from tensorflow.core.protobuf import saved_model_pb2

    path = directory / "saved_model.pb"
    model = saved_model_pb2.SavedModel()
    model.ParseFromString(path.read_bytes())
    change(model.meta_graphs[0])
    path.write_bytes(model.SerializeToString())


def _string_const(graph_def, name, value):
    import tensorflow as tf

    node = graph_def.node.add(name=name, op="Const")
    node.attr["dtype"].type = tf.string.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))


def _tf1_restore_op(directory, target):
    """The saver's restore op (run by the TF1 loader) replaced by a WriteFile node."""
    def change(meta_graph):
        _string_const(meta_graph.graph_def, "pwn/name", str(target))
        _string_const(meta_graph.graph_def, "pwn/contents", "pwned")
        meta_graph.graph_def.node.add(name="pwn", op="WriteFile", input=["pwn/name", "pwn/contents"])
        meta_graph.saver_def.restore_op_name = "pwn"

    _tf1_saved_model(directory)
    _edit_meta_graph(directory, change)


def _tf1_table_initializer(directory, target):
    """The saver's own SaveV2 (fine where only the save tensor reaches it) named in the
    table_initializer collection, which the TF1 loader runs, with its file name aimed at target."""
    import tensorflow as tf

    def change(meta_graph):
        for node in meta_graph.graph_def.node:
            if node.name == "save/filename/input":
                node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(str(target)))
        meta_graph.collection_def["table_initializer"].node_list.value.append("save/SaveV2")

    _tf1_saved_model(directory)
    _edit_meta_graph(directory, change)


# name -> (builder(directory, target), the op refused first, where it sits)
HOSTILE = {
    "write_file": (_saved(lambda x, t: _write(t)), "WriteFile", r"function '__inference_serve_\d+'"),
    "read_file": (_saved(lambda x, t: __import__("tensorflow").io.read_file(t)), "ReadFile",
                  r"function '__inference_serve_\d+'"),
    "matching_files": (_saved(lambda x, t: __import__("tensorflow").io.matching_files(t + "*")),
                       "MatchingFiles", r"function '__inference_serve_\d+'"),
    "py_function": (_saved(_py_function), "EagerPyFunc", r"function '__inference_serve_\d+'"),
    "numpy_function": (_saved(_numpy_function), "PyFunc", r"function '__inference_serve_\d+'"),
    "print_to_file": (_saved(lambda x, t: __import__("tensorflow").print(
        "pwned", output_stream="file://" + t)), "PrintV2", r"function '__inference_serve_\d+'"),
    "debug_identity": (_saved(lambda x, t: __import__("tensorflow").raw_ops.DebugIdentityV2(
        input=x, tfdbg_context_id="c", op_name="o", output_slot=0, tensor_debug_mode=1,
        debug_urls=["file://" + t])), "DebugIdentityV2", r"function '__inference_serve_\d+'"),
    "save_op": (_saved(lambda x, t: __import__("tensorflow").raw_ops.Save(
        filename=t, tensor_names=["x"], data=[x])), "Save", r"function '__inference_serve_\d+'"),
    "text_dataset": (_saved(lambda x, t: __import__("tensorflow").data.TextLineDataset(t).reduce(
        np.int64(0), lambda count, _: count + 1)), "TextLineDataset",
        r"function '__inference_Dataset_flat_map_read_one_file_\d+'"),
    "nested_function": (_saved(_nested), "WriteFile", r"function '__inference_inner_\d+'"),
    "cond_branch": (_saved(_in_cond), "WriteFile", r"function 'cond_true_\d+'"),
    "while_body": (_saved(_in_while), "WriteFile", r"function 'while_body_\d+'"),
    "resource_initializer": (_resource_initializer, "WriteFile",
                             r"function '__inference__initializer_\d+'"),
    "tf1_restore_op": (_tf1_restore_op, "WriteFile", r"graph node 'pwn'"),
    "tf1_table_initializer": (_tf1_table_initializer, "SaveV2", r"graph node 'save/SaveV2'"),
}
READERS = {"read_file", "matching_files", "text_dataset"}  # their target is a file to read
READ_ME = "a file the model wants to read\n"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Every HOSTILE SavedModel in ROOT/models/NAME; their side effects aim at ROOT/targets/NAME
    (a file to read, for the readers)."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "targets").mkdir()
    for name, (build, _, _) in HOSTILE.items():
        target = root / "targets" / name
        build(root / "models" / name, target)
        if name in READERS:
            target.write_text(READ_ME)
    return root


def _side_effects(root):
    """What the hostile models wrote: everything under targets/ but the files to read."""
    return sorted(path.name for path in (root / "targets").iterdir()
                  if path.name not in READERS or path.read_text() != READ_ME)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_savedmodel_is_refused_before_tensorflow_loads_it(hostile, name):
    from edgecv.errors import ModelFileError
    from edgecv.info import describe_keras
    from edgecv.modelfile.saved_model import load_saved_model

    _, op, where = HOSTILE[name]
    path = hostile / "models" / name
    with pytest.raises(ModelFileError) as refused:
        load_saved_model(path)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message, message
    assert re.search(rf"the op {op} in {where} \(", message), message
    assert "export it again" in message  # what to do

    text = describe_keras(path)
    assert "loaded      no: " in text and "signature" not in text
    assert re.search(rf"^refused op  {op} in {where} \(", text, re.M), text
    assert _side_effects(hostile) == []


def test_cli_convert_info_and_bench_refuse_hostile_savedmodels(hostile, tmp_path):
    """The reported case: `edgecv convert DIR --int8` ran the signature (and wrote the file)
    for its reference accuracy before the converter refused the op."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.integers(0, 256, (30, 8, 8, 1), dtype=np.uint8),
             y=rng.integers(0, 3, 30))
    for name in ("write_file", "tf1_restore_op"):
        _, op, where = HOSTILE[name]
        result = run_cli("convert", hostile / "models" / name, "--int8", "--data",
                         tmp_path / "data.npz", "--scale", "1/255", "--out", tmp_path / name,
                         timeout=300)
        assert result.returncode == 2, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and re.search(rf"^error: SavedModel .* {op} in {where}", lines[0])
        assert not (tmp_path / name).exists()

    info = run_cli("info", hostile / "models" / "while_body", timeout=300)
    assert info.returncode == 0, info.stderr[-2000:]
    assert re.search(r"^refused op  WriteFile in function 'while_body_\d+' \(writes files",
                     info.stdout, re.M), info.stdout

    models = sorted((hostile / "models").iterdir())
    result = run_cli("bench", *models, "--targets", "cpu", "--runs", "3", "--min-time", "0",
                     "--json", tmp_path / "report.json", timeout=600)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    rows = json.loads((tmp_path / "report.json").read_text())["rows"]
    assert sorted(row["artifact"] for row in rows) == sorted(HOSTILE)
    for row in rows:
        _, op, where = HOSTILE[row["artifact"]]
        assert row["status"] == "failed" and re.search(rf"{op} in {where}", row["reason"]), row
    assert _side_effects(hostile) == []


def _save_function(meta_graph):
    """The function the saver's save tensor calls (``__inference__traced_save_N``)."""
    name = meta_graph.saver_def.save_tensor_name.split(":")[0]
    return next(node for node in meta_graph.graph_def.node if node.name == name).attr["f"].func.name


def _call_save_from_signature(meta_graph):
    for function in meta_graph.graph_def.library.function:
        if function.signature.name.startswith("__inference_signature_wrapper"):
            for node in function.node_def:
                if "f" in node.attr:
                    node.attr["f"].func.name = _save_function(meta_graph)


def _name_save_in_object_graph(meta_graph):
    meta_graph.object_graph_def.concrete_functions[_save_function(meta_graph)].SetInParent()


@pytest.mark.parametrize("edit", [_call_save_from_signature, _name_save_in_object_graph])
def test_the_savers_functions_are_graph_code_once_anything_else_reaches_them(tmp_path, edit):
    """SaveV2 and MergeV2Checkpoints are allowed in the function only the saver's save tensor
    calls, which no loader runs; called from a signature, or named in the object graph (whose
    functions the TF2 loader may call), the same function is refused, whatever its name."""
    import tensorflow as tf

    module = _classifier(lambda x: None)
    tf.saved_model.save(module, str(tmp_path / "clean"), signatures={"serving_default": module.serve})
    assert _refused(tmp_path / "clean") == []
    shutil.copytree(tmp_path / "clean", tmp_path / "edited")
    _edit_meta_graph(tmp_path / "edited", edit)
    refused = _refused(tmp_path / "edited")
    assert any(re.match(r"SaveV2 in function '__inference__traced_save_\d+' \(writes", op)
               for op in refused), refused


# --- what must keep loading --------------------------------------------------------------------

def _refused(directory):
    from edgecv.modelfile.saved_model_ops import read_saved_model, refused_ops

    return [str(op) for op in refused_ops(read_saved_model(directory))]


def test_every_allowed_op_is_a_tensorflow_op():
    """A misspelt name in the allow-list would silently allow nothing."""
    import tensorflow as tf

    from edgecv.modelfile.saved_model_ops import CLASSIFIER_OPS, RESTORE_OPS, SAVE_OPS

    assert [op for op in sorted(CLASSIFIER_OPS | RESTORE_OPS | SAVE_OPS)
            if not hasattr(tf.raw_ops, op)] == []


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_exports_a_savedmodel_with_allowed_ops_only(name, tmp_path):
    import tensorflow as tf

    from edgecv.models import create_model

    model = create_model(name, input_shape=(32, 32, 3), num_classes=4)
    model.export(str(tmp_path / "export"), verbose=False)
    tf.saved_model.save(model, str(tmp_path / "saved"))
    assert _refused(tmp_path / "export") == [] and _refused(tmp_path / "saved") == []


@pytest.mark.slow
def test_keras2_files_saved_as_savedmodels_by_tf_keras_pass(tmp_path):
    """The tf.keras 2 fixtures through each way tf_keras writes a SavedModel (model.save in the
    TF format also traces training-mode functions: dropout's RandomUniform, BN updates)."""
    tf_keras = pytest.importorskip("tf_keras")
    import tensorflow as tf

    from pathlib import Path

    tf.random.set_seed(0)  # tracing dropout needs one if another test turned op determinism on
    for stem in ("resnet_keras2", "mobilenet_keras2"):
        model = tf_keras.models.load_model(Path(__file__).parent / "data" / "keras2" / f"{stem}.h5")
        model.export(str(tmp_path / f"{stem}_export"))
        model.save(str(tmp_path / f"{stem}_tf"), save_format="tf")
        tf.saved_model.save(model, str(tmp_path / f"{stem}_saved"))
        for kind in ("export", "tf", "saved"):
            assert _refused(tmp_path / f"{stem}_{kind}") == [], (stem, kind)


@pytest.mark.slow
def test_a_classifier_with_layers_the_zoo_does_not_use_passes(tmp_path):
    """Resizing, augmentation, dilated/separable/transposed convolutions, normalisations, many
    activations, attention and recurrent layers (While bodies with tensor lists)."""
    import keras
    from keras import layers

    inputs = keras.Input((32, 32, 3))
    x = layers.Rescaling(1 / 255)(layers.Resizing(24, 24)(inputs))
    for augment in (layers.RandomFlip(), layers.RandomRotation(0.1), layers.RandomZoom(0.1),
                    layers.RandomContrast(0.1), layers.RandomTranslation(0.1, 0.1)):
        x = augment(x)
    x = layers.Cropping2D(1)(layers.ZeroPadding2D(1)(x))
    a = layers.Conv2D(8, 3, padding="same", dilation_rate=2, activation="gelu")(x)
    b = layers.SeparableConv2D(8, 3, padding="same", activation="swish")(x)
    c = layers.DepthwiseConv2D(3, padding="same", activation="hard_sigmoid")(x)
    c = layers.Conv2D(8, 1, activation="elu")(c)
    x = layers.Concatenate()([layers.Add()([a, b]), layers.Multiply()([a, c]),
                              layers.Maximum()([a, c]), layers.Average()([a, b])])
    x = layers.LayerNormalization()(x)
    x = layers.BatchNormalization()(layers.GroupNormalization(groups=4)(x))
    for activation in ("selu", "mish", "hard_swish", "softplus", "tanh"):
        x = layers.Activation(activation)(x)
    x = layers.PReLU()(layers.LeakyReLU()(x))
    x = layers.Conv2DTranspose(8, 3, strides=2, padding="same")(layers.AveragePooling2D(2)(x))
    x = layers.MaxPooling2D(4)(layers.UpSampling2D(interpolation="bilinear")(x))
    x = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    sequence = layers.Reshape((-1, 16))(x)
    sequence = layers.MultiHeadAttention(2, 8)(sequence, sequence)
    sequence = layers.GRU(8)(layers.LSTM(8, return_sequences=True)(sequence))
    x = layers.Concatenate()([sequence, layers.GlobalMaxPooling2D()(x),
                              layers.GlobalAveragePooling2D()(x), layers.Flatten()(x)])
    outputs = layers.Dense(10, activation="softmax")(layers.Dropout(0.2)(x))
    keras.Model(inputs, outputs).export(str(tmp_path / "export"), verbose=False)
    assert _refused(tmp_path / "export") == []


def test_a_tf1_savedmodel_keeps_its_saver_and_loads(tmp_path):
    """A TF1 SavedModel's saver nodes (SaveV2, MergeV2Checkpoints, RestoreV2) are top-level
    graph nodes; only the save tensor and restore op reach them, so they are allowed there."""
    from edgecv.modelfile.saved_model import load_saved_model

    _tf1_saved_model(tmp_path / "tf1")
    assert _refused(tmp_path / "tf1") == []
    model = load_saved_model(tmp_path / "tf1")
    scores = model.predict(np.zeros((2, 8, 8, 1), np.float32))
    assert model.input_shape == (None, 8, 8, 1) and scores.shape == (2, 3)


def test_a_corrupt_saved_model_pb_is_one_line(tmp_path):
    from edgecv.errors import ModelFileError
    from edgecv.modelfile.saved_model import load_saved_model

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff not a protobuf")
    with pytest.raises(ModelFileError, match=r"^cannot load SavedModel '.*bad': saved_model.pb "
                                             r"is not a SavedModel protobuf \(") as refused:
        load_saved_model(tmp_path / "bad")
    assert "\n" not in str(refused.value)
