"""Timing samples summarised as percentiles, for status lines and reports (sender, receiver, loss relay).

Tails matter more than means in real-time streaming (one slow decode is a visible freeze), so every
timing is reported as p50 and p95. Only the newest samples are kept, so memory stays bounded on a
stream that runs for days.
"""

from __future__ import annotations

from collections import deque

import numpy as np

MAX_SAMPLES = 10_000


class Timings:
    """Millisecond samples of one kind (encode, decode, latency)."""

    def __init__(self, max_samples: int = MAX_SAMPLES) -> None:
        self._samples: deque[float] = deque(maxlen=max_samples)

    def add(self, milliseconds: float) -> None:
        self._samples.append(milliseconds)

    def __len__(self) -> int:
        return len(self._samples)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100) in ms, rounded to 0.1 ms; None without samples."""
        if not self._samples:
            return None
        return round(float(np.percentile(np.fromiter(self._samples, float), q)), 1)

    def summary(self) -> str:
        """``"p50 12.3 p95 45.6 ms"`` for a log line, or ``"n/a"``."""
        if not self._samples:
            return "n/a"
        return f"p50 {self.percentile(50):.0f} p95 {self.percentile(95):.0f} ms"
