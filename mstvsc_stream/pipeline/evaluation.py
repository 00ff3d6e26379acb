"""Offline evaluation through the real wire path: encode, interleave, pack, segment, drop segments,
reassemble, recover, decode; then PSNR and MS-SSIM on the decoded frames themselves.

Each GOP is encoded once and reused at every loss rate; each rate has its own seeded loss process that
runs across GOPs (so Gilbert-Elliott bursts span GOP boundaries as on a real link).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..media import ms_ssim, psnr
from ..net.loss import BernoulliLoss, LossModel, LossProcess
from ..runtime.base import Codec
from ..wire import DESCRIPTOR_COPIES, GopPacketizer, HEADER_SIZE, SessionDescriptor, new_session_id, split_model_id


@dataclass(frozen=True)
class EvalRow:
    scheme: str
    loss: float
    psnr: float
    ms_ssim: float | None
    kbps: float
    measured_loss: float

    def as_dict(self) -> dict:
        return {"scheme": self.scheme, "loss": self.loss, "psnr": round(self.psnr, 3),
                "ms_ssim": None if self.ms_ssim is None else round(self.ms_ssim, 4),
                "kbps": round(self.kbps, 1), "measured_loss": round(self.measured_loss, 4)}


@dataclass(frozen=True)
class EvalConfig:
    loss_rates: list[float]
    seed: int  # interleaving seed
    loss_seed: int = 1
    payload: int | None = None
    loss_model: Callable[[float], LossModel] = BernoulliLoss  # segment loss rate -> model


def descriptor_bytes(codec: Codec, n_elements: int, payload: int, height: int, width: int, fps: float) -> int:
    """Size of one descriptor datagram (header included) for this stream."""
    name, weights_hash = split_model_id(codec.model_id)
    packetizer = GopPacketizer(n_elements, 0, payload)
    descriptor = SessionDescriptor(new_session_id(), 0, 0, width, height, max(1, round(fps * 1000)), codec.gop,
                                   n_elements, packetizer.payload_size, packetizer.n_segments,
                                   packetizer.seed_fingerprint, name, weights_hash)
    return len(descriptor.datagram())


def stream_kbps(codec: Codec, height: int, width: int, fps: float, payload: int | None, seed: int) -> float:
    """Application bitrate: payloads, 3-byte headers and descriptor copies (no UDP/IP)."""
    n = codec.latent_length(height, width)
    packetizer = GopPacketizer(n, seed, payload)
    per_gop = packetizer.packed_size + HEADER_SIZE * packetizer.n_segments
    per_gop += DESCRIPTOR_COPIES * descriptor_bytes(codec, n, packetizer.payload_size, height, width, fps)
    return per_gop * 8 * fps / codec.gop / 1000


def evaluate(codec: Codec, frames: np.ndarray, fps: float, cfg: EvalConfig) -> list[EvalRow]:
    """Rows of quality per loss rate for ``frames`` ``[N, H, W, 3]`` (N cut to whole GOPs)."""
    n_gops = len(frames) // codec.gop
    if n_gops == 0:
        raise ValueError(f"need at least {codec.gop} frames for one GOP, got {len(frames)}")
    frames = frames[: n_gops * codec.gop]
    _, height, width, _ = frames.shape
    packetizer = GopPacketizer(codec.latent_length(height, width), cfg.seed, cfg.payload)
    processes = [LossProcess(cfg.loss_model(rate), cfg.loss_seed) for rate in cfg.loss_rates]
    decoded = [np.empty_like(frames) for _ in cfg.loss_rates]
    lost_segments = np.zeros(len(cfg.loss_rates))
    for g in range(n_gops):
        gop = frames[g * codec.gop : (g + 1) * codec.gop]
        segments = packetizer.segments(codec.encode(gop))
        for r, process in enumerate(processes):
            lost = process.draw(len(segments))
            lost_segments[r] += lost.sum()
            codes, received = packetizer.reassemble({i: s for i, s in enumerate(segments) if not lost[i]})
            decoded[r][g * codec.gop : (g + 1) * codec.gop] = codec.decode(codes, received, height, width)
    kbps = stream_kbps(codec, height, width, fps, cfg.payload, cfg.seed)
    total = n_gops * packetizer.n_segments
    return [
        EvalRow("mstvsc", rate, psnr(frames, out), ms_ssim(frames, out), kbps, lost_segments[r] / total)
        for r, (rate, out) in enumerate(zip(cfg.loss_rates, decoded))
    ]
