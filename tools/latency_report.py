"""End-to-end latency of mstvsc-send -> [mstvsc-relay ->] mstvsc-recv on this machine, as a user runs them.

Three separate processes on loopback UDP, the sample clip (or --input) looped and paced in real time like
a camera; prints and optionally saves the two ends' counters: latency (capture of a GOP's first frame to
its output, one clock since all runs on one host), encode and decode times, GOPs dropped or held.

    python tools/latency_report.py --size 320x240 --frames 300
    python tools/latency_report.py --size 320x240 --frames 300 --loss 0.3 --json latency.json
    python tools/latency_report.py --sender-cpus 0 --receiver-cpus 1 --pacing 0.1 --playout-ms 30

Pause background work (training) while measuring: sender and receiver share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from mstvsc_stream.media import sample_clip_path

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


def measure(args: argparse.Namespace, folder: Path) -> dict[str, dict]:
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
        subprocess.run([*command("send", args.sender_cpus), "--input", str(args.input), "--loop",
                        "--frames", str(args.frames), "--size", args.size, "--to", destination, "--stats-json",
                        str(tx_json), *optional("--pacing", args.pacing), "-q", *model], check=True,
                       timeout=TIMEOUT_S)  # fmt: skip
        receiver.wait(TIMEOUT_S)
    finally:
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = measure(args, Path(folder))
    tx, rx = result["sender"], result["receiver"]
    print(f"{args.size}, {args.frames} frames, loss {args.loss:g}, model {tx['model']} on {tx.get('backend', '?')}, "
          f"threads {args.threads}, pacing {args.pacing or 'default'}, "
          f"playout margin {args.playout_ms or 'default'} ms")
    print(f"sender:   {tx['gops_sent']} GOPs sent, {tx['gops_dropped']} dropped (encoder behind), "
          f"encode p50 {tx['encode_ms_p50']} p95 {tx['encode_ms_p95']} ms, {tx['stream_kbps']} kbps")
    print(f"receiver: {rx['frames_out']} frames out, {rx['gops_held']} GOPs held (decoder behind), "
          f"segment loss {rx['segment_loss_rate']}, decode p50 {rx['decode_ms_p50']} p95 {rx['decode_ms_p95']} ms")
    print(f"latency capture -> output: p50 {rx['latency_ms_p50']} ms, p95 {rx['latency_ms_p95']} ms")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
