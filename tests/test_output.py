"""The receiver's frames out: where a recording may go, and that writing it never holds up the event loop
that receives and timestamps datagrams."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from mstvsc_stream.media import FileSource, MediaError, read_frames, sample_clip_path
from mstvsc_stream.media import output as output_module
from mstvsc_stream.media.output import FrameOutput
from mstvsc_stream.media.recorder import FORMATS, record_target
from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.gopbuffer import GopBuffer
from mstvsc_stream.net.transport import DatagramSender
from mstvsc_stream.pipeline.batching import gop_datagrams
from mstvsc_stream.pipeline.receiver import Receiver, ReceiverConfig
from mstvsc_stream.wire import DEFAULT_SEED, FLAG_END_OF_INPUT, GopPacketizer, SessionDescriptor, seed_fingerprint
from mstvsc_stream.wire import split_model_id
from test_e2e_loopback import SIZE, codec  # noqa: F401

pytestmark = pytest.mark.timeout(60)


def frames(n: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    width, height = size
    return [np.full((height, width, 3), 10 * i, np.uint8) for i in range(n)]


# --- where a recording goes ------------------------------------------------------------------------------


def test_record_targets_follow_ffmpeg_conventions() -> None:
    stdout = record_target("-")
    assert (stdout.location, stdout.muxer, stdout.encoding.codec) == ("pipe:1", "nut", "rawvideo")
    assert record_target("-", "y4m").muxer == "yuv4mpegpipe"
    assert record_target("udp://239.0.0.1:1234?pkt_size=1316").muxer == "mpegts"
    assert record_target("rtsp://server/live").muxer == "rtsp"
    assert record_target("rtmp://server/app/key").muxer == "flv"
    assert record_target("out.mkv").muxer is None and record_target("out.mkv").is_file
    assert not record_target("-").is_file and not record_target("srt://host:9000").is_file
    for bad, words in [("x.xyz", "use one of"), ("foo://x", "--record-format"), ("-", "unknown record format")]:
        with pytest.raises(ValueError, match=words):
            record_target(bad, "nonsense" if bad == "-" else None)


@pytest.mark.parametrize("name", ["nut", "y4m", "matroska", "mpegts"])
def test_each_stream_format_round_trips_through_the_output(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"out.{name}"
    output = FrameOutput(record=record_target(path, name))
    output.start()
    written = frames(6)

    async def put() -> None:
        for frame in written:
            await output.put(frame, 30.0)

    run(put())
    output.close()
    assert output.ended is None and output.frames_written == 6
    read = read_frames(path)
    assert read.shape == (6, 48, 64, 3)
    if name in ("nut", "matroska"):  # raw RGB and lossless FFV1: exact
        assert np.array_equal(read, np.stack(written))
    with av.open(str(path)) as container:
        assert FORMATS[name][0] in container.format.name.split(","), "the container asked for, not the extension's"


def test_a_url_that_cannot_be_opened_ends_the_output_with_one_line() -> None:
    with socket.socket() as probe:  # a TCP port with no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output = FrameOutput(record=record_target(f"tcp://127.0.0.1:{port}"))
    output.start()
    run(output.put(frames(1)[0], 30.0))
    output.close()
    assert isinstance(output.ended, MediaError)
    message = str(output.ended)
    assert message.startswith(f"cannot record to tcp://127.0.0.1:{port}: ") and "\n" not in message


def test_standard_input_cannot_be_looped() -> None:
    with pytest.raises(MediaError, match="standard input cannot be looped"):
        FileSource("-", loop=True)


# --- off the event loop ----------------------------------------------------------------------------------


class BlockingRecorder:
    """A recorder whose writes wait until the test releases them (a slow disk, a stalled pipe)."""

    writing = threading.Event()
    release = threading.Event()
    written = 0

    def __init__(self, target: object, fps: float, size: tuple[int, int]) -> None:
        self.size = size

    def write(self, frame: np.ndarray, at: float | None = None) -> None:
        BlockingRecorder.writing.set()
        BlockingRecorder.release.wait()
        BlockingRecorder.written += 1

    def close(self) -> None:
        pass


@pytest.fixture
def blocking_recorder(monkeypatch: pytest.MonkeyPatch) -> type[BlockingRecorder]:
    BlockingRecorder.writing, BlockingRecorder.release, BlockingRecorder.written = threading.Event(), threading.Event(), 0
    monkeypatch.setattr(output_module, "Recorder", BlockingRecorder)
    yield BlockingRecorder
    BlockingRecorder.release.set()


def test_a_live_output_drops_frames_it_cannot_take_and_counts_them(blocking_recorder: type) -> None:
    output = FrameOutput(record=record_target("-"), capacity=2)
    output.start()

    async def put() -> None:
        for frame in frames(8):
            await output.put(frame, 30.0)  # never waits: the test would hang here if it did

    run(put())
    assert blocking_recorder.writing.wait(10)
    # one frame is being written, two wait in the queue, the rest were dropped (one more may have
    # been taken by the writer before the first put: 5 or 6 dropped)
    assert output.frames_dropped in (5, 6)
    blocking_recorder.release.set()
    output.close()
    assert output.frames_written + output.frames_dropped == 8


def test_a_file_output_waits_for_room_instead_of_dropping(blocking_recorder: type, tmp_path: Path) -> None:
    output = FrameOutput(record=record_target(tmp_path / "out.mkv"), capacity=2)
    output.start()

    async def put() -> None:
        for frame in frames(8):
            await output.put(frame, 30.0)

    async def release_later() -> None:
        await asyncio.get_running_loop().run_in_executor(None, blocking_recorder.writing.wait)
        blocking_recorder.release.set()

    async def both() -> None:
        await asyncio.gather(put(), release_later())

    run(both())
    output.close()
    assert (output.frames_written, output.frames_dropped) == (8, 0)


def test_datagrams_are_received_and_timestamped_while_the_recorder_blocks(
    codec: object, blocking_recorder: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GOP 0 goes out to a recorder that blocks; GOPs 1-3 are then sent. All their segments must reach
    the GOP buffer, stamped with their arrival time, before the recorder is released: the event loop
    that receives them is not the thread that writes. (Ordering only, no timing threshold.)"""
    arrivals: list[float] = []
    push = GopBuffer.push

    def spy(self: GopBuffer, datagram: bytes, addr: tuple, arrival: float, *args: object) -> list:
        arrivals.append(arrival)
        return push(self, datagram, addr, arrival, *args)

    monkeypatch.setattr(GopBuffer, "push", spy)
    width, height = SIZE
    clip = read_frames(sample_clip_path(), n=16, size=SIZE)
    n_elements = codec.latent_length(height, width)
    packetizer = GopPacketizer(n_elements, DEFAULT_SEED)
    name, weights_hash = split_model_id(codec.model_id)
    first = SessionDescriptor(7, 0, int(time.time() * 1e6), width, height, 30000, 4, n_elements,
                              packetizer.payload_size, packetizer.n_segments, seed_fingerprint(DEFAULT_SEED), name,
                              weights_hash)  # fmt: skip

    def datagrams(counter: int, flags: int = 0) -> list[bytes]:
        segments = packetizer.segments(codec.encode(clip[counter * 4 : counter * 4 + 4]))
        descriptor = replace(first, gop_counter=counter, flags=flags)
        return gop_datagrams(descriptor, segments, range(len(segments)), copies=3)

    async def scenario() -> tuple[float, dict]:
        receiver = Receiver(codec, ReceiverConfig("127.0.0.1:0", record=tmp_path / "out.mkv", idle_exit_s=20.0))
        link = await DatagramSender.open(await receiver.start())
        receiving = asyncio.create_task(receiver.run())
        loop = asyncio.get_running_loop()
        await link.send_paced(datagrams(0), 0.0)
        assert await loop.run_in_executor(None, blocking_recorder.writing.wait, 30), "GOP 0 reaches the recorder"
        blocked_since = time.monotonic()
        later = [d for counter in (1, 2, 3) for d in datagrams(counter, FLAG_END_OF_INPUT if counter == 3 else 0)]
        await link.send_paced(later, 0.0)
        expected = len(arrivals) + len(later)
        while len(arrivals) < expected:  # a hang here (the test's timeout) means the loop is blocked
            await asyncio.sleep(0.01)
        released_at = time.monotonic()
        assert not blocking_recorder.release.is_set() and blocking_recorder.written == 0
        blocking_recorder.release.set()
        report = await asyncio.wait_for(receiving, 30)
        link.close()
        assert all(blocked_since <= arrival <= released_at for arrival in arrivals[-len(later):])
        return released_at, report

    _, report = run(scenario())
    assert report["segments_received"] == 4 * packetizer.n_segments
    assert report["frames_out"] == 16 and blocking_recorder.written == 16
