"""Receiver GOP buffer: raw datagrams in, whole GOPs out, in counter order, never stalling.

Pure logic with an injected clock (``now`` on every call), so it is tested without sockets or asyncio.
Like a jitter buffer, it sits between the UDP endpoint and the decoder:

* Every datagram is validated before it touches a buffer (header, label range and exact payload length
  against the session's descriptor, GOP window); bad ones are dropped and counted by ``WireError.reason``.
* GOPs are keyed by the descriptor's 32-bit counter: the 8-bit header number is unwrapped around the
  newest descriptor's counter. A descriptor with a new session id means the sender restarted: whatever is
  pending from the old session is released, then the buffer starts over. Descriptors of sessions already
  replaced are dropped (``stale_session``), and so are segments from any address but the one the current
  session's descriptors come from (``foreign_source``), so a restarted sender's early segments cannot leak
  into the old session's GOPs.
* A GOP whose own descriptor copies were all lost (most of them at 90 % loss) is released with the newest
  descriptor extrapolated to its counter (``descriptor_inferred``); the geometry is fixed per session, and
  a descriptor that changes it without a new session id is dropped (``descriptor_changed``).
* Segments that arrive before any descriptor are held (at most ``max_orphans``, oldest dropped and counted
  as ``segments_orphaned``) and replayed once the first descriptor arrives, so the first GOPs are not lost.
* A GOP is released when all its segments are in, when a datagram of a GOP two or more ahead arrives, or
  ``pacing span + playout margin`` after its first datagram, whichever comes first; since GOPs leave in
  counter order, releasing one also releases every earlier one. A GOP of which no segment arrived is
  released as ``concealed`` (empty payloads), so frames out equal frames sent once a descriptor is in.
* Memory is bounded: the two-ahead rule keeps at most two GOPs pending, each holding at most one payload
  per label of checked length, and held orphans are capped. Segments are accepted only for counters less
  than ``max_ahead`` past the newest descriptor, so bogus GOP numbers cannot push the stream further than
  that (the real stream recovers within ``max_ahead`` GOPs); the price is that a run of more than
  ``max_ahead`` GOPs with every descriptor copy lost drops segments until the next descriptor (at 90 %
  loss with 3 copies per GOP, a 32-GOP run has probability 0.729**32, about 4e-5). A descriptor that
  jumps more than ``max_gap`` GOPs resynchronises instead of emitting the whole gap as concealed GOPs.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass, field

from mstvsc_stream.wire import (
    HEADER_SIZE,
    SegmentHeader,
    SessionDescriptor,
    WireError,
    check_segment,
    unwrap_gop_number,
)

_MAX_COUNTER = 0xFFFFFFFF
# Session ids recently replaced by a restart; late descriptors from them must not flip the stream back.
_RETIRED_SESSIONS = 8
# Recently concealed GOP counters, to tell "arrived too late" (gops_late_dropped) from ordinary late segments.
_RECENTLY_CONCEALED = 64


@dataclass
class GopBufferStats:
    """Counters for the receiver's status line and for loss measurements (segments_received/expected)."""

    datagrams: int = 0
    descriptors_received: int = 0
    descriptors_late: int = 0
    descriptors_inferred: int = 0  # released GOPs that carry an extrapolated descriptor
    sessions: int = 0
    resyncs: int = 0
    gops_received: int = 0  # GOPs of which at least one datagram was accepted
    gops_released: int = 0
    gops_concealed: int = 0  # released with no segment at all
    gops_late_dropped: int = 0  # concealed GOPs whose segments showed up after their release
    segments_expected: int = 0  # over released GOPs
    segments_received: int = 0  # over released GOPs
    segments_late: int = 0
    segments_duplicate: int = 0
    segments_orphaned: int = 0  # held before any descriptor and never usable
    invalid_datagrams: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ReleasedGop:
    """One GOP handed to the decoder; rebuild codes and mask with ``descriptor.packetizer(seed)``."""

    counter: int
    descriptor: SessionDescriptor
    descriptor_inferred: bool
    payloads: Mapping[int, bytes]
    first_arrival: float | None  # None when nothing of it arrived

    @property
    def concealed(self) -> bool:
        return not self.payloads

    @property
    def end_of_input(self) -> bool:
        return self.descriptor.end_of_input


@dataclass(slots=True)
class _PendingGop:
    first_arrival: float
    deadline: float
    descriptor: SessionDescriptor | None = None
    payloads: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Orphan:
    datagram: bytes
    addr: Hashable
    arrival: float


class GopBuffer:
    """Reassembly buffer for one receiving socket; see the module docstring for the rules."""

    def __init__(
        self,
        playout_margin_s: float = 0.1,
        pacing_span_s: float | None = None,
        max_ahead: int = 32,
        max_orphans: int = 256,
        max_gap: int = 1024,
    ) -> None:
        """``pacing_span_s``: how long the sender spreads one GOP's datagrams (None: one GOP duration
        from the descriptor). ``max_ahead``: a segment is accepted for at most this many GOPs past the
        newest descriptor. ``max_gap``: a larger descriptor jump resynchronises without concealing the gap."""
        if playout_margin_s < 0 or (pacing_span_s is not None and pacing_span_s < 0):
            raise ValueError("playout margin and pacing span must be >= 0")
        if not 2 <= max_ahead <= 127:
            raise ValueError(f"max_ahead must be 2..127 (8-bit GOP numbers), got {max_ahead}")
        if max_orphans < 0 or max_gap < max_ahead:
            raise ValueError("max_orphans must be >= 0 and max_gap >= max_ahead")
        self.stats = GopBufferStats()
        self._playout_margin_s = playout_margin_s
        self._pacing_span_s = pacing_span_s
        self._max_ahead = max_ahead
        self._max_gap = max_gap
        self._session: SessionDescriptor | None = None  # newest descriptor of the current session
        self._source: Hashable = None
        self._pending: dict[int, _PendingGop] = {}
        self._next = 0  # counter of the next GOP to release
        self._newest = -1  # highest counter any accepted datagram belonged to
        self._end_counter: int | None = None
        self._finished = False
        self._orphans: deque[_Orphan] = deque(maxlen=max_orphans)
        self._retired: deque[int] = deque(maxlen=_RETIRED_SESSIONS)
        self._recently_concealed: deque[int] = deque(maxlen=_RECENTLY_CONCEALED)

    @property
    def descriptor(self) -> SessionDescriptor | None:
        """The newest valid descriptor of the current session (None before the first one)."""
        return self._session

    @property
    def finished(self) -> bool:
        """The sender flagged end of input and that last GOP has been released: the receiver may exit."""
        return self._finished

    @property
    def pending_gops(self) -> int:
        return len(self._pending)

    @property
    def held_orphans(self) -> int:
        return len(self._orphans)

    def push(self, datagram: bytes, addr: Hashable, now: float) -> list[ReleasedGop]:
        """Take one datagram that arrived at ``now`` from ``addr``; return the GOPs it lets go."""
        self.stats.datagrams += 1
        released: list[ReleasedGop] = []
        try:
            header = SegmentHeader.parse(datagram)
            if header.is_descriptor:
                self._accept_descriptor(header, datagram, addr, now, released)
            elif self._session is None:
                self._hold_orphan(_Orphan(bytes(datagram), addr, now))
            else:
                self._accept_segment(header, datagram, addr, now)
        except WireError as err:
            self._count_invalid(err.reason)
        released += self.poll(now)
        return released

    def poll(self, now: float) -> list[ReleasedGop]:
        """Release every GOP that is complete, overtaken (two ahead) or past its deadline at ``now``."""
        if self._session is None:
            return []
        last = self._newest - 2
        for counter, gop in self._pending.items():
            if counter > last and (len(gop.payloads) == self._session.n_segments or now >= gop.deadline):
                last = counter
        return self._release_through(last)

    def next_deadline(self) -> float | None:
        """When :meth:`poll` should next be called (None: nothing pending)."""
        return min((gop.deadline for gop in self._pending.values()), default=None)

    def _count_invalid(self, reason: str) -> None:
        self.stats.invalid_datagrams += 1
        self.stats.invalid_by_reason[reason] += 1

    def _hold_orphan(self, orphan: _Orphan) -> None:
        if len(self._orphans) == self._orphans.maxlen:
            self.stats.segments_orphaned += 1
        self._orphans.append(orphan)

    def _accept_descriptor(
        self, header: SegmentHeader, datagram: bytes, addr: Hashable, now: float, released: list[ReleasedGop]
    ) -> None:
        descriptor = SessionDescriptor.parse(memoryview(datagram)[HEADER_SIZE:])
        counter = descriptor.gop_counter
        if counter % 256 != header.gop:
            raise WireError("descriptor_inconsistent", f"header GOP number {header.gop} but counter {counter}")
        starting = self._session is None or descriptor.session_id != self._session.session_id
        if starting:
            if descriptor.session_id in self._retired:
                raise WireError("stale_session", f"descriptor of replaced session {descriptor.session_id:#x}")
            released += self._start_session(descriptor, addr)
        elif descriptor.stream_key() != self._session.stream_key():
            raise WireError("descriptor_changed", "stream geometry changed without a new session id")
        self.stats.descriptors_received += 1
        self._source = addr
        if descriptor.end_of_input:
            self._end_counter = counter
        if counter < self._next:
            self.stats.descriptors_late += 1
            self._finished = self._finished or descriptor.end_of_input  # the last GOP already left
            return
        if counter - self._next > self._max_gap:
            released += self._flush()
            self._next = counter
            self.stats.resyncs += 1
        if counter > self._session.gop_counter:
            self._session = descriptor
        gop = self._pending_gop(counter, now)
        if gop.descriptor is None:
            gop.descriptor = descriptor

    def _start_session(self, descriptor: SessionDescriptor, addr: Hashable) -> list[ReleasedGop]:
        flushed = self._flush()
        if self._session is not None:
            self._retired.append(self._session.session_id)
        self.stats.sessions += 1
        self._session = descriptor
        self._source = addr
        self._end_counter = None
        self._finished = False
        self._recently_concealed.clear()
        # Held segments may belong to GOPs just before the first descriptor: open the window that far back,
        # then start at the earliest GOP that actually got something.
        self._next = max(0, descriptor.gop_counter - self._max_ahead + 1)
        self._newest = -1
        self._replay_orphans(addr)
        self._next = min([descriptor.gop_counter, *self._pending])
        return flushed

    def _replay_orphans(self, addr: Hashable) -> None:
        orphans, self._orphans = self._orphans, deque(maxlen=self._orphans.maxlen)
        for orphan in orphans:
            if orphan.addr != addr:
                self.stats.segments_orphaned += 1
                continue
            try:
                self._accept_segment(SegmentHeader.parse(orphan.datagram), orphan.datagram, addr, orphan.arrival)
            except WireError as err:
                self._count_invalid(err.reason)

    def _accept_segment(self, header: SegmentHeader, datagram: bytes, addr: Hashable, now: float) -> None:
        session = self._session
        assert session is not None
        if addr != self._source:
            raise WireError("foreign_source", f"segment from {addr!r}, session comes from {self._source!r}")
        check_segment(header.label, len(datagram) - HEADER_SIZE, session.n_elements, session.payload_size)
        counter = unwrap_gop_number(header.gop, session.gop_counter)
        if counter < self._next:
            self._count_late(counter)
            return
        if counter >= min(session.gop_counter + self._max_ahead, _MAX_COUNTER + 1):
            raise WireError("gop_window", f"GOP {counter} too far past the newest descriptor's {session.gop_counter}")
        gop = self._pending_gop(counter, now)
        if header.label in gop.payloads:
            self.stats.segments_duplicate += 1
        else:
            gop.payloads[header.label] = bytes(datagram[HEADER_SIZE:])

    def _count_late(self, counter: int) -> None:
        self.stats.segments_late += 1
        if counter in self._recently_concealed:
            self._recently_concealed.remove(counter)
            self.stats.gops_late_dropped += 1

    def _pending_gop(self, counter: int, now: float) -> _PendingGop:
        gop = self._pending.get(counter)
        if gop is None:
            session = self._session
            assert session is not None
            span = session.gop_duration_s if self._pacing_span_s is None else self._pacing_span_s
            gop = self._pending[counter] = _PendingGop(now, now + span + self._playout_margin_s)
            self.stats.gops_received += 1
            self._newest = max(self._newest, counter)
        return gop

    def _flush(self) -> list[ReleasedGop]:
        """Release everything pending now, gaps concealed."""
        return self._release_through(max(self._pending, default=self._next - 1))

    def _release_through(self, last: int) -> list[ReleasedGop]:
        released = []
        while self._next <= last:
            released.append(self._release(self._next, self._pending.pop(self._next, None)))
            self._next += 1
        return released

    def _release(self, counter: int, gop: _PendingGop | None) -> ReleasedGop:
        session = self._session
        assert session is not None
        own = gop.descriptor if gop is not None else None
        descriptor = own if own is not None else session.for_gop(counter)
        payloads = gop.payloads if gop is not None else {}
        stats = self.stats
        stats.gops_released += 1
        stats.descriptors_inferred += own is None
        stats.segments_expected += descriptor.n_segments
        stats.segments_received += len(payloads)
        if not payloads:
            stats.gops_concealed += 1
            self._recently_concealed.append(counter)
        if counter == self._end_counter:
            self._finished = True
        return ReleasedGop(counter, descriptor, own is None, payloads, gop.first_arrival if gop else None)
