"""Media layer: file and camera capture, the capture thread, recording, display and quality metrics.

Real footage comes from the bundled sample clip (640x480, 77 frames, 30 fps); everything else is made
here, so no test needs a camera, a display or /work/shared.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from mstvsc_stream.media import source as source_module
from mstvsc_stream.media import (
    CameraSource,
    CaptureThread,
    Display,
    FileSource,
    FrameSource,
    MediaError,
    Recorder,
    ms_ssim,
    psnr,
    read_frames,
    sample_clip_path,
)

CLIP_FRAMES = 77


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return read_frames(sample_clip_path())


def assert_one_line_media_error(excinfo: pytest.ExceptionInfo[MediaError], *words: str) -> None:
    message = str(excinfo.value)
    assert message and "\n" not in message
    for word in words:
        assert word in message


# --- file source ---------------------------------------------------------------------------------------


def test_sample_clip_reads_with_its_count_shape_and_rate(clip: np.ndarray) -> None:
    assert clip.shape == (CLIP_FRAMES, 480, 640, 3) and clip.dtype == np.uint8
    with FileSource(sample_clip_path()) as source:
        assert isinstance(source, FrameSource)
        assert source.fps == pytest.approx(30.0)
        assert source.size == (640, 480)
    # Real, moving footage: not blank, and not the same frame over and over.
    assert 20 < clip.mean() < 235
    assert psnr(clip[0], clip[-1]) < 40


def test_resize_gives_the_requested_size_and_keeps_the_picture(clip: np.ndarray) -> None:
    small = read_frames(sample_clip_path(), n=3, size=(320, 240))
    assert small.shape == (3, 240, 320, 3)
    reference = np.stack([cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA) for frame in clip[:3]])
    assert psnr(reference, small) > 30


def test_frames_limit_stops_early(clip: np.ndarray) -> None:
    first = read_frames(sample_clip_path(), n=5)
    assert np.array_equal(first, clip[:5])


def test_loop_restarts_at_the_first_frame_until_the_limit(clip: np.ndarray) -> None:
    with FileSource(sample_clip_path(), loop=True, frames=CLIP_FRAMES + 3) as source:
        looped = np.stack(list(source))
    assert len(looped) == CLIP_FRAMES + 3
    assert np.array_equal(looped[CLIP_FRAMES:], clip[:3])


def test_fps_override_resamples_in_time(clip: np.ndarray) -> None:
    with FileSource(sample_clip_path(), fps=15) as source:
        assert source.fps == 15.0
        halved = np.stack(list(source))
    assert np.array_equal(halved, clip[::2])
    with FileSource(sample_clip_path(), fps=60, frames=6) as source:
        doubled = np.stack(list(source))
    assert np.array_equal(doubled, clip[[0, 1, 1, 2, 2, 3]])


def test_unreadable_inputs_raise_one_line_media_errors(tmp_path: Path) -> None:
    text_file = tmp_path / "notes.mp4"
    text_file.write_text("not a video\n" * 100)
    for bad in (tmp_path / "missing.mp4", text_file, tmp_path):
        with pytest.raises(MediaError) as excinfo:
            FileSource(bad)
        assert_one_line_media_error(excinfo, str(bad))


def test_url_that_fails_raises_media_error() -> None:
    with pytest.raises(MediaError) as excinfo:
        FileSource("http://127.0.0.1:9/clip.mp4")  # discard port: nothing listens there
    assert_one_line_media_error(excinfo, "127.0.0.1")


def test_a_server_that_never_answers_times_out_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts the connection and says nothing ended in FFmpeg's 'Immediate exit requested'."""
    monkeypatch.setattr(source_module, "NETWORK_TIMEOUT_S", 0.5)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/clip.mp4"
        with pytest.raises(MediaError) as excinfo:
            FileSource(url)
    assert_one_line_media_error(excinfo, url, "timed out")
    assert "Immediate exit" not in str(excinfo.value)


# --- recording -----------------------------------------------------------------------------------------


def test_mkv_recording_round_trip_is_bit_exact(tmp_path: Path, clip: np.ndarray) -> None:
    noise = np.random.default_rng(7).integers(0, 256, size=(4, 480, 640, 3), dtype=np.uint8)
    frames = np.concatenate([clip[:4], noise])
    path = tmp_path / "lossless.mkv"
    with Recorder(path, fps=30, size=(640, 480)) as recorder:
        for frame in frames:
            recorder.write(frame)
    assert np.array_equal(read_frames(path), frames)


def test_mp4_recording_is_readable_and_close_to_the_original(tmp_path: Path, clip: np.ndarray) -> None:
    path = tmp_path / "out.mp4"
    with Recorder(path, fps=25, size=(640, 480)) as recorder:
        for frame in clip[:10]:
            recorder.write(frame)
    with FileSource(path) as source:
        assert source.fps == pytest.approx(25.0)
        decoded = np.stack(list(source))
    assert decoded.shape == (10, 480, 640, 3)
    assert psnr(clip[:10], decoded) > 38


def test_recording_is_finalised_when_the_block_raises(tmp_path: Path, clip: np.ndarray) -> None:
    path = tmp_path / "interrupted.mp4"
    with pytest.raises(RuntimeError):
        with Recorder(path, fps=30, size=(640, 480)) as recorder:
            for frame in clip[:3]:
                recorder.write(frame)
            raise RuntimeError("receiver stopped")
    assert len(read_frames(path)) == 3


def test_recorder_rejects_bad_paths_and_frames(tmp_path: Path) -> None:
    for bad in (tmp_path / "no-such-dir" / "out.mp4", tmp_path / "out.xyz"):
        with pytest.raises(MediaError) as excinfo:
            Recorder(bad, fps=30, size=(64, 48))
        assert_one_line_media_error(excinfo, str(bad))
    with Recorder(tmp_path / "out.mkv", fps=30, size=(64, 48)) as recorder:
        with pytest.raises(ValueError):
            recorder.write(np.zeros((48, 65, 3), np.uint8))


# --- quality -------------------------------------------------------------------------------------------


def test_psnr_known_values() -> None:
    black = np.zeros((8, 8, 3), np.uint8)
    off_by_one = np.ones_like(black)
    assert psnr(black, off_by_one) == pytest.approx(20 * np.log10(255))  # MSE 1
    assert psnr(black, black) == 100.0
    # Mean of per-frame values: one frame at 48.13 dB and one identical (capped at 100).
    assert psnr(np.stack([black, black]), np.stack([off_by_one, black])) == pytest.approx((48.1308 + 100) / 2, abs=1e-3)
    full_swing = np.full_like(black, 255)
    assert psnr(black, full_swing) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        psnr(black, np.zeros((8, 9, 3), np.uint8))


def test_ms_ssim_on_large_and_small_frames(clip: np.ndarray) -> None:
    frames = clip[:2]
    assert ms_ssim(frames, frames) == pytest.approx(1.0, abs=1e-5)
    noisy = np.clip(frames + np.random.default_rng(1).normal(0, 25, frames.shape), 0, 255).astype(np.uint8)
    score = ms_ssim(frames, noisy, batch_size=1)
    assert score is not None and 0.3 < score < 0.98
    assert ms_ssim(frames[:, :160], frames[:, :160]) is None


def test_ms_ssim_is_none_without_pytorch_msssim(clip: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pytorch_msssim", None)  # makes the import raise ImportError
    assert ms_ssim(clip[:1], clip[:1]) is None


# --- camera and display --------------------------------------------------------------------------------


def test_missing_camera_raises_media_error() -> None:
    with pytest.raises(MediaError) as excinfo:
        CameraSource(99)
    assert_one_line_media_error(excinfo, "camera 99")


class FakeVideoCapture:
    """Stands in for cv2.VideoCapture: three 20x10 BGR frames with a blue first column, then failure."""

    def __init__(self, index: int) -> None:
        frame = np.zeros((10, 20, 3), np.uint8)
        frame[:, 0] = (255, 0, 0)  # blue in BGR
        self.frames = [frame] * 3

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        return False

    def get(self, prop: int) -> float:
        return 0.0  # reports no frame rate

    def read(self) -> tuple[bool, np.ndarray | None]:
        return (True, self.frames.pop()) if self.frames else (False, None)

    def release(self) -> None:
        pass


def test_camera_frames_are_rgb_of_the_requested_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cv2, "VideoCapture", FakeVideoCapture)
    with CameraSource(0, size=(20, 10), fps=12) as camera:
        assert camera.fps == 12.0
        frames = iter(camera)
        first = next(frames)
        assert first.shape == (10, 20, 3)
        assert tuple(first[0, 0]) == (0, 0, 255)  # blue in RGB
        next(frames)
        next(frames)
        with pytest.raises(MediaError, match="stopped delivering"):
            next(frames)
    monkeypatch.setattr(cv2, "VideoCapture", FakeVideoCapture)
    assert next(iter(CameraSource(0, size=(40, 30)))).shape == (30, 40, 3)


def test_display_without_a_screen_raises_media_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(MediaError) as excinfo:
        Display("test")
    assert_one_line_media_error(excinfo, "display")


# --- capture thread ------------------------------------------------------------------------------------


class CountingSource:
    """Yields ``count`` tiny frames whose first pixel is their index; raises ``error`` after them if set.

    ``exhausted`` is set once the consumer asks for a frame past the last, i.e. after every frame
    was handed on.
    """

    fps = 30.0
    size = (4, 2)

    def __init__(self, count: int | None, error: Exception | None = None) -> None:
        self.count = count
        self.error = error
        self.exhausted = threading.Event()
        self.closed = False

    def __iter__(self) -> Iterator[np.ndarray]:
        index = 0
        while self.count is None or index < self.count:
            frame = np.zeros((2, 4, 3), np.uint8)
            frame[0, 0, 0] = index % 256
            yield frame
            index += 1
        self.exhausted.set()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


def test_capture_thread_drops_the_oldest_frames_when_the_consumer_is_slow() -> None:
    source = CountingSource(20)
    capture = CaptureThread(source, capacity=4).start()
    assert source.exhausted.wait(10)
    frames = list(capture)  # the consumer arrives only now
    assert [frame.sequence for frame in frames] == [16, 17, 18, 19]
    assert [int(frame.image[0, 0, 0]) for frame in frames] == [16, 17, 18, 19]
    assert capture.dropped == 16
    assert capture.get() is None  # end of input stays signalled
    assert source.closed
    stamps = [frame.captured_at for frame in frames]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 60


def test_capture_thread_hands_source_errors_to_the_consumer() -> None:
    source = CountingSource(2, error=MediaError("camera 0 stopped delivering frames"))
    with CaptureThread(source, capacity=8) as capture:
        assert capture.get(timeout=10) is not None
        assert capture.get(timeout=10) is not None
        with pytest.raises(MediaError, match="stopped delivering"):
            capture.get(timeout=10)


def test_realtime_capture_is_paced_and_stops_cleanly() -> None:
    source = CountingSource(None)  # endless
    started = time.monotonic()
    with CaptureThread(source, capacity=16, realtime=True) as capture:
        frames = [capture.get(timeout=10) for _ in range(7)]
    # Seven frames at 30 fps span at least six frame periods (only a lower bound: the machine may be slow).
    assert time.monotonic() - started >= 6 / 30 * 0.9
    assert [frame.sequence for frame in frames if frame] == list(range(7))
    assert capture.dropped == 0
    assert capture.get() is None
    assert source.closed


def test_capture_thread_runs_a_real_file_source(clip: np.ndarray) -> None:
    with CaptureThread(FileSource(sample_clip_path(), frames=8), capacity=CLIP_FRAMES) as capture:
        images = [frame.image for frame in capture]
    assert np.array_equal(np.stack(images), clip[:8])


class BlockedSource(CountingSource):
    """Delivers one frame, then blocks inside its next read until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(None)
        self.release = threading.Event()

    def __iter__(self) -> Iterator[np.ndarray]:
        yield np.zeros((48, 64, 3), np.uint8)
        self.release.wait(30)
        yield np.zeros((48, 64, 3), np.uint8)


def test_stopping_capture_never_waits_for_a_blocked_read() -> None:
    """The sender's signal handler calls stop() on the event loop; a source stuck in a read (a camera
    that hangs) held the loop for up to 5 s. stop() now only signals; join() waits, off the loop."""
    source = BlockedSource()
    capture = CaptureThread(source, capacity=4).start()
    assert capture.get(timeout=10) is not None
    stopping = threading.Thread(target=capture.stop)
    stopping.start()
    stopping.join(2.0)
    assert not stopping.is_alive() and not source.release.is_set(), "stop() waited for the blocked read"
    assert capture.get(timeout=1) is None and not source.closed
    source.release.set()
    assert capture.join(10) and source.closed


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_recorder_keeps_real_frame_times_so_a_half_rate_stretch_plays_at_its_speed(tmp_path: Path, suffix: str) -> None:
    import av

    path = tmp_path / f"timed{suffix}"
    with Recorder(path, 30, (64, 48)) as recorder:
        times = [100 + i / 30 for i in range(8)] + [100 + 8 / 30 + i / 15 for i in range(8)]  # then half rate
        times += [50 + i / 30 for i in range(4)]  # another sender's clock, far behind: continues after the rest
        for i, at in enumerate(times):
            recorder.write(np.full((48, 64, 3), 10 * i, np.uint8), at)
    with av.open(str(path)) as container:
        shown = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    assert len(shown) == len(times) == len(read_frames(path))
    assert shown[:16] == pytest.approx([t - 100 for t in times[:16]], abs=2e-3)
    assert np.diff(shown[16:]) == pytest.approx([1 / 30] * 3, abs=2e-3) and shown[16] - shown[15] == pytest.approx(1 / 30, abs=2e-3)
