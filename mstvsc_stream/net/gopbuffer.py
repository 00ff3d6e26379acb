"""Receiver GOP buffer: raw datagrams in, whole GOPs out, in counter order, never stalling.

Pure logic with an injected clock (``now`` on every call), so it is tested without sockets or asyncio.
Like a jitter buffer, it sits between the UDP endpoint and the decoder:

* Every datagram is validated before it touches a buffer (header, label range and exact payload length
  against the session's descriptor, GOP window, size limits); bad ones are dropped and counted by
  ``WireError.reason``.
* GOPs are keyed by the descriptor's 32-bit counter: the 8-bit header number is unwrapped around the
  newest descriptor's counter. A descriptor with a new session id means the sender restarted: whatever is
  pending from the old session is released, then the buffer starts over. Descriptors of sessions already
  replaced or ended are dropped (``stale_session``, the last 64 remembered, from any address), and so are
  segments from any address but the one the current session's descriptors come from (``foreign_source``).
* A new session id from the followed address replaces the current session at once (a sender restarted
  behind a relay or a NAT that keeps its port, or one that changed its frame size or rate). Its segments
  that arrived before its descriptor are held and replayed under its own counter: sealed segments name
  their session, so this is exact; plain ones do not, so the buffer keeps aside what did not fit the old
  session's timeline (GOPs its clock could not have reached yet, segments of another geometry or beyond the
  GOP window) and replays that, see :meth:`GopBuffer._unexplained`. Another address takes over only as
  the :class:`~.sources.SourcePolicy` says: by default at once (the paper's receiver); with ``lock`` only
  once the followed address has been silent for ``silence_s`` (no datagram that fits the current
  session's timeline), meanwhile the newcomer's descriptors are counted (``second_source``) and its
  segments held like orphans.
* The end-of-input flag is believed only from the followed source and session, for the newest GOP (or
  the next), and only once nothing newer followed within a GOP duration (:mod:`.ending`); then the
  session is over: :attr:`finished`, and its descriptors are ``stale_session`` from then on.
* A GOP whose own descriptor copies were all lost (most of them at 90 % loss) is released with the newest
  descriptor extrapolated to its counter (``descriptor_inferred``); the geometry is fixed per session, and
  a descriptor that changes it without a new session id is dropped (``descriptor_changed``).
* Segments that arrive before any descriptor are held (at most ``max_orphans`` and ``max_orphan_bytes``,
  oldest dropped and counted as ``segments_orphaned``) and replayed once the first descriptor arrives, so
  the first GOPs are not lost.
* A GOP is released when all its segments are in, when a datagram of a GOP two or more ahead arrives, or
  ``pacing span + playout margin`` after its first datagram, whichever comes first (with ``learn_span``
  the pacing span is learned from arrivals, :mod:`.spread`); since GOPs leave in
  counter order, releasing one also releases every earlier one. A GOP of which no segment arrived is
  released as ``concealed`` (empty payloads), so frames out equal frames sent once a descriptor is in.
* Memory is bounded: the two-ahead rule keeps at most two GOPs pending, each holding at most one payload
  per label of checked length, and held orphans are capped. Segments are accepted only for counters less
  than ``max_ahead`` past the newest descriptor, so bogus GOP numbers cannot push the stream further than
  that (the real stream recovers within ``max_ahead`` GOPs); the price is that a run of more than
  ``max_ahead`` GOPs with every descriptor copy lost drops segments until the next descriptor (at 90 %
  loss with 3 copies per GOP, a 32-GOP run has probability 0.729**32, about 4e-5). A descriptor that
  jumps more than ``max_gap`` GOPs resynchronises instead of emitting the whole gap as concealed GOPs.
  Descriptors claiming GOPs over ``max_gop_bytes`` packed bytes or ``max_segments`` segments are refused
  (``descriptor_limit``).
* ``guarded`` (what the receiving application uses) holds made-up GOP numbers to the stream's own clock.
  A GOP beyond the newest descriptor's counter is *speculative* (its descriptors may all have been lost,
  or it may be forged): being complete, past its deadline or two ahead, it releases GOPs only up to
  ``newest described counter - 1 + (time since that descriptor) / GOP duration``, so a flood of new GOP
  numbers moves the release point no faster than the stream itself does, and never evicts the GOP being
  received before about one GOP duration. Up to ``max_ahead`` GOPs may then be pending. A descriptor
  jumping more than ``max_ahead`` past the newest one is believed only when that many GOP durations have
  passed or the session has been silent for the policy's ``silence_s`` (``gop_window`` otherwise), and one
  far *behind* a silent stream rewinds it, so a believed forgery strands the stream for ``silence_s`` at most.
* ``push(..., session_id=...)``: the datagram was authenticated (sealed streams) under that session, so
  descriptors must name it and segments of any other session are dropped (``stale_session``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from mstvsc_stream.wire import (
    HEADER_SIZE,
    SegmentHeader,
    SessionDescriptor,
    WireError,
    check_segment,
    packed_size,
    unwrap_gop_number,
)
from mstvsc_stream.wire.limits import MAX_GOP_BYTES, MAX_SEGMENTS_PER_GOP

from .ending import EndWatch
from .holding import HeldDatagram, HeldDatagrams
from .sources import NewcomerLog, SourcePolicy
from .spread import ArrivalSpread

log = logging.getLogger(__name__)

_MAX_COUNTER = 0xFFFFFFFF
# Session ids recently replaced; late descriptors from them must not flip the stream back (8 bytes each).
_RETIRED_SESSIONS = 64
# Recently concealed GOP counters, to tell "arrived too late" (gops_late_dropped) from ordinary late segments.
_RECENTLY_CONCEALED = 64
DEFAULT_MAX_ORPHAN_BYTES = 1 << 20
# A GOP without a descriptor of its own more than this many GOPs past where the session's clock stood when
# it began to arrive cannot be the session's own: a sender's GOPs trail its clock by at most about one.
_CLOCK_SLACK = 2
# A plain segment this many GOPs behind the release point is kept aside too, in case a new session explains it.
_LATE_SLACK = 4


@dataclass
class GopBufferStats:
    """Counters for the receiver's status line and for loss measurements (segments_received/expected)."""

    datagrams: int = 0
    descriptors_received: int = 0
    descriptors_late: int = 0
    descriptors_inferred: int = 0  # released GOPs that carry an extrapolated descriptor
    sessions: int = 0
    takeovers: int = 0  # a newcomer followed after the current session fell silent
    resyncs: int = 0
    gops_received: int = 0  # GOPs of which at least one datagram was accepted
    gops_released: int = 0
    gops_concealed: int = 0  # released with no segment at all
    gops_late_dropped: int = 0  # concealed GOPs whose segments showed up after their release
    segments_expected: int = 0  # over released GOPs
    segments_received: int = 0  # over released GOPs
    segments_late: int = 0
    segments_duplicate: int = 0
    segments_held: int = 0  # kept before their session's descriptor (a first one, a newcomer's, a restart's)
    segments_orphaned: int = 0  # held and never usable
    invalid_datagrams: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)


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
    last_arrival: float = -math.inf
    descriptor: SessionDescriptor | None = None
    payloads: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Newcomer:
    descriptor: SessionDescriptor
    datagram: HeldDatagram  # the descriptor datagram, accepted again when the newcomer takes over


class GopBuffer:
    """Reassembly buffer for one receiving socket; see the module docstring for the rules."""

    def __init__(
        self,
        playout_margin_s: float = 0.1,
        pacing_span_s: float | None = None,
        max_ahead: int = 32,
        max_orphans: int = 256,
        max_gap: int = 1024,
        *,
        sources: SourcePolicy | None = None,
        guarded: bool = False,
        learn_span: bool = False,
        max_gop_bytes: int = MAX_GOP_BYTES,
        max_segments: int = MAX_SEGMENTS_PER_GOP,
        max_orphan_bytes: int = DEFAULT_MAX_ORPHAN_BYTES,
    ) -> None:
        """``pacing_span_s``: how long the sender spreads one GOP's datagrams (None: one GOP duration
        from the descriptor, or with ``learn_span`` the spread of recent GOPs' arrivals, at most that).
        ``max_ahead``: a segment is accepted for at most this many GOPs past the
        newest descriptor. ``max_gap``: a larger descriptor jump resynchronises without concealing the gap."""
        if playout_margin_s < 0 or (pacing_span_s is not None and pacing_span_s < 0):
            raise ValueError("playout margin and pacing span must be >= 0")
        if not 2 <= max_ahead <= 127:
            raise ValueError(f"max_ahead must be 2..127 (8-bit GOP numbers), got {max_ahead}")
        if max_orphans < 0 or max_gap < max_ahead:
            raise ValueError("max_orphans must be >= 0 and max_gap >= max_ahead")
        if min(max_gop_bytes, max_segments, max_orphan_bytes) < 1:
            raise ValueError("GOP, segment and orphan limits must be positive")
        self.stats = GopBufferStats()
        self._playout_margin_s = playout_margin_s
        self._pacing_span_s = pacing_span_s
        self._spread = ArrivalSpread() if learn_span and pacing_span_s is None else None
        self._max_ahead = max_ahead
        self._max_gap = max_gap
        self._sources = sources or SourcePolicy()
        self._guarded = guarded
        self._max_gop_bytes = max_gop_bytes
        self._max_segments = max_segments
        self._session: SessionDescriptor | None = None  # newest descriptor of the current session
        self._source: Hashable = None
        self._session_seen = -math.inf  # when the followed session last proved alive (a datagram that fits it)
        self._descriptor_seen = -math.inf  # when its last descriptor arrived
        self._newcomer: _Newcomer | None = None  # its newest descriptor, waiting for the current session's silence
        self._newcomer_log = NewcomerLog()
        self._pending: dict[int, _PendingGop] = {}
        self._next = 0  # counter of the next GOP to release
        self._newest = -1  # highest counter any accepted datagram belonged to
        self._described = -1  # highest counter whose own descriptor arrived, and when it first did
        self._described_at = -math.inf
        self._end = EndWatch()
        self._finished = False
        self._orphans = HeldDatagrams(max_orphans, max_orphan_bytes)
        self._retired: deque[int] = deque(maxlen=_RETIRED_SESSIONS)
        self._recently_concealed: deque[int] = deque(maxlen=_RECENTLY_CONCEALED)

    @property
    def descriptor(self) -> SessionDescriptor | None:
        """The newest valid descriptor of the current session (None before the first one)."""
        return self._session

    @property
    def source(self) -> Hashable:
        """The address the current session comes from (None before the first descriptor)."""
        return self._source

    @property
    def finished(self) -> bool:
        """The followed session flagged the end of its input, nothing newer followed, and its last GOP has
        been released: the receiver may exit. Cleared when another session starts."""
        return self._finished

    @property
    def last_heard(self) -> float | None:
        """When the followed session last sent a datagram that fit it (None before the first)."""
        return self._session_seen if math.isfinite(self._session_seen) else None

    def hears(self, addr: Hashable) -> bool:
        """Whether the source policy considers ``addr`` at all; counts ``foreign_source`` when not. A
        receiver asks first, before spending work on a datagram."""
        if self._sources.hears(addr):
            return True
        self._count_invalid("foreign_source")
        return False

    @property
    def pending_gops(self) -> int:
        return len(self._pending)

    @property
    def held_orphans(self) -> int:
        return len(self._orphans)

    def push(self, datagram: bytes, addr: Hashable, now: float, session_id: int | None = None) -> list[ReleasedGop]:
        """Take one datagram that arrived at ``now`` from ``addr``; return the GOPs it lets go.

        ``session_id``: the session a sealed datagram authenticated under (None for plain streams)."""
        self.stats.datagrams += 1
        released: list[ReleasedGop] = []
        if not self.hears(addr):
            return released
        try:
            header = SegmentHeader.parse(datagram)
            if header.is_descriptor:
                self._accept_descriptor(header, datagram, addr, now, session_id, released)
            elif self._session is None or self._held_for_newcomer(addr, session_id):
                self._hold(HeldDatagram(bytes(datagram), addr, now, session_id))
            else:
                self._accept_segment(header, datagram, addr, now, session_id)
        except WireError as err:
            self._count_invalid(err.reason)
        released += self.poll(now)
        return released

    def poll(self, now: float) -> list[ReleasedGop]:
        """Release every GOP that is complete, overtaken (two ahead) or past its deadline at ``now``, and let
        a waiting newcomer take over once the current session has been silent long enough. ``now = inf``
        releases everything pending (the end of a run), with no takeover."""
        waited = self._newcomer is not None and math.isfinite(now) and self._silent(now)
        released = self._take_over(now) if waited else []
        end = self._end.ended(now) if self._session is not None else None
        if end is not None:
            released += self._finish(end.counter)
            if self._newcomer is not None:  # no need to wait for the silence of a stream that has ended
                released += self._take_over(now)
        session = self._session
        if session is None:
            return released
        if not self._guarded:
            last = self._newest - 2
            for counter, gop in self._pending.items():
                if counter > last and (len(gop.payloads) == session.n_segments or now >= gop.deadline):
                    last = counter
            return released + self._release_through(last)
        described, speculative = self._described - 2, self._newest - 2
        for counter, gop in self._pending.items():
            if len(gop.payloads) == session.n_segments or now >= gop.deadline:
                if counter <= self._described:
                    described = max(described, counter)
                else:
                    speculative = max(speculative, counter)
        return released + self._release_through(max(described, min(speculative, self._clock_limit(now))))

    def _take_over(self, now: float) -> list[ReleasedGop]:
        """The newcomer's newest descriptor, accepted now that the current session is silent."""
        assert self._newcomer is not None
        held = self._newcomer.datagram
        self._newcomer = None
        released: list[ReleasedGop] = []
        try:
            header = SegmentHeader.parse(held.datagram)
            self._accept_descriptor(header, held.datagram, held.addr, now, held.session_id, released)
        except WireError as err:
            self._count_invalid(err.reason)
        return released

    def next_deadline(self) -> float | None:
        """When :meth:`poll` should next be called (None: nothing pending or waiting)."""
        due = [] if self._newcomer is None else [self._session_seen + self._sources.silence_s]
        end_due = self._end.due()
        if end_due is not None and self._session is not None:
            due.append(end_due)
        if not self._guarded:
            return min([*due, *(gop.deadline for gop in self._pending.values())], default=None)
        session = self._session
        for counter, gop in self._pending.items():
            if counter <= self._described:
                due.append(gop.deadline)
                continue
            ready = counter <= self._newest - 2 or (session is not None and len(gop.payloads) == session.n_segments)
            due.append(max(-math.inf if ready else gop.deadline, self._clock_time(counter)))  # then the clock allows
        return min(due, default=None)

    def _clock_limit(self, now: float) -> int:
        """How far speculative GOPs may release: the newest described GOP's predecessor, plus one GOP per
        GOP duration since that descriptor arrived."""
        if math.isinf(now):
            return self._newest
        assert self._session is not None
        elapsed = max(0.0, now - self._described_at)
        return self._described - 1 + int(elapsed / self._session.gop_duration_s + 1e-9)

    def _clock_time(self, counter: int) -> float:
        """When :meth:`_clock_limit` reaches ``counter``."""
        assert self._session is not None
        return self._described_at + (counter - self._described + 1) * self._session.gop_duration_s

    def _count_invalid(self, reason: str) -> None:
        self.stats.invalid_datagrams += 1
        self.stats.invalid_by_reason[reason] += 1

    def _held_for_newcomer(self, addr: Hashable, session_id: int | None) -> bool:
        """Segments of a newcomer waiting to take over are held like orphans. Plain segments carry no
        session id, so those of a newcomer on the current session's own address cannot be told apart."""
        newcomer = self._newcomer
        if newcomer is None or addr != newcomer.datagram.addr:
            return False
        if session_id is not None:
            return session_id == newcomer.descriptor.session_id
        return addr != self._source

    def _hold(self, held: HeldDatagram) -> None:
        """Keep a segment that no session explains yet (bounded; the oldest go, counted as orphaned)."""
        self.stats.segments_held += not held.counted
        self.stats.segments_orphaned += self._orphans.hold(held)

    def _silent(self, now: float) -> bool:
        return self._session is None or now - self._session_seen >= self._sources.silence_s

    def _parse_descriptor(self, header: SegmentHeader, datagram: bytes, session_id: int | None) -> SessionDescriptor:
        descriptor = SessionDescriptor.parse(memoryview(datagram)[HEADER_SIZE:])
        if descriptor.gop_counter % 256 != header.gop:
            raise WireError(
                "descriptor_inconsistent", f"header GOP number {header.gop} but counter {descriptor.gop_counter}"
            )
        if session_id is not None and descriptor.session_id != session_id:
            raise WireError("descriptor_inconsistent", "descriptor names another session than it was sealed under")
        if packed_size(descriptor.n_elements) > self._max_gop_bytes or descriptor.n_segments > self._max_segments:
            raise WireError(
                "descriptor_limit",
                f"{descriptor.n_elements} elements in {descriptor.n_segments} segments exceed this receiver's limits",
            )
        return descriptor

    def _accept_descriptor(
        self,
        header: SegmentHeader,
        datagram: bytes,
        addr: Hashable,
        now: float,
        session_id: int | None,
        released: list[ReleasedGop],
    ) -> None:
        descriptor = self._parse_descriptor(header, datagram, session_id)
        counter = descriptor.gop_counter
        session = self._session
        if session is None or (descriptor.session_id, addr) != (session.session_id, self._source):
            self._arbitrate(descriptor, HeldDatagram(bytes(datagram), addr, now, session_id), released)
        elif descriptor.stream_key() != session.stream_key():
            raise WireError("descriptor_changed", "stream geometry changed without a new session id")
        elif self._guarded:
            self._check_timeline(descriptor, now, released)
        session = self._session
        assert session is not None
        self.stats.descriptors_received += 1
        self._session_seen = self._descriptor_seen = now
        if descriptor.end_of_input:  # often after its GOP left: a sender knows its last GOP only at the end
            newest = max(self._described, self._next - 1)  # made-up GOP numbers do not count
            self._end.flagged(counter, newest, now, session.gop_duration_s, self._playout_margin_s)
        else:
            self._end.saw(counter)
        if counter < self._next:
            self.stats.descriptors_late += 1
            return
        if counter - self._next > self._max_gap:
            released += self._flush()
            self._next = counter
            self.stats.resyncs += 1
        if counter > session.gop_counter:
            self._session = descriptor
        gop = self._pending_gop(counter, now)
        if gop.descriptor is None:
            gop.descriptor = descriptor
            if self._guarded:  # a made-up segment may have opened this GOP early: its deadline counts from here
                gop.deadline = max(gop.deadline, self._deadline(now))
        if counter > self._described:
            self._described, self._described_at = counter, now

    def _arbitrate(self, descriptor: SessionDescriptor, arrived: HeldDatagram, released: list[ReleasedGop]) -> None:
        """A descriptor of another session, or of this one from another address: follow it, or refuse it
        (raises) while the current session is alive and the policy locks onto it."""
        addr, now, sealed = arrived.addr, arrived.arrival, arrived.session_id is not None
        session = self._session
        new_session = session is None or descriptor.session_id != session.session_id
        if new_session and descriptor.session_id in self._retired:
            raise WireError("stale_session", f"descriptor of replaced or ended session {descriptor.session_id:#x}")
        if session is not None and self._sources.lock and addr != self._source:
            if not self._silent(now):
                self._newcomer = _Newcomer(descriptor, arrived)
                self._newcomer_log.note(addr, descriptor.session_id, self._source, now)
                raise WireError("second_source", f"session {descriptor.session_id:#x} while another one is on")
            self.stats.takeovers += 1
            log.info(
                "session %016x from %s silent for %.1f s: following session %016x from %s",
                session.session_id, self._source, now - self._session_seen, descriptor.session_id, addr,
            )  # fmt: skip
        if new_session:
            restarted = session is not None and addr == self._source and not sealed  # sealed: held by session id
            released += self._start_session(descriptor, addr, self._unexplained(descriptor) if restarted else [])
            return
        assert session is not None
        if descriptor.stream_key() != session.stream_key():
            raise WireError("descriptor_changed", "stream geometry changed without a new session id")
        self._source = addr  # the same session from a new address (NAT rebinding)
        self._newcomer = None
        self._replay_orphans(addr, descriptor.session_id)

    def _check_timeline(self, descriptor: SessionDescriptor, now: float, released: list[ReleasedGop]) -> None:
        """Guarded: a counter far ahead must be plausible by the clock (or the session silent); one far
        behind a silent session rewinds it, since the stream it jumped to was a forgery or a replay."""
        counter = descriptor.gop_counter
        if counter < self._next - self._max_ahead and self._silent(now):
            log.info("stream resumed at GOP %d, %d behind where it jumped to: rewinding", counter, self._next - counter)
            released += self._flush()
            self._session, self._next, self._newest, self._described = descriptor, counter, -1, -1
            self.stats.resyncs += 1
        elif counter > self._clock_limit(now) + 1 + self._max_ahead and not self._silent(now):
            raise WireError("gop_window", f"descriptor jumps to GOP {counter}, faster than the stream's clock")

    def _unexplained(self, newcomer: SessionDescriptor) -> list[HeldDatagram]:
        """Segments the current session took that ``newcomer``, a new session from its address, may
        explain: its pending GOPs with no descriptor of their own that lie beyond where its clock stood
        when they began to arrive, or at or past the newcomer's first counter when that one continues the
        current counters (withdrawn from it); then what it refused since its last descriptor. Plain
        segments carry no session id, so this is the best the buffer can tell; sealed ones never need it."""
        if self._session is None:
            return []
        continues = 0 < newcomer.gop_counter - self._described <= self._max_ahead
        suspects = [
            counter for counter, gop in self._pending.items()
            if gop.descriptor is None and counter > self._described
            and (counter > self._clock_limit(gop.first_arrival) + _CLOCK_SLACK
                 or continues and counter >= newcomer.gop_counter)
        ]  # fmt: skip
        withdrawn = []
        for counter in suspects:
            gop = self._pending.pop(counter)
            number = counter % 256
            withdrawn += [
                HeldDatagram(SegmentHeader(number, label).pack(payload), self._source, gop.first_arrival, None)
                for label, payload in gop.payloads.items()
            ]  # fmt: skip
        refused = [held for held in self._orphans.take() if not held.counted or held.arrival >= self._descriptor_seen]
        return withdrawn + refused

    def _start_session(
        self, descriptor: SessionDescriptor, addr: Hashable, unexplained: list[HeldDatagram]
    ) -> list[ReleasedGop]:
        """Play out what is pending, then follow ``descriptor``'s session from ``addr``; held segments
        (``unexplained`` ones of the previous session first) are replayed under its counter."""
        flushed = self._flush()
        if self._session is not None:
            self._retired.append(self._session.session_id)
        if self._spread is not None:
            self._spread.reset()
        self.stats.sessions += 1
        self._session = descriptor
        self._source = addr
        self._newcomer = None
        self._end.reset()
        self._finished = False
        self._recently_concealed.clear()
        # Held segments may belong to GOPs just before the first descriptor: open the window that far back,
        # then start at the earliest GOP that actually got something.
        self._next = max(0, descriptor.gop_counter - self._max_ahead + 1)
        self._newest = self._described = -1
        self._replay_orphans(addr, descriptor.session_id, unexplained)
        self._next = min([descriptor.gop_counter, *self._pending])
        return flushed

    def _finish(self, last: int) -> list[ReleasedGop]:
        """The session ended with GOP ``last``: release through it, forget what a forgery may have opened
        beyond it and what its address left held, and remember the session as over (its descriptors are
        stale from now on). A newcomer waiting meanwhile keeps what it sent."""
        assert self._session is not None
        released = self._release_through(last)
        self._pending.clear()
        for held in self._orphans.take():
            if held.addr != self._source:
                self._orphans.hold(held)
            elif not held.counted:
                self.stats.segments_orphaned += 1
        self._retired.append(self._session.session_id)
        self._session = self._source = None
        self._finished = True
        return released

    def _replay_orphans(self, addr: Hashable, session_id: int, first: Sequence[HeldDatagram] = ()) -> None:
        for orphan in [*first, *self._orphans.take()]:
            if orphan.addr != addr or orphan.session_id not in (None, session_id):
                self.stats.segments_orphaned += not orphan.counted
                continue
            try:
                header = SegmentHeader.parse(orphan.datagram)
                self._accept_segment(header, orphan.datagram, addr, orphan.arrival, orphan.session_id)
            except WireError as err:
                if not orphan.counted:
                    self._count_invalid(err.reason)

    def _accept_segment(
        self, header: SegmentHeader, datagram: bytes, addr: Hashable, now: float, session_id: int | None
    ) -> None:
        session = self._session
        assert session is not None
        if addr != self._source:
            raise WireError("foreign_source", f"segment from {addr!r}, session comes from {self._source!r}")
        if session_id is not None and session_id != session.session_id:
            if session_id in self._retired:
                raise WireError("stale_session", f"segment sealed under session {session_id:#x}, replaced or ended")
            # a session that has not shown its descriptor yet: the sender restarting
            self._hold(HeldDatagram(bytes(datagram), addr, now, session_id))
            return
        try:
            counter = self._place(header, datagram, session)
        except WireError:
            if session_id is None:  # perhaps a new session from this address whose descriptor is still due
                self._hold(HeldDatagram(bytes(datagram), addr, now, None, counted=True))
            raise
        if counter < self._next:
            self._count_late(counter)
            if self._spread is not None:
                self._spread.late(counter, now)
            if session_id is None and counter < self._next - _LATE_SLACK:  # later than any real reordering
                self._hold(HeldDatagram(bytes(datagram), addr, now, None, counted=True))
            return
        self._session_seen = now
        self._end.saw(counter)
        gop = self._pending_gop(counter, now)
        if header.label in gop.payloads:
            self.stats.segments_duplicate += 1
        else:
            gop.payloads[header.label] = bytes(datagram[HEADER_SIZE:])
            gop.last_arrival = max(gop.last_arrival, now)

    def _place(self, header: SegmentHeader, datagram: bytes, session: SessionDescriptor) -> int:
        """The counter a segment of ``session`` belongs to; raises unless it fits the session's geometry
        and GOP window."""
        check_segment(header.label, len(datagram) - HEADER_SIZE, session.n_elements, session.payload_size)
        counter = unwrap_gop_number(header.gop, session.gop_counter)
        if counter >= min(session.gop_counter + self._max_ahead, _MAX_COUNTER + 1):
            raise WireError("gop_window", f"GOP {counter} too far past the newest descriptor's {session.gop_counter}")
        return counter

    def _count_late(self, counter: int) -> None:
        self.stats.segments_late += 1
        if counter in self._recently_concealed:
            self._recently_concealed.remove(counter)
            self.stats.gops_late_dropped += 1

    def _pending_gop(self, counter: int, now: float) -> _PendingGop:
        gop = self._pending.get(counter)
        if gop is None:
            gop = self._pending[counter] = _PendingGop(now, self._deadline(now))
            self.stats.gops_received += 1
            self._newest = max(self._newest, counter)
        return gop

    def _deadline(self, first_arrival: float) -> float:
        session = self._session
        assert session is not None
        if self._pacing_span_s is not None:
            span = self._pacing_span_s
        elif self._spread is not None:
            span = self._spread.span(session.gop_duration_s)
        else:
            span = session.gop_duration_s
        return first_arrival + span + self._playout_margin_s

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
        elif self._spread is not None and gop is not None:
            self._spread.released(counter, gop.first_arrival, gop.last_arrival)
        return ReleasedGop(counter, descriptor, own is None, payloads, gop.first_arrival if gop else None)
