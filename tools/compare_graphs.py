#!/usr/bin/env python3
"""Time two folders of ONNX graphs of the same weights against each other, back to back.

    git archive main models/mstvsc-small-c48 | tar -x -C /tmp/before
    python tools/compare_graphs.py /tmp/before/models/mstvsc-small-c48 models/mstvsc-small-c48 \
        --sizes 320x240,640x480 --threads 1 --runs 5

Each run times every (folder, size, part) in turn, so both folders see the same machine state; a run's
figure is the median of ``--gops`` GOPs after a warm-up GOP, and the table gives the median and range
over ``--runs`` runs, with the load average before and after. Pause other work while it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstvsc_stream.cli.common import parse_size  # noqa: E402
from mstvsc_stream.media import read_frames, sample_clip_path  # noqa: E402
from mstvsc_stream.analysis.bench import machine_info  # noqa: E402
from mstvsc_stream.runtime import find_model  # noqa: E402
from mstvsc_stream.runtime.onnx_backend import OnnxCodec  # noqa: E402


def timed(work, gops: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this thread per call, in ms. With one inference thread
    ONNX Runtime computes in the calling thread, so the CPU time is what the graph costs even when other
    processes take turns on the cores."""
    work()
    wall, cpu = [], []
    for _ in range(gops):
        started, started_cpu = time.perf_counter(), time.thread_time()
        work()
        wall.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--model", default=None)
    p.add_argument("--sizes", type=lambda t: [parse_size(s) for s in t.split(",")], default="320x240,640x480")
    p.add_argument("--precision", default="int8")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--gops", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    card = find_model(args.model)
    codecs = {name: OnnxCodec(card, threads=args.threads, folder=folder, precision=args.precision)
              for name, folder in (("before", args.before), ("after", args.after))}
    load_before = os.getloadavg()
    results: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for run in range(args.runs):
        for width, height in args.sizes:
            frames = read_frames(sample_clip_path(), n=4, size=(width, height))
            for name, codec in codecs.items():
                codes = codec.encode(frames)
                received = np.ones(codes.size, bool)
                for part, work in (("encode", lambda: codec.encode(frames)),
                                   ("decode", lambda: codec.decode(codes, received, height, width))):
                    results.setdefault((f"{width}x{height}", part, name), []).append(timed(work, args.gops))
        print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    load_after = os.getloadavg()
    rows = []
    print(f"{'size':>8} {'part':>7} {'':>6} {'before ms/GOP':>22} {'after ms/GOP':>22} {'speed-up':>8}")
    for (size, part, name), values in results.items():
        if name != "before":
            continue
        row = {"size": size, "part": part}
        for column, kind in ((0, "wall"), (1, "cpu")):
            before = [v[column] for v in values]
            after = [v[column] for v in results[size, part, "after"]]
            speedup = statistics.median(before) / statistics.median(after)
            row.update({f"before_{kind}_ms": before, f"after_{kind}_ms": after, f"speedup_{kind}": speedup})
            fmt = lambda v: f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"  # noqa: E731
            print(f"{size:>8} {part:>7} {kind:>6} {fmt(before):>22} {fmt(after):>22} {speedup:>7.2f}x")
        rows.append(row)
    machine = machine_info(args.threads)
    print(f"median (range) of {args.runs} runs, each the median of {args.gops} GOPs (wall: elapsed; cpu: this "
          f"thread's CPU time); {args.precision}, "
          f"{args.threads} thread(s); {machine['cpu']}, {machine['usable_cores']} usable cores; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "load_before": load_before, "load_after": load_after,
                                         "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
