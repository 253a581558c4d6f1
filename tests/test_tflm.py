"""TFLite Micro's interpreter (edgecv.runtime.tflm) on real int8 files: the arena its recording
allocator measures, and outputs bit-exact with LiteRT's reference kernels."""

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="the mcu extra (tflite-micro) is not installed")

from edgecv.errors import ModelFileError  # noqa: E402
from edgecv.runtime.tflm import ArenaUsage, MicroInterpreter, arena_estimate  # noqa: E402


@pytest.fixture(scope="module")
def int8_model():
    """A small int8 CNN (conv, depthwise, pooling, dense) converted by TFLite's converter."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.DepthwiseConv2D(3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4, activation="softmax"),
    ])
    rng = np.random.default_rng(0)
    calibration = rng.random((32, 16, 16, 3), dtype=np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert(), rng.random((20, 16, 16, 3), dtype=np.float32)


@pytest.mark.tf
def test_outputs_equal_litert_reference_kernels_and_the_arena_is_measured(int8_model):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model, images = int8_model
    micro = MicroInterpreter(model)
    assert micro.input["dtype"] == np.int8 and micro.input["shape"] == (1, 16, 16, 3)
    quantized = micro.quantize_input(images)
    outputs = micro.invoke(quantized)
    reference = Interpreter(model_content=model,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    reference.allocate_tensors()
    inp, out = reference.get_input_details()[0], reference.get_output_details()[0]
    expected = []
    for image in quantized:
        reference.set_tensor(inp["index"], image[None])
        reference.invoke()
        expected.append(reference.get_tensor(out["index"])[0])
    assert outputs.dtype == np.int8 and outputs.shape == (20, 4)
    np.testing.assert_array_equal(outputs, np.stack(expected))
    # the head holds at least the two largest activations live at once (conv1's input and output)
    assert micro.arena.head >= 16 * 16 * 3 + 14 * 14 * 8
    assert micro.arena.total == micro.arena.head + micro.arena.tail


@pytest.mark.tf
def test_the_arena_does_not_depend_on_the_size_given(int8_model):
    model, _ = int8_model
    small = MicroInterpreter(model)  # from the estimate (doubling if needed)
    large = MicroInterpreter(model, arena_size=8 * arena_estimate(model))
    assert small.arena.head == large.arena.head and small.arena.total > 0
    assert abs(small.arena.total - large.arena.total) <= 16  # the arena's start alignment


@pytest.mark.tf
def test_a_given_arena_that_is_too_small_is_one_line_in_tflm_s_words(int8_model):
    model, _ = int8_model
    with pytest.raises(ModelFileError) as info:
        MicroInterpreter(model, arena_size=1024)
    message = str(info.value)
    assert message.startswith("TFLite Micro cannot prepare the model:") and "\n" not in message
    assert "allocate" in message


@pytest.mark.tf
def test_every_output_of_a_model_with_several_comes_back_in_the_file_s_order(int8_model):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgecv.tflite_schema import pack_model, unpack_model

    model, images = int8_model
    tree = unpack_model(model)
    graph = tree.subgraphs[0]
    first_conv, last = int(graph.operators[0].outputs[0]), int(graph.outputs[0])
    graph.outputs = [first_conv, last]  # an intermediate tensor first, then the scores
    two_outputs = pack_model(tree, len(model) + 1024)
    micro = MicroInterpreter(two_outputs)
    quantized = micro.quantize_input(images)
    conv, scores = micro.invoke_outputs(quantized)
    assert conv.shape == (20, 14, 14, 8) and scores.shape == (20, 4)
    np.testing.assert_array_equal(micro.invoke(quantized), conv)  # invoke: the first output
    reference = Interpreter(model_content=two_outputs,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    reference.allocate_tensors()
    inp, outs = reference.get_input_details()[0], reference.get_output_details()
    for i, image in enumerate(quantized):
        reference.set_tensor(inp["index"], image[None])
        reference.invoke()
        np.testing.assert_array_equal(conv[i], reference.get_tensor(outs[0]["index"])[0])
        np.testing.assert_array_equal(scores[i], reference.get_tensor(outs[1]["index"])[0])


def test_arena_figures_are_parsed_from_the_allocator_s_report():
    text = ("[RecordingMicroAllocator] Arena allocation total 55952 bytes\r\n"
            "[RecordingMicroAllocator] Arena allocation head 49152 bytes\r\n"
            "[RecordingMicroAllocator] Arena allocation tail 6800 bytes\r\n")
    assert ArenaUsage.parse(text) == ArenaUsage(total=55952, head=49152, tail=6800)
    with pytest.raises(ModelFileError, match="no arena allocation figures"):
        ArenaUsage.parse("something else")
