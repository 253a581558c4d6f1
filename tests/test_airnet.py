"""The photo recipe: `--model auto` choosing airnet, airnet's own recipe, its whitening stem."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from edgecv.data import count_images
from edgecv.errors import UsageError
from edgecv.training import config as config_module
from edgecv.training.config import TrainConfig, resolve, resolve_for_data

CIFAR_MINI = Path(__file__).parent / "data" / "cifar10_mini"  # 600 JPEG photos, 10 classes


# --- choosing the model and its recipe, without TensorFlow ----------------------------------------

def test_auto_picks_resnet8_for_grayscale_and_small_photo_sets():
    assert resolve(TrainConfig(data="digits")).model == "resnet8"
    assert resolve(TrainConfig(data="mnist")).model == "resnet8"  # 70,000 images, 1 channel
    # 600 photos: 420 in the train split, below 1,000
    assert resolve(TrainConfig(data=str(CIFAR_MINI))).model == "resnet8"


def test_auto_picks_airnet_for_large_photo_sets_and_counts_what_is_there(monkeypatch, tmp_path):
    assert resolve(TrainConfig(data="cifar10")).model == "airnet"  # 60,000 RGB images
    # The threshold is on the train split of the images really there: 600 x 0.7 = 420.
    monkeypatch.setattr(config_module, "PHOTO_MODEL_MIN_IMAGES", 420)
    assert resolve(TrainConfig(data=str(CIFAR_MINI))).model == "airnet"
    assert resolve(TrainConfig(data=str(CIFAR_MINI), val_split=0.2)).model == "resnet8"
    # An archive is counted too (unpacked into the cache, as loading it would).
    archive = tmp_path / "photos.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(CIFAR_MINI, arcname="photos")
    monkeypatch.setenv("EDGECV_CACHE_DIR", str(tmp_path / "cache"))
    assert count_images(str(archive)) == 600
    assert resolve(TrainConfig(data=str(archive))).model == "airnet"
    # --channels 1 on photos: grayscale, the microcontroller model
    assert resolve(TrainConfig(data=str(CIFAR_MINI), channels=1)).model == "resnet8"


def test_a_named_model_is_kept_and_the_run_folder_names_the_chosen_one():
    assert resolve(TrainConfig(data="cifar10", model="mini_vgg")).model == "mini_vgg"
    from edgecv.training.config import default_run_dir

    assert default_run_dir(resolve(TrainConfig(data="cifar10"))).name.startswith("cifar10-airnet")


def test_airnet_brings_its_recipe_and_every_option_given_wins():
    chosen = resolve(TrainConfig(data="cifar10"))
    assert (chosen.optimizer, chosen.lr, chosen.label_smoothing, chosen.weight_decay) == \
        ("sgd", 0.4, 0.2, 5e-3)
    assert (chosen.crop_pad, chosen.tta) == (2, "flip")
    mine = resolve(TrainConfig(data="cifar10", crop_pad=3, tta="none"))
    assert (mine.crop_pad, mine.tta) == (3, "none")
    assert (resolve_for_data(chosen, 35_000).batch_size, resolve_for_data(chosen, 35_000).epochs) \
        == (256, 12)
    # below 10,000 training images the size-dependent defaults are the house's
    assert (resolve_for_data(chosen, 5_000).batch_size, resolve_for_data(chosen, 5_000).epochs) \
        == (32, 20)
    mine = resolve(TrainConfig(data="cifar10", optimizer="adam", lr=1e-3, label_smoothing=0.0,
                               weight_decay=0.0, batch_size=64, epochs=3))
    assert (mine.optimizer, mine.lr, mine.label_smoothing, mine.weight_decay) == \
        ("adam", 1e-3, 0.0, 0.0)
    assert (resolve_for_data(mine, 35_000).batch_size, resolve_for_data(mine, 35_000).epochs) \
        == (64, 3)
    # the other models keep the house recipe
    house = resolve(TrainConfig(data="digits"))
    assert (house.optimizer, house.lr, house.label_smoothing, house.weight_decay) == \
        ("adam", 3e-3, 0.0, None)
    assert (house.tta, house.crop_pad) == ("none", None)  # digits: affine, no crop to pad
    photos = resolve(TrainConfig(data="cifar10", model="resnet8"))
    assert (photos.tta, photos.crop_pad) == ("none", 4)  # 1/8 of 32
    with pytest.raises(UsageError, match="test-time augmentation"):
        resolve(TrainConfig(data="cifar10", tta="mirror"))
    with pytest.raises(UsageError, match="crop_pad"):
        resolve(TrainConfig(data="cifar10", crop_pad=-1))


def test_unknown_model_lists_auto_among_the_choices():
    with pytest.raises(UsageError, match="auto"):
        resolve(TrainConfig(data="digits", model="airbench"))


# --- the whitening stem, with TensorFlow ---------------------------------------------------------

def cifar_mini_images(n=200):
    import cv2

    files = sorted(CIFAR_MINI.rglob("*.jpg"))[:n]
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])


@pytest.mark.tf
def test_whitening_stem_decorrelates_the_patches_of_real_photos():
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    from edgecv.models import create_model, init_from_data
    from edgecv.preprocessing import Preprocessing

    images = Preprocessing(32, 32, 3).normalize(cifar_mini_images())
    model = create_model("airnet", (32, 32, 3), 10)
    stem = model.get_layer("whiten")
    assert not stem.trainable and stem.kernel.shape == (2, 2, 3, 24)

    def covariance():
        import keras

        out = np.asarray(keras.Model(model.input, stem.output)(images)).reshape(-1, 24)[:, :12]
        return np.cov(out, rowvar=False)

    def correlation(cov):  # the largest correlation between two different outputs
        scale = np.sqrt(np.diag(cov))
        return np.abs(cov / np.outer(scale, scale) - np.eye(len(cov))).max()

    before = covariance()  # a random stem: its outputs correlate strongly (neighbouring pixels)
    assert correlation(before) > 0.5
    assert init_from_data(model, lambda: images) == ["whiten"]
    after = covariance()
    assert correlation(after) < 0.05
    # variance lambda / (lambda + eps) per direction: 1 for the strong ones, less for the
    # faintest, which eps damps instead of amplifying their noise; never more than 1
    variances = np.diag(after)
    assert variances.max() == pytest.approx(1.0, abs=0.1) and variances.max() < 1.1
    # the negated half mirrors the first
    kernel = stem.get_weights()[0]
    np.testing.assert_array_equal(kernel[..., 12:], -kernel[..., :12])
    # other models have nothing to initialise, and the images are not even looked at
    plain = create_model("resnet8", (32, 32, 3), 10)
    assert init_from_data(plain, lambda: pytest.fail("images read for a model without stem")) == []


@pytest.mark.tf
@pytest.mark.slow
def test_train_initialises_the_stem_from_the_train_split_and_keeps_it_frozen(tmp_path):
    result = run_cli("train", "--data", str(CIFAR_MINI), "--model", "airnet", "--epochs", "1",
                     "--batch-size", "64", "--no-tensorboard", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "whiten initialised from 420 training images" in result.stdout + result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (config["model"], config["optimizer"], config["lr"], config["label_smoothing"]) == \
        ("airnet", "sgd", 0.4, 0.2)

    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    from edgecv.data import load_dataset
    from edgecv.models import create_model, init_from_data
    from edgecv.preprocessing import Preprocessing

    trained = keras.saving.load_model(tmp_path / "run" / "model.keras")
    dataset = load_dataset(str(CIFAR_MINI), 32, 32, 3, seed=0)
    fresh = create_model("airnet", (32, 32, 3), 10)
    sample = np.sort(np.random.default_rng(0).permutation(len(dataset.train))[:5000])
    init_from_data(fresh, Preprocessing(32, 32, 3).normalize(dataset.train.images(sample)))
    np.testing.assert_allclose(trained.get_layer("whiten").get_weights()[0],
                               fresh.get_layer("whiten").get_weights()[0], rtol=1e-5, atol=1e-6)


def test_model_options_parse_as_python_literals_and_unknown_ones_are_refused():
    from edgecv.training.config import parse_model_options

    assert parse_model_options(["widths=[64, 192, 192]", "whiten=false", "activation=relu",
                                "alpha=0.5"]) == \
        {"widths": [64, 192, 192], "whiten": False, "activation": "relu", "alpha": 0.5}
    with pytest.raises(UsageError, match="KEY=VALUE, received 'whiten'"):
        parse_model_options(["whiten"])
    with pytest.raises(UsageError, match="airnet has no option alpha"):
        resolve(TrainConfig(data="cifar10", model_options={"alpha": 0.5}))
    assert resolve(TrainConfig(data="cifar10", model_options={"whiten": False})).model_options \
        == {"whiten": False}


@pytest.mark.tf
@pytest.mark.slow
def test_a_model_option_reaches_the_builder_and_the_run_records_it(tmp_path):
    result = run_cli("train", "--data", str(CIFAR_MINI), "--model", "airnet", "--model-option",
                     "whiten=false", "--model-option", "widths=[8,16,16]", "--epochs", "1",
                     "--no-tensorboard", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "initialised" not in result.stdout + result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert config["model_options"] == {"whiten": False, "widths": [8, 16, 16]}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # 3x3 stem of 24 + 24->8, 8->8, 8->16, 16->16, 16->16, 16->16 convs + 3 BN (beta, 2 stats)
    # + the classifier: far fewer than the default widths' 1.97 M
    assert metrics["params"] < 20_000
