"""GopBuffer: ordering, loss, reordering, restarts, bad input and bounded memory, on a fake clock."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mstvsc_stream.net.gopbuffer import GopBuffer, ReleasedGop
from mstvsc_stream.net.spread import ArrivalSpread
from mstvsc_stream.wire import (
    DEFAULT_SEED,
    DESCRIPTOR_COPIES,
    GopPacketizer,
    SegmentHeader,
    SessionDescriptor,
    gop_number,
)

N_ELEMENTS = 250  # 96 packed bytes
PAYLOAD = 9  # -> 11 segments per GOP, the last one 6 bytes
N_SEGMENTS = 11
GOP_S = 4 / 30  # 4 frames at 30 fps
ADDR = ("127.0.0.1", 40000)
OTHER_ADDR = ("127.0.0.1", 40001)


class FakeSender:
    """Makes the datagrams a real sender would, remembering what it sent for each GOP."""

    def __init__(self, session_id: int = 1, n_elements: int = N_ELEMENTS, payload: int = PAYLOAD) -> None:
        self.packetizer = GopPacketizer(n_elements, DEFAULT_SEED, payload)
        self.base = SessionDescriptor(
            session_id, 0, 1_000_000, 64, 48, 30_000, 4, n_elements, payload, self.packetizer.n_segments,
            self.packetizer.seed_fingerprint, "test-model", bytes(8),
        )  # fmt: skip
        self.rng = np.random.default_rng(session_id)
        self.codes: dict[int, np.ndarray] = {}
        self.sent: dict[int, list[bytes]] = {}

    def descriptor(self, counter: int, end: bool = False) -> bytes:
        return dataclasses.replace(self.base.for_gop(counter), flags=int(end)).datagram()

    def segments(self, counter: int) -> list[bytes]:
        if counter not in self.sent:
            self.codes[counter] = self.rng.integers(-4, 4, self.packetizer.n_elements, dtype=np.int8)
            self.sent[counter] = self.packetizer.segments(self.codes[counter])
        return [SegmentHeader(gop_number(counter), label).pack(p) for label, p in enumerate(self.sent[counter])]

    def gop(self, counter: int, end: bool = False) -> list[bytes]:
        return [self.descriptor(counter, end), *self.segments(counter)]


def push_all(buffer: GopBuffer, datagrams: list[bytes], now: float = 0.0, addr: object = ADDR) -> list[ReleasedGop]:
    return [gop for datagram in datagrams for gop in buffer.push(datagram, addr, now)]


def counters(released: list[ReleasedGop]) -> list[int]:
    return [gop.counter for gop in released]


def assert_payloads_match(sender: FakeSender, released: list[ReleasedGop]) -> None:
    """Every released payload is what was sent under that counter and label, and decodes to its codes."""
    for gop in released:
        for label, payload in gop.payloads.items():
            assert payload == sender.sent[gop.counter][label]
        codes, received = sender.packetizer.reassemble(gop.payloads)
        assert received.any() == bool(gop.payloads)
        if gop.payloads:
            np.testing.assert_array_equal(codes[received], sender.codes[gop.counter][received])


def test_lossless_stream_across_wraparound_releases_every_gop_once_complete() -> None:
    sender, buffer = FakeSender(), GopBuffer()
    released = []
    for counter in range(600):
        released += push_all(buffer, sender.gop(counter), now=counter * GOP_S)
        assert counters(released)[-1] == counter  # released on its last segment
    assert counters(released) == list(range(600))
    assert not any(gop.concealed or gop.descriptor_inferred for gop in released)
    assert_payloads_match(sender, released)
    assert sender.packetizer.reassemble(released[300].payloads)[1].all()
    stats = buffer.stats
    assert stats.segments_expected == stats.segments_received == 600 * N_SEGMENTS
    assert stats.invalid_datagrams == stats.segments_late == stats.gops_concealed == 0


def test_lost_descriptors_are_inferred_across_wraparound() -> None:
    sender, buffer = FakeSender(), GopBuffer()
    released = []
    for counter in range(300):  # only every 25th GOP's descriptor arrives
        datagrams = sender.gop(counter) if counter % 25 == 0 else sender.segments(counter)
        released += push_all(buffer, datagrams, now=counter * GOP_S)
    assert counters(released) == list(range(300))
    assert [gop.descriptor_inferred for gop in released[:2]] == [False, True]
    assert released[299].descriptor.gop_counter == 299
    assert released[299].descriptor.capture_time_us == 1_000_000 + 299 * 4_000_000 // 30
    assert buffer.stats.descriptors_inferred == 300 - 12
    assert_payloads_match(sender, released)


def test_reordering_within_and_across_gops() -> None:
    sender, buffer = FakeSender(), GopBuffer()
    datagrams = [d for counter in range(20) for d in sender.gop(counter)]
    rng = random.Random(3)
    for start in range(0, len(datagrams), 8):  # shuffle windows spanning GOP boundaries
        window = datagrams[start : start + 8]
        rng.shuffle(window)
        datagrams[start : start + 8] = window
    released = push_all(buffer, datagrams) + buffer.poll(now=10.0)
    assert counters(released) == list(range(20))
    assert_payloads_match(sender, released)
    assert buffer.stats.segments_received + buffer.stats.segments_late == 20 * N_SEGMENTS


def test_duplicates_are_counted_and_ignored() -> None:
    sender, buffer = FakeSender(), GopBuffer()
    first, *rest = sender.gop(0)
    released = push_all(buffer, [first, first, rest[0], rest[0], *rest[1:]])
    assert counters(released) == [0]
    assert buffer.stats.segments_duplicate == 1
    assert buffer.stats.descriptors_received == 2
    assert push_all(buffer, [rest[1]]) == [] and buffer.stats.segments_late == 1


def test_deadline_release_of_a_partial_gop() -> None:
    sender = FakeSender()
    buffer = GopBuffer(playout_margin_s=0.05, pacing_span_s=0.2)
    descriptor, *segments = sender.gop(7)
    assert push_all(buffer, [descriptor, *segments[:4]], now=1.0) == []
    assert buffer.next_deadline() == pytest.approx(1.25)
    assert buffer.poll(now=1.2) == []
    (gop,) = buffer.poll(now=1.25)
    assert (gop.counter, sorted(gop.payloads), gop.first_arrival) == (7, [0, 1, 2, 3], 1.0)
    codes, received = sender.packetizer.reassemble(gop.payloads)
    assert 0 < received.sum() < N_ELEMENTS and not codes[~received].any()
    assert buffer.next_deadline() is None


def test_default_pacing_span_is_one_gop_duration() -> None:
    sender, buffer = FakeSender(), GopBuffer(playout_margin_s=0.1)
    push_all(buffer, sender.gop(0)[:3], now=2.0)
    assert buffer.next_deadline() == pytest.approx(2.0 + GOP_S + 0.1)


def test_gop_two_ahead_releases_the_older_one() -> None:
    sender, buffer = FakeSender(), GopBuffer()
    assert push_all(buffer, sender.gop(0)[:6]) == []
    assert push_all(buffer, sender.segments(1)[:2]) == []
    released = push_all(buffer, sender.segments(2)[:1])
    assert counters(released) == [0] and len(released[0].payloads) == 5


def test_gop_with_nothing_arrived_is_concealed_and_late_data_dropped() -> None:
    sender, buffer = FakeSender(), GopBuffer()
    lost = sender.gop(1)
    released = push_all(buffer, sender.gop(0) + sender.gop(2) + sender.gop(3))
    assert counters(released) == [0, 1, 2, 3]
    concealed = released[1]
    assert concealed.concealed and concealed.descriptor_inferred and concealed.first_arrival is None
    assert concealed.descriptor.gop_counter == 1
    push_all(buffer, lost[1:3])
    stats = buffer.stats
    assert (stats.gops_concealed, stats.gops_late_dropped, stats.segments_late) == (1, 1, 2)
    assert stats.segments_expected == 4 * N_SEGMENTS and stats.segments_received == 3 * N_SEGMENTS


def test_end_of_input_is_exposed_after_the_last_gop() -> None:
    sender, buffer = FakeSender(), GopBuffer(playout_margin_s=0.1)
    push_all(buffer, sender.gop(0))
    released = push_all(buffer, sender.gop(1, end=True)[:-1], now=1.0)  # last segment lost
    assert released == [] and not buffer.finished
    assert buffer.next_deadline() == pytest.approx(1.0 + GOP_S + 0.1)  # nothing newer within a GOP duration
    (last,) = buffer.poll(now=2.0)
    assert last.end_of_input and buffer.finished


def test_end_flag_arriving_after_its_gop_was_released_still_finishes() -> None:
    sender, buffer = FakeSender(), GopBuffer()
    descriptor, *segments = sender.gop(3, end=True)
    released = push_all(buffer, sender.gop(2) + segments)
    assert counters(released) == [2, 3] and not released[1].end_of_input and not buffer.finished
    push_all(buffer, [descriptor])
    assert not buffer.finished and buffer.poll(GOP_S + 0.1) == [] and buffer.finished


def test_restarted_sender_flushes_old_session_and_rejects_its_leftovers() -> None:
    old, new, buffer = FakeSender(session_id=1), FakeSender(session_id=2), GopBuffer()
    released = push_all(buffer, [d for c in range(40, 45) for d in old.gop(c)] + old.gop(45)[:4])
    assert counters(released) == list(range(40, 45))
    assert push_all(buffer, new.segments(0)[:2], addr=OTHER_ADDR) == []  # before the new descriptor
    released = push_all(buffer, new.gop(0), addr=OTHER_ADDR)
    assert counters(released) == [45, 0]
    assert released[0].descriptor.session_id == 1 and released[1].descriptor.session_id == 2
    push_all(buffer, [old.descriptor(46)] + old.segments(46)[:1])
    reasons = buffer.stats.invalid_by_reason
    assert (reasons["foreign_source"], reasons["stale_session"], buffer.stats.sessions) == (3, 1, 2)
    released = push_all(buffer, new.gop(1), addr=OTHER_ADDR)
    assert counters(released) == [1]
    assert_payloads_match(new, released)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "short"),
        (b"\x00\x00", "short"),
        (SegmentHeader(0, 3).pack(bytes(8)), "payload_size"),
        (SegmentHeader(0, 3).pack(bytes(10)), "payload_size"),
        (SegmentHeader(0, N_SEGMENTS - 1).pack(bytes(PAYLOAD)), "payload_size"),  # last one is 6 bytes
        (SegmentHeader(0, N_SEGMENTS).pack(bytes(9)), "label_range"),
        (SegmentHeader(0, 0xFFFF).pack(b"\x02" + bytes(60)), "version"),
        (SegmentHeader(0, 0xFFFF).pack(b"\x01" + bytes(10)), "short"),
    ],
)
def test_bad_datagrams_are_dropped_with_a_reason(datagram: bytes, reason: str) -> None:
    sender, buffer = FakeSender(), GopBuffer()
    push_all(buffer, sender.gop(0)[:2])
    assert push_all(buffer, [datagram]) == []
    assert buffer.stats.invalid_by_reason == {reason: 1} and buffer.stats.invalid_datagrams == 1
    assert buffer.pending_gops == 1


def test_wrong_descriptors_are_dropped_with_a_reason() -> None:
    sender, buffer = FakeSender(), GopBuffer()
    push_all(buffer, sender.gop(0)[:2])
    mismatched_number = SegmentHeader(5, 0xFFFF).pack(sender.base.for_gop(1).pack())
    other_geometry = FakeSender(n_elements=480)
    changed = push_all(buffer, [mismatched_number, other_geometry.descriptor(1)])
    assert changed == []
    assert buffer.stats.invalid_by_reason == {"descriptor_inconsistent": 1, "descriptor_changed": 1}
    assert buffer.descriptor == sender.base.for_gop(0)


def test_segments_before_the_first_descriptor_are_held_and_replayed() -> None:
    sender, buffer = FakeSender(), GopBuffer(max_orphans=8)
    early = sender.segments(4)[:3] + sender.segments(5)[:5]
    assert push_all(buffer, early) == [] and buffer.held_orphans == 8
    released = push_all(buffer, sender.gop(5)) + buffer.poll(now=5.0)
    assert counters(released) == [4, 5]
    assert sorted(released[0].payloads) == [0, 1, 2] and released[0].descriptor_inferred
    assert buffer.stats.segments_orphaned == 0 and buffer.held_orphans == 0
    assert_payloads_match(sender, released)


def test_orphans_beyond_the_bound_or_from_elsewhere_are_counted() -> None:
    sender, buffer = FakeSender(), GopBuffer(max_orphans=3)
    push_all(buffer, sender.segments(0)[:5])
    push_all(buffer, sender.segments(0)[5:6], addr=OTHER_ADDR)
    assert buffer.held_orphans == 3 and buffer.stats.segments_orphaned == 3
    push_all(buffer, sender.gop(0)[:1])
    assert buffer.stats.segments_orphaned == 4


def test_segment_too_far_ahead_is_outside_the_window() -> None:
    sender, buffer = FakeSender(), GopBuffer(max_ahead=16)
    push_all(buffer, sender.gop(0)[:2])
    assert push_all(buffer, sender.segments(16)[:1]) == []
    assert buffer.stats.invalid_by_reason == {"gop_window": 1}
    released = push_all(buffer, sender.segments(15)[:1])
    assert counters(released) == list(range(14))
    assert all(gop.concealed for gop in released[1:])


def test_descriptor_jump_conceals_the_gap_or_resyncs_when_huge() -> None:
    sender, buffer = FakeSender(), GopBuffer(max_ahead=16, max_gap=64)
    push_all(buffer, sender.gop(0)[:2])
    released = push_all(buffer, sender.gop(50))
    assert counters(released) == list(range(51))
    released = push_all(buffer, sender.gop(51)[:2] + sender.gop(1000))
    assert counters(released) == [51, 1000]
    assert buffer.stats.resyncs == 1


def test_flood_of_bogus_gop_numbers_keeps_memory_bounded_and_stream_recovers() -> None:
    sender, buffer = FakeSender(), GopBuffer(max_ahead=16)
    push_all(buffer, [d for c in range(10) for d in sender.gop(c)])
    rng = random.Random(0)
    for _ in range(3000):
        label = rng.randrange(N_SEGMENTS)
        released = buffer.push(SegmentHeader(rng.randrange(256), label).pack(bytes(PAYLOAD)), ADDR, 1.0)
        assert buffer.pending_gops <= 2 and len(released) <= 16
    assert buffer.held_orphans <= 256  # out-of-window ones are kept aside for a restart, bounded
    recovered = push_all(buffer, [d for c in range(10, 60) for d in sender.gop(c)], now=2.0)
    assert counters(recovered)[-20:] == list(range(40, 60))
    assert_payloads_match(sender, recovered[-20:])


@given(st.lists(st.binary(max_size=40), max_size=50), st.randoms(use_true_random=False))
@settings(max_examples=50, deadline=None)
def test_garbage_mixed_into_a_stream_never_raises(garbage: list[bytes], rng: random.Random) -> None:
    sender, buffer = FakeSender(), GopBuffer()
    datagrams = [d for c in range(5) for d in sender.gop(c)] + garbage
    rng.shuffle(datagrams)
    released = push_all(buffer, datagrams) + buffer.poll(now=100.0)
    assert buffer.pending_gops == 0 and buffer.stats.gops_released == len(released)
    assert counters(released) == sorted(set(counters(released)))
    assert_payloads_match(sender, released)


@given(
    loss=st.floats(0.0, 0.95),
    jitter_s=st.floats(0.0, 0.2),
    duplicate=st.floats(0.0, 0.2),
    seed=st.integers(0, 2**32 - 1),
)
@settings(deadline=None)
def test_lossy_jittery_stream_plays_every_gop_in_order(
    loss: float, jitter_s: float, duplicate: float, seed: int
) -> None:
    """Frames out equal frames sent from the first descriptor on, whatever the loss, jitter and duplicates."""
    sender, buffer, rng = FakeSender(), GopBuffer(playout_margin_s=0.1), random.Random(seed)
    n_gops = 40
    arrivals = []
    for counter in range(n_gops):
        last = counter == n_gops - 1
        datagrams = [sender.descriptor(counter, end=last)] * DESCRIPTOR_COPIES + sender.segments(counter)
        for k, datagram in enumerate(datagrams):
            if last or rng.random() >= loss:  # the final GOP arrives whole, so the end is known
                at = (counter + k / len(datagrams)) * GOP_S + rng.uniform(0, jitter_s)
                arrivals += [(at, datagram)] * (2 if rng.random() < duplicate else 1)
    arrivals.sort(key=lambda arrival: arrival[0])
    released = [gop for at, datagram in arrivals for gop in buffer.push(datagram, ADDR, at)]
    released += buffer.poll(now=n_gops * GOP_S + 10)
    first_descriptor = next(SegmentHeader.parse(d).gop for _, d in arrivals if SegmentHeader.parse(d).is_descriptor)
    assert counters(released) == list(range(counters(released)[0], n_gops))
    assert counters(released)[0] <= first_descriptor
    assert buffer.finished and released[-1].end_of_input
    assert_payloads_match(sender, released)
    stats = buffer.stats
    assert stats.gops_released == len(released)
    assert stats.segments_received == sum(len(gop.payloads) for gop in released)
    assert stats.segments_expected == len(released) * N_SEGMENTS


# --- learned arrival spread -------------------------------------------------------------------------------


def paced_stream(sender: FakeSender, gops: range, span_s, loss: float, seed: int = 1) -> list[tuple[float, bytes]]:
    """(arrival, datagram) of GOPs whose datagrams (three descriptor copies among them) are spread over
    ``span_s(counter)`` from the GOP's start, with ``loss`` of them lost."""
    rng = np.random.default_rng(seed)
    arrivals = []
    for counter in gops:
        segments, descriptor = sender.segments(counter), sender.descriptor(counter)
        third = len(segments) // 3
        datagrams = [descriptor, *segments[:third], descriptor, *segments[third : 2 * third], descriptor,
                     *segments[2 * third :]]  # fmt: skip
        for i, datagram in enumerate(datagrams):
            if rng.random() >= loss:
                arrivals.append((counter * GOP_S + span_s(counter) * i / len(datagrams), datagram))
    return sorted(arrivals, key=lambda a: a[0])


def release_waits(buffer: GopBuffer, arrivals: list[tuple[float, bytes]]) -> dict[int, float]:
    """How long after its first datagram each GOP left, polling at every deadline like the receiver."""
    waits: dict[int, float] = {}

    def note(gops: list[ReleasedGop], now: float) -> None:
        waits.update({g.counter: now - g.first_arrival for g in gops if g.first_arrival is not None})

    for now, datagram in arrivals:
        while (deadline := buffer.next_deadline()) is not None and deadline <= now:
            note(buffer.poll(deadline), deadline)
        note(buffer.push(datagram, ADDR, now), now)
    return waits


@pytest.mark.parametrize("learn, expected_wait", [(False, GOP_S + 0.03), (True, 0.02 + 0.03)])
def test_lossy_gops_wait_for_the_learned_spread_not_a_whole_gop(learn: bool, expected_wait: float) -> None:
    buffer = GopBuffer(playout_margin_s=0.03, guarded=True, learn_span=learn)
    waits = release_waits(buffer, paced_stream(FakeSender(), range(40), lambda _: 0.02, loss=0.3))
    late = [waits[c] for c in range(20, 38)]  # learned by then; the last GOPs leave at the end of the run
    assert np.median(late) == pytest.approx(expected_wait, abs=0.005)
    assert np.percentile(late, 90) <= expected_wait + 0.005  # the rest lost every descriptor copy: the clock decides


def test_learned_spread_follows_a_sender_that_starts_pacing_slower() -> None:
    buffer = GopBuffer(playout_margin_s=0.01, guarded=True, learn_span=True)
    stream = paced_stream(FakeSender(), range(60), lambda counter: 0.01 if counter < 20 else 0.08, loss=0.3)
    waits = release_waits(buffer, stream)
    assert np.median([waits[c] for c in range(10, 20)]) < 0.03
    assert np.median([waits[c] for c in range(40, 58)]) == pytest.approx(0.08 + 0.01, abs=0.01)
    assert buffer.stats.segments_late > 0, "the first slow GOPs lost their last segments to the old estimate"


def test_a_stream_whose_pacing_slows_once_reports_arrive_loses_nothing_at_its_start() -> None:
    """The sender paces its first GOPs over a quarter of the interval (open loop), then over nearly all of
    it (closed loop): learning from the first GOP alone made the next ones lose their last segments."""
    buffer = GopBuffer(playout_margin_s=0.01, guarded=True, learn_span=True)
    stream = paced_stream(FakeSender(), range(30), lambda counter: GOP_S / 4 if counter < 2 else 0.9 * GOP_S, loss=0.3)
    waits = release_waits(buffer, stream)
    assert buffer.stats.segments_late == 0
    assert np.median([waits[c] for c in range(15, 28)]) == pytest.approx(0.9 * GOP_S + 0.01, abs=0.01), "learned after"


def test_arrival_spread_waits_for_warmup_gops_before_trusting_them() -> None:
    spread = ArrivalSpread(window=16, warmup=3)
    for counter in range(2):
        spread.released(counter, counter, counter + 0.01)
        assert spread.span(0.13) == 0.13, "too few GOPs yet: the ceiling"
    spread.released(2, 2.0, 2.01)
    assert spread.span(0.13) == pytest.approx(0.01)
    spread.reset()
    spread.released(3, 3.0, 3.01)
    assert spread.span(0.13) == 0.13, "a new session warms up again"


def test_arrival_spread_is_the_longest_recent_one_under_a_ceiling() -> None:
    spread = ArrivalSpread(window=3, warmup=1)
    assert spread.span(ceiling=0.13) == 0.13, "nothing learned yet: the ceiling"
    spread.released(1, 10.0, 10.02)
    spread.released(2, 11.0, 11.0)  # one datagram: no spread
    assert spread.span(0.13) == pytest.approx(0.02)
    spread.late(2, 11.05)  # a segment of GOP 2 after it left
    assert spread.span(0.13) == pytest.approx(0.05)
    spread.late(1, 15.0)  # a stall: capped
    assert spread.span(0.13) == 0.13
    for counter in range(3, 6):
        spread.released(counter, counter, counter + 0.01)
    assert spread.span(0.13) == pytest.approx(0.01), "the window forgets old spreads"
    spread.reset()
    assert spread.span(0.13) == 0.13
