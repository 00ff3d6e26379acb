#!/usr/bin/env python3
"""Export a model's encoder and decoder to ONNX beside its weights, check the graphs against PyTorch on
the bundled sample clip, and record them in the card's "onnx" mapping ({file: sha256}).

    python tools/export_onnx.py [--model mstvsc-small-c48] [--sizes 320x240,640x480,1280x720,1920x1080]

Run it again after every weights update (the shipping step does): the graphs of the old weights are
replaced and graphs of sizes no longer listed are removed. Every size is exported in fp32 and int8.
Nothing is installed unless every graph passes the parity check against PyTorch (fp32: codes equal on
>= 99.9% of elements, decoded values within 1e-3 before the uint8 conversion on >= 99.9% of them, the rest
being where a tie sent a token to the other MoE expert; int8: codes equal on >= 93% and at most two
levels apart, values within 0.15 on >= 99.9%, RMS error <= 4e-3; see PARITY_LIMITS). Graphs are keyed by
the padded size (sides rounded up to 64): 320x240 -> 320x256.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstvsc_stream.cli.common import parse_size, run_main  # noqa: E402
from mstvsc_stream.media import read_frames, sample_clip_path  # noqa: E402
from mstvsc_stream.model.config import padded_size  # noqa: E402
from mstvsc_stream.progress import Progress  # noqa: E402
from mstvsc_stream.runtime import ModelCard, find_model  # noqa: E402
from mstvsc_stream.runtime.onnx_backend import OnnxCodec  # noqa: E402
from mstvsc_stream.runtime.onnx_export import check_parity, export_graphs, install_graphs  # noqa: E402
from mstvsc_stream.runtime.onnx_graphs import PARTS, PRECISIONS, SHIPPED_SIZES, size_text  # noqa: E402
from mstvsc_stream.runtime.torch_backend import load_torch_model  # noqa: E402

def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="shipped model name or model folder (default: the default model)")
    p.add_argument("--sizes", type=lambda text: [parse_size(s) for s in text.split(",")],
                   default=SHIPPED_SIZES, help=f"frame sizes WxH, comma-separated (default {SHIPPED_SIZES})")
    p.add_argument("--frames", type=int, default=8, help="sample-clip frames per size for the parity check")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch and ONNX Runtime")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or progress lines")
    return p.parse_args()


def export(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    card = find_model(args.model)
    model = load_torch_model(card)
    padded = sorted({padded_size(h, w) for w, h in args.sizes}, key=lambda s: s[0] * s[1])
    staging = Path(tempfile.mkdtemp(dir=card.folder, prefix=".export-"))
    steps = len(padded) * len(PARTS) + len(args.sizes) * len(PRECISIONS)  # exports, then parity checks
    try:
        with Progress(steps, "export_onnx", quiet=args.quiet, unit="graph") as progress:
            return _export_and_check(args, card, model, padded, staging, progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_and_check(args: argparse.Namespace, card: ModelCard, model: torch.nn.Module,
                      padded: list[tuple[int, int]], staging: Path, progress: Progress) -> int:
    start = time.perf_counter()
    hashes = export_graphs(model, card, padded, staging, on_step=lambda note: progress.step(f"exported {note}"))
    progress.print(f"{card.model_id}: exported {len(padded)} sizes in {time.perf_counter() - start:.0f} s")
    progress.print(f"{'size':>10} {'graphs':>10} {'precision':>9} {'elements':>9} {'codes differ':>13} {'max step':>8}"
                   f" {'decoder max err':>15} {'(half lost)':>11} {'outliers':>9} {'rms err':>9}")
    failed = []
    for width, height in args.sizes:
        frames = read_frames(sample_clip_path(), n=args.frames, size=(width, height))
        for precision in PRECISIONS:  # a fresh codec per size: one size's sessions in memory at a time
            codec = OnnxCodec(card, threads=args.threads, folder=staging, precision=precision)
            parity = check_parity(model, codec, frames)
            progress.step(f"checked {parity.size} {precision}")
            progress.print(f"{parity.size:>10} {size_text(*padded_size(height, width)):>10} {parity.precision:>9}"
                           f" {parity.elements:>9} {parity.code_mismatch:>13.3e} {parity.max_code_step:>8}"
                           f" {parity.decoder_max_abs:>15.2e} {parity.decoder_max_abs_lossy:>11.2e}"
                           f" {parity.decoder_outliers:>9.1e} {parity.decoder_rms:>9.2e}")
            if not parity.ok:
                failed.append(f"{parity.size} {parity.precision}")
    for name in hashes:
        progress.print(f"  {name:<28} {(staging / name).stat().st_size / 2**20:8.2f} MiB")
    if failed:
        print(f"export_onnx: parity check failed for {', '.join(failed)}; nothing installed", file=sys.stderr)
        return 1
    install_graphs(staging, card, hashes)
    progress.print(f"installed into {card.folder} and listed in its card")
    return 0


if __name__ == "__main__":
    sys.exit(run_main("export_onnx", lambda: export(parse_args())))
