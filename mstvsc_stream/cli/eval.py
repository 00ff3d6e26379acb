"""``mstvsc-eval``: quality per segment loss rate through the real wire path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..media import read_frames
from ..media.source import FileSource
from ..pipeline.evaluation import EvalConfig, evaluate
from ..runtime import load_codec
from .common import add_model_args, add_seed_arg, parse_size, parser, run_main, setup_logging


def build_parser():
    p = parser("mstvsc-eval", "Run a clip through encode, interleave, segment, seeded segment loss, "
                              "reassembly, recovery and decode; report PSNR and MS-SSIM per loss rate.")
    p.add_argument("--input", required=True, help="video file")
    p.add_argument("--size", type=parse_size, help="resize to WxH first")
    p.add_argument("--frames", type=int, help="use at most N frames")
    p.add_argument("--loss", default="0,0.3,0.6,0.9", help="segment loss rates, comma separated")
    p.add_argument("--loss-seed", type=int, default=1, help="seed of the Bernoulli loss pattern")
    p.add_argument("--payload", type=int, help="segment payload bytes (multiple of 3)")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    add_model_args(p)
    add_seed_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args)

    def body() -> int:
        with FileSource(args.input) as source:
            fps = source.fps
        frames = read_frames(args.input, n=args.frames, size=args.size)
        codec = load_codec(args.model, args.backend, args.device)
        rates = [float(r) for r in args.loss.split(",")]
        rows = evaluate(codec, frames, fps, EvalConfig(rates, args.seed, args.loss_seed, args.payload))
        h, w = frames.shape[1:3]
        print(f"{Path(args.input).name} {w}x{h} @ {fps:.2f} fps, model {codec.model_id}")
        print(f"{'loss':>6} {'PSNR dB':>8} {'MS-SSIM':>8} {'kbps':>8}")
        for row in rows:
            ssim = "n/a" if row.ms_ssim is None else f"{row.ms_ssim:.4f}"
            print(f"{row.loss:>6.2f} {row.psnr:>8.2f} {ssim:>8} {row.kbps:>8.1f}")
        if args.json:
            doc = {"clip": Path(args.input).name, "size": f"{w}x{h}", "fps": fps, "model": codec.model_id,
                   "rows": [row.as_dict() for row in rows]}
            args.json.write_text(json.dumps(doc, indent=2) + "\n")
        return 0

    return run_main("mstvsc-eval", body)


if __name__ == "__main__":
    sys.exit(main())
