"""The ``edgecv`` command line. Heavy imports (TensorFlow, OpenCV, runtimes) happen inside commands,
so ``edgecv --help`` stays instant on any device."""

from __future__ import annotations

import functools
import re
import sys
from contextlib import contextmanager
from typing import Optional

import typer

from edgecv import __version__
from edgecv.errors import EdgecvError
from edgecv.io import echo

def _flags_shown_as_flags(params: list) -> list:
    """``params`` with an empty metavar on every flag: Typer 0.29's help gives each option a type
    column, and ``<bool>`` beside ``--fp16`` or ``--help`` reads as if the flag took a value.
    Options that take one keep their type."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _Command(typer.core.TyperCommand):
    """An edgecv command: its flags show no type in --help (:func:`_flags_shown_as_flags`)."""

    def get_params(self, ctx):
        return _flags_shown_as_flags(super().get_params(ctx))


class _Group(typer.core.TyperGroup):
    """The ``edgecv`` group: ``--version`` and ``--help`` show no type either."""

    def get_params(self, ctx):
        return _flags_shown_as_flags(super().get_params(ctx))


app = typer.Typer(
    cls=_Group,
    name="edgecv",
    help="Train compact image classifiers, quantize them for edge devices, and prove they still "
         "work: accuracy and latency of every artifact.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# The library names a keyword argument in backticks, Keras style (`max_drop`, `deterministic=False`,
# `formats=['int16x8']`); the CLI shows the flag that sets it. A format is a flag of its own.
_ARGUMENT = re.compile(r"`([a-z_][a-z0-9_]*)(?:=([^`]*))?`")
_FORMAT_FLAGS = {"onnx_int8": "--onnx --int8", "int8_qat": "--qat", "onnx_int8_qat": "--qat"}


def _flag(name: str, command: str | None):
    """The option (a click Option) called ``name`` (its Python name) of ``command``, else of any
    command; None if no command has one."""
    commands = typer.main.get_command(app).commands
    own = [param for param in commands[command].params if param.name == name] \
        if command in commands else []
    if own:
        return own[0]  # an option, or an argument (shown as its metavar)
    return next((param for each in commands.values() for param in each.params
                 if param.param_type_name == "option" and param.name == name), None)


def cli_terms(message: str, command: str | None = None) -> str:
    """``message`` with each backticked keyword argument of the library (`max_drop`,
    `deterministic=False`, `formats=['mcu']`) as the flag of ``command`` (else of any command)
    that sets it (--max-drop, --no-deterministic, --mcu); other backticked text is kept."""

    def replace(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if name == "formats" and value:
            names = re.findall(r"[a-z0-9_]+", value)
            return " ".join(_FORMAT_FLAGS.get(n, f"--{n.replace('_', '-')}") for n in names)
        option = _flag(name, command)
        if option is None:
            return match.group(0)
        if option.param_type_name == "argument":
            return (option.metavar or option.name.upper()) if value is None else value
        if value is None or (option.is_flag and value == "True"):
            return option.opts[0]
        if option.is_flag and value == "False":
            return option.secondary_opts[0] if option.secondary_opts else match.group(0)
        return f"{option.opts[0]} {value.strip(chr(39) + chr(34))}"

    return _ARGUMENT.sub(replace, message)


def _fail(message: str, code: int, command: str | None = None) -> None:
    typer.echo(f"error: {cli_terms(message, command)}", err=True)
    raise typer.Exit(code)


def user_errors(command):
    """Turn EdgecvError (a user mistake or an unavailable resource) into one line + exit code,
    in the CLI's terms (:func:`cli_terms`)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgecvError as exc:
            _fail(str(exc), exc.exit_code, command.__name__.removesuffix("_command"))
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


def _log(line: str) -> None:
    """A progress line of the library, in the CLI's terms."""
    echo(cli_terms(line))


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgecv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """edgecv: data -> compact CNN -> quantized artifacts -> verified accuracy and latency."""


@app.command("models", cls=_Command)
@user_errors
def models_command() -> None:
    """List the model registry: name, default input size, description."""
    from rich.console import Console
    from rich.table import Table

    from edgecv.models import get_model_info, list_models

    table = Table("model", "default size", "pretrained base", "options (--model-option)",
                  "description")
    table.columns[0].no_wrap = True  # a name is typed back: never cut
    for name in list_models():
        info = get_model_info(name)
        table.add_row(name, str(info.default_img_size), "yes" if info.supports_weights else "-",
                      ", ".join(info.overrides) or "-", info.description)
    Console().print(table)


# Options that `train` and `pipeline` share: one definition, the same help in both.
DATA_OPTION = typer.Option("digits", help="digits (offline, built in), mnist, fashion_mnist, "
                           "cifar10 (downloaded by Keras), or a folder with one subfolder per class.")
MODEL_OPTION = typer.Option("auto", help="Registry name (see `edgecv models`), or auto: airnet "
                            "(the photo recipe) for 3-channel data of 1,000+ training images, "
                            "resnet8 otherwise.")
IMG_SIZE_OPTION = typer.Option(None, help="Square input size in pixels.",
                               show_default="model default")
CHANNELS_OPTION = typer.Option(None, help="1 (grayscale) or 3 (RGB).",
                               show_default="dataset default")
# edgecv.data.datasets.HELD_OUT_FRACTION and HELD_OUT_IMAGES (not imported: the CLI starts
# without numpy; test_data checks the two agree).
HELD_OUT_DEFAULT = "15%, at most 2,500 images"
SEED_OPTION = typer.Option(0, help="Seed of the split, initialisation and augmentation.")
NAME_OPTION = typer.Option(None, help="Run name: the run goes to runs/NAME.",
                           show_default="DATA-MODEL[-N]")
OUT_OPTION = typer.Option(None, help="Run directory (instead of runs/NAME).")
OVERWRITE_OPTION = typer.Option(False, help="Replace an existing run directory.")
TIME_LIMIT_OPTION = typer.Option(
    None, help="Train for this long instead (30m, 1h30m, 90s): after each epoch, as many epochs "
    "as the time left holds at the mean epoch time, the cosine ending with them; --epochs is "
    "then a cap.", show_default="none: --epochs decide")
MIN_AGREEMENT_OPTION = typer.Option(None, help="Also fail (exit 1) if an artifact's top-1 "
                                    "agrees with the reference model's on fewer than this "
                                    "percent of the test images, e.g. 99 (accuracy can hold "
                                    "while answers change).", show_default="no limit")
RECOVER_OPTION = typer.Option(False, help="If int8 is over budget (--max-drop, "
                              "--min-agreement), keep its worst layers in float or int16 until "
                              "it fits (model_int8_mixed.tflite / .onnx).")
QAT_OPTION = typer.Option(False, "--qat", help="Also quantization-aware fine-tune a "
                          "fake-quantized copy on the training split, distilling from the "
                          "model, then write full int8 with its learned ranges "
                          "(model_int8_qat.tflite, and model_int8_qat.onnx when ONNX int8 is "
                          "written; minutes of training; not part of --all).")
QAT_EPOCHS_OPTION = typer.Option(2, help="--qat: fine-tuning epochs over the training split.")
MCU_PROFILE_OPTION = typer.Option(
    None, "--mcu-profile", metavar="BOARD|RAM,FLASH", help="A board to fit the microcontroller model to (repeatable): "
    "nano33ble, stm32f746disco, esp32s3, pico, sparkfun_edge, or RAM,FLASH such as 256K,1M.",
    show_default="none")


@app.command("train", cls=_Command)
@user_errors
def train_command(
    data: str = DATA_OPTION,
    model: str = MODEL_OPTION,
    model_options: Optional[list[str]] = typer.Option(
        None, "--model-option", metavar="KEY=VALUE", help="An option of the model's builder "
        "(repeatable; `edgecv models` lists them), e.g. widths=[64,192,192], whiten=false, "
        "alpha=0.5.", show_default="none"),
    img_size: Optional[int] = IMG_SIZE_OPTION,
    channels: Optional[int] = CHANNELS_OPTION,
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs (early stopping may end "
                                         "sooner); with --resume, raises the run's epoch count.",
                                         show_default="20; 50 from 10,000 training images"),
    time_limit: Optional[str] = TIME_LIMIT_OPTION,
    batch_size: Optional[int] = typer.Option(
        None, help="Global batch size.",
        show_default="32; 64 from 10,000 training images (airnet: 256)"),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate.",
                                       show_default="3e-3; airnet: 0.4"),
    optimizer: Optional[str] = typer.Option(None, help="adam, adamw, sgd (Nesterov, momentum "
                                            "0.9) or rmsprop.", show_default="adam; airnet: sgd"),
    weight_decay: Optional[float] = typer.Option(
        None, help="Decoupled weight decay: each step scales the weights by 1 - lr x this.",
        show_default="none (0.004 for adamw); airnet: 5e-3"),
    label_smoothing: Optional[float] = typer.Option(
        None, help="Label smoothing of the cross-entropy (0: none).",
        show_default="0; airnet: 0.2"),
    lr_schedule: str = typer.Option("cosine", help="cosine (to 0 over --epochs), step, or none "
                                     "(reduce on plateau)."),
    warmup_epochs: float = typer.Option(1.0, help="Linear learning-rate warm-up before the "
                                        "cosine decay, in epochs (0: none)."),
    augment: str = typer.Option("auto", help="Training augmentation: crop (pad-and-crop, the "
                                "photo standard), affine (rotation/shift/zoom/contrast), none; "
                                "auto: crop for 3-channel data, affine otherwise."),
    flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", help="Random horizontal flips.",
                                        show_default="on with crop, off otherwise"),
    crop_pad: Optional[int] = typer.Option(None, help="Padding of the crop augmentation in "
                                           "pixels (the largest shift; 0: flips only).",
                                           show_default="1/8 of the image side"),
    tta: Optional[str] = typer.Option(None, help="Test-time augmentation computed by the saved "
                                      "model itself: flip (scores of the image and its mirror "
                                      "averaged: twice the latency) or none.",
                                      show_default="none"),
    val_split: Optional[float] = typer.Option(None, help="Fraction of the data for validation.",
                                              show_default=HELD_OUT_DEFAULT),
    test_split: Optional[float] = typer.Option(None, help="Fraction held out for test / "
                                               "verification.", show_default=HELD_OUT_DEFAULT),
    seed: int = SEED_OPTION,
    deterministic: bool = typer.Option(True, help="Deterministic TF ops: the same seed gives the "
                                       "same losses on CPU (measured 0-10% slower)."),
    precision: str = typer.Option("auto", help="float32, or bfloat16 (mixed: float32 weights, "
                                  "bfloat16 compute; the saved model is float32); auto: bfloat16 "
                                  "on CPUs with AMX-BF16/AVX512-BF16 and on TPUs."),
    xla: str = typer.Option("auto", help="XLA compilation of the training step (Keras' "
                            "jit_compile): on, off; auto: Keras' choice (on for GPUs/TPUs, off "
                            "on CPUs)."),
    patience: int = typer.Option(8, help="Early-stopping patience in epochs (on val_loss)."),
    strategy: str = typer.Option("default", help="default, mirrored, multiworker (TF_CONFIG) or tpu."),
    weights: Optional[str] = typer.Option(None, help="imagenet or a local weights file for the "
                                          "pretrained base (mobilenet_v2).", show_default="none"),
    fine_tune_epochs: int = typer.Option(0, help="Epochs with the top of the base unfrozen."),
    fine_tune_layers: int = typer.Option(20, help="How many top base layers fine-tuning unfreezes."),
    tensorboard: bool = typer.Option(True, help="Write TensorBoard logs to RUN/logs."),
    name: Optional[str] = NAME_OPTION,
    out: Optional[str] = OUT_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    resume: bool = typer.Option(False, help="Continue an interrupted run (--out/--name)."),
) -> None:
    """Train a compact CNN and write a run directory (model, labels, config, curves, metrics)."""
    options = dict(locals())
    from edgecv import api
    from edgecv.training.config import parse_model_options

    options["model_options"] = parse_model_options(options["model_options"] or [])
    api.train(**options, log=_log)


@app.command("convert", cls=_Command)
@user_errors
def convert_command(
    source: str = typer.Argument(..., metavar="SOURCE",
                              help="Run directory written by `edgecv train`, or a model: .keras, "
                              ".h5, a SavedModel directory, or a JSON config with --weights; "
                              "or a full-int8 .tflite with --mcu."),
    fp16: bool = typer.Option(False, "--fp16", help="TFLite with float16 weights."),
    dynamic: bool = typer.Option(False, "--dynamic", help="TFLite dynamic-range (int8 weights)."),
    int8: bool = typer.Option(False, "--int8", help="TFLite full-integer int8 (and ONNX int8 "
                              "with --onnx)."),
    int16x8: bool = typer.Option(False, "--int16x8", help="TFLite 16-bit activations, 8-bit weights."),
    onnx: bool = typer.Option(False, "--onnx", help="ONNX via tf2onnx."),
    edgetpu: bool = typer.Option(False, "--edgetpu", help="uint8-I/O int8 model + Edge TPU "
                                 "compatibility report (compiled if edgetpu_compiler is on PATH)."),
    mcu: bool = typer.Option(False, "--mcu", help="The int8 model for a microcontroller "
                             "(TFLite Micro): C++ files, the arena, verified in TFLite Micro, "
                             "in export/mcu (needs the mcu extra; not part of --all)."),
    mcu_profile: Optional[list[str]] = MCU_PROFILE_OPTION,
    all_formats: bool = typer.Option(False, "--all", help="Every format (but --qat and --mcu)."),
    io: str = typer.Option("uint8", help="Input/output type of the int8 TFLite model: uint8 "
                           "(its input the raw pixels: phones' MediaPipe / Task Library, Edge "
                           "TPU, TFLite Micro), int8 (TFLite Micro without the two requantize "
                           "ops at the edges; no standard metadata: phone clients refuse int8 "
                           "input) or float32."),
    calib_samples: int = typer.Option(300, help="Training images used for calibration "
                                      "(stratified: an equal share per class)."),
    calib_data: Optional[str] = typer.Option(None, help="Calibrate on this instead (same forms "
                                             "as --data: digits, a folder, an archive, an .npz; "
                                             "its train split).",
                                             show_default="the run's / --data's train split"),
    onnx_calibration: str = typer.Option("auto", help="ONNX int8 range calibration: minmax, "
                                         "entropy, percentile, or auto (the one that agrees "
                                         "best with the model on the validation split)."),
    opset: int = typer.Option(17, help="ONNX opset."),
    max_drop: float = typer.Option(1.0, help="Fail (exit 1) if an artifact loses more accuracy "
                                   "(agreement, when the data has no labels) than this, in "
                                   "percentage points, vs the reference model."),
    min_agreement: Optional[float] = MIN_AGREEMENT_OPTION,
    recover: bool = RECOVER_OPTION,
    recover_mix: str = typer.Option("auto", help="--recover for TFLite: what the worst layers "
                                    "get: float, int16 (16-bit activations, AI Edge Quantizer) "
                                    "or auto (both made, the faster within budget shipped)."),
    qat: bool = QAT_OPTION,
    qat_epochs: int = QAT_EPOCHS_OPTION,
    qat_lr: float = typer.Option(1e-4, help="--qat: peak learning rate (Adam, cosine to 0)."),
    out: Optional[str] = typer.Option(None, help="Output directory.",
                                      show_default="RUN/export, MODEL-STEM_export, or "
                                      "TFLITE-STEM_mcu"),
    json_out: bool = typer.Option(False, "--json", help="Print conversion.json to stdout instead "
                                  "of the table."),
    select_tf_ops: bool = typer.Option(False, "--select-tf-ops", help="Allow Flex (TensorFlow) "
                                       "ops in fp32/fp16/dynamic; such files are marked not "
                                       "deployable (no tflite-runtime/ai-edge-litert, no Edge TPU)."),
    data: Optional[str] = typer.Option(None, help="Model files: calibration/verification data: "
                                       "digits, mnist, fashion_mnist, cifar10, an image folder, "
                                       "or an .npz with x (and y)."),
    weights: Optional[str] = typer.Option(None, help="Weights file for a JSON config."),
    custom_objects: Optional[str] = typer.Option(None, help="FILE.py[:Class1,Class2] defining "
                                                 "the model's custom layers/models."),
    img_size: Optional[int] = typer.Option(None, help="Model files: input size, if the model "
                                           "does not fix it.", show_default="from the model"),
    channels: Optional[int] = typer.Option(None, help="Model files: 1 or 3, if the model does "
                                           "not fix it.", show_default="from the model"),
    scale: Optional[str] = typer.Option(None, help="Model files: pixel multiplier, e.g. 1/255.",
                                        show_default="1 with --mean/--std alone"),
    mean: Optional[str] = typer.Option(None, help="Model files: mean after scaling, one value "
                                       "or one per channel, e.g. 0.5 or 0.485,0.456,0.406 "
                                       "(without --scale: 0..255 pixel units, e.g. 127.5).",
                                       show_default="0"),
    std: Optional[str] = typer.Option(None, help="Model files: std after scaling, positive "
                                      "(without --scale: 0..255 pixel units).",
                                      show_default="1"),
    labels: Optional[str] = typer.Option(None, help="Model files: labels.txt, one class name "
                                         "per line in output order.",
                                         show_default="the data's classes, else class_i"),
) -> None:
    """Convert a run or a Keras model to verified TFLite and ONNX artifacts.

    TFLite fp32 always; fp16, dynamic, int8, int16x8 and ONNX (fp32, int8) on request, and
    with --mcu the int8 model as C++ files for TFLite Micro (also from a full-int8 .tflite).
    Every artifact carries the model card and is verified on held-out data."""
    options = dict(locals())
    import json as json_module

    from edgecv import api

    json_out = options.pop("json_out")
    flags = {name: options.pop(name) for name in api.FORMAT_FLAGS}
    formats = [name for name, given in flags.items() if given]
    if options.pop("all_formats"):
        formats.append("all")

    def log(line: str) -> None:  # warnings go to stderr, so --json keeps stdout clean
        if line.startswith("warning:"):
            echo(cli_terms(line), err=True)
        elif not json_out:
            echo(cli_terms(line))

    with _status_line() as progress:
        result = api.convert(formats=formats, **options, log=log, progress=progress)
    if json_out:
        typer.echo(json_module.dumps(result.to_dict(), indent=2))


@contextmanager
def _progress_bar():
    """Yields the function that shows a bench row being measured on a transient progress bar
    (stderr); the bar appears with the first row, so an error before it is the only line."""
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    task = None

    def advance(row) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("benchmarking", total=None)
        bar.update(task, description=f"{row.artifact} on {row.target}"
                   + (f" x{row.threads}" if row.threads else ""))

    try:
        yield advance
    finally:
        if task is not None:
            bar.stop()


@contextmanager
def _status_line():
    """A transient spinner on stderr saying what a long command does now (rich), when stderr
    is a terminal; yields the function that updates its text (a no-op otherwise)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda _text: None
        return
    with console.status("starting") as status:
        yield lambda text: status.update(text)


@app.command("inspect", cls=_Command)
@user_errors
def inspect_command(
    source: str = typer.Argument(..., metavar="SOURCE",
                                 help="A run directory, a model file (.keras, .h5, a "
                                 "SavedModel, a .json config with --weights) or a float .tflite."),
    quant: bool = typer.Option(True, "--quant", help="Per-layer quantization error: the TF "
                               "QuantizationDebugger and the AI Edge Quantizer's validation "
                               "(the default, and today the only view: the flag may be left out)."),
    top: int = typer.Option(10, help="How many of the worst layers to print per view."),
    samples: int = typer.Option(64, help="Calibration images used as debug samples."),
    activations: int = typer.Option(8, help="Activation bits for the AI Edge Quantizer's "
                                    "recipe: 8 (int8) or 16 (int16x8)."),
    data: Optional[str] = typer.Option(None, help="Images for a model file or a .tflite (digits, "
                                       "a folder, an archive, an .npz)."),
    scale: Optional[str] = typer.Option(None, help="Normalisation of a model file without a "
                                        "card, e.g. 1/255."),
    mean: Optional[str] = typer.Option(None, help="Per-channel mean, e.g. 0.485,0.456,0.406."),
    std: Optional[str] = typer.Option(None, help="Per-channel std."),
    weights: Optional[str] = typer.Option(None, help="Weights file for a JSON config."),
    custom_objects: Optional[str] = typer.Option(None, help="FILE.py[:Class1,Class2] defining "
                                                 "the model's custom layers/models."),
    out: Optional[str] = typer.Option(None, help="Where the CSV files go.",
                                      show_default="RUN/export, or beside the model"),
    json_out: bool = typer.Option(False, "--json", help="Print the inspection as JSON to stdout "
                                  "instead of the tables (every row of each view)."),
) -> None:
    """Inspect a model: rank the layers that lose most when quantized.

    Two views, worst first, as tables and CSV files: quant_debug.csv (TF QuantizationDebugger:
    RMSE in quantization steps, SQNR; needs the TensorFlow model) and quant_validate.csv (AI
    Edge Quantizer: SNR, cosine similarity, MSE per tensor; works on any float .tflite); for
    a Keras model, the agreement its int8 weights and its int8 activations each keep alone."""
    options = dict(locals())
    import json as json_module

    from edgecv import api

    top, json_out = options.pop("top"), options.pop("json_out")
    result = api.inspect(**options,
                         log=lambda line: typer.echo(cli_terms(line, "inspect"), err=True))
    if json_out:
        typer.echo(json_module.dumps(result.to_dict(), indent=2))
    else:
        _print_inspection(result, top)
    for view, reason in result.skipped.items():
        typer.echo(f"{view} view skipped: {cli_terms(reason, 'inspect')}", err=True)


def _print_inspection(result, top: int) -> None:
    """``edgecv inspect``'s tables: the ``top`` worst rows of each view, the CSVs, the rounding."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if result.debugger is not None:
        rows = result.debugger
        table = Table("op", "tensor", "RMSE/scale", "SQNR dB",
                      title=f"TF QuantizationDebugger: worst {min(top, len(rows))} of "
                            f"{len(rows)} quantized layers (int8)")
        for row in rows[:top]:
            table.add_row(row.op, row.tensor.split(";")[0][-50:], f"{row.rmse_over_scale:.3f}",
                          "-" if row.sqnr_db is None else f"{row.sqnr_db:.1f}")
        console.print(table)
        typer.echo(f"wrote {result.files['debugger']}")
    if result.quantizer is not None:
        rows = result.quantizer
        kind = "int8" if result.activations == 8 else "int16 activations, int8 weights"
        table = Table("op", "tensor", "SNR dB", "cosine", "MSE",
                      title=f"AI Edge Quantizer: worst {min(top, len(rows))} of {len(rows)} "
                            f"tensors ({kind})")
        for row in rows[:top]:
            table.add_row(row.op, row.tensor.split(";")[0][-50:],
                          "-" if row.snr_db is None else f"{row.snr_db:.1f}",
                          f"{row.cosine:.4f}", f"{row.mse:.3g}")
        console.print(table)
        typer.echo(f"wrote {result.files['quantizer']}")
    if result.rounding is not None:
        from edgecv.converters.rounding import rounding_text

        typer.echo(f"int8 rounding apart, on the {result.rounding_on}: "
                   f"{rounding_text(result.rounding)} (16-bit activations mend the activations' "
                   "part; QAT or float layers the weights')")


@app.command("info", cls=_Command)
@user_errors
def info_command(
    model: str = typer.Argument(..., help="A .tflite or .onnx artifact, or a Keras model: .keras, "
                                ".h5, a SavedModel directory, a JSON config with --weights."),
    weights: Optional[str] = typer.Option(None, help="Weights file for a JSON config."),
    custom_objects: Optional[str] = typer.Option(None, help="FILE.py[:Class1,Class2] defining "
                                                 "the model's custom layers/models."),
) -> None:
    """Describe an artifact or a Keras model: card, inputs/outputs, ops, size.

    For a Keras model: its input/output shapes, parameters, layers and any Lambda layers."""
    from edgecv.info import describe, describe_keras
    from edgecv.modelfile.kinds import is_keras_source

    if is_keras_source(model):
        typer.echo(cli_terms(describe_keras(model, weights=weights, custom_objects=custom_objects),
                             "info"))
    else:
        from edgecv.errors import UsageError

        if weights or custom_objects:
            raise UsageError("--weights and --custom-objects apply to Keras models only.")
        typer.echo(cli_terms(describe(model), "info"))


def _warn(lines) -> None:
    for line in lines:
        typer.echo(f"warning: {cli_terms(line)}", err=True)


@app.command("predict", cls=_Command)
@user_errors
def predict_command(
    source: str = typer.Argument(..., metavar="SOURCE", help="A .tflite or .onnx artifact written by edgecv convert, "
                                "or a run / export directory: the artifact and threads its "
                                "bench.json recommends for --target."),
    images: list[str] = typer.Argument(..., metavar="IMAGES", help="Image files and/or folders (searched recursively)."),
    top_k: int = typer.Option(3, "--top-k", help="How many classes to show per image."),
    threshold: float = typer.Option(0.0, help="Hide classes scoring below this."),
    target: str = typer.Option("cpu", help="cpu, gpu or edgetpu."),
    threads: Optional[int] = typer.Option(None, help="CPU threads.", show_default="runtime default"),
    fit: str = typer.Option("crop", help="How an image of another aspect is fitted: crop (centre), "
                            "letterbox or stretch."),
    json_out: bool = typer.Option(False, "--json", help="One JSON line per image instead of a table."),
    checksum: str = typer.Option("warn", help="Compare the file with the SHA-256 recorded at "
                                 "convert time: warn, refuse or off."),
) -> None:
    """Classify image files with an artifact: top-k labels and scores.

    One table row (or with --json one JSON line) per image; an unreadable image is reported
    and the others go on."""
    options = dict(locals())
    import json as json_module

    from edgecv import api

    json_out = options.pop("json_out")
    predictions = api.predict(**options,
                              log=lambda line: echo(cli_terms(line), err=True))
    for prediction in predictions:
        if json_out:
            typer.echo(json_module.dumps(prediction.to_dict()))
        elif prediction.error is not None:
            typer.echo(f"{prediction.path}: error: {prediction.error}")
        else:
            best = "  ".join(f"{c.label} {c.score:.3f}" for c in prediction.top_k) or "-"
            typer.echo(f"{prediction.path}: {best}  ({prediction.ms:.2f} ms)")
    if all(prediction.error is not None for prediction in predictions):
        raise typer.Exit(1)


@app.command("bench", cls=_Command)
@user_errors
def bench_command(
    source: list[str] = typer.Argument(..., metavar="SOURCE", help="Run directories, export directories, model "
                                       "files (.tflite, .onnx, .keras, .h5, .json) or SavedModel "
                                       "directories."),
    targets: str = typer.Option("all", help="Comma list of cpu, gpu, tpu, edgetpu, mcu, or all "
                                "(every one but mcu: TFLite Micro's reference kernels on this "
                                "machine, the arena a microcontroller needs; the mcu extra)."),
    threads: str = typer.Option("1", help="CPU thread counts to sweep, e.g. 1,2,4 or max."),
    mcu_profile: Optional[list[str]] = MCU_PROFILE_OPTION,
    runs: int = typer.Option(100, help="Timed runs per row (at least)."),
    min_time: float = typer.Option(1.0, help="Seconds of timed runs per row (at least, or "
                                   "100,000 runs if they come first)."),
    warmup: int = typer.Option(10, help="Untimed runs before timing."),
    batch: str = typer.Option("1", help="Images per call to sweep, e.g. 1,8,32: throughput "
                              "(images/s) for multi-camera boxes and offline labelling; the "
                              "recommendation uses batch 1."),
    rounds: int = typer.Option(9, help="Interleaved rounds: each round runs every row for a "
                               "share of its runs, so machine noise hits all rows alike."),
    max_drop: Optional[float] = typer.Option(None, help="Accuracy budget (percentage points "
                                             "below the float reference) of the recommended "
                                             "row.", show_default="the budget convert used, else 1.0"),
    data: Optional[str] = typer.Option(None, help="Test set (.npz with uint8 x and y) for accuracy.",
                                       show_default="testset.npz beside the artifacts"),
    keras: bool = typer.Option(True, help="Include a run's model.keras (the reference; needs "
                               "TensorFlow)."),
    checksum: str = typer.Option("warn", help="warn, refuse or off: compare files with the "
                                 "SHA-256 recorded at convert time."),
    custom_objects: Optional[str] = typer.Option(None, help="FILE.py[:Name,...]: custom layers "
                                                 "of a Keras model (as for convert)."),
    weights: Optional[str] = typer.Option(None, help="Weights file of a Keras .json config."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the report as JSON."),
    md_path: Optional[str] = typer.Option(None, "--md", help="Write the report as Markdown."),
    html_path: Optional[str] = typer.Option(None, "--html", help="Write the report as HTML "
                                            "with plots."),
    on: Optional[list[str]] = typer.Option(
        None, "--on", help="Bench on a device: ssh://[user@]host[:port] (your ssh keys and "
        "~/.ssh/config aliases; ?python=PATH for its Python, ?dir=PATH for its file cache, "
        "?cache_days=N&cache_mb=N for how long and how much it keeps, default 30 and 1000), "
        "local (this machine) or local:PYTHON (another environment here). Repeat for several: "
        "they run in parallel, one report with every device's rows.",
        show_default="this machine only"),
    ssh_config: Optional[str] = typer.Option(None, "--ssh-config", help="ssh client config "
                                             "file for --on (ssh -F).",
                                             show_default="~/.ssh/config"),
) -> None:
    """Latency, memory, size and accuracy of every artifact on every target, and which to deploy.

    Init, first, p50 (with its interval over interleaved rounds)/p90/p99 and throughput per
    (artifact, target, threads); a target that is absent here is a row saying why. Opens with
    the recommendation: the fastest row within the accuracy budget, ties to the smaller file.
    With --on, the same on each device (files copied once, checked by SHA-256), rows and
    recommendation per device."""
    options = dict(locals())
    from edgecv import api
    from edgecv.benchmarks.report import print_table

    def log(line: str) -> None:
        typer.echo(cli_terms(line), err=True)

    with _progress_bar() as advance:  # each device's answer is logged instead (on)
        report = api.bench(**options, log=log, progress=None if on else advance)
    record = report.to_dict()
    _warn(record["warnings"])
    print_table(record)
    if report.settings.get("testset") is None and not on:
        typer.echo("note: no test set found, accuracy not measured (give --data)", err=True)
    if report.interrupted:
        _fail("interrupted: the report keeps the devices that finished", 130)
    if report.failed:
        first = report.failed[0]
        where = f"{first.device}: " if first.device else ""
        typer.echo(f"error: {len(report.failed)} row(s) failed: {where}{first.artifact} on "
                   f"{first.target}: {first.reason}", err=True)
        raise typer.Exit(1)


@app.command("pipeline", cls=_Command)
@user_errors
def pipeline_command(
    data: str = DATA_OPTION,
    model: str = MODEL_OPTION,
    img_size: Optional[int] = IMG_SIZE_OPTION,
    channels: Optional[int] = CHANNELS_OPTION,
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs.", show_default="20; 50 from 10,000 training images"),
    time_limit: Optional[str] = TIME_LIMIT_OPTION,
    seed: int = SEED_OPTION,
    name: Optional[str] = NAME_OPTION,
    out: Optional[str] = OUT_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    max_drop: float = typer.Option(1.0, help="Exit 1 (after the report) if an artifact loses "
                                   "more accuracy than this, in percentage points."),
    min_agreement: Optional[float] = MIN_AGREEMENT_OPTION,
    targets: str = typer.Option("all", help="Bench targets: cpu, gpu, tpu, edgetpu, or all."),
    threads: str = typer.Option("1", help="CPU thread counts to sweep, e.g. 1,2 or max."),
    min_time: float = typer.Option(1.0, help="Seconds of timed runs per bench row."),
    recover: bool = RECOVER_OPTION,
    qat: bool = QAT_OPTION,
    qat_epochs: int = QAT_EPOCHS_OPTION,
) -> None:
    """Train, convert, verify and benchmark in one go, with one HTML report.

    Converts to fp32, fp16, int8, ONNX and ONNX int8 (and what --recover and --qat add),
    verifies each on the test split, benchmarks on every target and writes RUN/report.html with
    curves, conversion and latency tables."""
    options = dict(locals())
    from edgecv import api
    from edgecv.benchmarks.report import print_table
    from edgecv.errors import AccuracyDropError

    try:
        result = api.pipeline(**options, log=_log)
        drop_error = None
    except AccuracyDropError as exc:
        if exc.result is None:
            raise
        result, drop_error = exc.result, exc
    record = result.bench.to_dict()
    _warn(record["warnings"])
    print_table(record)
    typer.echo(f"report: {result.report_html}")
    if drop_error is not None:
        raise drop_error


@app.command("camera", cls=_Command)
@user_errors
def camera_command(
    model: str = typer.Argument(..., help="A .tflite or .onnx artifact written by edgecv convert, "
                                "or a run / export directory: the artifact and threads its "
                                "bench.json recommends for --target."),
    source: str = typer.Option("0", help="Camera index (0), video file, folder of images "
                               "(played in sorted order) or stream URL (rtsp://, http://)."),
    top_k: int = typer.Option(3, "--top-k", help="How many classes to show per frame."),
    threshold: float = typer.Option(0.0, help="Hide classes scoring below this."),
    target: str = typer.Option("cpu", help="cpu, gpu or edgetpu."),
    threads: Optional[int] = typer.Option(None, help="CPU threads.", show_default="runtime default"),
    fit: str = typer.Option("crop", help="How a frame of another aspect is fitted: crop (centre), "
                            "letterbox or stretch."),
    labels: Optional[str] = typer.Option(None, help="Text file with one class name per line, "
                                         "instead of the model card's.", show_default="model card"),
    headless: bool = typer.Option(False, "--headless", help="No window: a status line per second "
                                  "on stderr (automatic when there is no display)."),
    record: Optional[str] = typer.Option(None, help="Write the annotated video (.mp4 or .avi)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="One JSON line per frame to this "
                                            "file (then a summary line), or - for stdout."),
    max_frames: Optional[int] = typer.Option(None, help="Stop after this many frames.",
                                             show_default="until the source ends"),
    reconnect: float = typer.Option(10.0, help="Seconds to keep re-opening a lost camera or "
                                    "stream before giving up."),
    open_timeout: float = typer.Option(2.5, help="Seconds a source may take to open and deliver "
                                       "its first frame (raise it for slow RTSP cameras)."),
    checksum: str = typer.Option("warn", help="Compare the file with the SHA-256 recorded at "
                                 "convert time: warn, refuse or off."),
) -> None:
    """Live classifier on a camera, stream, video file or folder of images.

    A window with the top-k labels, FPS and inference time (q/Esc quits, s saves a snapshot),
    or headless with status lines, --record and --json. Ends with a summary."""
    from pathlib import Path

    from edgecv.api import deployment
    from edgecv.camera import CameraSettings, display_problem, parse_source, run_camera
    from edgecv.classify import Classifier
    from edgecv.io import read_labels
    from edgecv.runtime import open_backend
    from edgecv.runtime.targets import parse_targets

    parse_targets(target)
    label_names = read_labels(labels) if labels is not None else None
    settings = CameraSettings(source=parse_source(source), headless=headless, record=record,
                              json_path=json_path, max_frames=max_frames, reconnect_s=reconnect,
                              open_timeout_s=open_timeout)
    try:
        model_file, model_threads = deployment(Path(model), target, threads,
                                               lambda line: typer.echo(cli_terms(line, "camera"), err=True))
        with open_backend(model_file, target=target, threads=model_threads,
                          checksum=checksum) as backend:
            _warn(backend.warnings)
            classifier = Classifier(backend, labels=label_names, fit=fit, k=top_k,
                                    threshold=threshold)
            # after the model is known good: a missing model is one line, not a warning first
            problem = None if settings.headless else display_problem()
            if problem:
                _warn([f"{problem}; running headless."])
                settings.headless = True
            summary = run_camera(classifier, settings,
                                 log=lambda line: typer.echo(cli_terms(line, "camera"), err=True))
    except EdgecvError as exc:
        _exit_if_stuck_in_opencv(f"error: {cli_terms(str(exc), 'camera')}", exc.exit_code)
        raise
    except KeyboardInterrupt:
        _exit_if_stuck_in_opencv("error: interrupted", 130)
        raise
    for line in summary.lines():
        typer.echo(cli_terms(line, "camera"), err=json_path == "-")
    if summary.failure:
        _exit_if_stuck_in_opencv(f"error: {cli_terms(summary.failure, 'camera')}", 1)
        _fail(summary.failure, 1, "camera")
    _exit_if_stuck_in_opencv(None, 0)


def _exit_if_stuck_in_opencv(message: str | None, code: int) -> None:
    """End the process at once if a camera/stream thread is still blocked inside OpenCV: a
    normal interpreter shutdown would abort when that thread returns (edgecv.camera.opencv)."""
    import os

    from edgecv.camera import threads_stuck_in_opencv

    if threads_stuck_in_opencv():
        if message:
            typer.echo(message, err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="edgecv")


if __name__ == "__main__":
    sys.exit(main())
