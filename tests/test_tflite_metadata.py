"""Standard TFLite Metadata (edgecv/tflite_metadata.py) without TensorFlow: written beside the
card and read back, both surviving each other and the arena's rewrites, the file still running
in LiteRT, which files get none and why, and hostile metadata refused in one line. MediaPipe
itself reads edgecv's files in tests/test_mediapipe.py."""

import io
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from edgecv.card import ModelCard, Quantization, embed_tflite_card, read_tflite_card
from edgecv.errors import ModelFileError
from edgecv.preprocessing import Preprocessing
from edgecv.tflite_metadata import (LABELS_FILE, METADATA_NAME, classifier_metadata,
                                    metadata_buffer, metadata_flatbuffer, metadata_refusal,
                                    pixel_normalization, pixel_quantization, read_tflite_metadata,
                                    with_tflite_metadata, without_tflite_metadata)
from edgecv.tflite_schema import associated_files
from tiny_tflite import dense_graph, tiny_tflite, with_card

LABELS = ["cat", "dög", "a label, with \"quotes\""]


def _card(**fields) -> ModelCard:
    defaults = dict(labels=LABELS, preprocessing=Preprocessing(8, 8, 1), format="tflite_fp32",
                    source_run="/runs/cats")
    return ModelCard(**{**defaults, **fields})


def _with_metadata(model: bytes, card: ModelCard) -> bytes:
    return with_tflite_metadata(embed_tflite_card(model, card), classifier_metadata(card))


def test_metadata_round_trip_beside_the_card_and_the_file_still_runs():
    from ai_edge_litert.interpreter import Interpreter

    card = _card(preprocessing=Preprocessing(8, 8, 1, scale=1 / 255, mean=(0.5,), std=(0.25,)))
    data = _with_metadata(tiny_tflite(), card)
    meta = read_tflite_metadata(data)
    assert meta == classifier_metadata(card)
    assert (meta.name, meta.color_space, meta.width, meta.height) == ("cats", "GRAYSCALE", 8, 8)
    assert meta.version == "tflite_fp32 (edgecv 0.1.0)" and meta.author.startswith("edgecv")
    # (pixel / 255 - 0.5) / 0.25 == (pixel - 127.5) / 63.75: mean and std in pixel units
    np.testing.assert_allclose(meta.mean, [127.5]) and np.testing.assert_allclose(meta.std, [63.75])
    assert meta.labels == LABELS and read_tflite_card(data) == card
    # the labels are a zip appended to the flatbuffer, as the standard places them
    assert zipfile.ZipFile(io.BytesIO(data)).read(LABELS_FILE).decode().splitlines() == LABELS
    assert metadata_buffer(data)[4:8] == b"M001"
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    x = np.full((1, 8, 8, 1), 0.25, np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]),
                               x + 0.5)


def test_card_and_metadata_survive_each_other():
    card = _card()
    data = _with_metadata(tiny_tflite(), card)
    # a new card repacks the flatbuffer: the label zip after it must come along
    recarded = embed_tflite_card(data, replace(card, format="tflite_int8_mixed"))
    assert read_tflite_metadata(recarded).labels == LABELS
    assert read_tflite_card(recarded).format == "tflite_int8_mixed"
    # metadata written again replaces the old entry and zip instead of adding a second
    again = with_tflite_metadata(recarded, replace(classifier_metadata(card), labels=["x", "y", "z"]))
    assert read_tflite_metadata(again).labels == ["x", "y", "z"]
    assert list(associated_files(again)) == [LABELS_FILE]
    assert read_tflite_card(again).format == "tflite_int8_mixed"
    stripped = without_tflite_metadata(again)
    assert read_tflite_metadata(stripped) is None and associated_files(stripped) == {}
    assert read_tflite_card(stripped).format == "tflite_int8_mixed"


def test_the_arena_s_rewrites_keep_the_metadata():
    """convert --mcu may ship the int8 file reordered or with an offline plan: both repack it."""
    from edgecv.converters import arena

    model = dense_graph(16, [("dense", "input", 64), ("dense", "input", 64), ("add", 0, 1)])
    data = _with_metadata(model, _card(preprocessing=Preprocessing(8, 8, 1)))
    graph = arena.read_graph(data)
    reordered = arena.reordered(data, [1, 0, 2])
    planned = arena.with_offline_plan(data, arena.pack(graph).tensor_offsets)
    for rewritten in (reordered, planned):
        assert read_tflite_metadata(rewritten).labels == LABELS
        assert read_tflite_card(rewritten).labels == LABELS


def test_a_per_channel_normalisation_is_written_per_channel():
    pre = Preprocessing(8, 8, 3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    meta = classifier_metadata(_card(preprocessing=pre))
    assert meta.color_space == "RGB"
    np.testing.assert_allclose(meta.mean, [0.485 * 255, 0.456 * 255, 0.406 * 255], rtol=1e-6)
    np.testing.assert_allclose(meta.std, [0.229 * 255, 0.224 * 255, 0.225 * 255], rtol=1e-6)
    assert pixel_quantization(pre) is None  # no uint8 input can hold raw pixels for it


def test_the_pixel_quantization_of_a_uint8_input():
    assert pixel_quantization(Preprocessing(8, 8, 3)) == (pytest.approx(1 / 255), 0)
    scale, zero_point = pixel_quantization(Preprocessing(8, 8, 3, mean=(0.5,), std=(0.5,)))
    assert scale == pytest.approx(1 / 127.5) and zero_point == 128
    assert pixel_normalization(Preprocessing(8, 8, 1, scale=1.0, mean=(3.0,))) == ((3.0,), (1.0,))
    assert pixel_quantization(Preprocessing(8, 8, 1, scale=1.0, mean=(-3.0,))) is None


@pytest.mark.parametrize("fields, reason", [
    (dict(input_dtype="int8", input_quantization=Quantization("int8", 1 / 255, -128)),
     "its input is int8"),
    (dict(input_dtype="int16"), "its input is int16"),
    (dict(input_dtype="uint8", input_quantization=Quantization("uint8", 0.0041, 3)),
     "not quantized as the raw pixels"),
    (dict(extra={"deployable": False, "flex_ops": ["FlexMatrixInverse"]}), "Flex ops"),
    (dict(labels=["cat", "two\nlines", "dog"]), "line break"),
])
def test_files_a_client_could_not_use_get_no_metadata(fields, reason):
    assert reason in metadata_refusal(_card(**fields))


def test_files_a_client_can_use_get_metadata():
    assert metadata_refusal(_card()) is None
    pixels = Quantization("uint8", 1 / 255, 0)
    assert metadata_refusal(_card(input_dtype="uint8", input_quantization=pixels)) is None
    meta = classifier_metadata(_card(input_dtype="uint8", input_quantization=pixels))
    assert meta.input_range == ((0.0,), (255.0,))


def _with_raw_metadata(model: bytes, payload: bytes, files: dict | None = None) -> bytes:
    """``model`` with ``payload`` as its TFLITE_METADATA buffer, as written by a stranger."""
    from edgecv.tflite_schema import pack_model, tflite_schema, unpack_model, with_associated_files

    schema = tflite_schema()
    tree = unpack_model(model)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(tree.buffers) - 1
    tree.metadata = [entry]
    return with_associated_files(pack_model(tree, 4096), files or {})


def test_hostile_metadata_is_one_line_model_file_error():
    model = tiny_tflite()
    good = metadata_flatbuffer(classifier_metadata(_card()))
    cases = {
        "not a metadata flatbuffer": _with_raw_metadata(model, b"\x10\0\0\0NOPE" + b"\0" * 24),
        "corrupt TFLITE_METADATA": _with_raw_metadata(model, good[:8] + b"\xff" * (len(good) - 8),
                                                      {LABELS_FILE: b"a\n"}),
        "not in the zip": _with_raw_metadata(model, good),
    }
    for expected, data in cases.items():
        with pytest.raises(ModelFileError, match=expected) as caught:
            read_tflite_metadata(data)
        assert "\n" not in str(caught.value)


def test_a_label_file_declaring_gigabytes_is_refused_before_it_is_read():
    data = _with_metadata(tiny_tflite(), _card())
    archive_start = data.rindex(b"PK\x03\x04")
    central = data.rindex(b"PK\x01\x02")
    forged = bytearray(data)
    for header, size_at in ((archive_start, 22), (central, 24)):  # uncompressed size fields
        forged[header + size_at:header + size_at + 4] = (3 << 30).to_bytes(4, "little")
    with pytest.raises(ModelFileError, match="declares more than"):
        read_tflite_metadata(bytes(forged))


def test_a_model_without_metadata_reads_as_none():
    assert read_tflite_metadata(with_card(tiny_tflite(), ["a", "b"])) is None


def test_the_edge_tpu_check_and_tflite_micro_read_a_file_with_metadata():
    """The metadata is a buffer and a metadata entry, and the zip lies after the flatbuffer:
    the Edge TPU's static check and TFLite Micro read the file as they read it without."""
    from edgecv.converters import edgetpu
    from tiny_tflite import tiny_int8_tflite, with_int8_card

    plain = with_int8_card(tiny_int8_tflite(), [str(i) for i in range(64)])
    # written whatever the int8 input (convert would not): only loading is at stake here
    data = with_tflite_metadata(plain, classifier_metadata(read_tflite_card(plain)))
    assert read_tflite_metadata(data).labels == [str(i) for i in range(64)]
    assert edgetpu.static_report(data) == edgetpu.static_report(plain)
    pytest.importorskip("tflite_micro", reason="the mcu extra (tflite-micro) is not installed")
    from edgecv.runtime.tflm import MicroInterpreter

    x = np.random.default_rng(0).integers(-128, 128, (4, 8, 8, 1), dtype=np.int8)
    with_metadata, without = MicroInterpreter(data), MicroInterpreter(plain)
    np.testing.assert_array_equal(with_metadata.invoke(x), without.invoke(x))
