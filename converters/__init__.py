"""edgecv.converters: Keras -> TFLite (fp32/fp16/dynamic/int8/int16x8), ONNX, ONNX int8, Edge TPU.

Not built yet: the conversion and verification code arrives with the `edgecv convert` issue.
Until then the model registry test converts to int8 TFLite with ``tf.lite.TFLiteConverter``
directly (tests/test_models.py).
"""
