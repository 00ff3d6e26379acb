"""Offline evaluation through the real wire path: encode, interleave, pack, segment, drop segments,
reassemble, recover, decode; then PSNR and MS-SSIM on the decoded frames themselves.

Each GOP is encoded once and reused at every loss rate; each rate has its own seeded loss process that
runs across GOPs (so Gilbert-Elliott bursts span GOP boundaries as on a real link). The inference-time
ablations see exactly the segment losses the full system sees, and the classic baselines
(:mod:`.baselines`) get the semantic stream's bitrate, payload size and loss process, so every row of
one evaluation is measured on the same frames, bits and losses. A GOP of which no segment arrived is
shown as the receiver shows it: the last frame repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..media import ms_ssim, psnr
from ..net.loss import BernoulliLoss, LossModel, LossProcess
from ..runtime.base import Codec
from ..wire import DESCRIPTOR_COPIES, GopPacketizer, HEADER_SIZE, SessionDescriptor, new_session_id, split_model_id
from .ablations import ContiguousPacketizer, variants
from .baselines import Baseline, default_keyint, deliver, encode_at_rate, play
from .gallery import Gallery


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
    ablations: bool = False  # add the no-recovery and no-interleaving rows
    baselines: tuple[str, ...] = ()  # names from baselines.BASELINE_NAMES
    keyint: int | None = None  # baseline keyframe interval in frames; None = one second


class QualityMeter:
    """Mean over frames of per-frame PSNR and MS-SSIM, fed a GOP at a time, so no scheme's decoded clip
    has to be held whole at every loss rate."""

    def __init__(self) -> None:
        self.frames = 0
        self.psnr_sum = 0.0
        self.ms_ssim_sum: float | None = 0.0

    def add(self, reference: np.ndarray, decoded: np.ndarray) -> None:
        n = len(reference)
        self.psnr_sum += psnr(reference, decoded) * n
        score = ms_ssim(reference, decoded)
        self.ms_ssim_sum = None if score is None or self.ms_ssim_sum is None else self.ms_ssim_sum + score * n
        self.frames += n

    @property
    def psnr(self) -> float:
        return self.psnr_sum / self.frames

    @property
    def ms_ssim(self) -> float | None:
        return None if self.ms_ssim_sum is None else self.ms_ssim_sum / self.frames


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


StepHook = Callable[[str], None]  # called after each step of an evaluation, with what it was


def evaluation_steps(n_frames: int, gop: int, cfg: EvalConfig) -> int:
    """How many times :func:`evaluate` calls its ``on_step``: once per GOP for the semantic rows (every
    loss rate and ablation of a GOP together), and per baseline once for encoding plus once per rate."""
    return n_frames // gop + len(cfg.baselines) * (1 + len(cfg.loss_rates))


def evaluate(codec: Codec, frames: np.ndarray, fps: float, cfg: EvalConfig, gallery: Gallery | None = None,
             on_step: StepHook | None = None) -> list[EvalRow]:
    """Rows of quality per scheme and loss rate for ``frames`` ``[N, H, W, 3]`` (N cut to whole GOPs):
    the semantic rows first, in ``cfg.loss_rates`` order, then the ablations, then each baseline.
    ``on_step`` hears of each of the :func:`evaluation_steps` steps (for a progress bar)."""
    n_gops = len(frames) // codec.gop
    if n_gops == 0:
        raise ValueError(f"need at least {codec.gop} frames for one GOP, got {len(frames)}")
    frames = frames[: n_gops * codec.gop]
    baselines = [Baseline.named(name) for name in cfg.baselines]  # refuse unknown names before any work
    step = on_step or (lambda _note: None)
    rows = semantic_rows(codec, frames, fps, cfg, gallery, step)
    payload = GopPacketizer(codec.latent_length(*frames.shape[1:3]), cfg.seed, cfg.payload).payload_size
    for baseline in baselines:
        rows += baseline_rows(baseline, frames, fps, rows[0].kbps, payload, cfg, gallery, step)
    return rows


def semantic_rows(codec: Codec, frames: np.ndarray, fps: float, cfg: EvalConfig, gallery: Gallery | None,
                  step: StepHook) -> list[EvalRow]:
    _, height, width, _ = frames.shape
    packetizer = GopPacketizer(codec.latent_length(height, width), cfg.seed, cfg.payload)
    transports = {True: packetizer, False: ContiguousPacketizer(packetizer)}
    schemes = variants(cfg.ablations)
    processes = [LossProcess(cfg.loss_model(rate), cfg.loss_seed) for rate in cfg.loss_rates]
    meters = {(v.scheme, r): QualityMeter() for v in schemes for r in range(len(cfg.loss_rates))}
    lost_segments = np.zeros(len(cfg.loss_rates))
    shown: dict[tuple[str, int], np.ndarray] = {}  # last frame shown per scheme and loss rate
    for g in range(len(frames) // codec.gop):
        gop = frames[g * codec.gop : (g + 1) * codec.gop]
        codes = codec.encode(gop)
        sent = {flag: transports[flag].segments(codes) for flag in {v.interleaved for v in schemes}}
        for r, process in enumerate(processes):
            lost = process.draw(packetizer.n_segments)  # one pattern for every variant
            lost_segments[r] += lost.sum()
            for v in schemes:
                if lost.all() and (v.scheme, r) in shown:
                    # nothing of this GOP arrived: the receiver repeats the last frame shown (its
                    # concealment), so the evaluation scores what a viewer of mstvsc-recv sees
                    decoded = np.repeat(shown[v.scheme, r][np.newaxis], codec.gop, axis=0)
                else:
                    arrived = {i: s for i, s in enumerate(sent[v.interleaved]) if not lost[i]}
                    values, received = transports[v.interleaved].reassemble(arrived)
                    mask = received if v.recovery else np.ones_like(received)
                    decoded = codec.decode(values, mask, height, width)
                shown[v.scheme, r] = decoded[-1]
                meters[v.scheme, r].add(gop, decoded)
                if gallery is not None:
                    gallery.keep(v.scheme, cfg.loss_rates[r], decoded, g * codec.gop)
        step(f"mstvsc GOP {g + 1}/{len(frames) // codec.gop}")
    kbps = stream_kbps(codec, height, width, fps, cfg.payload, cfg.seed)
    total = len(frames) // codec.gop * packetizer.n_segments
    return [EvalRow(v.scheme, rate, meters[v.scheme, r].psnr, meters[v.scheme, r].ms_ssim, kbps,
                    float(lost_segments[r] / total))
            for v in schemes for r, rate in enumerate(cfg.loss_rates)]


def baseline_rows(baseline: Baseline, frames: np.ndarray, fps: float, target_kbps: float, payload: int,
                  cfg: EvalConfig, gallery: Gallery | None, step: StepHook) -> list[EvalRow]:
    """One classic scheme at every loss rate, encoded once at ``target_kbps``."""
    _, height, width, _ = frames.shape
    keyint = cfg.keyint or default_keyint(fps)
    stream = encode_at_rate(frames, fps, baseline, target_kbps, payload, keyint)
    step(f"{baseline.name} encoded")
    sent = sum(stream.sent_packets(i) for i in range(len(frames)))
    rows = []
    for rate in cfg.loss_rates:
        decodable, dropped = deliver(stream, LossProcess(cfg.loss_model(rate), cfg.loss_seed))
        shown = play(stream, decodable, height, width)
        meter = QualityMeter()
        meter.add(frames, shown)
        if gallery is not None:
            gallery.keep(baseline.name, rate, shown, 0)
        rows.append(EvalRow(baseline.name, rate, meter.psnr, meter.ms_ssim, stream.kbps, dropped / sent))
        step(f"{baseline.name} at {rate:g} loss")
    return rows
