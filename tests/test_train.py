"""`edgecv train` end to end: the run directory, accuracy, determinism, resume, strategies, folders."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

pytestmark = [pytest.mark.tf, pytest.mark.slow]

SMALL = ["--model", "seed_cnn", "--img-size", "16", "--no-tensorboard"]


def history_rows(run_dir):
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """A short version of the default job: resnet8 on digits, through the real CLI."""
    cwd = tmp_path_factory.mktemp("default")
    result = run_cli("train", "--epochs", "8", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "runs" / "digits-resnet8", result


def test_default_run_writes_every_artifact(default_run):
    run_dir, result = default_run
    for name in ("model.keras", "labels.txt", "config.json", "split.json", "history.csv",
                 "training_curves.png", "confusion_matrix.png", "metrics.json"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "logs").rglob("*tfevents*"))
    assert not (run_dir / "checkpoints" / "backup").exists()  # removed once training finished
    assert "test accuracy" in result.stdout
    assert "Traceback" not in result.stderr


def test_default_run_config_is_complete(default_run):
    run_dir, _ = default_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["model"] == "resnet8" and config["train"]["seed"] == 0
    assert config["preprocessing"]["height"] == 32 and config["preprocessing"]["channels"] == 1
    assert config["preprocessing"]["scale"] == pytest.approx(1 / 255)
    assert config["data"]["kind"] == "builtin" and config["data"]["seed"] == 0
    assert config["labels"] == [str(i) for i in range(10)]
    assert (run_dir / "labels.txt").read_text().split() == config["labels"]
    split = json.loads((run_dir / "split.json").read_text())
    assert sum(len(v) for v in split.values()) == 1797
    assert len(split["test"]) == config["data"]["sizes"]["test"]


def test_default_run_accuracy_and_metrics(default_run):
    run_dir, _ = default_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.90  # 8 epochs here; the full run reaches >= 0.97
    assert set(metrics["per_class"]) == {str(i) for i in range(10)}
    assert all(0 <= c["recall"] <= 1 for c in metrics["per_class"].values())
    assert metrics["params"] > 50_000 and metrics["macs"] > metrics["params"]
    assert metrics["epochs_run"] == len(history_rows(run_dir))
    assert metrics["images_per_s"] > 0 and metrics["training_time_s"] > 0
    assert metrics["skipped_files"] == []
    matrix = np.asarray(metrics["confusion_matrix"])
    assert matrix.sum() == json.loads((run_dir / "config.json").read_text())["data"]["sizes"]["test"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["test_accuracy"])


def test_saved_model_reproduces_test_accuracy_and_has_no_augmentation(default_run):
    from edgecv.data import load_dataset
    from edgecv.preprocessing import Preprocessing
    from edgecv.modelfile.keras_file import load_keras_model

    run_dir, _ = default_run
    config = json.loads((run_dir / "config.json").read_text())
    pre = Preprocessing.from_dict(config["preprocessing"])
    model = load_keras_model(run_dir / "model.keras")
    assert not [layer.name for layer in model.layers if layer.__class__.__name__.startswith("Random")]
    ds = load_dataset("digits", pre.height, pre.width, pre.channels, seed=config["data"]["seed"])
    assert ds.test.ids == json.loads((run_dir / "split.json").read_text())["test"]
    accuracy = float((model.predict(pre.normalize(ds.test.x), verbose=0).argmax(1) == ds.test.y).mean())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-9)


def test_same_seed_same_first_epoch_loss(tmp_path):
    from edgecv.training import TrainConfig, train

    def first_loss(name, seed):
        config = TrainConfig(model="seed_cnn", img_size=16, epochs=1, seed=seed, tensorboard=False,
                             out=str(tmp_path / name))
        train(config, log=lambda _: None)
        return float(history_rows(tmp_path / name)[0]["loss"])

    a, b, c = first_loss("a", 1), first_loss("b", 1), first_loss("c", 2)
    assert a == b
    assert a != c


PHOTOS = Path(__file__).parent / "data" / "cifar10_mini"


@pytest.mark.parametrize("data, extra_env", [
    ("digits", {}),
    # Photos streamed from disk (memory budget 0): --resume works on the streamed path too.
    (str(PHOTOS), {"EDGECV_MAX_MEMORY_BYTES": "0"}),
], ids=["in_memory", "streamed"])
def test_resume_after_kill_loses_no_finished_epoch(tmp_path, data, extra_env):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "edgecv", "train", *SMALL, "--data", data, "--epochs", "30",
            "--patience", "100", "--out", str(run_dir)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra_env}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(history_rows(run_dir)) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "training never reached epoch 3"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(history_rows(run_dir))
    assert 3 <= finished < 30, "the kill must land mid-run"
    assert not (run_dir / "model.keras").exists()

    result = run_cli("train", "--out", run_dir, "--resume", "--epochs", "30", cwd=tmp_path,
                     env=extra_env)
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = [int(row["epoch"]) for row in history_rows(run_dir)]
    # Every epoch appears once and in order: the resumed run started right after the last
    # finished epoch, not from 0 and not past a gap.
    assert epochs == list(range(30))
    first_resumed = result.stdout.split("epoch ")[1].split("/")[0].strip()
    assert int(first_resumed) == finished + 1
    assert (run_dir / "model.keras").is_file()
    assert json.loads((run_dir / "config.json").read_text())["data"].get("streamed", False) \
        == bool(extra_env)
    again = run_cli("train", "--out", run_dir, "--resume", cwd=tmp_path)
    assert again.returncode == 2 and "already finished" in again.stderr


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    result = run_cli("train", *SMALL, "--epochs", "2", "--strategy", "mirrored",
                     "--out", tmp_path / "run", env={"EDGECV_CPU_DEVICES": "2"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["strategy"].startswith("mirrored over 2 device(s)")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(history_rows(tmp_path / "run")) == 2
    assert metrics["test_accuracy"] > 0.2  # well above 10% chance after 2 epochs


def test_folder_dataset_with_corrupt_files(tmp_path):
    import cv2

    root = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for cls in ("bars", "circles", "plain"):
        (root / cls).mkdir(parents=True)
        for i in range(20):
            image = rng.integers(0, 40, (40, 40, 3), dtype=np.uint8)
            if cls == "bars":
                image[:, ::8] = 255
            elif cls == "circles":
                cv2.circle(image, (20, 20), 12, (255, 255, 255), 3)
            cv2.imwrite(str(root / cls / f"{i}.png"), image)
    good = cv2.imencode(".jpg", np.full((40, 40, 3), 128, np.uint8))[1].tobytes()
    (root / "bars" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "circles" / "empty.png").write_bytes(b"")
    (root / "plain" / "notes.txt").write_text("not an image")
    out = tmp_path / "run"
    result = run_cli("train", "--data", root, *SMALL, "--epochs", "3", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    skipped = {item["path"]: item["reason"] for item in metrics["skipped_files"]}
    assert set(skipped) == {"bars/truncated.jpg", "circles/empty.png", "plain/notes.txt"}
    for path in skipped:
        assert f"skipped {path}" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["labels"] == ["bars", "circles", "plain"] and config["preprocessing"]["channels"] == 3
    split = json.loads((out / "split.json").read_text())
    assert sum(len(v) for v in split.values()) == 60
    assert all(not path.endswith(("truncated.jpg", "empty.png")) for v in split.values() for path in v)


def test_folder_with_one_class_is_a_clear_error(tmp_path):
    import cv2

    (tmp_path / "data" / "only").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "data" / "only" / "a.png"), np.zeros((8, 8), np.uint8))
    result = run_cli("train", "--data", tmp_path / "data", *SMALL, "--out", tmp_path / "run",
                     cwd=tmp_path)
    assert result.returncode == 2
    assert "at least 2 classes" in result.stderr and "Traceback" not in result.stderr


def test_transfer_learning_from_local_base_weights_then_fine_tune(tmp_path):
    from edgecv.models import create_model

    weights = tmp_path / "base.weights.h5"
    create_model("mobilenet_v2", (32, 32, 3), 10).get_layer("base").save_weights(str(weights))
    out = tmp_path / "run"
    result = run_cli("train", "--model", "mobilenet_v2", "--img-size", "32", "--weights", weights,
                     "--epochs", "1", "--fine-tune-epochs", "1", "--fine-tune-layers", "10",
                     "--no-tensorboard", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fine-tuning the top 10 layers of the base" in result.stdout
    assert [int(row["epoch"]) for row in history_rows(out)] == [0, 1]
    config = json.loads((out / "config.json").read_text())
    assert config["preprocessing"]["channels"] == 3  # pretrained bases take RGB
    assert config["train"]["weights"] == str(weights)


def test_imagenet_weights_offline_is_one_clear_line(tmp_path):
    env = {"KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}
    result = run_cli("train", "--model", "mobilenet_v2", "--weights", "imagenet", "--out",
                     tmp_path / "run", env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "could not download ImageNet weights for mobilenet_v2" in result.stderr
    assert "--weights PATH" in result.stderr and "Traceback" not in result.stderr


def test_same_seed_gives_the_same_losses_with_deterministic_ops(tmp_path):
    """The manual: with --deterministic (default) the same seed gives the same split and the same
    losses on CPU. Real photos, crop + flip augmentation, resnet8's convolutions and BatchNorm,
    with TensorFlow's oneDNN kernels that edgecv turns on for x86-64."""
    mini = Path(__file__).parent / "data" / "cifar10_mini"
    losses = []
    for name in ("a", "b"):
        result = run_cli("train", "--data", mini, "--model", "resnet8", "--epochs", "2",
                         "--no-tensorboard", "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr[-2000:]
        rows = history_rows(tmp_path / name)
        losses.append([(row["loss"], row["val_loss"], row["accuracy"]) for row in rows])
    assert len(losses[0]) == 2 and losses[0] == losses[1]


# --- issue 31: hostile class names, a report that fails, streamed epochs ------------------------

def _photo_classes(root: Path, *names: bytes) -> Path:
    """The CIFAR fixture's airplanes and automobiles copied under ``names`` (bytes: any name the
    file system takes, such as Latin-1 on a UTF-8 system)."""
    import shutil

    for name, source in zip(names, ("airplane", "automobile")):
        target = os.path.join(os.fsencode(root), name)
        os.makedirs(target)
        for photo in sorted((PHOTOS / source).iterdir()):
            shutil.copyfile(photo, os.path.join(target, os.fsencode(photo.name)))
    return root


@pytest.mark.parametrize("name", [b"line\nbreak", b"caf\xe9"], ids=["newline", "latin1"])
def test_a_class_name_labels_txt_or_json_cannot_hold_is_refused_before_any_run_file(tmp_path,
                                                                                     name):
    """A newline in a class name shifted every later label in labels.txt; a Latin-1 folder name
    gave a traceback and a half-written run. Now: one line, exit 2, no run folder."""
    data = _photo_classes(tmp_path / "data", b"plain", name)
    result = run_cli("train", "--data", data, *SMALL, "--epochs", "1", "--out", tmp_path / "run",
                     cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr[-3000:])
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "the class folder" in result.stderr and "rename it" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_class_names_with_mathtext_characters_train_and_are_drawn_as_written(tmp_path,
                                                                            monkeypatch):
    """A class named `$^$` crashed matplotlib's mathtext after training, before the model was
    saved. Now it trains, both plots are written, and every label is drawn literally."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from edgecv.training import TrainConfig, train

    names = ["$^$", "a_b\\c"]
    data = _photo_classes(tmp_path / "data", *(name.encode() for name in names))
    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (figures.append(fig), close(fig)))
    run = tmp_path / "run"
    train(TrainConfig(data=str(data), model="seed_cnn", img_size=16, epochs=1,
                      tensorboard=False, out=str(run)), log=lambda _: None)
    for name in ("model.keras", "metrics.json", "confusion_matrix.png", "training_curves.png"):
        assert (run / name).is_file(), name
    assert (run / "labels.txt").read_text(encoding="utf-8").splitlines() == names
    labels = [text for fig in figures for text in fig.findobj(Text) if text.get_text() in names]
    assert {text.get_text() for text in labels} == set(names)  # the confusion matrix's ticks
    assert all(not text.get_parse_math() and not text.get_usetex() for text in labels)


def test_a_plot_that_fails_costs_one_line_not_the_trained_model(tmp_path, monkeypatch):
    from edgecv.modelfile.keras_file import load_keras_model
    from edgecv.training import TrainConfig, report, train

    def broken(*_args):
        raise RuntimeError("no room on the canvas")

    monkeypatch.setattr(report, "plot_confusion_matrix", broken)
    lines, run = [], tmp_path / "run"
    result = train(TrainConfig(model="seed_cnn", img_size=8, epochs=1, tensorboard=False,
                               out=str(run)), log=lines.append)
    assert "confusion_matrix.png not written: no room on the canvas" in lines
    assert load_keras_model(run / "model.keras").count_params() == result.metrics["params"]
    assert (run / "metrics.json").is_file() and (run / "training_curves.png").is_file()
    assert not (run / "confusion_matrix.png").exists()


def test_streamed_training_runs_every_planned_step_without_running_out_of_data(tmp_path,
                                                                              monkeypatch):
    """Streamed from disk, the train split used to reach Keras with an unknown length: it ran
    out of data in every epoch ("Your input ran out of data; interrupting training") and the
    optimizer's step counter, the cosine schedule's clock, gained one step per epoch that never
    trained. Now each epoch is its planned steps, the counter with it; the log says it streams."""
    import warnings

    import keras

    from edgecv.training import TrainConfig, train, trainer

    monkeypatch.setenv("EDGECV_MAX_MEMORY_BYTES", "0")
    per_epoch = []

    class CountSteps(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1

        def on_epoch_end(self, epoch, logs=None):
            per_epoch.append((self.batches, int(self.model.optimizer.iterations.numpy())))

    make_callbacks = trainer.make_callbacks
    monkeypatch.setattr(trainer, "make_callbacks",
                        lambda *args, **kwargs: [CountSteps(), *make_callbacks(*args, **kwargs)])
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(TrainConfig(data=str(PHOTOS), model="seed_cnn", img_size=16, epochs=2,
                                   batch_size=32, tensorboard=False, out=str(tmp_path / "run")),
                       log=lines.append)
    steps = -(-result.metrics["train_images"] // 32)
    assert per_epoch == [(steps, steps), (steps, 2 * steps)]
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    streams = [line for line in lines if line.startswith("data streams from disk")]
    assert len(streams) == 1 and "EDGECV_MAX_MEMORY_BYTES" in streams[0]
