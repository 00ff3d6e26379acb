"""The sender's side of the closed loop: receiver reports in, how many segments each GOP sends out.

Composes the pieces that live below the application layer: :class:`~..net.feedback.ReportReader` (open,
parse, check), :class:`~..net.feedback.SendLedger` (what was sent, for round trips and loss) and
:class:`~..net.congestion.RateController` (the target rate). :meth:`SenderLoop.segments_for` is the one
per-GOP rate decision: ``--kbps`` sets the ceiling, the controller (once reports arrive) the rate under
it, and :func:`.batching.sending_labels` then picks which labels go. CPU-driven degradation can narrow the
same decision.

Pacing: the default spreads a GOP over a quarter of its interval, i.e. bursts at four times the mean rate,
which fill a small bottleneck queue every GOP. With the controller engaged a GOP is spread at
:data:`PACING_GAIN` times the target rate instead (at most the whole GOP interval), so the bursts stay just
above the rate the link can carry; the cost is latency: the last segment of a GOP leaves up to 0.8 GOP
intervals after the first, against 0.25 open loop.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from ..net.congestion import RateController
from ..net.feedback import ReceptionLog, ReportReader, ReportSealer, SendLedger
from ..timings import Timings
from ..wire import DESCRIPTOR_COPIES, HEADER_SIZE, SegmentHeader, SessionDescriptor, WireError, new_session_id
from .batching import rate_for_segments, segments_within_rate

log = logging.getLogger(__name__)

PACING_GAIN = 1.25
REPORT_INTERVAL_S = 0.1  # RFC 8083 asks for feedback at least every few round trips; 10 a second is ~5 kbit/s
OPEN_LOOP_NOTICE_S = 3.0  # a sender that has heard no report this long after its first GOP says so, once
RATE_SERIES_STEP_S = 1.0
RATE_SERIES_LENGTH = 120


class SenderLoop:
    """Reports to rate decisions for one sender; ``enabled=False`` (``--no-feedback``, multicast) ignores
    reports and keeps the sender open loop."""

    def __init__(self, kbps: float | None, key: bytes | None, overhead: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self._kbps = kbps
        self._overhead = overhead
        self._controller: RateController | None = None  # made by the first follow()
        self.cap_segments = 0
        self.segment_bytes = 0
        self.ledger = SendLedger()
        self.reader = ReportReader(key)
        self.sessions: set[int] = set()
        self.rtt_ms = Timings()
        self.reports_received = 0
        self.withheld_by_cap = 0
        self.withheld_by_controller = 0
        self.rate_series: deque[tuple[float, float]] = deque(maxlen=RATE_SERIES_LENGTH)
        self._started: float | None = None
        self._noticed_open_loop = False
        self._was_tripped = False
        self._carry = 0.0  # fraction of a segment owed to the target rate

    def follow(self, descriptor: SessionDescriptor) -> None:
        """Send the session of ``descriptor`` from now on (the first, or a new size or rate): new bounds,
        a fresh ledger (counters restart), the controller's reading of the link kept. Raises ValueError
        when ``--kbps`` cannot carry one segment per GOP of it."""
        overhead = self._overhead
        self.cap_segments = segments_within_rate(descriptor, self._kbps, overhead=overhead)
        self.segment_bytes = HEADER_SIZE + descriptor.payload_size + overhead
        floor = rate_for_segments(descriptor, 1, overhead=overhead)
        ceiling = rate_for_segments(descriptor, self.cap_segments, overhead=overhead)
        if self._controller is None:
            self._controller = RateController(floor, ceiling, self.segment_bytes)
        else:
            self._controller.rebound(floor, ceiling, self.segment_bytes)
        self.ledger = SendLedger()
        self.sessions = {descriptor.session_id}

    def renamed(self, old_session: int, new_session: int) -> None:
        """The session goes on under a new id (fresh nonces): reports on either id count."""
        self.sessions = {old_session, new_session}

    @property
    def controller(self) -> RateController:
        if self._controller is None:
            raise RuntimeError("SenderLoop.follow() names the first session")
        return self._controller

    def link_target(self) -> float | None:
        """The controller's target rate for the adaptation policy; None (any rung fits) while open loop, or
        while nothing the link did holds the target under this session's ceiling: at the ceiling the link
        carries all of it and may carry a larger rung too, and after a step up the target is only still
        probing up from the smaller rung's ceiling (if the link cannot carry the larger rung, the controller
        backs off there and the policy steps down again)."""
        controller = self.controller
        if not self.enabled or not controller.engaged:
            return None
        rate = controller.rate_kbps(time.monotonic())
        return rate if controller.limited else None

    def on_datagram(self, datagram: bytes, addr: tuple, arrival: float) -> None:
        """A datagram on the sending socket: a report, or something counted as refused."""
        if not self.enabled:
            return
        report = self.reader.read(datagram, self.sessions)
        if report is None:
            return
        feedback = self.ledger.read(report, arrival)
        if feedback is None:
            self.reader.unmatched()
            return
        self.reports_received += 1
        if not self.controller.engaged:
            log.info("receiver reports arrive: congestion control on")
        elif self._was_tripped:
            log.info("receiver reports are back: probing up from the floor")
        self._was_tripped = False
        if feedback.rtt_s is not None:
            self.rtt_ms.add(feedback.rtt_s * 1000)
        self.controller.on_feedback(arrival, feedback)

    def segments_for(self, descriptor: SessionDescriptor, now: float | None = None) -> int:
        """How many of GOP ``descriptor``'s segments to send: the per-GOP rate decision."""
        now = time.monotonic() if now is None else now
        self._started = now if self._started is None else self._started
        count = self.cap_segments
        controller = self.controller
        if self.enabled and controller.engaged:
            rate = controller.rate_kbps(now)
            if controller.tripped and not self._was_tripped:
                log.warning("no receiver report for %.1f s: sending at the floor (%.1f kbps) until reports return",
                            controller.feedback_timeout(), controller.floor_kbps)  # fmt: skip
                self._was_tripped = True
            count = min(count, self._dithered(descriptor, rate))
        elif self.enabled and not self._noticed_open_loop and now - self._started > OPEN_LOOP_NOTICE_S:
            self._noticed_open_loop = True
            capped = self.cap_segments < descriptor.n_segments
            log.info("no receiver reports: open loop at the %s rate", "--kbps" if capped else "full")
        kbps = rate_for_segments(descriptor, count, overhead=self._overhead)
        self._sample(now, kbps)
        self.withheld_by_cap += descriptor.n_segments - self.cap_segments
        self.withheld_by_controller += self.cap_segments - count
        gop_bytes = kbps * 1000 / 8 * descriptor.gop_duration_s
        self.ledger.planned(descriptor.gop_counter, count, gop_bytes / count)
        return count

    def _dithered(self, descriptor: SessionDescriptor, kbps: float) -> int:
        """Segments for ``kbps``, the fraction of a segment carried over to the next GOPs, so the mean rate
        follows the target instead of stepping down to whole segments (one is ~6 % of a GOP at 320x240)."""
        bare = rate_for_segments(descriptor, 0, overhead=self._overhead)
        exact = (kbps - bare) / (rate_for_segments(descriptor, 1, overhead=self._overhead) - bare) + self._carry
        count = max(1, min(descriptor.n_segments, int(exact + 1e-9)))  # the ceiling's rate buys every segment
        self._carry = min(1.0, max(0.0, exact - count))
        return count

    def pacing_span(self, configured_s: float, count: int, gop_duration_s: float) -> float:
        """Seconds to spread a GOP of ``count`` segments over (see the module docstring)."""
        if not (self.enabled and self.controller.engaged):
            return configured_s
        gop_bytes = (count + DESCRIPTOR_COPIES) * self.segment_bytes
        at_rate = gop_bytes * 8 / (PACING_GAIN * self.controller.rate_kbps(time.monotonic()) * 1000)
        return min(gop_duration_s, max(configured_s, at_rate))

    def sent(self, datagram: bytes, at: float) -> None:
        """``DatagramSender.send_paced``'s ``on_sent``: the send time of each segment, for round trips."""
        header = SegmentHeader.parse(datagram)  # in clear in sealed datagrams too
        if not header.is_descriptor:
            self.ledger.sent(header.gop, header.label, at)

    def _sample(self, now: float, kbps: float) -> None:
        assert self._started is not None
        t = now - self._started
        if not self.rate_series or t - self.rate_series[-1][0] >= RATE_SERIES_STEP_S:
            self.rate_series.append((round(t, 1), round(kbps, 1)))

    def status(self) -> str:
        """A few words for the sender's periodic status line."""
        if not self.enabled:
            return "no feedback"
        if not self.controller.engaged:
            return "open loop (no receiver reports)"
        rate = self.controller.rate_kbps(time.monotonic())
        return f"target {rate:.1f} kbps, rtt {self.rtt_ms.summary()}, {self.reports_received} reports"

    def report(self) -> dict[str, object]:
        """The sender stats JSON's closed-loop fields."""
        return {
            "feedback": "off" if not self.enabled else "closed loop" if self.controller.engaged else "open loop",
            "rtt_ms_p50": self.rtt_ms.percentile(50),
            "rtt_ms_p95": self.rtt_ms.percentile(95),
            "rate_kbps": [list(point) for point in self.rate_series],
            "segments_withheld_by_kbps": self.withheld_by_cap,
            "segments_withheld_by_controller": self.withheld_by_controller,
            "reports_received": self.reports_received,
            "reports_invalid": self.reader.refused,
            "reports_invalid_by_reason": self.reader.by_reason(),
            "rate_decreases": self.controller.decreases,
            "feedback_timeouts": self.controller.trips,
        }


class ReceiverReports:
    """The receiver's side: logs the followed session's segments and sends a report every
    :data:`REPORT_INTERVAL_S` to the address they come from (sealed under the report key for sealed
    streams). Unicast only: a receiver of a multicast group sends none."""

    def __init__(self, key: bytes | None) -> None:
        self.log = ReceptionLog()
        self._sealer = None if key is None else ReportSealer(key, new_session_id())
        self.sent = 0

    def segment(self, datagram: bytes, descriptor: SessionDescriptor | None, session_id: int | None,
                arrival: float) -> None:  # fmt: skip
        """A datagram the GOP buffer took from the followed sender (``session_id``: sealed streams')."""
        if descriptor is None or (session_id is not None and session_id != descriptor.session_id):
            return
        try:
            header = SegmentHeader.parse(datagram)
        except WireError:
            return  # too short for a header: the buffer counted it invalid
        if header.label >= descriptor.n_segments:
            return  # descriptors, and labels the buffer refused
        self.log.follow(descriptor.session_id, descriptor.gop_duration_s)
        self.log.segment(header.gop, header.label, arrival)

    def send(self, send_to: Callable[[bytes, tuple], None], destination: tuple | None, backlog: int) -> None:
        """Send the current report to ``destination`` (nothing before a segment has arrived)."""
        report = self.log.report(time.monotonic(), backlog)
        if report is None or destination is None:
            return
        datagram = report.datagram()
        send_to(datagram if self._sealer is None else self._sealer.seal(datagram), destination)
        self.sent += 1
