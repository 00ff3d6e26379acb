"""Receiver reports on the wire: golden bytes, round trips, refusals, and sealing apart from the segments."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_gopbuffer import FakeSender, push_all

from mstvsc_stream.net.feedback import ReportReader, ReportSealer
from mstvsc_stream.net.gopbuffer import GopBuffer
from mstvsc_stream.net.opening import DatagramOpener
from mstvsc_stream.wire import SegmentHeader, WireError
from mstvsc_stream.wire.report import (
    MAX_REPORTED_GOPS,
    REPORT_FIXED_SIZE,
    REPORT_LABEL,
    ReceiverReport,
    is_report,
    report_key,
)
from mstvsc_stream.wire.sealing import SEAL_FIELDS, Sealer

# The example in docs/wire-format.md: session 0x0123456789abcdef, report 7, newest datagram GOP 5 label 12
# held 1.5 ms, spread 40 ms, jitter 2.5 ms, 1 GOP waiting to decode, GOPs 3, 4, 5 with 16, 15 and 0 labels.
GOLDEN = ReceiverReport(0x0123456789ABCDEF, 7, 5, 12, 1500, 40_000, 2500, 1, 3, (16, 15, 0))
GOLDEN_HEX = (
    "00fffe"  # header: GOP 0, label 0xFFFE
    "0100"  # version 1, flags 0
    "0123456789abcdef"  # session id
    "00000007"  # sequence
    "05000c"  # newest datagram: GOP 5, label 12
    "000005dc"  # held 1500 us
    "00009c40"  # spread 40000 us
    "000009c4"  # jitter 2500 us
    "01"  # backlog
    "0303"  # first GOP 3, 3 GOPs
    "0010000f0000"  # 16, 15, 0 labels received
)


def test_golden_bytes() -> None:
    assert GOLDEN.datagram().hex() == GOLDEN_HEX
    assert ReceiverReport.parse(bytes.fromhex(GOLDEN_HEX)) == GOLDEN
    assert len(GOLDEN.datagram()) == REPORT_FIXED_SIZE + 6 == 41


reports = st.builds(
    ReceiverReport,
    st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, REPORT_LABEL - 1),
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255),
    st.integers(0, 255), st.lists(st.integers(0, REPORT_LABEL), max_size=MAX_REPORTED_GOPS).map(tuple),
)  # fmt: skip


@given(reports)
def test_round_trip(report: ReceiverReport) -> None:
    datagram = report.datagram()
    assert is_report(datagram) and SegmentHeader.parse(datagram).label == REPORT_LABEL
    assert ReceiverReport.parse(datagram) == report


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d[:10], "short"),
        (lambda d: d[:-1], "size"),
        (lambda d: d + b"\0", "size"),
        (lambda d: d[:3] + b"\x02" + d[4:], "version"),
        (lambda d: b"\0\xff\xff" + d[3:], "not_report"),
        (lambda d: d[:18] + b"\xff\xff" + d[20:], "field"),  # newest label 0xFFFF is no segment's
        (lambda d: d[:34] + bytes([MAX_REPORTED_GOPS + 1]) + d[35:], "size"),
    ],
)
def test_malformed_reports_are_refused_with_a_reason(mutate, reason: str) -> None:
    with pytest.raises(WireError) as refused:
        ReceiverReport.parse(mutate(GOLDEN.datagram()))
    assert refused.value.reason == reason


def test_a_report_nonce_never_meets_a_segment_nonce() -> None:
    """Reports are sealed under a key of their own (HKDF of the stream key), so even the same 12-byte nonce
    is a different (key, nonce) pair; and their nonce prefix is the receiver's random id, not the session."""
    key = secrets.token_bytes(32)
    assert report_key(key) != key and report_key(key) == report_key(key)
    session = 0x1122334455667788
    segments = Sealer(key, session)
    # the worst case: a receiver whose random id equals the sender's session id, same sequence numbers
    reports = ReportSealer(key, session)
    segment = segments.seal(SegmentHeader(0, 3).pack(b"x" * 40))
    report = reports.seal(GOLDEN.datagram())
    assert segment[3:15] == report[3:15]  # the same nonce field ...
    # ... under different keys: neither opens as the other, and a reflected segment is no report
    assert DatagramOpener(key).open(report) is None
    assert DatagramOpener(report_key(key)).open(segment) is None
    reader = ReportReader(key)
    assert reader.read(segment, {GOLDEN.session_id}) is None and reader.refused == 1
    assert reader.read(report, {GOLDEN.session_id}) == GOLDEN


def test_sealed_reports_have_their_own_replay_window() -> None:
    key = secrets.token_bytes(32)
    receiver_id = secrets.randbits(64)
    sealer = ReportSealer(key, receiver_id)
    first, second = sealer.seal(GOLDEN.datagram()), sealer.seal(GOLDEN.datagram())
    assert SEAL_FIELDS.unpack_from(first, 3) == (receiver_id, 0)
    reader = ReportReader(key)
    assert reader.read(first, {GOLDEN.session_id}) == GOLDEN
    assert reader.read(second, {GOLDEN.session_id}) == GOLDEN
    assert reader.read(first, {GOLDEN.session_id}) is None
    assert reader.by_reason() == {"replayed": 1}
    assert reader.read(GOLDEN.datagram(), {GOLDEN.session_id}) is None  # plain reports are refused when sealed
    assert reader.by_reason() == {"replayed": 1, "forged": 1}


def test_plain_reader_refuses_other_sessions_and_junk() -> None:
    reader = ReportReader(None)
    assert reader.read(GOLDEN.datagram(), {1, 2}) is None
    assert reader.read(b"\0\xff\xfe", {GOLDEN.session_id}) is None
    assert reader.by_reason() == {"session": 1, "short": 1}


def test_a_receiver_counts_a_report_it_gets_as_invalid() -> None:
    sender, buffer = FakeSender(), GopBuffer()
    push_all(buffer, sender.gop(0)[:2])
    assert push_all(buffer, [GOLDEN.datagram()]) == []
    assert buffer.stats.invalid_by_reason == {"label_range": 1}
