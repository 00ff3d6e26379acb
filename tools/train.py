#!/usr/bin/env python3
"""Train an MSTVSC model in the paper's two stages (and an optional end-to-end third), with
checkpoints, resume and validation.

    python tools/train.py --config small-c48 --data ../shared/data/train --val HELD_OUT_CLIPS \
        --out runs/small-c48 --stage1-steps 6000 --stage2-steps 2000 --precision bf16 --compile

Stages run in order and any may be 0 steps long: I (everything, noise quantisation), II (encoder
frozen, erasure at ``--rates``; with ``--recovery-only`` the synthesis is frozen too, which leaves the
lossless picture exactly as it was), III (everything, wire rounding straight through, erasure at
``--stage3-rates``, learning rate ``--stage3-lr``; ``--balanced-rates`` weighs each GOP per dB rather than per
unit of error, so the lossless GOPs are not outweighed by the lossy ones). ``--exclude`` keeps clips (by file
name pattern) out of training, so checkpoints can be picked on whole held-out clips passed to ``--val``.

Data: any mix of video files/folders (``--data``), a Vimeo-90k septuplet root (``--vimeo``) and
scikit-image photos animated with camera motion (on unless ``--no-stills``). ``--resume`` continues
from ``OUT/last.pt`` (model, optimiser, step, stage). ``OUT/best.pt`` keeps the checkpoint with the
best validation score (mean PSNR over the loss rates in ``--val-loss``); with ``--ema DECAY`` the
weights validated and kept there are an exponential moving average of the trained ones. Runs unchanged under
``torchrun --nproc-per-node N`` (DistributedDataParallel: gradients averaged across ranks, one sampler
seed per rank, the decoded clips shared between ranks through one memory-mapped file).
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstvsc_stream.model.config import CONFIGS, FRAME_ALIGN, MSTVSCConfig  # noqa: E402
from mstvsc_stream.model.data import ClipStore, DataError, GopSampler, decode_video, find_videos, half_size, skimage_stills, vimeo_septuplets  # noqa: E402
from mstvsc_stream.model.mstvsc import MSTVSC  # noqa: E402
from mstvsc_stream.model.training import LossWeights, StageLoss, erase, set_stage  # noqa: E402
from mstvsc_stream.model.widen import deepen, widen_latent, widen_recovery  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help=f"one of {', '.join(CONFIGS)} (default: --init's, else small-c48)")
    p.add_argument("--data", type=Path, nargs="*", default=[],
                   help="video files or folders; a video named twice (say, a folder and then some of its files) "
                        "is drawn twice as often")
    p.add_argument("--vimeo", type=Path, help="Vimeo-90k septuplet root (has sequences/)")
    p.add_argument("--vimeo-limit", type=int, help="use at most this many septuplets")
    p.add_argument("--no-stills", action="store_true", help="do not animate scikit-image photos")
    p.add_argument("--val", type=Path, nargs="*", default=[], help="validation videos or folders")
    p.add_argument("--val-gops", type=int, default=2, help="GOPs per validation clip")
    p.add_argument("--val-size", default="640x480")
    p.add_argument("--val-loss", default="0,0.9")
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--clip-cache", type=Path, help="keep the decoded clips here, shared by every run on the "
                   "same data (default: one copy in each --out)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--init", type=Path, help="start from these weights (a checkpoint or shipped .pt); with "
                   "another --config, every tensor whose shape fits is taken, and a narrower latent is "
                   "widened so the model starts as good as the narrow one (e.g. c48 -> C = 96)")
    p.add_argument("--keep-narrow", action="store_true", help="with a widened --init: the narrow model's "
                   "channels stay exactly as it sent them (encoder frozen but for the new channels' "
                   "projections), so its tuned decoder and loss recovery keep working from the first step")
    p.add_argument("--recovery-width", type=int, help="hidden channels of the loss-recovery modules (default: "
                   "the config's); with a narrower --init they start as its recovery and decode as it did, "
                   "new channels added (a wider recovery for heavy loss, trained with --recovery-only)")
    p.add_argument("--recovery-stages", type=int, help="loss-recovery stacks in cascade (default: the config's); "
                   "stacks added to an --init's start by predicting nothing, so it decodes as it did")
    p.add_argument("--stage1-steps", type=int, default=6000)
    p.add_argument("--stage2-steps", type=int, default=2000)
    p.add_argument("--stage3-steps", type=int, default=0, help="end-to-end fine-tuning after stage II")
    p.add_argument("--stage3-rates", default="0,0,0,0.3,0.6,0.9", help="stage III loss rates (weighted toward 0)")
    p.add_argument("--stage3-lr", type=float, default=1e-4)
    p.add_argument("--exclude", nargs="*", default=[], help="file name patterns kept out of training")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16 autocast (CPUs with AVX512-BF16/AMX, recent GPUs) or plain fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step's forward")
    p.add_argument("--profile", type=int, default=0, help="profile this many steps, print the top operators, exit")
    p.add_argument("--batch", default="8", help="GOPs per step, or a schedule 'step:batch,...' like --crop's")
    p.add_argument("--crop", default="0:128", help="crop-size schedule 'step:size,...', e.g. 0:128,4000:192; "
                   "stage II learns the loss recovery best at 256 (a 4x4 map per frame), e.g. --stage1-steps 3000 "
                   "--crop 0:128,3000:256 --batch 0:8,3000:2")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--rates", default="0,0.3,0.6,0.9", help="stage II loss rates, one drawn per GOP")
    p.add_argument("--recovery-only", action="store_true", help="stage II trains the loss-recovery modules "
                   "alone (synthesis frozen too): the lossless picture cannot change, so --rates may lean on "
                   "heavy loss, e.g. 0.6,0.9,0.9 (a rate of 0 teaches nothing here)")
    p.add_argument("--balanced-rates", action="store_true", help="stages II and III: each GOP's error enters "
                   "as its log (a PSNR, up to sign and scale), not as its MSE, so every loss rate drawn counts "
                   "per dB and a lossy GOP's larger error does not outweigh a lossless one's "
                   "(see model.training.distortion)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.0,
                   help="validate, and keep as best.pt, a moving average of the weights with this decay per "
                        "step (e.g. 0.999); 0 = the trained weights themselves")
    args = p.parse_args(argv)
    for name in ("crop", "batch"):
        try:
            scheduled(0, getattr(args, name))
        except ValueError:
            p.error(f"--{name} {getattr(args, name)}: expected a number or 'step:value,...' starting at step 0")
    crops = [int(e.rpartition(":")[2]) for e in args.crop.split(",")]
    if any(size % FRAME_ALIGN for size in crops):
        p.error(f"--crop {args.crop}: every size must be a multiple of {FRAME_ALIGN} (the latent's stride)")
    if not 0 <= args.ema < 1:
        p.error(f"--ema {args.ema}: expected a decay per step in [0, 1), e.g. 0.999")
    if args.recovery_width is not None and args.recovery_width < 1:
        p.error(f"--recovery-width {args.recovery_width}: expected a number of channels, at least 1")
    if args.recovery_stages is not None and args.recovery_stages < 1:
        p.error(f"--recovery-stages {args.recovery_stages}: expected a number of stacks, at least 1")
    args.last = args.out / "last.pt"  # the checkpoint a run resumes from
    args.resuming = args.resume and args.last.exists()  # then --init is not read
    if args.init is not None and not args.init.is_file() and not args.resuming:
        p.error(f"--init {args.init}: no such file (a run's checkpoint or a shipped model's weights.pt)")
    return args


def scheduled(step: int, schedule: str) -> int:
    """The value a 'step:value,...' schedule (or a plain number, for every step) gives at ``step``."""
    entries = sorted((int(start or 0), int(value)) for start, _, value in (e.rpartition(":") for e in schedule.split(",")))
    if entries[0][0] != 0 or any(value <= 0 for _, value in entries):
        raise ValueError(schedule)
    return [value for start, value in entries if step >= start][-1]


def lr_for(step: int, stage_start: int, stage_steps: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 5% within each stage."""
    s = step - stage_start
    if s < warmup:
        return base * (s + 1) / warmup
    progress = min(1.0, (s - warmup) / max(1, stage_steps - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def training_videos(args: argparse.Namespace) -> Counter[Path]:
    """Each training video (resolved, in the order first named) and how many times ``--data`` names it,
    directly or through a folder: a video named twice is stored once and drawn twice as often."""
    return Counter(p.resolve() for p in find_videos(args.data)
                   if not any(fnmatch.fnmatch(p.name, pat) for pat in args.exclude))


def decoded_clips(args: argparse.Namespace, videos: Counter[Path]):
    for path in videos:
        frames = decode_video(path)
        yield frames
        yield half_size(frames)
    if args.vimeo:
        yield from vimeo_septuplets(args.vimeo, args.vimeo_limit)


def clip_store(args: argparse.Namespace, sources: list[str]) -> ClipStore:
    """``OUT/clips.u8``, or with ``--clip-cache DIR`` one store per set of sources in DIR, so runs on the
    same data share one copy (about 7 GB for all of ``../shared/data/train``) instead of one each."""
    if args.clip_cache is None:
        return ClipStore(args.out / "clips.u8")
    args.clip_cache.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256("\n".join(sources).encode()).hexdigest()[:16]
    return ClipStore(args.clip_cache / f"clips-{digest}.u8")


def load_data(args: argparse.Namespace, gop: int, rank: int, distributed: bool) -> GopSampler:
    """Rank 0 decodes every clip into the clip store (unless it holds these sources already); all ranks
    map that one file."""
    videos = training_videos(args)
    sources = [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in videos]
    sources += [f"vimeo:{args.vimeo}:{args.vimeo_limit}"] if args.vimeo else []
    store = clip_store(args, sources)
    if rank == 0 and not store.current(sources):
        store.build(decoded_clips(args, videos), sources)
    if distributed:
        dist.barrier()
    stills = [] if args.no_stills else skimage_stills()
    clips = store.open()
    weights = [float(n) for n in videos.values() for _copy in ("full", "half size")]
    weights += [1.0] * (len(clips) - len(weights))  # the Vimeo-90k septuplets
    return GopSampler(clips, stills, gop, seed=args.seed + 1000 * rank, clip_weights=weights)


def load_val(args: argparse.Namespace, gop: int) -> list[np.ndarray]:
    import cv2

    w, h = (int(v) for v in args.val_size.split("x"))
    gops = []
    for path in find_videos(args.val):
        frames = decode_video(path, max_frames=gop * args.val_gops)
        frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
        gops += [frames[i:i + gop] for i in range(0, len(frames) - gop + 1, gop)]
    return gops


@torch.no_grad()
def validate(model: MSTVSC, gops: list[np.ndarray], rates: list[float]) -> dict[str, float]:
    """Mean per-frame PSNR (dB, RGB, 0-255) at each element-erasure rate, seeded."""
    from mstvsc_stream.model.config import padded_size

    model.eval()
    gen_state = torch.get_rng_state()
    torch.manual_seed(1234)
    result = {}
    for rate in rates:
        psnrs = []
        for gop in gops:
            t, h, w, _ = gop.shape
            ph, pw = padded_size(h, w)
            x = np.pad(gop, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            x = torch.from_numpy(x).float().div(255)[None]
            sent = model.encode(x)
            received, mask = erase(sent, torch.tensor([rate]))
            y = model.decode(received, mask)[0, :, :h, :w].mul(255).round().numpy()
            mse = ((y - gop.astype(np.float64)) ** 2).reshape(t, -1).mean(1)
            psnrs += list(10 * np.log10(255**2 / np.maximum(mse, 1e-10)))
        result[f"psnr@{rate:g}"] = float(np.mean(psnrs))
    torch.set_rng_state(gen_state)
    model.train()
    return result


def save(path: Path, model: MSTVSC, cfg: MSTVSCConfig, optimizer, step: int, stage: int, best: float, extra: dict) -> None:
    """Write a checkpoint atomically. A failed write (a full disk) removes its temporary file, keeps the last
    good checkpoint and ends the run with one line: training on without checkpoints would lose the work."""
    tmp = path.with_suffix(".tmp")
    try:
        torch.save({"config": cfg.to_dict(), "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "step": step, "stage": stage, "best": best, **extra}, tmp)
        tmp.replace(path)
    except (OSError, RuntimeError) as exc:  # torch reports a short write as RuntimeError
        tmp.unlink(missing_ok=True)
        free_mb = shutil.disk_usage(path.parent).free // 2**20
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise SystemExit(f"train: cannot write {path} at step {step} ({free_mb} MB free there): {reason}; "
                         f"the last checkpoint written stays, resume with --resume") from exc


def weight_average(model: MSTVSC, decay: float, state: dict | None) -> AveragedModel | None:
    """The exponential moving average of the weights (``--ema``), or None when off. At the small batches a
    CPU affords, the weights after any one step carry that step's gradient noise; their average over the
    last ~1/(1-decay) steps does not. It starts from the weights the run starts from (not from those
    after its first step) and is restored from ``last.pt`` on resume, so a resume never restarts it."""
    if not decay:
        return None
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    if state and "average" in state:
        average.load_state_dict(state["average"])
    else:
        average.update_parameters(model)
    return average


def load_fitting(model: MSTVSC, weights: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor whose name and shape match; return the names left as initialised."""
    own = model.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return sorted(k for k in own if k not in fitting)


def _grow(model: MSTVSC, cfg: MSTVSCConfig, init_cfg: MSTVSCConfig):
    """How to load an --init of a smaller model so the grown one decodes as it did: a function of its
    weights that loads them and says what it did, or None when a plain load of the fitting tensors will do."""
    if init_cfg.latent < cfg.latent:
        return lambda w: (f"widened the latent to {cfg.latent} channels in {len(widen_latent(model, w))} tensors "
                          "(the new channels are sent but not yet read)")
    if init_cfg.recovery_width < cfg.recovery_width:
        return lambda w: (f"widened the loss recovery to {cfg.recovery_width} hidden channels in "
                          f"{len(widen_recovery(model, w))} tensors (it predicts as before until it trains)")
    if (init_cfg.analysis_depths, init_cfg.decoder_depths) != (cfg.analysis_depths, cfg.decoder_depths):
        return lambda w: (f"added {len(deepen(model, w))} Swin blocks to reach depths {cfg.analysis_depths} "
                          f"(encoder) and {cfg.decoder_depths} (decoder) (each starts as the identity)")
    return None


def stage_at(step: int, args: argparse.Namespace) -> tuple[int, int, int]:
    """(stage, first step of that stage, its length) for a global step."""
    s1, s2 = args.stage1_steps, args.stage2_steps
    if step < s1:
        return 1, 0, s1
    if step < s1 + s2:
        return 2, s1, s2
    return 3, s1 + s2, args.stage3_steps


def make_objective(model: MSTVSC, objective: StageLoss, stage: int, args: argparse.Namespace,
                   distributed: bool, kept: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """Set the stage's trainable parameters (``kept``: see :func:`set_stage`) and (re)wrap the objective:
    DDP registers its gradient hooks on the parameters that require grad when it is built, so every
    stage change builds it anew."""
    params = set_stage(model, stage, kept, args.recovery_only)
    objective.stage = stage
    net: torch.nn.Module = objective
    if distributed:
        net = torch.nn.parallel.DistributedDataParallel(objective)
    if args.compile:
        net = torch.compile(net)
    return net, torch.optim.Adam(params, lr=args.lr)


def stage_rates(stage: int, args: argparse.Namespace) -> torch.Tensor:
    return torch.tensor([float(r) for r in (args.stage3_rates if stage == 3 else args.rates).split(",")])


def profile_steps(net: torch.nn.Module, sampler: GopSampler, args: argparse.Namespace, rates: torch.Tensor,
                  optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    from torch.profiler import ProfilerActivity, profile

    def one_step() -> None:
        batch = scheduled(0, args.batch)
        frames = torch.from_numpy(sampler.batch(batch, scheduled(0, args.crop))).to(device).float().div(255)
        loss, _ = net(frames, rates[torch.randint(len(rates), (batch,))].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    one_step()  # warm-up (and compilation)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.profile):
            one_step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    rank = 0
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = dist.get_rank()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # identical initial weights on every rank
    args.out.mkdir(parents=True, exist_ok=True)

    last = args.last
    state = torch.load(last, map_location="cpu", weights_only=False) if args.resuming else None
    if state:
        cfg = MSTVSCConfig.from_dict(state["config"])
    elif args.init:
        init = torch.load(args.init, map_location="cpu", weights_only=False)
        cfg = CONFIGS[args.config] if args.config else MSTVSCConfig.from_dict(init["config"])
    else:
        cfg = CONFIGS[args.config or "small-c48"]
    if args.recovery_width and not state:
        cfg = dataclasses.replace(cfg, recovery_width=args.recovery_width)
    if args.recovery_stages and not state:
        cfg = dataclasses.replace(cfg, recovery_stages=args.recovery_stages)
    model = MSTVSC(cfg).to(device)
    step, best, kept = 0, -math.inf, 0
    init_cfg = MSTVSCConfig.from_dict(init["config"]) if args.init and not state else None
    narrow = init_cfg.latent if init_cfg else None
    widening = narrow is not None and narrow < cfg.latent
    if args.keep_narrow and not state and not widening:
        print("train: --keep-narrow needs an --init with a narrower latent than --config", file=sys.stderr)
        return 2
    if state:
        model.load_state_dict(state["state_dict"])
        step, best, kept = state["step"], state["best"], state.get("kept", 0)
    elif init_cfg and (grown := _grow(model, cfg, init_cfg)):
        try:
            line = grown(init["state_dict"])
        except ValueError as exc:
            print(f"train: --init {args.init}: {exc}", file=sys.stderr)
            return 2
        kept = narrow if widening and args.keep_narrow else 0
        if rank == 0:
            print(f"train: --init {line}", file=sys.stderr)
    elif args.init:
        skipped = load_fitting(model, init["state_dict"])
        if skipped and rank == 0:
            print(f"train: --init left {len(skipped)} tensors at their initial values (new, or shapes differ): "
                  f"{', '.join(skipped)}", file=sys.stderr)
    average = weight_average(model, args.ema, state)
    validated = average.module if average else model
    torch.manual_seed(args.seed + rank)  # different batches and erasures per rank

    try:
        sampler = load_data(args, cfg.gop, rank, distributed)
        val_gops = load_val(args, cfg.gop) if rank == 0 else []
    except DataError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    autocast = torch.bfloat16 if args.precision == "bf16" else None
    objective = StageLoss(model, LossWeights(balanced=args.balanced_rates), autocast=autocast)
    stage = stage_at(step, args)[0]
    net, optimizer = make_objective(model, objective, stage, args, distributed, kept)
    if state and "optimizer" in state and state.get("stage") == stage:
        optimizer.load_state_dict(state["optimizer"])
    if args.profile:
        profile_steps(net, sampler, args, stage_rates(stage, args), optimizer, device)
        return 0
    val_rates = [float(r) for r in args.val_loss.split(",")]
    total = args.stage1_steps + args.stage2_steps + args.stage3_steps
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    log = (args.out / "train_log.jsonl").open("a")
    started = time.time()

    def checkpoint(path: Path, weights: MSTVSC = model, **extra: object) -> None:
        """The run's state as it is now (the loop's step, stage, best and optimizer), with ``weights`` as its
        model: the trained ones (plus the weight average) to resume from, the validated ones in ``best.pt``,
        which are the average already when there is one."""
        if average and weights is model:
            extra["average"] = average.state_dict()
        save(path, weights, cfg, optimizer, step, stage, best, {"kept": kept, **extra})

    bar = tqdm(total=total, initial=step, disable=rank != 0, dynamic_ncols=True)
    model.train()
    while step < total and not stop["now"]:
        now_stage, stage_start, stage_steps = stage_at(step, args)
        if now_stage != stage:
            stage = now_stage
            net, optimizer = make_objective(model, objective, stage, args, distributed, kept)
        base_lr = args.stage3_lr if stage == 3 else args.lr
        for group in optimizer.param_groups:
            group["lr"] = lr_for(step, stage_start, stage_steps, base_lr, args.warmup)
        size, batch = scheduled(step, args.crop), scheduled(step, args.batch)
        frames = torch.from_numpy(sampler.batch(batch, size)).to(device).float().div(255)
        rates = stage_rates(stage, args)
        loss, info = net(frames, rates[torch.randint(len(rates), (batch,))].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        if average:
            average.update_parameters(model)
        step += 1
        bar.update(1)
        bar.set_postfix(stage=stage, crop=size, psnr=f"{-10 * math.log10(max(info['mse'], 1e-10)):.2f}")
        if rank == 0:
            log.write(json.dumps({"step": step, "stage": stage, "time": round(time.time() - started, 1), **info}) + "\n")
            if step % args.val_every == 0 and val_gops:
                scores = validate(validated, val_gops, val_rates)
                score = float(np.mean(list(scores.values())))
                # with --ema, the trained weights' scores beside the average's show what averaging gains
                trained = {"val_trained": validate(model, val_gops, val_rates)} if average else {}
                log.write(json.dumps({"step": step, "val": scores, "score": score, **trained}) + "\n")
                tqdm.write(f"step {step} stage {stage} val {scores}")
                if score > best:
                    best = score
                    checkpoint(args.out / "best.pt", validated, val=scores)
            if step % args.save_every == 0:
                checkpoint(last)
            log.flush()
    if rank == 0:
        checkpoint(last)
    bar.close()
    if distributed:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
