"""edgecv: train compact image classifiers, quantize them for edge devices, prove they still work.

The package is split so that a device with only numpy, OpenCV and a runtime (ai-edge-litert or
onnxruntime) can import everything on the device side. TensorFlow is imported lazily, only by the
training side (``edgecv.training``, ``edgecv.models``, ``edgecv.converters``).
"""

__version__ = "0.1.0"
