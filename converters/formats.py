"""The table of artifact formats: for each, its name, its file, how it is built (with its model
card) and how it is verified. :func:`edgecv.converters.convert.convert_run` loops over it.

A format's special cases live in the functions its row points to: ``int8_qat`` and
``onnx_int8_qat`` (one fine-tuning, shared: :meth:`Conversion.qat_int8`) check their settings
before anything loads (:func:`edgecv.converters.qat.check_settings`); the float TFLite
formats may use Flex ops with ``--select-tf-ops`` and are then recorded as not verified when
ai-edge-litert cannot run them (:func:`verify_allowing_flex`); ``edgetpu`` writes its
compatibility report and is not verified here once compiled (:func:`verify_edgetpu`); the ONNX
formats share one fp32 conversion (:meth:`Conversion.onnx_fp32_proto`); ``mcu`` exports the int8
file (one conversion, shared: :meth:`Conversion.int8_file`) for TFLite Micro, needs the mcu
extra (checked first, :func:`_check_mcu`) and is verified in TFLite Micro
(:func:`verify_mcu`, :mod:`edgecv.converters.mcu`).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgecv.card import read_tflite_card
from edgecv.converters import edgetpu, qat, verify
from edgecv.converters.cards import with_onnx_card, with_tflite_card
from edgecv.converters.rundata import RunData
from edgecv.converters.verify import Budget
from edgecv.errors import ConversionError, EdgecvError, UsageError, unknown_name
from edgecv.io import write_json_atomic
from edgecv.modelfile.reference import reference_of
from edgecv.results import ConversionRow
from edgecv.rundir import ExportDir

ONNX_CALIBRATION = ("auto", "minmax", "entropy", "percentile")


@dataclass(frozen=True)
class Settings:
    """How the artifacts are built (``edgecv convert``'s flags): int8 I/O type, ONNX opset,
    Flex ops allowed, ONNX calibration method, QAT epochs and learning rate (None: its
    defaults)."""

    io: str = "uint8"
    opset: int = 17
    select_tf_ops: bool = False
    onnx_calibration: str = "auto"
    qat_epochs: int | None = None
    qat_lr: float | None = None
    budget: Budget = Budget()  # what ONNX int8's recipe must meet on the check slice
    mcu_profiles: tuple = ()  # boards the mcu export is fitted to (edgecv.runtime.boards)


@dataclass
class Conversion:
    """What the format steps of one conversion share: the loaded source, the settings, where
    files go, the reference model's test scores (and accuracy, None without labels)."""

    run: RunData
    settings: Settings
    out: Path
    keras_scores: np.ndarray
    keras_accuracy: float | None
    log: Callable[[str], None] = print
    onnx_fp32: object | None = None  # the fp32 ONNX proto, made once (onnx, onnx_int8, --recover)
    qat: tuple[bytes, dict] | None = None  # the QAT TFLite file and its record, made once
    int8: bytes | None = None  # the full-int8 TFLite file with its card, made once (int8, mcu)
    # the layers whose int8 weights were rounded for the data (edgecv.converters.stem), one line
    # each; None until an int8 file is built
    int8_rounded: list[str] | None = None

    def __post_init__(self):
        # One reference for every TFLite build: its frozen graph is made once and reused.
        self.reference = reference_of(self.run.model)
        self._int8_model = None

    def int8_model(self):
        """The model the int8 files are converted from: ``run.model`` with the weights of its
        convolutions on the image on the int8 grid chosen for the calibration images
        (:func:`edgecv.converters.stem.int8_form`), made once; each such layer logged."""
        if self._int8_model is None:
            from edgecv.converters.stem import int8_form

            self._int8_model, self.int8_rounded = int8_form(self.run.model, self.run.calibration)
            for line in self.int8_rounded:
                self.log(f"int8 form: {line}")
        return self._int8_model

    def int8_reference(self):
        """:meth:`int8_model` as a conversion reference (the float one when nothing changed)."""
        model = self.int8_model()
        return self.reference if model is self.run.model else reference_of(model)

    def onnx_fp32_proto(self):
        """The fp32 ONNX model of ``run.model``, converted on first use."""
        if self.onnx_fp32 is None:
            from edgecv.converters.onnx import to_onnx

            self.onnx_fp32 = to_onnx(self.run.model, self.settings.opset)
        return self.onnx_fp32

    def int8_file(self) -> bytes:
        """The full-int8 TFLite file (integer-only, its card embedded), converted on first use:
        ``int8`` writes it, ``mcu`` exports it for TFLite Micro."""
        if self.int8 is None:
            from edgecv.converters.tflite import to_tflite_int8

            from edgecv.converters.tflite import with_pixel_input

            run, io = self.run, self.settings.io
            data = _integer_only(to_tflite_int8(self.int8_reference(), run.calibration, io=io),
                                 io)
            self.int8 = with_tflite_card(with_pixel_input(data, run.preprocessing), run,
                                         "tflite_int8")
        return self.int8

    def qat_int8(self) -> tuple[bytes, dict]:
        """The quantization-aware int8 TFLite file (integer-only, no card) and its record,
        fine-tuned on first use (:func:`edgecv.converters.qat.build_qat_int8`): ``int8_qat``
        ships it, ``onnx_int8_qat`` carries its int8 graph to ONNX."""
        if self.qat is None:
            settings = self.settings
            chosen = {k: v for k, v in (("epochs", settings.qat_epochs), ("lr", settings.qat_lr))
                      if v is not None}
            from edgecv.converters.tflite import with_pixel_input

            data, record = qat.build_qat_int8(self.run, io=settings.io, log=self.log, **chosen)
            data = with_pixel_input(_integer_only(data, settings.io), self.run.preprocessing)
            self.qat = data, record
        return self.qat


# (conversion, the file's row) -> the file's bytes, its card embedded; what the build records
# about the file (how it was calibrated, planned, fine-tuned) goes into the row
Build = Callable[[Conversion, ConversionRow], bytes]
# (conversion, the row, the written file) -> None once verified (figures in the row), else the
# log line's reason (the row says why in ``verified``)
Verify = Callable[[Conversion, ConversionRow, Path], "str | None"]


def verify_in_runtime(conversion: Conversion, row: ConversionRow, path: Path) -> str | None:
    """Run the file in its runtime on the test split; its figures and drops go into ``row``."""
    verify.verify_artifact(row, path, conversion.run, conversion.keras_scores)
    verify.score_drops(row, conversion.keras_accuracy)
    return None


@dataclass(frozen=True)
class Format:
    """One artifact format: ``name`` (the CLI flag, ``conversion.json``'s ``format``), ``file``
    (in the output directory), ``build`` and ``verify``; ``check`` refuses bad settings before
    anything loads; ``flex``: may use Flex ops with ``--select-tf-ops``; ``quiet``: its build
    times candidates, so it starts once the verifications before it are done (they run on
    another thread while the next formats build)."""

    name: str
    file: str
    build: Build
    verify: Verify = verify_in_runtime
    check: Callable[[Settings], None] | None = None
    flex: bool = False
    quiet: bool = False


# --- building -------------------------------------------------------------------------------------

def _integer_only(data: bytes, io: str) -> bytes:
    from edgecv.converters.tflite import integer_only_violations

    problems = integer_only_violations(data, io=io)
    if problems:
        raise ConversionError(f"the int8 model is not integer-only: {'; '.join(problems[:5])}.")
    return data


def _float_tflite(conversion: Conversion, name: str, data: bytes) -> bytes:
    """fp32 / fp16 / dynamic: with ``--select-tf-ops`` the card says whether Flex ops made the
    file undeployable."""
    from edgecv.converters.tflite import FLEX_REASON, flex_ops

    extra = {}
    if conversion.settings.select_tf_ops:
        flex = flex_ops(data)
        extra = {"select_tf_ops": True, "deployable": not flex, "flex_ops": flex}
        if flex:
            extra["reason"] = FLEX_REASON
    return with_tflite_card(data, conversion.run, f"tflite_{name}", extra)


def build_fp32(conversion: Conversion, row: ConversionRow) -> bytes:
    from edgecv.converters.tflite import to_tflite_fp32

    select = conversion.settings.select_tf_ops
    return _float_tflite(conversion, "fp32", to_tflite_fp32(conversion.reference,
                                                            select_tf_ops=select))


def build_fp16(conversion: Conversion, row: ConversionRow) -> bytes:
    from edgecv.converters.tflite import to_tflite_fp16

    select = conversion.settings.select_tf_ops
    return _float_tflite(conversion, "fp16", to_tflite_fp16(conversion.reference,
                                                            select_tf_ops=select))


def build_dynamic(conversion: Conversion, row: ConversionRow) -> bytes:
    from edgecv.converters.tflite import to_tflite_dynamic

    select = conversion.settings.select_tf_ops
    return _float_tflite(conversion, "dynamic", to_tflite_dynamic(conversion.reference,
                                                                  select_tf_ops=select))


def build_int8(conversion: Conversion, row: ConversionRow) -> bytes:
    return conversion.int8_file()


def build_mcu(conversion: Conversion, row: ConversionRow) -> bytes:
    """The model the microcontroller export ships (:func:`edgecv.converters.mcu.mcu_model` of
    the int8 file), refused in one line when TFLite Micro cannot run it (an op it lacks, named
    with its Keras layer); how its arena is planned (the smallest of TFLM's plan, a better operator
    order and an offline plan, outputs identical on the test split) goes into ``row.plan``."""
    from edgecv.converters.mcu import check_folder, mcu_model
    from edgecv.runtime.tflm import NAME, tflm_incompatibility

    check_folder(ExportDir(conversion.out).mcu)
    int8 = conversion.int8_file()
    problem = tflm_incompatibility(int8)
    if problem:
        raise ConversionError(f"the int8 model cannot run on {NAME}: {problem}. Fix: replace "
                              "that layer with one TFLite Micro has a kernel for, or leave out "
                              "`formats=['mcu']`.")
    data, row.plan = mcu_model(int8, conversion.run.test_x)
    row.from_file = FORMAT_TABLE["int8"].file
    return data


def build_int8_qat(conversion: Conversion, row: ConversionRow) -> bytes:
    """Quantization-aware fine-tuning first (:meth:`Conversion.qat_int8`); its record goes into
    ``row.qat``."""
    data, row.qat = conversion.qat_int8()
    return with_tflite_card(data, conversion.run, "tflite_int8_qat")


def build_int16x8(conversion: Conversion, row: ConversionRow) -> bytes:
    from edgecv.converters.tflite import to_tflite_int16x8

    run = conversion.run
    return with_tflite_card(to_tflite_int16x8(conversion.int8_reference(), run.calibration), run,
                            "tflite_int16x8")


def build_onnx(conversion: Conversion, row: ConversionRow) -> bytes:
    return with_onnx_card(conversion.onnx_fp32_proto(), conversion.run, "onnx")


def build_onnx_int8(conversion: Conversion, row: ConversionRow) -> bytes:
    """ONNX int8 calibrated as ``--onnx-calibration`` says (:func:`choose_onnx_int8`); the choice
    goes into ``row.onnx_calibration``."""
    proto, chosen = choose_onnx_int8(conversion.run, conversion.onnx_fp32_proto(),
                                     conversion.settings.onnx_calibration,
                                     conversion.settings.budget)
    row.onnx_calibration = chosen
    data = with_onnx_card(proto, conversion.run, "onnx_int8")
    for line in onnx_recipe_lines(chosen):
        conversion.log(line)
    return data


def onnx_recipe_lines(chosen: dict) -> list[str]:
    """How ONNX int8 was made, for the convert log: a sentence (recipe, calibration, why), then,
    when every recipe was measured (``--onnx-calibration auto``), a small table of each one's
    drop in pp (accuracy, or agreement without labels) and p50 ms with its 90% interval."""
    lines = [f"onnx_int8  recipe {chosen['types']}, calibration {chosen['method']}: "
             f"{chosen['chosen_by']}"]
    if not chosen.get("drop_pp"):
        return lines
    width = max(len(name) for name in chosen["drop_pp"]) + len(" (chosen)")
    indent = " " * len("onnx_int8  ")
    lines.append(f"{indent}{'recipe':<{width}}  drop pp  p50 ms (90% interval)")
    for name, drop in chosen["drop_pp"].items():
        label = f"{name} (chosen)" if name == chosen["types"] else name
        p50, low, high = chosen["p50_ms"][name]
        lines.append(f"{indent}{label:<{width}}  {drop:7.2f}  {p50:.4f} ({low:.4f}-{high:.4f})")
    return lines


def build_onnx_int8_qat(conversion: Conversion, row: ConversionRow) -> bytes:
    """The quantization-aware int8 TFLite file's graph in ONNX
    (:func:`edgecv.converters.onnx.from_tflite`): the ranges and int8 weights QAT learned, run
    by ONNX Runtime. ``row`` gets the QAT record and how many convolutions / matrix products
    ONNX Runtime runs in integer kernels."""
    from edgecv.converters.onnx import from_tflite, integer_kernels

    data, row.qat = conversion.qat_int8()
    proto = from_tflite(data, conversion.settings.opset)
    row.from_file = FORMAT_TABLE["int8_qat"].file
    row.integer_kernels = integer_kernels(proto)
    return with_onnx_card(proto, conversion.run, "onnx_int8_qat")


def choose_onnx_int8(run: RunData, fp32_proto, method: str = "auto",
                     budget: Budget = Budget()):
    """ONNX int8 with ``method`` (minmax, entropy, percentile; U8S8 with 7-bit weights, the
    fast x86 setting) or, for ``auto``, the recipe of
    :func:`edgecv.converters.onnx.to_onnx_int8_best`: the fastest integer-type recipe within
    ``budget`` on :func:`edgecv.converters.verify.check_data`, then its best calibration
    method. Returns (proto, record)."""
    from edgecv.converters import onnx as onnx_converter

    if method not in ONNX_CALIBRATION:
        raise unknown_name("`onnx_calibration` value", method, ONNX_CALIBRATION)
    if method != "auto":
        return onnx_converter.to_onnx_int8(fp32_proto, run.calibration, method=method), {
            "method": method, "types": "u8s8", "chosen_by": "--onnx-calibration"}
    x, y, where, reference = verify.check_data_scores(run)
    proto, record = onnx_converter.to_onnx_int8_best(fp32_proto, run.calibration, x, reference,
                                                     check_y=y, budget=budget)
    return proto, {**record, "chosen_by": f"{record.pop('why')}, measured on the {where}"}


def build_edgetpu(conversion: Conversion, row: ConversionRow) -> bytes:
    """A uint8-I/O full-int8 model, compiled by ``edgetpu_compiler`` when it is on PATH.

    The static compatibility report and the compiler's verdict go into the card's ``extra``
    (and ``edgetpu_report.json``, :func:`verify_edgetpu`)."""
    from edgecv.converters.tflite import to_tflite_int8, with_pixel_input

    run = conversion.run
    data = _integer_only(to_tflite_int8(conversion.int8_reference(), run.calibration, io="uint8",
                                        static_batch=True), "uint8")
    # the pixel input before compiling: the compiler may fold the input's requantization into
    # the Edge TPU op, after which the input's quantization can no longer change
    data = uncompiled = with_pixel_input(data, run.preprocessing)
    report = {"static": edgetpu.static_report(data)}
    compiler = edgetpu.find_compiler()
    if compiler is None:
        report["compiler"] = {"status": "absent",
                              "reason": "edgetpu_compiler not found on PATH; the file is the "
                                        "uncompiled uint8 model, the static report stands"}
    else:
        with tempfile.TemporaryDirectory() as workdir:
            source = Path(workdir) / "model.tflite"
            source.write_bytes(data)
            compiled, parsed, _log = edgetpu.compile_for_edgetpu(source, Path(workdir), compiler)
            data = compiled.read_bytes()
        report["compiler"] = {"status": "compiled", "path": compiler, **parsed}
    return with_tflite_card(data, run, "tflite_edgetpu",
                            {"edgetpu_compiled": compiler is not None, "edgetpu": report},
                            io_from=uncompiled)


# --- verifying ------------------------------------------------------------------------------------

def verify_allowing_flex(conversion: Conversion, row: ConversionRow, path: Path) -> str | None:
    """fp32 / fp16 / dynamic: with ``--select-tf-ops`` the row says whether the file is
    deployable, and a file that needs Flex ops is recorded as not verified when ai-edge-litert
    (which has no Flex delegate) cannot run it."""
    from edgecv.converters.tflite import FLEX_REASON

    if not conversion.settings.select_tf_ops:
        return verify_in_runtime(conversion, row, path)
    extra = read_tflite_card(path.read_bytes()).extra
    row.deployable, row.flex_ops = extra["deployable"], extra["flex_ops"]
    row.deployable_reason = extra.get("reason")
    flex = row.flex_ops
    try:
        return verify_in_runtime(conversion, row, path)
    except (EdgecvError, RuntimeError, ValueError) as exc:
        if not flex:
            raise
        first = " ".join(str(exc).split())[:160]
        row.verified = f"no: {FLEX_REASON} (ai-edge-litert: {first})"
        return (f"not verified: needs Flex ops {', '.join(flex)}; not deployable on "
                "tflite-runtime/ai-edge-litert or the Edge TPU")


EDGETPU_REPORT = "edgetpu_report.json"


def verify_edgetpu(conversion: Conversion, row: ConversionRow, path: Path) -> str | None:
    """Write the compatibility report (``edgetpu_report.json``, a summary in the row); a
    compiled model runs only on an Edge TPU, so it is verified by ``edgecv bench`` there."""
    report = read_tflite_card(path.read_bytes()).extra["edgetpu"]
    write_json_atomic(conversion.out / EDGETPU_REPORT, report)
    row.edgetpu = {"static": report["static"]["summary"],
                   "compiler": report["compiler"]["status"]}
    conversion.log(f"edgetpu    {report['static']['summary']}; compiler: "
                   f"{report['compiler'].get('reason', report['compiler']['status'])}")
    if row.edgetpu["compiler"] == "compiled":
        row.verified = "no: a compiled Edge TPU model runs only on an Edge TPU (edgecv bench)"
        return f"not verified here: {row.verified}"
    return verify_in_runtime(conversion, row, path)


def verify_mcu(conversion: Conversion, row: ConversionRow, path: Path) -> str | None:
    """Run the test split through TFLite Micro and write the rest of the export beside the
    shipped model (:func:`edgecv.converters.mcu.verify_export`); the row gets the figures
    against the reference model, and ``tflm`` (the comparison with LiteRT), ``arena`` and
    ``fit``; mcu.json all of it."""
    from edgecv.converters import mcu
    from edgecv.runtime.boards import fit_text

    source = {"file": FORMAT_TABLE["int8"].file,
              "sha256": hashlib.sha256(conversion.int8_file()).hexdigest()}
    record = mcu.verify_export(row, path, conversion.run, conversion.keras_scores, source,
                               row.plan or {}, list(conversion.settings.mcu_profiles))
    verification = record["verification"]
    row.tflm = {key: value for key, value in verification.items() if key not in (
        "accuracy", "reference_accuracy", "accuracy_drop_pp", "agreement_vs_reference_model")}
    row.arena, row.fit, row.record = (record["arena"], record["fit"],
                                      f"{path.parent.name}/mcu.json")
    indent = " " * len("mcu        ")
    conversion.log(f"mcu        {mcu.arena_text(record)}")
    conversion.log(f"{indent}{mcu.verification_text(verification)}")
    for line in record["fit"]:
        conversion.log(f"{indent}{fit_text(line)}")
    return None


def _check_qat(settings: Settings) -> None:
    qat.check_settings(settings.qat_epochs, settings.qat_lr)


def _check_mcu(settings: Settings) -> None:
    """The mcu extra is installed (TFLite Micro measures the arena and verifies the export)."""
    from edgecv.errors import BackendUnavailable
    from edgecv.runtime.tflm import INSTALL_HINT, NAME, tflm_missing

    if tflm_missing():
        raise BackendUnavailable(NAME, f"tflite-micro is not installed, and `formats=['mcu']` needs it: "
                                 f"{INSTALL_HINT}")


# --- the table ------------------------------------------------------------------------------------

# In the order they are written; fp32 is always written: it is the reference for sizes.
FORMAT_TABLE: dict[str, Format] = {f.name: f for f in (
    Format("fp32", "model_fp32.tflite", build_fp32, verify_allowing_flex, flex=True),
    Format("fp16", "model_fp16.tflite", build_fp16, verify_allowing_flex, flex=True),
    Format("dynamic", "model_dynamic.tflite", build_dynamic, verify_allowing_flex, flex=True),
    Format("int8", "model_int8.tflite", build_int8),
    Format("int8_qat", "model_int8_qat.tflite", build_int8_qat, check=_check_qat),
    Format("int16x8", "model_int16x8.tflite", build_int16x8),
    Format("onnx", "model.onnx", build_onnx),
    Format("onnx_int8", "model_int8.onnx", build_onnx_int8, quiet=True),
    Format("onnx_int8_qat", "model_int8_qat.onnx", build_onnx_int8_qat, check=_check_qat),
    Format("edgetpu", "model_edgetpu.tflite", build_edgetpu, verify_edgetpu),
    # last: its verification (the test split in TFLite Micro, one image at a time) is the longest
    Format("mcu", "mcu/model.tflite", build_mcu, verify_mcu, check=_check_mcu),
)}
# Each post-training int8 format and its quantization-aware twin: written only with --qat
# (minutes of fine-tuning, one run shared by both).
QAT_TWINS = {"int8": "int8_qat", "onnx_int8": "onnx_int8_qat"}
QAT_FORMATS = tuple(QAT_TWINS.values())
# Not part of --all: QAT trains for minutes; mcu needs the mcu extra and runs the test split
# through TFLite Micro's reference kernels.
NOT_IN_ALL = (*QAT_FORMATS, "mcu")


def with_qat(formats: list[str]) -> list[str]:
    """``formats`` and what ``--qat`` adds to them: the QAT TFLite file always, its ONNX twin
    beside ONNX int8."""
    return formats + [twin for fmt, twin in QAT_TWINS.items()
                      if (fmt == "int8" or fmt in formats) and twin not in formats]
# format name -> output file name
FORMATS = {name: spec.file for name, spec in FORMAT_TABLE.items()}
# --select-tf-ops (Flex) is allowed for these only: a full-integer model needs builtin int8
# kernels, and the Edge TPU runs no TensorFlow op.
SELECT_TF_OPS_FORMATS = tuple(name for name, spec in FORMAT_TABLE.items() if spec.flex)


def selected_formats(formats: list[str], settings: Settings) -> list[Format]:
    """The formats to write, in table order, fp32 first; refuses an unknown name, Flex ops for
    a format that cannot have them, bad ``--onnx-calibration`` and each format's own settings
    (``check``), all before anything loads."""
    for name in formats:
        if name not in FORMAT_TABLE:
            raise unknown_name("format", name, FORMAT_TABLE)
    refused = [name for name in formats
               if FORMAT_TABLE[name].file.endswith(".tflite") and not FORMAT_TABLE[name].flex]
    if settings.select_tf_ops and refused:
        raise UsageError(
            f"`select_tf_ops` applies to the fp32, fp16 and dynamic TFLite models only; "
            f"{', '.join(refused)} cannot use Flex ops (a full-integer model needs builtin int8 "
            f"kernels, the Edge TPU runs no TensorFlow op): drop "
            f"`formats={refused}` (or `formats=['all']`).")
    chosen = [spec for name, spec in FORMAT_TABLE.items() if name == "fp32" or name in formats]
    for spec in chosen:
        if spec.check is not None:
            spec.check(settings)
    if settings.onnx_calibration not in ONNX_CALIBRATION:
        raise unknown_name("`onnx_calibration` value", settings.onnx_calibration, ONNX_CALIBRATION)
    return chosen
