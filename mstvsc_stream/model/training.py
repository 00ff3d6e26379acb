"""Loss functions and the erasure channel of the training stages (section V-A.4), as one module that
DistributedDataParallel can wrap.

Stage I (eq. 15): ``alpha * MSE(X, Y) + beta * L_aux`` with additive-noise quantisation (eq. 16).
Stage II (eq. 17): encoder frozen, latents rounded as on the wire, each element erased at a loss rate
drawn per GOP from a list, zeros filled, plus ``gamma * (MSE(X_i, Y_ir) + MSE(X_c, Y_cr))`` so the
recovery modules learn to predict what was sent. Interleaving spreads every segment's elements evenly
over the latent, so element erasure at the segment loss rate models the wire.
Stage III (the project's own): stage II's loss with the encoder trained too, rounding passed straight
through (the forward pass sees exactly the wire's integers, the gradient treats rounding as identity),
so the encoder learns from the lossless and the lossy picture at once.

The stage is held by :class:`StageLoss` and switched with :func:`set_stage`, which also freezes the
encoder by ``requires_grad``: DDP then neither waits for nor averages frozen gradients, and the MoE
auxiliary loss averages over the layers being trained only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .mstvsc import MSTVSC, Latents, quantize, round_through


@dataclass(frozen=True)
class LossWeights:
    alpha: float = 1.0
    beta: float = 0.01
    gamma: float = 0.002
    balanced: bool = False  # stages II/III: see :func:`distortion`


def erase(y: Latents, rates: torch.Tensor) -> tuple[Latents, Latents]:
    """Drop each element with its GOP's rate (``rates`` ``[B]``); returns zero-filled latents and masks."""

    def one(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = (torch.rand_like(t) >= rates.view(-1, *[1] * (t.dim() - 1))).to(t.dtype)
        return t * keep, keep

    (c, mc), (i, mi) = one(y.common), one(y.individual)
    return Latents(c, i), Latents(mc, mi)


def encoder_parameters(model: MSTVSC) -> list[torch.nn.Parameter]:
    """Everything on the transmitter side (frozen in stage II)."""
    parts = [model.embed, model.embed_norm, model.encoder, model.common_extractor, model.to_common,
             model.individual_extractor, model.to_individual]
    return [p for part in parts for p in part.parameters()]


def recovery_parameters(model: MSTVSC) -> list[torch.nn.Parameter]:
    """The loss-recovery modules (the only ones a recovery-only stage II trains)."""
    return [*model.common_recovery.parameters(), *model.individual_recovery.parameters()]


def set_stage(model: MSTVSC, stage: int, kept: int = 0, recovery_only: bool = False) -> list[torch.nn.Parameter]:
    """Freeze the encoder for stage II, train everything otherwise; returns the trainable parameters.

    ``recovery_only`` (stage II only, ``tools/train.py --recovery-only``): the synthesis is frozen too and
    only the loss-recovery modules learn. Their output is gated by the missing-element mask, so the
    lossless picture stays bit for bit what it was: a stage that can lean on high loss rates for the
    picture at heavy loss at no cost at 0 %.

    ``kept`` > 0 (a widened model, ``tools/train.py --keep-narrow``): the first ``kept`` latent channels
    stay exactly what the narrow model sent, in every stage, because its decoder and loss recovery were
    tuned to them over thousands of steps. The encoder is frozen except its latent projections, whose
    gradients reach only the rows of the new channels: so training costs the narrow picture nothing
    and teaches the new channels to carry what the old ones miss (and skips the encoder's backward pass).
    """
    if recovery_only and stage == 2:
        trained = recovery_parameters(model)
        ids = {id(p) for p in trained}
        for p in model.parameters():
            p.requires_grad_(id(p) in ids)
        return trained
    for p in model.parameters():
        p.requires_grad_(True)
    if stage == 2 or kept:
        for p in encoder_parameters(model):
            p.requires_grad_(False)
    if kept and stage != 2:
        for projection in (model.to_common, model.to_individual):
            for p in projection.parameters():
                p.requires_grad_(True)
                _train_rows_from(p, kept)
    return [p for p in model.parameters() if p.requires_grad]


def _train_rows_from(p: torch.nn.Parameter, first: int) -> None:
    """Zero the gradient of rows ``[:first]`` (Adam without weight decay then leaves them exactly as
    they are). Registered once per parameter, however often the stage changes."""
    if getattr(p, "kept_rows", None) == first:
        return
    if getattr(p, "kept_rows", None) is not None:
        raise ValueError(f"rows already kept: {p.kept_rows}, now {first}")

    def zero_kept(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[:first] = 0
        return grad

    p.register_hook(zero_kept)
    p.kept_rows = first


def gop_mse(recon: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Each GOP's mean squared error, ``[B]``, of a batch of GOPs ``[B, T, H, W, 3]`` (in fp32)."""
    return (recon.float() - frames).pow(2).flatten(1).mean(1)


def distortion(recon: torch.Tensor, frames: torch.Tensor, balanced: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(the term to minimise, the plain MSE) of a batch of GOPs ``[B, T, H, W, 3]``.

    Plain: the batch's MSE, so a GOP's pull on the weights grows with its error, and a batch mixing loss
    rates is steered by its lossy GOPs (several times the lossless error). ``balanced``: the mean of each
    GOP's log MSE (a PSNR, up to sign and scale), scaled by the batch's MSE (a constant) so the step size
    stays as it was: every GOP then counts per dB, which is how the picture is judged at each loss rate,
    and the lossless GOPs of a stage III batch keep their weight. With equal errors both give the same
    gradient.
    """
    per_gop = gop_mse(recon, frames)
    mse = per_gop.mean()
    if not balanced:
        return mse, mse
    return per_gop.clamp_min(1e-12).log().mean() * mse.detach(), mse


def stage1_loss(model: MSTVSC, frames: torch.Tensor, w: LossWeights) -> tuple[torch.Tensor, dict]:
    y = model.analysis(frames)
    yq = Latents(quantize(y.common, True), quantize(y.individual, True))
    ones = Latents(torch.ones_like(yq.common), torch.ones_like(yq.individual))
    recon = model.synthesis(model.recover(yq, ones))
    mse = F.mse_loss(recon.float(), frames)
    aux = model.aux_loss()
    return w.alpha * mse + w.beta * aux, {"mse": mse.item(), "aux": aux.item()}


def lossy_loss(model: MSTVSC, frames: torch.Tensor, rates: torch.Tensor, w: LossWeights,
               train_encoder: bool) -> tuple[torch.Tensor, dict]:
    """Stage II (``train_encoder=False``) or III: wire rounding, erasure, recovery, synthesis."""
    if train_encoder:
        y = model.analysis(frames)
        sent = Latents(round_through(y.common), round_through(y.individual))
    else:
        with torch.no_grad():
            sent = model.encode(frames)
    received, mask = erase(sent, rates)
    recovered = model.recover(received, mask)
    term, mse = distortion(model.synthesis(recovered), frames, w.balanced)
    aux = model.aux_loss()
    target = Latents(sent.common.detach(), sent.individual.detach())
    latent = (F.mse_loss(recovered.individual.float(), target.individual.float())
              + F.mse_loss(recovered.common.float(), target.common.float()))
    loss = w.alpha * term + w.beta * aux + w.gamma * latent
    return loss, {"mse": mse.item(), "aux": aux.item(), "latent": latent.item()}


def stage2_loss(model: MSTVSC, frames: torch.Tensor, rates: torch.Tensor, w: LossWeights) -> tuple[torch.Tensor, dict]:
    return lossy_loss(model, frames, rates, w, train_encoder=False)


class StageLoss(nn.Module):
    """The model with its training objective as ``forward``, so DistributedDataParallel's forward runs
    (and its gradient hooks average across ranks); ``model`` stays reachable for saving and validation."""

    def __init__(self, model: MSTVSC, weights: LossWeights, stage: int = 1,
                 autocast: torch.dtype | None = None) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self.stage = stage
        self.autocast = autocast

    def forward(self, frames: torch.Tensor, rates: torch.Tensor) -> tuple[torch.Tensor, dict]:
        enabled = self.autocast is not None
        with torch.autocast(frames.device.type, dtype=self.autocast or torch.bfloat16, enabled=enabled):
            if self.stage == 1:
                return stage1_loss(self.model, frames, self.weights)
            return lossy_loss(self.model, frames, rates, self.weights, train_encoder=self.stage == 3)
