"""The sender's adaptation policy (``--degrade``): hysteresis with a fake clock and a deliberately slow
codec, the link-rate input, and the sender stepping between sessions over real loopback UDP."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch

from mstvsc_stream.media import FileSource, read_frames, sample_clip_path
from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.model.mstvsc import MSTVSC
from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.transport import DatagramReceiver
from mstvsc_stream.pipeline.adaptation import (
    CPU,
    HEADROOM,
    LINK,
    AdaptationConfig,
    AdaptationPolicy,
    Rung,
    build_ladder,
    choose_size,
)
from mstvsc_stream.pipeline.admission import parse_descriptor
from mstvsc_stream.pipeline.advice import DROPPED, ThrottledWarning
from mstvsc_stream.pipeline.sender import Sender, SenderConfig
from mstvsc_stream.runtime.torch_backend import TorchCodec

CONFIG = AdaptationConfig(down_after_s=2.0, up_after_s=5.0, min_switch_interval_s=6.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowCodec:
    """Encodes nothing; takes ``seconds_per_megapixel`` of the fake clock per frame-megapixel, times the
    machine's load at that moment (``load(now)``, 1 = idle): a CPU that another process may take."""

    gop = 4
    model_id = "slow@" + "00" * 8

    def __init__(self, clock: FakeClock, seconds_per_megapixel: float, load: Callable[[float], float]) -> None:
        self.clock, self.rate, self.load = clock, seconds_per_megapixel, load

    def latent_length(self, height: int, width: int) -> int:
        return height * width // 64

    def encode(self, frames: np.ndarray) -> np.ndarray:
        t, h, w, _ = frames.shape
        self.clock.now += self.rate * t * h * w / 1e6 * self.load(self.clock.now)
        return np.zeros(self.latent_length(h, w), np.int8)


def simulate(policy: AdaptationPolicy, codec: SlowCodec, clock: FakeClock, seconds: float) -> None:
    """A live sender's loop on the fake clock: a GOP is due every GOP interval of the current rung;
    encoding starts when one is due and the encoder is free, and GOPs missed meanwhile are dropped."""
    end = clock.now + seconds
    due = clock.now
    while clock.now < end:
        clock.now = max(clock.now, due)
        rung = policy.rung
        started = clock.now
        codec.encode(np.zeros((codec.gop, rung.height, rung.width, 3), np.uint8))
        policy.observe_encode(clock.now - started)
        due += rung.budget_s
        while due < clock.now:  # the GOPs captured while encoding ran late: dropped, the newest kept
            due += rung.budget_s


def framerate_policy(clock: FakeClock) -> AdaptationPolicy:
    return AdaptationPolicy(build_ladder("framerate", 320, 240, 30.0, 4), CONFIG, clock)


def resolution_policy(clock: FakeClock) -> AdaptationPolicy:
    return AdaptationPolicy(build_ladder("resolution", 640, 480, 30.0, 4), CONFIG, clock)


def load_between(start: float, stop: float, factor: float) -> Callable[[float], float]:
    return lambda now: factor if start <= now < stop else 1.0


def test_ladders_follow_the_degradation_preference() -> None:
    assert [r.label for r in build_ladder("framerate", 320, 240, 30, 4)] == ["320x240 @ 30 fps", "320x240 @ 15 fps"]
    assert [r.label for r in build_ladder("resolution", 640, 480, 30, 4)] == [
        "640x480 @ 30 fps", "320x240 @ 30 fps", "256x192 @ 30 fps"]
    assert [r.label for r in build_ladder("resolution", 320, 240, 25, 4, lambda w, h: w != 256)] == ["320x240 @ 25 fps"]
    assert len(build_ladder("drop", 640, 480, 30, 4)) == 1
    with pytest.raises(ValueError, match="unknown degradation"):
        build_ladder("blur", 640, 480, 30, 4)


def test_one_slow_gop_does_not_step_down() -> None:
    clock = FakeClock()
    policy = framerate_policy(clock)
    # 4 frames x 0.077 MP x 0.3 s/MP = 0.092 s per GOP, 70 % of the 0.133 s budget
    codec = SlowCodec(clock, 0.3, load_between(clock.now + 3.0, clock.now + 3.2, 8.0))  # one GOP at 8x
    simulate(policy, codec, clock, 20.0)
    assert policy.switches == []


def test_sustained_lag_steps_down_after_the_period_and_headroom_brings_it_back() -> None:
    clock = FakeClock()
    start = clock.now
    policy = framerate_policy(clock)
    codec = SlowCodec(clock, 0.3, load_between(start + 5.0, start + 25.0, 2.5))  # another process for 20 s
    simulate(policy, codec, clock, 60.0)
    down, up = policy.switches
    assert down.reason == CPU and down.down and down.to.fps == 15
    assert 5.0 + CONFIG.down_after_s <= down.at - start <= 5.0 + CONFIG.down_after_s + 1.0  # not on the first slow GOP
    assert up.reason == HEADROOM and up.to == policy.ladder[0]
    # back once headroom returns: the smoothed encode time decays (a few GOPs), then up_after_s of headroom
    assert 25.0 + CONFIG.up_after_s <= up.at - start <= 25.0 + CONFIG.up_after_s + 3.0
    assert policy.degraded_s() == pytest.approx(up.at - down.at)
    assert policy.summary()["switches"] == 2


def test_at_half_rate_under_lasting_load_it_stays_down() -> None:
    clock = FakeClock()
    policy = framerate_policy(clock)
    codec = SlowCodec(clock, 0.3, lambda now: 2.5)  # 0.23 s per GOP: over 0.133, within 0.75 x 0.267
    simulate(policy, codec, clock, 60.0)
    assert [s.to.fps for s in policy.switches] == [15]


def test_never_switches_faster_than_its_bound_even_when_the_load_flaps() -> None:
    clock = FakeClock()
    eager = AdaptationConfig(down_after_s=0.5, up_after_s=0.5, min_switch_interval_s=6.0)
    policy = AdaptationPolicy(build_ladder("resolution", 640, 480, 30.0, 4), eager, clock)
    # 640x480: 0.123 s per GOP at load 1; the load flips between 3x and 0.3x every 2 s, so the periods
    # alone would switch every 2 s
    codec = SlowCodec(clock, 0.1, lambda now: 3.0 if int(now // 2) % 2 else 0.3)
    simulate(policy, codec, clock, 120.0)
    times = [s.at for s in policy.switches]
    assert len(times) >= 6
    assert min(b - a for a, b in zip(times, times[1:])) >= eager.min_switch_interval_s


def test_resolution_steps_down_one_rung_at_a_time_to_the_last_and_back() -> None:
    clock = FakeClock()
    start = clock.now
    policy = resolution_policy(clock)
    codec = SlowCodec(clock, 0.07, load_between(start + 1.0, start + 40.0, 8.0))  # 640x480: 65 % idle
    simulate(policy, codec, clock, 100.0)
    sizes = [(s.to.width, s.to.height) for s in policy.switches]
    assert sizes[:2] == [(320, 240), (256, 192)]
    assert sizes[-1] == (640, 480)
    assert policy.level == 0


def test_noisy_warm_up_costs_never_predict_a_larger_rung_cheaper() -> None:
    """A quick codec's blank-GOP costs are timing noise (here the larger size timed 3x quicker): the step up
    must still expect at least today's encode time there, or it climbs back into the rung it left."""
    clock = FakeClock()
    ladder = [Rung(320, 240, 30, cost_s=0.00002), Rung(256, 192, 30, cost_s=0.00006)]
    policy = AdaptationPolicy(ladder, CONFIG, clock, level=1)
    codec = SlowCodec(clock, 0.6, lambda now: 1.0)  # 256x192: 0.118 s of a 0.133 s budget, 320x240: 0.184 s
    simulate(policy, codec, clock, 20.0)
    assert policy.switches == [] and policy.level == 1


def test_the_link_rate_feeds_the_same_decision() -> None:
    clock = FakeClock()
    ladder = [Rung(640, 480, 30, kbps=700), Rung(320, 240, 30, kbps=190), Rung(256, 192, 30, kbps=120)]
    policy = AdaptationPolicy(ladder, CONFIG, clock)
    codec = SlowCodec(clock, 0.05, lambda now: 1.0)  # plenty of CPU
    simulate(policy, codec, clock, 3.0)
    policy.observe_link(150)  # the congestion controller's target: only 256x192 fits
    simulate(policy, codec, clock, 3.0)
    assert [(s.reason, s.to.width) for s in policy.switches] == [(LINK, 256)]
    policy.observe_link(1000)  # the link recovers; the CPU has room: back up a rung at a time
    simulate(policy, codec, clock, 40.0)
    assert [s.to.width for s in policy.switches] == [256, 320, 640]
    policy.observe_link(500)
    simulate(policy, codec, clock, 10.0)
    assert policy.rung.width == 320


def test_throttled_warning_says_it_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    warning = ThrottledWarning(logging.getLogger("t"), clock, interval_s=5.0)
    with caplog.at_level(logging.WARNING):
        said = []
        for _ in range(20):
            said.append(warning.warn(f"3 GOPs {DROPPED}"))
            clock.now += 1.0
    assert said.count(True) == 4 and len(caplog.records) == 4


# --- the sender, over real loopback UDP --------------------------------------------------------------------


class SleepyCodec:
    """Codes of the tiny test model's length, made in real time: ``seconds_per_megapixel`` while another
    process has the CPU, at once otherwise. ``busy(t)`` says whether it has, ``t`` seconds after the first GOP
    of real frames; the blank GOPs of the sender's warm-up before it are slow only with ``slow_start``."""

    def __init__(self, codec: TorchCodec, busy: Callable[[float], bool], seconds_per_megapixel: float,
                 slow_start: bool = False) -> None:
        self._codec, self._busy, self._rate, self._slow_start = codec, busy, seconds_per_megapixel, slow_start
        self._first_real: float | None = None
        self.model_id, self.gop = codec.model_id, codec.gop

    def latent_length(self, height: int, width: int) -> int:
        return self._codec.latent_length(height, width)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        t, h, w, _ = frames.shape
        busy = self._slow_start
        if frames.any():
            self._first_real = self._first_real or time.monotonic()
            busy = self._busy(time.monotonic() - self._first_real)
        if busy:
            time.sleep(self._rate * t * h * w / 1e6)
        return np.zeros(self.latent_length(h, w), np.int8)


def descriptors_of_a_stream(codec: SleepyCodec, size: tuple[int, int], degrade: str, frames: int) -> tuple[list, dict]:
    """Streams the sample clip live to a bare socket; returns each session's first descriptor, in order."""
    seen: dict[int, object] = {}

    def collect(datagram: bytes, addr: tuple, arrival: float) -> None:
        descriptor = parse_descriptor(datagram)
        if descriptor is not None and descriptor.session_id not in seen:
            seen[descriptor.session_id] = descriptor

    async def scenario() -> dict:
        receiver = await DatagramReceiver.open("127.0.0.1:0", collect)
        config = SenderConfig(receiver.local_address, max_frames=frames, degrade=degrade,
                              adaptation=AdaptationConfig(down_after_s=0.4, up_after_s=0.6, min_switch_interval_s=0.8))
        report = await Sender(codec, FileSource(sample_clip_path(), size=size, loop=True), config).run()
        await asyncio.sleep(0.1)
        receiver.close()
        return report

    report = run(scenario())
    return list(seen.values()), report


@pytest.fixture(scope="module")
def tiny() -> TorchCodec:
    torch.manual_seed(0)
    return TorchCodec(MSTVSC(CONFIGS["tiny-test"]).eval(), "tiny-test@" + "00" * 8)


@pytest.mark.timeout(60)
def test_the_sender_halves_its_frame_rate_in_a_new_session_and_comes_back(tiny: TorchCodec) -> None:
    codec = SleepyCodec(tiny, lambda t: t < 1.5, seconds_per_megapixel=0.6)  # 0.18 s/GOP for the first 1.5 s
    sessions, report = descriptors_of_a_stream(codec, (320, 240), "framerate", frames=120)
    assert [d.fps for d in sessions][:3] == [30.0, 15.0, 30.0]
    assert len({d.session_id for d in sessions}) == len(sessions)
    assert report["switches"] >= 2 and report["switch_log"][0]["reason"] == CPU
    assert report["seconds_degraded"] > 0


class RefiningCodec(SleepyCodec):
    """A :class:`~mstvsc_stream.runtime.base.Refining` codec on the clock: its own pass takes 10 ms, each
    refinement step 20 ms, and it takes the steps that fit in ``refine_budget_s`` (every one without)."""

    def __init__(self, codec: TorchCodec, refine_steps: int) -> None:
        super().__init__(codec, lambda t: False, 0.0)
        self.refine_steps, self.refine_budget_s = refine_steps, None
        self.refined_steps, self.refined_s = 0, 0.0
        self.budgets: list[float | None] = []

    def encode(self, frames: np.ndarray) -> np.ndarray:
        began = time.perf_counter()
        self.budgets.append(self.refine_budget_s)
        time.sleep(0.01)
        refining, self.refined_steps = time.perf_counter(), 0
        while self.refined_steps < self.refine_steps and (
                self.refine_budget_s is None or time.perf_counter() + 0.02 <= began + self.refine_budget_s):
            time.sleep(0.02)
            self.refined_steps += 1
        self.refined_s = time.perf_counter() - refining
        return super().encode(frames)


@pytest.mark.timeout(60)
def test_a_live_sender_gives_refinement_three_quarters_of_the_gop_interval(tiny: TorchCodec) -> None:
    """``--refine`` live: each encode gets 75 % of the GOP interval (100 of 133 ms) and takes the steps
    that fit, so refinement drops no GOP however many steps were asked for; the report says how many a
    GOP got. The warm-up times the encoder's own pass (no budget, no steps)."""
    codec = RefiningCodec(tiny, refine_steps=10**6)
    _, report = descriptors_of_a_stream(codec, (320, 240), "drop", frames=48)
    assert report["gops_sent"] == 12 and report["gops_dropped"] == 0
    warm_up, *live = codec.budgets
    assert warm_up == 0.0, "the warm-up's blank GOP is timed without refinement"
    assert len(live) == 12 and all(b == pytest.approx(0.75 * 4 / 30) for b in live)
    assert 2 <= report["refine_steps_per_gop"] <= 4  # (100 - 10) ms / 20 ms, less what sleeps overrun


@pytest.mark.timeout(60)
def test_the_sender_steps_down_to_a_smaller_size_in_a_new_session(tiny: TorchCodec) -> None:
    codec = SleepyCodec(tiny, lambda t: True, seconds_per_megapixel=0.6)  # 320x240: 0.18 s from the first GOP on
    sessions, report = descriptors_of_a_stream(codec, (320, 240), "resolution", frames=60)
    assert [(d.width, d.height) for d in sessions] == [(320, 240), (256, 192)]  # 256x192: 0.12 s, in time
    assert sessions[1].n_elements == tiny.latent_length(192, 256)
    assert report["rung"] == "256x192 @ 30 fps" and report["gops_sent"] >= 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("degrade, first", [("framerate", (320, 240, 15.0)), ("resolution", (256, 192, 30.0))])
def test_a_machine_too_slow_from_the_start_starts_at_the_rung_that_fits_and_drops_nothing(
        tiny: TorchCodec, degrade: str, first: tuple, caplog: pytest.LogCaptureFixture) -> None:
    # 320x240 @ 30 fps: 0.18 s of a 0.133 s budget, the warm-up included
    codec = SleepyCodec(tiny, lambda t: True, seconds_per_megapixel=0.6, slow_start=True)
    with caplog.at_level(logging.WARNING, logger="mstvsc_stream.pipeline.sender"):
        sessions, report = descriptors_of_a_stream(codec, (320, 240), degrade, frames=48)
    assert [(d.width, d.height, d.fps) for d in sessions] == [first]
    assert report["gops_dropped"] == 0 and report["switches"] == 0 and report["seconds_degraded"] > 0
    said = [r.getMessage() for r in caplog.records if "at start-up" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{CPU}: encoding 320x240 @ 30 fps took 1")
    assert f"starting at {report['rung']} (--degrade {degrade})" in said[0]


def test_drop_mode_and_unmeasured_rungs_start_at_the_top() -> None:
    clock = FakeClock()
    slow = Rung(320, 240, 30, cost_s=0.5)
    assert AdaptationPolicy([slow], clock=clock).start_where_it_fits() is None  # drop: one rung
    unmeasured = AdaptationPolicy([Rung(320, 240, 30), Rung(320, 240, 15)], clock=clock)
    assert unmeasured.start_where_it_fits() is None and unmeasured.level == 0
    neither = AdaptationPolicy([slow, Rung(320, 240, 15, cost_s=0.5)], clock=clock)  # nothing fits: the last rung
    assert neither.start_where_it_fits() is not None and neither.level == 1
    # in time (0.12 s of 0.133 s), but not within the 75 % headroom a step up would need: the half rate
    tight = AdaptationPolicy([Rung(320, 240, 30, cost_s=0.12), Rung(320, 240, 15, cost_s=0.12)], clock=clock)
    assert tight.start_where_it_fits() == ("encoding 320x240 @ 30 fps took 120 ms per GOP at start-up, over 75% of "
                                           "its 133 ms budget") and tight.level == 1
    roomy = AdaptationPolicy([Rung(320, 240, 30, cost_s=0.09), Rung(320, 240, 15, cost_s=0.09)], clock=clock)
    assert roomy.start_where_it_fits() is None and roomy.level == 0


# --- mstvsc-send --camera N --size auto, a file standing in for the camera ---------------------------------


class FileCamera(FileSource):
    """The sample clip where ``mstvsc-send --camera N`` would open a camera: like one, it paces itself."""

    def __init__(self, index: int, size: tuple[int, int], fps: float) -> None:
        super().__init__(sample_clip_path(), size=size, fps=fps, loop=True)

    def __iter__(self):
        due = time.monotonic()
        for frame in super().__iter__():
            due += 1 / self.fps
            time.sleep(max(0.0, due - time.monotonic()))
            yield frame


def test_send_camera_picks_the_largest_size_this_machine_encodes_in_time_and_says_why(
    tiny: TorchCodec, monkeypatch: pytest.MonkeyPatch, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    from mstvsc_stream.cli import send

    # 640x480: 0.31 s per GOP, over the 133 ms interval; 320x240: 77 ms, within 75 % of it (100 ms)
    codec = SleepyCodec(tiny, lambda t: True, seconds_per_megapixel=0.25, slow_start=True)
    monkeypatch.setattr(send, "CameraSource", FileCamera)
    monkeypatch.setattr(send, "open_codec", lambda args: codec)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    stats = tmp_path / "tx.json"
    try:
        with caplog.at_level(logging.INFO):
            status = send.main(["--camera", "0", "--to", f"127.0.0.1:{sink.getsockname()[1]}", "--frames", "48",
                                "--stats-json", str(stats)])
    finally:
        sink.close()
    assert status == 0
    report = json.loads(stats.read_text())
    said = [r.getMessage() for r in caplog.records if "--size auto" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("--size auto: 320x240, the largest size encoded within 75 % of the 133 ms")
    assert "640x480" in said[0]  # and what the larger size took
    assert report["gops_sent"] == 12 and report["gops_dropped"] == 0


def test_gops_take_every_other_frame_at_half_rate_and_never_mix_two_rates() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mstvsc_stream.media import CapturedFrame
    from mstvsc_stream.pipeline.gops import gather_gops

    class ListFeed:
        def __init__(self, n: int) -> None:
            self._frames = iter(range(n))

        def get(self) -> CapturedFrame | None:
            i = next(self._frames, None)
            return None if i is None else CapturedFrame(np.full((2, 2, 3), i, np.uint8), float(i), i)

        def stop(self) -> None:
            pass

    steps = iter([1, 2, 2, 1])

    async def gather() -> list:
        with ThreadPoolExecutor(1) as reader:
            return [g async for g in gather_gops(ListFeed(40), 4, reader, frame_step=lambda: next(steps, 1))]

    gops = run(gather())
    assert [[int(f[0, 0, 0]) for f in g.frames] for g in gops] == [
        [0, 1, 2, 3], [4, 6, 8, 10], [12, 14, 16, 18], [20, 21, 22, 23], [24, 25, 26, 27], [28, 29, 30, 31],
        [32, 33, 34, 35], [36, 37, 38, 39]]
    assert [g.frame_step for g in gops][:4] == [1, 2, 2, 1]


@pytest.mark.timeout(60)
def test_the_receiver_follows_each_step_at_once_and_plays_every_frame_sent(tiny: TorchCodec, tmp_path) -> None:
    from mstvsc_stream.pipeline.receiver import Receiver, ReceiverConfig

    # 128x96 at 6 s/MP: 295 ms per GOP for the first 1.5 s, over the 133 ms interval; then at once
    codec = SleepyCodec(tiny, lambda t: t < 1.5, seconds_per_megapixel=6.0)
    recording = tmp_path / "out.mkv"

    async def scenario() -> tuple[dict, dict]:
        receiver = Receiver(tiny, ReceiverConfig("127.0.0.1:0", idle_exit_s=2.0, record=recording))
        address = await receiver.start()
        receiving = asyncio.create_task(receiver.run())
        config = SenderConfig(address, max_frames=120, degrade="framerate",
                              adaptation=AdaptationConfig(down_after_s=0.4, up_after_s=0.6, min_switch_interval_s=0.8))
        sent = await Sender(codec, FileSource(sample_clip_path(), size=(128, 96), loop=True), config).run()
        return sent, await asyncio.wait_for(receiving, 30)

    sent, received = run(scenario())
    assert sent["switches"] >= 2 and received["sessions"] >= 3
    assert received["frames_out"] == sent["frames_sent"] and received["gops_concealed"] == 0
    assert len(read_frames(recording)) == sent["frames_sent"]


@pytest.mark.parametrize("rate, size, roomy, says", [
    (0.25, (320, 240), True, "320x240, the largest size encoded within 75 % of the 133 ms GOP interval"),
    (0.55, (256, 192), False, "256x192, the largest size encoded within the 133 ms GOP interval at 30 fps (per GOP: "
                              "640x480 676 ms, 320x240 169 ms, 256x192 108 ms), though with less than 25 % headroom"),
    (0.80, (256, 192), False, "256x192, the smallest shipped size, though even it takes more than the 133 ms GOP"),
])
def test_size_auto_prefers_headroom_then_real_time_then_the_smallest(rate: float, size: tuple, roomy: bool,
                                                                     says: str) -> None:
    clock = FakeClock()
    chosen, reason, with_headroom = choose_size(SlowCodec(clock, rate, lambda now: 1.0), 30.0, clock=clock)
    assert (chosen, with_headroom) == (size, roomy)
    assert reason.startswith(says)
