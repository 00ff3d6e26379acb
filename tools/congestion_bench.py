"""Measure the closed loop: senders -> mstvsc-relay bottleneck -> receivers over loopback UDP, in one process.

Each scenario streams the looped sample clip (320x240, 30 fps, paced like a camera) through the relay's
bottleneck and samples every 100 ms: each sender's target rate and the rate it really sent (payload kbit/s
over the last second), the relay's queue delay and link rate, and each receiver's capture-to-output
latency. It ends with both ends' and the relay's stats JSON.

The codec here is a transport codec: the real default model's latent size (``mstvsc-small-c48``: 7,680
codes per 320x240 GOP, ~190 kbit/s at full rate) but codes from a cheap subsampling of the frames and a
flat-grey decode, so the 2 shared CPU cores measure the transport and the controller, not the codec.
Picture quality with and without feedback is measured separately with the real model: the JSON keeps,
for the first receiver, every released GOP's counter, the labels that arrived and whether it was decoded,
and ``tools/congestion_quality.py`` decodes exactly those arrivals with the real model.

    python tools/congestion_bench.py bottleneck --json out.json             # --rate 120 --queue-ms 200
    python tools/congestion_bench.py bottleneck --no-feedback --json out.json
    python tools/congestion_bench.py shallow | schedule | fair | loss | cut  # see SCENARIOS
    python tools/congestion_bench.py schedule --json s.json --plot docs/congestion-schedule.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mstvsc_stream.media import FileSource, sample_clip_path
from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.loss import BernoulliLoss
from mstvsc_stream.net.relay import Impairment, Relay, start_flows
from mstvsc_stream.pipeline.receiver import Receiver, ReceiverConfig
from mstvsc_stream.pipeline.sender import Sender, SenderConfig

SAMPLE_S = 0.1
SIZE = (320, 240)


class TransportCodec:
    """The real model's code layout and size at no CPU cost: for transport measurements only."""

    model_id = "transport-test@" + "00" * 8
    backend = "transport-test"

    def __init__(self) -> None:
        self._config = CONFIGS["small-c48"]
        self.gop = self._config.gop

    def latent_length(self, height: int, width: int) -> int:
        return self._config.latent_length(height, width)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        n = self.latent_length(frames.shape[1], frames.shape[2])
        luma = frames[..., 1].reshape(-1)
        return (luma[np.linspace(0, luma.size - 1, n).astype(np.int64)] // 32 - 4).astype(np.int8)

    def decode(self, codes: np.ndarray, received: np.ndarray, height: int, width: int) -> np.ndarray:
        level = int(np.clip((codes[received].mean() + 4) * 32 if received.any() else 128, 0, 255))
        return np.full((self.gop, height, width, 3), level, np.uint8)


@dataclass(frozen=True)
class Scenario:
    seconds: float
    impairment: Impairment
    flows: int = 1
    cut: tuple[float, float] | None = None  # reverse path closed from .. to (seconds)


SCENARIOS = {
    "bottleneck": Scenario(30, Impairment(rate_kbit=120, queue_s=0.2, seed=1)),
    "shallow": Scenario(30, Impairment(rate_kbit=120, queue_s=0.02, seed=1)),
    "schedule": Scenario(35, Impairment(rate_schedule=((0, 300), (10, 100), (20, 300)), queue_s=0.2, seed=1)),
    "fair": Scenario(45, Impairment(rate_kbit=250, queue_s=0.2, seed=1), flows=2),
    "loss": Scenario(30, Impairment(loss=BernoulliLoss(0.3), seed=1)),
    "cut": Scenario(35, Impairment(seed=1), cut=(10, 18)),
}


async def measure(scenario: Scenario, feedback: bool, key: bytes | None = None) -> dict[str, object]:
    """Run one scenario (``key``: sealed); returns the samples and the final reports of every party."""
    codec = TransportCodec()
    receivers = [Receiver(codec, ReceiverConfig("127.0.0.1:0", stay=True, status_interval_s=60.0, key=key,
                                                feedback=feedback)) for _ in range(scenario.flows)]  # fmt: skip
    addresses = [await receiver.start() for receiver in receivers]
    receiving = [asyncio.create_task(receiver.run()) for receiver in receivers]
    relay = await start_flows([("127.0.0.1:0", address) for address in addresses], scenario.impairment)
    senders = [
        Sender(codec, FileSource(sample_clip_path(), size=SIZE, fps=30.0, loop=True),
               SenderConfig(listen, stats_interval_s=60.0, feedback=feedback, key=key))
        for listen in relay.local_addresses
    ]  # fmt: skip
    sending = [asyncio.create_task(sender.run()) for sender in senders]
    gops = _record_gops(receivers[0])
    samples = await _sample(scenario, relay, senders, receivers)
    for sender in senders:
        sender.stop()
    await asyncio.gather(*sending)
    finals = []
    for receiver, task in zip(receivers, receiving, strict=True):
        receiver.finish("bench over")
        finals.append(await task)
    relay.close()
    return {"feedback": feedback, "samples": samples, "senders": [s.report() for s in senders],
            "receivers": finals, "relay": relay.stats.as_dict(), "gops": gops}  # fmt: skip


def _record_gops(receiver: Receiver) -> list[dict]:
    """What the receiver's decoder gets, GOP by GOP: counter, labels that arrived, held (not decoded)."""
    decoder = receiver._decoder  # noqa: SLF001 - the measurement needs the decoder's own view
    render = decoder.render
    gops: list[dict] = []

    def recording(gop, held):  # type: ignore[no-untyped-def]
        frames, outcome = render(gop, held)
        gops.append({"counter": gop.counter, "labels": sorted(gop.payloads), "outcome": outcome.name,
                     "session": f"{gop.descriptor.session_id:016x}"})  # fmt: skip
        return frames, outcome

    decoder.render = recording  # type: ignore[method-assign]
    return gops


async def _sample(scenario: Scenario, relay: Relay, senders: list[Sender], receivers: list[Receiver]) -> list[dict]:
    start = time.monotonic()
    history: list[list[tuple[float, int]]] = [[] for _ in senders]
    seen = [0 for _ in receivers]
    samples = []
    while (t := time.monotonic() - start) < scenario.seconds:
        if scenario.cut is not None:
            relay.reverse_open = not scenario.cut[0] <= t < scenario.cut[1]
        sample: dict[str, object] = {"t": round(t, 2), "queue_ms": round(relay.link.queue_delay() * 1000, 1),
                                     "link_kbps": relay.link.rate_kbit, "flows": []}  # fmt: skip
        for index, (sender, receiver) in enumerate(zip(senders, receivers, strict=True)):
            sent = sender._transport.stats.bytes if sender._transport is not None else 0  # noqa: SLF001
            history[index].append((t, sent))
            while history[index][0][0] < t - 1.0:
                history[index].pop(0)
            t0, b0 = history[index][0]
            latencies = list(receiver.latency_ms._samples)  # noqa: SLF001 - the newest samples of this tick
            new = latencies[seen[index] - len(latencies):] if seen[index] < len(latencies) else []
            seen[index] = len(latencies)
            controller = sender.loop.controller
            sample["flows"].append({  # type: ignore[union-attr]
                "target_kbps": round(controller.rate_kbps(time.monotonic()), 1) if controller.engaged else None,
                "sent_kbps": round((sent - b0) * 8 / (t - t0) / 1000, 1) if t > t0 else None,
                "latency_ms": round(float(np.mean(new)), 1) if new else None,
            })  # fmt: skip
        samples.append(sample)
        await asyncio.sleep(SAMPLE_S)
    return samples


def _flow_series(result: dict, index: int, key: str) -> list[tuple[float, float]]:
    return [(s["t"], s["flows"][index][key]) for s in result["samples"] if s["flows"][index][key] is not None]


def summarize(name: str, result: dict) -> dict[str, object]:
    """The "done when" figures of one run: relay queue and drops, the receiver's latency, and per scenario
    how fast the rate follows the link (sent rates are 1 s means of the payload the sender handed the
    kernel)."""
    relay, receiver, sender = result["relay"], result["receivers"][0], result["senders"][0]
    summary: dict[str, object] = {
        "queue_delay_ms_p50": relay["queue_delay_ms_p50"], "queue_delay_ms_p95": relay["queue_delay_ms_p95"],
        "relay_drops": round((relay["overflowed"] + relay["dropped"]) / max(1, relay["received"]), 4),
        "latency_ms_p50": receiver["latency_ms_p50"], "latency_ms_p95": receiver["latency_ms_p95"],
        "segment_loss_rate": receiver["segment_loss_rate"],
        "sent_kbps_mean": _mean(_flow_series(result, 0, "sent_kbps"), 5, None),
    }  # fmt: skip
    full = sender["rate_kbps"][-1][1] if sender["rate_kbps"] else None
    if name == "schedule":
        sent = _flow_series(result, 0, "sent_kbps")
        summary["settle_s_after_10"] = _settle(sent, 10, 20, 80, 120)
        summary["in_band_share_13_20"] = _share(sent, 13, 20, 80, 120)
        summary["full_rate_s_after_20"] = _first(_flow_series(result, 0, "target_kbps"), 20, lambda v: v >= full)
    if name == "fair":
        shares = [_mean(_flow_series(result, i, "sent_kbps"), 10, None) for i in range(len(result["senders"]))]
        summary["shares_of_250_after_10s"] = [round(share / 250, 3) for share in shares]
    if name == "cut":
        target = _flow_series(result, 0, "target_kbps")
        floor = min(value for _, value in target)
        summary["floor_s_after_cut"] = _first(target, 10, lambda v: v <= floor)
        summary["full_rate_s_after_return"] = _first(target, 18, lambda v: v >= full)
    return summary


def _mean(series: list[tuple[float, float]], start: float, end: float | None) -> float:
    values = [v for t, v in series if t >= start and (end is None or t < end)]
    return round(sum(values) / len(values), 1) if values else float("nan")


def _settle(series: list[tuple[float, float]], start: float, end: float, low: float, high: float) -> float | None:
    """Seconds after ``start`` from which every value up to ``end`` is within [low, high]."""
    inside = [(t, low <= v <= high) for t, v in series if start <= t < end]
    for index, (t, _) in enumerate(inside):
        if all(ok for _, ok in inside[index:]):
            return round(t - start, 2)
    return None


def _share(series: list[tuple[float, float]], start: float, end: float, low: float, high: float) -> float:
    inside = [low <= v <= high for t, v in series if start <= t < end]
    return round(sum(inside) / len(inside), 3) if inside else float("nan")


def _first(series: list[tuple[float, float]], start: float, condition) -> float | None:  # type: ignore[no-untyped-def]
    return next((round(t - start, 2) for t, v in series if t >= start and condition(v)), None)


def plot(result: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    t = [s["t"] for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 5.5))
    top.step(t, [s["link_kbps"] for s in samples], where="post", color="black", label="link capacity")
    for index in range(len(samples[0]["flows"])):
        name = f"sender {index + 1}: " if len(samples[0]["flows"]) > 1 else ""
        top.plot(t, [s["flows"][index]["sent_kbps"] for s in samples], label=f"{name}sent (1 s mean)")
        top.plot(t, [s["flows"][index]["target_kbps"] for s in samples], "--", label=f"{name}controller target")
        points = [(s["t"], s["flows"][index]["latency_ms"]) for s in samples if s["flows"][index]["latency_ms"]]
        bottom.plot(*zip(*points), ".", markersize=3, label=f"{name}capture-to-output latency")
    bottom.plot(t, [s["queue_ms"] for s in samples], color="grey", label="relay queue delay")
    top.set_ylabel("kbit/s (UDP payload)")
    bottom.set_ylabel("ms")
    bottom.set_xlabel("seconds")
    top.set_title(title)
    top.legend(fontsize=8, loc="upper right")
    bottom.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--summarize", type=Path, nargs="+", metavar="JSON",
                   help="print the figures of earlier runs of this scenario (their --json files) instead")
    p.add_argument("--no-feedback", dest="feedback", action="store_false", help="both ends open loop")
    p.add_argument("--seconds", type=float, help="override the scenario's length")
    p.add_argument("--json", type=Path, help="write samples and final reports here")
    p.add_argument("--plot", type=Path, help="write a rate and latency plot here (PNG)")
    args = p.parse_args(argv)
    if args.summarize:
        for path in args.summarize:
            print(json.dumps({"run": str(path), **summarize(args.scenario, json.loads(path.read_text()))}))
        return 0
    scenario = SCENARIOS[args.scenario]
    if args.seconds is not None:
        scenario = Scenario(args.seconds, scenario.impairment, scenario.flows, scenario.cut)
    result = run(measure(scenario, args.feedback))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    if args.plot is not None:
        plot(result, args.plot, f"{args.scenario}, feedback {'on' if args.feedback else 'off'}")
    summary = {"relay": result["relay"], "senders": [{k: v for k, v in s.items() if k != "rate_kbps"}
                                                     for s in result["senders"]],  # fmt: skip
               "receivers": [{k: r[k] for k in ("frames_out", "segment_loss_rate", "latency_ms_p50",
                                                "latency_ms_p95", "reports_sent", "gops_concealed")}
                             for r in result["receivers"]]}  # fmt: skip
    print(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summarize(args.scenario, result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
