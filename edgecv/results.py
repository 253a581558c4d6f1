"""What the Python API returns: one typed result per command, each with ``to_dict()`` equal to
the JSON file the command writes (``metrics.json``, ``conversion.json``, ``bench.json``, a
``predict --json`` line, ``mcu.json``) or prints (``inspect --json``).

Plain dataclasses, no heavy imports: a device without TensorFlow reads them too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgecv.benchmarks.row import BenchRow

# conversion.json keys that are not Python names: key -> attribute
_ROW_ATTRIBUTES = {"from": "from_file"}
_ROW_KEYS = {attribute: key for key, attribute in _ROW_ATTRIBUTES.items()}
# A verified row keeps these even when None (no labels: no accuracy, no accuracy drop).
_VERIFIED_FIGURES = ("accuracy", "accuracy_drop_pp")


@dataclass(frozen=True)
class Run:
    """A training run directory (``edgecv train``): its path and ``metrics.json``."""

    path: Path
    metrics: dict

    def to_dict(self) -> dict:
        """``RUN/metrics.json``."""
        return dict(self.metrics)


@dataclass(kw_only=True, slots=True)
class ConversionRow:
    """One artifact of a conversion, as ``conversion.json`` lists it.

    Every file has ``format``, ``file``, ``size_bytes``, ``size_ratio_vs_fp32`` and ``sha256``;
    a verified one its figures against the reference model (``accuracy`` is None when the data
    has no labels; drops are in percentage points). The other fields belong to some formats
    only and are None elsewhere (and absent from ``to_dict()``).

    The conversion fills the row from the moment it starts on the file (the sizes and checksum
    once the file is written) to ``conversion.json``, the only place it becomes a dict: with
    slots, a misspelt field is an AttributeError where it is set, never a new JSON key.
    """

    format: str
    file: str
    size_bytes: int | None = None
    size_ratio_vs_fp32: float | None = None
    sha256: str | None = None
    convert_s: float | None = None
    # verification on the held-out test split
    accuracy: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    disagreements: dict | None = None
    worst_class: dict | None = None
    per_class: list | None = None
    accuracy_drop_pp: float | None = None
    agreement_drop_pp: float | None = None
    verify_s: float | None = None
    verified: str | None = None  # "no: why" when the file could not be run here
    # format-specific records
    deployable: bool | None = None  # fp32/fp16/dynamic with Flex ops (select_tf_ops)
    flex_ops: list | None = None
    deployable_reason: str | None = None
    onnx_calibration: dict | None = None  # onnx_int8: the calibration chosen
    rounding: dict | None = None  # int8 over budget: weights' and activations' rounding apart
    recovered_by: str | None = None  # int8 over budget: the file that fits in its place
    qat: dict | None = None  # *_qat: the fine-tuning
    integer_kernels: dict | None = None
    edgetpu: dict | None = None  # edgetpu: compatibility and compiler
    from_file: str | None = None  # conversion.json's "from": the file this one was made from
    plan: dict | None = None  # mcu: the arena plan shipped
    tflm: dict | None = None  # mcu: verification in TFLite Micro
    arena: dict | None = None
    fit: list | None = None  # mcu: the fit per board profile
    record: str | None = None  # mcu: its mcu.json
    # the mixed int8/float files of recover=True
    mix: str | None = None
    quantizer: str | None = None
    float_tensors: list | None = None
    float_layers: list | None = None
    int16_tensors: list | None = None
    int16_layers: list | None = None
    int16_steps: list | None = None
    steps: list | None = None
    chosen_on: str | None = None
    check_agreement: float | None = None
    check_drop_pp: float | None = None
    alternative: dict | None = None
    p50_ms_1_thread: float | None = None
    latency_cost_vs_int8: float | None = None
    within_budget: bool | None = None
    extra: dict = field(default_factory=dict)  # keys of a newer edgecv, kept as read

    @classmethod
    def from_dict(cls, row: dict) -> ConversionRow:
        """A ``conversion.json`` artifact row; keys this version does not know go to ``extra``."""
        names = {f.name for f in fields(cls)} - {"extra"}
        known, extra = {}, {}
        for key, value in row.items():
            attribute = _ROW_ATTRIBUTES.get(key, key)
            (known if attribute in names else extra)[attribute if attribute in names else key] = value
        return cls(**known, extra=extra)

    def to_dict(self) -> dict:
        """The row as ``conversion.json`` stores it."""
        verified = self.agreement is not None
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                continue
            if value is not None or (verified and f.name in _VERIFIED_FIGURES):
                out[_ROW_KEYS.get(f.name, f.name)] = value
        out.update(self.extra)
        return out


# conversion.json's header keys, in order; the optional ones are left out when None
_CONVERSION_OPTIONAL = ("min_agreement_pct", "source", "folded", "int8_rounded", "select_tf_ops",
                        "incomplete")


@dataclass(kw_only=True)
class Conversion:
    """What ``edgecv.convert`` wrote and verified (``conversion.json``).

    ``artifacts`` holds one :class:`ConversionRow` per file; ``out_dir`` is the folder they are
    in (not part of the JSON)."""

    run: str  # the source: a run directory or a model file
    keras_accuracy: float | None = None
    test_images: int | None = None
    calibration_samples: int | None = None
    calibration: dict | None = None
    int8_io: str | None = None
    opset: int | None = None
    max_drop_pp: float | None = None
    max_drop_applies_to: str | None = None
    min_agreement_pct: float | None = None
    source: dict | None = None  # how a model file was read
    folded: list | None = None  # BatchNormalizations folded across a max pool for export
    # convolutions on the image whose int8 weights were rounded for the data (converters.stem)
    int8_rounded: list | None = None
    select_tf_ops: bool | None = None
    incomplete: str | None = None
    artifacts: list[ConversionRow] = field(default_factory=list)
    out_dir: Path | None = None

    @classmethod
    def from_dict(cls, report: dict, out_dir: Path | None = None) -> Conversion:
        """A ``conversion.json`` as read."""
        values = {key: value for key, value in report.items() if key != "artifacts"}
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"conversion.json has keys this edgecv does not know: "
                             f"{', '.join(sorted(unknown))}")
        return cls(**values, out_dir=out_dir,
                   artifacts=[ConversionRow.from_dict(row) for row in report.get("artifacts", [])])

    def to_dict(self) -> dict:
        """``conversion.json``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("artifacts", "out_dir"):
                continue
            value = getattr(self, f.name)
            if value is not None or f.name not in _CONVERSION_OPTIONAL:
                out[f.name] = value
        out["artifacts"] = [row.to_dict() for row in self.artifacts]
        return out

    def row(self, fmt: str) -> ConversionRow:
        """The row of format ``fmt`` (``"int8"``, ``"onnx"``, ...); KeyError if not converted."""
        for row in self.artifacts:
            if row.format == fmt:
                return row
        raise KeyError(f"no {fmt} artifact in this conversion (it has: "
                       f"{', '.join(r.format for r in self.artifacts)})")

    def path(self, fmt: str) -> Path:
        """The file of format ``fmt``."""
        return Path(self.out_dir or ".") / self.row(fmt).file


@dataclass(frozen=True)
class McuExport:
    """``edgecv.convert(MODEL.tflite, formats=["mcu"])``: the microcontroller export of a
    full-int8 .tflite (``mcu.json``'s record) and its folder."""

    record: dict
    out_dir: Path | None = None

    def to_dict(self) -> dict:
        """``mcu.json``."""
        return dict(self.record)


@dataclass(kw_only=True)
class Recommendation:
    """What to deploy on one target (of one device with ``on=``): the fastest row within the
    accuracy budget, ties to the smaller file; ``summary`` says it in one sentence."""

    device: str | None = None
    target: str
    artifact: str
    path: str
    format: str | None
    runtime: str | None
    threads: int | None
    p50_ms: float
    p50_ci_ms: list[float] | None
    fps: float
    accuracy: float | None
    accuracy_drop_pp: float | None
    size_bytes: int | None
    max_drop_pp: float
    tied_with: list[str] = field(default_factory=list)
    reason: str = ""
    summary: str = ""
    max_drop_from: str | None = None

    @classmethod
    def from_dict(cls, choice: dict) -> Recommendation:
        return cls(**choice)

    def to_dict(self) -> dict:
        """The entry of ``bench.json``'s ``recommendations``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for optional in ("device", "max_drop_from"):
            if out[optional] is None:
                del out[optional]
        return out


@dataclass(kw_only=True)
class BenchReport:
    """What ``edgecv.bench`` measured (``bench.json``): one :class:`BenchRow` per (artifact,
    target, threads, batch[, device]) and one :class:`Recommendation` per target (and device).
    ``interrupted`` is True when ``on=`` devices were interrupted before all finished (not part
    of the JSON)."""

    edgecv_version: str
    created: str
    machine: dict
    settings: dict
    warnings: list[str] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    rows: list[BenchRow] = field(default_factory=list)
    devices: list[dict] | None = None  # with on=: each device's record
    interrupted: bool = False

    @classmethod
    def from_dict(cls, report: dict) -> BenchReport:
        """A ``bench.json`` as read."""
        return cls(edgecv_version=report["edgecv_version"], created=report["created"],
                   machine=report["machine"], settings=report["settings"],
                   warnings=list(report.get("warnings") or []),
                   recommendations=[Recommendation.from_dict(c)
                                    for c in report.get("recommendations") or []],
                   rows=[BenchRow(**row) for row in report.get("rows") or []],
                   devices=report.get("devices"))

    def to_dict(self) -> dict:
        """``bench.json``."""
        out = {"edgecv_version": self.edgecv_version, "created": self.created,
               "machine": self.machine}
        if self.devices is not None:
            out["devices"] = self.devices
        out.update(settings=self.settings, warnings=list(self.warnings),
                   recommendations=[c.to_dict() for c in self.recommendations],
                   rows=[row.to_dict() for row in self.rows])
        return out

    def recommendation(self, target: str = "cpu", device: str | None = None) -> Recommendation:
        """The recommendation for ``target`` (default cpu) on ``device`` (default: this machine,
        else the first device); KeyError if there is none."""
        for choice in self.recommendations:
            if choice.target == target and (device is None or choice.device == device):
                return choice
        raise KeyError(f"no recommendation for target '{target}'"
                       + (f" on device '{device}'" if device else "")
                       + f" (it has: {', '.join(c.target for c in self.recommendations) or 'none'})")

    @property
    def failed(self) -> list[BenchRow]:
        """The rows that should have run and did not."""
        return [row for row in self.rows if row.status == "failed"]


@dataclass(frozen=True)
class PipelineResult:
    """``edgecv.pipeline``: the run, its conversion, the bench and the HTML report's path."""

    run: Run
    conversion: Conversion
    bench: BenchReport
    report_html: Path

    def to_dict(self) -> dict:
        """``RUN/bench.json`` (the run's other files: :attr:`run`, :attr:`conversion`)."""
        return self.bench.to_dict()


@dataclass(frozen=True)
class DebuggerRow:
    """One quantized layer as the TF QuantizationDebugger measures it: a row of
    ``quant_debug.csv``. ``rmse_over_scale``: the RMS error in quantization steps (higher is
    worse); ``sqnr_db``: signal to quantization noise (None when not finite); ``crushed``: the
    share of its live output channels whose RMS is under one quantization step."""

    op: str
    tensor: str
    rmse_over_scale: float
    sqnr_db: float | None
    max_abs_error: float
    scale: float
    crushed: float

    def to_dict(self) -> dict:
        """The row as ``quant_debug.csv`` holds it (its columns, in order)."""
        return asdict(self)


@dataclass(frozen=True)
class QuantizerRow:
    """One tensor of the quantized model against the float one, as the AI Edge Quantizer's
    validation compares them: a row of ``quant_validate.csv``. ``snr_db``: signal to error
    power (higher is better; None when the error is zero), ``cosine``: cosine similarity,
    ``mse``: mean squared error."""

    op: str
    tensor: str
    snr_db: float | None
    cosine: float
    mse: float

    def to_dict(self) -> dict:
        """The row as ``quant_validate.csv`` holds it (its columns, in order)."""
        return asdict(self)


@dataclass(kw_only=True)
class Inspection:
    """What ``edgecv.inspect`` measured: which layers lose most when the model is quantized.

    Each view's rows are ranked worst first, None when that view could not run (``skipped``
    says why): ``debugger`` (TF QuantizationDebugger, :class:`DebuggerRow`) and ``quantizer``
    (AI Edge Quantizer with ``activations``-bit activations, :class:`QuantizerRow`).
    ``rounding``: for a Keras model, the agreement its int8 weights and its int8 activations
    each keep alone, measured on ``rounding_on``. ``images``: where the calibration and sample
    images came from. ``files``: the CSV each view was written to."""

    source: str
    images: str
    activations: int
    debugger: list[DebuggerRow] | None = None
    quantizer: list[QuantizerRow] | None = None
    rounding: dict | None = None
    rounding_on: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The record ``edgecv inspect --json`` prints."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for view in ("debugger", "quantizer"):
            if out[view] is not None:
                out[view] = [row.to_dict() for row in out[view]]
        out["skipped"] = dict(self.skipped)
        out["files"] = {view: str(path) for view, path in self.files.items()}
        return out
