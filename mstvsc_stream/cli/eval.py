"""``mstvsc-eval``: quality per packet loss rate through the real wire path, against H.264/H.265 sent
over the same packets (Fig. 11), with the inference-time ablations and pictures of one GOP.

    mstvsc-eval --input clip.mkv --size 320x240 --loss 0,0.01,0.05,0.1,0.3,0.5,0.7,0.9 \\
        --baselines h264,h265,h264-fec,h265-fec --ablations --json out.json --plot out.png --report out.html
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..analysis.baselines import Baseline, default_keyint
from ..analysis.evaluation import EvalConfig, EvalRow, evaluate, evaluation_steps
from ..analysis.gallery import Gallery, feature_views, save_grid
from ..analysis.report import curves_png, report_html
from ..media import read_frames
from ..media.source import FileSource
from ..net.loss import BernoulliLoss, GilbertElliottLoss, LossModel, parse_probability
from ..progress import Progress
from .common import (
    add_model_args,
    add_refine_arg,
    add_seed_arg,
    check_output_path,
    checked,
    input_location,
    open_codec,
    parse_size,
    parser,
    positive_int,
    run_main,
    setup_logging,
    write_json,
)


def parse_rates(text: str) -> list[float]:
    return [parse_probability(part) for part in text.split(",")]


def parse_baselines(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        Baseline.named(name)
    return names


def build_parser() -> argparse.ArgumentParser:
    p = parser("mstvsc-eval", "Run a clip through encode, interleave, segment, seeded packet loss, reassembly, "
                              "recovery and decode, and classic codecs through the same packets and losses; "
                              "report PSNR and MS-SSIM per scheme and loss rate.")
    p.add_argument("--input", required=True, help="video file, or sample for the bundled clip")
    p.add_argument("--size", type=parse_size, help="resize to WxH first")
    p.add_argument("--frames", type=checked(positive_int), help="use at most N frames")
    losses = p.add_mutually_exclusive_group()
    losses.add_argument("--loss", type=checked(parse_rates), default=[0.0, 0.3, 0.6, 0.9],
                        help="Bernoulli packet loss rates, comma separated (default 0,0.3,0.6,0.9)")
    losses.add_argument("--gemodel", type=checked(parse_probability), nargs="+", metavar="P",
                        help="instead, one Gilbert-Elliott loss model: P [R [1-H [1-K]]] as in netem's "
                             "'loss gemodel' (bursts; see the nointerleave ablation)")
    p.add_argument("--loss-seed", type=int, default=1, help="seed of the loss pattern (same for every scheme)")
    p.add_argument("--payload", type=int, help="segment payload bytes (multiple of 3), for every scheme")
    p.add_argument("--baselines", type=checked(parse_baselines), default=(),
                   help="classic schemes at the same bitrate, comma separated: h264,h265,h264-fec,h265-fec")
    p.add_argument("--keyint", type=checked(positive_int), help="baseline keyframe interval in frames "
                                                                "(default: one second)")
    p.add_argument("--ablations", action="store_true",
                   help="add mstvsc-norecovery and mstvsc-nointerleave (same model, same losses)")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.add_argument("--plot", type=Path, help="write PSNR and MS-SSIM against loss as a PNG")
    p.add_argument("--report", type=Path, help="write an HTML page with the plot and the table")
    p.add_argument("--save-frames", type=Path, metavar="DIR",
                   help="write PNG strips of the middle GOP for every scheme and loss, and its common-only / "
                        "individual-only reconstructions")
    add_model_args(p)
    add_refine_arg(p)
    add_seed_arg(p)
    return p


def loss_setup(args: argparse.Namespace) -> tuple[list[float], Callable[[float], LossModel], str]:
    """Loss rates, the rate -> model function, and a description for the document. A Gilbert-Elliott
    model is one point on the loss axis, at its stationary mean loss rate."""
    if args.gemodel is None:
        return args.loss, BernoulliLoss, "bernoulli"
    if len(args.gemodel) > 4:
        raise ValueError("--gemodel takes at most 4 values: P [R [1-H [1-K]]]")
    model = GilbertElliottLoss.netem(*args.gemodel)
    description = (f"gemodel p={model.p:g} r={model.r:g} 1-h={model.bad_loss:g} 1-k={model.good_loss:g} "
                   f"(mean {model.mean_loss_rate:.4g})")
    return [model.mean_loss_rate], lambda _rate: model, description


def print_table(rows: list[EvalRow]) -> None:
    print(f"{'scheme':<20} {'loss':>6} {'PSNR dB':>8} {'MS-SSIM':>8} {'kbps':>8} {'lost':>7}")
    for row in rows:
        ssim = "n/a" if row.ms_ssim is None else f"{row.ms_ssim:.4f}"
        print(f"{row.scheme:<20} {row.loss:>6.3g} {row.psnr:>8.2f} {ssim:>8} {row.kbps:>8.1f} "
              f"{row.measured_loss:>7.4f}")


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    for option in ("json", "plot", "report"):
        check_output_path(p, f"--{option}", getattr(args, option))
    setup_logging(args)

    def body() -> int:
        rates, loss_model, loss_description = loss_setup(args)
        args.input = input_location(args.input)
        with FileSource(args.input) as source:
            fps = source.fps
        frames = read_frames(args.input, n=args.frames, size=args.size)
        codec = open_codec(args)
        keyint = args.keyint or default_keyint(fps)
        cfg = EvalConfig(rates, args.seed, args.loss_seed, args.payload, loss_model, args.ablations,
                         args.baselines, keyint)
        gallery = None if args.save_frames is None else Gallery(len(frames) // codec.gop // 2, codec.gop)
        with Progress(evaluation_steps(len(frames), codec.gop, cfg), "mstvsc-eval", quiet=args.quiet,
                      unit="step") as progress:
            rows = evaluate(codec, frames, fps, cfg, gallery, progress.step)
        h, w = frames.shape[1:3]
        print(f"{Path(args.input).name} {w}x{h} @ {fps:.2f} fps, model {codec.model_id}, {loss_description} loss")
        print_table(rows)
        doc = {"clip": Path(args.input).name, "size": f"{w}x{h}", "fps": fps, "model": codec.model_id,
               "loss_model": loss_description, "loss_seed": args.loss_seed, "keyint": keyint,
               "rows": [row.as_dict() for row in rows]}
        if args.json:
            write_json(args.json, doc)
        if args.plot or args.report:
            png = curves_png(doc)
            if args.plot:
                args.plot.write_bytes(png)
            if args.report:
                args.report.write_text(report_html(doc, png))
        if gallery is not None:
            args.save_frames.mkdir(parents=True, exist_ok=True)
            gallery.save_strips(args.save_frames, frames)
            save_grid(args.save_frames / f"gop{gallery.gop}-features.png", "common and individual latents (Fig. 12)",
                      feature_views(codec, frames[gallery.frames]))
        return 0

    return run_main("mstvsc-eval", body)


if __name__ == "__main__":
    sys.exit(main())
