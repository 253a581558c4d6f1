"""Dataset sources, the seeded split, and the offline error of Keras datasets."""

import numpy as np
import pytest

from edgecv.data import dataset_kind, load_dataset, stratified_split
from edgecv.errors import DataError, DatasetUnavailable, UsageError


@pytest.fixture(autouse=True)
def empty_keras_cache(tmp_path, monkeypatch):
    """A Keras cache on this machine would be read before the (monkeypatched) loaders."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def test_digits_is_offline_upscaled_and_split_70_15_15():
    ds = load_dataset("digits", 32, 32, 1, seed=0)
    assert ds.labels == [str(i) for i in range(10)]
    total = len(ds.train) + len(ds.val) + len(ds.test)
    assert total == 1797
    assert abs(len(ds.test) - 0.15 * total) <= 10 and abs(len(ds.val) - 0.15 * total) <= 10
    assert ds.train.x.shape[1:] == (32, 32, 1) and ds.train.x.dtype == np.uint8
    assert ds.train.x.max() == 255  # 0..16 mapped onto 0..255
    ids = [set(ds.train.ids), set(ds.val.ids), set(ds.test.ids)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    # every class is present in every part (stratified)
    for part in (ds.train, ds.val, ds.test):
        assert set(part.y.tolist()) == set(range(10))


def test_split_is_reproducible_and_depends_on_seed():
    a = load_dataset("digits", 16, 16, 1, seed=3)
    b = load_dataset("digits", 16, 16, 1, seed=3)
    c = load_dataset("digits", 16, 16, 1, seed=4)
    assert a.test.ids == b.test.ids
    np.testing.assert_array_equal(a.test.x, b.test.x)
    assert a.test.ids != c.test.ids


def test_rgb_digits_replicate_gray():
    ds = load_dataset("digits", 16, 16, 3)
    x = ds.train.x
    assert x.shape[-1] == 3
    np.testing.assert_array_equal(x[..., 0], x[..., 2])


def test_stratified_split_keeps_class_shares_and_rejects_bad_fractions():
    y = np.repeat(np.arange(4), [100, 50, 20, 3])
    train, val, test = stratified_split(y, 0.2, 0.1, seed=0)
    assert len(train) + len(val) + len(test) == len(y)
    assert np.bincount(y[test], minlength=4).tolist() == [10, 5, 2, 1]
    assert np.bincount(y[val], minlength=4).tolist() == [20, 10, 4, 1]
    with pytest.raises(UsageError, match="val=0.6, test=0.5"):
        stratified_split(y, 0.6, 0.5, seed=0)


def test_unknown_dataset_name_suggests_the_closest():
    with pytest.raises(UsageError, match="Did you mean 'mnist'"):
        dataset_kind("mnsit")
    with pytest.raises(UsageError, match="Did you mean 'digits'"):
        load_dataset("digit", 32, 32, 1)


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "nope"), 32, 32, 1)


def test_keras_dataset_offline_gives_one_clear_error(monkeypatch):
    keras = pytest.importorskip("keras")

    def offline():  # what keras.utils.get_file raises when the download fails
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("mnist", 28, 28, 1)
    message = str(info.value)
    assert "could not download the 'mnist' dataset" in message
    assert "keras.datasets.mnist.load_data()" in message and "`data` digits" in message
    assert "\n" not in message


def test_keras_dataset_is_pooled_resized_and_split(monkeypatch):
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    fake = ((rng.integers(0, 255, (60, 32, 32, 3), dtype=np.uint8), np.repeat(np.arange(10), 6)[:, None]),
            (rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8), np.repeat(np.arange(10), 2)[:, None]))
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: fake)
    ds = load_dataset("cifar10", 24, 24, 3)
    assert ds.labels[0] == "airplane" and ds.num_classes == 10
    assert len(ds.train) + len(ds.val) + len(ds.test) == 80
    assert ds.test.x.shape[1:] == (24, 24, 3)


def test_held_out_splits_take_15_percent_but_at_most_2500_images(monkeypatch):
    from pathlib import Path

    from edgecv.cli import HELD_OUT_DEFAULT
    from edgecv.data import datasets, held_out_fraction
    from edgecv.training.config import TrainConfig, resolve

    assert held_out_fraction(1_797) == 0.15 and held_out_fraction(None) == 0.15
    assert held_out_fraction(50_000) == 0.05  # CIFAR-10's train archive: 45,000 / 2,500 / 2,500
    assert HELD_OUT_DEFAULT == (f"{datasets.HELD_OUT_FRACTION:.0%}, at most "
                                f"{datasets.HELD_OUT_IMAGES:,} images")
    # resolve() records the concrete fractions (config.json), from the images counted
    chosen = resolve(TrainConfig(data="cifar10"))  # 60,000 images
    assert chosen.val_split == chosen.test_split == 2_500 / 60_000
    mine = resolve(TrainConfig(data="cifar10", val_split=0.1))
    assert (mine.val_split, mine.test_split) == (0.1, 2_500 / 60_000)
    # a real folder with a smaller cap: 600 photos, at most 50 images per held-out split
    monkeypatch.setattr(datasets, "HELD_OUT_IMAGES", 50)
    photos = Path(__file__).parent / "data" / "cifar10_mini"
    ds = load_dataset(str(photos), 16, 16, 3, val_split=None, test_split=None)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (500, 50, 50)
    assert len(load_dataset(str(photos), 16, 16, 3).test) == 90  # the fixed 15% elsewhere
    assert ds.source["val_split"] == ds.source["test_split"] == 50 / 600
    # the recorded fractions reload the same split
    again = load_dataset(str(photos), 16, 16, 3, val_split=ds.source["val_split"],
                         test_split=ds.source["test_split"])
    assert again.test.ids == ds.test.ids and again.val.ids == ds.val.ids
