"""The training configuration: every knob of a run, validated, and written to ``config.json``.

Fields left as ``None`` mean "the default for this model / dataset" and are resolved by
:func:`resolve` before training, so ``config.json`` always records concrete values.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from edgecv.errors import UsageError, unknown_name
from edgecv.models.tta import TTA_MODES
from edgecv.rundir import RunDir

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
LR_SCHEDULES = ("none", "cosine", "step")
AUGMENT_POLICIES = ("auto", "none", "affine", "crop")
# auto: bfloat16 where the CPU multiplies bfloat16 natively, float32 elsewhere (see precision.py).
PRECISIONS = ("auto", "float32", "bfloat16")
# XLA (Keras' jit_compile): auto is Keras' own choice (on for GPUs/TPUs when the model allows it,
# off on CPU-only machines and under a distribution strategy); on / off force it.
XLA_MODES = ("auto", "on", "off")
# Below this many training images a run takes batch 32 (more updates per epoch on small sets)
# and 20 epochs; at and above it, batch 64, which measured as fast per image on CIFAR-10 and
# halves the steps, and 50 epochs: the CIFAR-10 recipe (train_cifar.json: resnet8 reached 78.4%
# in 20 epochs, 82.4% in 50 epochs, which took 28 minutes on 2 cores in bfloat16).
LARGE_DATASET_IMAGES = 10_000
SMALL_DATASET_EPOCHS, LARGE_DATASET_EPOCHS = 20, 50
# --model auto: the photo recipe (airnet, airbench's ideas) for 3-channel data with at least
# PHOTO_MODEL_MIN_IMAGES training images (on CIFAR-10 in 30 minutes 0.9008 against resnet8's
# 0.826: train_photo_recipe.json, train_cifar.json); resnet8, the microcontroller model, for
# everything else: grayscale data and small photo sets.
DEFAULT_MODEL = "auto"
PHOTO_MODEL, SMALL_MODEL = "airnet", "resnet8"
# From this many training photos --model auto takes airnet: on 1,000 and 5,000 CIFAR-10 photos it
# reached 0.5748 and 0.7787 against resnet8's 0.5077 and 0.6629, and any accuracy resnet8 reached
# as soon (train_small_data.json); below 1,000 nothing was measured, so resnet8 stays.
PHOTO_MODEL_MIN_IMAGES = 1_000
# The recipe of models whose ModelInfo.recipe does not say otherwise.
HOUSE_RECIPE = {"optimizer": "adam", "lr": 3e-3, "label_smoothing": 0.0}
DEFAULT_RUNS_DIR = "runs"
# Channels of the data sources that have a natural value; folders default to RGB.
DATASET_CHANNELS = {"digits": 1, "mnist": 1, "fashion_mnist": 1, "cifar10": 3}


@dataclass
class TrainConfig:
    """All options of ``edgecv train``. ``None`` = model/dataset default (see :func:`resolve`)."""

    data: str = "digits"
    model: str = DEFAULT_MODEL
    model_options: dict | None = None  # the builder's keyword options (ModelInfo.overrides)
    img_size: int | None = None
    channels: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    lr_schedule: str = "cosine"
    warmup_epochs: float = 1.0
    augment: str = "auto"
    flip: bool | None = None
    crop_pad: int | None = None  # crop's padding in pixels; None: the recipe's, else side / 8
    tta: str | None = None  # test-time augmentation inside the saved model; None: the recipe's
    val_split: float | None = None  # None: 15%, at most 2,500 images (data.held_out_fraction)
    test_split: float | None = None
    seed: int = 0
    deterministic: bool = True
    precision: str = "auto"
    xla: str = "auto"
    patience: int = 8
    time_limit: float | None = None  # seconds of training; the epochs that fit (timeplan.py)
    strategy: str = "default"
    weights: str | None = None
    fine_tune_epochs: int = 0
    fine_tune_layers: int = 20
    tensorboard: bool = True
    out: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if isinstance(values.get("augment"), bool):  # runs written before the policy names
            values["augment"] = "affine" if values["augment"] else "none"
        return cls(**values)

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "TrainConfig":
        """Read the ``train`` section of ``RUN/config.json``."""
        run = RunDir(run_dir)
        if not run.is_run():
            raise UsageError(f"'{run_dir}' is not an edgecv run directory (no config.json "
                             "written by edgecv train).")
        return cls.from_dict(json.loads(run.config.read_text(encoding="utf-8"))["train"])


def validate(config: TrainConfig) -> None:
    """Check every option; raise UsageError that echoes the bad value and the accepted range."""
    from edgecv.models import get_model_info, list_models

    if config.model != DEFAULT_MODEL and config.model not in list_models():
        raise unknown_name("model", config.model, [DEFAULT_MODEL] + list_models())
    if config.optimizer is not None and config.optimizer not in OPTIMIZERS:
        raise unknown_name("optimizer", config.optimizer, OPTIMIZERS)
    if config.strategy not in STRATEGIES:
        raise unknown_name("strategy", config.strategy, STRATEGIES)
    if config.lr_schedule not in LR_SCHEDULES:
        raise unknown_name("lr schedule", config.lr_schedule, LR_SCHEDULES)
    if config.augment not in AUGMENT_POLICIES:
        raise unknown_name("augmentation", config.augment, AUGMENT_POLICIES)
    if config.tta is not None and config.tta not in TTA_MODES:
        raise unknown_name("test-time augmentation", config.tta, TTA_MODES)
    if config.precision not in PRECISIONS:
        raise unknown_name("precision", config.precision, PRECISIONS)
    if config.xla not in XLA_MODES:
        raise unknown_name("xla mode", config.xla, XLA_MODES)
    if config.xla == "on" and config.deterministic:
        # Keras would silently train without XLA: it turns jit_compile off under op determinism
        raise UsageError("`xla='on'` needs `deterministic=False`: Keras does not compile with XLA "
                         "while TensorFlow's op determinism is on.")
    checks = [
        (config.epochs is None or config.epochs >= 1,
         f"`epochs` must be at least 1, received {config.epochs}."),
        (config.batch_size is None or config.batch_size >= 1,
         f"`batch_size` must be at least 1, received {config.batch_size}."),
        (config.warmup_epochs >= 0,
         f"`warmup_epochs` must be 0 or more, received {config.warmup_epochs}."),
        (config.lr is None or config.lr > 0, f"`lr` must be positive, received {config.lr}."),
        (config.weight_decay is None or config.weight_decay >= 0,
         f"`weight_decay` must be 0 or more, received {config.weight_decay}."),
        (config.label_smoothing is None or 0 <= config.label_smoothing < 1,
         f"`label_smoothing` must be in [0, 1), received {config.label_smoothing}."),
        (config.patience >= 1, f"`patience` must be at least 1, received {config.patience}."),
        (config.crop_pad is None or config.crop_pad >= 0,
         f"`crop_pad` must be 0 or more pixels, received {config.crop_pad}."),
        (config.fine_tune_epochs >= 0,
         f"`fine_tune_epochs` must be 0 or more, received {config.fine_tune_epochs}."),
        (config.channels in (None, 1, 3), f"`channels` must be 1 or 3, received {config.channels}."),
        (config.time_limit is None or config.time_limit > 0,
         f"`time_limit` must be positive, received {config.time_limit}."),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    if config.time_limit is not None:
        if config.lr_schedule != "cosine":
            raise UsageError(f"`time_limit` sizes the cosine schedule to the time; it needs "
                             f"`lr_schedule='cosine'`, received {config.lr_schedule}.")
        if config.fine_tune_epochs:
            raise UsageError("`time_limit` does not combine with `fine_tune_epochs` (a second "
                             "phase of fixed length); give `epochs` instead.")
        if config.strategy == "multiworker":
            raise UsageError("`time_limit` does not combine with `strategy='multiworker'` (each "
                             "worker would plan from its own clock); give `epochs` instead.")
    if config.model == DEFAULT_MODEL:  # the model-specific checks run once it is chosen
        return
    info = get_model_info(config.model)
    unknown = sorted(set(config.model_options or {}) - set(info.overrides))
    if unknown:
        raise UsageError(f"{config.model} has no option {', '.join(unknown)} (`model_options`); "
                         f"its options: {', '.join(info.overrides) or 'none'}.")
    if config.img_size is not None and config.img_size < info.min_img_size:
        raise UsageError(
            f"`img_size` {config.img_size} is too small for {config.model}; "
            f"it needs at least {info.min_img_size}."
        )
    if (config.weights or config.fine_tune_epochs) and not info.supports_weights:
        supported = [m for m in list_models() if get_model_info(m).supports_weights]
        raise UsageError(
            f"`weights`/`fine_tune_epochs` apply to pretrained bases only; {config.model} has none. "
            f"Use one of: {', '.join(supported)}."
        )
    if config.fine_tune_epochs and not config.weights:
        raise UsageError("`fine_tune_epochs` needs `weights` imagenet|PATH (a pretrained base).")
    if config.weights not in (None, "imagenet") and not Path(config.weights).is_file():
        raise UsageError(f"`weights` file '{config.weights}' does not exist; give imagenet or a path.")


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill the ``None`` fields with the model's and dataset's defaults; validates first.

    ``model='auto'`` becomes a registry name here (:func:`choose_model`), and the optimizer,
    learning rate, label smoothing and weight decay left unset come from that model's recipe
    (``ModelInfo.recipe``, else :data:`HOUSE_RECIPE`).
    """
    from edgecv.data import count_images, dataset_kind, split_fractions
    from edgecv.models import get_model_info

    validate(config)
    kind = dataset_kind(config.data)
    channels = config.channels
    if channels is None:
        channels = 3 if config.weights else DATASET_CHANNELS.get(config.data, 3 if kind == "folder" else 1)
    if config.weights and channels != 3:
        raise UsageError(
            f"pretrained weights need RGB input: received `channels` {channels}, use `channels=3`."
        )
    images = None
    if config.val_split is None or config.test_split is None or config.model == DEFAULT_MODEL:
        images = count_images(config.data)  # once: an archive or folder is scanned for it
    val_split, test_split = split_fractions(config.val_split, config.test_split, images)
    config = replace(config, val_split=val_split, test_split=test_split)
    if config.model == DEFAULT_MODEL:
        config = replace(config, model=choose_model(config, channels, images))
        validate(config)
    info = get_model_info(config.model)
    recipe = {**HOUSE_RECIPE, **info.recipe}  # its batch_size and epochs: resolve_for_data
    img_size = config.img_size or info.default_img_size
    # Photos (3 channels) get the standard pad-crop + flip; digits-like data small affine changes
    # and no flip (a mirrored 2 or 7 is another glyph).
    augment = config.augment if config.augment != "auto" else ("crop" if channels == 3 else "affine")
    flip = config.flip if config.flip is not None else augment == "crop"
    return replace(
        config, img_size=img_size, channels=channels, augment=augment, flip=flip,
        tta=config.tta or recipe.get("tta", "none"),
        crop_pad=(config.crop_pad if config.crop_pad is not None or augment != "crop"
                  else recipe.get("crop_pad", max(1, img_size // 8))),
        optimizer=config.optimizer or recipe["optimizer"],
        lr=config.lr if config.lr is not None else recipe["lr"],
        label_smoothing=(config.label_smoothing if config.label_smoothing is not None
                         else recipe["label_smoothing"]),
        weight_decay=(config.weight_decay if config.weight_decay is not None
                      else recipe.get("weight_decay")))


def parse_model_options(items: list[str]) -> dict:
    """``["widths=[64,192,192]", "whiten=false"]`` -> ``{"widths": [64, 192, 192], "whiten":
    False}``: each value a Python literal (numbers, lists, True/False, also lowercase), else the
    text itself. The builder checks the values."""
    import ast

    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"`model_options` takes KEY=VALUE, received '{item}'.")
        text = text.strip()
        text = {"true": "True", "false": "False", "none": "None"}.get(text.lower(), text)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        options[key.strip()] = value
    return options


def choose_model(config: TrainConfig, channels: int, images: int | None) -> str:
    """``model='auto'``: :data:`PHOTO_MODEL` for 3-channel data whose train split holds at least
    :data:`PHOTO_MODEL_MIN_IMAGES` images, else :data:`SMALL_MODEL`. The split's size is estimated
    from the source's image count ``images`` (:func:`edgecv.data.count_images`, before anything
    is decoded) and the config's split fractions (resolved: not None)."""
    if channels != 3:
        return SMALL_MODEL
    train_fraction = 1.0 - config.val_split - config.test_split
    enough = images is not None and images * train_fraction >= PHOTO_MODEL_MIN_IMAGES
    return PHOTO_MODEL if enough else SMALL_MODEL


def resolve_for_data(config: TrainConfig, train_images: int) -> TrainConfig:
    """Fill the defaults that depend on the training set's size: the batch size and the
    number of epochs (with ``--time-limit`` alone, a cap that the time ends first). From
    :data:`LARGE_DATASET_IMAGES` training images a model's recipe may set both."""
    from edgecv.models import get_model_info
    from edgecv.training.timeplan import TIME_LIMITED_MAX_EPOCHS

    large = train_images >= LARGE_DATASET_IMAGES
    chosen = large and config.model != DEFAULT_MODEL  # (resolve() names the model first)
    recipe = get_model_info(config.model).recipe if chosen else {}
    batch_size = config.batch_size or recipe.get("batch_size") or (64 if large else 32)
    epochs = config.epochs or (TIME_LIMITED_MAX_EPOCHS if config.time_limit else
                               recipe.get("epochs") or
                               (LARGE_DATASET_EPOCHS if large else SMALL_DATASET_EPOCHS))
    return replace(config, batch_size=batch_size, epochs=epochs)


def default_run_dir(config: TrainConfig, runs_dir: str | Path = DEFAULT_RUNS_DIR) -> Path:
    """``runs/<data>-<model>``, numbered ``-2``, ``-3``... so an earlier run is never overwritten."""
    from edgecv.data import dataset_kind

    data_name = Path(config.data).name if dataset_kind(config.data) == "folder" else config.data
    base = Path(runs_dir) / f"{data_name}-{config.model}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate
