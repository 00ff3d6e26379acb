"""mstvsc-send and mstvsc-recv in pipelines, as FFmpeg and GStreamer users chain them: standard input in,
standard output out, a URL re-published, and a reader that goes away."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import av
import pytest

from mstvsc_stream.media import sample_clip_path
from test_cli_send_recv import ENV, REPO, TORCH, free_udp_port, start, tiny_model, wait_for_line  # noqa: F401

pytestmark = pytest.mark.timeout(180)

# What `ffmpeg -i clip -vf scale=128:96 -frames:v N -f nut -` writes, without needing an ffmpeg binary.
PRODUCER = """
import sys
from fractions import Fraction
import av
source = av.open(sys.argv[1])
out = av.open(sys.stdout.buffer, "w", format="nut")
stream = out.add_stream("rawvideo", rate=30)
stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
for index, frame in enumerate(source.decode(video=0)):
    if index == int(sys.argv[2]):
        break
    image = av.VideoFrame.from_ndarray(frame.to_ndarray(width=128, height=96, format="rgb24"), format="rgb24")
    image.pts, image.time_base = index, Fraction(1, 30)
    out.mux(stream.encode(image.reformat(format="yuv420p")))
out.mux(stream.encode(None))
out.close()
"""


def decoded_frames(data: bytes, container: str | None = None) -> list:
    with av.open(io.BytesIO(data), format=container) as reader:
        return [frame.to_ndarray(format="rgb24") for frame in reader.decode(video=0)]


def model_args(folder: Path) -> list[str]:
    return ["--model", str(folder), *TORCH]


def test_a_clip_piped_into_send_comes_out_of_recv_on_standard_output(tiny_model: Path, tmp_path: Path) -> None:
    """producer | mstvsc-send --input -   ...   mstvsc-recv --record - > out.nut: every whole GOP arrives,
    standard output carries only the video (NUT, raw RGB), the logs go to standard error."""
    port = free_udp_port()
    out = (tmp_path / "out.nut").open("wb")
    receiver = subprocess.Popen(
        [sys.executable, "-m", "mstvsc_stream.cli.recv", "--listen", f"127.0.0.1:{port}", "--record", "-",
         "--idle-exit", "20", *model_args(tiny_model)], cwd=REPO, env=ENV, stdout=out, stderr=subprocess.PIPE,
        text=True)  # fmt: skip
    try:
        log = wait_for_line(receiver, "listening on")
        producer = subprocess.Popen([sys.executable, "-c", PRODUCER, str(sample_clip_path()), "18"],
                                    stdout=subprocess.PIPE)  # fmt: skip
        sender = subprocess.run(
            [sys.executable, "-m", "mstvsc_stream.cli.send", "--input", "-", "--no-realtime", "--to",
             f"127.0.0.1:{port}", *model_args(tiny_model)], cwd=REPO, env=ENV, stdin=producer.stdout,
            capture_output=True, text=True, timeout=120)  # fmt: skip
        producer.wait(30)
        assert sender.returncode == 0 and producer.returncode == 0, sender.stderr
        log += receiver.communicate(timeout=60)[1]
    finally:
        receiver.kill()
        out.close()
    assert receiver.returncode == 0 and "Traceback" not in log, log
    assert "sending 128x96 @ 30 fps" in sender.stderr
    frames = decoded_frames((tmp_path / "out.nut").read_bytes(), "nut")
    assert len(frames) == 16, "18 frames in make 4 whole GOPs out"
    assert frames[0].shape == (96, 128, 3)


def test_recv_republishes_the_picture_as_mpeg_ts_over_udp(tiny_model: Path) -> None:
    """--record udp://... sends MPEG-TS (H.264) that any player reads; here PyAV reads what arrived."""
    port, ts_port = free_udp_port(), free_udp_port()
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", ts_port))
    collector.settimeout(0.5)
    received: list[bytes] = []
    done = threading.Event()

    def collect() -> None:
        while not done.is_set():
            try:
                received.append(collector.recv(65536))
            except TimeoutError:
                pass

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    receiver = start("recv", "--listen", f"127.0.0.1:{port}", "--idle-exit", "20", "--record",
                     f"udp://127.0.0.1:{ts_port}?pkt_size=1316", *model_args(tiny_model))  # fmt: skip
    try:
        log = wait_for_line(receiver, "listening on")
        sender = subprocess.run(
            [sys.executable, "-m", "mstvsc_stream.cli.send", "--input", "sample", "--frames", "8", "--size",
             "128x96", "--no-realtime", "--to", f"127.0.0.1:{port}", *model_args(tiny_model)], cwd=REPO, env=ENV,
            capture_output=True, text=True, timeout=120)  # fmt: skip
        assert sender.returncode == 0, sender.stderr
        log += receiver.communicate(timeout=60)[1]
    finally:
        receiver.kill()
        done.set()
        thread.join()
        collector.close()
    assert receiver.returncode == 0 and "Traceback" not in log, log
    assert "--input sample: the bundled clip" in sender.stderr
    assert all(len(packet) <= 1316 for packet in received)
    frames = decoded_frames(b"".join(received), "mpegts")
    assert len(frames) == 8 and frames[0].shape == (96, 128, 3)


def test_a_reader_that_goes_away_ends_the_receiver_in_one_line(tiny_model: Path) -> None:
    """mstvsc-recv --record - | head -c 5000: once the reader has closed the pipe, the receiver says so in
    one line and exits cleanly (status 0, its report written), no traceback."""
    port = free_udp_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "mstvsc_stream.cli.recv", "--listen", f"127.0.0.1:{port}", "--record", "-",
         "--idle-exit", "20", *model_args(tiny_model)], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)  # fmt: skip
    sender = None
    try:
        assert receiver.stderr is not None and receiver.stdout is not None
        while b"listening on" not in receiver.stderr.readline():
            pass
        sender = start("send", "--input", "sample", "--loop", "--size", "128x96", "--to", f"127.0.0.1:{port}",
                       *model_args(tiny_model))  # fmt: skip
        assert len(receiver.stdout.read(5000)) == 5000, "the video starts flowing"
        receiver.stdout.close()  # the reader goes away
        log = receiver.communicate(timeout=60)[1].decode()
    finally:
        if sender is not None:
            sender.send_signal(signal.SIGINT)
            sender.communicate(timeout=30)
        receiver.kill()
    assert receiver.returncode == 0, log
    assert "Traceback" not in log and "Exception ignored" not in log, log
    assert "standard output was closed by its reader; stopping" in log
    assert "end_reason=output_closed" in log
