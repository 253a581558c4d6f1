"""Where a model can run, and why it cannot: availability probes for every (target, runtime).

Targets: ``cpu`` (LiteRT/XNNPACK, ONNX Runtime CPU, Keras), ``gpu`` (ONNX Runtime CUDA/TensorRT
providers, the LiteRT GPU delegate, TensorFlow GPU), ``tpu`` (a Cloud TPU running the Keras
model under TPUStrategy; detected by :mod:`edgecv.runtime.tpu`), ``edgetpu`` (LiteRT with
the libedgetpu delegate on a model compiled by edgetpu_compiler) and ``mcu`` (a full-int8
.tflite in TFLite Micro's interpreter, :mod:`edgecv.runtime.tflm`: the reference kernels a
microcontroller runs and the arena it must reserve, on this machine; its time per inference is
the host's, never a microcontroller's latency: :data:`HOST_REFERENCE_TARGETS`). Probes never fake a device:
they look for the library, the device node or the provider, and return the reason when
something is missing. Nothing here imports TensorFlow unless the Keras runtime is probed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
from pathlib import Path

from edgecv.errors import unknown_name

TARGETS = ("cpu", "gpu", "tpu", "edgetpu", "mcu")
# ``all``: the targets a model is deployed to as it is. ``mcu`` runs the whole test split through
# TFLM's single-threaded reference kernels (minutes for a 96 px MobileNetV2) and needs the mcu
# extra, so it is asked for by name.
ALL_TARGETS = ("cpu", "gpu", "tpu", "edgetpu")
# Targets whose time per inference is measured on this machine's reference kernels: it says
# nothing of the device's latency, so it is reported only as such and never recommended.
HOST_REFERENCE_TARGETS = ("mcu",)
RUNTIMES = ("litert", "onnxruntime", "keras")  # edgecv.modelfile.kinds.runtime_for picks one

# ONNX Runtime providers that mean "a GPU", best first.
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider")
# pycoral's names of the Edge TPU runtime library per platform.
EDGETPU_LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib",
                     "Windows": "edgetpu.dll"}
GPU_DELEGATE_LIBRARIES = ("libtensorflowlite_gpu_delegate.so", "libtensorflowlite_gpu_gl.so")
# USB ids of the Coral USB Accelerator before and after its firmware is loaded.
EDGETPU_USB_IDS = {("1a6e", "089a"), ("18d1", "9302")}
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


def parse_targets(text: str) -> list[str]:
    """``"cpu,gpu"`` -> ["cpu", "gpu"]; ``all`` -> :data:`ALL_TARGETS` (every target but mcu);
    unknown names raise UsageError."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return list(ALL_TARGETS)
    for name in names:
        if name not in TARGETS:
            raise unknown_name("target", name, TARGETS)
    return list(dict.fromkeys(names))


def edgetpu_library() -> str:
    """The platform's name of the Edge TPU runtime library (libedgetpu.so.1 on Linux)."""
    return EDGETPU_LIBRARIES.get(platform.system(), EDGETPU_LIBRARIES["Linux"])


def is_edgetpu_compiled(model: bytes) -> bool:
    """True if the TFLite file holds an ``edgetpu-custom-op`` (edgetpu_compiler's output)."""
    from edgecv.tflite_schema import operator_types

    return any(name == f"CUSTOM:{EDGETPU_CUSTOM_OP}" for name, _ in operator_types(model))


def _library_loads(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def edgetpu_devices(sys_root: str = "/") -> list[str]:
    """Edge TPU devices visible to this machine: PCIe/M.2 ``/dev/apex_N`` nodes and Coral USB
    accelerators (by USB vendor:product id)."""
    root = Path(sys_root)
    found = sorted(str(p) for p in root.glob("dev/apex_*"))
    for device in sorted(root.glob("sys/bus/usb/devices/*")):
        try:
            ids = ((device / "idVendor").read_text().strip(), (device / "idProduct").read_text().strip())
        except OSError:
            continue
        if ids in EDGETPU_USB_IDS:
            found.append(f"usb:{ids[0]}:{ids[1]} ({device.name})")
    return found


def _probe_litert_cpu() -> str | None:
    from edgecv.errors import BackendUnavailable

    try:
        load_interpreter_class()
    except BackendUnavailable as exc:
        return exc.reason
    return None


def _probe_onnxruntime(gpu: bool) -> str | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed (pip install onnxruntime)"
    if not gpu:
        return None
    available = ort.get_available_providers()
    if not any(p in available for p in GPU_PROVIDERS):
        return (f"onnxruntime {ort.__version__} has no CUDA/TensorRT provider (it lists "
                f"{', '.join(available)}); install onnxruntime-gpu on a machine with an NVIDIA GPU")
    return None


def _probe_tensorflow(device: str) -> str | None:
    try:
        from edgecv.tf_import import import_tensorflow

        tf = import_tensorflow()
    except ImportError:
        return "TensorFlow is not installed (the Keras reference needs pip install 'edgecv[train]')"
    if device == "GPU" and not tf.config.list_physical_devices("GPU"):
        return "TensorFlow sees no GPU (tf.config.list_physical_devices('GPU') is empty)"
    return None


def _probe_tpu() -> str | None:
    from edgecv.runtime.tpu import tpu_missing_reason

    return tpu_missing_reason() or _probe_tensorflow("TPU")


def _probe_gpu_delegate() -> str | None:
    if any(_library_loads(name) for name in GPU_DELEGATE_LIBRARIES):
        return None
    return (f"no LiteRT GPU delegate library ({GPU_DELEGATE_LIBRARIES[0]}) can be loaded; "
            "ai-edge-litert's desktop wheels ship none (build it for your GPU, or use the "
            "ONNX artifact on the gpu target)")


def _probe_edgetpu() -> str | None:
    library = edgetpu_library()
    if not _library_loads(library):
        return (f"the Edge TPU runtime {library} is not installed (Coral's libedgetpu1-std "
                "package)")
    if platform.system() == "Linux" and not edgetpu_devices():
        return "libedgetpu is installed but no Edge TPU device is attached (no /dev/apex_*, no Coral USB id)"
    return None


@functools.lru_cache(maxsize=None)
def probe(target: str, runtime: str) -> str | None:
    """Why ``runtime`` cannot run on ``target`` here, or None if it can. Results are cached."""
    if target not in TARGETS:
        raise unknown_name("target", target, TARGETS)
    if runtime not in RUNTIMES:
        raise unknown_name("runtime", runtime, RUNTIMES)
    if target == "cpu":
        return {"litert": _probe_litert_cpu, "onnxruntime": lambda: _probe_onnxruntime(False),
                "keras": lambda: _probe_tensorflow("CPU")}[runtime]()
    if target == "gpu":
        return {"litert": _probe_gpu_delegate, "onnxruntime": lambda: _probe_onnxruntime(True),
                "keras": lambda: _probe_tensorflow("GPU")}[runtime]()
    if target == "tpu":
        return _probe_tpu() if runtime == "keras" else None
    if target == "mcu":
        from edgecv.runtime.tflm import tflm_missing

        return tflm_missing() if runtime == "litert" else None
    return _probe_edgetpu() if runtime == "litert" else None


def not_applicable(target: str, runtime: str, edgetpu_compiled: bool = False,
                   tflm_problem: str | None = None) -> str | None:
    """Why an artifact of ``runtime`` can never run on ``target`` (whatever the hardware), or
    None. ``tflm_problem``: why TFLite Micro cannot run the file
    (:func:`edgecv.runtime.tflm.tflm_incompatibility`), for the mcu target."""
    if target == "tpu" and runtime != "keras":
        return "a Cloud TPU runs the Keras model (TPUStrategy), not a .tflite/.onnx file"
    if target == "mcu":
        if runtime != "litert":
            return "a microcontroller (TFLite Micro) runs full-int8 .tflite files only"
        if edgetpu_compiled:
            return "compiled for the Edge TPU: its edgetpu-custom-op runs only with libedgetpu"
        return tflm_problem
    if target == "edgetpu":
        if runtime != "litert":
            return "the Edge TPU runs only .tflite files compiled by edgetpu_compiler"
        if not edgetpu_compiled:
            return ("not compiled for the Edge TPU (no edgetpu-custom-op): run edgetpu_compiler, "
                    "or edgecv convert --edgetpu with the compiler on PATH")
    if edgetpu_compiled and target in ("cpu", "gpu"):
        return "compiled for the Edge TPU: its edgetpu-custom-op runs only with the libedgetpu delegate"
    return None


def available_gpu_providers() -> list[str]:
    """ONNX Runtime GPU providers present here, best first (empty on a CPU-only install)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in GPU_PROVIDERS if p in available]


def load_interpreter_class():
    """The Interpreter class of ai-edge-litert, tflite-runtime, or (last) tf.lite."""
    from edgecv.errors import BackendUnavailable

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            try:
                from edgecv.tf_import import import_tensorflow

                return import_tensorflow().lite.Interpreter
            except ImportError as exc:
                raise BackendUnavailable("LiteRT", "none of ai-edge-litert, tflite-runtime or "
                                         "tensorflow is installed: pip install ai-edge-litert") from exc
    return Interpreter
