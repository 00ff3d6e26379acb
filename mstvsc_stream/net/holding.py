"""Datagrams a receiver cannot place yet, held until the session they may belong to starts.

Segments arrive before the first descriptor (a receiver joining mid-stream), or from a newcomer waiting
for the current sender to fall silent. Holding them means the first GOPs of a stream are not lost; the
hold is bounded by count and by bytes, oldest dropped first, so a flood of them costs nothing more.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HeldDatagram:
    datagram: bytes
    addr: Hashable
    arrival: float
    session_id: int | None  # the session a sealed datagram authenticated under; None when plain
    counted: bool = False  # already counted as invalid for the session it arrived in: dropping it counts nothing


class HeldDatagrams:
    """At most ``max_count`` datagrams and ``max_bytes`` bytes, oldest dropped first."""

    def __init__(self, max_count: int, max_bytes: int) -> None:
        self._max_count = max_count
        self._max_bytes = max_bytes
        self._held: deque[HeldDatagram] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, held: HeldDatagram) -> int:
        """Keep ``held``; returns how many datagrams not counted yet were dropped to stay within the bounds."""
        self._held.append(held)
        self._bytes += len(held.datagram)
        dropped = 0
        while len(self._held) > self._max_count or self._bytes > self._max_bytes:
            oldest = self._held.popleft()
            self._bytes -= len(oldest.datagram)
            dropped += not oldest.counted
        return dropped

    def take(self) -> list[HeldDatagram]:
        """Everything held, oldest first; the hold is empty afterwards."""
        held, self._held, self._bytes = list(self._held), deque(), 0
        return held
