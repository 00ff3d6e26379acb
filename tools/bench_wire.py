"""Time the per-GOP wire work: interleave + pack + segment at the sender, reassemble at the receiver.

Pinned to one CPU core (where the OS allows) because the real sender and receiver share the machine with
the codec; the budget is < 2 ms per 1080p GOP. Reports the median of many runs, plus the one-off cost of
building the interleaving permutation for a new size (cached afterwards).

    python tools/bench_wire.py [--runs 200] [--loss 0.5] [--json out/bench_wire.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mstvsc_stream.analysis.bench import median_ms
from mstvsc_stream.wire import DEFAULT_SEED, GopPacketizer, permutation

SIZES = {"1080p (1920x1088)": 97_920, "320x240": 7_680}


def bench_size(n_elements: int, runs: int, loss: float, rng: np.random.Generator) -> dict[str, float]:
    permutation.cache_clear()
    start = time.perf_counter()
    packetizer = GopPacketizer(n_elements, DEFAULT_SEED)
    permutation(n_elements, DEFAULT_SEED)
    first_build_ms = (time.perf_counter() - start) * 1000
    codes = rng.integers(-4, 4, n_elements, dtype=np.int8)
    segments = dict(enumerate(packetizer.segments(codes)))
    kept = {label: s for label, s in segments.items() if rng.random() >= loss}
    return {
        "elements": n_elements,
        "segments": packetizer.n_segments,
        "payload_bytes": packetizer.payload_size,
        "permutation_build_ms": first_build_ms,
        "send_ms": median_ms(lambda: packetizer.segments(codes), runs),
        "receive_ms": median_ms(lambda: packetizer.reassemble(segments), runs),
        "receive_lossy_ms": median_ms(lambda: packetizer.reassemble(kept), runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per measurement (median reported)")
    parser.add_argument("--loss", type=float, default=0.5, help="segment loss for the lossy reassembly case")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = np.random.default_rng(0)
    results = {name: bench_size(n, args.runs, args.loss, rng) for name, n in SIZES.items()}
    print(f"{'size':<18} {'elements':>8} {'segs':>5} {'send ms':>8} {'recv ms':>8} {'recv@loss':>9} {'perm build':>10}")
    for name, r in results.items():
        print(
            f"{name:<18} {r['elements']:>8} {r['segments']:>5} {r['send_ms']:>8.3f} {r['receive_ms']:>8.3f}"
            f" {r['receive_lossy_ms']:>9.3f} {r['permutation_build_ms']:>10.2f}"
        )
    print(f"median of {args.runs} runs, one core; recv@loss drops {args.loss:.0%} of segments")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": args.runs, "loss": args.loss, "results": results}, indent=2))


if __name__ == "__main__":
    main()
