"""Receiver side of sealed streams: authenticate each datagram, then refuse any it has accepted before.

A datagram is opened only if its tag verifies under the key (``forged`` otherwise) and its sequence
number is new for its session (``replayed`` otherwise). The replay window is the sliding bitmap of
RFC 4303 / RFC 6479: the highest sequence number seen and which of the :data:`REPLAY_WINDOW` numbers
below it have arrived; older numbers count as replays. Replay state changes only after a datagram
authenticated, so forged sequence numbers cannot move a window, and windows exist only for sessions
that sent at least one authentic datagram (the newest :data:`MAX_SESSIONS` of them), so forged session
ids cannot grow memory. The followed session's window is pinned (:meth:`DatagramOpener.follow`):
authentic datagrams recorded from many earlier sessions must not push it out and re-open replays of
the live stream.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import NamedTuple

from ..wire import WireError
from ..wire.sealing import SealedDatagram, Unsealer

# Reordering a sealed stream survives: datagrams more than this many sequence numbers late are dropped
# as replays. 1024 is 30 GOPs of 1080p at the default payload, far beyond any reorder depth we see.
REPLAY_WINDOW = 1024
MAX_SESSIONS = 16


class ReplayWindow:
    """Which sequence numbers of one session have been accepted, over a sliding window."""

    __slots__ = ("_highest", "_seen", "_size")

    def __init__(self, size: int = REPLAY_WINDOW) -> None:
        self._size = size
        self._highest = -1
        self._seen = 0  # bit i: sequence number highest - i has been accepted

    def is_new(self, sequence: int) -> bool:
        """True unless ``sequence`` was accepted already or is older than the window."""
        behind = self._highest - sequence
        if behind < 0:
            return True
        return behind < self._size and not self._seen >> behind & 1

    def accept(self, sequence: int) -> None:
        """Record ``sequence`` (which :meth:`is_new` approved) as accepted."""
        ahead = sequence - self._highest
        if ahead >= self._size:  # nothing of the old window stays in it: no shift of up to 2**32 bits
            self._seen, self._highest = 1, sequence
        elif ahead > 0:
            self._seen = (self._seen << ahead | 1) & ((1 << self._size) - 1)
            self._highest = sequence
        else:
            self._seen |= 1 << -ahead


class Opened(NamedTuple):
    datagram: bytes  # the plain datagram: header and payload, as an unsealed stream would carry it
    session_id: int  # authenticated: the GOP buffer binds segments to their session with it


class DatagramOpener:
    """Opens sealed datagrams under one key; ``dropped_by_reason`` counts ``short``/``forged``/``replayed``."""

    def __init__(self, key: bytes) -> None:
        self._unsealer = Unsealer(key)
        self._windows: OrderedDict[int, ReplayWindow] = OrderedDict()
        self._followed: int | None = None
        self.dropped_by_reason: Counter[str] = Counter()
        self.opened = 0

    def follow(self, session_id: int) -> None:
        """Pin ``session_id``'s window (the session the receiver follows): it is never evicted."""
        self._followed = session_id

    def open(self, datagram: bytes) -> Opened | None:
        """The authenticated plain datagram, or None (counted) for a forged, replayed or short one."""
        try:
            sealed = SealedDatagram(datagram)
            window = self._windows.get(sealed.session_id)
            if window is not None and not window.is_new(sealed.sequence):
                raise WireError("replayed", f"sequence {sealed.sequence} of session {sealed.session_id:#x} again")
            plain = self._unsealer.open(datagram, sealed)
        except WireError as err:
            self.dropped_by_reason[err.reason] += 1
            return None
        if window is None:
            window = self._windows[sealed.session_id] = ReplayWindow()
            if len(self._windows) > MAX_SESSIONS:
                self._evict_oldest()
        self._windows.move_to_end(sealed.session_id)
        window.accept(sealed.sequence)
        self.opened += 1
        return Opened(plain, sealed.session_id)

    def _evict_oldest(self) -> None:
        oldest = next(iter(self._windows))
        if oldest == self._followed:
            self._windows.move_to_end(oldest)
            oldest = next(iter(self._windows))
        del self._windows[oldest]
