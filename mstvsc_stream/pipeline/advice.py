"""What the two ends say when they cannot keep up: the shared words and a throttled warning.

The sender's and receiver's warnings, status lines and stats, and ``tools/latency_report.py``, all use
these phrases, so a user who reads "dropped (encoder behind)" in one finds the same words in the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

ENCODER_BEHIND = "encoder behind"
DECODER_BEHIND = "decoder behind"
DROPPED = f"dropped ({ENCODER_BEHIND})"  # sender: whole GOPs never sent
HELD = f"held ({DECODER_BEHIND})"  # receiver: GOPs shown as the last frame instead of decoded
DEGRADED = "degraded"  # sender: streaming at a lower rung (--degrade)

SENDER_ADVICE = ("give the encoder more CPU (--threads, or stop other work), or send a smaller --size, "
                 "or let it step down with --degrade framerate|resolution")
RECEIVER_ADVICE = ("give the decoder more CPU (--threads, or stop other work), or have the sender use a "
                   "smaller --size or --degrade framerate|resolution")

WARN_INTERVAL_S = 5.0


class ThrottledWarning:
    """A warning logged at most once per ``interval_s``; what happened in between is in the counters
    the next line quotes."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic,
                 interval_s: float = WARN_INTERVAL_S) -> None:
        self._log = logger
        self._clock = clock
        self._interval_s = interval_s
        self._last: float | None = None

    def warn(self, message: str | Callable[[], str]) -> bool:
        """Logs ``message`` unless a line went out less than ``interval_s`` ago; says whether it did. A
        callable is only called when the line goes out (the quoted percentiles cost work while the CPU is
        already behind)."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval_s:
            return False
        self._last = now
        self._log.warning("%s", message() if callable(message) else message)
        return True
