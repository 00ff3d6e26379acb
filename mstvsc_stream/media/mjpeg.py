"""The picture for a browser: the newest frame as JPEG, encoded on a thread of its own, only while someone
watches, at most ``max_fps`` times a second.

The frame output hands every frame to :meth:`MjpegFeed.offer`, which only keeps a reference to the
newest one (a preview shows the present, not every frame), so offering costs nothing and never waits.
Viewers call :meth:`MjpegFeed.next_jpeg` from their own threads and get each new picture once.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

DEFAULT_MAX_FPS = 10.0
JPEG_QUALITY = 80


class MjpegFeed:
    """Latest frame in, JPEG pictures out to any number of viewers."""

    def __init__(self, max_fps: float = DEFAULT_MAX_FPS, quality: int = JPEG_QUALITY) -> None:
        if not max_fps > 0:
            raise ValueError(f"max_fps must be positive, got {max_fps}")
        self.max_fps = max_fps
        self.quality = quality
        self.encoded = 0  # pictures encoded so far (none while nobody watches)
        self._changed = threading.Condition()
        self._frame: np.ndarray | None = None  # newest frame offered and not yet encoded
        self._jpeg: bytes | None = None
        self._sequence = 0  # of the newest picture
        self._viewers = 0
        self._closed = False
        self._thread = threading.Thread(target=self._encode_loop, name="mjpeg", daemon=True)
        self._thread.start()

    @property
    def viewers(self) -> int:
        with self._changed:
            return self._viewers

    def offer(self, frame: np.ndarray) -> None:
        """The newest uint8 RGB frame; kept only while someone watches."""
        with self._changed:
            if self._viewers and not self._closed:
                self._frame = frame
                self._changed.notify_all()

    def watch(self) -> None:
        """A viewer arrives; pair with :meth:`leave`."""
        with self._changed:
            self._viewers += 1
            self._changed.notify_all()

    def leave(self) -> None:
        with self._changed:
            self._viewers -= 1
            if not self._viewers:
                self._frame = None

    def next_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """The first picture newer than sequence number ``after`` (0: any), waiting up to ``timeout`` s;
        None on timeout or once closed."""
        with self._changed:
            ready = self._changed.wait_for(lambda: self._closed or (self._jpeg is not None and self._sequence > after),
                                           timeout)
            if not ready or self._closed or self._jpeg is None:
                return None
            return self._sequence, self._jpeg

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(5)

    def _encode_loop(self) -> None:
        period = 1.0 / self.max_fps
        allowed_at = 0.0  # the rate cap: no picture before this time; frames offered meanwhile, newest wins
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._closed or self._frame is not None)
                pause = allowed_at - time.monotonic()
                if pause > 0:
                    self._changed.wait_for(lambda: self._closed, pause)
                if self._closed:
                    return
                frame, self._frame = self._frame, None
            if frame is None:  # the last viewer left meanwhile
                continue
            allowed_at = time.monotonic() + period
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                with self._changed:
                    self._jpeg, self._sequence = jpeg.tobytes(), self._sequence + 1
                    self.encoded += 1
                    self._changed.notify_all()
