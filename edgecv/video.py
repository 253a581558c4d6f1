"""Video in and out for ``edgecv camera`` (numpy + OpenCV only).

- :func:`parse_source` turns ``--source`` into a :class:`SourceSpec`: a camera (index or device
  path), a stream URL, a video file, or a folder of images.
- :func:`open_source` opens it behind a watchdog: a V4L2 device or a URL can block inside
  OpenCV, so the open (and the first frame) runs in a helper thread and a source that has not
  delivered within ``timeout_s`` is a :class:`SourceUnavailable` error.
- :class:`FrameGrabber` reads in its own thread into a :class:`FrameQueue`. For a live source
  (camera, URL) the queue holds only the newest frame and counts the stale ones it drops; for a
  file or folder it blocks the reader instead, so every frame is processed. A live source that
  stops delivering is re-opened with backoff for ``reconnect_s`` seconds.
- :class:`VideoRecorder` writes the annotated video to a temporary name beside the target and
  renames it at the end, after counting the frames it really holds: ``cv2.VideoWriter`` silently
  drops frames of the wrong size or channel count (shared/RUNTIME_FACTS.md), so every frame is
  brought to the first frame's size as 3-channel 8-bit BGR, and the count is checked.
"""

from __future__ import annotations

import collections
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecv.errors import DataError, EdgecvError, UsageError

SOURCE_KINDS = ("camera", "url", "file", "folder")
RECORD_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
# A file read that fails is retried this many times before it counts as the end (a corrupt
# frame fails once and the next read goes on; the end of a file fails forever).
MIN_FILE_RETRIES = 8
MAX_FILE_RETRIES = 10_000
LIVE_RETRIES = 3
DEFAULT_RECORD_FPS = 30.0


class SourceUnavailable(EdgecvError):
    """The video source cannot be opened or read (no camera, unreachable URL, not a video)."""


class RecordingError(EdgecvError):
    """The recording could not be written, or does not hold the frames written to it."""


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
        raise UsageError("--source is empty; give a camera index, a video file, a folder of "
                         "images or a stream URL.")
    if text.isdigit():
        return SourceSpec("camera", int(text))
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if not scheme.replace("+", "").isalnum():
            raise UsageError(f"--source '{text}' is not a valid URL (scheme '{scheme}').")
        return SourceSpec("url", text)
    path = Path(text).expanduser()
    if path.is_dir():
        return SourceSpec("folder", str(path))
    if path.is_file():
        return SourceSpec("file", str(path))
    if path.exists():  # a character device: /dev/video0
        return SourceSpec("camera", str(path))
    raise UsageError(f"--source '{text}' does not exist; give a camera index (0), a video file, "
                     "a folder of images or a stream URL (rtsp://, http://).")


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


def _usable(image) -> bool:
    return image is not None and getattr(image, "size", 0) > 0


class CaptureReader:
    """A ``cv2.VideoCapture`` behind ``read() -> (image | None, failed)``: the next decoded
    frame (None at the end of a file or when a live source stops) and how many source frames
    failed to decode before it."""

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
    """The image files of a folder (recursively, sorted) played as frames; a file that cannot
    be decoded counts as a failed frame (``failures`` keeps its reason)."""

    fps = None
    live = False

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.position = 0
        self.failures: list[str] = []

    def read(self) -> tuple[np.ndarray | None, int]:
        from edgecv.data.folder import read_image

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


def open_source(spec: SourceSpec, timeout_s: float = 2.5):
    """Open ``spec`` and read its first frame within ``timeout_s`` seconds (default 2.5).
    Returns a reader (``read() -> (image | None, failed)``, ``fps``, ``release()``); raises
    SourceUnavailable, or UsageError for a folder without images."""
    if spec.kind == "folder":
        from edgecv.predict import image_paths

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


@dataclass
class Frame:
    """One decoded frame: ``index`` in the source, ``t`` in seconds (see FrameGrabber), and the
    model input made from it in the capture thread, if the grabber was given ``prepare``."""

    index: int
    t: float
    image: np.ndarray
    batch: np.ndarray | None = None


class FrameQueue:
    """A small frame queue between the capture thread and the consumer.

    ``drop_stale=True`` (live sources): ``put`` never blocks; when the queue is full the oldest
    frame is discarded and counted in ``dropped``, so the consumer always gets the newest frame.
    ``drop_stale=False`` (files, folders): ``put`` blocks until there is room; nothing is lost.
    ``close()`` (by either side) wakes everyone: ``put`` then returns False, and ``get`` returns
    what is left, then None. Default capacity: 1 when dropping, 4 otherwise.
    """

    def __init__(self, capacity: int | None = None, *, drop_stale: bool):
        capacity = capacity if capacity is not None else (1 if drop_stale else 4)
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, received {capacity}.")
        self.capacity = capacity
        self.drop_stale = drop_stale
        self.dropped = 0
        self._items: collections.deque = collections.deque()
        self._closed = False
        self._changed = threading.Condition()

    def put(self, item) -> bool:
        """Queue ``item``; False if the queue was closed (the item is not queued)."""
        with self._changed:
            if not self.drop_stale:
                while len(self._items) >= self.capacity and not self._closed:
                    self._changed.wait()
            if self._closed:
                return False
            while len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._changed.notify_all()
            return True

    def get(self, timeout: float | None = None):
        """The oldest queued item; None on timeout or once the queue is closed and empty."""
        with self._changed:
            if not self._items and not self._closed:
                self._changed.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._changed.notify_all()
            return item

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def finished(self) -> bool:
        """Closed and drained: nothing more will come."""
        with self._changed:
            return self._closed and not self._items


class FrameGrabber(threading.Thread):
    """Reads ``reader`` into ``queue`` in a daemon thread until the source ends, ``stop()`` is
    called, or ``max_frames`` frames were queued.

    ``Frame.index`` counts the source's frames (a frame that failed to decode takes its index
    too); ``Frame.t`` is the frame's time in a video file (index / the file's frame rate) and,
    for live sources, folders and files without a frame rate, ``clock()`` when the frame was
    read. A live source that stops delivering is re-opened with ``open_source`` after 0.25, 0.5,
    1, 2, 2 ... seconds for at most ``reconnect_s`` seconds (0: never). Counters: ``frames``,
    ``failed``, ``reconnects``; ``end_reason`` says why it stopped; the first five failed frames
    are reported through ``log``.

    ``prepare`` (image -> model input), if given, runs here for every frame, so that the
    consumer's thread only runs the model: for files and folders, where every frame is used, this
    overlaps preprocessing with inference. A frame it refuses (DataError) counts as failed.
    """

    def __init__(self, reader, spec: SourceSpec, queue: FrameQueue, *, clock: Callable[[], float],
                 reconnect_s: float = 10.0, open_timeout_s: float = 2.5,
                 max_frames: int | None = None, log: Callable[[str], None] | None = None,
                 prepare: Callable[[np.ndarray], np.ndarray] | None = None):
        super().__init__(name="edgecv-frame-grabber", daemon=True)
        self.reader = reader
        self.spec = spec
        self.queue = queue
        self.clock = clock
        self.reconnect_s = reconnect_s
        self.open_timeout_s = open_timeout_s
        self.max_frames = max_frames
        self.log = log or (lambda _line: None)
        self.prepare = prepare
        self.frames = 0
        self.failed = 0
        self.reconnects = 0
        self.end_reason: str | None = None
        self.error: BaseException | None = None
        self.last_frame_at = time.monotonic()
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Ask the thread to finish (it may be inside a blocking OpenCV call)."""
        self._stop_event.set()
        self.queue.close()

    def run(self) -> None:
        index = 0
        try:
            while not self._stop_event.is_set():
                image, failed = self.reader.read()
                if failed:
                    self._count_failures(index, failed)
                    index += failed
                if image is None:
                    if not self.spec.live:
                        kind = "video" if self.spec.kind == "file" else "folder"
                        self.end_reason = f"end of {kind}"
                        break
                    if self._reconnect():
                        continue
                    self.end_reason = (f"stream lost (no frame for {self.reconnect_s:g} s after "
                                       f"{self.reconnects} reconnect(s))")
                    break
                fps = self.reader.fps
                t = index / fps if fps and self.spec.kind == "file" else self.clock()
                batch = None
                if self.prepare is not None:
                    try:
                        batch = self.prepare(image)
                    except DataError as exc:
                        self.count_failure(index, str(exc))
                        index += 1
                        continue
                if not self.queue.put(Frame(index, t, image, batch)):
                    break
                index += 1
                self.frames += 1
                self.last_frame_at = time.monotonic()
                if self.max_frames is not None and self.frames >= self.max_frames:
                    self.end_reason = "max frames"
                    break
        except Exception as exc:  # handed to the consumer, which re-raises it
            self.error = exc
        finally:
            with contextlib.suppress(Exception):
                self.reader.release()
            self.queue.close()

    def _count_failures(self, index: int, failed: int) -> None:
        reasons = getattr(self.reader, "failures", [])[-failed:] or [None] * failed
        for offset, reason in enumerate(reasons):
            self.count_failure(index + offset, reason)

    def count_failure(self, index: int, reason: str | None = None) -> None:
        """Count frame ``index`` as failed; the first five are reported through ``log``."""
        self.failed += 1
        if self.failed <= 5:
            self.log(f"warning: frame {index} could not be decoded"
                     + (f": {reason}" if reason else "") + "; skipped")
        if self.failed == 5:
            self.log("warning: further frames that fail to decode are only counted")

    def _reconnect(self) -> bool:
        with contextlib.suppress(Exception):
            self.reader.release()
        deadline = time.monotonic() + self.reconnect_s
        delay = 0.25
        while not self._stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop_event.wait(min(delay, remaining)):
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self.reader = open_source(self.spec, min(self.open_timeout_s, max(remaining, 0.5)))
            except SourceUnavailable:
                delay = min(delay * 2, 2.0)
                continue
            self.reconnects += 1
            self.log(f"{self.spec}: reconnected")
            return True
        return False


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


class VideoRecorder:
    """Write frames to ``path`` (.mp4 with mp4v, .avi with MJPG) at ``fps`` (default 30).

    The file is written under a temporary name in the same folder (with the same suffix, so
    OpenCV picks the container) and renamed by :meth:`finish` after the frames were counted
    back. Every frame is converted to 3-channel 8-bit BGR at the first frame's size.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in RECORD_CODECS:
            raise UsageError(f"--record must end in {' or '.join(RECORD_CODECS)} (mp4v or MJPG), "
                             f"received '{self.path.name}'.")
        if self.path.is_dir():
            raise UsageError(f"--record '{self.path}' is a folder; give a file name.")
        self.fps = float(fps) if fps and 0 < fps <= 240 else DEFAULT_RECORD_FPS
        self.fourcc = RECORD_CODECS[suffix]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".partial{suffix}",
                                       dir=self.path.parent)
        except OSError as exc:
            raise UsageError(f"cannot write the recording to '{self.path}': "
                             f"{exc.strerror or exc}.") from exc
        os.close(fd)
        # The writer creates the file itself, with the user's usual permissions (mkstemp's
        # are 0600); the name stays reserved in practice by its random part.
        os.unlink(tmp)
        self.temp_path = Path(tmp)
        self.size: tuple[int, int] | None = None  # (width, height)
        self.written = 0
        self._writer = None

    def write(self, image: np.ndarray) -> None:
        import cv2

        frame = to_bgr8(image)
        if self._writer is None:
            self.size = (frame.shape[1], frame.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*self.fourcc)
            self._writer = cv2.VideoWriter(str(self.temp_path), fourcc, self.fps, self.size)
            if not self._writer.isOpened():
                self.abort()
                raise RecordingError(f"OpenCV cannot write {self.fourcc} video to '{self.path}'.")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(frame))
        self.written += 1

    def finish(self) -> int:
        """Close the file, count its frames by decoding them, and rename it onto ``path``.
        Returns the count; raises RecordingError (leaving the temporary file, named in the
        message) if it differs from the frames written."""
        import cv2

        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.written == 0:
            self.abort()
            return 0
        capture = cv2.VideoCapture(str(self.temp_path))
        counted = 0
        try:
            while capture.grab():
                counted += 1
        finally:
            capture.release()
        if counted != self.written:
            raise RecordingError(f"the recording '{self.temp_path}' holds {counted} frames but "
                                 f"{self.written} were written; it was not renamed to "
                                 f"'{self.path}'.")
        os.replace(self.temp_path, self.path)
        return counted

    def abort(self) -> None:
        """Close and delete the temporary file (nothing is left at ``path``)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()
