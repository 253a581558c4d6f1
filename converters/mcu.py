"""The microcontroller export (``edgecv convert --mcu``): a full-int8 TFLite model as the files a
TFLite Micro (TFLM) project compiles, verified in TFLM itself.

Written into :class:`~edgecv.rundir.McuDir` (``RUN/export/mcu``, or ``<stem>_mcu`` beside a
``.tflite`` converted alone, :func:`export_tflite`):

- ``model_data.cc`` / ``model_data.h``: the model as a 16-byte-aligned ``const unsigned char``
  array, byte for byte, and its length (``model.tflite`` holds the same bytes as a file);
- ``model_ops.h``: a ``tflite::MicroMutableOpResolver<N>`` registering exactly the N operator
  types the model uses (:data:`edgecv.runtime.tflm.RESOLVER_METHODS`);
- ``model_settings.h``: input and output shape, type, scale and zero point, the labels and the
  preprocessing of the model card, in C, and ``kTensorArenaSize``
  (:func:`edgecv.runtime.tflm.reserved_arena` of the arena TFLM measured);
- ``main.cc``: one inference with them; ``README.md``: three ways to build it;
- ``mcu.json``: the arena (total, head, tail), the model bytes, the ops, the verification and
  the fit per ``--mcu-profile`` (:mod:`edgecv.runtime.boards`).

The bytes the export ships come from one function, :func:`mcu_model`. Verification
(:func:`verify_in_tflm`) runs the test split through TFLM's interpreter, compares it with the
reference model (:func:`edgecv.converters.verify.verify_scores`), with the same file in LiteRT
(XNNPACK, what ``edgecv bench`` times on a CPU) and with LiteRT's reference kernels
(``BUILTIN_REF``), with which TFLM's reference kernels are bit-exact on every operator but a
per-channel FULLY_CONNECTED: TFLM rounds its requantization twice (gemmlowp's fixed-point
multiply, then a rounding shift), LiteRT's reference kernel once, so the two part by one step
where the scaled sum lies near a half (benchmarks/results/mcu_zoo.json).
Everything written into a C file that came from elsewhere (labels, file names) is escaped.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from edgecv import __version__
from edgecv.card import ModelCard
from edgecv.errors import ConversionError, UsageError
from edgecv.io import atomic_path, write_json_atomic, write_text_atomic
from edgecv.results import ConversionRow
from edgecv.rundir import MCU_EXPORT_MARK, McuDir
from edgecv.runtime import boards
from edgecv.runtime.base import agreement_text
from edgecv.runtime.tflm import (ARENA_MARGIN, ARENA_MARGIN_MIN_BYTES, NAME, ArenaUsage,
                                 model_ops, reserved_arena, resolver_method)

# Synthetic inputs a .tflite converted alone (no test data) is verified on.
SYNTHETIC_IMAGES = 16
_C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "float32": "float"}
_TENSOR_MEMBERS = {"int8": "int8", "uint8": "uint8", "float32": "f"}


def mcu_model(int8_model: bytes, samples: np.ndarray | None = None) -> tuple[bytes, dict]:
    """The model the export ships, and how its tensors are planned in the arena: of the
    full-int8 file as it is (TFLM's greedy planner at run time), the file with its operators in
    the order of least live memory, and that file with an offline memory plan in its metadata,
    the one whose arena TFLM measures smallest, kept only with outputs identical to the
    original's in TFLM on ``samples`` (normalised float images or model-type inputs; default
    seeded random inputs). :func:`edgecv.converters.arena.smallest_arena` does the work; its
    record (lower bound, each candidate's arena, the saving) becomes mcu.json's ``plan``.
    Every byte the export ships (``model_data.cc``, ``model.tflite``) comes from here."""
    from edgecv.converters.arena import smallest_arena

    shipped, record = smallest_arena(int8_model, samples)
    return shipped, {"plan": PLAN_NAMES[record["chosen"]], **record}


# What each of smallest_arena's candidates is called in mcu.json and the log.
PLAN_NAMES = {"tflm": "TFLite Micro's greedy plan, the file's operator order",
              "reordered": "TFLite Micro's greedy plan, operators reordered for less live memory",
              "offline_plan": "an offline memory plan (OfflineMemoryAllocation metadata)"}


# --- C text -------------------------------------------------------------------------------------

def c_string(text: str) -> str:
    """``text`` as a C string literal: printable ASCII as it is, ``"`` ``\\`` and ``?`` (trigraphs)
    escaped, every other byte of its UTF-8 as a 3-digit octal escape (never longer, so no
    following character can extend it)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\?':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_comment(text: str) -> str:
    """``text`` safe inside a ``//`` comment: printable ASCII only, on one line."""
    return "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in str(text))


def c_float(value: float) -> str:
    """A float32 constant C reads back exactly (9 significant digits)."""
    text = f"{float(np.float32(value)):.9g}"
    if not any(mark in text for mark in ".en"):
        text += ".0"
    return text + "f"


def c_array(values, per_line: int, render: Callable = str, indent: str = "    ") -> str:
    """``values`` as the lines of a C initializer, ``per_line`` a line."""
    items = [render(v) for v in values]
    return ",\n".join(indent + ", ".join(items[i:i + per_line])
                      for i in range(0, len(items), per_line))


def model_data_files(model: bytes, source: str) -> dict[str, str]:
    """``model_data.h`` and ``model_data.cc``: ``model`` as ``g_model_data``, 16-byte aligned
    (TFLM reads the flatbuffer in place), and ``g_model_data_len``."""
    digest = hashlib.sha256(model).hexdigest()
    hexed = model.hex()
    items = [f"0x{hexed[i:i + 2]}" for i in range(0, len(hexed), 2)]
    body = ",\n".join("    " + ", ".join(items[i:i + 16]) for i in range(0, len(items), 16))
    header = (f"// model_data.h: the model of model_data.cc (written by edgecv {__version__}).\n"
              "#ifndef EDGECV_MODEL_DATA_H_\n#define EDGECV_MODEL_DATA_H_\n\n"
              "// The .tflite flatbuffer, 16-byte aligned as TFLite Micro reads it in place, and "
              "its length in bytes.\n"
              "extern const unsigned char g_model_data[];\n"
              "extern const unsigned int g_model_data_len;\n\n#endif  // EDGECV_MODEL_DATA_H_\n")
    source_text = (f"// model_data.cc: {c_comment(source)}, {len(model)} bytes, byte for byte\n"
                   f"// (sha256 {digest}; written by edgecv {__version__}).\n"
                   '#include "model_data.h"\n\n'
                   f"alignas(16) const unsigned char g_model_data[] = {{\n{body}\n}};\n"
                   f"const unsigned int g_model_data_len = {len(model)};\n")
    return {"model_data.h": header, "model_data.cc": source_text}


def model_ops_header(ops: list[tuple[str, int]]) -> str:
    """``model_ops.h``: ``ModelOpResolver``, a ``MicroMutableOpResolver<N>`` for the N operator
    types of ``ops`` (:func:`edgecv.runtime.tflm.model_ops`), and ``RegisterModelOps``, which
    adds exactly those. ConversionError for an op TFLM has no kernel for."""
    calls = []
    for op, count in ops:
        method = resolver_method(op)
        if method is None:
            raise ConversionError(f"{op} has no {NAME} kernel: the model cannot run on a board.")
        calls.append(f"  if (resolver.{method}() != kTfLiteOk) return kTfLiteError;"
                     f"  // {c_comment(op)}, used {count} time(s)")
    return (f"// model_ops.h: the {len(ops)} operator types model_data.cc uses, and no others (a "
            f"resolver\n// links only the kernels it registers). Written by edgecv {__version__}.\n"
            "#ifndef EDGECV_MODEL_OPS_H_\n#define EDGECV_MODEL_OPS_H_\n\n"
            '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
            f"constexpr int kModelOpCount = {len(ops)};\n"
            "using ModelOpResolver = tflite::MicroMutableOpResolver<kModelOpCount>;\n\n"
            "inline TfLiteStatus RegisterModelOps(ModelOpResolver& resolver) {\n"
            + "\n".join(calls) + "\n  return kTfLiteOk;\n}\n\n#endif  // EDGECV_MODEL_OPS_H_\n")


def model_settings_header(io: dict, card: ModelCard | None, arena: ArenaUsage) -> str:
    """``model_settings.h``: the input and output tensors (``io``: TFLM's details, see
    :func:`io_record`), the card's labels and preprocessing (a comment and a per-channel table
    from 8-bit pixel to model input, the values edgecv's own classifier feeds), and
    ``kTensorArenaSize``. A file without a card gets neither labels nor preprocessing."""
    inp, out = io["input"], io["output"]
    _, height, width, channels = inp["shape"]
    in_type, out_type = _C_TYPES[inp["dtype"]], _C_TYPES[out["dtype"]]
    classes = int(np.prod(out["shape"][1:]))
    lines = [f"// model_settings.h: what model_data.cc's model takes and gives (written by edgecv "
             f"{__version__}).", "#ifndef EDGECV_MODEL_SETTINGS_H_",
             "#define EDGECV_MODEL_SETTINGS_H_", "", "#include <cstddef>", "#include <cstdint>", "",
             f"// Input: 1 x {height} x {width} x {channels} (NHWC), {inp['dtype']}"
             + (", real value = (q - kInputZeroPoint) * kInputScale." if inp["scale"] else "."),
             f"constexpr int kInputHeight = {height};", f"constexpr int kInputWidth = {width};",
             f"constexpr int kInputChannels = {channels};",
             "constexpr int kInputSize = kInputHeight * kInputWidth * kInputChannels;",
             f"typedef {in_type} ModelInput;",
             f"constexpr float kInputScale = {c_float(inp['scale'])};",
             f"constexpr int kInputZeroPoint = {inp['zero_point']};", "",
             f"// Output: {classes} scores, {out['dtype']}"
             + (", probability = (q - kOutputZeroPoint) * kOutputScale." if out["scale"] else "."),
             f"constexpr int kOutputSize = {classes};", f"typedef {out_type} ModelOutput;",
             f"constexpr float kOutputScale = {c_float(out['scale'])};",
             f"constexpr int kOutputZeroPoint = {out['zero_point']};", ""]
    if card is not None:
        labels = ",\n".join(f"    {c_string(label)}" for label in card.labels)
        lines += ["// The labels, in output order (the model card's).",
                  f"constexpr int kCategoryCount = {len(card.labels)};",
                  f"constexpr const char* kCategoryLabels[kCategoryCount] = {{\n{labels}\n}};", ""]
        lines += _preprocessing_lines(card, inp)
    else:
        lines += ["// The file carries no edgecv model card: its labels and preprocessing are "
                  "unknown here.", f"constexpr int kCategoryCount = {classes};", ""]
    reserved = reserved_arena(arena.total)
    lines += [f"// Tensor arena: {NAME} measured {arena.total} bytes (head {arena.head}: the "
              f"activations; tail {arena.tail}:",
              "// tensors' records, quantization data) with its recording allocator and "
              "reference kernels on x86-64;",
              f"// reserved with a {ARENA_MARGIN:.0%} margin (at least {ARENA_MARGIN_MIN_BYTES} "
              "bytes) for other kernels' scratch buffers,",
              "// rounded up to whole KiB. interpreter.arena_used_bytes() gives the board's "
              "own figure.", f"constexpr size_t kTensorArenaSize = {reserved};", "",
              "#endif  // EDGECV_MODEL_SETTINGS_H_", ""]
    return "\n".join(lines)


def _preprocessing_lines(card: ModelCard, inp: dict) -> list[str]:
    """The card's preprocessing in C: how an image becomes the model's input, as constants and
    as the per-channel table of :meth:`edgecv.preprocessing.Preprocessing.pixel_table`."""
    from edgecv.runtime.base import quantize

    pre = card.preprocessing
    dtype = np.dtype(inp["dtype"])
    table = pre.pixel_table(None if dtype.kind == "f" else
                            lambda x: quantize(x, inp["scale"], inp["zero_point"], dtype))
    mean = [float(m) for m in (pre.mean * pre.channels if len(pre.mean) == 1 else pre.mean)]
    std = [float(s) for s in (pre.std * pre.channels if len(pre.std) == 1 else pre.std)]
    render = c_float if dtype.kind == "f" else (lambda v: str(int(v)))
    rows = ",\n".join("    {\n" + c_array(row, 16, render, "        ") + "\n    }"
                      for row in table)
    colour = ("RGB order (OpenCV decodes BGR: swap it)" if pre.channels == 3 else
              "one grey channel (from colour: 0.299 R + 0.587 G + 0.114 B)")
    return ["// Preprocessing (the model card's): an 8-bit image, centre-cropped to the model's "
            "aspect and resized",
            f"// to {pre.height} x {pre.width} (INTER_AREA when shrinking, INTER_LINEAR when "
            f"enlarging), {colour},",
            "// then model input = (pixel * kPixelScale - kMean[c]) / kStd[c], quantized with "
            "kInputScale and kInputZeroPoint.",
            f"constexpr float kPixelScale = {c_float(pre.scale)};",
            f"constexpr float kMean[kInputChannels] = {{{', '.join(map(c_float, mean))}}};",
            f"constexpr float kStd[kInputChannels] = {{{', '.join(map(c_float, std))}}};",
            "// The same, for every pixel value: input[(y * kInputWidth + x) * kInputChannels + c]"
            " = kPixelToInput[c][pixel].",
            f"constexpr ModelInput kPixelToInput[kInputChannels][256] = {{\n{rows}\n}};", ""]


def main_cc(io: dict, with_card: bool) -> str:
    """``main.cc``: one inference with the export's files (a mid-grey image through the
    preprocessing table, or the input's zero point without a card), the best class printed."""
    inp, out = _TENSOR_MEMBERS[io["input"]["dtype"]], _TENSOR_MEMBERS[io["output"]["dtype"]]
    fill = ("      input->data.{m}[i * kInputChannels + c] = kPixelToInput[c][128];".format(m=inp)
            if with_card else
            "      input->data.{m}[i * kInputChannels + c] = static_cast<ModelInput>("
            "kInputZeroPoint);".format(m=inp))
    label = ("kCategoryLabels[best]" if with_card else '"class"')
    return f"""// main.cc: one inference with model_data.cc, model_ops.h and model_settings.h on TFLite Micro
// (written by edgecv {__version__}). Replace the grey image with your camera's pixels.
// Define EDGECV_NO_MAIN and call RunOneInference() from setup() (Arduino) or app_main()
// (ESP-IDF) where the platform owns main().
#include <cstdint>

#include "model_data.h"
#include "model_ops.h"
#include "model_settings.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {{
alignas(16) uint8_t tensor_arena[kTensorArenaSize];
}}  // namespace

int RunOneInference() {{
  tflite::InitializeTarget();
  const tflite::Model* model = tflite::GetModel(g_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {{
    MicroPrintf("model schema %d, this TFLite Micro reads %d", model->version(),
                TFLITE_SCHEMA_VERSION);
    return 1;
  }}
  static ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) return 1;
  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kTensorArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {{
    MicroPrintf("AllocateTensors failed: raise kTensorArenaSize (%d bytes)",
                static_cast<int>(kTensorArenaSize));
    return 1;
  }}
  TfLiteTensor* input = interpreter.input(0);
  for (int i = 0; i < kInputHeight * kInputWidth; ++i) {{
    for (int c = 0; c < kInputChannels; ++c) {{
{fill}
    }}
  }}
  if (interpreter.Invoke() != kTfLiteOk) {{
    MicroPrintf("Invoke failed");
    return 1;
  }}
  TfLiteTensor* output = interpreter.output(0);
  int best = 0;
  for (int i = 1; i < kOutputSize; ++i) {{
    if (output->data.{out}[i] > output->data.{out}[best]) best = i;
  }}
  const float score = (output->data.{out}[best] - kOutputZeroPoint) * kOutputScale;
  MicroPrintf("%s: %d/1000 (arena used: %d of %d bytes)", {label},
              static_cast<int>(score * 1000), static_cast<int>(interpreter.arena_used_bytes()),
              static_cast<int>(kTensorArenaSize));
  return 0;
}}

#ifndef EDGECV_NO_MAIN
int main() {{ return RunOneInference(); }}
#endif
"""


def readme(record: dict) -> str:
    """The export's README.md: what each file is, three ways to build it (none of which edgecv
    tried), what was measured and what was not."""
    arena = record["arena"]
    fits = "".join(f"- {boards.fit_text(f)}\n" for f in record["fit"])
    verification = record["verification"]
    checked = (f"on {verification['images']} {verification['inputs']}: top-1 agreement with the "
               f"same file in LiteRT {litert_agreement_text(verification)} (largest "
               f"output difference {verification['max_diff_steps_vs_litert']} step(s)); "
               f"{reference_kernels_text(verification)}")
    return f"""# {c_comment(record['source']['file'])} for a microcontroller (TFLite Micro)

Written by edgecv {__version__} (`edgecv convert --mcu`). The model is {record['model_bytes']:,}
bytes; TFLite Micro {record['tflm_version'] or ''} measured a tensor arena of {arena['total']:,} bytes
(head {arena['head']:,}, tail {arena['tail']:,}); `kTensorArenaSize` reserves {arena['reserved']:,}.
Verified in TFLite Micro's interpreter {checked}.

| file | what |
|---|---|
| `model_data.cc`, `model_data.h` | the model (`model.tflite`, byte for byte) as `g_model_data`, 16-byte aligned, and `g_model_data_len` |
| `model_ops.h` | `ModelOpResolver` (`tflite::MicroMutableOpResolver<{len(record['ops'])}>`) and `RegisterModelOps()`: exactly the operators the model uses |
| `model_settings.h` | input/output shape, type, scale, zero point; labels; the preprocessing (`kPixelToInput`); `kTensorArenaSize` |
| `main.cc` | `RunOneInference()`: one inference on a grey image, the best class printed with `MicroPrintf` |
| `mcu.json` | the figures: arena, model bytes, ops, verification, fit |

## Building it

edgecv ran this model in TFLite Micro's Python interpreter on x86-64 (the reference kernels
these files link); it built none of the projects below and ran nothing on a board. Each takes
TFLite Micro from the platform's own package, which may be an older release than the one
measured here:

- **Arduino**: install a TFLite Micro Arduino library (the one in
  github.com/tensorflow/tflite-micro-arduino-examples supports the Nano 33 BLE Sense), copy the
  five source files into the sketch folder, include `<TensorFlowLite.h>` first, define
  `EDGECV_NO_MAIN` and call `RunOneInference()` from `setup()`.
- **Zephyr**: enable the `tflite-micro` module (`west config manifest.project-filter --
  +tflite-micro && west update`), set `CONFIG_CPP=y`, `CONFIG_STD_CPP17=y` and
  `CONFIG_TENSORFLOW_LITE_MICRO=y`, and add `main.cc` and `model_data.cc` to the application's
  sources (Zephyr's `samples/modules/tflite-micro/hello_world` is laid out the same way).
- **ESP-IDF**: `idf.py add-dependency "espressif/esp-tflite-micro"`, put the files in `main/`,
  list `main.cc` and `model_data.cc` in `idf_component_register(SRCS ...)`, define
  `EDGECV_NO_MAIN` and call `RunOneInference()` from `extern "C" void app_main()`.

## Fit

{fits or "No `mcu_profile` was given."}
{boards.NOT_COUNTED[0].upper() + boards.NOT_COUNTED[1:]}. The arena was measured with the
reference kernels on a 64-bit machine: a board's optimized kernels (CMSIS-NN, ESP-NN) may need
scratch buffers these do not (the margin above), and `interpreter.arena_used_bytes()` prints
the board's own figure. Nothing here measures a microcontroller's latency.
"""


# --- the record, the files ------------------------------------------------------------------------

def io_record(micro) -> dict:
    """The input and output of a :class:`~edgecv.runtime.tflm.MicroInterpreter` as JSON:
    shape, dtype name, scale, zero point."""
    return {kind: {"shape": [int(d) for d in detail["shape"]], "dtype": detail["dtype"].name,
                   "scale": float(detail["scale"]), "zero_point": int(detail["zero_point"])}
            for kind, detail in (("input", micro.input), ("output", micro.output))}


def check_folder(folder: McuDir) -> None:
    """UsageError, before anything is written, if the export's folder is a symbolic link (its
    files would land wherever it points) or something other than a folder."""
    path = folder.path
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise UsageError(f"'{path}' is a symbolic link or a file, not a folder: edgecv convert "
                         "writes the microcontroller files only into a folder of its own; move "
                         "it or choose another `out`.")


def mark_incomplete(folder: McuDir) -> None:
    """mcu.json while the export is written: it marks the folder as edgecv's and vouches for
    nothing (a killed export leaves no record describing a mix of old and new files)."""
    check_folder(folder)
    write_json_atomic(folder.record, {"export": MCU_EXPORT_MARK,
                                      "incomplete": "edgecv convert is writing this folder"})


def write_export(folder: McuDir, model: bytes, card: ModelCard | None, micro_backend,
                 record: dict) -> None:
    """Write the C++ files and the README of ``model`` (already in ``folder.model``) into
    ``folder``, each atomically, then ``record`` as mcu.json. ``micro_backend``: the model
    open in TFLM (its arena)."""
    mark_incomplete(folder)
    io = record["io"]
    texts = {**model_data_files(model, record["source"]["file"]),
             "model_ops.h": model_ops_header([(op["op"], op["count"]) for op in record["ops"]]),
             "model_settings.h": model_settings_header(io, card, micro_backend.arena),
             "main.cc": main_cc(io, card is not None), "README.md": readme(record)}
    for name, text in texts.items():
        write_text_atomic(folder.path / name, text)
    write_json_atomic(folder.record, record)


def export_record(model: bytes, source: dict, plan: dict, micro_backend,
                  verification: dict, profiles: list) -> dict:
    """mcu.json: what was exported, the arena TFLM measured and the one reserved, the ops, the
    tensors, the verification, the fit per profile and what is not measured."""
    arena = micro_backend.arena
    reserved = reserved_arena(arena.total)
    from edgecv.runtime.tflm import tflm_version

    return {
        "export": MCU_EXPORT_MARK, "edgecv_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": source, "model_bytes": len(model),
        "model_sha256": hashlib.sha256(model).hexdigest(), "plan": plan,
        "tflm_version": tflm_version(),
        "arena": {**arena.to_dict(), "reserved": reserved,
                  "measured_with": f"{NAME}'s recording allocator, reference kernels, x86-64",
                  "margin": f"{ARENA_MARGIN:.0%} of the total, at least "
                            f"{ARENA_MARGIN_MIN_BYTES} bytes, rounded up to whole KiB"},
        "ops": [{"op": op, "count": count, "resolver": resolver_method(op)}
                for op, count in model_ops(model)],
        "io": io_record(micro_backend.micro), "verification": verification,
        "fit": [boards.fit(profile, reserved, len(model)) for profile in profiles],
        "not_measured": [boards.NOT_COUNTED,
                         "latency on a microcontroller (TFLite Micro's reference kernels ran on "
                         "this machine's CPU)"],
    }


# --- verification ---------------------------------------------------------------------------------

def output_steps(a: np.ndarray, b: np.ndarray, micro_backend) -> int | None:
    """The largest difference of two dequantized score arrays in the model's output steps
    (None for a float output)."""
    from edgecv.runtime.base import quantization_steps

    return quantization_steps(a, b, micro_backend.micro.output["scale"])


def compare_kernels(path: Path, x: np.ndarray, tflm_scores: np.ndarray, micro_backend) -> dict:
    """TFLM's scores on ``x`` against the same file in LiteRT: its default kernels (XNNPACK)
    and its reference kernels (``BUILTIN_REF``): top-1 agreement, the largest difference in
    output steps, and whether TFLM is bit-exact with the reference kernels."""
    from edgecv.converters.verify import artifact_scores

    litert = artifact_scores(path, x)
    reference = artifact_scores(path, x, reference_kernels=True)
    return kernel_comparison(tflm_scores, litert, reference, micro_backend)


def kernel_comparison(tflm: np.ndarray, litert: np.ndarray, reference: np.ndarray,
                      micro_backend) -> dict:
    """TFLM's scores against LiteRT's default and reference kernels' on the same inputs."""
    from edgecv.converters.verify import agreement, agreement_counting_ties

    return {"agreement_vs_litert": agreement(tflm, litert),
            "agreement_vs_litert_counting_ties": agreement_counting_ties(tflm, litert),
            "max_diff_steps_vs_litert": output_steps(tflm, litert, micro_backend),
            "agreement_vs_reference_kernels": agreement(tflm, reference),
            "max_diff_steps_vs_reference_kernels": output_steps(tflm, reference, micro_backend),
            "bit_exact_vs_reference_kernels": bool(np.array_equal(tflm, reference)),
            "outputs_differing_from_reference_kernels": int((tflm != reference).sum()),
            "outputs": int(tflm.size)}


def verify_in_tflm(row: ConversionRow, path: Path, run, keras_scores: np.ndarray,
                   micro_backend) -> dict:
    """Run the test split through TFLM (the file at ``path``, open in ``micro_backend``); the
    conversion ``row`` gets its figures and drops against the reference model
    (:func:`edgecv.converters.verify.verify_scores`); returns mcu.json's ``verification``:
    those and the comparison with LiteRT (:func:`compare_kernels`)."""
    from edgecv.converters.verify import artifact_scores, score_drops, verify_scores

    scores = artifact_scores(path, run.test_x, target="mcu")
    verify_scores(row, scores, run, keras_scores)
    kernels = compare_kernels(path, run.test_x, scores, micro_backend)
    keras_accuracy = (None if run.test_y is None
                      else float((keras_scores.argmax(1) == run.test_y).mean()))
    score_drops(row, keras_accuracy)
    return {"inputs": "test-split images", "images": int(len(run.test_x)),
            "accuracy": row.accuracy, "reference_accuracy": keras_accuracy,
            "accuracy_drop_pp": row.accuracy_drop_pp,
            "agreement_vs_reference_model": row.agreement, **kernels}


def verify_export(row: ConversionRow, path: Path, run, keras_scores: np.ndarray, source: dict,
                  plan: dict, profiles: list) -> dict:
    """``edgecv convert RUN --mcu``'s verification and files: the shipped model at ``path``
    (``export/mcu/model.tflite``) through TFLM on the test split (:func:`verify_in_tflm`, its
    figures into the conversion ``row``), then the rest of the export beside it
    (:func:`write_export`). Returns mcu.json's record."""
    from edgecv.runtime import open_backend

    folder = McuDir(path.parent)
    data = path.read_bytes()
    with open_backend(path, target="mcu", checksum="off") as micro_backend:
        verification = verify_in_tflm(row, path, run, keras_scores, micro_backend)
        record = export_record(data, source, plan, micro_backend, verification, profiles)
        write_export(folder, data, micro_backend.card, micro_backend, record)
    return record


def synthetic_verification(path: Path, micro_backend, count: int = SYNTHETIC_IMAGES,
                           seed: int = 0) -> dict:
    """For a file with no test data: ``count`` random inputs in the model's own input type
    (seeded) through TFLM and LiteRT (:func:`compare_kernels`)."""
    from edgecv.runtime.litert import LiteRTBackend

    shape, dtype = micro_backend.input_shape[1:], micro_backend.micro.input["dtype"]
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        x = rng.random((count, *shape), dtype=np.float32)
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max + 1, (count, *shape)).astype(dtype)
    tflm = micro_backend.run_prepared(x) if dtype.kind != "f" else micro_backend.run(x)

    def scores(reference_kernels: bool) -> np.ndarray:
        with LiteRTBackend(path, checksum="off", reference_kernels=reference_kernels) as litert:
            return litert.run_prepared(x) if dtype.kind != "f" else litert.run(x)

    return {"inputs": f"random {dtype.name} inputs (seed {seed}; no test data)", "images": count,
            **kernel_comparison(tflm, scores(False), scores(True), micro_backend)}


def reference_kernels_text(verification: dict) -> str:
    """``bit-exact with LiteRT's reference kernels``, or by how much and where it is not."""
    if verification["bit_exact_vs_reference_kernels"]:
        return "bit-exact with LiteRT's reference kernels"
    return (f"{verification['outputs_differing_from_reference_kernels']} of "
            f"{verification['outputs']} outputs differ from LiteRT's reference kernels' (by at "
            f"most {verification['max_diff_steps_vs_reference_kernels']} step(s); top-1 "
            f"agreement {100 * verification['agreement_vs_reference_kernels']:.2f}%)")


def litert_agreement_text(verification: dict) -> str:
    """TFLM's top-1 agreement with LiteRT, and counting ties where that differs."""
    return agreement_text(verification["agreement_vs_litert"],
                          verification.get("agreement_vs_litert_counting_ties"))


def verification_text(verification: dict) -> str:
    """The verification on one log line."""
    return (f"TFLite Micro on {verification['images']} {verification['inputs']}: agreement with "
            f"LiteRT {litert_agreement_text(verification)} (max "
            f"{verification['max_diff_steps_vs_litert']} step(s)); "
            f"{reference_kernels_text(verification)}")


def arena_text(record: dict) -> str:
    """The arena and the model bytes on one log line, and the plan when it saved memory."""
    arena, plan = record["arena"], record.get("plan") or {}
    saved = ""
    if plan.get("saving_bytes"):
        saved = (f"; {plan['plan']}: {plan['saving_bytes']:,} bytes ({plan['saving_percent']:.1f}%) "
                 "less than TFLite Micro's own")
    return (f"arena {arena['total'] / 1024:.1f} KiB (head {arena['head'] / 1024:.1f}, tail "
            f"{arena['tail'] / 1024:.1f}; kTensorArenaSize {arena['reserved'] / 1024:.0f} KiB), "
            f"model {record['model_bytes'] / 1024:.1f} KiB, {len(record['ops'])} op types{saved}")


# --- a .tflite converted alone ------------------------------------------------------------------

def default_folder(model: str | Path) -> McuDir:
    """Where ``edgecv convert MODEL.tflite --mcu`` writes: ``<stem>_mcu`` beside the file."""
    path = Path(model).resolve()
    return McuDir(path.parent / f"{path.stem}_mcu")


def refuse_foreign_files(folder: McuDir) -> None:
    """UsageError if ``folder`` holds a file the export would replace and its mcu.json is not
    edgecv's (:meth:`McuDir.is_mcu_export`): convert replaces only what it wrote."""
    check_folder(folder)
    if folder.is_mcu_export():
        return
    taken = [p.name for p in folder.files() if p.exists() or p.is_symlink()]
    if taken:
        raise UsageError(f"refusing to write into '{folder.path}': it holds '{taken[0]}', which "
                         "edgecv convert would replace but did not write (no mcu.json of "
                         "edgecv's beside it); move it out or choose another `out`.")


def export_tflite(model_path: str | Path, out_dir: str | Path | None = None,
                  profiles: list | None = None, log: Callable[[str], None] = print) -> dict:
    """``edgecv convert MODEL.tflite --mcu``: the microcontroller export of a full-int8 .tflite
    made elsewhere, into ``out_dir`` (default ``<stem>_mcu`` beside it). No reference model and
    no data: the checks are TFLM's (the file runs there, its arena) and its outputs against
    LiteRT's on :data:`SYNTHETIC_IMAGES` random inputs (:func:`synthetic_verification`).
    ``profiles``: :class:`~edgecv.runtime.boards.BoardProfile` to fit (default none). Returns
    mcu.json's record."""
    from edgecv.runtime.tflm import TFLMBackend

    path = Path(model_path)
    if not path.is_file():
        raise UsageError(f"'{path}' does not exist or is not a file; give a .tflite file.")
    folder = McuDir(out_dir) if out_dir else default_folder(path)
    refuse_foreign_files(folder)
    data = path.read_bytes()
    with TFLMBackend(path, checksum="off"):  # every check of the file before anything is written
        pass
    shipped, plan = mcu_model(data)
    mark_incomplete(folder)
    with atomic_path(folder.model) as tmp:
        tmp.write_bytes(shipped)
    with TFLMBackend(folder.model, checksum="off") as micro_backend:
        verification = synthetic_verification(folder.model, micro_backend)
        source = {"file": path.name, "path": str(path.resolve()),
                  "sha256": hashlib.sha256(data).hexdigest()}
        record = export_record(shipped, source, plan, micro_backend, verification,
                               list(profiles or []))
        write_export(folder, shipped, micro_backend.card, micro_backend, record)
    log(f"mcu  {arena_text(record)}")
    log(f"mcu  {verification_text(verification)}")
    for line in record["fit"]:
        log(f"mcu  {boards.fit_text(line)}")
    log(f"wrote the microcontroller export to {folder.path}")
    return record
