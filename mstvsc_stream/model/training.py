"""Loss functions and the erasure channel of the paper's two training stages (section V-A.4).

Stage I (eq. 15): ``alpha * MSE(X, Y) + beta * L_aux`` with additive-noise quantisation (eq. 16).
Stage II (eq. 17): encoder frozen, latents rounded as on the wire, each element erased at a loss rate
drawn per GOP from a list, zeros filled, plus ``gamma * (MSE(X_i, Y_ir) + MSE(X_c, Y_cr))`` so the
recovery modules learn to predict what was sent. Interleaving spreads every segment's elements evenly
over the latent, so element erasure at the segment loss rate models the wire.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .mstvsc import MSTVSC, Latents, quantize


@dataclass(frozen=True)
class LossWeights:
    alpha: float = 1.0
    beta: float = 0.01
    gamma: float = 0.002


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


def stage1_loss(model: MSTVSC, frames: torch.Tensor, w: LossWeights) -> tuple[torch.Tensor, dict]:
    y = model.analysis(frames)
    yq = Latents(quantize(y.common, True), quantize(y.individual, True))
    ones = Latents(torch.ones_like(yq.common), torch.ones_like(yq.individual))
    recon = model.synthesis(model.recover(yq, ones))
    mse = F.mse_loss(recon, frames)
    aux = model.aux_loss()
    return w.alpha * mse + w.beta * aux, {"mse": mse.item(), "aux": aux.item()}


def stage2_loss(model: MSTVSC, frames: torch.Tensor, rates: torch.Tensor, w: LossWeights) -> tuple[torch.Tensor, dict]:
    with torch.no_grad():
        sent = model.encode(frames)
    received, mask = erase(sent, rates)
    recovered = model.recover(received, mask)
    recon = model.synthesis(recovered)
    mse = F.mse_loss(recon, frames)
    aux = model.aux_loss()
    latent = F.mse_loss(recovered.individual, sent.individual) + F.mse_loss(recovered.common, sent.common)
    loss = w.alpha * mse + w.beta * aux + w.gamma * latent
    return loss, {"mse": mse.item(), "aux": aux.item(), "latent": latent.item()}
