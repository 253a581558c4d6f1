"""Bring your own model: Keras models edgecv did not train, in every saved form, converted and
verified like a run; what cannot be converted safely is refused with one clear line."""

import json
import shutil
import textwrap

import numpy as np
import pytest

from conftest import run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]

LAYERS_PY = textwrap.dedent('''
    """Custom layers and a subclassed model, as a user's own module defines them."""
    import keras
    import tensorflow as tf
    from keras import ops


    class CustomDense(keras.layers.Layer):
        """Not registered: found by class name through --custom-objects."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w",
                                     initializer="glorot_uniform")
            self.b = self.add_weight(shape=(self.units,), name="b", initializer="zeros")

        def call(self, x):
            return ops.matmul(x, self.w) + self.b

        def get_config(self):
            return {**super().get_config(), "units": self.units}


    @keras.saving.register_keras_serializable(package="byom")
    class TinyNet(keras.Model):
        def __init__(self, num_classes=3, **kwargs):
            super().__init__(**kwargs)
            self.num_classes = num_classes
            self.conv = keras.layers.Conv2D(8, 3, activation="relu")
            self.pool = keras.layers.MaxPooling2D(2)
            self.flatten = keras.layers.Flatten()
            self.head = CustomDense(num_classes)

        def call(self, x):
            return ops.softmax(self.head(self.flatten(self.pool(self.conv(x)))))

        def get_config(self):
            return {**super().get_config(), "num_classes": self.num_classes}


    class Invert(keras.layers.Layer):
        """tf.linalg.inv has no builtin TFLite kernel."""

        def call(self, x):
            matrices = tf.reshape(x, (-1, 2, 2)) + 3.0 * tf.eye(2)
            return tf.reshape(tf.linalg.inv(matrices), (-1, 4))
''')
CLASSES = ["0", "1", "2"]
KINDS = ["sequential", "functional", "subclassed"]
FORMS = ["keras", "h5", "savedmodel", "json"]


def quiet(_line):
    pass


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 3-class 16x16 gray image folder (digits 0-2 written with cv2.imwrite), the same test
    split as .npz files, the user's layer module, and three trained models saved in every form."""
    import cv2
    import keras

    from edgecv.data import load_dataset
    from edgecv.preprocessing import Preprocessing
    from edgecv.modelfile.keras_file import load_custom_objects

    root = tmp_path_factory.mktemp("byom")
    digits = load_dataset("digits", 16, 16, 1, val_split=0, test_split=0)
    folder = root / "images"
    for name in CLASSES:
        (folder / name).mkdir(parents=True)
    keep = digits.train.y < 3
    for i, (image, label) in enumerate(zip(digits.train.x[keep], digits.train.y[keep])):
        assert cv2.imwrite(str(folder / CLASSES[label] / f"{i:04d}.png"), image)
    data = load_dataset(str(folder), 16, 16, 1)  # the split edgecv convert will use
    pre = Preprocessing(16, 16, 1)
    np.savez(root / "test.npz", x=data.test.x, y=data.test.y)
    np.savez(root / "unlabelled.npz", x=data.test.x)
    np.savez(root / "normalised.npz", x=pre.normalize(data.test.x))

    layers_py = root / "my_layers.py"
    layers_py.write_text(LAYERS_PY)
    objects = load_custom_objects(str(layers_py))
    keras.utils.set_random_seed(0)

    def build(kind):
        if kind == "subclassed":
            return objects["TinyNet"](3, name="tiny_subclassed")
        conv = [keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.MaxPooling2D(2),
                keras.layers.Flatten()]
        if kind == "sequential":
            return keras.Sequential([keras.Input((16, 16, 1)), *conv,
                                     keras.layers.Dense(3, activation="softmax")], name="tiny_seq")
        inputs = keras.Input((16, 16, 1))
        x = inputs
        for layer in conv:
            x = layer(x)
        outputs = keras.layers.Softmax()(objects["CustomDense"](3, name="custom_dense")(x))
        return keras.Model(inputs, outputs, name="tiny_functional")

    x_train, x_test = pre.normalize(data.train.x), pre.normalize(data.test.x)
    models, accuracy = {}, {}
    for kind in KINDS:
        model = build(kind)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        model.fit(x_train, data.train.y, epochs=4, batch_size=32, verbose=0)
        accuracy[kind] = float((model.predict(x_test, verbose=0).argmax(1) == data.test.y).mean())
        directory = root / kind
        directory.mkdir()
        model.save(directory / "model.keras")
        model.save(directory / "model.h5")
        model.export(str(directory / "saved"), verbose=False)
        (directory / "model.json").write_text(model.to_json())
        model.save_weights(directory / "model.weights.h5")
        models[kind] = model
    return {"root": root, "folder": folder, "data": data, "layers_py": layers_py,
            "objects": objects, "models": models, "accuracy": accuracy, "pre": pre}


def model_path(world, kind, form):
    directory = world["root"] / kind
    return {"keras": directory / "model.keras", "h5": directory / "model.h5",
            "savedmodel": directory / "saved", "json": directory / "model.json"}[form]


def options_for(world, kind, form, **extra):
    from edgecv.converters.sources import ModelOptions

    settings = {"data": str(world["folder"]), "scale": "1/255"}
    if form == "json":
        settings["weights"] = str(world["root"] / kind / "model.weights.h5")
    if form != "savedmodel" and kind != "sequential":
        settings["custom_objects"] = str(world["layers_py"])
    return ModelOptions(**{**settings, **extra})


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_every_form_on_an_image_folder(world, kind, form):
    from edgecv.runtime import read_card
    from edgecv.converters.convert import convert_run
    from edgecv.errors import ModelFileError
    from edgecv.testset import load_testset

    path = model_path(world, kind, form)
    options = options_for(world, kind, form)
    if (kind, form) == ("subclassed", "h5"):  # Keras 3 cannot rebuild it from a legacy .h5
        with pytest.raises(ModelFileError, match=r"subclassed model \(TinyNet\) cannot be "
                                                 r"restored from a legacy \.h5.*model\.keras"):
            convert_run(path, ["int8"], options=options, max_drop=100, log=quiet)
        return
    report = convert_run(path, ["int8", "onnx"], options=options, calib_samples=100,
                         max_drop=5, log=quiet)
    rows = {row.format: row for row in report.artifacts}
    out = path.parent / f"{path.stem if path.is_file() else path.name}_export"
    test = world["data"].test

    # The loaded model is the trained one (weights included), whatever the form.
    assert report.keras_accuracy == pytest.approx(world["accuracy"][kind])
    assert world["accuracy"][kind] > 0.85
    assert report.test_images == len(test) and report.source["kind"] == form
    for fmt in ("fp32", "onnx"):
        assert rows[fmt].agreement == 1.0 and rows[fmt].max_abs_diff < 1e-4, rows[fmt]
    assert rows["int8"].agreement >= 0.95 and abs(rows["int8"].accuracy_drop_pp) <= 5
    assert rows["int8"].size_ratio_vs_fp32 < 0.75  # a 1.3k-parameter model: headers weigh
    card = read_card(out / "model_int8.tflite")
    assert card.source_run == str(path.resolve())
    assert card.labels == CLASSES  # the folder's classes
    assert card.preprocessing == world["pre"] and card.input_dtype == "uint8"
    testset = load_testset(out / "testset.npz")
    np.testing.assert_array_equal(testset.x, test.x)
    assert json.loads((out / "conversion.json").read_text()) == report.to_dict()
    assert report.out_dir == out


@pytest.mark.parametrize("form", ["keras", "savedmodel"])
def test_verified_on_an_npz_with_labels_as_on_the_folder(world, form):
    from edgecv.converters.convert import convert_run

    path = model_path(world, "functional", form)
    options = options_for(world, "functional", form, data=str(world["root"] / "test.npz"))
    report = convert_run(path, ["int8"], options=options, out_dir=world["root"] / f"npz_{form}",
                         calib_samples=50, max_drop=5, log=quiet)
    assert report.keras_accuracy == pytest.approx(world["accuracy"]["functional"])
    assert report.source["labels_from"] == "default (class_i)"
    assert report.source["warnings"] and "class_0..class_2" in report.source["warnings"][0]
    assert report.row("fp32").agreement == 1.0 and report.row("int8").agreement >= 0.95
    assert report.calibration_samples == 50


def test_npz_without_labels_reports_agreement_and_float_input_is_taken_as_is(world, tmp_path,
                                                                            monkeypatch):
    from edgecv.converters import verify
    from edgecv.converters.convert import convert_run
    from edgecv.converters.sources import ModelOptions
    from edgecv.errors import AccuracyDropError

    path = model_path(world, "sequential", "keras")
    reports = {}
    for name in ("unlabelled", "normalised"):
        options = ModelOptions(data=str(world["root"] / f"{name}.npz"), scale="1/255")
        reports[name] = convert_run(path, ["dynamic"], options=options, out_dir=tmp_path / name,
                                    max_drop=5, log=quiet)
    for report in reports.values():
        assert report.keras_accuracy is None and report.max_drop_applies_to == "agreement"
        for row in report.artifacts:
            assert row.accuracy is None and row.accuracy_drop_pp is None
            # kept to 3 decimals: with a test split of N images 100/N pp is rarely exact
            assert row.agreement_drop_pp == round(100 * (1 - row.agreement), 3)
    assert not (tmp_path / "unlabelled" / "testset.npz").exists()  # no labels, no test set
    # the uint8 images normalised by the contract == the float arrays given as model input
    first, second = ([r.max_abs_diff for r in reports[n].artifacts] for n in reports)
    assert first == pytest.approx(second, abs=1e-6)

    real = verify.verify_artifact

    def worse(row, path, run, keras_scores):  # --max-drop judges agreement without labels
        real(row, path, run, keras_scores)
        if path.name == "model_dynamic.tflite":
            row.agreement -= 0.2
        return row

    monkeypatch.setattr(verify, "verify_artifact", worse)
    with pytest.raises(AccuracyDropError, match=r"model_dynamic.tflite lost \d+\.\d+ pp of "
                                                r"agreement"):
        convert_run(path, ["dynamic"], options=ModelOptions(
            data=str(world["root"] / "unlabelled.npz"), scale="1/255"),
            out_dir=tmp_path / "drop", max_drop=5, log=quiet)


def test_the_validation_split_keeps_its_labels_in_output_order(world, tmp_path):
    """A model file with a labelled folder: the validation split that chooses settings and
    stops --recover is labelled (so its slice is stratified and the drop is measured there, not
    only agreement), re-indexed by --labels as the test split is."""
    from edgecv.converters.load import load_source
    from edgecv.converters.verify import check_data
    from edgecv.data import load_dataset

    labels = tmp_path / "labels.txt"
    labels.write_text("2\n0\n1\n")  # the folder's classes, in another output order
    run = load_source(model_path(world, "sequential", "keras"),
                      options=options_for(world, "sequential", "keras", labels=str(labels)),
                      log=quiet)
    data = load_dataset(str(world["folder"]), 16, 16, 1)  # the same seeded split
    to_outputs = np.asarray([1, 2, 0])  # folder class "0" is output 1, "1" output 2, "2" output 0
    assert np.array_equal(run.test_y, to_outputs[data.test.y])
    assert run.val_y is not None and np.array_equal(run.val_y, to_outputs[data.val.y])
    x, y, where = check_data(run)
    assert y is not None and "stratified sample" in where


def test_labels_file_and_named_custom_objects(world, tmp_path):
    from edgecv.runtime import read_card
    from edgecv.converters.convert import convert_run

    labels = tmp_path / "labels.txt"
    labels.write_text("two\nzero\none\n")  # output order; the folder's "0".."2" differ
    path = model_path(world, "functional", "keras")
    options = options_for(world, "functional", "keras", labels=str(labels),
                          custom_objects=f"{world['layers_py']}:CustomDense")
    report = convert_run(path, [], options=options, out_dir=tmp_path / "out", max_drop=100,
                         log=quiet)
    assert read_card(tmp_path / "out" / "model_fp32.tflite").labels == ["two", "zero", "one"]
    assert report.source["labels_from"] == "--labels"
    assert any("differ from `labels`" in w for w in report.source["warnings"])
    # names that are not in the file are a one-line error listing what it defines
    from edgecv.errors import UsageError
    from edgecv.modelfile.keras_file import load_custom_objects

    with pytest.raises(UsageError, match=r"'Missing' not defined in .*my_layers.py' \(it "
                                         r"defines: CustomDense, Invert, TinyNet\)"):
        load_custom_objects(f"{world['layers_py']}:CustomDense,Missing")
    # with no names: every Layer/Model subclass of the file and what it registers
    objects = load_custom_objects(str(world["layers_py"]))
    assert {"CustomDense", "TinyNet", "byom>TinyNet", "Invert"} <= set(objects)


def test_a_dynamic_input_size_needs_flags_and_gets_fixed(world, tmp_path):
    import keras

    from edgecv.converters.convert import convert_run
    from edgecv.converters.sources import ModelOptions
    from edgecv.errors import UsageError
    from edgecv.runtime import open_backend

    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path / "anysize.keras"
    keras.Model(inputs, outputs).save(path)

    with pytest.raises(UsageError) as info:
        convert_run(path, ["int8"], options=ModelOptions(), log=quiet)
    message = str(info.value)
    assert "\n" not in message and "input gives ?x?x1" in message
    for flag in ("`img_size` N", "`scale` (e.g. `scale=1/255`)", "`data`"):
        assert flag in message
    assert "`channels`" not in message  # the model fixes that one

    with pytest.raises(UsageError, match=r"looks like statistics of 0..1 pixels.*`scale=1/255`"):
        convert_run(path, [], options=ModelOptions(img_size=16, mean="0.5", std="0.25",
                                                   data=str(world["folder"])), log=quiet)
    report = convert_run(path, ["int8"], options=ModelOptions(
        img_size=16, mean="127.5", std="127.5", data=str(world["folder"])),
        out_dir=tmp_path / "out", max_drop=100, log=quiet)
    assert report.row("fp32").agreement == 1.0
    with open_backend(tmp_path / "out" / "model_int8.tflite") as backend:
        assert backend.input_shape[1:] == (16, 16, 1)
        assert backend.card.preprocessing.scale == 1.0
        assert backend.card.preprocessing.mean == (127.5,)


@pytest.mark.parametrize("form", ["keras", "h5", "json"])
def test_lambda_layers_are_refused_in_every_form(tmp_path, form):
    import keras

    from edgecv.errors import ModelFileError
    from edgecv.modelfile.keras_file import load_keras_model

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    weights = None
    if form == "json":
        path = tmp_path / "lambda.json"
        path.write_text(model.to_json())
        weights = tmp_path / "lambda.weights.h5"
        model.save_weights(weights)
    else:
        path = tmp_path / f"lambda.{form}"
        model.save(path)
    with pytest.raises(ModelFileError) as info:
        load_keras_model(path, weights=weights)
    message = str(info.value)
    assert "contains a Lambda layer ('double')" in message and "safe_mode" in message
    assert "Replace each Lambda with a built-in layer or a custom Layer subclass" in message


def test_an_unsupported_op_is_named_and_select_tf_ops_marks_the_file(world, tmp_path):
    import keras

    from edgecv.runtime import read_card
    from edgecv.converters.convert import convert_run
    from edgecv.converters.sources import ModelOptions
    from edgecv.errors import ConversionError
    from edgecv.errors import UsageError

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    x = world["objects"]["Invert"](name="invert")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="odd")
    model.save(tmp_path / "odd.keras")
    model.export(str(tmp_path / "odd_saved"), verbose=False)
    npz = str(world["root"] / "test.npz")

    for path, custom in ((tmp_path / "odd.keras", str(world["layers_py"])),
                         (tmp_path / "odd_saved", None)):
        with pytest.raises(ConversionError) as info:
            convert_run(path, [], options=ModelOptions(data=npz, scale="1/255",
                                                       custom_objects=custom), log=quiet)
        message = str(info.value)
        assert "tf.MatrixInverse (layer 'invert') has no builtin TFLite kernel" in message
        assert "`select_tf_ops`" in message and "\n" not in message

    options = ModelOptions(data=npz, scale="1/255", custom_objects=str(world["layers_py"]))
    with pytest.raises(UsageError, match="`select_tf_ops` applies to the fp32, fp16 and dynamic"):
        convert_run(tmp_path / "odd.keras", ["int8"], select_tf_ops=True, options=options,
                    log=quiet)
    report = convert_run(tmp_path / "odd.keras", ["fp16"], select_tf_ops=True, options=options,
                         out_dir=tmp_path / "flex", log=quiet)
    assert report.select_tf_ops is True
    for row in report.artifacts:  # written, marked, and honestly not verified
        assert row.deployable is False and row.flex_ops == ["FlexMatrixInverse"]
        assert row.verified.startswith("no: needs the Flex delegate")
        assert "accuracy" not in row.to_dict()
        card = read_card(tmp_path / "flex" / row.file)
        assert card.extra["deployable"] is False and "Edge TPU" in card.extra["reason"]


def test_user_errors_are_one_line(world, tmp_path):
    from edgecv.converters.load import load_source
    from edgecv.converters.sources import ModelOptions
    from edgecv.errors import ModelFileError, UsageError
    from edgecv.modelfile.keras_file import load_keras_model

    keras_file = model_path(world, "functional", "keras")
    with pytest.raises(UsageError, match="pass `weights`"):
        load_keras_model(model_path(world, "functional", "json"))
    with pytest.raises(UsageError, match="`weights` goes with a JSON config only"):
        load_keras_model(keras_file, weights=world["root"] / "functional" / "model.weights.h5")
    with pytest.raises(ModelFileError, match=r"custom class\(es\) CustomDense.*`custom_objects`"):
        load_keras_model(keras_file)
    weights_only = tmp_path / "weights.h5"
    shutil.copy(world["root"] / "functional" / "model.weights.h5", weights_only)
    with pytest.raises(ModelFileError, match="holds weights only"):
        load_keras_model(weights_only)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"edgecv_version": "0.1.0", "train": {}}')
    with pytest.raises(UsageError, match=r"is an edgecv run.*so `data`, `scale` apply to "
                                         r"model files only"):
        load_source(run, options=ModelOptions(scale="1/255", data="digits"))

    cases = [
        (["convert", keras_file, "--custom-objects", tmp_path / "nope.py", "--data", "digits"],
         "--custom-objects file"),
        (["convert", world["root"] / "missing.keras"], "model file"),
        (["convert", keras_file, "--custom-objects", world["layers_py"], "--scale", "1/0",
          "--data", "digits"], "--scale must be a number or a fraction like 1/255"),
        (["convert", keras_file, "--custom-objects", world["layers_py"]],
         "missing: --scale (e.g. --scale 1/255)"),
        (["info", model_path(world, "sequential", "json")], "pass --weights"),
    ]
    for args, fragment in cases:
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr[-1000:])
        assert fragment in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("flags, expected", [
    (["--mean", "127.5"], (1.0, (127.5,), (1.0,))),
    (["--std", "255"], (1.0, (0.0,), (255.0,))),
], ids=["mean_alone", "std_alone"])
def test_mean_or_std_alone_converts_in_pixel_units(tmp_path, flags, expected):
    """Either flag without --scale is enough (it used to need both): scale 1, the other 0 / 1."""
    import keras

    from edgecv.runtime import open_backend

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(inputs)))
    path = tmp_path / "pixels.keras"
    model.save(path)
    result = run_cli("convert", path, *flags, "--data", "digits", "--max-drop", "100",
                     "--json", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    fp32 = {r["format"]: r for r in json.loads(result.stdout)["artifacts"]}["fp32"]
    # the same scores as Keras (an untrained model's near-ties may flip on float round-off, so
    # not top-1 agreement == 1: that failed once in a full run); wrong units would be far off
    assert fp32["max_abs_diff"] < 1e-4 and fp32["agreement"] >= 0.98, fp32
    with open_backend(tmp_path / "out" / "model_fp32.tflite") as backend:
        pre = backend.card.preprocessing
        assert (pre.scale, pre.mean, pre.std) == expected


def test_cli_converts_a_savedmodel_with_json_output(world, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("zero\none\ntwo\n")
    path = model_path(world, "subclassed", "savedmodel")
    result = run_cli("convert", path, "--int8", "--io", "uint8", "--data", world["folder"],
                     "--scale", "1/255", "--labels", labels, "--json", "--out", tmp_path / "out",
                     "--max-drop", "100")  # agreement is asserted below; one flip is > 1 pp
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)  # nothing but JSON on stdout
    assert report["source"]["reference"] == "SavedModel signature 'serving_default'"
    assert report["keras_accuracy"] == pytest.approx(world["accuracy"]["subclassed"])
    rows = {row["format"]: row for row in report["artifacts"]}
    assert rows["int8"]["agreement"] >= 0.95
    info = run_cli("info", tmp_path / "out" / "model_int8.tflite")
    assert '"zero"' in info.stdout and "uint8" in info.stdout and str(path.resolve()) in info.stdout


def test_info_describes_keras_models_without_running_lambdas(world, tmp_path):
    import keras

    from edgecv.info import describe_keras

    layers_py = str(world["layers_py"])
    functional = world["models"]["functional"]
    text = describe_keras(model_path(world, "functional", "h5"), custom_objects=layers_py)
    assert "input       (None, 16, 16, 1)" in text and "output      (None, 3)" in text
    assert f"parameters  {functional.count_params():,}" in text
    assert "layers      5 (Conv2D x1, CustomDense x1, Flatten x1, MaxPooling2D x1, Softmax x1)" in text
    assert "lambda      none" in text and "custom      CustomDense" in text

    subclassed = describe_keras(model_path(world, "subclassed", "json"), custom_objects=layers_py,
                                weights=world["root"] / "subclassed" / "model.weights.h5")
    assert "output      (None, 3)" in subclassed and "class       TinyNet" in subclassed
    assert f"parameters  {world['models']['subclassed'].count_params():,}" in subclassed

    saved = describe_keras(model_path(world, "sequential", "savedmodel"))
    assert f"parameters  {world['models']['sequential'].count_params():,}" in saved
    assert "Conv2D x1" in saved and "input       (None, 16, 16, 1) float32" in saved

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    model.save(tmp_path / "lambda.keras")
    described = describe_keras(tmp_path / "lambda.keras")
    assert "lambda      yes: 'double'" in described
    assert f"parameters  {model.count_params():,} (stored weights)" in described
    assert "output      unknown (not built" in described


def test_bench_a_users_keras_model_with_its_converted_artifacts(world, tmp_path):
    """`edgecv bench model.keras`: the Keras reference (custom layer included) and the artifacts
    `edgecv convert model.keras` wrote beside it, on the test split convert verified with."""
    model = tmp_path / "model.keras"
    shutil.copy(model_path(world, "functional", "keras"), model)
    converted = run_cli("convert", model, "--int8", "--data", world["folder"], "--scale", "1/255",
                        "--custom-objects", world["layers_py"])
    assert converted.returncode == 0, converted.stderr
    conversion = json.loads((tmp_path / "model_export" / "conversion.json").read_text())
    result = run_cli("bench", model, "--targets", "cpu", "--runs", "5", "--min-time", "0",
                     "--custom-objects", world["layers_py"], "--json", tmp_path / "bench.json")
    assert result.returncode == 0, result.stderr
    rows = {r["artifact"]: r for r in json.loads((tmp_path / "bench.json").read_text())["rows"]}
    assert set(rows) == {"model.keras", "model_fp32.tflite", "model_int8.tflite"}
    assert all(r["status"] == "ok" and r["test_images"] == conversion["test_images"]
               for r in rows.values())
    assert rows["model.keras"]["format"] == "keras"
    assert rows["model.keras"]["accuracy"] == pytest.approx(conversion["keras_accuracy"])
    without = run_cli("bench", model, "--targets", "cpu", "--runs", "5", "--min-time", "0")
    assert without.returncode == 1 and "CustomDense" in without.stderr  # names what is missing


def test_bench_a_savedmodel_and_a_json_config_with_weights(world, tmp_path):
    """The other input forms through `edgecv bench`: each benchmarked with the fp32 artifact
    that `edgecv convert` wrote from it, on the same test images."""
    import shutil

    saved = tmp_path / "saved"
    shutil.copytree(model_path(world, "sequential", "savedmodel"), saved)
    config = tmp_path / "model.json"
    shutil.copy(model_path(world, "sequential", "json"), config)
    weights = world["root"] / "sequential" / "model.weights.h5"
    for model, extra in ((saved, []), (config, ["--weights", weights])):
        converted = run_cli("convert", model, "--data", world["folder"], "--scale", "1/255", *extra)
        assert converted.returncode == 0, converted.stderr
        report = tmp_path / f"{model.name}.json"
        result = run_cli("bench", model, "--targets", "cpu", "--runs", "5", "--min-time", "0",
                         "--json", report, *extra)
        assert result.returncode == 0, result.stderr
        rows = {r["artifact"]: r for r in json.loads(report.read_text())["rows"]}
        assert set(rows) == {model.name, "model_fp32.tflite"}
        reference, artifact = rows[model.name], rows["model_fp32.tflite"]
        assert reference["format"] == "keras" and reference["status"] == artifact["status"] == "ok"
        assert reference["size_bytes"] > 0 and reference["accuracy"] == artifact["accuracy"] > 0.5
