"""``edgecv camera``: a live classifier on a webcam, stream, video file or folder of images.

One job per module: :mod:`~edgecv.camera.sources` (open a source, read frames),
:mod:`~edgecv.camera.capture` (the capture thread and its frame queue),
:mod:`~edgecv.camera.sinks` (JSON lines and the recording behind one interface),
:mod:`~edgecv.camera.display` (window, overlay, keys), :mod:`~edgecv.camera.summary` (the run in
numbers), :mod:`~edgecv.camera.loop` (source -> classifier -> sinks and window) and
:mod:`~edgecv.camera.opencv` (what they share about OpenCV). numpy + OpenCV only: no TensorFlow,
no training code.
"""

from edgecv.camera.capture import Frame, FrameGrabber, FrameQueue
from edgecv.camera.display import Window, display_problem, draw_overlay
from edgecv.camera.loop import CameraSettings, check_labels, run_camera
from edgecv.camera.opencv import threads_stuck_in_opencv
from edgecv.camera.sinks import JsonLinesSink, RecordingSink, Sink, VideoRecorder, frame_record
from edgecv.camera.sources import FrameReader, SourceSpec, open_source, parse_source
from edgecv.camera.summary import CameraSummary, summarize

__all__ = ["CameraSettings", "CameraSummary", "Frame", "FrameGrabber", "FrameQueue",
           "FrameReader", "JsonLinesSink", "RecordingSink", "Sink", "SourceSpec", "VideoRecorder",
           "Window", "check_labels", "display_problem", "draw_overlay", "frame_record",
           "open_source", "parse_source", "run_camera", "summarize", "threads_stuck_in_opencv"]
