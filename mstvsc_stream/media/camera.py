"""Live capture from a local camera through OpenCV, the one place camera frames are BGR."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np

from mstvsc_stream.media.errors import MediaError
from mstvsc_stream.media.source import Size, check_size


@contextmanager
def _opencv_silenced() -> Iterator[None]:
    """Mutes OpenCV's log while probing backends: a missing camera makes each backend print warnings
    and errors to stderr, and the user should see our one-line message instead."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


class CameraSource:
    """Frames from camera ``index`` as uint8 RGB ``[H, W, 3]`` of exactly ``size``.

    The camera is asked for ``size`` and ``fps``; frames of another size are resized (area filter), so
    the stream always has the size asked for. ``fps`` is the rate the camera reports, or the one asked
    for when the camera reports none; the camera itself paces the frames. The constructor reads one
    frame, so a camera that is absent, busy or broken fails at once with a :class:`MediaError`.
    """

    def __init__(self, index: int = 0, size: Size = (640, 480), fps: float = 30.0) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.index = index
        self.size = check_size(size)
        with _opencv_silenced():
            capture = cv2.VideoCapture(index)
            if not capture.isOpened():
                raise MediaError(f"camera {index} not found (or in use by another program)")
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            capture.set(cv2.CAP_PROP_FPS, fps)
            ok, first = capture.read()
        if not ok:
            capture.release()
            raise MediaError(f"camera {index} opened but delivered no frame")
        reported_fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(reported_fps) if reported_fps > 0 else float(fps)
        self._capture = capture
        self._first: np.ndarray | None = first

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._first is not None:
            first, self._first = self._first, None
            yield self._to_rgb(first)
        while True:
            ok, bgr = self._capture.read()
            if not ok:
                raise MediaError(f"camera {self.index} stopped delivering frames")
            yield self._to_rgb(bgr)

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> CameraSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _to_rgb(self, bgr: np.ndarray) -> np.ndarray:
        if (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
