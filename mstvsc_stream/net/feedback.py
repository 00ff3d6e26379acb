"""Both ends of the receiver reports: what the receiver logs and reports, what the sender reads from them.

The receiver's :class:`ReceptionLog` keeps, per recent GOP number of the followed session, the distinct
segment labels that arrived and their first and last arrival, and writes a
:class:`~..wire.report.ReceiverReport` on demand. The sender's :class:`SendLedger` remembers what it sent
of each recent GOP (segment count, send time of each label) and turns a report into a
:class:`~.congestion.Feedback`: the round trip of the newest datagram, the bytes newly acknowledged, and
the segments lost of the GOPs the report finalises, counted against the segments actually sent, so
segments the sender withheld are never read as loss. :class:`ReportReader` opens, parses and checks a
report datagram before the ledger sees it, counting every refusal by reason.

All bounded: the log keeps :data:`~..wire.report.MAX_REPORTED_GOPS` GOP numbers, the ledger
:data:`LEDGER_GOPS` GOPs, and a report's counts are clamped to what was sent.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from ..wire import WireError
from ..wire.report import MAX_REPORTED_GOPS, ReceiverReport, report_key
from ..wire.sealing import Sealer
from ..wire.serial import gop_number, serial_distance
from .congestion import Feedback
from .opening import DatagramOpener

LEDGER_GOPS = 64  # 8.5 s of GOPs at 7.5 GOPs/s: longer than any round trip a report is matched over
MAX_RTT_S = 10.0  # a round trip beyond this (or below 0) says the report is not about our datagrams
REORDER_GOPS = 2  # a GOP this many GOPs older than the newest reported one is final: late segments are rare
_JITTER_GAIN = 1 / 16  # RFC 3550's interarrival-jitter filter
_U32 = (1 << 32) - 1


@dataclass
class _Arrivals:
    labels: set[int] = field(default_factory=set)
    first: float = 0.0
    last: float = 0.0


class ReceptionLog:
    """The receiver's record of the followed session's recent segments; :meth:`report` writes a report."""

    def __init__(self) -> None:
        self.session_id: int | None = None
        self._gop_duration_s = 0.0
        self._gops: OrderedDict[int, _Arrivals] = OrderedDict()  # by GOP number, oldest first
        self._newest: int | None = None  # newest GOP number in serial order
        self._latest: tuple[int, int, float] | None = None  # GOP number, label, arrival of the last datagram
        self._jitter = 0.0
        self._sequence = 0

    def follow(self, session_id: int, gop_duration_s: float) -> None:
        """Report on ``session_id`` from now on (a new session starts an empty log)."""
        if session_id != self.session_id:
            self.session_id = session_id
            self._gops.clear()
            self._newest = self._latest = None
            self._jitter = 0.0
        self._gop_duration_s = gop_duration_s

    def segment(self, number: int, label: int, arrival: float) -> None:
        """A segment datagram of the followed session arrived (after it was validated)."""
        if self.session_id is None:
            return
        if self._newest is not None and serial_distance(self._newest, number) <= -MAX_REPORTED_GOPS:
            return  # too old to report
        gop = self._gops.get(number)
        if gop is None:
            gop = self._gops[number] = _Arrivals(first=arrival, last=arrival)
            self._start_of_gop(number, arrival)
        gop.labels.add(label)
        gop.last = max(gop.last, arrival)
        self._latest = (number, label, arrival)

    def _start_of_gop(self, number: int, arrival: float) -> None:
        newest = self._newest
        if newest is None or serial_distance(newest, number) > 0:
            if newest is not None and newest in self._gops:
                spacing = serial_distance(newest, number) * self._gop_duration_s
                deviation = abs(arrival - self._gops[newest].first - spacing)
                self._jitter += _JITTER_GAIN * (deviation - self._jitter)
            self._newest = number
        for old in [n for n in self._gops if serial_distance(n, self._newest) >= MAX_REPORTED_GOPS]:
            del self._gops[old]

    def report(self, now: float, backlog: int) -> ReceiverReport | None:
        """The report to send at ``now`` (None before any segment of the session arrived)."""
        if self.session_id is None or self._latest is None or self._newest is None:
            return None
        newest = self._newest
        span = max(serial_distance(n, newest) for n in self._gops) + 1
        first = gop_number(newest - span + 1)
        received = tuple(len(self._gops[n].labels) if n in self._gops else 0
                         for n in (gop_number(first + i) for i in range(span)))  # fmt: skip
        finished = self._gops.get(gop_number(newest - 1))
        spread = 0.0 if finished is None else finished.last - finished.first
        number, label, arrival = self._latest
        report = ReceiverReport(
            self.session_id, self._sequence, number, label, _micros(now - arrival), _micros(spread),
            _micros(self._jitter), min(backlog, 0xFF), first, received,
        )  # fmt: skip
        self._sequence = (self._sequence + 1) & _U32
        return report


def _micros(seconds: float) -> int:
    return min(_U32, max(0, round(seconds * 1_000_000)))


@dataclass
class _SentGop:
    counter: int
    segment_bytes: float  # per segment sent, its share of the GOP's descriptor copies included
    sent_at: dict[int, float] = field(default_factory=dict)  # label -> when it left
    count: int = 0  # segments meant to go out (all of them leave unless the socket refuses)
    acked: int = 0  # the most labels any report said arrived
    final: bool = False


class SendLedger:
    """What the sender sent of its recent GOPs, to read receiver reports against."""

    def __init__(self) -> None:
        self._gops: OrderedDict[int, _SentGop] = OrderedDict()  # by counter, oldest first

    def planned(self, counter: int, count: int, segment_bytes: float) -> None:
        """GOP ``counter`` goes out with ``count`` segments of ``segment_bytes`` datagram bytes each (the
        receiver reports segments only, so the descriptor copies' bytes are spread over them)."""
        self._gops[counter] = _SentGop(counter, segment_bytes, count=count)
        while len(self._gops) > LEDGER_GOPS:
            self._gops.popitem(last=False)

    def sent(self, number: int, label: int, at: float) -> None:
        """Segment ``label`` of the newest GOP numbered ``number`` left at ``at``."""
        gop = self._by_number(number)
        if gop is not None:
            gop.sent_at[label] = at

    def _by_number(self, number: int) -> _SentGop | None:
        for gop in reversed(self._gops.values()):
            if gop_number(gop.counter) == number:
                return gop
        return None

    def read(self, report: ReceiverReport, now: float) -> Feedback | None:
        """The report as feedback; None when it does not match what was sent (a stale or forged report)."""
        newest = self._by_number(report.newest_gop)
        sent_at = None if newest is None else newest.sent_at.get(report.newest_label)
        if newest is None or sent_at is None:
            return None
        rtt = now - sent_at - report.held_us / 1_000_000
        if not 0.0 <= rtt <= MAX_RTT_S:
            return None
        acked = 0.0
        sent = lost = 0
        first = newest.counter + serial_distance(report.newest_gop, report.first_gop)
        for offset, received in enumerate(report.received):
            gop = self._gops.get(first + offset)
            if gop is None or gop.final:
                continue
            received = min(received, gop.count)
            if received > gop.acked:
                acked += (received - gop.acked) * gop.segment_bytes
                gop.acked = received
            if gop.counter <= newest.counter - REORDER_GOPS:
                gop.final = True
                sent, lost = sent + gop.count, lost + gop.count - gop.acked
        return Feedback(rtt, round(acked), sent, lost)


class ReportReader:
    """Opens (sealed streams), parses and checks report datagrams for one sender.

    ``refused_by_reason`` counts every report turned away: ``short``/``forged``/``replayed`` (sealing),
    the parser's reasons, ``session`` (about another session) and ``unmatched`` (names no datagram we sent
    recently, or an impossible round trip).
    """

    def __init__(self, key: bytes | None) -> None:
        self._opener = None if key is None else DatagramOpener(report_key(key))
        self.refused_by_reason: Counter[str] = Counter()
        self.accepted = 0

    @property
    def refused(self) -> int:
        return sum(self.by_reason().values())

    def read(self, datagram: bytes, sessions: set[int]) -> ReceiverReport | None:
        """The report, if it authenticates (sealed), parses and is about one of ``sessions``."""
        if self._opener is not None:
            opened = self._opener.open(datagram)
            if opened is None:
                return None
            datagram = opened.datagram
        try:
            report = ReceiverReport.parse(datagram)
        except WireError as err:
            self.refused_by_reason[err.reason] += 1
            return None
        if report.session_id not in sessions:
            self.refused_by_reason["session"] += 1
            return None
        return report

    def unmatched(self) -> None:
        self.refused_by_reason["unmatched"] += 1

    def by_reason(self) -> dict[str, int]:
        counts = Counter(self.refused_by_reason)
        if self._opener is not None:
            counts.update(self._opener.dropped_by_reason)
        return dict(sorted(counts.items()))


class ReportSealer:
    """Seals a receiver's reports under the report key, with a random receiver id as the nonce prefix."""

    def __init__(self, key: bytes, receiver_id: int) -> None:
        self._sealer = Sealer(report_key(key), receiver_id)

    def seal(self, datagram: bytes) -> bytes:
        return self._sealer.seal(datagram)
