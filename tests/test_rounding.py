"""The int8 rounding taken apart (edgecv.converters.rounding): the twin whose kernels sit on
their int8 grid converts with no weight rounding left, and the model gets its weights back."""

import numpy as np
import pytest


def _weights(data: bytes) -> dict[str, np.ndarray]:
    """The constant tensors of 2+ dimensions in a TFLite file, dequantized, by name."""
    from edgecv.runtime.targets import load_interpreter_class

    interpreter = load_interpreter_class()(model_content=data)
    out = {}
    for detail in interpreter.get_tensor_details():
        if len(detail["shape"]) < 2 or detail["name"].startswith(("input", "output", "serving")):
            continue
        try:
            value = interpreter.get_tensor(detail["index"])
        except ValueError:  # an activation: no data before a run
            continue
        quant = detail["quantization_parameters"]
        if np.dtype(detail["dtype"]) == np.int8 and len(quant["scales"]):
            shape = [1] * value.ndim
            shape[quant["quantized_dimension"]] = -1
            value = value.astype(np.float64) * quant["scales"].reshape(shape)
        out[detail["name"]] = np.asarray(value, np.float64)
    return out


def _model_with_batchnorm():
    """Conv+BN (a negative gain among them), depthwise+BN, separable and dense layers with
    weights and BatchNorm statistics drawn at random: every kind of kernel the twin moves."""
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn1")(h))
    h = keras.layers.DepthwiseConv2D(3, name="depthwise")(h)
    h = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn2")(h))
    h = keras.layers.SeparableConv2D(12, 3, activation="relu", name="separable")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax", name="head")(h))
    rng = np.random.default_rng(0)
    for name, channels in (("bn1", 8), ("bn2", 8)):
        gamma = rng.uniform(0.2, 3.0, channels) * np.where(np.arange(channels) == 2, -1, 1)
        model.get_layer(name).set_weights([gamma, rng.normal(0, 0.5, channels),
                                           rng.normal(0, 0.5, channels),
                                           rng.uniform(0.1, 4.0, channels)])
    return model


@pytest.mark.tf
@pytest.mark.slow
def test_kernels_on_their_int8_grid_convert_without_weight_rounding_and_come_back():
    """Inside ``weights_on_int8_grid`` every weight tensor of the int8 file (BatchNorm folded
    in) dequantizes to the fp32 file's own; outside it they differ (the control: the grid is
    what makes them equal). The model's weights are its own again afterwards, also when the
    block raises."""
    from edgecv.converters.rounding import weights_on_int8_grid
    from edgecv.converters.tflite import to_tflite_fp32, to_tflite_int8

    model = _model_with_batchnorm()
    calibration = np.random.default_rng(1).uniform(0, 1, (32, 16, 16, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]

    def worst_gap() -> tuple[int, float]:
        fp32, int8 = _weights(to_tflite_fp32(model)), _weights(to_tflite_int8(model, calibration))
        pairs = [(fp32[name], value) for name, value in int8.items()
                 if name in fp32 and fp32[name].shape == value.shape]
        return len(pairs), max(float(np.abs(a - b).max() / np.abs(a).max()) for a, b in pairs)

    with weights_on_int8_grid(model) as moved:
        assert moved == 5  # conv, depthwise, separable's two kernels, head
        compared, gap = worst_gap()
    assert compared == 5 and gap < 1e-5  # the depthwise one with bn2 folded in
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert worst_gap()[1] > 1e-3  # the model's own kernels do round

    with pytest.raises(RuntimeError), weights_on_int8_grid(model):
        raise RuntimeError("inside")
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
