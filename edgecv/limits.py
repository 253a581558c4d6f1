"""What input from elsewhere may cost: the limits on image files and their pixels, each settable
by an environment variable read when it is needed, and :func:`env_limit`, which reads every such
variable of edgecv the same way (the memory budget and the archive limits use it too).

- ``EDGECV_MAX_IMAGE_BYTES`` (default 256 MiB): the largest image file read into memory, checked
  before reading; also the largest member an archive may unpack (no image is gigabytes).
- ``EDGECV_MAX_IMAGE_PIXELS`` (default 8192 x 8192 = 67,108,864): the most pixels an image may
  declare in its header, checked before decoding (a 292 KB PNG decodes to 300 MB).
"""

from __future__ import annotations

import os

from edgecv.errors import UsageError

MAX_IMAGE_BYTES = 256 * 1024**2
IMAGE_BYTES_ENV = "EDGECV_MAX_IMAGE_BYTES"
MAX_IMAGE_PIXELS = 8192 * 8192
IMAGE_PIXELS_ENV = "EDGECV_MAX_IMAGE_PIXELS"


def env_limit(name: str, default: int, unit: str = "bytes") -> int:
    """The whole number in environment variable ``name``, or ``default`` when it is unset or
    empty; anything else than a whole number >= 0 is a UsageError naming the variable."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise UsageError(f"{name} must be a whole number of {unit} >= 0, received '{value}'.")
    return limit


def max_image_bytes() -> int:
    """Largest image file read: env ``EDGECV_MAX_IMAGE_BYTES``, default 256 MiB."""
    return env_limit(IMAGE_BYTES_ENV, MAX_IMAGE_BYTES)


def max_image_pixels() -> int:
    """Most pixels (width x height) an image may declare: env ``EDGECV_MAX_IMAGE_PIXELS``,
    default 67,108,864 (8192 x 8192)."""
    return env_limit(IMAGE_PIXELS_ENV, MAX_IMAGE_PIXELS, "pixels")
