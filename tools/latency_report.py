"""End-to-end latency of mstvsc-send -> [mstvsc-relay ->] mstvsc-recv on this machine, as a user runs them.

Three separate processes on loopback UDP, the sample clip (or --input) looped and paced in real time like
a camera; prints and optionally saves the two ends' counters: latency (capture of a GOP's first frame to
its output, one clock since all runs on one host), encode and decode times, GOPs dropped or held.

    python tools/latency_report.py --size 320x240 --frames 300
    python tools/latency_report.py --size 320x240 --frames 300 --loss 0.3 --json latency.json
    python tools/latency_report.py --sender-cpus 0 --receiver-cpus 1 --pacing 0.1 --playout-ms 30
    python tools/latency_report.py --degrade framerate --load 10:15     # a CPU hog from 10 s to 25 s
    python tools/latency_report.py --size auto --runs 5 --json runs.json  # median (range) of 5 runs

Pause background work (training) while measuring: sender and receiver share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mstvsc_stream.media import sample_clip_path
from mstvsc_stream.pipeline.advice import DROPPED, HELD

TIMEOUT_S = 600


def optional(flag: str, value: str | None) -> list[str]:
    return [flag, value] if value is not None else []


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def command(module: str, cpus: str | None) -> list[str]:
    """``python -m mstvsc_stream.cli.<module>``, on the given CPUs (taskset list) if any."""
    pin = ["taskset", "-c", cpus] if cpus else []
    return [*pin, sys.executable, "-m", f"mstvsc_stream.cli.{module}"]


def start(module: str, args: list[str], ready: str, cpus: str | None) -> subprocess.Popen[str]:
    """Starts ``python -m mstvsc_stream.cli.<module>`` and returns once its log says ``ready``; the rest of
    its log is drained in a thread so the pipe never fills."""
    process = subprocess.Popen([*command(module, cpus), *args],
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:
        if ready in line:
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process
    raise SystemExit(f"mstvsc-{module} exited before it was ready (status {process.wait()})")


class CpuHog:
    """``processes`` busy loops from ``start_s`` for ``seconds`` after :meth:`arm`: another program taking
    the CPU midway, for the sender's --degrade to answer. Records when it began and ended (wall clock)."""

    def __init__(self, start_s: float, seconds: float, processes: int) -> None:
        self.start_s, self.seconds, self.processes = start_s, seconds, processes
        self.began: float | None = None
        self.ended: float | None = None
        self._hogs: list[subprocess.Popen] = []
        self._timers: list[threading.Timer] = []

    def arm(self) -> None:
        self._timers = [threading.Timer(self.start_s, self._begin), threading.Timer(self.start_s + self.seconds, self.end)]
        for timer in self._timers:
            timer.daemon = True
            timer.start()

    def _begin(self) -> None:
        self.began = time.time()
        self._hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.processes)]

    def end(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._hogs and self.ended is None:
            for hog in self._hogs:
                hog.kill()
                hog.wait()
            self.ended = time.time()


def measure(args: argparse.Namespace, folder: Path, hog: CpuHog | None = None) -> dict[str, dict]:
    model = ["--model", args.model] if args.model else []
    model += ["--threads", str(args.threads)] if args.threads else []
    model += ["--precision", args.precision]
    port = free_udp_port()
    rx_json, tx_json = folder / "rx.json", folder / "tx.json"
    receiver = start("recv", ["--listen", f"127.0.0.1:{port}", "--stats-json", str(rx_json), "--idle-exit", "10",
                              *optional("--playout-ms", args.playout_ms), *model], "listening on",
                     args.receiver_cpus)  # fmt: skip
    relay = None
    destination = f"127.0.0.1:{port}"
    if args.loss:
        relay_port = free_udp_port()
        relay = start("relay", ["--listen", f"127.0.0.1:{relay_port}", "--to", destination, "--loss", str(args.loss),
                                "--seed", "1"], "relaying", args.receiver_cpus)  # fmt: skip
        destination = f"127.0.0.1:{relay_port}"
    try:
        if hog is not None:
            hog.arm()
        subprocess.run([*command("send", args.sender_cpus), "--input", str(args.input), "--loop",
                        "--frames", str(args.frames), "--size", args.size, "--to", destination, "--stats-json",
                        str(tx_json), *optional("--pacing", args.pacing), *optional("--degrade", args.degrade),
                        *optional("--fps", args.fps), "-q",
                        *model], check=True, timeout=TIMEOUT_S)  # fmt: skip
        receiver.wait(TIMEOUT_S)
    finally:
        if hog is not None:
            hog.end()
        for process in (relay, receiver):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(30)
    return {"sender": json.loads(tx_json.read_text()), "receiver": json.loads(rx_json.read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=sample_clip_path(), help="video file (default: the sample clip)")
    parser.add_argument("--size", default="320x240", metavar="WxH")
    parser.add_argument("--frames", type=int, default=300, help="frames to send (the input loops)")
    parser.add_argument("--fps", help="mstvsc-send --fps (default: the input's frame rate)")
    parser.add_argument("--runs", type=int, default=1, help="repeat the measurement; more than one adds a "
                                                            "summary of the median and range of each figure")
    parser.add_argument("--model", help="model name or folder (default: the shipped default)")
    parser.add_argument("--loss", type=float, default=0.0, help="put a relay losing this share in between")
    parser.add_argument("--json", type=Path, help="write both ends' counters here")
    parser.add_argument("--threads", type=int, default=max(1, len(os.sched_getaffinity(0)) // 2),
                        help="inference threads of each end (default: half the usable CPUs, since both ends share "
                             "them; more makes them preempt each other and drop GOPs)")
    parser.add_argument("--precision", default="auto", help="ONNX graphs: auto, int8 or fp32 (default auto)")
    parser.add_argument("--sender-cpus", help="run the sender on these CPUs (taskset list, e.g. 0)")
    parser.add_argument("--receiver-cpus", help="run the receiver and relay on these CPUs (e.g. 1)")
    parser.add_argument("--pacing", help="mstvsc-send --pacing (default: its default)")
    parser.add_argument("--playout-ms", help="mstvsc-recv --playout-ms (default: its default)")
    parser.add_argument("--degrade", help="mstvsc-send --degrade: drop, framerate or resolution (default: its default)")
    parser.add_argument("--load", metavar="START:SECONDS",
                        help="run --load-procs busy loops from START to START+SECONDS seconds after the sender starts")
    parser.add_argument("--load-procs", type=int, default=1, help="busy loops for --load (default 1)")
    args = parser.parse_args()
    load = [float(v) for v in args.load.split(":")] if args.load else None
    results = []
    for run in range(args.runs):
        hog = CpuHog(load[0], load[1], args.load_procs) if load else None
        results.append(measure_once(args, hog))
        if args.runs > 1:
            print(f"--- run {run + 1} of {args.runs} done\n")
    if args.runs > 1:
        print(summary_text(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results[0] if args.runs == 1 else {"runs": results, "summary": summarize(results)},
                                        indent=2) + "\n")


def measure_once(args: argparse.Namespace, hog: CpuHog | None) -> dict:
    """One run, printed as it ends; returns both ends' counters with the load and the adaptation summary."""
    load_average = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        result = measure(args, Path(folder), hog)
    tx, rx = result["sender"], result["receiver"]
    result["load_average_before"] = load_average
    print(f"{args.size}, {args.frames} frames, loss {args.loss:g}, model {tx['model']} on {tx.get('backend', '?')}, "
          f"threads {args.threads}, pacing {args.pacing or 'default'}, "
          f"playout margin {args.playout_ms or 'default'} ms")
    print(f"sender:   started at {tx['rung_start']}, {tx['gops_sent']} GOPs sent, {tx['gops_dropped']} {DROPPED}, "
          f"encode p50 {tx['encode_ms_p50']} p95 {tx['encode_ms_p95']} ms, {tx['stream_kbps']} kbps")
    print(f"receiver: {rx['frames_out']} frames out, {rx['gops_held']} GOPs {HELD}, "
          f"segment loss {rx['segment_loss_rate']}, decode p50 {rx['decode_ms_p50']} p95 {rx['decode_ms_p95']} ms")
    print(f"latency capture -> output: p50 {rx['latency_ms_p50']} ms, p95 {rx['latency_ms_p95']} ms")
    print(f"load average before: {load_average[0]:.2f} {load_average[1]:.2f} {load_average[2]:.2f}")
    if "switches" in tx:
        result["adaptation"] = adaptation = summarize_adaptation(tx, hog)
        load = ""
        if adaptation:
            back = adaptation["back_after_load_s"]
            load = (f"; CPU hog from {adaptation['load_from_s']} s to {adaptation['load_until_s']} s, "
                    + (f"back at {tx['rung_first']} {back} s after it ended" if back is not None else "not back by the end"))
        print(f"degrade {tx['degrade']}: {tx['switches']} switches, {tx['seconds_degraded']} s degraded{load}"
              + "".join(f"\n  {s['at_s']:7.2f} s  {s['reason']:<15} -> {s['to']}" for s in tx["switch_log"]))
    return result


# (label, where in a run's result) of the figures the summary of several runs gives as median (range)
SUMMARY_FIGURES = (
    ("GOPs sent", lambda r: r["sender"]["gops_sent"]),
    (f"GOPs {DROPPED}", lambda r: r["sender"]["gops_dropped"]),
    (f"GOPs {HELD}", lambda r: r["receiver"]["gops_held"]),
    ("frames out", lambda r: r["receiver"]["frames_out"]),
    ("encode p50 ms", lambda r: r["sender"]["encode_ms_p50"]),
    ("decode p50 ms", lambda r: r["receiver"]["decode_ms_p50"]),
    ("latency p50 ms", lambda r: r["receiver"]["latency_ms_p50"]),
    ("latency p95 ms", lambda r: r["receiver"]["latency_ms_p95"]),
    ("switches", lambda r: r["sender"].get("switches")),
    ("seconds degraded", lambda r: r["sender"].get("seconds_degraded")),
    ("back after the load s", lambda r: (r.get("adaptation") or {}).get("back_after_load_s")),
    ("load average before", lambda r: r["load_average_before"][0]),
)


def summarize(results: list[dict]) -> dict[str, dict]:
    """Median, range and every value of each figure over the runs (a figure a run lacks is left out of it)."""
    summary = {}
    for label, pick in SUMMARY_FIGURES:
        values = [pick(r) for r in results]
        present = [v for v in values if v is not None]
        if present:
            summary[label] = {"median": statistics.median(present), "min": min(present), "max": max(present),
                              "runs": values}
    return summary


def summary_text(results: list[dict]) -> str:
    starts = sorted({r["sender"]["rung_start"] for r in results})
    lines = [f"median (range) of {len(results)} runs; sender started at {', '.join(starts)}"]
    for label, figure in summarize(results).items():
        missing = len(results) - sum(v is not None for v in figure["runs"])
        note = f"  ({missing} of {len(results)} runs without it)" if missing else ""
        median, low, high = (round(figure[k], 2) for k in ("median", "min", "max"))
        lines.append(f"  {label:<32} {median:g} ({low:g}-{high:g}){note}")
    return "\n".join(lines)


def summarize_adaptation(tx: dict, hog: CpuHog | None) -> dict[str, object]:
    """When the load came and went, in the sender's time, and how long the sender took to come back."""
    if hog is None or hog.began is None or hog.ended is None:
        return {}
    began, ended = hog.began - tx["started_at"], hog.ended - tx["started_at"]
    back = [s["at_s"] for s in tx["switch_log"] if s["at_s"] >= ended and s["to"] == tx["rung_first"]]
    return {"load_from_s": round(began, 2), "load_until_s": round(ended, 2),
            "back_after_load_s": round(back[0] - ended, 2) if back else None}


if __name__ == "__main__":
    main()
