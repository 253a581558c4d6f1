"""Frame sources for ``edgecv camera``: a camera (index or device path), a stream URL, a video
file or a folder of images, all behind one reader interface (:class:`FrameReader`).

- :func:`parse_source` turns ``--source`` into a :class:`SourceSpec`.
- :func:`open_source` opens it behind a watchdog: a V4L2 device or a URL can block inside
  OpenCV, so the open (and the first frame) runs in a helper thread and a source that has not
  delivered within ``timeout_s`` is a :class:`edgecv.errors.SourceUnavailable` error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgecv.camera.opencv import abandon, quiet_opencv_logs
from edgecv.errors import DataError, SourceUnavailable, UsageError
from edgecv.images import image_paths, read_image

SOURCE_KINDS = ("camera", "url", "file", "folder")
# A file read that fails is retried this many times before it counts as the end (a corrupt
# frame fails once and the next read goes on; the end of a file fails forever).
MIN_FILE_RETRIES = 8
MAX_FILE_RETRIES = 10_000
LIVE_RETRIES = 3


@dataclass(frozen=True)
class SourceSpec:
    """What ``--source`` names. ``kind``: camera, url, file or folder; ``target``: the camera
    index (int) or device path, the URL, or the path."""

    kind: str
    target: int | str

    @property
    def live(self) -> bool:
        """A live source runs at its own pace: stale frames are dropped, losses reconnected."""
        return self.kind in ("camera", "url")

    def __str__(self) -> str:
        if self.kind == "camera":
            return f"camera {self.target}"
        return f"{self.kind} '{self.target}'"


def parse_source(text: str | int) -> SourceSpec:
    """``"0"`` -> camera 0; ``scheme://...`` -> url; an existing folder -> folder; an existing
    file -> file; a device node such as ``/dev/video0`` -> camera. Anything else: UsageError."""
    text = str(text).strip()
    if not text:
        raise UsageError("`source` is empty; give a camera index, a video file, a folder of "
                         "images or a stream URL.")
    if text.isdigit():
        return SourceSpec("camera", int(text))
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if not scheme.replace("+", "").isalnum():
            raise UsageError(f"`source` '{text}' is not a valid URL (scheme '{scheme}').")
        return SourceSpec("url", text)
    path = Path(text).expanduser()
    if path.is_dir():
        return SourceSpec("folder", str(path))
    if path.is_file():
        return SourceSpec("file", str(path))
    if path.exists():  # a character device: /dev/video0
        return SourceSpec("camera", str(path))
    raise UsageError(f"`source` '{text}' does not exist; give a camera index (0), a video file, "
                     "a folder of images or a stream URL (rtsp://, http://).")


class FrameReader(Protocol):
    """What :func:`open_source` returns, whatever the source: ``read()`` gives the next decoded
    frame (None at the end of a file or folder, or when a live source stops) and how many
    source frames failed to decode before it; ``fps`` is the source's own frame rate, if known."""

    fps: float | None

    def read(self) -> tuple[np.ndarray | None, int]: ...

    def release(self) -> None: ...


def _usable(image) -> bool:
    return image is not None and getattr(image, "size", 0) > 0


class CaptureReader:
    """A camera, stream or video file (a ``cv2.VideoCapture``) as a :class:`FrameReader`."""

    def __init__(self, capture, spec: SourceSpec):
        import cv2

        self.capture = capture
        self.spec = spec
        self._pending: tuple[np.ndarray, int] | None = None
        self.decoded = 0
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if 0 < fps < 1000 else None
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        # Only an upper bound on retries: a truncated .avi reports 20 frames and yields 9.
        self.reported_frames = int(count) if 0 < count < 1e9 else None

    def _retries(self) -> int:
        if self.spec.live:
            return LIVE_RETRIES
        if self.reported_frames is None:
            return MIN_FILE_RETRIES
        return min(MAX_FILE_RETRIES, max(MIN_FILE_RETRIES, self.reported_frames - self.decoded))

    def read(self) -> tuple[np.ndarray | None, int]:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        import cv2

        failed = 0
        retries = self._retries()
        while failed < retries:
            try:
                ok, image = self.capture.read()
            except cv2.error:  # a driver or decoder fault: a failed read like any other
                ok, image = False, None
            if ok and _usable(image):
                self.decoded += 1
                return image, failed
            failed += 1
        return None, 0  # the failures in a row were the end, not frames

    def unread(self, image: np.ndarray, failed: int) -> None:
        """Give back one ``read()`` result: the next ``read()`` returns it again."""
        self._pending = (image, failed)

    def release(self) -> None:
        self.capture.release()


class FolderReader:
    """The image files of a folder (recursively, sorted) played as frames, a
    :class:`FrameReader`; a file that cannot be decoded counts as a failed frame (``failures``
    keeps its reason)."""

    fps = None
    live = False

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.position = 0
        self.failures: list[str] = []

    def read(self) -> tuple[np.ndarray | None, int]:
        failed = 0
        while self.position < len(self.paths):
            path = self.paths[self.position]
            self.position += 1
            try:
                return read_image(path), failed
            except DataError as exc:
                failed += 1
                self.failures.append(str(exc))
        return None, failed

    def release(self) -> None:
        pass


def _open_capture(spec: SourceSpec, timeout_s: float) -> CaptureReader:
    import cv2

    if spec.kind == "url":
        # FFmpeg's own timeouts end a hopeless open a little before the watchdog does.
        ms = int(max(0.5, timeout_s - 0.5) * 1000)
        capture = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    elif spec.kind == "camera" and isinstance(spec.target, str):
        capture = cv2.VideoCapture(spec.target, cv2.CAP_V4L2)
    else:
        capture = cv2.VideoCapture(spec.target)
    if not capture.isOpened():
        capture.release()
        reason = {"camera": "no camera at that index, or it is in use",
                  "url": "the stream is unreachable or not a video stream",
                  "file": "OpenCV cannot read it as a video"}[spec.kind]
        raise SourceUnavailable(f"cannot open {spec}: {reason}.")
    reader = CaptureReader(capture, spec)
    first, failed = reader.read()
    if first is None:
        capture.release()
        raise SourceUnavailable(f"{spec} opened but delivered no frame.")
    reader.unread(first, failed)
    return reader


def open_source(spec: SourceSpec, timeout_s: float = 2.5) -> FrameReader:
    """Open ``spec`` and read its first frame within ``timeout_s`` seconds (default 2.5).
    Returns its :class:`FrameReader`; raises SourceUnavailable, or UsageError for a folder
    without images."""
    if spec.kind == "folder":
        return FolderReader(image_paths([spec.target]))
    quiet_opencv_logs()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["reader"] = _open_capture(spec, timeout_s)
        except Exception as exc:  # handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="edgecv-open-source", daemon=True)
    worker.start()
    try:
        worker.join(timeout_s)
    except KeyboardInterrupt:
        abandon(worker)
        raise
    if worker.is_alive():
        # OpenCV cannot be interrupted; the daemon thread is abandoned (and its capture, if it
        # ever opens, is released when the thread's reader is collected).
        abandon(worker)
        raise SourceUnavailable(f"{spec} did not deliver a frame within {timeout_s:g} s.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["reader"]
