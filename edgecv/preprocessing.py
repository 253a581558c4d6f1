"""The preprocessing contract shared by training and every deployed path (numpy + OpenCV only).

A model trained by edgecv takes NHWC float32 input computed from 8-bit pixels as
``(pixel * scale - mean) / std``. The same :class:`Preprocessing` object is written to the run's
``config.json`` (and later into every artifact's model card), so ``predict``, ``bench`` and
``camera`` never need preprocessing flags.

Conversion rules for decoded images (:func:`to_model_image`), applied identically when training
from a folder and when deploying:

- 16-bit images are reduced to 8 bits by dividing by 257 (65535 -> 255, rounded).
- An alpha channel is dropped (pixels keep their colour; transparency is not composited).
- Colour to 1 channel uses OpenCV's BGR->GRAY luminance (0.299 R + 0.587 G + 0.114 B);
  1 channel to 3 replicates the grey value.
- 3-channel images are handed to the model as RGB (OpenCV decodes BGR).
- Resizing uses ``cv2.INTER_AREA`` when shrinking and ``cv2.INTER_LINEAR`` when enlarging.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from edgecv.errors import DataError, UsageError


@dataclass(frozen=True)
class Preprocessing:
    """How raw 8-bit pixels become model input.

    Args:
        height, width: model input size in pixels.
        channels: 1 (grayscale) or 3 (RGB).
        scale: multiplier applied to the 0..255 pixel values first (default 1/255).
        mean, std: per-channel (or single) normalisation after scaling (default 0 and 1).
        layout: tensor layout of the model input; edgecv models are ``NHWC``.
    """

    height: int
    width: int
    channels: int
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = field(default=(0.0,))
    std: tuple[float, ...] = field(default=(1.0,))
    layout: str = "NHWC"

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise UsageError(f"channels must be 1 or 3, received channels={self.channels}.")
        if self.height < 8 or self.width < 8:
            raise UsageError(
                f"input size must be at least 8x8, received {self.height}x{self.width}."
            )
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, self.channels):
                raise UsageError(
                    f"{name} needs 1 or {self.channels} values, received {list(values)}."
                )
        if any(s == 0 for s in self.std):
            raise UsageError(f"std must not contain 0, received {list(self.std)}.")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one model input."""
        return (self.height, self.width, self.channels)

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """Turn uint8 images (..., H, W, C) into float32 model input."""
        if images.shape[-3:] != self.input_shape:
            raise DataError(
                f"image batch has shape {tuple(images.shape)}, expected (..., "
                f"{self.height}, {self.width}, {self.channels})."
            )
        return self._affine(images)

    def _affine(self, pixels: np.ndarray) -> np.ndarray:
        """pixel * scale, minus mean, over std, per channel (last axis), in float32."""
        x = pixels.astype(np.float32) * np.float32(self.scale)
        return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)

    def pixel_table(self, quantize=None) -> np.ndarray:
        """What :meth:`normalize` (then ``quantize``, a float array -> integer array function)
        makes of each of the 256 pixel values, per channel: shape (channels, 256). A uint8
        image then becomes model input with one gather (:func:`apply_pixel_table`) instead of
        a multiply, a subtract, a divide and a quantization per pixel."""
        values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], self.channels, axis=1)
        x = self._affine(values)
        table = x if quantize is None else quantize(x)
        return np.ascontiguousarray(table.T)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(float(v) for v in known[key])
        return cls(**known)


def normalisation_from_flags(scale: float | None, mean: tuple[float, ...] | None,
                             std: tuple[float, ...] | None
                             ) -> tuple[float, tuple[float, ...], tuple[float, ...]] | None:
    """``(scale, mean, std)`` of a model that is not an edgecv run, from the parsed ``--scale``,
    ``--mean`` and ``--std`` (None = not given); None when none of them was given.

    Each flag works alone; the ones left out default to scale 1, mean 0 and std 1. Without
    ``--scale``, mean and std are in 0..255 pixel units, so values that look like statistics of
    0..1 pixels are refused as a likely mistake: every ``--std`` value <= 1, or (``--mean``
    alone) every ``--mean`` value within -1..1. ``--scale 1/255`` (or ``--scale 1``, to say the
    model really takes pixels so) accepts them. ``--std`` must be positive.
    """
    if scale is None and mean is None and std is None:
        return None
    if std is not None and any(s <= 0 for s in std):
        raise UsageError(f"`std` must be positive, received {list(std)}.")
    if scale is None:
        looks_unit = (max(abs(s) for s in std) <= 1 if std is not None
                      else max(abs(m) for m in mean) <= 1)
        if looks_unit:
            given = " ".join(f"`{name}` {','.join(f'{v:g}' for v in values)}"
                             for name, values in (("mean", mean), ("std", std)) if values)
            raise UsageError(
                f"{given} looks like statistics of 0..1 pixels, but without `scale` mean and "
                "std are in 0..255 pixel units: add `scale=1/255` (or `scale=1` if the model "
                "really takes 0..255 pixels).")
        scale = 1.0
    return scale, mean or (0.0,), std or (1.0,)


def to_8bit(image: np.ndarray) -> np.ndarray:
    """16-bit pixels divided by 257 (65535 -> 255, rounded); other types clipped to 0..255."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8)


def to_model_image(image: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """Apply the module's conversion rules to one decoded OpenCV image; returns uint8 HxWxC.

    ``image`` is what ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` returns: HxW, HxWx1, HxWx3 (BGR)
    or HxWx4 (BGRA), uint8 or uint16.
    """
    import cv2

    if image is None or image.size == 0:
        raise DataError("empty image: the file decoded to no pixels.")
    if image.dtype not in (np.uint8, np.uint16):
        raise DataError(f"unsupported pixel type {image.dtype}; expected 8- or 16-bit images.")
    image = to_8bit(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise DataError(f"unsupported image shape {image.shape}; expected gray, BGR or BGRA.")

    if channels == 1:
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    if image.shape[:2] != (height, width):
        shrinking = image.shape[0] * image.shape[1] > height * width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        image = cv2.resize(image, (width, height), interpolation=interpolation)
    if image.ndim == 2:
        image = image[:, :, None]
    return np.ascontiguousarray(image)


FIT_MODES = ("crop", "letterbox", "stretch")


def fit_to_aspect(image: np.ndarray, height: int, width: int, fit: str = "crop") -> np.ndarray:
    """Bring ``image`` to the model's aspect ratio before resizing, without distorting it.

    ``crop`` (default) keeps the centred largest region of the model's aspect; ``letterbox``
    pads the short side with black; ``stretch`` returns the image unchanged (the resize then
    distorts it, which is what training on a folder of odd-sized images did).
    """
    if fit not in FIT_MODES:
        raise UsageError(f"`fit` must be one of {', '.join(FIT_MODES)}, received '{fit}'.")
    h, w = image.shape[:2]
    if fit == "stretch" or h * width == w * height:
        return image
    if fit == "crop":
        if w * height > h * width:  # too wide: crop the width
            new_w = max(1, round(h * width / height))
            left = (w - new_w) // 2
            return image[:, left:left + new_w]
        new_h = max(1, round(w * height / width))
        top = (h - new_h) // 2
        return image[top:top + new_h]
    if w * height > h * width:  # too wide: pad top and bottom
        new_h = round(w * height / width)
        pad = ((new_h - h) // 2, new_h - h - (new_h - h) // 2), (0, 0)
    else:
        new_w = round(h * width / height)
        pad = (0, 0), ((new_w - w) // 2, new_w - w - (new_w - w) // 2)
    return np.pad(image, pad + ((0, 0),) * (image.ndim - 2))


def prepare_image(image: np.ndarray, preprocessing: Preprocessing, fit: str = "crop") -> np.ndarray:
    """The deployed input path, shared by predict, camera and bench: a decoded OpenCV image
    (BGR/BGRA/gray, 8 or 16 bit, any size) -> float32 (H, W, C) model input.

    Steps: :func:`fit_to_aspect` (``fit``, default centre crop), then :func:`to_model_image`
    (colour conversion, resize), then :meth:`Preprocessing.normalize`.
    """
    return preprocessing.normalize(prepare_pixels(image, preprocessing, fit))


def apply_pixel_table(pixels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """uint8 pixels (H, W, C) through a (C, 256) :meth:`Preprocessing.pixel_table`: one gather."""
    channels = table.shape[0]
    if channels == 1:
        return table[0][pixels]
    offsets = np.arange(channels, dtype=np.intp) * 256
    return table.reshape(-1)[pixels.astype(np.intp) + offsets]


def prepare_pixels(image: np.ndarray, preprocessing: Preprocessing, fit: str = "crop") -> np.ndarray:
    """:func:`prepare_image` up to the model's uint8 pixels (fit, colour, resize), before
    normalisation: what :func:`apply_pixel_table` takes."""
    fitted = fit_to_aspect(image, preprocessing.height, preprocessing.width, fit)
    return to_model_image(fitted, preprocessing.height, preprocessing.width, preprocessing.channels)


def model_pixels_to_bgr(pixels: np.ndarray) -> np.ndarray:
    """Invert the colour order of :func:`to_model_image` output (RGB/gray -> what cv2 decodes),
    so a stored model-sized image can enter :func:`prepare_image` like a decoded file."""
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels[..., ::-1])
    return pixels
