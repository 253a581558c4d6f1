"""The ``edgecv`` command line. Heavy imports (TensorFlow, OpenCV, runtimes) happen inside commands,
so ``edgecv --help`` stays instant on any device."""

from __future__ import annotations

import functools
import sys
from typing import Optional

import typer

from edgecv import __version__
from edgecv.errors import EdgecvError

app = typer.Typer(
    name="edgecv",
    help="Train compact image classifiers, quantize them for edge devices, and prove they still "
         "work: accuracy and latency of every artifact.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(command):
    """Turn EdgecvError (a user mistake or an unavailable resource) into one line + exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgecvError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


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


@app.command("models")
@user_errors
def models_command() -> None:
    """List the model registry: name, default input size, description."""
    from rich.console import Console
    from rich.table import Table

    from edgecv.models import get_model_info, list_models

    table = Table("model", "default size", "pretrained base", "description")
    for name in list_models():
        info = get_model_info(name)
        table.add_row(name, str(info.default_img_size), "yes" if info.supports_weights else "-",
                      info.description)
    Console().print(table)


@app.command("train")
@user_errors
def train_command(
    data: str = typer.Option("digits", help="digits (offline, built in), mnist, fashion_mnist, "
                             "cifar10 (downloaded by Keras), or a folder with one subfolder per class."),
    model: str = typer.Option("resnet8", help="Registry name; see `edgecv models`."),
    img_size: Optional[int] = typer.Option(None, help="Square input size in pixels.",
                                           show_default="model default"),
    channels: Optional[int] = typer.Option(None, help="1 (grayscale) or 3 (RGB).",
                                           show_default="dataset default"),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs (early stopping may end "
                                         "sooner); with --resume, raises the run's epoch count.",
                                         show_default="20"),
    batch_size: int = typer.Option(32, help="Global batch size."),
    lr: float = typer.Option(3e-3, help="Initial learning rate."),
    optimizer: str = typer.Option("adam", help="adam, adamw, sgd or rmsprop."),
    lr_schedule: str = typer.Option("cosine", help="cosine (to 0 over --epochs), step, or none "
                                     "(reduce on plateau)."),
    augment: bool = typer.Option(True, help="Rotation/shift/zoom/contrast on training batches."),
    flip: bool = typer.Option(False, help="Add horizontal flips to the augmentation."),
    val_split: float = typer.Option(0.15, help="Fraction of the data for validation."),
    test_split: float = typer.Option(0.15, help="Fraction held out for test / verification."),
    seed: int = typer.Option(0, help="Seed of the split, initialisation and augmentation."),
    deterministic: bool = typer.Option(True, help="Deterministic TF ops: the same seed gives the "
                                       "same losses on CPU (measured 0-10% slower)."),
    patience: int = typer.Option(8, help="Early-stopping patience in epochs (on val_loss)."),
    strategy: str = typer.Option("default", help="default, mirrored, multiworker (TF_CONFIG) or tpu."),
    weights: Optional[str] = typer.Option(None, help="imagenet or a local weights file for the "
                                          "pretrained base (mobilenet_v2).", show_default="none"),
    fine_tune_epochs: int = typer.Option(0, help="Epochs with the top of the base unfrozen."),
    fine_tune_layers: int = typer.Option(20, help="How many top base layers fine-tuning unfreezes."),
    tensorboard: bool = typer.Option(True, help="Write TensorBoard logs to RUN/logs."),
    name: Optional[str] = typer.Option(None, help="Run name: the run goes to runs/NAME.",
                                       show_default="DATA-MODEL[-N]"),
    out: Optional[str] = typer.Option(None, help="Run directory (instead of runs/NAME)."),
    overwrite: bool = typer.Option(False, help="Replace an existing run directory."),
    resume: bool = typer.Option(False, help="Continue an interrupted run (--out/--name)."),
) -> None:
    """Train a compact CNN and write a run directory (model, labels, config, curves, metrics)."""
    from edgecv.errors import UsageError
    from edgecv.training import TrainConfig, train

    if name and out:
        raise UsageError("give either --name or --out, not both.")
    if name and ("/" in name or name in (".", "..")):
        raise UsageError(f"--name must be a plain name, received '{name}'; use --out for a path.")
    config = TrainConfig(
        data=data, model=model, img_size=img_size, channels=channels,
        epochs=TrainConfig.epochs if epochs is None else epochs,
        batch_size=batch_size, lr=lr, optimizer=optimizer, lr_schedule=lr_schedule,
        augment=augment, flip=flip, val_split=val_split, test_split=test_split, seed=seed,
        deterministic=deterministic,
        patience=patience, strategy=strategy, weights=weights, fine_tune_epochs=fine_tune_epochs,
        fine_tune_layers=fine_tune_layers, tensorboard=tensorboard,
        out=out or (f"runs/{name}" if name else None),
    )
    train(config, overwrite=overwrite, resume=resume, resume_epochs=epochs, log=typer.echo)



@app.command("convert")
@user_errors
def convert_command(
    run: str = typer.Argument(..., help="Run directory written by `edgecv train`."),
    fp16: bool = typer.Option(False, "--fp16", help="TFLite with float16 weights."),
    dynamic: bool = typer.Option(False, "--dynamic", help="TFLite dynamic-range (int8 weights)."),
    int8: bool = typer.Option(False, "--int8", help="TFLite full-integer int8 (and ONNX int8 "
                              "with --onnx)."),
    int16x8: bool = typer.Option(False, "--int16x8", help="TFLite 16-bit activations, 8-bit weights."),
    onnx: bool = typer.Option(False, "--onnx", help="ONNX via tf2onnx."),
    edgetpu: bool = typer.Option(False, "--edgetpu", help="uint8-I/O int8 model + Edge TPU "
                                 "compatibility report (compiled if edgetpu_compiler is on PATH)."),
    all_formats: bool = typer.Option(False, "--all", help="Every format."),
    io: str = typer.Option("int8", help="Input/output type of the int8 TFLite model: int8, uint8 "
                           "or float32."),
    calib_samples: int = typer.Option(300, help="Training images used for calibration."),
    opset: int = typer.Option(17, help="ONNX opset."),
    max_drop: float = typer.Option(1.0, help="Fail (exit 1) if an artifact loses more accuracy "
                                   "than this, in percentage points, vs the Keras model."),
    recover: bool = typer.Option(False, help="If int8 drops more than --max-drop, keep its worst "
                                 "layers in float until it fits (model_int8_mixed.tflite)."),
    out: Optional[str] = typer.Option(None, help="Output directory.", show_default="RUN/export"),
    json_out: bool = typer.Option(False, "--json", help="Print conversion.json to stdout instead "
                                  "of the table."),
) -> None:
    """Convert a run to TFLite (fp32 always; fp16, dynamic, int8, int16x8) and ONNX (fp32, int8),
    embed the model card, and verify every artifact on the held-out test split."""
    import json as json_module

    from edgecv.converters.convert import FORMATS, convert_run

    if all_formats:
        formats = list(FORMATS)
    else:
        formats = [name for name, wanted in (("fp16", fp16), ("dynamic", dynamic), ("int8", int8),
                                             ("int16x8", int16x8), ("onnx", onnx),
                                             ("onnx_int8", onnx and int8), ("edgetpu", edgetpu))
                   if wanted]
    log = (lambda _line: None) if json_out else typer.echo
    report = convert_run(run, formats, out_dir=out, io=io, calib_samples=calib_samples,
                         opset=opset, max_drop=max_drop, recover=recover, log=log)
    if json_out:
        typer.echo(json_module.dumps(report, indent=2))


@app.command("inspect")
@user_errors
def inspect_command(
    run: str = typer.Argument(..., help="Run directory written by `edgecv train`."),
    quant: bool = typer.Option(False, "--quant", help="Per-layer int8 quantization error "
                               "(tf.lite QuantizationDebugger)."),
    top: int = typer.Option(10, help="How many of the worst layers to print."),
    samples: int = typer.Option(64, help="Calibration images used as debug samples."),
    out: Optional[str] = typer.Option(None, help="Where quant_debug.csv goes.",
                                      show_default="RUN/export"),
) -> None:
    """Inspect a run. --quant: which layers lose most in int8 (RMSE/scale, SQNR), worst first,
    as a table and in quant_debug.csv."""
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from edgecv.converters.convert import load_run
    from edgecv.converters.quant_debug import layer_errors, write_csv
    from edgecv.errors import UsageError

    if not quant:
        raise UsageError("say what to inspect: edgecv inspect --quant RUN.")
    loaded = load_run(run, calib_samples=max(samples, 100))
    rows = layer_errors(loaded.model, loaded.calibration, loaded.calibration[:samples])
    path = Path(out) if out else Path(run) / "export"
    write_csv(rows, path / "quant_debug.csv")
    table = Table("op", "tensor", "RMSE/scale", "SQNR dB", title=f"worst {min(top, len(rows))} "
                  f"of {len(rows)} quantized layers")
    for row in rows[:top]:
        table.add_row(row["op"], row["tensor"].split(";")[0][-50:], f"{row['rmse_over_scale']:.3f}",
                      "-" if row["sqnr_db"] is None else f"{row['sqnr_db']:.1f}")
    Console().print(table)
    typer.echo(f"wrote {path / 'quant_debug.csv'}")


@app.command("info")
@user_errors
def info_command(model: str = typer.Argument(..., help="A .tflite or .onnx file.")) -> None:
    """Print an artifact's model card, inputs/outputs, operator counts and size."""
    from edgecv.info import describe

    typer.echo(describe(model))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="edgecv")


if __name__ == "__main__":
    sys.exit(main())
