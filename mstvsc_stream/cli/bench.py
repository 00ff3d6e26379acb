"""``mstvsc-bench``: encoder and decoder speed per frame size and backend on this machine, with x264 at
the same size and bitrate for scale (see :mod:`mstvsc_stream.analysis.bench` for what is measured)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

from ..analysis.bench import CODEC_BACKENDS, combine_runs, format_table, machine_info, run_bench
from ..runtime import DEFAULT_MODEL, DEVICES
from ..runtime.onnx_graphs import SHIPPED_SIZES
from .common import add_list_models_arg, check_output_path, checked, parse_size, parser, positive_int, run_main, setup_logging

log = logging.getLogger("mstvsc-bench")

def _backends(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in CODEC_BACKENDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backend {unknown[0]!r} (choose from {', '.join(CODEC_BACKENDS)})")
    return names


def default_backends(device: str) -> str:
    """ONNX (int8 on the CPU, fp32) and PyTorch where it is installed (found without importing torch)."""
    onnx = "onnx-int8,onnx" if device == "cpu" else "onnx"
    return f"{onnx},torch" if importlib.util.find_spec("torch") is not None else onnx


def build_parser() -> argparse.ArgumentParser:
    p = parser("mstvsc-bench", "Encoder/decoder frames per second, ms per GOP, peak memory and wire time per "
                               "frame size and backend, plus x264 (zerolatency, veryfast) at the codec's bitrate.")
    p.add_argument("--sizes", type=lambda text: [parse_size(s) for s in text.split(",")], default=SHIPPED_SIZES,
                   help=f"frame sizes WxH, comma-separated (default {SHIPPED_SIZES})")
    p.add_argument("--model", default=None, help=f"shipped model name or model folder (default {DEFAULT_MODEL})")
    add_list_models_arg(p)
    p.add_argument("--backend", type=_backends, default=None,
                   help="codec backends, comma-separated: onnx-int8, onnx (fp32), torch (default: all that run "
                        "on the device: onnx-int8 is CPU-only, torch where PyTorch is installed); the precision "
                        "is in the name, so there is no --precision")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="where inference runs: cpu (default) or cuda (onnxruntime-gpu, or a CUDA build of PyTorch)")
    p.add_argument("--threads", type=checked(positive_int), default=None,
                   help="intra-op threads (default: each backend's)")
    p.add_argument("--gops", type=checked(positive_int), default=5, help="timed GOPs per measurement, after one warm-up GOP")
    p.add_argument("--runs", type=checked(positive_int), default=1,
                   help="repeat everything this many times and report the median and range (use 5 for figures "
                        "you publish: shared machines are noisy)")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    check_output_path(p, "--json", args.json)
    setup_logging(args)
    backends = args.backend or _backends(default_backends(args.device))

    def body() -> int:
        machine = machine_info(args.threads)
        load_start = [round(v, 2) for v in os.getloadavg()]
        runs = []
        for run in range(args.runs):
            rows = []
            for row in run_bench(args.sizes, backends, args.gops, args.model, args.device, args.threads):
                log.info("run %d: %s %s %s: %.2f fps", run + 1, row["size"], row["backend"], row["side"], row["fps"])
                rows.append(row)
            runs.append(rows)
        load_end = [round(v, 2) for v in os.getloadavg()]
        rows = combine_runs(runs) if args.runs > 1 else runs[0]
        print(format_table(rows))
        spread = f"median (range) of {args.runs} runs, each the " if args.runs > 1 else ""
        print(f"{spread}median of {args.gops} GOPs after a warm-up GOP; {machine['cpu']}, {machine['usable_cores']} "
              f"usable cores, threads {machine['threads']}; load average (1, 5, 15 min) {load_start} at start, "
              f"{load_end} at the end; wire ms: sender's segmenting on encode rows, receiver's reassembly on "
              "decode rows")
        if args.json is not None:
            args.json.write_text(json.dumps({"machine": machine, "runs": args.runs, "load_average_start": load_start,
                                             "load_average_end": load_end, "rows": rows}, indent=2) + "\n")
        return 0

    return run_main("mstvsc-bench", body)


if __name__ == "__main__":
    sys.exit(main())
