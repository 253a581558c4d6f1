"""The model card round-trips through TFLite and ONNX files without TensorFlow on the read side."""

import subprocess
import sys

import numpy as np
import pytest

from edgecv.card import ModelCard, Quantization, embed_onnx_card, embed_tflite_card, read_tflite_card
from edgecv.runtime import read_card
from edgecv.errors import ModelFileError
from edgecv.preprocessing import Preprocessing


def sample_card(fmt="tflite_int8"):
    return ModelCard(labels=["cat", "dog"], preprocessing=Preprocessing(32, 32, 3, mean=(0.5,), std=(0.25,)),
                     format=fmt, input_dtype="int8", output_dtype="int8",
                     input_quantization=Quantization("int8", 0.0039, -128),
                     output_quantization=Quantization("int8", 1 / 256, -128), source_run="runs/x")


def test_card_json_round_trip():
    card = sample_card()
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert again.input_shape == (1, 32, 32, 3)


def test_reading_a_foreign_file_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="TFL3"):
        read_tflite_card(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(ModelFileError, match="expected .tflite or .onnx"):
        read_card(tmp_path / "model.pt")


@pytest.mark.tf
def test_tflite_card_round_trip_keeps_the_model_working(tmp_path):
    import keras

    from edgecv.converters.tflite import to_tflite_fp32
    from edgecv.runtime import open_backend

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    plain = to_tflite_fp32(model)
    assert read_tflite_card(plain) is None
    card = sample_card("tflite_fp32")
    card.preprocessing = Preprocessing(8, 8, 1)
    with_card = embed_tflite_card(plain, card)
    path = tmp_path / "m.tflite"
    path.write_bytes(embed_tflite_card(with_card, card))  # embedding twice replaces, not appends
    assert read_card(path) == card
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 1)).astype(np.float32)
    with open_backend(path) as backend:
        assert backend.card == card
        np.testing.assert_allclose(backend.run(x), model.predict(x, verbose=0), atol=1e-5)
    # the read side needs no TensorFlow
    code = (f"import sys; from edgecv.runtime import read_card; c = read_card({str(path)!r}); "
            "print(c.labels, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['cat', 'dog'] False"


@pytest.mark.tf
def test_card_on_a_model_whose_buffers_lie_after_the_flatbuffer(tmp_path):
    """The AI Edge Quantizer stores constant buffers after the flatbuffer (offset/size). Adding
    a card repacks the flatbuffer, so those buffers must come along, or the offsets point past
    the end of the new file and LiteRT refuses it (seen on a quantized mobilenet_v2)."""
    from edgecv.runtime import open_backend
    from edgecv.tflite_schema import pack_model, tflite_schema
    from tiny_tflite import tiny_tflite

    tree = tflite_schema().ModelT.InitFromPackedBuf(bytearray(tiny_tflite(constant=0.25)), 0)
    const = next(b for b in tree.buffers if b.data is not None and len(b.data))
    payload = bytes(bytearray(const.data))
    const.data, const.size = None, len(payload)

    def pack(offset):
        const.offset = offset
        return pack_model(tree, 1024)

    length = len(pack(1 << 40))  # the offset field's width does not depend on its value
    offset = (length + 15) // 16 * 16
    external = pack(offset).ljust(offset, b"\0") + payload
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype(np.float32)
    plain = tmp_path / "external.tflite"
    plain.write_bytes(external)
    with open_backend(plain, checksum="off") as backend:  # LiteRT reads external buffers
        np.testing.assert_allclose(backend.run(x), x + 0.25)
    card = sample_card("tflite_int8_mixed")
    card.preprocessing = Preprocessing(8, 8, 1)
    path = tmp_path / "with_card.tflite"
    path.write_bytes(embed_tflite_card(external, card))
    with open_backend(path) as backend:
        assert backend.card == card
        np.testing.assert_allclose(backend.run(x), x + 0.25)


def test_onnx_card_round_trip(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["scores"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    card = sample_card("onnx")
    embed_onnx_card(proto, card)
    embed_onnx_card(proto, card)
    assert [p.key for p in proto.metadata_props] == ["edgecv_card"]
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    assert read_card(path) == card
