"""``mstvsc-demo``: the sample clip through a lossy loopback link at several loss rates, scored.

    mstvsc-demo                          # bundled clip, 320x240, loss 0, 0.3, 0.6, 0.9
    mstvsc-demo --input clip.mp4 --loss 0,0.5 --out results --json results/demo.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..media import sample_clip_path
from ..net.eventloop import run
from ..net.loss import parse_probability
from ..pipeline.demo import DemoConfig, DemoRow, run_demo
from .common import (
    add_model_args,
    add_seed_arg,
    check_output_path,
    checked,
    input_location,
    open_codec,
    parse_stream_size,
    parser,
    positive_int,
    run_main,
    setup_logging,
    write_json,
)


def _loss_rates(text: str) -> tuple[float, ...]:
    return tuple(parse_probability(rate) for rate in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    p = parser("mstvsc-demo", "Stream a clip sender -> loss relay -> receiver over loopback UDP at several "
                              "segment loss rates; record each run losslessly and score it.")
    p.add_argument("--input", metavar="PATH|sample", help="video file (default: sample, the bundled clip)")
    p.add_argument("--size", type=parse_stream_size, default=(320, 240), metavar="WxH", help="frame size (default 320x240)")
    p.add_argument("--frames", type=checked(positive_int), metavar="N", help="use at most N frames")
    p.add_argument("--loss", type=checked(_loss_rates), default=(0.0, 0.3, 0.6, 0.9), metavar="P,P,...",
                   help="relay loss rates (default 0,0.3,0.6,0.9)")
    p.add_argument("--loss-seed", type=int, default=1, help="seed of the relay's loss pattern")
    p.add_argument("--out", type=Path, default=Path("mstvsc-demo-out"), metavar="DIR",
                   help="folder for the recordings (default ./mstvsc-demo-out)")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the table as JSON")
    add_model_args(p)
    add_seed_arg(p)
    return p


def _print_table(rows: list[DemoRow], header: str, gop: int) -> None:
    print(header)
    print(f"{'loss':>5} {'seen':>6} {'frames':>9} {'PSNR dB':>8} {'MS-SSIM':>8} {'kbps':>7}  recording")
    for row in rows:
        seen = "n/a" if row.segment_loss is None else f"{row.segment_loss:.1%}"
        quality = "n/a" if row.psnr is None else f"{row.psnr:.2f}"
        ssim = "n/a" if row.ms_ssim is None else f"{row.ms_ssim:.4f}"
        kbps = "n/a" if row.kbps is None else f"{row.kbps:.1f}"
        frames = f"{row.frames_out}/{row.frames_sent}"
        print(f"{row.loss:>5.2f} {seen:>6} {frames:>9} {quality:>8} {ssim:>8} {kbps:>7}  {row.recording}")
    notes = [note for row in rows if (note := row.why_frames_are_missing(gop)) is not None]
    if notes:
        print("seen: segments lost of the GOPs the receiver played; frames missing:")
        for note in notes:
            print(f"  {note}")


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)  # first, so --json may point into it
    except OSError as exc:
        p.error(f"--out: cannot create {str(args.out)!r}: {exc.strerror}")
    check_output_path(p, "--json", args.json)
    setup_logging(args)

    def body() -> int:
        codec = open_codec(args)
        source = input_location(args.input) if args.input else sample_clip_path()
        config = DemoConfig(
            input=source, size=args.size, loss_rates=args.loss, out_dir=args.out,
            seed=args.seed, loss_seed=args.loss_seed, max_frames=args.frames,
        )  # fmt: skip
        rows = run(run_demo(codec, config))
        width, height = config.size
        _print_table(rows, f"{Path(config.input).name} at {width}x{height}, model {codec.model_id}", codec.gop)
        if args.json is not None:
            write_json(args.json, {"input": str(config.input), "size": f"{width}x{height}", "model": codec.model_id,
                                   "rows": [row.as_dict() for row in rows]})
        return 0

    return run_main(p.prog, body)


if __name__ == "__main__":
    sys.exit(main())
