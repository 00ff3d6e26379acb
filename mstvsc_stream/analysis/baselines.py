"""Classic separate source and channel coding over the same lossy UDP path, for Fig. 11.

A baseline is H.264 (libx264) or H.265 (libx265) in real-time settings (``tune=zerolatency``: no
B-frames, no lookahead, one access unit out per frame in), 1-pass ABR with a VBV cap, at the semantic
stream's bitrate. Each frame's access unit is cut into payloads of the semantic stream's size, each with
the same 3-byte application header, and the packets meet the same seeded loss process. A frame with a
lost packet cannot be decoded; the player repeats the last frame it showed (mid gray before the
first). Decoding goes on with the frames that did arrive, so reference drift after a loss, or a decoder
refusing frames until the next keyframe, is exactly what a viewer of that stream would see.

The ``-fec`` variants protect each frame with an ideal rate-1/2 erasure code (as the paper's
BPSK + 1/2 LDPC comparison spends half the channel on parity): k source packets get k parity packets
and the frame survives when any k of the 2k arrive. The source then gets half the bits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from ..net.loss import LossProcess
from ..wire import HEADER_SIZE

log = logging.getLogger(__name__)

FEC_SUFFIX = "-fec"
# scheme name -> (PyAV encoder, PyAV decoder)
CODECS = {"h264": ("libx264", "h264"), "h265": ("libx265", "hevc")}
BASELINE_NAMES = tuple(name + fec for fec in ("", FEC_SUFFIX) for name in CODECS)
GRAY = 128  # what the player shows before any frame could be decoded
RATE_TOLERANCE = 0.10  # the actual bitrate must land within this of the target
RATE_AIM = 0.04  # re-encode while further than this from the target...
MAX_ENCODES = 3  # ...at most this many times in all
MIN_SOURCE_KBPS = 1.0  # libx264 takes its bitrate in whole kbit/s and refuses 0


def default_keyint(fps: float) -> int:
    """A keyframe a second: with no feedback channel on one-way UDP, periodic keyframes are how a classic
    stream recovers from a loss, and this is a common real-time choice."""
    return max(1, round(fps))


@dataclass(frozen=True)
class Baseline:
    name: str
    encoder: str
    decoder: str
    fec: bool

    @classmethod
    def named(cls, name: str) -> Baseline:
        codec = name.removesuffix(FEC_SUFFIX)
        if codec not in CODECS:
            raise ValueError(f"unknown baseline {name!r} (choose from {', '.join(BASELINE_NAMES)})")
        return cls(name, *CODECS[codec], fec=name.endswith(FEC_SUFFIX))


@dataclass(frozen=True)
class BaselineStream:
    """One encoded clip: an access unit per frame, and how its packets go on the wire."""

    baseline: Baseline
    access_units: list[bytes]
    payload: int
    fps: float

    def source_packets(self, frame: int) -> int:
        return -(-len(self.access_units[frame]) // self.payload)

    def sent_packets(self, frame: int) -> int:
        return self.source_packets(frame) * (2 if self.baseline.fec else 1)

    def frame_bytes(self, frame: int) -> int:
        """Bytes on the wire for one frame: payloads, headers and (with FEC) parity packets as long as
        the longest source packet, which is what an erasure code over equal-length symbols sends."""
        size = len(self.access_units[frame])
        k = self.source_packets(frame)
        parity = k * (min(size, self.payload) + HEADER_SIZE) if self.baseline.fec else 0
        return size + k * HEADER_SIZE + parity

    @property
    def kbps(self) -> float:
        total = sum(self.frame_bytes(i) for i in range(len(self.access_units)))
        return total * 8 * self.fps / len(self.access_units) / 1000


def encode(frames: np.ndarray, fps: float, baseline: Baseline, source_kbps: float, keyint: int) -> list[bytes]:
    """Access units (Annex B, parameter sets in-band with each keyframe) of ``frames``, one per frame."""
    n, height, width, _ = frames.shape
    context = av.CodecContext.create(baseline.encoder, "w")
    context.width, context.height, context.pix_fmt = width, height, "yuv420p"
    context.framerate = Fraction(fps).limit_denominator(1001)
    context.time_base = 1 / context.framerate
    context.gop_size = keyint
    context.thread_count = 1  # the same bitstream on every machine, and no slice-threading penalty
    bits = max(1, round(source_kbps * 1000))
    context.bit_rate = bits
    context.options = {"tune": "zerolatency", "maxrate": str(bits), "bufsize": str(bits), "preset": "medium",
                       **({"x265-params": "log-level=error"} if baseline.encoder == "libx265" else {})}
    units: list[bytes] = [b""] * n
    for index, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        for packet in context.encode(frame):
            units[packet.pts] = bytes(packet)
    for packet in context.encode(None):
        units[packet.pts] = bytes(packet)
    return units


def encode_at_rate(frames: np.ndarray, fps: float, baseline: Baseline, target_kbps: float, payload: int,
                   keyint: int) -> BaselineStream:
    """Encode so that the whole stream (headers and parity included) lands within 10% of ``target_kbps``.

    One-pass ABR lands near, not on, its target, more so on short clips where the first keyframe is a
    fixed cost; the source target is corrected by the miss (scaled after one encode, by the secant through
    the last two after that) and the clip re-encoded, keeping the closest of at most three encodes.
    """
    def at(source_kbps: float) -> BaselineStream:
        return BaselineStream(baseline, encode(frames, fps, baseline, source_kbps, keyint), payload, fps)

    source = target_kbps / (2 if baseline.fec else 1)
    stream = best = at(source)
    previous: tuple[float, float] | None = None
    for _ in range(MAX_ENCODES - 1):
        if abs(stream.kbps / target_kbps - 1) <= RATE_AIM:
            break
        guess = source * target_kbps / stream.kbps
        if previous is not None and stream.kbps != previous[1]:
            slope = (stream.kbps - previous[1]) / (source - previous[0])
            if slope > 0:
                guess = max(source + (target_kbps - stream.kbps) / slope, source / 4)
        previous, source = (source, stream.kbps), max(guess, MIN_SOURCE_KBPS)
        stream = at(source)
        best = min(best, stream, key=lambda s: abs(s.kbps - target_kbps))
    if abs(best.kbps / target_kbps - 1) > RATE_TOLERANCE:
        log.warning("%s: %.1f kbps is more than %.0f%% from the %.1f kbps target", baseline.name, best.kbps,
                    RATE_TOLERANCE * 100, target_kbps)
    return best


def frame_survives(sent: int, lost: int, needed: int) -> bool:
    """Plain packets: every one must arrive (sent == needed); rate-1/2 erasure code: any ``needed`` of them."""
    return sent - lost >= needed


def deliver(stream: BaselineStream, process: LossProcess) -> tuple[np.ndarray, int]:
    """Which frames can be decoded after ``process`` drops packets, and how many packets it dropped."""
    decodable = np.zeros(len(stream.access_units), dtype=bool)
    dropped = 0
    for frame in range(len(stream.access_units)):
        sent = stream.sent_packets(frame)
        lost = int(process.draw(sent).sum())
        dropped += lost
        decodable[frame] = frame_survives(sent, lost, stream.source_packets(frame))
    return decodable, dropped


def play(stream: BaselineStream, decodable: np.ndarray, height: int, width: int) -> np.ndarray:
    """The frames a viewer sees: decoder output where there is some, else the last frame shown."""
    decoder = av.CodecContext.create(stream.baseline.decoder, "r")
    decoded: dict[int, np.ndarray] = {}

    def take(frames: list[av.VideoFrame]) -> None:
        for frame in frames:
            decoded[frame.pts] = frame.to_ndarray(format="rgb24")

    for index, (unit, ok) in enumerate(zip(stream.access_units, decodable)):
        if not ok or not unit:
            continue
        packet = av.Packet(unit)
        packet.pts = index
        try:
            take(decoder.decode(packet))
        except av.error.FFmpegError as exc:  # a frame the decoder rejects is one more held frame
            log.debug("%s frame %d: %s", stream.baseline.name, index, exc)
    take(decoder.decode(None))
    shown = np.empty((len(stream.access_units), height, width, 3), dtype=np.uint8)
    last = np.full((height, width, 3), GRAY, dtype=np.uint8)
    for index in range(len(shown)):
        last = decoded.get(index, last)
        shown[index] = last
    return shown
