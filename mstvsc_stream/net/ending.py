"""When a stream is over: the end-of-input flag, believed only from the stream itself and only at its end.

The flag rides on the last GOP's descriptor (the sender repeats it after that GOP). Anyone who has read
one descriptor can forge it, so a receiver honours it only when it comes from the followed source and
session (the GOP buffer's job), names the newest GOP received or the one after it (whose own datagrams
may all have been lost, or not have come yet when the flag rides on its own descriptor), and nothing
newer follows within a GOP duration of that GOP: a forged flag in the middle of a live stream, even one
naming the GOP still to come, is cancelled by the stream's next GOP. A plain stream can still be ended by a spoofer of the sender's own address; sealed streams cannot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class EndOfInput:
    """A believed end flag, waiting for one GOP duration of nothing newer."""

    counter: int  # the flagged (last) GOP: a datagram for a newer one cancels the end
    due: float  # when the stream counts as ended


class EndWatch:
    """Tracks the end flag of the followed session; :meth:`due` says when it ends the stream."""

    def __init__(self) -> None:
        self._end: EndOfInput | None = None

    def flagged(self, counter: int, newest: int, now: float, gop_duration_s: float, margin_s: float) -> None:
        """An end flag for GOP ``counter`` from the followed session at ``now``; ``newest``: the newest GOP
        received. Nothing newer may follow for a GOP duration per GOP flagged ahead, and ``margin_s``."""
        ahead = counter - newest
        if 0 <= ahead <= 1:  # an earlier GOP (a replay, a forgery) or one further ahead (a forgery) ends nothing
            self._end = EndOfInput(counter, now + (ahead + 1) * gop_duration_s + margin_s)

    def saw(self, counter: int) -> None:
        """A datagram of the followed session (not an end flag) for GOP ``counter``."""
        if self._end is not None and counter > self._end.counter:
            self._end = None  # the stream goes on: the flag was forged, or stale

    def due(self) -> float | None:
        return None if self._end is None else self._end.due

    def ended(self, now: float) -> EndOfInput | None:
        """The end, once due at ``now`` (then forgotten)."""
        end = self._end
        if end is None or now < end.due:
            return None
        self._end = None
        return end

    def reset(self) -> None:
        self._end = None
