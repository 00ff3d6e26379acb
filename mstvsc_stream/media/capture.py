"""Runs a frame source in its own thread so capture never waits for encoding or the network.

A live sender must always work on the newest frame: if the consumer falls behind, the oldest waiting
frames are dropped (and counted) rather than queued, so latency cannot build up.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mstvsc_stream.media.source import FrameSource


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One frame as it left the source."""

    image: np.ndarray  # uint8 RGB [H, W, 3]
    captured_at: float  # time.time() when the frame was taken: the start of its end-to-end latency
    sequence: int  # position in the source's output; gaps show where frames were dropped


class CaptureThread:
    """Reads ``source`` in a daemon thread into a queue of at most ``capacity`` frames.

    * ``realtime=True`` paces the source at its ``fps``, so a file plays as if it were a camera; leave it
      off for offline evaluation (as fast as decoding goes) and for cameras (they pace themselves). A
      paced source that falls behind does not burst to catch up.
    * When the queue is full the oldest frame is dropped and :attr:`dropped` counts it.
    * :meth:`get` returns ``None`` at the end of the input or after :meth:`stop`, and re-raises in the
      consumer's thread the error that ended the source (for example a :class:`MediaError`).

    The thread owns the source from :meth:`start` on and closes it when it ends.
    """

    def __init__(self, source: FrameSource, capacity: int = 4, realtime: bool = False) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.source = source
        self.realtime = realtime
        self._frames: deque[CapturedFrame] = deque(maxlen=capacity)
        self._ready = threading.Condition()
        self._stopping = threading.Event()
        self._finished = False
        self._error: BaseException | None = None
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    @property
    def dropped(self) -> int:
        """Frames discarded because the consumer had not taken them before newer ones arrived."""
        with self._ready:
            return self._dropped

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> CapturedFrame | None:
        """The oldest waiting frame, waiting for one if needed; ``None`` at the end of the input.

        Raises TimeoutError if ``timeout`` seconds pass without a frame.
        """
        with self._ready:
            if not self._ready.wait_for(lambda: self._frames or self._finished, timeout):
                raise TimeoutError(f"no frame from the source within {timeout} s")
            if self._frames:
                return self._frames.popleft()
            if self._error is not None:
                raise self._error
            return None

    def __iter__(self) -> Iterator[CapturedFrame]:
        while (frame := self.get()) is not None:
            yield frame

    def stop(self) -> None:
        """Ends capture without waiting (a signal handler on the event loop may call it): the thread
        finishes its current frame, closes the source and exits; :meth:`get` returns ``None`` from now on.
        :meth:`join` waits for the source to be closed."""
        self._stopping.set()
        with self._ready:
            self._frames.clear()
            self._finished = True
            self._ready.notify_all()

    def join(self, timeout: float = 5.0) -> bool:
        """Wait (not on an event loop) for the thread to close the source; False if a read still blocks
        after ``timeout`` seconds (the daemon thread is then left to it)."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> CaptureThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.join()

    def _run(self) -> None:
        period = 1.0 / self.source.fps
        due = time.monotonic()
        try:
            for sequence, image in enumerate(self.source):
                if self.realtime:
                    now = time.monotonic()
                    if due > now and self._stopping.wait(due - now):
                        break
                    due = max(due, now) + period
                if self._stopping.is_set():
                    break
                self._push(CapturedFrame(image, time.time(), sequence))
        except Exception as error:  # handed to the consumer, which re-raises it from get()
            self._error = error
        finally:
            self.source.close()
            with self._ready:
                self._finished = True
                self._ready.notify_all()

    def _push(self, frame: CapturedFrame) -> None:
        with self._ready:
            if len(self._frames) == self._frames.maxlen:
                self._dropped += 1  # the deque discards its oldest frame on append
            self._frames.append(frame)
            self._ready.notify()
