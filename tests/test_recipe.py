"""The training recipe: augmentation policies, per-data defaults, the warm-up + cosine schedule,
the streamed input pipeline and the progress line. Real TensorFlow ops on real photos."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgecv.training.config import TrainConfig, resolve, resolve_for_data
from edgecv.training.recipe import format_duration

FIXTURE = Path(__file__).parent / "data" / "cifar10_mini"


def test_auto_augmentation_is_crop_and_flip_for_photos_affine_for_digits():
    photos = resolve(TrainConfig(data=str(FIXTURE), model="resnet8"))
    assert (photos.channels, photos.augment, photos.flip) == (3, "crop", True)
    digits = resolve(TrainConfig(data="digits", model="resnet8"))
    assert (digits.channels, digits.augment, digits.flip) == (1, "affine", False)
    chosen = resolve(TrainConfig(data=str(FIXTURE), augment="none", flip=False))
    assert (chosen.augment, chosen.flip) == ("none", False)


def test_unknown_augmentation_echoes_the_value():
    from edgecv.errors import UsageError

    with pytest.raises(UsageError, match="'mixup'"):
        resolve(TrainConfig(augment="mixup"))


def test_batch_size_and_epochs_defaults_follow_the_training_set_size():
    small, large = resolve_for_data(TrainConfig(), 1_200), resolve_for_data(TrainConfig(), 35_000)
    assert (small.batch_size, small.epochs) == (32, 20)
    assert (large.batch_size, large.epochs) == (64, 50)  # the CIFAR-10 recipe
    chosen = resolve_for_data(TrainConfig(batch_size=16, epochs=3), 35_000)
    assert (chosen.batch_size, chosen.epochs) == (16, 3)


def test_runs_written_with_a_boolean_augment_still_load():
    assert TrainConfig.from_dict({"augment": True}).augment == "affine"
    assert TrainConfig.from_dict({"augment": False}).augment == "none"


def test_format_duration():
    assert [format_duration(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]


def test_onednn_is_asked_for_on_x86_only_and_never_over_the_users_choice(monkeypatch):
    from edgecv.tf_import import tensorflow_environment

    assert tensorflow_environment("x86_64")["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert tensorflow_environment("AMD64")["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert "TF_ENABLE_ONEDNN_OPTS" not in tensorflow_environment("aarch64")


@pytest.mark.tf
@pytest.mark.parametrize("user_value, expected", [(None, None), ("0", False)])
def test_tensorflow_imported_by_edgecv_runs_onednn_unless_the_user_said_no(user_value, expected):
    """The real switch TensorFlow reads, in a fresh process (it reads the variable once)."""
    import os
    import platform
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if user_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user_value
    code = ("from edgecv.tf_import import import_tensorflow; import_tensorflow()\n"
            "from tensorflow.python.util import _pywrap_util_port as port\n"
            "print(port.IsMklEnabled())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()[-1]
    if expected is None:  # the default: on for x86-64, TensorFlow's own choice elsewhere
        if platform.machine().lower() not in ("x86_64", "amd64"):
            pytest.skip("oneDNN default only changes on x86-64")
        expected = True
    assert out == str(expected)


@pytest.mark.tf
def test_crop_flip_gives_shifted_windows_of_each_image_reproducibly():
    import tensorflow as tf

    from edgecv.data.folder import scan_and_load
    from edgecv.training.recipe import random_crop_flip

    images = scan_and_load(FIXTURE, (32, 32, 3))[1][:16].astype(np.float32)
    seed = tf.constant([3, 7], tf.int64)
    out = random_crop_flip(tf.constant(images), seed, pad=4, flip=True).numpy()
    again = random_crop_flip(tf.constant(images), seed, pad=4, flip=True).numpy()
    other = random_crop_flip(tf.constant(images), tf.constant([4, 7], tf.int64), pad=4,
                             flip=True).numpy()
    assert out.shape == images.shape
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, other)
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    mirrored, shifted = 0, 0
    for image, crop in zip(padded, out):
        windows = [(image[dy:dy + 32, dx:dx + 32], dy, dx)
                   for dy in range(9) for dx in range(9)]
        match = [(dy, dx, False) for w, dy, dx in windows if np.array_equal(w, crop)]
        match += [(dy, dx, True) for w, dy, dx in windows if np.array_equal(w[:, ::-1], crop)]
        assert match, "every output is a window of the padded image, maybe mirrored"
        mirrored += any(m[2] for m in match)
        shifted += any((m[0], m[1]) != (4, 4) for m in match)
    assert 0 < mirrored < 16 and shifted > 8  # both transforms really happen, per image


@pytest.mark.tf
def test_cosine_schedule_warms_up_then_decays_to_zero():
    from edgecv.training.recipe import learning_rate

    config = TrainConfig(lr=0.1, epochs=10, warmup_epochs=1.0)
    schedule = learning_rate(config, steps_per_epoch=100)
    rate = [float(schedule(step)) for step in (0, 50, 100, 550, 1000)]
    assert rate[0] == pytest.approx(0.01)
    assert rate[1] == pytest.approx(0.055, rel=1e-3)  # linear warm-up
    assert rate[2] == pytest.approx(0.1)
    assert rate[3] == pytest.approx(0.05, rel=1e-3)  # half way through the cosine
    assert rate[4] == pytest.approx(0.0, abs=1e-9)
    assert learning_rate(TrainConfig(lr=0.1, lr_schedule="step"), 100) == 0.1


@pytest.mark.tf
@pytest.mark.slow
def test_photos_train_with_crop_flip_and_the_streamed_path(tmp_path, monkeypatch):
    """A real run on the photo fixture, once in memory and once streamed from disk."""
    from edgecv.training import train

    lines = []
    base = dict(data=str(FIXTURE), model="ds_cnn", img_size=32, epochs=2, tensorboard=False,
                seed=1)
    memory = train(TrainConfig(**base, out=str(tmp_path / "memory")), log=lines.append)
    monkeypatch.setenv("EDGECV_MAX_MEMORY_BYTES", "0")
    streamed = train(TrainConfig(**base, out=str(tmp_path / "streamed")), log=lines.append)
    for result in (memory, streamed):
        config = json.loads((result.run_dir / "config.json").read_text())["train"]
        assert (config["augment"], config["flip"], config["batch_size"]) == ("crop", True, 32)
        assert (result.run_dir / "model.keras").is_file()
    assert json.loads((streamed.run_dir / "config.json").read_text())["data"]["streamed"]
    # Same seed, same files, same order and augmentation: the streamed run learns the same.
    assert streamed.metrics["test_accuracy"] == pytest.approx(memory.metrics["test_accuracy"],
                                                              abs=0.02)
    epoch_lines = [line for line in lines if line.startswith("epoch")]
    assert "eta" in epoch_lines[0] and "eta" not in epoch_lines[1]


def test_auto_precision_is_bfloat16_only_where_the_hardware_has_it():
    from edgecv.training.precision import resolve_precision

    amx = {"avx2", "avx512f", "amx_bf16", "amx_tile"}
    avx2 = {"avx2", "fma"}
    assert resolve_precision("auto", flags=amx, gpus=0, strategy="default")[0] == "bfloat16"
    assert resolve_precision("auto", flags={"avx512_bf16"}, gpus=0, strategy="default")[0] == "bfloat16"
    precision, reason = resolve_precision("auto", flags=avx2, gpus=0, strategy="default")
    assert precision == "float32" and "no native bfloat16" in reason
    assert resolve_precision("auto", flags=amx, gpus=1, strategy="default")[0] == "float32"
    assert resolve_precision("auto", flags=avx2, gpus=0, strategy="tpu")[0] == "bfloat16"
    # What the user asks for is kept, whatever the machine.
    assert resolve_precision("bfloat16", flags=avx2, gpus=0, strategy="default")[0] == "bfloat16"
    assert resolve_precision("float32", flags=amx, gpus=0, strategy="default")[0] == "float32"


def test_unknown_precision_is_one_line_exit_2(tmp_path):
    from conftest import run_cli

    result = run_cli("train", "--precision", "fp8", "--out", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 2
    assert "'fp8'" in result.stderr and "bfloat16" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


@pytest.mark.tf
@pytest.mark.slow
def test_bfloat16_training_computes_in_bfloat16_and_saves_a_float32_model(tmp_path):
    """Mixed bfloat16 changes the arithmetic of training (other losses than float32 from the
    same seed), and what is saved, tested and converted is a float32 model."""
    import keras

    from edgecv.modelfile.keras_file import load_keras_model
    from edgecv.preprocessing import Preprocessing
    from edgecv.data import load_dataset
    from edgecv.training import train

    data = load_dataset(str(FIXTURE), 32, 32, 3, seed=0)
    runs = {}
    for precision in ("float32", "bfloat16"):
        runs[precision] = train(TrainConfig(data=str(FIXTURE), model="resnet8", epochs=1,
                                            precision=precision, tensorboard=False,
                                            out=str(tmp_path / precision)), log=lambda _: None)
    losses = {}
    for precision, result in runs.items():
        config = json.loads((result.run_dir / "config.json").read_text())
        assert config["train"]["precision"] == precision
        losses[precision] = (result.run_dir / "history.csv").read_text().splitlines()[1]
        model = load_keras_model(result.run_dir / "model.keras")
        assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
        assert keras.mixed_precision.global_policy().name == "float32"  # restored
        pre = Preprocessing.from_dict(config["preprocessing"])
        scores = model.predict(pre.normalize(data.test.x), verbose=0)
        assert scores.dtype == np.float32
        # metrics.json's test accuracy is the saved float32 model's.
        assert float((scores.argmax(1) == data.test.y).mean()) == pytest.approx(
            result.metrics["test_accuracy"], abs=1e-9)
    assert losses["float32"] != losses["bfloat16"]


def test_xla_on_with_op_determinism_is_refused_in_one_line(tmp_path):
    """Keras silently drops jit_compile under TensorFlow's op determinism (edgecv's default);
    edgecv says so instead of training without the XLA the user asked for."""
    from conftest import run_cli

    result = run_cli("train", "--xla", "on", "--out", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 2
    assert "--no-deterministic" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
    result = run_cli("train", "--xla", "fast", "--out", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 2 and "'fast'" in result.stderr and "auto" in result.stderr


@pytest.mark.tf
@pytest.mark.slow
def test_xla_on_compiles_the_training_step(tmp_path):
    """--xla on (without op determinism) trains with Keras' jit_compile really on (Keras turns
    it off, with a warning only, when the model or the settings do not allow it) and records it.
    Op determinism is process-wide: a deterministic run earlier in the process (here, on
    purpose) must not leak into this one."""
    from edgecv.tf_import import import_tensorflow
    from edgecv.training import train

    import_tensorflow().config.experimental.enable_op_determinism()
    lines = []
    result = train(TrainConfig(data=str(FIXTURE), model="resnet8", epochs=1, xla="on",
                               deterministic=False, tensorboard=False, out=str(tmp_path / "run")),
                   log=lines.append)
    model_line = next(line for line in lines if line.startswith("model:"))
    assert "xla: on (`xla='on'`)" in model_line, model_line
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["train"]["xla"] == "on"
    assert np.isfinite(result.metrics["test_accuracy"])


def test_bad_weight_decay_or_label_smoothing_is_one_line_exit_2(tmp_path):
    from conftest import run_cli

    for flag, value, words in (("--weight-decay", "-0.1", "0 or more"),
                               ("--label-smoothing", "1", "[0, 1)")):
        result = run_cli("train", flag, value, "--out", tmp_path / "run", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert flag in result.stderr and value in result.stderr and words in result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


@pytest.mark.tf
def test_weight_decay_and_label_smoothing_reach_the_compiled_model():
    """The options change the training arithmetic: the optimizer decays each weight by
    lr x weight_decay per step (decoupled: also where the gradient is 0), and the loss is the
    cross-entropy against smoothed one-hot targets."""
    import keras

    from edgecv.training.trainer import compile_model

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="softmax")])
    compile_model(model, TrainConfig(optimizer="sgd", weight_decay=0.5, label_smoothing=0.2,
                                     xla="off"), 0.1)
    kernel = model.layers[0].kernel
    before = keras.ops.convert_to_numpy(kernel).copy()
    model.optimizer.apply_gradients([(keras.ops.zeros_like(kernel), kernel)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), before * (1 - 0.1 * 0.5),
                               rtol=1e-6)

    scores = np.array([[0.7, 0.1, 0.1, 0.1]], dtype="float32")
    target = np.full(4, 0.2 / 4) + np.eye(4)[0] * 0.8
    expected = -(target * np.log(scores[0])).sum()
    loss = model.loss(np.array([0]), scores)
    assert keras.ops.convert_to_numpy(loss) == pytest.approx([expected], rel=1e-5)
    # the house recipe's defaults: no decay, no smoothing
    compile_model(model, resolve(TrainConfig(model="resnet8", xla="off")), 0.1)
    assert model.optimizer.weight_decay is None and model.loss == "sparse_categorical_crossentropy"


# --- --time-limit ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("1h30m", 5400), ("90s", 90),
                                           ("1800", 1800), ("2.5m", 150), ("1h", 3600)])
def test_time_limit_reads_the_usual_duration_forms(text, seconds):
    from edgecv.training.timeplan import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5m", "soon", "30x", "m"])
def test_a_bad_time_limit_is_one_usage_error(text):
    from edgecv.errors import UsageError
    from edgecv.training.timeplan import parse_duration

    with pytest.raises(UsageError, match="`time_limit` must be a positive duration"):
        parse_duration(text)


def test_time_plan_fits_the_epochs_the_time_left_holds():
    from edgecv.training.timeplan import TimePlan

    plan = TimePlan(limit_s=100, max_epochs=1000)
    assert plan.planned == 1000 and not plan.finished  # nothing measured: the cap
    assert plan.epoch_done(20) == 5  # the first epoch (tracing) alone: 1 + 80 // 20
    assert plan.epoch_done(10) == 9  # steady epochs of 10 s, the first left out: 2 + 70 // 10
    for _ in range(6):
        plan.epoch_done(10)
    assert (plan.planned, plan.finished) == (9, False)
    plan.epoch_done(10)  # 9 epochs, 100 s: the time is used up
    assert plan.finished and plan.used_s == pytest.approx(100)
    slower = TimePlan(limit_s=100, max_epochs=1000)
    slower.epoch_done(10), slower.epoch_done(10)
    assert slower.epoch_done(40) == 4  # a slow epoch moves the end nearer: 3 + 40 // 25
    capped = TimePlan(limit_s=1e6, max_epochs=4)
    assert capped.epoch_done(1) == 4  # --epochs caps the plan
    late = TimePlan(limit_s=10, max_epochs=100)
    assert late.epoch_done(30) == 1 and late.finished  # over the limit: stop after this epoch


def test_a_resumed_time_plan_counts_the_time_already_trained():
    from edgecv.training.timeplan import TimePlan

    plan = TimePlan(limit_s=100, max_epochs=1000, durations=[20, 10, 10])
    # 40 s used; epoch 0 (tracing) left out of the mean: 3 + 60 // 10
    assert (plan.done, plan.planned) == (3, 9)
    assert plan.epoch_done(25) == 7  # its first epoch here traces again: 4 + 35 // 10


def test_time_limit_options_that_cannot_combine_are_refused():
    from edgecv.errors import UsageError

    for changes, fragment in [({"lr_schedule": "step"}, "needs `lr_schedule='cosine'`"),
                              ({"strategy": "multiworker"}, "multiworker"),
                              ({"time_limit": -1.0}, "`time_limit` must be positive")]:
        with pytest.raises(UsageError, match=fragment):
            resolve(TrainConfig(**{"time_limit": 60.0, **changes}))
    assert resolve_for_data(TrainConfig(time_limit=60.0), 1_200).epochs == 10_000  # a cap
    assert resolve_for_data(TrainConfig(time_limit=60.0, epochs=7), 1_200).epochs == 7


@pytest.mark.tf
def test_time_limited_cosine_is_keras_cosine_until_the_plan_moves_its_end():
    from edgecv.training.recipe import learning_rate

    fixed = learning_rate(TrainConfig(lr=0.1, epochs=10), steps_per_epoch=100)
    timed = learning_rate(TrainConfig(lr=0.1, epochs=10, time_limit=60.0), steps_per_epoch=100)
    steps = (0, 50, 100, 300, 550, 999, 1000, 1500)
    assert [float(timed(s)) for s in steps] == pytest.approx([float(fixed(s)) for s in steps],
                                                               abs=1e-6)
    timed.total_steps.assign(500.0)  # the time holds 5 epochs, not 10
    assert float(timed(300)) == pytest.approx(0.05, rel=1e-3)  # now half way
    assert float(timed(500)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.tf
@pytest.mark.slow
def test_training_with_a_time_limit_ends_its_cosine_within_the_time(tmp_path):
    """A real run: the epochs are planned from the measured epoch time, training stops when they
    are done (well before the --epochs cap), within the limit plus one epoch, and the learning
    rate of the last step is near 0: the cosine was fitted to the time, not cut off.
    Two epochs need the limit to hold twice the first one, which traces the graph: 2-3 s alone,
    8 s on a 2-core machine running five other test processes, 14.9 s at a load of 15 (a limit
    that holds one epoch leaves its cosine sized for the --epochs cap), so the limit is 40 s."""
    from conftest import run_cli

    run = tmp_path / "run"
    result = run_cli("train", "--model", "seed_cnn", "--img-size", "16", "--no-tensorboard",
                     "--epochs", "500", "--patience", "500", "--time-limit", "40s",
                     "--out", run)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "time limit 40s:" in result.stdout
    lines = (run / "history.csv").read_text().splitlines()
    rows = [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    seconds = [float(r["epoch_time_s"]) for r in rows]
    assert 2 <= len(rows) < 500, seconds
    assert sum(seconds) <= 40 + max(seconds) + 1.0
    epochs = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == len(rows) and f"/{len(rows)} " in epochs[-1]  # the plan, not the cap
    last_rate = float(epochs[-1].split("  lr ")[1].split()[0])
    assert last_rate < 0.05 * 3e-3, epochs[-1]  # the cosine ended with the time
    assert json.loads((run / "config.json").read_text())["train"]["time_limit"] == 40.0


def test_train_with_a_bad_time_limit_is_one_line_exit_2(tmp_path):
    from conftest import run_cli

    result = run_cli("train", "--time-limit", "soon", "--out", tmp_path / "run")
    assert result.returncode == 2 and "--time-limit must be a positive duration" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.tf
def test_crop_pad_sets_the_largest_shift_and_zero_leaves_only_flips():
    import tensorflow as tf

    from edgecv.data.folder import scan_and_load
    from edgecv.training.config import TrainConfig
    from edgecv.training.recipe import build_augmenter

    images = scan_and_load(FIXTURE, (32, 32, 3))[1][:16].astype(np.float32)
    seed = tf.constant([3, 7], tf.int64)
    config = TrainConfig(augment="crop", flip=False, img_size=32, crop_pad=2)
    out = build_augmenter(config)(tf.constant(images), seed).numpy()
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = []
    for image, crop in zip(padded, out):
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if np.array_equal(image[dy:dy + 32, dx:dx + 32], crop)]
        assert found, "every output is a window of the image padded by 2"
        offsets.append(found[0])
    assert len(set(offsets)) > 3  # shifts happen, and none beyond 2 pixels
    still = build_augmenter(TrainConfig(augment="crop", flip=False, img_size=32, crop_pad=0))
    np.testing.assert_array_equal(still(tf.constant(images), seed).numpy(), images)
