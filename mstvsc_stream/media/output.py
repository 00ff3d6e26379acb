"""The receiver's frames out (window, recording, pipe or URL, browser preview), written by one thread of
its own.

Encoding a frame (x264, FFV1), drawing a window or writing to a pipe whose reader is slow takes
milliseconds to forever; done on the receiving event loop, it would delay the timestamps of the
datagrams waiting behind it, and with them the arrival spread and deadlines the GOP buffer learns. So
the playout hands frames to :class:`FrameOutput`, which queues a few and writes them on its thread. All
OpenCV window calls happen on that thread too (the window is opened there).

A live output (a window, a pipe, a URL) must not hold the stream back: when its queue is full the frame
is dropped and counted. A file must get every frame, so :meth:`FrameOutput.put` waits for room instead,
without blocking the event loop (the playout falls behind, and the receiver holds GOPs as it does for a
slow decoder).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np

from mstvsc_stream.media.errors import MediaError
from mstvsc_stream.media.mjpeg import MjpegFeed
from mstvsc_stream.media.recorder import OutputClosed, Recorder, RecordTarget

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 8  # frames queued for the output thread: two GOPs
CLOSE_TIMEOUT_S = 10.0  # how long close() waits for the last frames and the trailer


class Screen(Protocol):
    """What the output needs of a window (:class:`~mstvsc_stream.media.display.Display`)."""

    @property
    def closed(self) -> bool: ...

    def show(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...


class FrameOutput:
    """Shows and/or records frames on a thread of its own; ``start()`` it, ``await put()`` frames,
    ``close()`` it.

    ``open_screen`` makes the window (called on the output thread); ``preview`` gets every frame for a
    browser (it keeps only the newest); ``record`` is where the recording goes, opened at the first frame with that frame's size and rate. Frames of another size later are
    scaled into the first size, so one run gives one playable file.

    :attr:`ended` holds the error that stopped the output (a full disk, a refused URL; an
    :class:`~mstvsc_stream.media.recorder.OutputClosed` when a pipe's reader went away); from then on
    frames are not taken.
    """

    def __init__(self, open_screen: Callable[[], Screen] | None = None, record: RecordTarget | None = None,
                 capacity: int = DEFAULT_CAPACITY, preview: MjpegFeed | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.frames_written = 0
        self.frames_dropped = 0
        self.ended: MediaError | None = None
        self._open_screen = open_screen
        self._record = record
        self._preview = preview
        self._lossless = record is not None and record.is_file
        self._capacity = capacity
        self._queue: deque[tuple[np.ndarray, float, float | None] | None] = deque()
        self._ready = threading.Condition()
        self._room: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._screen: Screen | None = None
        self._recorder: Recorder | None = None
        self._thread = threading.Thread(target=self._run, name="frame-output", daemon=True)
        self._opened = threading.Event()

    @property
    def window_closed(self) -> bool:
        """The user closed the window (or pressed q or Esc in it)."""
        return self._screen is not None and self._screen.closed

    def start(self) -> None:
        """Starts the thread and waits until the window is open; a window that cannot open raises its
        :class:`MediaError` here."""
        self._thread.start()
        self._opened.wait()
        if self.ended is not None:
            self._thread.join()
            raise self.ended

    async def put(self, frame: np.ndarray, fps: float, at: float | None = None) -> None:
        """Queues a uint8 RGB frame shown at ``fps`` (recorded at time ``at``, see
        :meth:`~mstvsc_stream.media.recorder.Recorder.write`). A live output drops it (counted) when the
        queue is full; a file waits for room. Returns at once once the output has ended."""
        if self._lossless:
            while self._waiting() >= self._capacity and self.ended is None and self._thread.is_alive():
                await self._wait_for_room()
        if self.ended is not None or not self._thread.is_alive():
            return
        with self._ready:
            if len(self._queue) >= self._capacity:
                self.frames_dropped += 1
                return
            self._queue.append((frame, fps, at))
            self._ready.notify()

    def close(self) -> None:
        """Writes what is queued, finalises the recording (so it plays) and closes the window. A reader
        that stopped reading cannot hold this up for more than :data:`CLOSE_TIMEOUT_S`."""
        if not self._thread.is_alive():
            return
        with self._ready:
            self._queue.append(None)
            self._ready.notify()
        self._thread.join(CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            log.warning("the output did not finish within %.0f s (a reader that stopped reading?); leaving it",
                        CLOSE_TIMEOUT_S)

    def _waiting(self) -> int:
        with self._ready:
            return len(self._queue)

    async def _wait_for_room(self) -> None:
        if self._room is None:
            self._loop, self._room = asyncio.get_running_loop(), asyncio.Event()
        self._room.clear()
        if self._waiting() >= self._capacity:
            await self._room.wait()

    def _made_room(self) -> None:
        if self._loop is not None and self._room is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._room.set)
            except RuntimeError:  # the loop closed meanwhile: no one is waiting any more
                pass

    # --- the output thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._open_screen is not None:
                self._screen = self._open_screen()
        except MediaError as error:
            self.ended = error
            return
        finally:
            self._opened.set()
        try:
            while (item := self._next()) is not None:
                self._write(*item)
        except MediaError as error:
            self.ended = error
        finally:
            self._made_room()
            self._finish()

    def _next(self) -> tuple[np.ndarray, float, float | None] | None:
        with self._ready:
            while not self._queue:
                self._ready.wait()
            item = self._queue.popleft()
        self._made_room()
        return item

    def _write(self, frame: np.ndarray, fps: float, at: float | None) -> None:
        if self._record is not None:
            height, width = frame.shape[:2]
            if self._recorder is None:
                self._recorder = Recorder(self._record, fps, (width, height))
            size = self._recorder.size
            if (width, height) != size:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            self._recorder.write(frame, at)
        if self._screen is not None:
            self._screen.show(frame)
        if self._preview is not None:
            self._preview.offer(frame)
        self.frames_written += 1

    def _finish(self) -> None:
        if self._recorder is not None:
            try:
                self._recorder.close()
            except OutputClosed:
                pass  # the reader is gone: there is no one to finalise the stream for
            except MediaError as error:
                self.ended = self.ended or error
        if self._screen is not None:
            self._screen.close()
