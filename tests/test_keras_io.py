"""User model files: corrupt or foreign files get a message that says so; Lambda layers are refused."""

import zipfile

import numpy as np
import pytest

from edgecv.errors import ModelFileError
from edgecv.modelfile.keras_file import load_keras_model
from edgecv.modelfile.kinds import check_model_file


def test_missing_empty_and_foreign_files_are_named(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        check_model_file(tmp_path / "missing.keras")
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty \\(0 bytes\\)"):
        check_model_file(empty)
    png = tmp_path / "photo.keras"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelFileError, match="not a valid .keras file"):
        check_model_file(png)
    other_zip = tmp_path / "archive.keras"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelFileError, match="no config.json"):
        check_model_file(other_zip)
    with pytest.raises(ModelFileError, match="unsupported model file type '.pt'"):
        check_model_file(png.rename(tmp_path / "model.pt"))


@pytest.mark.tf
def test_truncated_and_renamed_real_models(tmp_path):
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    good = tmp_path / "good.keras"
    model.save(good)
    loaded = load_keras_model(good)
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    data = good.read_bytes()
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or not a Keras model"):
        load_keras_model(truncated)

    h5 = tmp_path / "legacy.h5"
    model.save(h5)
    renamed = tmp_path / "legacy.keras"
    renamed.write_bytes(h5.read_bytes())
    with pytest.raises(ModelFileError, match="HDF5 \\(.h5\\) file named .keras"):
        load_keras_model(renamed)
    assert load_keras_model(h5).count_params() == model.count_params()


@pytest.mark.tf
def test_lambda_layer_is_refused_without_running_its_code(tmp_path):
    import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelFileError, match="Lambda layer"):
        load_keras_model(path)


def test_a_run_directory_is_not_a_saved_model(tmp_path):
    from edgecv.modelfile.kinds import is_keras_source, is_saved_model

    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert is_saved_model(tmp_path) and is_keras_source(tmp_path)
    (tmp_path / "config.json").write_text("{}")  # an edgecv run that happens to hold one
    assert not is_saved_model(tmp_path) and not is_keras_source(tmp_path)


def test_converters_see_every_model_through_one_interface():
    from types import SimpleNamespace

    from edgecv.modelfile.reference import KerasReference, reference_of

    tensor = lambda *shape: SimpleNamespace(shape=shape)  # noqa: E731
    model = SimpleNamespace(name="m", inputs=[tensor(None, 32, 24, 3)], outputs=[tensor(None, 10)])
    reference = reference_of(model)
    assert isinstance(reference, KerasReference) and reference_of(reference) is reference
    assert (reference.image_shape(), reference.num_classes()) == ((32, 24, 3), 10)
    assert reference.with_image_shape((32, 24, 3)) is model  # already fixed: not wrapped
    two_inputs = SimpleNamespace(name="m", inputs=[tensor(None, 8, 8, 1)] * 2, outputs=[])
    with pytest.raises(ModelFileError, match="'two.keras' has 2 inputs"):
        reference_of(two_inputs, "two.keras").image_shape()
    one_score = SimpleNamespace(name="m", inputs=[], outputs=[tensor(None, 1)])
    with pytest.raises(ModelFileError, match=r"'m' outputs shape \(None, 1\)"):
        reference_of(one_score).num_classes()
