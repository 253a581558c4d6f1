"""The model card each artifact carries: built from the :class:`RunData` (labels, preprocessing,
source) and, for TFLite, the file's own input/output types and quantization, then embedded.

Used by every format's build (:mod:`edgecv.converters.formats`, :mod:`edgecv.converters.edgetpu`)
and by ``--recover`` (:mod:`edgecv.converters.recover`)."""

from __future__ import annotations

import numpy as np

from edgecv.card import ModelCard, Quantization, embed_onnx_card, embed_tflite_card
from edgecv.converters.rundata import RunData
from edgecv.tflite_metadata import (classifier_metadata, metadata_refusal, with_tflite_metadata,
                                    without_tflite_metadata)


def model_card(run: RunData, card_format: str, **quant) -> ModelCard:
    """The card of ``run``'s model as ``card_format`` (e.g. ``tflite_int8``, ``onnx``);
    ``quant``: the card's dtype / quantization / ``extra`` fields."""
    return ModelCard(labels=run.labels, preprocessing=run.preprocessing, format=card_format,
                     source_run=str(run.source.resolve()), **quant)


def tflite_io_quantization(model: bytes) -> tuple[str, str, Quantization | None,
                                                   Quantization | None]:
    """(input dtype, output dtype, input quantization, output quantization) of a TFLite model;
    a quantization is None for a float tensor."""
    from edgecv.runtime.targets import load_interpreter_class

    interpreter = load_interpreter_class()(model_content=model)
    details = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    result = []
    for detail in details:
        scale, zero_point = detail["quantization"]
        dtype = np.dtype(detail["dtype"]).name
        result.append((dtype, Quantization(dtype, float(scale), int(zero_point)) if scale else None))
    return result[0][0], result[1][0], result[0][1], result[1][1]


def with_tflite_card(data: bytes, run: RunData, card_format: str, extra: dict | None = None,
                     io_from: bytes | None = None) -> bytes:
    """``data`` (a TFLite flatbuffer) with its card embedded and the standard TFLite Metadata
    that describes the same (:mod:`edgecv.tflite_metadata`: what MediaPipe Tasks and the Task
    Library read), or, when a client could not use the file as the metadata would say, the
    card's ``extra["tflite_metadata"]`` saying why it has none. ``extra`` default ``{}``.
    ``io_from``: the flatbuffer whose input/output types the card records (default ``data``; a
    compiled Edge TPU model is described by its uncompiled one, which the CPU interpreter reads)."""
    in_dtype, out_dtype, in_q, out_q = tflite_io_quantization(io_from or data)
    card = model_card(run, card_format, input_dtype=in_dtype, output_dtype=out_dtype,
                      input_quantization=in_q, output_quantization=out_q, extra=dict(extra or {}))
    refusal = metadata_refusal(card)
    if refusal is not None:
        card.extra["tflite_metadata"] = f"none: {refusal}"
        return embed_tflite_card(without_tflite_metadata(data), card)
    return with_tflite_metadata(embed_tflite_card(data, card), classifier_metadata(card))


def with_onnx_card(proto, run: RunData, card_format: str) -> bytes:
    """The serialized ONNX model with its card embedded (``proto`` is changed in place)."""
    embed_onnx_card(proto, model_card(run, card_format))
    return proto.SerializeToString()
