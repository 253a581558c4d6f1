"""edgecv.converters: Keras -> TFLite (fp32/fp16/dynamic/int8/int16x8, QAT int8), ONNX, ONNX int8
and Edge TPU artifacts, each verified in its real runtime (``edgecv convert``).

Where each job lives (a module imports only modules further down this list):

- :mod:`~edgecv.converters.convert`: the orchestration, :func:`convert_run`;
- :mod:`~edgecv.converters.formats`: the table of formats (name, file, build, verify);
- :mod:`~edgecv.converters.recover`: ``--recover``, int8 with the crushed tensors in float;
- :mod:`~edgecv.converters.load`: a run directory or a model file -> :class:`RunData`;
  :mod:`~edgecv.converters.sources` assembles a model edgecv did not train (contract, data, labels);
- one converter per format: :mod:`~edgecv.converters.tflite`, :mod:`~edgecv.converters.onnx`,
  :mod:`~edgecv.converters.qat`, :mod:`~edgecv.converters.edgetpu`; per-layer int8 error:
  :mod:`~edgecv.converters.quant_debug`;
- :mod:`~edgecv.converters.verify`: an artifact run against the reference model, the drops;
- :mod:`~edgecv.converters.arena`: a smaller TFLite Micro arena for a full-int8 file (operator
  order, offline memory plan), measured in TFLM's interpreter;
- :mod:`~edgecv.converters.cards`: the model card each artifact carries;
- :mod:`~edgecv.converters.calibration`: what calibrates an int8 model;
- :mod:`~edgecv.converters.npz`: reading an .npz of images (``--data``, ``--calib-data``);
- :mod:`~edgecv.converters.rundata`: :class:`RunData`, the one input every step reads.

Its errors (:class:`~edgecv.errors.ConversionError`, :class:`~edgecv.errors.QatError`,
:class:`~edgecv.errors.AccuracyDropError`) live in :mod:`edgecv.errors`.
"""
