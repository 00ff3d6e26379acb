"""The demo: a clip through sender -> loss relay -> receiver over loopback UDP at several loss rates,
each run recorded losslessly and scored against the source frames.

Everything runs in one event loop on real sockets, so the demo exercises exactly what two hosts would.
The codec is slow on a CPU, so the file is not paced in real time: the sender sends each GOP as soon
as it is encoded, and the receiver never holds a GOP back for being late (it records, it does not
display), so every GOP sent is decoded. Quality is measured on the FFV1 recording, which stores the
decoded RGB samples bit for bit, never on a lossy re-encode.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from ..media import FileSource, Size, ms_ssim, psnr, read_frames
from ..net.loss import BernoulliLoss
from ..net.relay import Impairment, RelayStats, start_relay
from ..runtime.base import Codec
from ..wire import DEFAULT_SEED
from .receiver import Receiver, ReceiverConfig
from .sender import Sender, SenderConfig

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1:0"
# Sender and receiver share two CPU cores with the model; a generous margin keeps a busy event loop from
# releasing a GOP before its datagrams, already in the socket buffer, have been read.
PLAYOUT_MARGIN_S = 1.0


@dataclass(frozen=True)
class DemoConfig:
    input: Path | str
    size: Size = (320, 240)
    loss_rates: tuple[float, ...] = (0.0, 0.3, 0.6, 0.9)
    out_dir: Path = Path("mstvsc-demo-out")
    seed: int = DEFAULT_SEED
    loss_seed: int = 1  # one seed for all rates: Bernoulli patterns nest, a higher rate loses a superset
    max_frames: int | None = None


@dataclass(frozen=True)
class DemoRow:
    loss: float  # the relay's setting
    segment_loss: float | None  # what the receiver actually saw
    frames_sent: int
    frames_out: int
    gops_held: int
    psnr: float | None
    ms_ssim: float | None
    kbps: float | None
    recording: Path
    datagram_loss: float | None = None  # what the relay's seeded draw actually dropped, of all datagrams
    first_gop: int | None = None  # the first GOP the receiver played (GOPs are counted from 0)
    end_seen: bool = True  # an end-of-input copy arrived (else the demo ended the receiver)

    def frames_missed(self, gop: int) -> tuple[int, int]:
        """Frames sent but not played, before the receiver's first GOP and after its last one."""
        before = (self.first_gop or 0) * gop
        return before, max(0, self.frames_sent - self.frames_out - before)

    def why_frames_are_missing(self, gop: int) -> str | None:
        """What the receiver knows about the frames it did not play, in a line; None when none are missing."""
        before, after = self.frames_missed(gop)
        if not before and not after:
            return None
        reasons = []
        if before:
            reasons.append(f"{before} before GOP {self.first_gop}, where the receiver joined: it knows a stream from "
                           "its first session descriptor on (and places segments held from just before it); "
                           "nothing of the earlier GOPs could be placed")
        if after:
            ending = ("every end-of-input copy was lost, so " if not self.end_seen else "")
            reasons.append(f"{after} at the end: {ending}GOPs of which nothing arrived after the last one received "
                           "were never released")
        drawn = "" if self.datagram_loss is None else (
            f"; the relay's seeded draw dropped {self.datagram_loss:.1%} of all datagrams at this setting")
        return f"{self.loss:.2f}: {self.frames_out} of {self.frames_sent} frames out: " + "; ".join(reasons) + drawn

    def as_dict(self) -> dict[str, object]:
        return {
            "loss": self.loss,
            "segment_loss": self.segment_loss,
            "frames_sent": self.frames_sent,
            "frames_out": self.frames_out,
            "gops_held": self.gops_held,
            "psnr": None if self.psnr is None else round(self.psnr, 3),
            "ms_ssim": None if self.ms_ssim is None else round(self.ms_ssim, 4),
            "kbps": self.kbps,
            "recording": str(self.recording),
            "datagram_loss": None if self.datagram_loss is None else round(self.datagram_loss, 4),
            "first_gop": self.first_gop,
            "end_seen": self.end_seen,
        }


async def run_demo(codec: Codec, config: DemoConfig) -> list[DemoRow]:
    """One streamed, recorded and scored run per loss rate, in order."""
    config.out_dir.mkdir(parents=True, exist_ok=True)
    reference = read_frames(config.input, n=config.max_frames, size=config.size)
    rows = []
    for loss in config.loss_rates:
        recording = config.out_dir / f"loss-{loss:.2f}.mkv"
        sent, received, relayed = await stream_through_relay(codec, config, loss, recording)
        rows.append(_score(loss, sent, received, relayed, reference, recording, codec.gop))
        log.info("loss %.2f done: %s", loss, rows[-1].as_dict())
    return rows


async def stream_through_relay(
    codec: Codec, config: DemoConfig, loss: float, recording: Path
) -> tuple[dict[str, object], dict[str, object], RelayStats]:
    """Streams the input once through a relay losing ``loss`` of the datagrams; both ends' reports and
    the relay's counters.

    Open loop (no receiver reports): the table compares pictures at fixed loss rates, and a congestion
    controller withholding segments would mix its own choices into every row.
    """
    receiver = Receiver(
        codec,
        ReceiverConfig(LOOPBACK, seed=config.seed, record=recording, playout_margin_s=PLAYOUT_MARGIN_S,
                       max_pending_gops=None, feedback=False),
    )  # fmt: skip
    impairment = Impairment(loss=BernoulliLoss(loss), seed=config.loss_seed)
    address = await receiver.start()
    receiving = asyncio.create_task(receiver.run())
    relay = None
    try:
        relay = await start_relay(LOOPBACK, address, impairment)
        source = FileSource(config.input, size=config.size)
        sender = Sender(codec, source, SenderConfig(relay.local_address, seed=config.seed, realtime=False,
                                                    max_frames=config.max_frames, feedback=False))  # fmt: skip
        sent = await sender.run()
        # The receiver ends by itself at the end-of-input flag; if every copy was lost, end it once the
        # last datagrams have had time to arrive.
        grace = sender.descriptor.gop_duration_s + PLAYOUT_MARGIN_S
        done, _ = await asyncio.wait({receiving}, timeout=grace)
        if not done:
            receiver.finish("sender_done")
        return sent, await receiving, relay.stats
    finally:
        if relay is not None:
            relay.close()
        if not receiving.done():
            receiver.stop()
            await asyncio.wait({receiving})  # it still finalises its recording


def _score(loss: float, sent: dict[str, object], received: dict[str, object], relayed: RelayStats,
           reference: np.ndarray, recording: Path, gop: int) -> DemoRow:
    frames_out = cast(int, received["frames_out"])
    quality: tuple[float | None, float | None] = (None, None)
    if frames_out:
        decoded = read_frames(recording)
        start = cast(int, received["first_gop_counter"]) * gop  # nothing was dropped: counter g is GOP g
        original = reference[start : start + len(decoded)]
        quality = psnr(original, decoded), ms_ssim(original, decoded)
    return DemoRow(
        loss=loss,
        segment_loss=cast("float | None", received["segment_loss_rate"]),
        frames_sent=cast(int, sent["frames_sent"]),
        frames_out=frames_out,
        gops_held=cast(int, received["gops_held"]),
        psnr=quality[0],
        ms_ssim=quality[1],
        kbps=cast("float | None", sent["stream_kbps"]),
        recording=recording,
        datagram_loss=relayed.dropped / relayed.received if relayed.received else None,
        first_gop=cast("int | None", received["first_gop_counter"]),
        end_seen=received["end_reason"] == "end_of_input",
    )
