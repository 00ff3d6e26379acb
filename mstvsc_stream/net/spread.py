"""How long one GOP's datagrams take to arrive, learned from the stream itself.

A GOP that misses segments (every GOP, on a lossy link) is released at its deadline: first arrival plus
the time its datagrams take to come in, plus the playout margin. The sender's pacing span is not on the
wire, so without this the receiver has to assume the worst (a whole GOP duration) and adds up to a GOP
duration of latency to every lossy GOP. Learning it from arrivals keeps that wait as short as the
sender's pacing allows, and follows a sender that paces more slowly: a segment arriving after its GOP
left still counts (late), and the estimate never exceeds the ceiling, so a stall cannot inflate it
beyond the old behaviour.

A stream's first GOPs say little about its pacing: the sender spreads them over its configured share of
the GOP interval until the receiver's reports arrive, then over the time its congestion controller's rate
needs, often the whole interval. Learning from the first GOP alone released the next, slower ones before
their last segments (about five late segments at the start of every stream). So the estimate is only
trusted after :data:`WARMUP_GOPS` GOPs; before that, the ceiling.
"""

from __future__ import annotations

from collections import deque

WINDOW_GOPS = 16  # the estimate is the longest spread over this many recent GOPs
WARMUP_GOPS = 8  # GOPs released before the estimate replaces the ceiling (about 1 s of 4-frame GOPs at 30 fps)
_REMEMBERED_FIRSTS = 4  # released GOPs whose first arrival is kept to measure late segments


class ArrivalSpread:
    """Longest first-to-last arrival time over the recent GOPs (0 for a GOP of one datagram)."""

    def __init__(self, window: int = WINDOW_GOPS, warmup: int = WARMUP_GOPS) -> None:
        self._spreads: deque[float] = deque(maxlen=window)
        self._firsts: dict[int, float] = {}
        self._warmup = warmup
        self._released = 0  # GOPs released since the start (or the last reset)

    def released(self, counter: int, first_arrival: float, last_arrival: float) -> None:
        self._spreads.append(last_arrival - first_arrival)
        self._released += 1
        self._firsts[counter] = first_arrival
        while len(self._firsts) > _REMEMBERED_FIRSTS:
            del self._firsts[min(self._firsts)]

    def late(self, counter: int, arrival: float) -> None:
        """A segment of GOP ``counter`` arrived after the GOP was released."""
        first = self._firsts.get(counter)
        if first is not None:
            self._spreads.append(arrival - first)

    def span(self, ceiling: float) -> float:
        """The learned spread, at most ``ceiling`` (which is also the answer while warming up)."""
        return min(ceiling, max(self._spreads)) if self._released >= self._warmup else ceiling

    def reset(self) -> None:
        self._spreads.clear()
        self._firsts.clear()
        self._released = 0
