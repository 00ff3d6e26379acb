"""Receiver side: decoded frames out to the screen and the recording, at the stream's frame rate.

Decoded GOPs come in bursts of ``gop`` frames; playing them at 1/fps spacing shows motion at its own
speed. Frames are never delayed to wait for a late GOP and never invented to fill a gap (the frame
count out equals the count sent), so a slow decoder shows up as a later frame, not a stall.

A GOP that arrives late pushes the output schedule back, and since GOPs then keep arriving one GOP
duration apart, nothing would ever pull it forward again: one slow first decode (sessions opening)
would add its delay to every frame of the stream. So a GOP that finds the schedule lagging (it has to
wait more than a frame for its predecessor's frames) plays up to 25 % faster until the lag is worked
off, the way live players catch up after a stall.

End-to-end latency is measured here, from the capture time of a GOP's first frame (the sender's wall
clock, carried in the session descriptor) to the moment that frame is shown or written (this host's
wall clock). It is only meaningful when both clocks are synchronised, e.g. by NTP/PTP or by running
both ends on one host; GOPs whose descriptor was lost (and whose capture time is therefore an
extrapolation) are not sampled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
import numpy as np

from ..media.output import FrameOutput
from ..timings import Timings
from ..wire import SessionDescriptor

CATCH_UP_SPEED = 1.25  # the fastest a lagging schedule plays, relative to the stream's frame rate


@dataclass(frozen=True, slots=True)
class DecodedGop:
    frames: np.ndarray  # uint8 RGB [T, H, W, 3]
    descriptor: SessionDescriptor
    capture_time_known: bool  # the descriptor is the GOP's own, not extrapolated from another GOP's
    decoded_at: float = field(default_factory=time.monotonic)  # made when decoding ends


def frame_period(fps: float, frames: int, first_out: float, decoded_at: float) -> float:
    """Spacing of a GOP's frames: the stream's, or shorter when its first frame goes out (``first_out``)
    more than a frame after the GOP was decoded, so the lag is worked off within this GOP as far as
    :data:`CATCH_UP_SPEED` allows (see the module docstring)."""
    period = 1.0 / fps
    lag = first_out - decoded_at - period  # waiting up to a frame is normal jitter
    if lag <= 0 or frames < 1:
        return period
    return max(period / CATCH_UP_SPEED, period - lag / frames)


class Playout:
    """Hands frames to ``output`` (window and/or recording, see
    :class:`~mstvsc_stream.media.output.FrameOutput`) at the stream's rate; stops taking frames after
    ``max_frames``. Without an output, frames are only counted and timed. Each frame carries its
    capture time, so a recording keeps the speed of a stretch the sender sent at another frame rate.
    """

    def __init__(self, output: FrameOutput | None, max_frames: int | None = None) -> None:
        self.frames_out = 0
        self.latency_ms = Timings()
        self._output = output
        self._max_frames = max_frames
        self._due = float("-inf")  # time.monotonic() the last frame went out at

    @property
    def limit_reached(self) -> bool:
        return self._max_frames is not None and self.frames_out >= self._max_frames

    @property
    def window_closed(self) -> bool:
        """The user closed the window (or pressed q or Esc in it)."""
        return self._output is not None and self._output.window_closed

    @property
    def output(self) -> FrameOutput | None:
        return self._output

    @property
    def output_ended(self) -> bool:
        """The output stopped (an error, or a pipe's reader went away): see ``output.ended``."""
        return self._output is not None and self._output.ended is not None

    async def play(self, gop: DecodedGop, catch_up: bool = False) -> None:
        """Outputs the GOP's frames 1/fps apart; ``catch_up`` (a backlog of decoded GOPs is waiting, e.g.
        after a network stall or from a sender faster than real time) sends them without waiting, so a
        burst does not leave the picture late for good."""
        first_out = max(time.monotonic(), self._due + 1.0 / gop.descriptor.fps)
        period = 0.0 if catch_up else frame_period(gop.descriptor.fps, len(gop.frames), first_out, gop.decoded_at)
        for index, frame in enumerate(gop.frames):
            if self.limit_reached or self.window_closed or self.output_ended:
                return
            now = time.monotonic()
            self._due = max(now, self._due + period)
            if self._due > now:
                await asyncio.sleep(self._due - now)
            if self._output is not None:
                at = gop.descriptor.capture_time_us / 1e6 + index / gop.descriptor.fps
                await self._output.put(frame, gop.descriptor.fps, at)
            self.frames_out += 1
            if index == 0 and gop.capture_time_known:
                self.latency_ms.add((time.time() - gop.descriptor.capture_time_us / 1e6) * 1000)

    def close(self) -> None:
        """Finishes the output: queued frames written, the recording finalised, the window closed."""
        if self._output is not None:
            self._output.close()
