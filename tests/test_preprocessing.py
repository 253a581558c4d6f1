"""The preprocessing contract and the conversion rules (numpy + OpenCV only)."""

import numpy as np
import pytest

from edgecv.errors import DataError, UsageError
from edgecv.preprocessing import Preprocessing, to_model_image


def test_normalize_applies_scale_mean_std_per_channel():
    pre = Preprocessing(8, 8, 3, scale=1 / 255, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    images = np.full((2, 8, 8, 3), 255, np.uint8)
    out = pre.normalize(images)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [1.0, 3.0, 0.5], rtol=1e-6)


def test_normalize_names_expected_and_received_shape():
    pre = Preprocessing(32, 32, 1)
    with pytest.raises(DataError, match=r"\(1, 28, 28, 1\).*32, 32, 1"):
        pre.normalize(np.zeros((1, 28, 28, 1), np.uint8))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"channels": 2}, "channels=2"),
    ({"height": 4}, "4x32"),
    ({"channels": 3, "mean": (0.1, 0.2)}, "[0.1, 0.2]"),
    ({"std": (0.0,)}, "std must not contain 0"),
])
def test_invalid_contract_is_refused_with_the_value(kwargs, fragment):
    args = {"height": 32, "width": 32, "channels": 1, **kwargs}
    with pytest.raises(UsageError) as info:
        Preprocessing(**args)
    assert fragment in str(info.value)


# --- --scale / --mean / --std for a model that is not an edgecv run -----------------------------

@pytest.mark.parametrize("flags, expected", [
    ((None, None, None), None),
    ((1 / 255, None, None), (1 / 255, (0.0,), (1.0,))),
    ((None, (127.5,), None), (1.0, (127.5,), (1.0,))),  # --mean alone: pixel units, scale 1
    ((None, None, (255.0,)), (1.0, (0.0,), (255.0,))),  # --std alone
    ((None, (123.7, 116.3, 103.5), (58.4, 57.1, 57.4)), (1.0, (123.7, 116.3, 103.5),
                                                        (58.4, 57.1, 57.4))),
    ((None, (0.5,), (127.5,)), (1.0, (0.5,), (127.5,))),  # a pixel-unit std decides
    ((1 / 255, (0.5,), None), (1 / 255, (0.5,), (1.0,))),  # 0..1 statistics with their scale
    ((1.0, (0.5,), (0.25,)), (1.0, (0.5,), (0.25,))),  # --scale 1 says pixels are meant
])
def test_each_normalisation_flag_works_alone(flags, expected):
    from edgecv.preprocessing import normalisation_from_flags

    assert normalisation_from_flags(*flags) == expected


@pytest.mark.parametrize("flags, fragment", [
    ((None, (0.5,), None), "`mean` 0.5 looks like statistics of 0..1 pixels"),
    ((None, None, (0.25,)), "`std` 0.25 looks like statistics of 0..1 pixels"),
    ((None, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
     "`mean` 0.485,0.456,0.406 `std` 0.229,0.224,0.225 looks like statistics of 0..1 pixels"),
    ((None, None, (0.0,)), "`std` must be positive, received [0.0]"),
    ((1 / 255, None, (1.0, -2.0, 1.0)), "`std` must be positive, received [1.0, -2.0, 1.0]"),
])
def test_bad_normalisation_flags_are_one_line_usage_errors(flags, fragment):
    from edgecv.preprocessing import normalisation_from_flags

    with pytest.raises(UsageError) as info:
        normalisation_from_flags(*flags)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    if "looks like" in fragment:
        assert "add `scale=1/255`" in str(info.value)


def test_contract_round_trips_through_dict():
    pre = Preprocessing(24, 32, 3, scale=1.0, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0))
    assert Preprocessing.from_dict(pre.to_dict()) == pre


def test_conversion_rules_color_gray_16bit_alpha():
    red_bgr = np.zeros((10, 10, 3), np.uint8)
    red_bgr[..., 2] = 255
    assert tuple(to_model_image(red_bgr, 10, 10, 3)[0, 0]) == (255, 0, 0)  # RGB out
    assert abs(int(to_model_image(red_bgr, 10, 10, 1)[0, 0, 0]) - 76) <= 1  # 0.299 * 255
    white16 = np.full((10, 10), 65535, np.uint16)
    assert to_model_image(white16, 10, 10, 1).max() == 255
    gray = np.full((10, 10), 100, np.uint8)
    assert tuple(to_model_image(gray, 10, 10, 3)[0, 0]) == (100, 100, 100)
    bgra = np.zeros((10, 10, 4), np.uint8)
    bgra[..., 0] = 200  # blue, fully transparent: alpha is dropped, colour kept
    assert tuple(to_model_image(bgra, 10, 10, 3)[0, 0]) == (0, 0, 200)


def test_resize_changes_size_and_keeps_uint8():
    image = np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)
    out = to_model_image(image, 16, 20, 3)
    assert out.shape == (16, 20, 3) and out.dtype == np.uint8
    assert to_model_image(np.zeros((8, 8), np.uint8), 32, 32, 1).shape == (32, 32, 1)


def test_unsupported_pixel_type_is_a_data_error():
    with pytest.raises(DataError, match="float32"):
        to_model_image(np.zeros((4, 4), np.float32), 8, 8, 1)


# --- the deployed input path shared by predict, camera and bench ---------------------------------

from edgecv.preprocessing import fit_to_aspect, model_pixels_to_bgr, prepare_image  # noqa: E402


def test_fit_crop_keeps_the_centre_of_a_wide_frame():
    frame = np.zeros((480, 640), np.uint8)
    frame[:, 80:560] = 255  # the centred 480x480 square is white, the bands black
    cropped = fit_to_aspect(frame, 32, 32, "crop")
    assert cropped.shape == (480, 480) and cropped.min() == 255


def test_fit_crop_tall_and_non_square_targets():
    frame = np.arange(100 * 40, dtype=np.uint8).reshape(100, 40)
    assert fit_to_aspect(frame, 32, 32, "crop").shape == (40, 40)
    assert fit_to_aspect(frame, 16, 32, "crop").shape == (20, 40)  # model 2:1 wide


def test_fit_letterbox_pads_with_black_and_keeps_every_pixel():
    frame = np.full((480, 640, 3), 200, np.uint8)
    boxed = fit_to_aspect(frame, 32, 32, "letterbox")
    assert boxed.shape == (640, 640, 3)
    assert (boxed[80:560] == 200).all() and boxed[:80].max() == 0 and boxed[560:].max() == 0


def test_fit_stretch_and_bad_mode():
    frame = np.zeros((10, 30), np.uint8)
    assert fit_to_aspect(frame, 8, 8, "stretch") is frame
    with pytest.raises(UsageError, match="`fit` must be one of crop, letterbox, stretch, received 'zoom'"):
        fit_to_aspect(frame, 8, 8, "zoom")


def test_prepare_image_of_model_sized_pixels_equals_training_normalisation():
    pre = Preprocessing(16, 16, 3, mean=(0.5,), std=(0.25,))
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    prepared = prepare_image(model_pixels_to_bgr(rgb), pre)
    np.testing.assert_allclose(prepared, pre.normalize(rgb))


def test_prepare_image_bgr_frame_to_gray_model():
    pre = Preprocessing(8, 8, 1)
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[..., 2] = 255  # pure red in BGR: luminance 0.299 * 255 = 76
    out = prepare_image(frame, pre)
    assert out.shape == (8, 8, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out, 76 / 255, atol=1 / 255)


@pytest.mark.parametrize("pre", [
    Preprocessing(8, 8, 3, scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    Preprocessing(8, 8, 1),
    Preprocessing(8, 8, 3, scale=1.0, mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5)),
])
def test_the_pixel_table_equals_normalise_then_quantize(pre):
    from edgecv.preprocessing import apply_pixel_table
    from edgecv.runtime.base import quantize

    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, pre.channels), dtype=np.uint8)
    pixels[0, 0] = 0
    pixels[0, 1] = 255
    for scale, zero_point, dtype in ((0.0187, -3, np.int8), (0.0391, 128, np.uint8)):
        table = pre.pixel_table(lambda x: quantize(x, scale, zero_point, dtype))
        assert table.shape == (pre.channels, 256) and table.dtype == dtype
        expected = quantize(pre.normalize(pixels), scale, zero_point, dtype)
        assert np.array_equal(apply_pixel_table(pixels, table), expected)
    assert np.array_equal(apply_pixel_table(pixels, pre.pixel_table()), pre.normalize(pixels))
