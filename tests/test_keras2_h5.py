"""Models trained elsewhere: whole-model .h5 files written by tf.keras 2.x (Keras 2), loaded by
Keras 3 with the same scores, described, converted, verified and benchmarked without edits.

The fixtures in tests/data/keras2/ were written by tf_keras 2.21 (make_fixtures.py there); tf_keras
itself is not needed here. expected.npz holds the scores tf_keras computed at generation time, so
a load that builds the wrong model or misplaces a weight fails the comparison.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]

DATA = Path(__file__).parent / "data" / "keras2"
MINI = Path(__file__).parent / "data" / "cifar10_mini"
# model stem -> the factor tf_keras fed its pixels with (resnet has Rescaling(1/255) inside)
MODELS = {"resnet_keras2": 1.0, "mobilenet_keras2": 1.0 / 255}


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(DATA / "expected.npz"))


def _edited_copy(tmp_path, stem, edit):
    """A copy of a fixture whose stored model config went through ``edit(config)``."""
    import h5py

    path = tmp_path / f"{stem}_edited.h5"
    shutil.copyfile(DATA / f"{stem}.h5", path)
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        edit(config)
        handle.attrs["model_config"] = json.dumps(config)
    return path


def _layer(config, name):
    return next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == name)


def _three_class_photos(tmp_path):
    """The fixture photos of the fixtures' three classes, as the class folder --data takes."""
    folder = tmp_path / "photos"
    for name in ["airplane", "automobile", "bird"]:
        shutil.copytree(MINI / name, folder / name)
    return folder


def _ops_and_tensors(path):
    """(op details, {tensor index: details}) of a .tflite file, from its interpreter."""
    from edgecv.runtime import open_backend

    with open_backend(path, checksum="off") as backend:
        interpreter = backend.interpreter
        return (interpreter._get_ops_details(),
                {t["index"]: t for t in interpreter.get_tensor_details()})


def test_fixtures_are_keras2_files_with_what_keras3_finds_hard():
    """What the other tests rely on: these really are tf.keras 2 files with Keras 2 fields."""
    import h5py

    for stem, class_name in [("resnet_keras2", "Functional"), ("mobilenet_keras2", "Sequential")]:
        with h5py.File(DATA / f"{stem}.h5", "r") as handle:
            assert str(handle.attrs["keras_version"]).startswith("2.")
            assert "optimizer_weights" in handle  # saved optimizer (Adam) state
            config = json.loads(handle.attrs["model_config"])
        assert config["class_name"] == class_name
        assert config["config"]["layers"][0]["config"]["batch_input_shape"] == [None, 32, 32, 3]
    assert "batch_input_shape" in _layer(config, "stem_conv")["config"]  # Sequential(input_shape=)
    assert _layer(config, "dw0")["config"]["groups"] == 1  # what Keras 3's DepthwiseConv2D rejects


@pytest.mark.parametrize("stem", sorted(MODELS))
def test_keras3_load_gives_the_scores_tf_keras_gave(stem, expected):
    from edgecv.modelfile.keras_file import load_keras_model

    model = load_keras_model(DATA / f"{stem}.h5")
    scores = model.predict(expected["x"].astype("float32") * MODELS[stem], verbose=0)
    np.testing.assert_allclose(scores, expected[stem], atol=1e-5)
    # The fixtures learned something (3 classes: chance is 1/3), so equal scores mean a real model.
    assert (scores.argmax(1) == expected["y"]).mean() >= 0.6


def test_upgrade_drops_only_neutral_keras2_fields():
    from edgecv.modelfile.keras_file import upgrade_keras2_config

    config = {"class_name": "Sequential", "config": {"name": "m", "layers": [
        {"class_name": "DepthwiseConv2D", "config": {"name": "a", "kernel_size": 3, "groups": 1}},
        {"class_name": "DepthwiseConv2D", "config": {"name": "b", "kernel_size": 3, "groups": 2}},
        {"class_name": "ThresholdedReLU", "config": {"name": "t", "theta": 0.5}},
        {"class_name": "Dense", "config": {"name": "d", "units": 3, "dtype": {
            "module": "keras.mixed_precision", "class_name": "Policy",
            "config": {"name": "mixed_float16"}}}}]}}
    upgraded, notes = upgrade_keras2_config(config)
    a, b, t, d = upgraded["config"]["layers"]
    assert "groups" not in a["config"] and b["config"]["groups"] == 2  # 2 is left for Keras to refuse
    assert t["class_name"] == "ReLU" and t["config"]["threshold"] == 0.5
    assert d["config"]["dtype"] == "mixed_float16"
    assert len(notes) == 3 and "a (DepthwiseConv2D): groups=1 dropped" in notes
    assert config["config"]["layers"][0]["config"]["groups"] == 1  # the input is not modified
    assert upgrade_keras2_config(upgraded) == (upgraded, [])


def test_info_describes_keras2_h5_files():
    from edgecv.info import describe_keras

    resnet = describe_keras(DATA / "resnet_keras2.h5")
    for line in ["class       Functional 'resnet_keras2'", "input       (None, 32, 32, 3)",
                 "output      (None, 3)", "parameters  5,227", "lambda      none",
                 "custom      none"]:
        assert line in resnet
    assert "Rescaling x1" in resnet and "Add x2" in resnet
    mobilenet = describe_keras(DATA / "mobilenet_keras2.h5")
    assert "class       Sequential 'mobilenet_keras2'" in mobilenet
    assert "input       (None, 32, 32, 3)" in mobilenet and "DepthwiseConv2D x2" in mobilenet
    assert "not built" not in mobilenet  # built by Keras 3, not described from the stored config


def test_a_layer_class_keras3_does_not_know_is_named(tmp_path):
    from edgecv.errors import ModelFileError
    from edgecv.modelfile.keras_file import load_keras_model

    path = _edited_copy(tmp_path, "mobilenet_keras2",
                        lambda c: _layer(c, "dw0_bn").update(class_name="RetiredNorm"))
    with pytest.raises(ModelFileError) as caught:
        load_keras_model(path)
    message = str(caught.value)
    assert "\n" not in message
    assert "RetiredNorm" in message and "'dw0_bn'" in message
    assert "`custom_objects`" in message and "model.export" in message


def test_a_keras2_field_keras3_cannot_take_is_named(tmp_path):
    from edgecv.errors import ModelFileError
    from edgecv.modelfile.keras_file import load_keras_model

    path = _edited_copy(tmp_path, "mobilenet_keras2",
                        lambda c: _layer(c, "dw1")["config"].update(groups=2))
    with pytest.raises(ModelFileError) as caught:
        load_keras_model(path)
    message = str(caught.value)
    # dw0 keeps its neutral groups=1, which is dropped: only dw1 is named.
    assert "layer 'dw1' (DepthwiseConv2D) has the field groups=2" in message
    assert "'dw0'" not in message and "model.export" in message and "\n" not in message


def _cli(*args):
    """The edgecv CLI in this process (TensorFlow is already imported: a child process would
    pay for that again)."""
    from typer.testing import CliRunner

    from edgecv.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_converts_verifies_and_benches_a_keras2_h5(tmp_path):
    """The whole path on an unedited Keras 2 file that takes 0..255 pixels (--scale 1)."""
    folder = _three_class_photos(tmp_path)
    model, out = DATA / "resnet_keras2.h5", tmp_path / "out"
    converted = _cli("convert", model, "--int8", "--onnx", "--data", folder, "--scale", "1",
                        "--out", out)
    assert converted.exit_code == 0, converted.output[-2000:]  # default --max-drop 1.0 holds
    report = json.loads((out / "conversion.json").read_text())
    assert report["keras_accuracy"] >= 0.6 and report["test_images"] == 27
    rows = {row["format"]: row for row in report["artifacts"]}
    assert set(rows) == {"fp32", "int8", "onnx", "onnx_int8"}
    assert rows["fp32"]["agreement"] == 1.0 and rows["fp32"]["max_abs_diff"] < 1e-4
    for fmt in ("int8", "onnx_int8"):
        assert rows[fmt]["agreement"] >= 0.95 and rows[fmt]["accuracy_drop_pp"] <= 1.0

    from edgecv.runtime import read_card

    card = read_card(out / "model_int8.tflite")
    assert card.labels == ["airplane", "automobile", "bird"]
    assert card.preprocessing.scale == 1.0 and (card.preprocessing.height,
                                                card.preprocessing.channels) == (32, 3)

    bench = _cli("bench", model, out / "model_int8.tflite", "--targets", "cpu", "--runs", "5",
                    "--min-time", "0", "--warmup", "1", "--json", tmp_path / "bench.json")
    assert bench.exit_code == 0, bench.output[-2000:]
    bench_rows = {row["artifact"]: row
                  for row in json.loads((tmp_path / "bench.json").read_text())["rows"]}
    assert bench_rows["resnet_keras2.h5"]["status"] == "ok"
    assert bench_rows["resnet_keras2.h5"]["accuracy"] == pytest.approx(report["keras_accuracy"])


@pytest.mark.parametrize("stem", ["resnet_keras2", "mobilenet_keras2"])
def test_qat_fine_tunes_a_keras2_h5(tmp_path, stem):
    """--qat on models trained elsewhere: the Sequential file (Keras 3 loads it as a Sequential,
    not a functional graph) and the Functional one with Rescaling(1/255) inside (a layer tfmot's
    scheme refuses) both fine-tune and convert to an integer-only file that agrees with them.
    With --onnx, the same fine-tuning gives the ONNX file too (its int8 graph); without, none."""
    pytest.importorskip("tensorflow_model_optimization")
    from edgecv.converters.tflite import integer_only_violations

    folder = _three_class_photos(tmp_path)
    out = tmp_path / "out"
    scale = "1" if MODELS[stem] == 1.0 else "1/255"
    onnx = ["--onnx"] if stem == "resnet_keras2" else []
    converted = _cli("convert", DATA / f"{stem}.h5", "--int8", *onnx, "--qat", "--qat-epochs",
                     "2", "--data", folder, "--scale", scale, "--max-drop", "100", "--out", out)
    assert converted.exit_code == 0, converted.output[-2000:]
    rows = {row["format"]: row for row in json.loads((out / "conversion.json").read_text())["artifacts"]}
    assert rows["int8_qat"]["agreement"] >= 0.9, rows["int8_qat"]
    assert ("onnx_int8_qat" in rows) == bool(onnx) == (out / "model_int8_qat.onnx").exists()
    if onnx:  # the Rescaling's int8 MUL included
        assert rows["onnx_int8_qat"]["agreement"] >= 0.9, rows["onnx_int8_qat"]
    assert rows["int8_qat"]["qat"]["epochs"] == 2
    data = (out / "model_int8_qat.tflite").read_bytes()
    assert integer_only_violations(data, io="uint8") == []
    if stem == "resnet_keras2":  # the Rescaling became an int8 MUL whose output range is 0..1
        ops, tensors = _ops_and_tensors(out / "model_int8_qat.tflite")
        mul = next(op for op in ops if op["op_name"] == "MUL")
        params = tensors[mul["outputs"][0]]["quantization_parameters"]
        low = (-128 - params["zero_points"][0]) * params["scales"][0]
        high = (127 - params["zero_points"][0]) * params["scales"][0]
        assert low == pytest.approx(0, abs=0.01) and high == pytest.approx(1, abs=0.02)


def test_a_keras2_mobilenet_trained_elsewhere_converts_with_qat(tmp_path):
    """benchmarks/experiments/keras2_cifar_model.py (what int8_cifar_keras2.json measured) run
    for one epoch on the fixture photos: a tf_keras Sequential that takes 0..255 pixels through
    Rescaling(1/127.5, offset=-1), saved as a Keras 2 .h5, converts unedited with --qat to an
    integer-only file whose Rescaling is an int8 MUL and an int8 ADD."""
    pytest.importorskip("tf_keras")
    import subprocess
    import sys

    import h5py

    from conftest import EXPERIMENTS
    from edgecv.converters.tflite import integer_only_violations
    model = tmp_path / "mobilenet.h5"
    trained = subprocess.run([sys.executable, EXPERIMENTS / "keras2_cifar_model.py", "--data",
                              MINI, "--out", model, "--epochs", "1"], capture_output=True,
                             text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-2000:]
    with h5py.File(model, "r") as handle:
        assert str(handle.attrs["keras_version"]).startswith("2.")
        assert json.loads(handle.attrs["model_config"])["class_name"] == "Sequential"
    out = tmp_path / "out"
    converted = _cli("convert", model, "--int8", "--qat", "--qat-epochs", "1", "--data", MINI,
                     "--scale", "1", "--max-drop", "100", "--out", out)
    assert converted.exit_code == 0, converted.output[-2000:]
    assert integer_only_violations((out / "model_int8_qat.tflite").read_bytes(), io="uint8") == []
    ops = [op["op_name"] for op in _ops_and_tensors(out / "model_int8_qat.tflite")[0]]
    # the uint8 input (--io's default) is requantized to int8 first, then the Rescaling
    assert ops[:3] == ["QUANTIZE", "MUL", "ADD"], ops
