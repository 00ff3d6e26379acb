"""Sealed streams (--key-file): datagram layout, forgeries, replays, key files, sizing and the rate cap."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli_send_recv import TORCH, cli, free_udp_port, start, wait_for_line
from test_cli_send_recv import tiny_model as tiny_model_folder  # noqa: F401 - a fixture
from test_e2e_loopback import tiny_codec
from test_fuzz import load_fuzz_tool
from test_gopbuffer import FakeSender
from test_restarts_and_ends import StubCodec

from mstvsc_stream.cli.keygen import main as keygen
from mstvsc_stream.cli.keygen import read_key_file
from mstvsc_stream.media import FileSource, sample_clip_path
from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.gopbuffer import GopBufferStats
from mstvsc_stream.net.loss import BernoulliLoss
from mstvsc_stream.net.ratelimit import RateLimiter
from mstvsc_stream.net.opening import MAX_SESSIONS, REPLAY_WINDOW, DatagramOpener, ReplayWindow
from mstvsc_stream.net.relay import Impairment, start_relay
from mstvsc_stream.net.sources import SourcePolicy
from mstvsc_stream.net.transport import DEFAULT_BURST_S, TIMER_SLACK_S, DatagramSender
from mstvsc_stream.pipeline.keyhint import REFUSALS_BEFORE_HINT, KeyMismatchHint
from mstvsc_stream.pipeline.receiver import Receiver, ReceiverConfig
from mstvsc_stream.pipeline.sender import Sender, SenderConfig
from mstvsc_stream.runtime.torch_backend import TorchCodec
from mstvsc_stream.wire import DEFAULT_MAX_PAYLOAD, HEADER_SIZE, SegmentHeader, default_payload_size, sealing
from mstvsc_stream.wire.sealing import (
    KEY_BYTES,
    SEAL_OVERHEAD,
    SEALED_MAX_PAYLOAD,
    Sealer,
    parse_key,
    sealed_payload_size,
)

pytestmark = pytest.mark.timeout(60)

KEY = bytes(range(KEY_BYTES))
OTHER_KEY = bytes(KEY_BYTES)
PLAIN = SegmentHeader(7, 3).pack(b"abcdefghi")


def test_sealed_layout_keeps_the_header_clear_and_adds_28_bytes() -> None:
    sealer = Sealer(KEY, 0x0102030405060708)
    first, second = sealer.seal(PLAIN), sealer.seal(PLAIN)
    assert first[:HEADER_SIZE] == PLAIN[:HEADER_SIZE] and len(first) == len(PLAIN) + SEAL_OVERHEAD == len(PLAIN) + 28
    assert first[3:15] == bytes.fromhex("0102030405060708 00000000") and second[3:15].endswith(b"\0\0\0\1")
    assert first != second, "a repeated datagram is sealed under a new nonce"
    opener = DatagramOpener(KEY)
    assert opener.open(first) == (PLAIN, 0x0102030405060708) and opener.open(second) == (PLAIN, 0x0102030405060708)
    assert b"abcdefghi" not in first


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_any_changed_bit_or_length_makes_a_forgery(data: st.DataObject) -> None:
    sealed = Sealer(KEY, data.draw(st.integers(0, 2**64 - 1))).seal(PLAIN)
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    changed = bytearray(sealed)
    changed[bit // 8] ^= 1 << bit % 8
    cut = data.draw(st.integers(0, len(sealed) - 1))
    opener = DatagramOpener(KEY)
    assert opener.open(bytes(changed)) is None and opener.open(sealed[:cut]) is None
    assert opener.open(sealed + b"\0") is None
    assert opener.opened == 0 and sum(opener.dropped_by_reason.values()) == 3
    assert set(opener.dropped_by_reason) <= {"forged", "short"}


def test_another_key_replays_and_duplicates_are_dropped_and_counted() -> None:
    sealer, opener = Sealer(KEY, 5), DatagramOpener(KEY)
    datagrams = [sealer.seal(PLAIN) for _ in range(4)]
    assert opener.open(Sealer(OTHER_KEY, 5).seal(PLAIN)) is None
    arrivals = [datagrams[1], datagrams[0], datagrams[1], datagrams[3], datagrams[0]]
    assert [opener.open(d) is not None for d in arrivals] == [True, True, False, True, False]
    assert opener.dropped_by_reason == {"forged": 1, "replayed": 2}


@given(st.lists(st.integers(0, 3000), max_size=300))
@settings(max_examples=100, deadline=None)
def test_replay_window_accepts_each_number_once_within_the_window(sequences: list[int]) -> None:
    window, accepted, highest = ReplayWindow(), set(), -1
    for sequence in sequences:
        expected = sequence not in accepted and sequence > highest - REPLAY_WINDOW
        assert window.is_new(sequence) == expected
        if expected:
            window.accept(sequence)
            accepted.add(sequence)
            highest = max(highest, sequence)


def test_forged_session_ids_create_no_state_and_authentic_ones_are_bounded() -> None:
    opener = DatagramOpener(KEY)
    for session in range(200):
        forged = bytearray(Sealer(KEY, session).seal(PLAIN))
        forged[-1] ^= 1
        assert opener.open(bytes(forged)) is None
    assert len(opener._windows) == 0  # noqa: SLF001 - the bound is the point
    for session in range(MAX_SESSIONS * 2):
        opener.open(Sealer(KEY, session).seal(PLAIN))
    assert len(opener._windows) == MAX_SESSIONS  # noqa: SLF001


def test_the_followed_sessions_window_is_never_pushed_out() -> None:
    """Authentic datagrams recorded from 16 earlier sessions, sent after the live session's, pushed its
    window out and re-opened replays of it; the followed session's window is pinned."""
    live = FakeSender(session_id=1)
    sealer = Sealer(KEY, 1)
    first = [sealer.seal(d) for d in live.gop(0)]
    earlier = [Sealer(KEY, 100 + k).seal(FakeSender(session_id=100 + k).descriptor(0)) for k in range(MAX_SESSIONS)]

    async def feed() -> dict:
        receiver = Receiver(StubCodec(), ReceiverConfig("127.0.0.1:0", key=KEY))
        for datagram in first:
            receiver._on_datagram(datagram, ("127.0.0.1", 40000), 0.0)
        for port, datagram in enumerate(earlier, 50000):  # replayed from elsewhere: second sources
            receiver._on_datagram(datagram, ("127.0.0.1", port), 0.0)
        receiver._on_datagram(first[1], ("127.0.0.1", 40000), 0.01)  # a replay of the live session
        return receiver.report()

    report = run(feed())
    assert report["invalid_by_reason"]["replayed"] == 1 and report["segments_duplicate"] == 0


def test_a_sequence_number_far_ahead_moves_the_window_without_a_huge_shift() -> None:
    window = ReplayWindow()
    window.accept(0)
    tracemalloc.start()
    try:
        window.accept(2**32 - 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 16, f"{peak} bytes to move the window"
    assert window.is_new(2**32 - 2) and not window.is_new(2**32 - 1) and not window.is_new(0)


def test_many_forged_and_replayed_datagrams_are_never_accepted() -> None:
    """The short version of ``tools/fuzz_receiver.py --sealed`` (100,000 attacker datagrams there)."""
    report = load_fuzz_tool().fuzz(12_000, seed=3, sealed=True, session_gops=20)
    assert report.attack_datagrams >= 10_000 and report.exceptions == 0
    assert report.attacks_taken == 0 and report.sessions_sent >= 3
    assert report.gops_out_genuine == report.gops_sent == report.gops_out
    assert report.invalid_by_reason["forged"] > 0 and report.invalid_by_reason["replayed"] > 0


def test_sealed_payloads_shrink_so_datagrams_keep_their_size() -> None:
    big = 195_840  # 1920x1088 with mstvsc-small-c48
    plain_size = HEADER_SIZE + default_payload_size(big)
    sealed = sealed_payload_size(big, None)
    assert sealed % 3 == 0 and HEADER_SIZE + sealed + SEAL_OVERHEAD <= plain_size == HEADER_SIZE + DEFAULT_MAX_PAYLOAD
    assert sealed_payload_size(640, None) == default_payload_size(640)  # small GOPs are cut by count, not size
    assert sealed_payload_size(big, 999) == 999
    with pytest.raises(ValueError, match="too large for a sealed stream"):
        sealed_payload_size(big, SEALED_MAX_PAYLOAD + 3)


def test_keygen_writes_a_private_key_and_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "stream.key"
    assert keygen([str(path), "-q"]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = read_key_file(path)
    assert len(key) == KEY_BYTES and path.read_text() == key.hex() + "\n"
    assert keygen([str(path)]) == 2
    assert "exists; give --force" in capsys.readouterr().err and read_key_file(path) == key
    path.chmod(0o644)
    assert keygen([str(path), "--force", "-q"]) == 0
    assert read_key_file(path) != key and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keygen_force_replaces_a_symlink_itself_not_its_target(tmp_path: Path) -> None:
    target = tmp_path / "not-a-key.txt"
    target.write_text("someone else's file\n")
    link = tmp_path / "stream.key"
    link.symlink_to(target)
    assert keygen([str(link), "-q"]) != 0, "without --force an existing path is refused"
    assert keygen([str(link), "--force", "-q"]) == 0
    assert target.read_text() == "someone else's file\n"
    assert not link.is_symlink() and stat.S_IMODE(link.stat().st_mode) == 0o600
    assert len(read_key_file(link)) == KEY_BYTES and sorted(p.name for p in tmp_path.iterdir()) == [
        "not-a-key.txt", "stream.key"]


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_keygen_at_a_directory_or_a_missing_folder_is_one_plain_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, force: list[str]
) -> None:
    """A directory with --force said "[Errno 21] Is a directory: '/tmp/.x.8ce5b84f.new' -> '/tmp/x'", a
    missing folder "[Errno 2] No such file or directory: ..."."""
    assert keygen([str(tmp_path), *force]) == 2
    assert capsys.readouterr().err == f"mstvsc-keygen: {tmp_path} is a directory; name the key file to write\n"
    missing = tmp_path / "no-such-folder" / "stream.key"
    assert keygen([str(missing), *force]) == 2
    assert capsys.readouterr().err == f"mstvsc-keygen: cannot write key file {missing}: No such file or directory\n"
    assert list(tmp_path.iterdir()) == []


def test_junk_segments_that_never_find_a_descriptor_are_counted_in_the_report() -> None:
    """Segments of no known session were held, then dropped, and no counter of --stats-json showed them:
    3,000 junk datagrams gave 1,669 invalid and 1,331 unaccounted for."""
    junk = FakeSender(session_id=9).segments(0)

    async def feed() -> dict:
        receiver = Receiver(StubCodec(), ReceiverConfig("127.0.0.1:0"))
        for _ in range(300):  # past the hold's 256 datagrams: the oldest are dropped
            for datagram in junk:
                receiver._on_datagram(datagram, ("127.0.0.1", 40000), 0.0)  # noqa: SLF001
        return receiver.report()

    report = run(feed())
    assert report["segments_held"] == 300 * len(junk)
    assert report["segments_orphaned"] == 300 * len(junk) - 256


def test_the_buffer_stats_have_no_broken_as_dict() -> None:
    """``GopBufferStats.as_dict()`` was never called and broke on the per-reason Counter."""
    assert not hasattr(GopBufferStats, "as_dict")


def test_bad_key_files_are_one_line_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bad.key"
    for text in ["", "00" * 31, "zz" * 32, "00" * 33]:
        path.write_text(text)
        with pytest.raises(ValueError, match="64 hex digits"):
            read_key_file(path)
    with pytest.raises(ValueError, match="cannot read key file"):
        read_key_file(tmp_path / "missing.key")
    path.write_text(" " + "ab" * 32 + "\n\n")
    os.chmod(path, 0o640)
    with caplog.at_level(logging.WARNING):
        assert read_key_file(path) == parse_key("ab" * 32)
    assert "readable by others" in caplog.text


def test_receiver_with_an_unreadable_key_file_fails_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mstvsc_stream.cli.recv", "--listen", "127.0.0.1:0", "--key-file", str(tmp_path / "no")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "cannot read key file" in result.stderr


def stream_sealed(
    codec: TorchCodec, receiver_key: bytes, frames: int, kbps: float | None = None, loss: float = 0.0
) -> tuple[Sender, dict]:
    """The sample clip, sealed with KEY, through a relay that loses and duplicates; both ends' reports.
    Forged datagrams do not count as the stream having begun, so under another key the receiver ends on
    a time limit."""
    limit = {"idle_exit_s": 2.0} if receiver_key == KEY else {"duration_s": 2.0}

    async def scenario() -> tuple[Sender, dict]:
        receiver = Receiver(codec, ReceiverConfig("127.0.0.1:0", key=receiver_key, **limit))
        address = await receiver.start()
        impairment = Impairment(loss=BernoulliLoss(loss), duplicate=0.05, seed=4)
        relay = await start_relay("127.0.0.1:0", address, impairment)
        receiving = asyncio.create_task(receiver.run())
        source = FileSource(sample_clip_path(), size=(128, 96))
        config = SenderConfig(relay.local_address, key=KEY, max_frames=frames, kbps=kbps, realtime=False)
        sender = Sender(codec, source, config)
        await sender.run()
        report = await asyncio.wait_for(receiving, 30)
        relay.close()
        return sender, report

    return run(scenario())


@pytest.fixture(scope="module")
def codec() -> TorchCodec:
    return tiny_codec()


def test_a_sealed_stream_plays_and_duplicates_count_as_replays(codec: TorchCodec) -> None:
    sender, report = stream_sealed(codec, KEY, frames=16, loss=0.2)
    assert report["frames_out"] == sender.frames_sent == 16 and report["end_reason"] == "end_of_input"
    assert 0.05 < report["segment_loss_rate"] < 0.4
    assert set(report["invalid_by_reason"]) <= {"replayed"}
    assert report["gops_decoded"] == 4


def test_a_sealed_stream_under_another_key_shows_nothing(
    codec: TorchCodec, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mstvsc_stream.pipeline.keyhint"):
        sender, report = stream_sealed(codec, OTHER_KEY, frames=8)
    assert report["frames_out"] == 0 and report["gops_received"] == 0
    assert report["invalid_by_reason"] == {"forged": report["datagrams"]}
    hints = [r.getMessage() for r in caplog.records if r.name == "mstvsc_stream.pipeline.keyhint"]
    assert len(hints) == 1 and "fails authentication: do both ends use the same --key-file?" in hints[0]


def hint_lines(sealed: bool, datagrams: list[bytes], caplog: pytest.LogCaptureFixture, addr: tuple = ("10.0.0.9", 5000),
               key: bytes | None = KEY) -> list[str]:
    """What a receiver (with KEY if ``sealed``) warns about ``datagrams`` from one source."""
    hint = KeyMismatchHint(sealed)
    opener = DatagramOpener(key) if sealed and key is not None else None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mstvsc_stream.pipeline.keyhint"):
        for datagram in datagrams:
            if opener is not None:
                hint.opened(datagram, addr, opener.open(datagram) is not None)
            else:
                hint.plain(datagram, addr)
    return [r.getMessage() for r in caplog.records]


def sealed_gops(key: bytes, gops: int) -> list[bytes]:
    fake, sealer = FakeSender(), Sealer(key, 0x1234)
    return [sealer.seal(d) for counter in range(gops) for d in fake.gop(counter)]


def test_a_key_mismatch_is_named_once_per_source_with_what_the_receiver_can_tell(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = [d for counter in range(2 * REFUSALS_BEFORE_HINT) for d in FakeSender().gop(counter)]
    sealed = sealed_gops(OTHER_KEY, 2 * REFUSALS_BEFORE_HINT)
    (line,) = hint_lines(True, sealed, caplog)
    assert line == "every datagram from 10.0.0.9:5000 fails authentication: do both ends use the same --key-file?"
    (line,) = hint_lines(True, plain, caplog)
    assert "from 10.0.0.9:5000 is not sealed: this receiver has a --key-file, the sender has none" in line
    (line,) = hint_lines(False, sealed, caplog)
    assert "from 10.0.0.9:5000 looks sealed: this receiver has no --key-file" in line
    assert hint_lines(False, plain, caplog) == []  # a plain stream to a plain receiver
    assert hint_lines(True, sealed_gops(KEY, 2 * REFUSALS_BEFORE_HINT), caplog, key=KEY) == []
    # a source that got in once is not misconfigured: later forgeries stay counted drops only
    assert hint_lines(True, sealed_gops(KEY, 1) + sealed, caplog) == []
    # a few stray datagrams are no misconfiguration
    assert hint_lines(True, sealed[: REFUSALS_BEFORE_HINT - 1], caplog) == []


def test_the_sender_never_exceeds_the_rate_cap_descriptors_and_sealing_included(
    codec: TorchCodec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every datagram the capped sender hands the kernel, descriptor copies and end flags included, fits
    the token bucket: over any stretch of sends, bytes <= rate * (time + burst + timer slack).

    Times are the limiter's own bookings (the moment the sender judged a datagram conforming), not a
    clock read after it: a preemption between the two would shorten a measured stretch and fail a
    conforming sender on a busy machine."""
    booked: dict[int, list[tuple[float, int]]] = {}
    handed: list[tuple[int, int]] = []  # (limiter, size) of each datagram the capped sender transmits
    book, transmit = RateLimiter.book, DatagramSender._transmit  # noqa: SLF001 - what the cap is about

    def booking(self: RateLimiter, size: int, start: float) -> None:
        booked.setdefault(id(self), []).append((start, size))
        book(self, size, start)

    def recording(self: DatagramSender, data: bytes) -> bool:
        if self._limiter is not None:  # noqa: SLF001 - the capped sender, not the relay's
            handed.append((id(self._limiter), len(data)))  # noqa: SLF001
        return transmit(self, data)

    monkeypatch.setattr(RateLimiter, "book", booking)
    monkeypatch.setattr(DatagramSender, "_transmit", recording)
    kbps = 30.0
    sender, report = stream_sealed(codec, KEY, frames=16, kbps=kbps)
    assert 0 < sender.segments_per_gop < sender.packetizer.n_segments
    assert report["frames_out"] == 16 and len(handed) == sender.report()["datagrams"]
    (limiter,) = {owner for owner, _ in handed}
    sent = booked[limiter]
    assert [size for _, size in sent] == [size for _, size in handed]  # each datagram sent was booked first
    rate = kbps * 1000 / 8
    for i, (began, _) in enumerate(sent):
        total = 0
        for j in range(i + 1, len(sent)):
            total += sent[j - 1][1]
            assert total <= rate * (sent[j][0] - began + DEFAULT_BURST_S + TIMER_SLACK_S + 1e-3)


def test_send_and_recv_with_one_key_file(tiny_model_folder: Path, tmp_path: Path) -> None:
    key, stats = tmp_path / "stream.key", tmp_path / "rx.json"
    assert keygen([str(key), "-q"]) == 0
    port = free_udp_port()
    receiver = start("recv", "--listen", f"127.0.0.1:{port}", "--model", str(tiny_model_folder), *TORCH,
                     "--key-file", str(key), "--stats-json", str(stats), "--idle-exit", "20")  # fmt: skip
    try:
        wait_for_line(receiver, "listening on")
        sent = cli("send", "--input", str(sample_clip_path()), "--size", "128x96", "--frames", "8", "--no-realtime",
                   "--to", f"127.0.0.1:{port}", "--model", str(tiny_model_folder), *TORCH, "--key-file", str(key),
                   "-q")  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        receiver_log = receiver.communicate(timeout=60)[1]
    finally:
        receiver.kill()
    assert receiver.returncode == 0 and "Traceback" not in receiver_log
    report = json.loads(stats.read_text())
    assert report["frames_out"] == 8 and report["end_reason"] == "end_of_input" and report["invalid_datagrams"] == 0


def test_a_session_that_used_up_its_nonces_continues_as_a_new_one(
    codec: TorchCodec, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With room for 60 datagrams per session (2**32 really), 2 GOPs of 19 datagrams fit with the 27 a GOP
    and the end flags need in reserve: 16 frames go out as two sessions, and the receiver follows."""
    monkeypatch.setattr(sealing, "SEQUENCE_LIMIT", 60)

    async def scenario() -> tuple[Sender, dict]:
        config = ReceiverConfig("127.0.0.1:0", idle_exit_s=2.0, key=KEY, accept=SourcePolicy(lock=True, silence_s=0.3))
        receiver = Receiver(codec, config)
        address = await receiver.start()
        receiving = asyncio.create_task(receiver.run())
        source = FileSource(sample_clip_path(), size=(128, 96))
        sender = Sender(codec, source, SenderConfig(address, key=KEY, max_frames=16, realtime=False))
        await sender.run()
        return sender, await asyncio.wait_for(receiving, 30)

    with caplog.at_level(logging.INFO):
        sender, report = run(scenario())
    assert "used up its nonces" in caplog.text
    assert report["frames_out"] == 16 and report["sessions"] == 2 and report["segment_loss_rate"] == 0.0
    assert report["invalid_by_reason"] == {}, "the new session from the same address is followed at once"
    assert report["takeovers"] == 0
