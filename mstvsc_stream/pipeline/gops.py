"""Sender side, frames to GOPs: where frames come from, and cutting them into whole GOPs.

Two ways to take frames, because a live stream and an offline run want opposite things when the
encoder is slow: a live one must stay current (the capture thread drops, the sender drops whole GOPs),
an offline one must lose nothing (:class:`PulledFrames` reads a frame only when asked, so the reader
waits for the encoder instead).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..media import CapturedFrame, FrameSource

log = logging.getLogger(__name__)


class FrameFeed(Protocol):
    """A blocking supply of captured frames; ``get`` returns None at the end of the input or after
    ``stop``. ``stop`` may be called from another thread while ``get`` waits, and unblocks it."""

    def get(self) -> CapturedFrame | None: ...

    def stop(self) -> None: ...


class PulledFrames:
    """Frames read from ``source`` on demand, stamped with the time they were read; never drops one."""

    def __init__(self, source: FrameSource) -> None:
        self._source = source
        self._frames = iter(source)
        self._sequence = 0
        self._lock = threading.Lock()  # held while reading, so stop() never closes a source mid-read
        self._stopping = False
        self._closed = False

    def get(self) -> CapturedFrame | None:
        with self._lock:
            if self._stopping:
                self._close()
                return None
            image = next(self._frames, None)
            if image is None or self._stopping:
                self._close()
                return None
            frame = CapturedFrame(image, time.time(), self._sequence)
            self._sequence += 1
            return frame

    def stop(self) -> None:
        self._stopping = True
        if self._lock.acquire(blocking=False):  # else the read in progress closes when it returns
            try:
                self._close()
            finally:
                self._lock.release()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            close_frames = getattr(self._frames, "close", None)
            if close_frames is not None:
                close_frames()  # a generator's ``with`` blocks release the file now, not at garbage collection
            self._source.close()


@dataclass(frozen=True, slots=True)
class CapturedGop:
    """``gop`` consecutive frames, ready for the encoder."""

    frames: np.ndarray  # uint8 RGB [T, H, W, 3]
    captured_at: float  # time.time() of the first frame: where the GOP's end-to-end latency starts
    first_sequence: int
    frame_step: int = 1  # every frame_step-th input frame was taken: the GOP's rate is the input's / frame_step


async def gather_gops(
    feed: FrameFeed, gop: int, reader: Executor, max_frames: int | None = None,
    frame_step: Callable[[], int] = lambda: 1,
) -> AsyncIterator[CapturedGop]:
    """Whole GOPs from ``feed``, read in ``reader`` so the event loop never blocks on capture.

    Each GOP takes every ``frame_step()``-th frame (asked once per GOP, so a GOP never mixes two rates;
    the sender's ``--degrade framerate``). A trailing partial GOP is dropped and logged. ``max_frames``
    ends the input after that many frames read.
    """
    loop = asyncio.get_running_loop()
    taken = 0
    frames: list[CapturedFrame] = []
    step, skip = frame_step(), 0
    while max_frames is None or taken < max_frames:
        frame = await loop.run_in_executor(reader, feed.get)
        if frame is None:
            break
        taken += 1
        if skip:
            skip -= 1
            continue
        frames.append(frame)
        skip = step - 1
        if len(frames) == gop:
            yield CapturedGop(np.stack([f.image for f in frames]), frames[0].captured_at, frames[0].sequence, step)
            frames, step = [], frame_step()
    if max_frames is not None and taken < max_frames:
        log.info("the input ended after %d frames, before the %d asked for", taken, max_frames)
    if frames:
        log.info("input ended inside a GOP: %d trailing frame(s) not sent", len(frames))
