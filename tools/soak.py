"""Soak the transport: a long real-time stream through the loss relay, checking nothing stalls or grows.

Sender -> relay -> receiver over loopback UDP in one event loop, the sample clip looped at 30 fps and
paced like a camera, the relay with Gilbert-Elliott loss bursts, 5 % reordering (20 +- 5 ms delay) and
1 % duplicates. It uses the tiny test codec (random weights; the real model's code path, a fraction of
its compute), because this measures the transport and the receiver's bookkeeping, not picture quality;
``--key`` seals the stream. Every ``--interval`` seconds it samples frames out against frames sent,
segment loss, the window's latency percentiles (capture to output; one clock) and the process's RSS.

Fails when a window's frames out fall below 90 % of the GOPs' frames the sender sent in it (a stall), or
RSS grows by more than 20 MB from the first window to the last.

    python tools/soak.py --minutes 10 --json soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from pathlib import Path

import numpy as np
import torch
from fuzz_receiver import RSS_LIMIT_MB, rss_mb  # tools/ is on sys.path when this runs as a script

from mstvsc_stream.media import FileSource, sample_clip_path
from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.model.mstvsc import MSTVSC
from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.loss import GilbertElliottLoss
from mstvsc_stream.net.relay import Impairment, start_relay
from mstvsc_stream.pipeline.receiver import Receiver, ReceiverConfig
from mstvsc_stream.pipeline.sender import Sender, SenderConfig
from mstvsc_stream.runtime.torch_backend import TorchCodec
from mstvsc_stream.wire.sealing import KEY_BYTES

# Good -> bad after 1 % of datagrams, back after 10 % (bursts of 10 datagrams on average, 100 % lost
# in them), 1 % lost in the good state: about 10 % loss in bursts that wipe out whole GOPs.
LOSS = GilbertElliottLoss(p=0.01, r=0.10, bad_loss=1.0, good_loss=0.01)
STALL_SHARE = 0.9


def tiny_codec() -> TorchCodec:
    torch.manual_seed(0)
    return TorchCodec(MSTVSC(CONFIGS["tiny-test"]).eval(), "tiny-test@" + "00" * 8)


async def soak(minutes: float, interval_s: float, size: tuple[int, int], key: bytes | None) -> dict[str, object]:
    codec = tiny_codec()
    receiver = Receiver(codec, ReceiverConfig("127.0.0.1:0", stay=True, status_interval_s=60.0, key=key))
    address = await receiver.start()
    receiving = asyncio.create_task(receiver.run())
    impairment = Impairment(loss=LOSS, delay_s=0.02, jitter_s=0.005, reorder=0.05, duplicate=0.01, seed=7)
    relay = await start_relay("127.0.0.1:0", address, impairment)
    source = FileSource(sample_clip_path(), size=size, fps=30.0, loop=True)
    sender = Sender(codec, source, SenderConfig(relay.local_address, key=key, stats_interval_s=60.0))
    sending = asyncio.create_task(sender.run())
    windows = []
    seen = (0, 0, 0)  # frames sent, frames out, latency samples
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        await asyncio.sleep(interval_s)
        report = receiver.report()
        latencies = list(receiver.latency_ms._samples)  # noqa: SLF001 - per-window percentiles need the samples
        frames_sent, frames_out = sender.frames_sent, int(report["frames_out"])
        window = np.array(latencies[seen[2] - len(latencies) :] if seen[2] < len(latencies) else [])
        windows.append({
            "t_s": round(minutes * 60 - (deadline - time.monotonic())),
            "frames_sent": frames_sent - seen[0],
            "frames_out": frames_out - seen[1],
            "segment_loss": report["segment_loss_rate"],
            "latency_ms_p50": round(float(np.percentile(window, 50)), 1) if window.size else None,
            "latency_ms_p95": round(float(np.percentile(window, 95)), 1) if window.size else None,
            "rss_mb": round(rss_mb(), 1),
        })  # fmt: skip
        print(json.dumps(windows[-1]), flush=True)
        seen = (frames_sent, frames_out, len(latencies))
    sender.stop()
    await sending
    receiver.finish("soak over")
    final = await receiving
    relay.close()
    return {"windows": windows, "receiver": final, "sender": sender.report(), "relay": relay.stats.as_dict()}


def verdict(result: dict) -> list[str]:
    """What failed, in words (empty: passed). The first window includes start-up and is not judged."""
    problems = []
    windows = result["windows"]
    for window in windows[1:-1]:  # the last may straddle the end
        if window["frames_out"] < STALL_SHARE * window["frames_sent"]:
            problems.append(f"stall at {window['t_s']} s: {window['frames_out']} of {window['frames_sent']} frames out")
    if len(windows) > 2 and windows[-1]["rss_mb"] - windows[1]["rss_mb"] > RSS_LIMIT_MB:
        problems.append(f"RSS grew from {windows[1]['rss_mb']} to {windows[-1]['rss_mb']} MB")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--interval", type=float, default=30.0, metavar="S", help="seconds per sample window")
    p.add_argument("--size", default="128x96", metavar="WxH")
    p.add_argument("--key", action="store_true", help="seal the stream with a random key")
    p.add_argument("--json", type=Path, help="write windows and both ends' final reports here")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    key = secrets.token_bytes(KEY_BYTES) if args.key else None
    result = run(soak(args.minutes, args.interval, (width, height), key))
    result["problems"] = verdict(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({"problems": result["problems"], "receiver": result["receiver"]}, indent=2, default=str))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
