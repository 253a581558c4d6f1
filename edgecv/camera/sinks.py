"""Where the processed frames of ``edgecv camera`` go besides the window, all behind one
:class:`Sink` interface: JSON lines (:class:`JsonLinesSink`) and the annotated video
(:class:`RecordingSink`, written by :class:`VideoRecorder`).

:class:`VideoRecorder` writes the video to a temporary name beside the target and renames it at
the end, after counting the frames it really holds: ``cv2.VideoWriter`` silently drops frames of
the wrong size or channel count (shared/RUNTIME_FACTS.md), so every frame is brought to the
first frame's size as 3-channel 8-bit BGR, and the count is checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from edgecv.camera.capture import Frame
from edgecv.camera.opencv import to_bgr8
from edgecv.camera.summary import CameraSummary
from edgecv.classify import Prediction
from edgecv.errors import RecordingError, UsageError

RECORD_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
DEFAULT_RECORD_FPS = 30.0


class Sink(Protocol):
    """An output of the camera loop. ``open`` once the source is open (with its frame rate, if
    known); ``write`` per processed frame (``annotated``: the frame with the overlay, drawn only
    when a sink ``wants_overlay`` or a window is shown, else None); ``flush`` once a second;
    ``close`` at the end with the run's summary (None when the run never started). The loop
    closes its sinks in the reverse order of opening them."""

    wants_overlay: bool

    def open(self, source_fps: float | None) -> None: ...

    def write(self, frame: Frame, prediction: Prediction,
              annotated: np.ndarray | None) -> None: ...

    def flush(self) -> None: ...

    def close(self, summary: CameraSummary | None) -> None: ...


def frame_record(frame: Frame, prediction: Prediction) -> dict:
    """The JSON record of one processed frame: frame (source index), t (s), label, score,
    top_k, ms (inference)."""
    return {"frame": frame.index, "t": round(frame.t, 4), "label": prediction.label,
            "score": prediction.score,
            "top_k": [choice.to_dict() for choice in prediction.top_k], "ms": prediction.ms}


class JsonLinesSink:
    """One JSON object per line (:func:`frame_record` per frame) to a file (flushed once a
    second and at the end, then a final ``{"summary": {...}}`` line) or to stdout (``-``,
    flushed per line so a reading program sees every frame at once; no summary line)."""

    wants_overlay = False

    def __init__(self, target: str):
        self.target = target
        self.to_stdout = target == "-"
        self._handle = None

    def open(self, source_fps: float | None = None) -> None:
        if self.to_stdout:
            self._handle = sys.stdout
            return
        try:
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
            # closed in close()
            self._handle = open(self.target, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write `json_path` '{self.target}': "
                             f"{exc.strerror or exc}.") from exc

    def write(self, frame: Frame, prediction: Prediction,
              annotated: np.ndarray | None = None) -> None:
        """Raises BrokenPipeError when the program reading stdout has gone (``| head``)."""
        self._write_line(frame_record(frame, prediction))

    def _write_line(self, record: dict) -> None:
        self._handle.write(json.dumps(record) + "\n")
        if self.to_stdout:
            self._handle.flush()

    def flush(self) -> None:
        self._handle.flush()

    def close(self, summary: CameraSummary | None = None) -> None:
        if not self.to_stdout:
            if summary is not None:
                self._write_line({"summary": summary.to_dict()})
            self._handle.close()
            return
        try:
            self._handle.flush()
        except BrokenPipeError:
            # Nobody reads stdout any more: point it at /dev/null so that the interpreter's own
            # flush at exit does not fail again (the recipe of the Python signal docs).
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


class RecordingSink:
    """The annotated video (``--record``) at the source's frame rate: a :class:`VideoRecorder`
    opened with the source, fed by a writer thread through a bounded queue (``queue_frames``,
    default 32), so encoding overlaps the next frame's inference. When the queue is full the loop
    waits for it: no frame is dropped from the recording, and each wait is counted
    (``recording_waits``, ``recording_wait_s`` in the summary). ``close`` drains the queue,
    verifies and renames the file, and puts the result into the summary (``recording``,
    ``recorded_frames``, or ``failure`` for a bad recording)."""

    wants_overlay = True
    QUEUE_FRAMES = 32

    def __init__(self, path: str | os.PathLike, queue_frames: int = QUEUE_FRAMES):
        self.path = path
        self.queue_frames = queue_frames
        self.recorder: VideoRecorder | None = None
        self.waits, self.wait_s = 0, 0.0
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def open(self, source_fps: float | None = None) -> None:
        self.recorder = VideoRecorder(self.path, source_fps)
        self._queue = queue.Queue(maxsize=self.queue_frames)
        self._thread = threading.Thread(target=self._drain, name="edgecv-recorder", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            image = self._queue.get()
            if image is None:
                return
            if self._error is None:
                try:
                    self.recorder.write(image)
                except BaseException as exc:  # reported by the loop's next write, or close
                    self._error = exc

    def write(self, frame: Frame, prediction: Prediction,
              annotated: np.ndarray | None) -> None:
        if self._error is not None:
            raise self._error
        try:
            self._queue.put_nowait(annotated)  # the overlay's own frame: nothing reuses it
        except queue.Full:
            start = time.perf_counter()
            self._queue.put(annotated)
            self.waits += 1
            self.wait_s += time.perf_counter() - start

    def flush(self) -> None:
        pass

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def close(self, summary: CameraSummary | None = None) -> None:
        self._stop()
        if summary is None:
            self.recorder.abort()
            return
        summary.recording = str(self.recorder.path)
        summary.recording_waits, summary.recording_wait_s = self.waits, round(self.wait_s, 3)
        if self._error is not None:
            self.recorder.abort()
            summary.failure = f"recording failed: {self._error}"
            return
        try:
            summary.recorded_frames = self.recorder.finish()
        except RecordingError as exc:
            summary.failure = str(exc)


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
            raise UsageError(f"`record` must end in {' or '.join(RECORD_CODECS)} (mp4v or MJPG), "
                             f"received '{self.path.name}'.")
        if self.path.is_dir():
            raise UsageError(f"`record` '{self.path}' is a folder; give a file name.")
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
