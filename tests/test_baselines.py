"""Classic baselines over lossy packets: rate matching, what the player shows, and the erasure code."""

from __future__ import annotations

import numpy as np
import pytest

from mstvsc_stream.media import psnr, read_frames, sample_clip_path
from mstvsc_stream.net.loss import BernoulliLoss, LossProcess
from mstvsc_stream.analysis.baselines import (BASELINE_NAMES, GRAY, Baseline, BaselineStream, deliver,
                                              encode_at_rate, frame_survives, play)

TARGET_KBPS = 100.0
PAYLOAD = 129  # bytes, as a small semantic stream would use
KEYINT = 30


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return read_frames(sample_clip_path(), n=24, size=(96, 64))


@pytest.fixture(scope="module")
def h264(clip: np.ndarray) -> BaselineStream:
    return encode_at_rate(clip, 30.0, Baseline.named("h264"), TARGET_KBPS, PAYLOAD, KEYINT)


class EveryOtherPacket:
    """Loses packets 1, 3, 5, ...: a fixed pattern under which plain and protected frames part ways."""

    mean_loss_rate = 0.5

    def draw(self, n: int, rng: np.random.Generator, bad: bool) -> tuple[np.ndarray, bool]:
        return np.arange(n) % 2 == 1, bad


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_bitrate_lands_within_ten_percent_of_the_target(clip: np.ndarray, name: str) -> None:
    stream = encode_at_rate(clip, 30.0, Baseline.named(name), TARGET_KBPS, PAYLOAD, KEYINT)
    assert abs(stream.kbps / TARGET_KBPS - 1) <= 0.10, f"{name}: {stream.kbps:.1f} kbps"


def test_kbps_counts_headers_and_parity() -> None:
    units = [b"x" * 300, b"y" * 10]  # 3 packets (129 + 129 + 42) and 1 packet
    plain = BaselineStream(Baseline.named("h264"), units, PAYLOAD, 30.0)
    protected = BaselineStream(Baseline.named("h264-fec"), units, PAYLOAD, 30.0)
    plain_bytes = 300 + 3 * 3 + 10 + 3
    parity_bytes = 3 * (129 + 3) + (10 + 3)  # parity packets as long as the longest source packet
    assert plain.kbps == pytest.approx(plain_bytes * 8 * 30 / 2 / 1000)
    assert protected.kbps == pytest.approx((plain_bytes + parity_bytes) * 8 * 30 / 2 / 1000)
    assert [protected.sent_packets(i) for i in range(2)] == [6, 2]


def test_lossless_delivery_decodes_every_frame_well(clip: np.ndarray, h264: BaselineStream) -> None:
    decodable, dropped = deliver(h264, LossProcess(BernoulliLoss(0.0), 1))
    assert decodable.all() and dropped == 0
    shown = play(h264, decodable, 64, 96)
    assert psnr(clip, shown) > 28.0
    assert not any((frame == GRAY).all() for frame in shown)


def test_total_loss_shows_gray(h264: BaselineStream) -> None:
    decodable, dropped = deliver(h264, LossProcess(BernoulliLoss(1.0), 1))
    assert not decodable.any()
    assert dropped == sum(h264.sent_packets(i) for i in range(len(h264.access_units)))
    assert (play(h264, decodable, 64, 96) == GRAY).all()


def test_a_lost_frame_is_held_and_the_decoder_drifts_after_it(h264: BaselineStream) -> None:
    clean = play(h264, np.ones(24, dtype=bool), 64, 96)
    decodable = np.ones(24, dtype=bool)
    decodable[5] = False
    shown = play(h264, decodable, 64, 96)
    assert (shown[:5] == clean[:5]).all()
    assert (shown[5] == shown[4]).all()  # held
    assert not (shown[6] == shown[5]).all()  # decoding goes on...
    assert not (shown[6] == clean[6]).all()  # ...from a wrong reference


def test_erasure_code_survives_where_plain_packets_fail(clip: np.ndarray) -> None:
    plain = encode_at_rate(clip, 30.0, Baseline.named("h264"), TARGET_KBPS, PAYLOAD, KEYINT)
    protected = encode_at_rate(clip, 30.0, Baseline.named("h264-fec"), TARGET_KBPS, PAYLOAD, KEYINT)
    plain_ok, _ = deliver(plain, LossProcess(EveryOtherPacket(), 1))
    protected_ok, _ = deliver(protected, LossProcess(EveryOtherPacket(), 1))
    assert protected_ok.all()  # 2k packets, every other one lost: exactly k arrive
    assert not plain_ok.all()


def test_frame_survival_rule() -> None:
    assert frame_survives(sent=3, lost=0, needed=3)
    assert not frame_survives(sent=3, lost=1, needed=3)
    assert frame_survives(sent=6, lost=3, needed=3)
    assert not frame_survives(sent=6, lost=4, needed=3)


def test_unknown_baseline_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown baseline 'vp9'.*h264"):
        Baseline.named("vp9")
