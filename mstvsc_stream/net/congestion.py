"""The sender's congestion controller: receiver feedback in, a target rate out (RFC 8085, RFC 8083).

In the spirit of Google Congestion Control (draft-ietf-rmcat-gcc): a delay-based part that backs off when
queuing delay grows, a loss-based part, and a slow probe upwards. It is pure and clock-injected (every call
takes ``now``), so it is tested on synthetic feedback and the sender only feeds it and reads it.

* Queuing delay is the round-trip time over the smallest one of the last :data:`BASE_RTT_WINDOW_S`
  seconds, taking the least of the last :data:`DELAY_SAMPLES` round trips (a queue delays them all; a
  scheduling hiccup at either end, one). Above :data:`OVERUSE_DELAY_S` the link is overused: the rate
  drops to :data:`DECREASE_FACTOR` times the rate the receiver acknowledged over the last
  :data:`MEASURE_WINDOW_S` (what the bottleneck really carries while its queue is full), and never by
  more than half at once.
* Start-up: the first time a delivered rate is known (:data:`MEASURE_WINDOW_S` of feedback after the
  first report), a loss share above :data:`STARTUP_SHORTFALL` sets the rate to :data:`DECREASE_FACTOR`
  times the delivered rate, once. Until the first report the sender ran open loop at the ceiling, so a
  queue may already have been standing (and overflowing) when the first round trip was measured; that
  base round trip then includes it and no delay is seen. Sending below the link drains the queue and the
  base round trip is learned right; under random loss this costs a ramp back up of a few seconds. (Loss,
  not the delivered rate against the target: a sender that sends less than its target, a slow source or
  an offline one, is not congested.)
* Loss is congestion only with a queue: a loss share above :data:`LOSS_CONGESTION` while the queuing
  delay exceeds :data:`LOSS_DELAY_S` (a shallow queue overflowing) is handled like overuse (half the
  loss share off the rate while no delivered rate is known yet). Loss without rising delay (a lossy
  radio link) leaves the rate alone: the semantic codec is built to decode through it, and sending less
  would only lose picture quality.
* After a decrease the rate holds for :data:`HOLD_S` (or two round trips, if longer), so the queue drains
  and the feedback reflects the new rate before another decision.
* Otherwise the rate grows by :data:`PROBE_GROWTH_PER_S` per second, and only additively while it is
  near the rate at which congestion last struck (within :data:`NEAR_BAND`, for :data:`NEAR_MEMORY_S`):
  half a datagram per response time (100 ms plus the round trip) as in GCC, never faster than the
  probe. The same absolute step for every flow of the same datagram size makes flows that share a
  bottleneck converge to equal shares (AIMD): fast when far from the capacity, careful close to it.
  Increases are per second of feedback, not per report, so a flood of reports raises the rate no faster
  than real feedback does.
* The rate stays within [floor, ceiling]: the ceiling is ``--kbps`` (or the stream's full rate), the floor
  the descriptors plus one segment per GOP.
* Circuit breaker: when feedback that was flowing stops for :data:`FEEDBACK_TIMEOUT_S` (or four round
  trips, if longer) the rate falls to the floor until reports return, and then probes up from there.
  Before the first report the controller is not engaged and the sender runs open loop at the ceiling.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

BASE_RTT_WINDOW_S = 10.0
OVERUSE_DELAY_S = 0.040
STARTUP_SHORTFALL = 0.10
LOSS_CONGESTION = 0.02
LOSS_DELAY_S = 0.010
DECREASE_FACTOR = 0.9
MAX_DECREASE = 0.5  # one decision never cuts the rate below this share of it
HOLD_S = 0.5
PROBE_GROWTH_PER_S = 0.20
RESPONSE_S = 0.1  # GCC's response time, before the round trip is added
NEAR_BAND = 0.10
NEAR_MEMORY_S = 5.0
FEEDBACK_TIMEOUT_S = 1.0
MEASURE_WINDOW_S = 0.5  # delivered rate and loss share are measured over this much recent feedback
MAX_STEP_S = 0.25  # longest feedback gap one update grows the rate for
_RTT_SMOOTHING = 1 / 8  # RFC 6298's alpha
DELAY_SAMPLES = 3  # queuing delay is the least of this many recent round trips: one late report is no queue


@dataclass(frozen=True, slots=True)
class Feedback:
    """One receiver report as the sender reads it against what it sent.

    ``rtt_s``: round trip of the newest datagram the receiver had (None when it cannot be matched);
    ``acked_bytes``: bytes newly known to have arrived (segments, with their share of the descriptors);
    ``sent`` / ``lost``: segments of the GOPs this report finalised, and how many never arrived.
    """

    rtt_s: float | None
    acked_bytes: int = 0
    sent: int = 0
    lost: int = 0


class RateController:
    """Target sending rate in kbit/s of UDP payload between ``floor_kbps`` and ``ceiling_kbps``."""

    def __init__(self, floor_kbps: float, ceiling_kbps: float, datagram_bytes: int = 1200) -> None:
        if not 0 < floor_kbps <= ceiling_kbps:
            raise ValueError(f"need 0 < floor <= ceiling, got {floor_kbps} and {ceiling_kbps}")
        self.floor_kbps = floor_kbps
        self.ceiling_kbps = ceiling_kbps
        self.datagram_bytes = datagram_bytes
        self._rate = ceiling_kbps
        self._last_feedback: float | None = None
        self._last_update: float | None = None
        self._tripped = False
        self._limited = False
        self._srtt: float | None = None
        self._rtts: deque[tuple[float, float]] = deque()  # (time, rtt), increasing rtt: a sliding-window minimum
        self._queue_delay = 0.0
        self._recent_rtts: deque[float] = deque(maxlen=DELAY_SAMPLES)
        self._acked: deque[tuple[float, int]] = deque()  # (time, bytes acknowledged by then)
        self._acked_total = 0
        self._losses: deque[tuple[float, int, int]] = deque()  # (time, sent, lost)
        self._hold_until = float("-inf")
        self._near_kbps: float | None = None
        self._near_at = float("-inf")
        self._started_up = False
        self.decreases = 0
        self.trips = 0

    def rebound(self, floor_kbps: float, ceiling_kbps: float, datagram_bytes: int) -> None:
        """New bounds (the sender changed size or frame rate); the link reading and the rate are kept,
        the rate moved into the new bounds."""
        if not 0 < floor_kbps <= ceiling_kbps:
            raise ValueError(f"need 0 < floor <= ceiling, got {floor_kbps} and {ceiling_kbps}")
        self.floor_kbps, self.ceiling_kbps, self.datagram_bytes = floor_kbps, ceiling_kbps, datagram_bytes
        self._rate = min(ceiling_kbps, max(floor_kbps, self._rate))

    @property
    def engaged(self) -> bool:
        """True once feedback has arrived: before that the sender is open loop."""
        return self._last_feedback is not None

    def feedback_timeout(self) -> float:
        return max(FEEDBACK_TIMEOUT_S, 4 * (self._srtt or 0.0))

    def rate_kbps(self, now: float) -> float:
        """The rate to send at from ``now`` on; trips the circuit breaker when feedback has stopped."""
        silent = self._last_feedback is not None and now - self._last_feedback > self.feedback_timeout()
        if silent and not self._tripped:
            self._tripped = self._limited = True
            self.trips += 1
            self._rate = self.floor_kbps
            self._near_kbps = None
        return self._rate

    @property
    def limited(self) -> bool:
        """The rate is below the ceiling because of the link (a decrease or the circuit breaker), not because
        it is still probing up from a lower ceiling: a sender that moved to a larger size or rate starts
        below its new ceiling without any sign that the link cannot carry it."""
        return self._limited and self._rate < self.ceiling_kbps

    @property
    def tripped(self) -> bool:
        """Feedback has stopped and the rate is at the floor until it returns."""
        return self._tripped

    def on_feedback(self, now: float, feedback: Feedback) -> None:
        """Take one report's reading and move the rate."""
        self._last_feedback = now
        if self._tripped:  # reports are back: the rate probes up from the floor, from now on
            self._tripped = False
            self._last_update = now
        step = 0.0 if self._last_update is None else min(MAX_STEP_S, max(0.0, now - self._last_update))
        self._last_update = now
        self._measure(now, feedback)
        loss = self._loss_share()
        overused = self._queue_delay > OVERUSE_DELAY_S
        lossy = loss > LOSS_CONGESTION and self._queue_delay > LOSS_DELAY_S
        if now < self._hold_until:
            return
        delivered = self._delivered_kbps(now)
        if not self._started_up and delivered is not None:
            self._started_up = True
            if loss > STARTUP_SHORTFALL:
                self._decrease(now, max(DECREASE_FACTOR * delivered, MAX_DECREASE * self._rate))
                return
        if overused or lossy:
            if delivered is not None:
                target = DECREASE_FACTOR * delivered
            else:
                target = self._rate * (1 - 0.5 * loss) if lossy else DECREASE_FACTOR * self._rate
            self._decrease(now, max(target, MAX_DECREASE * self._rate))
        elif self._queue_delay < OVERUSE_DELAY_S / 2:
            self._increase(now, step)

    def _measure(self, now: float, feedback: Feedback) -> None:
        if feedback.rtt_s is not None:
            rtt = feedback.rtt_s
            self._srtt = rtt if self._srtt is None else self._srtt + _RTT_SMOOTHING * (rtt - self._srtt)
            while self._rtts and self._rtts[-1][1] >= rtt:
                self._rtts.pop()
            self._rtts.append((now, rtt))
            while self._rtts[0][0] < now - BASE_RTT_WINDOW_S:
                self._rtts.popleft()
            self._recent_rtts.append(rtt)
            self._queue_delay = max(0.0, min(self._recent_rtts) - self._rtts[0][1])
        self._acked_total += feedback.acked_bytes
        self._acked.append((now, self._acked_total))
        if feedback.sent:
            self._losses.append((now, feedback.sent, feedback.lost))
        for window in (self._acked, self._losses):
            while len(window) > 1 and window[0][0] < now - MEASURE_WINDOW_S:
                window.popleft()

    def _delivered_kbps(self, now: float) -> float | None:
        """Acknowledged payload rate over the last :data:`MEASURE_WINDOW_S` of feedback (None over too short a
        span)."""
        (start, first), (end, last) = self._acked[0], self._acked[-1]
        if end - start < MEASURE_WINDOW_S / 2:
            return None
        return (last - first) * 8 / (end - start) / 1000

    def _loss_share(self) -> float:
        sent = sum(entry[1] for entry in self._losses)
        return sum(entry[2] for entry in self._losses) / sent if sent else 0.0

    def _decrease(self, now: float, target: float) -> None:
        self._rate = max(self.floor_kbps, min(self._rate, target))
        self._limited = True
        self._hold_until = now + max(HOLD_S, 2 * (self._srtt or 0.0))
        self._near_kbps, self._near_at = self._rate / DECREASE_FACTOR, now
        self.decreases += 1

    def _increase(self, now: float, step: float) -> None:
        near = self._near_kbps
        if near is not None and now - self._near_at > NEAR_MEMORY_S:
            near = self._near_kbps = None
        if near is not None and abs(self._rate - near) <= NEAR_BAND * near:
            per_s = 0.5 * self.datagram_bytes * 8 / 1000 / (RESPONSE_S + (self._srtt or 0.0))
            self._rate = min(self._rate + per_s * step, self._rate * (1 + PROBE_GROWTH_PER_S) ** step)
        else:
            self._rate *= (1 + PROBE_GROWTH_PER_S) ** step
        self._rate = min(self.ceiling_kbps, self._rate)
        self._limited = self._limited and self._rate < self.ceiling_kbps  # back at the ceiling: no limit seen
