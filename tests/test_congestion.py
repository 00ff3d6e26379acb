"""The congestion controller on synthetic feedback from a fluid bottleneck, and the report bookkeeping.

The link model: one FIFO queue drained at the capacity, bounded in time (a router buffer), fed at the
controller's rate, with optional random loss before it; a report every 100 ms carries the round trip
(base + queue), the bytes that left the queue and the loss since the last report.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from test_pipeline_units import DESCRIPTOR

from mstvsc_stream.net.congestion import (
    HOLD_S,
    MAX_DECREASE,
    PROBE_GROWTH_PER_S,
    Feedback,
    RateController,
)
from mstvsc_stream.net.feedback import ReceptionLog, SendLedger
from mstvsc_stream.pipeline.batching import rate_for_segments, sending_labels
from mstvsc_stream.pipeline.closedloop import SenderLoop
from mstvsc_stream.wire.report import ReceiverReport

FLOOR, CEILING = 24.0, 190.0
STEP_S = 0.01
REPORT_S = 0.1
BASE_RTT_S = 0.02


def simulate(
    seconds: float,
    capacity: Callable[[float], float],
    queue_s: float = 0.2,
    random_loss: float = 0.0,
    feedback_open: Callable[[float], bool] = lambda t: True,
) -> tuple[RateController, list[tuple[float, float, float]]]:
    """Run a controller against the fluid link; returns it and (time, rate, queue delay) every report."""
    controller = RateController(FLOOR, CEILING)
    queue = 0.0  # kbit waiting
    sent = lost = delivered = 0.0  # kbit since the last report
    trace = []
    t = 0.0
    next_report = REPORT_S
    while t < seconds:
        rate, cap = controller.rate_kbps(t), capacity(t)
        offered = rate * STEP_S
        sent += offered
        lost += offered * random_loss
        queue += offered * (1 - random_loss)
        overflow = max(0.0, queue - cap * queue_s)
        queue -= overflow
        lost += overflow
        waited = queue / cap  # what the step's last datagram waits
        out = min(queue, cap * STEP_S)
        queue -= out
        delivered += out
        t += STEP_S
        if t >= next_report:
            next_report += REPORT_S
            if feedback_open(t):
                rtt = BASE_RTT_S + waited
                controller.on_feedback(t, Feedback(rtt, round(delivered * 125), round(sent), round(lost)))
            trace.append((t, controller.rate_kbps(t), waited))
            sent = lost = delivered = 0.0
    return controller, trace


def window(trace: list[tuple[float, float, float]], start: float, end: float) -> list[tuple[float, float, float]]:
    return [point for point in trace if start <= point[0] < end]


def test_open_loop_until_the_first_report() -> None:
    controller = RateController(FLOOR, CEILING)
    assert not controller.engaged and controller.rate_kbps(100.0) == CEILING and not controller.tripped


def test_step_down_follows_the_new_capacity_within_3_s_and_keeps_the_queue_short() -> None:
    _, trace = simulate(20, lambda t: 300 if t < 10 else 100)
    assert all(rate == CEILING for _, rate, _ in window(trace, 1, 10))  # 300 kbit/s: the full stream fits
    settled = window(trace, 13, 20)
    assert all(80 <= rate <= 120 for _, rate, _ in settled)
    assert max(queue for _, _, queue in settled) <= 0.1


def test_recovery_to_the_full_rate_within_10_s_of_the_capacity_returning() -> None:
    _, trace = simulate(40, lambda t: 300 if t < 10 or t >= 20 else 100)
    assert max(rate for _, rate, _ in window(trace, 29.9, 30)) == CEILING


def test_a_bottleneck_below_the_stream_is_used_without_filling_the_queue() -> None:
    _, trace = simulate(40, lambda t: 120)
    settled = window(trace, 5, 40)
    mean = sum(rate for _, rate, _ in settled) / len(settled)
    assert 0.8 * 120 <= mean <= 120
    assert sorted(queue for _, _, queue in settled)[int(0.95 * len(settled))] <= 0.1


@pytest.mark.parametrize("wide_first", [True, False])
def test_a_shallow_queue_backs_off_on_loss(wide_first: bool) -> None:
    """A 20 ms queue never holds enough delay to signal overuse: loss with that little queue does. Without
    a wide start the queue stands before the first report, so the base round trip includes it: the
    start-up check of the delivered rate drains it."""
    controller, trace = simulate(40, lambda t: 300 if wide_first and t < 5 else 120, queue_s=0.02)
    settled = window(trace, 10, 40)
    assert controller.decreases > 1
    assert sum(rate for _, rate, _ in settled) / len(settled) <= 120


def test_random_loss_without_a_queue_is_not_congestion() -> None:
    """Only the start-up check reads the 30 % shortfall of the delivered rate, once; the rate then climbs
    back to the ceiling and stays, while 30 % of everything keeps being lost."""
    controller, trace = simulate(30, lambda t: 1000, random_loss=0.3)
    assert controller.decreases == 1
    assert all(rate == CEILING for _, rate, _ in window(trace, 5, 30))


def test_feedback_loss_falls_to_the_floor_within_2_s_and_recovers_when_reports_return() -> None:
    controller, trace = simulate(40, lambda t: 300, feedback_open=lambda t: not 10 <= t < 20)
    assert all(rate == FLOOR for _, rate, _ in window(trace, 12, 20))
    assert controller.trips == 1
    after = window(trace, 20.2, 40)
    assert after[0][1] > FLOOR and after[-1][1] == CEILING  # probes up from the floor, then back at the top
    assert all(b[1] >= a[1] for a, b in zip(after, after[1:]))


def test_a_flood_of_fake_reports_moves_the_rate_no_faster_than_real_feedback() -> None:
    """1000 reports a second with made-up round trips, acknowledgements and losses: the rate stays within
    its bounds, grows by at most the probe rate per second, and falls by at most half per hold time."""
    rng = random.Random(3)
    controller = RateController(FLOOR, CEILING)
    rates = []
    t = 0.0
    for _ in range(20_000):  # 20 s
        t += 0.001
        controller.on_feedback(t, Feedback(rng.uniform(0, 10), rng.randrange(0, 10**6), rng.randrange(0, 50),
                                           rng.randrange(0, 50)))  # fmt: skip
        rates.append((t, controller.rate_kbps(t)))
    assert all(FLOOR <= rate <= CEILING for _, rate in rates)
    for (t0, r0), (t1, r1) in zip(rates, rates[1:]):
        assert r1 <= r0 * (1 + PROBE_GROWTH_PER_S) ** (t1 - t0) + 1e-9
    decreases = [(t1, r1 / r0) for (t0, r0), (t1, r1) in zip(rates, rates[1:]) if r1 < r0]
    assert all(share >= MAX_DECREASE for _, share in decreases)
    assert all(b[0] - a[0] >= HOLD_S - 1e-9 for a, b in zip(decreases, decreases[1:]))


def test_rate_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        RateController(100.0, 50.0)


# --- the bookkeeping around it ---------------------------------------------------------------------------


def test_withheld_labels_rotate_from_gop_to_gop() -> None:
    n, count = 16, 10
    chosen = [sending_labels(n, count, counter) for counter in range(8)]
    assert all(len(labels) == count == len(set(labels)) and labels == sorted(labels) for labels in chosen)
    assert chosen[0] != chosen[1]
    withheld = [label for labels in chosen for label in set(range(n)) - set(labels)]
    assert {withheld.count(label) for label in range(n)} == {3}  # 8 GOPs x 6 withheld: each label 3 times
    assert sending_labels(n, n, 5) == list(range(n))
    with pytest.raises(ValueError):
        sending_labels(n, 0, 1)


def test_the_ledger_counts_loss_against_what_was_sent_not_the_whole_gop() -> None:
    """GOPs of 16 segments of which the sender sent 10: a receiver that got all 10 reports no loss."""
    ledger, log = SendLedger(), ReceptionLog()
    log.follow(0xABC, 0.1)
    for counter in range(300, 306):  # GOP numbers wrap at 256
        ledger.planned(counter, 10, 200.0)
        for label in sending_labels(16, 10, counter):
            sent_at = counter * 0.1 + label * 0.001
            ledger.sent(counter % 256, label, sent_at)
            if not (counter == 302 and label < 4):  # GOP 302 sent labels 0..5 and 12..15 and loses 0..3
                log.segment(counter % 256, label, sent_at + 0.03)
    report = log.report(305 * 0.1 + 0.05, backlog=2)
    assert report is not None and report.session_id == 0xABC and report.backlog == 2
    assert report.received == (10, 10, 6, 10, 10, 10)
    feedback = ledger.read(ReceiverReport.parse(report.datagram()), 305 * 0.1 + 0.09)
    assert feedback is not None and feedback.rtt_s == pytest.approx(0.09 - 0.05 + 0.03 - 0.03 + 0.03, abs=1e-3)
    assert (feedback.sent, feedback.lost) == (40, 4)  # GOPs 300..303 are final, 304 and 305 may still fill
    assert feedback.acked_bytes == (60 - 4) * 200
    again = ledger.read(report, 305 * 0.1 + 0.2)
    assert again is not None and (again.sent, again.lost, again.acked_bytes) == (0, 0, 0)  # counted once


def test_the_ledger_refuses_reports_about_datagrams_it_never_sent() -> None:
    ledger = SendLedger()
    ledger.planned(7, 4, 100.0)
    ledger.sent(7, 0, 1.0)
    report = ReceiverReport(1, 0, 7, 3, 0, 0, 0, 0, 7, (4,))
    assert ledger.read(report, 1.1) is None  # label 3 was never sent
    assert ledger.read(ReceiverReport(1, 0, 7, 0, 5_000_000, 0, 0, 0, 7, (4,)), 1.1) is None  # held > rtt


def test_the_sender_loop_sends_every_segment_at_the_ceiling_and_follows_a_lower_target_on_average() -> None:
    loop = SenderLoop(None, None, 0)
    loop.follow(DESCRIPTOR)
    loop.controller.on_feedback(0.0, Feedback(0.01))  # engaged, at the ceiling
    assert [loop.segments_for(DESCRIPTOR, 0.01 * i) for i in range(20)] == [DESCRIPTOR.n_segments] * 20
    target = rate_for_segments(DESCRIPTOR, 5.5)  # half-way between 5 and 6 segments per GOP
    loop.controller._rate = target  # noqa: SLF001 - a target between two whole counts
    counts = [loop.segments_for(DESCRIPTOR, 0.2 + 0.01 * i) for i in range(20)]
    assert set(counts) == {5, 6} and sum(counts) == 110


def test_the_rate_is_a_link_limit_only_after_the_link_pushed_back() -> None:
    """A sender that steps up to a larger rung starts under its new ceiling; that is no sign the link cannot
    carry it (the adaptation policy would step straight back down), until the controller backs off."""
    controller = RateController(FLOOR, 60.0)  # a small rung's ceiling, where the rate is
    t = 0.0
    for _ in range(5):
        t += REPORT_S
        controller.on_feedback(t, Feedback(BASE_RTT_S, 750, 10, 0))
    controller.rebound(FLOOR, CEILING, 1200)  # stepped up: probing from the old ceiling, nothing pushed back
    assert controller.rate_kbps(t) == 60.0 and not controller.limited
    for _ in range(3):  # a queue builds up: overuse
        t += REPORT_S
        controller.on_feedback(t, Feedback(BASE_RTT_S + 0.2, 750, 10, 0))
    assert controller.decreases == 1 and controller.limited
    while controller.rate_kbps(t) < CEILING and t < 60:  # the queue drains and the rate probes back up
        t += REPORT_S
        controller.on_feedback(t, Feedback(BASE_RTT_S, 750, 10, 0))
    assert controller.rate_kbps(t) == CEILING and not controller.limited
    controller.rebound(FLOOR, 2 * CEILING, 1200)
    assert not controller.limited
    controller.rate_kbps(t + 10)  # feedback stopped: the circuit breaker is a limit too
    assert controller.tripped and controller.limited
