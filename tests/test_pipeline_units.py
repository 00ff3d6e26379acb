"""Pipeline pieces without sockets: batches, the rate cap, admission, GOP gathering, timings, playout."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_gopbuffer import FakeSender
from test_restarts_and_ends import StubCodec

from mstvsc_stream.media import FileSource, read_frames, sample_clip_path
from mstvsc_stream.media.output import FrameOutput
from mstvsc_stream.media.recorder import record_target
from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.gopbuffer import GopBuffer
from mstvsc_stream.net.sources import SourcePolicy
from mstvsc_stream.pipeline import decoding
from mstvsc_stream.pipeline.admission import StreamAdmission, parse_descriptor
from mstvsc_stream.pipeline.batching import (
    END_OF_INPUT_COPIES,
    end_of_input_datagrams,
    gop_datagrams,
    segments_within_rate,
)
from mstvsc_stream.pipeline.gops import PulledFrames, gather_gops
from mstvsc_stream.timings import Timings
from mstvsc_stream.pipeline.playout import DecodedGop, Playout, frame_period
from mstvsc_stream.pipeline.receiver import Receiver, ReceiverConfig
from mstvsc_stream.pipeline.sender import Sender, SenderConfig
from mstvsc_stream.wire import (
    DEFAULT_SEED,
    HEADER_SIZE,
    GopPacketizer,
    SegmentHeader,
    SessionDescriptor,
    seed_fingerprint,
)
from mstvsc_stream.wire.limits import MAX_SEGMENTS_PER_GOP

pytestmark = pytest.mark.timeout(60)

N_ELEMENTS = 640  # the tiny test model's latent at 320x240
PACKETIZER = GopPacketizer(N_ELEMENTS, DEFAULT_SEED)
DESCRIPTOR = SessionDescriptor(
    session_id=7, gop_counter=300, capture_time_us=1, width=320, height=240, fps_milli=30000, gop_length=4,
    n_elements=N_ELEMENTS, payload_size=PACKETIZER.payload_size, n_segments=PACKETIZER.n_segments,
    seed_fingerprint=seed_fingerprint(DEFAULT_SEED), model_name="tiny-test", model_hash=bytes(8),
)  # fmt: skip
SEGMENTS = PACKETIZER.segments(np.random.default_rng(0).integers(-4, 4, N_ELEMENTS, dtype=np.int8))


# --- batches and the rate cap ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 5, PACKETIZER.n_segments])
def test_gop_datagrams_carry_the_chosen_segments_and_spread_descriptor_copies(count: int) -> None:
    datagrams = gop_datagrams(DESCRIPTOR, SEGMENTS, range(count), copies=3)
    assert len(datagrams) == count + 3
    headers = [SegmentHeader.parse(d) for d in datagrams]
    assert {h.gop for h in headers} == {300 % 256}
    descriptor_slots = [i for i, h in enumerate(headers) if h.is_descriptor]
    assert descriptor_slots[0] == 0, "a copy must lead so a joining receiver can place what follows"
    assert len(descriptor_slots) == 3 and all(datagrams[i] == DESCRIPTOR.datagram() for i in descriptor_slots)
    gaps = np.diff(descriptor_slots)
    assert gaps.max() - gaps.min() <= 1, "copies are spread evenly, not bunched"
    carried = {h.label: d[HEADER_SIZE:] for h, d in zip(headers, datagrams) if not h.is_descriptor}
    assert carried == {label: SEGMENTS[label] for label in range(count)}


def test_rate_cap_keeps_descriptors_and_as_many_segments_as_fit() -> None:
    assert segments_within_rate(DESCRIPTOR, None) == PACKETIZER.n_segments
    descriptor_bytes = 3 * len(DESCRIPTOR.datagram())
    segment_bytes = HEADER_SIZE + DESCRIPTOR.payload_size
    for kept in (2, 6, 11):
        gop_bytes = descriptor_bytes + kept * segment_bytes
        kbps = gop_bytes * 8 / DESCRIPTOR.gop_duration_s / 1000
        assert segments_within_rate(DESCRIPTOR, kbps * 1.0001) == kept
        assert segments_within_rate(DESCRIPTOR, kbps * 0.9999) == kept - 1
    assert segments_within_rate(DESCRIPTOR, 1e6) == PACKETIZER.n_segments


def test_rate_cap_below_one_segment_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"--kbps 1 is too low .* need \d+\.\d kbps") as err:
        segments_within_rate(DESCRIPTOR, 1.0)
    assert "\n" not in str(err.value)


class SmallC48Geometry(StubCodec):
    """The default model's geometry (encoding is never reached: the sender refuses first)."""

    model_id = "mstvsc-small-c48@" + "00" * 8

    def latent_length(self, height: int, width: int) -> int:
        return CONFIGS["small-c48"].latent_length(height, width)


class StillSource:
    def __init__(self, size: tuple[int, int]) -> None:
        self.size, self.fps = size, 30.0

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("size", "payload", "words"),
    [((1280, 720), 3, "11520 segments per GOP exceed the limit of 4096"), ((4096, 2160), None, "4096x2160 frames")],
)
def test_the_sender_refuses_streams_receivers_refuse_in_one_line(
    size: tuple[int, int], payload: int | None, words: str
) -> None:
    """``mstvsc-send --size 1280x720 --payload 3`` sent 11,520 segments per GOP that every receiver
    refused (``descriptor_limit``): one shared limit, checked before the sender starts."""
    config = SenderConfig("127.0.0.1:9", payload_size=payload)
    with pytest.raises(ValueError, match="receivers refuse this stream") as refused:
        Sender(SmallC48Geometry(), StillSource(size), config)  # type: ignore[arg-type]
    assert words in str(refused.value) and "\n" not in str(refused.value)
    assert GopBuffer()._max_segments == MAX_SEGMENTS_PER_GOP == 4096


def test_end_of_input_datagrams_flag_the_last_gop() -> None:
    ending = end_of_input_datagrams(DESCRIPTOR)
    assert len(ending) == END_OF_INPUT_COPIES
    parsed = parse_descriptor(ending[0])
    assert parsed is not None and parsed.end_of_input
    assert replace(parsed, flags=0) == DESCRIPTOR


# --- admission ------------------------------------------------------------------------------------------


class TinyGeometry:
    gop = 4

    def latent_length(self, height: int, width: int) -> int:
        return N_ELEMENTS if (height, width) == (240, 320) else 1


def admission_for(known: dict[str, TinyGeometry]) -> StreamAdmission:
    return StreamAdmission(DEFAULT_SEED, known, "tiny-test@" + "00" * 8)


def test_admission_passes_its_own_stream_and_malformed_datagrams() -> None:
    admission = admission_for({DESCRIPTOR.model_id: TinyGeometry()})
    source = ("127.0.0.1", 4000)
    assert admission.admit(DESCRIPTOR.datagram(), source)
    assert admission.admit(SegmentHeader(0, 1).pack(SEGMENTS[1]), source)
    assert admission.admit(b"\x00", source), "malformed datagrams are the GOP buffer's to count"
    assert not admission.refused_by_reason


@pytest.mark.parametrize(
    ("change", "reason", "words"),
    [
        ({"seed_fingerprint": seed_fingerprint(DEFAULT_SEED + 1)}, "seed_mismatch", "--seed"),
        ({"model_hash": b"\x11" * 8}, "model_mismatch", "tiny-test@1111111111111111"),
        ({"width": 640, "height": 480}, "geometry_mismatch", "640x480"),
    ],
)
def test_admission_refuses_a_stream_it_cannot_decode_with_one_log_line(
    change: dict, reason: str, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    admission = admission_for({DESCRIPTOR.model_id: TinyGeometry()})
    foreign = replace(DESCRIPTOR, **change)
    source, other = ("10.0.0.1", 5000), ("10.0.0.2", 5000)
    with caplog.at_level(logging.ERROR):
        for counter in range(5):
            assert not admission.admit(replace(foreign, gop_counter=counter).datagram(), source)
            assert not admission.admit(SegmentHeader(counter, 0).pack(SEGMENTS[0]), source)
        assert admission.admit(SegmentHeader(0, 0).pack(SEGMENTS[0]), other), "only the refused source is dropped"
    assert admission.refused_by_reason == {reason: 10}
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(lines) == 1 and words in lines[0] and "\n" not in lines[0]
    # The same source restarting with a stream we can decode is admitted again, segments included.
    assert admission.admit(DESCRIPTOR.datagram(), source)
    assert admission.admit(SegmentHeader(0, 0).pack(SEGMENTS[0]), source)


def receiver_fed(datagrams: list[tuple[bytes, tuple]], config: ReceiverConfig) -> Receiver:
    """A receiver of FakeSender's stream geometry (with a model loader) fed ``datagrams`` on its event
    loop, without sockets."""

    async def feed() -> Receiver:
        receiver = Receiver(StubCodec(), config, load_model=lambda name: StubCodec())
        for at, (datagram, addr) in enumerate(datagrams):
            receiver._on_datagram(datagram, addr, at * 1e-4)
        return receiver

    return run(feed())


def test_random_model_ids_read_no_files_and_leave_no_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 descriptors naming random models: the installed models were listed once, at start, and
    admission keeps nothing per model id."""
    listed = []
    real_list = decoding.list_models
    monkeypatch.setattr(decoding, "list_models", lambda: listed.append(1) or real_list())
    rng = random.Random(4)
    base = FakeSender().base
    forged = [(replace(base, model_hash=rng.randbytes(8)).datagram(), ("10.0.0.1", 1000 + k)) for k in range(20_000)]
    tracemalloc.start()
    try:
        receiver = receiver_fed(forged[:1000], ReceiverConfig("127.0.0.1:0"))
        before = tracemalloc.get_traced_memory()[0]
        for at, (datagram, addr) in enumerate(forged[1000:]):
            receiver._admission.admit(datagram, addr)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert listed == [1] and receiver.report()["invalid_by_reason"] == {"model_mismatch": 20_000}
    assert grown < 100_000, f"{grown} bytes kept for 19,000 model ids"


def test_hosts_accept_excludes_are_dropped_before_admission() -> None:
    """--accept HOST: a flood from elsewhere costs no authentication or admission work."""
    wrong_seed = replace(FakeSender().base, seed_fingerprint=seed_fingerprint(DEFAULT_SEED + 1)).datagram()
    config = ReceiverConfig("127.0.0.1:0", accept=SourcePolicy.parse("127.0.0.1"), key=bytes(32))
    receiver = receiver_fed([(wrong_seed, ("10.0.0.9", 5000))] * 500, config)
    assert receiver.report()["invalid_by_reason"] == {"foreign_source": 500}


# --- frames to GOPs -------------------------------------------------------------------------------------


def gather(source: FileSource, gop: int, max_frames: int | None = None) -> list:
    async def collect() -> list:
        with ThreadPoolExecutor(1) as reader:
            return [g async for g in gather_gops(PulledFrames(source), gop, reader, max_frames)]

    return asyncio.run(collect())


def test_gather_gops_cuts_whole_gops_and_drops_the_trailing_part(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        gops = gather(FileSource(sample_clip_path(), size=(64, 48), frames=10), gop=4)
    assert [g.frames.shape for g in gops] == [(4, 48, 64, 3)] * 2
    assert [g.first_sequence for g in gops] == [0, 4]
    assert gops[0].captured_at <= gops[1].captured_at
    assert any("2 trailing frame(s)" in r.getMessage() for r in caplog.records)


def test_gather_gops_stops_at_max_frames() -> None:
    assert len(gather(FileSource(sample_clip_path(), size=(64, 48)), gop=4, max_frames=8)) == 2


def test_pulled_frames_stop_ends_reading_from_another_thread() -> None:
    feed = PulledFrames(FileSource(sample_clip_path(), size=(64, 48)))
    assert feed.get() is not None
    stopper = threading.Thread(target=feed.stop)
    stopper.start()
    stopper.join(5)
    assert feed.get() is None
    feed.stop()  # again: harmless


# --- timings --------------------------------------------------------------------------------------------


def test_timings_percentiles_and_bound() -> None:
    timings = Timings(max_samples=100)
    assert timings.percentile(50) is None and timings.summary() == "n/a"
    for value in range(1000):
        timings.add(float(value))
    assert len(timings) == 100
    assert timings.percentile(50) == pytest.approx(949.5)
    assert timings.percentile(95) == pytest.approx(994.05, abs=0.1)
    assert timings.summary() == "p50 950 p95 994 ms"


# --- playout --------------------------------------------------------------------------------------------


def decoded_gop(fps_milli: int, size: tuple[int, int] = (320, 240), value: int = 0,
                decoded_at: float | None = None) -> DecodedGop:
    width, height = size
    frames = np.full((4, height, width, 3), value, np.uint8)
    now_us = int(time.time() * 1e6)
    descriptor = replace(DESCRIPTOR, fps_milli=fps_milli, width=width, height=height, capture_time_us=now_us)
    return DecodedGop(frames, descriptor, True, time.monotonic() if decoded_at is None else decoded_at)


def test_playout_paces_frames_at_the_stream_rate_and_samples_latency() -> None:
    playout = Playout(None)

    async def play() -> float:
        started = time.monotonic()
        await playout.play(decoded_gop(fps_milli=50_000))
        await playout.play(decoded_gop(fps_milli=50_000))
        return time.monotonic() - started

    assert asyncio.run(play()) >= 7 * 0.02, "8 frames at 50 fps span at least 7 frame periods"
    assert playout.frames_out == 8 and len(playout.latency_ms) == 2


def test_playout_catches_up_on_a_backlog_without_waiting() -> None:
    playout = Playout(None)

    async def play() -> float:
        started = time.monotonic()
        await playout.play(decoded_gop(fps_milli=1000), catch_up=True)  # paced, these 4 frames take 3 s
        return time.monotonic() - started

    assert asyncio.run(play()) < 2.0
    assert playout.frames_out == 4


class ClockDisplay:
    """A display that notes when each frame was shown."""

    closed = False

    def __init__(self) -> None:
        self.shown: list[float] = []

    def show(self, frame: np.ndarray) -> None:
        self.shown.append(time.monotonic())

    def close(self) -> None:
        pass


def test_playout_works_off_a_late_start_instead_of_keeping_it() -> None:
    """GOP 0 comes 100 ms late (a slow first decode), the rest on the stream's cadence. Without catching
    up, every later GOP would wait 100 ms for the schedule GOP 0 set; with it, the wait shrinks GOP by
    GOP (how fast it may catch up is the next test's business)."""
    period, late, gops = 0.02, 0.1, 10
    display = ClockDisplay()
    output = FrameOutput(lambda: display)
    output.start()
    playout = Playout(output)
    ready: list[float] = []

    async def play() -> None:
        start = time.monotonic()
        for k in range(gops):
            due = start if k == 0 else start - late + k * 4 * period
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # no wait once behind: it was queued
            ready.append(due)
            await playout.play(decoded_gop(fps_milli=50_000, decoded_at=due))

    asyncio.run(play())
    playout.close()
    firsts = display.shown[::4]
    waits = [shown - came for shown, came in zip(firsts, ready)]
    assert waits[1] > 0.05, "the schedule GOP 0 set holds GOP 1 back at first"
    assert waits[-1] < waits[1] / 2, f"still {waits[-1] * 1000:.0f} ms behind after {gops} GOPs"


@pytest.mark.parametrize("first_out, expected", [
    (10.0, 0.02),  # goes out as it is decoded: the stream's rate
    (10.02, 0.02),  # waits one frame: jitter, not lag
    (10.03, 0.02 - 0.01 / 4),  # 10 ms of lag worked off within the GOP
    (10.5, 0.02 / 1.25),  # more than one GOP can absorb: as fast as catching up may go
])
def test_frame_period_shortens_only_for_a_lagging_schedule(first_out: float, expected: float) -> None:
    assert frame_period(50.0, 4, first_out, decoded_at=10.0) == pytest.approx(expected)


def test_playout_stops_at_its_frame_limit_and_records_one_file_across_sizes(tmp_path: Path) -> None:
    recording = tmp_path / "out.mkv"
    output = FrameOutput(record=record_target(recording))
    output.start()
    playout = Playout(output, max_frames=6)

    async def play() -> None:
        await playout.play(decoded_gop(fps_milli=1_000_000, value=10), catch_up=True)
        await playout.play(decoded_gop(fps_milli=1_000_000, size=(64, 48), value=200), catch_up=True)

    asyncio.run(play())
    playout.close()
    assert playout.limit_reached and playout.frames_out == 6
    written = read_frames(recording)
    assert written.shape == (6, 240, 320, 3), "a later session's frames are resized into the recording"
    assert (written[:4] == 10).all() and (written[4:] == 200).all()
