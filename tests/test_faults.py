"""Faults a long stream meets: floods of made-up GOP numbers, forged jumps, silence, total-loss bursts,
reordering, a receiver joining mid-stream, and a sender restarting with another frame size or model."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest
from test_e2e_loopback import TINY_ID, tiny_codec
from test_gopbuffer import ADDR, GOP_S, N_SEGMENTS, FakeSender, assert_payloads_match, counters

from mstvsc_stream.media import FileSource, read_frames, sample_clip_path
from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.gopbuffer import GopBuffer, ReleasedGop
from mstvsc_stream.net.sources import SourcePolicy
from mstvsc_stream.pipeline.receiver import Receiver, ReceiverConfig
from mstvsc_stream.pipeline.sender import Sender, SenderConfig
from mstvsc_stream.runtime.torch_backend import TorchCodec
from mstvsc_stream.wire import SegmentHeader

pytestmark = pytest.mark.timeout(60)

SILENCE_S = 0.5


def guarded() -> GopBuffer:
    return GopBuffer(sources=SourcePolicy(lock=True, silence_s=SILENCE_S), guarded=True)


def paced(sender: FakeSender, counter: int) -> list[tuple[float, bytes]]:
    """A GOP's datagrams as a sender paces them: spread over 0.8 of its GOP interval."""
    datagrams = sender.gop(counter)
    return [(GOP_S * (counter + 0.8 * k / len(datagrams)), d) for k, d in enumerate(datagrams)]


def push_timed(buffer: GopBuffer, arrivals: list[tuple[float, bytes]]) -> list[tuple[float, ReleasedGop]]:
    return [(at, gop) for at, datagram in arrivals for gop in buffer.push(datagram, ADDR, at)]


def whole(sender: FakeSender, released: list[ReleasedGop]) -> list[int]:
    """Counters of the GOPs that came out with every segment, each as sent."""
    return [gop.counter for gop in released if dict(enumerate(sender.sent.get(gop.counter, []))) == dict(gop.payloads)]


def flooded_stream(buffer: GopBuffer) -> tuple[FakeSender, list[ReleasedGop]]:
    """20 GOPs; right after each GOP's descriptor, 40 segments under made-up GOP numbers 22..31 ahead
    (numbers this stream never reaches, so they can only do harm by pushing the stream along)."""
    sender, rng = FakeSender(), random.Random(1)
    arrivals = []
    for counter in range(20):
        (start, descriptor), *rest = paced(sender, counter)
        flood = [SegmentHeader((counter + rng.randint(22, 31)) % 256, 0).pack(bytes(9)) for _ in range(40)]
        arrivals += [(start, descriptor), *((start, d) for d in flood), *rest]
    released = [gop for _, gop in push_timed(buffer, arrivals)] + buffer.poll(float("inf"))
    return sender, [gop for gop in released if gop.counter < 20]


def test_a_flood_of_made_up_gop_numbers_cannot_evict_the_gop_being_received() -> None:
    sender, released = flooded_stream(guarded())
    assert counters(released) == list(range(20)) and whole(sender, released) == list(range(20))
    _, unguarded = flooded_stream(GopBuffer())
    assert len(whole(sender, unguarded)) < 5, "without the guard the flood evicts the stream"


def test_a_forged_far_jump_is_refused_while_the_stream_flows() -> None:
    sender, buffer = FakeSender(), guarded()
    released = push_timed(buffer, [a for c in range(6) for a in paced(sender, c)])
    jump = sender.descriptor(205)
    released += push_timed(buffer, [(6 * GOP_S, jump)] + [a for c in range(6, 12) for a in paced(sender, c)])
    gops = [gop for _, gop in released]
    assert counters(gops) == list(range(12)) and whole(sender, gops) == list(range(12))
    assert buffer.stats.invalid_by_reason == {"gop_window": 1}


def test_a_believed_forgery_strands_the_stream_for_the_silence_only(caplog: pytest.LogCaptureFixture) -> None:
    """During a 1.2 s total-loss burst a forged jump is believed (the stream is silent); when the real
    stream comes back behind it and the forgery stays silent, the buffer rewinds."""
    sender, buffer = FakeSender(), guarded()
    push_timed(buffer, [a for c in range(6) for a in paced(sender, c)])
    with caplog.at_level(logging.INFO):
        push_timed(buffer, [(1.5, sender.descriptor(305))])
        back = push_timed(buffer, [a for c in range(15, 25) for a in paced(sender, c)])
    assert buffer.stats.resyncs == 1 and "rewinding" in caplog.text
    resumed = [gop for at, gop in back if gop.counter < 300]  # the forged GOPs leave as the rewind starts
    assert counters(resumed) == list(range(15, 25))
    first_time = min(at for at, gop in back if gop.counter == 15)
    assert first_time <= 16 * GOP_S + SILENCE_S, "back within the silence and one GOP"
    assert whole(sender, resumed) == list(range(15, 25))


@pytest.mark.parametrize("silent_gops", [15, 60])  # 2 s of total loss; an 8 s silence (past max_ahead)
def test_after_silence_or_total_loss_the_first_good_gop_comes_out_whole(silent_gops: int) -> None:
    sender, buffer = FakeSender(), guarded()
    push_timed(buffer, [a for c in range(10) for a in paced(sender, c)])
    resume = 10 + silent_gops
    arrivals = paced(sender, resume)
    released = push_timed(buffer, arrivals)
    assert [gop.counter for _, gop in released][-1] == resume and released[-1][0] == arrivals[-1][0]
    assert all(gop.concealed for _, gop in released[:-1]) and len(released) == silent_gops + 1
    assert_payloads_match(sender, [released[-1][1]])


def test_reordering_across_gop_boundaries_keeps_every_gop_whole() -> None:
    sender, buffer, rng = FakeSender(), guarded(), random.Random(4)
    arrivals = [a for c in range(30) for a in paced(sender, c)]
    for start in range(0, len(arrivals), 9):  # windows that straddle GOP boundaries, arrival times kept
        times = [at for at, _ in arrivals[start : start + 9]]
        window = [d for _, d in arrivals[start : start + 9]]
        rng.shuffle(window)
        arrivals[start : start + 9] = list(zip(times, window, strict=True))
    released = [gop for _, gop in push_timed(buffer, arrivals)] + buffer.poll(float("inf"))
    assert counters(released) == list(range(30)) and whole(sender, released) == list(range(30))


def test_a_receiver_joining_mid_stream_has_whole_gops_from_the_next_one() -> None:
    sender, buffer = FakeSender(), guarded()
    arrivals = [a for c in range(50, 56) for a in paced(sender, c)][4:]  # GOP 50's descriptor and 3 segments missed
    released = [gop for _, gop in push_timed(buffer, arrivals)] + buffer.poll(float("inf"))
    assert counters(released) == list(range(50, 56)) and whole(sender, released) == list(range(51, 56))
    assert len(released[0].payloads) == N_SEGMENTS - 3 and released[0].descriptor_inferred


def test_gops_whose_descriptors_were_all_lost_leave_on_the_stream_clock() -> None:
    """At high loss most GOPs are speculative; each still leaves within a GOP of its last segment."""
    sender, buffer = FakeSender(), guarded()
    arrivals = [a for c in range(12) for a in paced(sender, c) if c % 4 == 0 or a[1] != sender.descriptor(c)]
    released = push_timed(buffer, arrivals) + [(99.0, gop) for gop in buffer.poll(float("inf"))]
    assert counters([gop for _, gop in released]) == list(range(12))
    for at, gop in released[:-1]:
        last_segment = max(t for t, d in paced(sender, gop.counter))
        assert at <= last_segment + GOP_S + 1e-9


def restart_with(second_codec: TorchCodec, second_size: tuple[int, int], record: Path | None) -> dict:
    """Sender one (128x96, 8 frames), then a restarted sender from a new port; the receiver stays. Both send
    as fast as they encode: the second is followed at once if the first's end flag has held by then (one
    GOP duration of nothing newer), else its datagrams are held until the first has been silent."""
    codec = tiny_codec()

    async def scenario() -> dict:
        config = ReceiverConfig("127.0.0.1:0", stay=True, idle_exit_s=1.5, record=record,
                                accept=SourcePolicy(lock=True, silence_s=0.3))  # fmt: skip
        receiver = Receiver(codec, config)
        address = await receiver.start()
        receiving = asyncio.create_task(receiver.run())
        for sender_codec, size in [(codec, (128, 96)), (second_codec, second_size)]:
            source = FileSource(sample_clip_path(), size=size)
            await Sender(sender_codec, source, SenderConfig(address, max_frames=8, realtime=False)).run()
        return await asyncio.wait_for(receiving, 30)

    return run(scenario())


def test_a_sender_restarted_with_another_frame_size_is_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recording = tmp_path / "both.mkv"
    with caplog.at_level(logging.INFO):
        report = restart_with(tiny_codec(), (160, 128), recording)
    assert report["frames_out"] == 16 and report["sessions"] == 2 and report["takeovers"] <= 1
    assert report["gops_decoded"] == 4
    assert read_frames(recording).shape == (16, 96, 128, 3)
    assert "the sender restarted" in caplog.text and "scaled into it" in caplog.text


def test_a_sender_restarted_with_a_model_not_installed_is_refused_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = TorchCodec(tiny_codec().model, TINY_ID.replace("00", "22"))
    with caplog.at_level(logging.INFO):
        report = restart_with(other, (128, 96), None)
    assert report["frames_out"] == 8 and report["sessions"] == 1
    assert report["invalid_by_reason"]["model_mismatch"] > 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "refusing" in errors[0] and "2222222222222222" in errors[0]
