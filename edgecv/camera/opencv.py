"""What the camera modules share about OpenCV itself: its log noise, the threads a watchdog
left inside a blocking OpenCV call, and frames as 3-channel 8-bit BGR for display and recording.
"""

from __future__ import annotations

import os
import threading

import numpy as np


def quiet_opencv_logs() -> None:
    """Silence OpenCV's and FFmpeg's own stderr messages (a refused connection prints three
    lines); edgecv reports every failure itself. A level the user set in the environment wins."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read at first use
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


# Threads left inside a blocking OpenCV call (a watchdog gave up on them). If one of them
# returns while Python shuts down, CPython 3.11 ends it with pthread_exit, which unwinds through
# OpenCV's C++ frames and aborts the process; callers end the process with os._exit instead.
_ABANDONED: list[threading.Thread] = []


def threads_stuck_in_opencv() -> bool:
    """True while a thread that a watchdog abandoned is still inside OpenCV."""
    return any(thread.is_alive() for thread in _ABANDONED)


def abandon(thread: threading.Thread) -> None:
    """Record ``thread`` as left behind inside OpenCV (see :func:`threads_stuck_in_opencv`)."""
    _ABANDONED.append(thread)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded OpenCV image (gray, BGR, BGRA; 8 or 16 bit) as 3-channel 8-bit BGR, for
    display and recording (16-bit values are divided by 257, like the model input)."""
    import cv2

    from edgecv.preprocessing import to_8bit

    image = to_8bit(image)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image
