"""Fuzzing the receive path: hypothesis strategies over headers and payloads, and the seeded mutation
loop of tools/fuzz_receiver.py (1,000,000 datagrams there, 20,000 here)."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_gopbuffer import ADDR, N_SEGMENTS, OTHER_ADDR, PAYLOAD, FakeSender, counters
from tool_modules import load_tool

from mstvsc_stream.net.gopbuffer import GopBuffer
from mstvsc_stream.net.sources import SourcePolicy
from mstvsc_stream.wire import DESCRIPTOR_LABEL, SegmentHeader

pytestmark = pytest.mark.timeout(120)

def load_fuzz_tool() -> ModuleType:
    """tools/fuzz_receiver.py as a module."""
    return load_tool("fuzz_receiver")


labels = st.one_of(st.integers(0, N_SEGMENTS + 2), st.just(DESCRIPTOR_LABEL), st.integers(0, 0xFFFF))
payloads = st.one_of(st.binary(max_size=3 * PAYLOAD), st.binary(min_size=50, max_size=80))
headers = st.builds(SegmentHeader, st.integers(0, 255), labels)
datagrams = st.one_of(
    st.builds(lambda header, payload: header.pack(payload), headers, payloads),
    st.binary(max_size=12),
)


@given(
    garbage=st.lists(st.tuples(datagrams, st.sampled_from([ADDR, OTHER_ADDR]), st.floats(0, 3)), max_size=60),
    descriptors=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 255)), max_size=5),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_made_up_headers_and_payloads_never_raise_or_grow_the_guarded_buffer(
    garbage: list[tuple[bytes, tuple, float]], descriptors: list[tuple[int, int]]
) -> None:
    """Arbitrary headers, payloads and descriptors with random counters and flags, from the sender's
    address and another, mixed into a stream: nothing escapes, memory stays within its bounds, and the
    GOPs released are in order."""
    sender = FakeSender()
    buffer = GopBuffer(max_ahead=16, sources=SourcePolicy(lock=True, silence_s=0.5), guarded=True)
    forged = [(sender.base.for_gop(c).__class__.datagram(sender.base.for_gop(c)), ADDR, 1.5) for c, _ in descriptors]
    stream = [(d, ADDR, c * 0.1) for c in range(30) for d in sender.gop(c)]
    arrivals = sorted(stream + garbage + forged, key=lambda arrival: arrival[2])
    released = []
    for datagram, addr, at in arrivals:
        released += buffer.push(datagram, addr, at)
        assert buffer.pending_gops <= 16 + 2 and buffer.held_orphans <= 256
        assert buffer.next_deadline() is None or buffer.pending_gops
    released += buffer.poll(float("inf"))
    assert counters(released) == sorted(set(counters(released)))
    assert buffer.stats.gops_released == len(released)


@given(st.lists(datagrams, max_size=40), st.booleans(), st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_made_up_datagrams_from_elsewhere_leave_the_receive_path_and_its_stream_intact(
    garbage: list[bytes], sealed: bool, rng: object
) -> None:
    """The receiving application's path (opening, admission, guarded buffer) with a real stream from the
    sender and made-up datagrams, plain or shaped like sealed ones, from another host."""
    tool = load_fuzz_tool()
    key = bytes(32) if sealed else None
    stream, path = tool.ValidStream(key, np.random.default_rng(0)), tool.ReceivePath(key)
    arrivals = [(d, tool.SENDER) for c in range(6) for d in stream.gop(c)]
    for made_up in garbage:  # anywhere in the stream, which itself arrives in order
        arrivals.insert(rng.randrange(len(arrivals) + 1), (made_up, OTHER_ADDR))  # type: ignore[attr-defined]
    released = [gop for datagram, addr in arrivals for gop in path.push(datagram, addr, 0.0)[0]]
    released += path.buffer.poll(float("inf"))
    assert counters(released) == list(range(6))
    session = stream.base.session_id
    assert all(dict(enumerate(stream.sent[session, gop.counter])) == dict(gop.payloads) for gop in released)


def test_the_mutation_loop_finds_nothing_when_half_the_attacks_spoof_the_sender() -> None:
    """The short version of ``tools/fuzz_receiver.py``: half the attacker's datagrams spoof the sender. A
    plain stream cannot tell those from the sender's: spoofed new session ids replace the session at once
    (as a restart behind that address does), so only exceptions and memory are checked."""
    report = load_fuzz_tool().fuzz(20_000, seed=5, session_gops=25)
    assert report.exceptions == 0, report.first_exception
    assert report.passed(protected=False) and report.rss_growth_mb < 20
    assert report.sessions_followed > report.sessions_sent and report.attacks_taken_by_kind["new_session"] > 0


def test_with_the_source_locked_other_senders_change_nothing() -> None:
    """No datagram claims the sender's address: across sessions that end (then replayed from elsewhere)
    and restarts behind the sender's address, with end flags, random model ids and new session ids from
    other hosts, every GOP comes out whole and genuine and no attacker datagram is taken."""
    report = load_fuzz_tool().fuzz(20_000, seed=6, spoofed=0.0, session_gops=25)
    assert report.passed(protected=True) and report.gops_out_genuine == report.gops_sent > 100
    assert report.sessions_sent >= 5 and report.attacks_taken == 0
    assert report.invalid_by_reason["foreign_source"] > 8_000 and report.invalid_by_reason["model_mismatch"] > 0
    kinds = report.attacks_by_kind
    assert min(kinds[k] for k in ("end_flag", "earlier_session", "random_model", "new_session")) > 100


@pytest.mark.parametrize("sealed", [False, True])
def test_the_senders_report_path_survives_fuzzing_within_the_controllers_limits(sealed: bool) -> None:
    """``tools/fuzz_receiver.py --reports``, short: mutated, replayed, reflected and made-up reports among
    genuine ones. Nothing escapes, the rate stays in [floor, ceiling] and grows no faster than the probe;
    sealed, no attacker report is accepted and every genuine one is."""
    report = load_fuzz_tool().fuzz_reports(10_000, seed=7, sealed=sealed)
    assert report.exceptions == 0, report.first_exception
    assert report.passed(sealed)
    assert report.genuine_accepted == report.genuine_reports > 50
    if sealed:
        assert report.attacks_accepted == 0 and report.refused_by_reason["forged"] > 0
