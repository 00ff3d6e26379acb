"""The MSTVSC network (section IV, Fig. 4): spatial and spatial-temporal Swin codecs, common/individual
feature split, 3-bit quantisation and packet-loss recovery.

Tensors are channels-last ``[B, T, H, W, C]``. Frames enter as floats in [0, 1] with sides already
padded to :data:`~mstvsc_stream.model.config.FRAME_ALIGN`; the frame-level helpers that pad, crop and
flatten live with the inference backends.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import MSTVSCConfig
from .extractors import CommonExtractor, IndividualExtractor, IndividualUpsample
from .moe import MoE, moe_ffn
from .recovery import CommonRecovery, IndividualRecovery
from .swin import Mlp, PatchExpanding, PatchMerging, SwinStage

LEVEL_MIN, LEVEL_MAX = -4, 3  # 3-bit two's complement levels
_MEAN, _STD = 0.45, 0.25  # pixel normalisation


def bound(v: torch.Tensor) -> torch.Tensor:
    """Squash to the open interval (-4, 3) so rounding always lands on a 3-bit level."""
    return 3.5 * torch.tanh(v / 3.5) - 0.5


def quantize(y: torch.Tensor, noise: bool) -> torch.Tensor:
    """Additive uniform noise while training (eq. 16), rounding to the 3-bit levels otherwise."""
    if noise:
        return y + torch.empty_like(y).uniform_(-0.5, 0.5)
    return torch.round(y).clamp(LEVEL_MIN, LEVEL_MAX)


def round_through(y: torch.Tensor) -> torch.Tensor:
    """The wire's rounding forward, identity backward (straight-through estimator): how stage III and
    sender-side refinement see through the quantiser."""
    return y + (quantize(y, False) - y).detach()


@dataclass
class Latents:
    common: torch.Tensor  # [B, 1, H/32, W/32, C]
    individual: torch.Tensor  # [B, T, H/64, W/64, C]


class MSTVSC(nn.Module):
    def __init__(self, cfg: MSTVSCConfig) -> None:
        super().__init__()
        self.cfg = cfg
        (c1, c2, c3), (c4, c5) = cfg.widths, cfg.st_widths
        n1, n2, n3, n4, n5, n6 = cfg.analysis_depths
        hd, c = cfg.head_dim, cfg.latent
        spatial = (1, cfg.window, cfg.window)
        temporal = (cfg.gop, cfg.st_window, cfg.st_window)
        moe_args = (cfg.experts, cfg.top_k, cfg.expert_ratio)
        mlp = lambda dim: Mlp(dim, cfg.mlp_ratio)  # noqa: E731
        moe = moe_ffn(*moe_args)

        self.embed = nn.Conv2d(3, c1, 2, stride=2)
        self.embed_norm = nn.LayerNorm(c1)
        self.encoder = nn.Sequential(
            SwinStage(c1, n1, hd, spatial, mlp), PatchMerging(c1, c2),
            SwinStage(c2, n2, hd, spatial, mlp), PatchMerging(c2, c3),
            SwinStage(c3, n3, hd, spatial, mlp), PatchMerging(c3, c4),
            SwinStage(c4, n4, hd, temporal, moe), PatchMerging(c4, c5),
            SwinStage(c5, n5, hd, temporal, moe),
        )
        self.common_extractor = CommonExtractor(c5, cfg.gop)
        self.to_common = nn.Linear(c5, c)
        self.individual_extractor = IndividualExtractor(c5, cfg.ind_width, n6, hd, temporal, moe_args)
        self.to_individual = nn.Linear(cfg.ind_width, c)

        recovery = (cfg.recovery_width, cfg.recovery_depth, cfg.recovery_stages)
        self.common_recovery = CommonRecovery(c, *recovery)
        self.individual_recovery = IndividualRecovery(c, *recovery)
        self.from_common = nn.Linear(c, c5)
        self.from_individual = nn.Linear(c, cfg.ind_width)
        d1, d2, d3, d4, d5, d6 = cfg.decoder_depths
        self.individual_upsample = IndividualUpsample(cfg.ind_width, c5, d6, hd, temporal, moe_args)
        self.decoder = nn.Sequential(
            SwinStage(c5, d5, hd, temporal, moe), PatchExpanding(c5, c4),
            SwinStage(c4, d4, hd, temporal, moe), PatchExpanding(c4, c3),
            SwinStage(c3, d3, hd, spatial, mlp), PatchExpanding(c3, c2),
            SwinStage(c2, d2, hd, spatial, mlp), PatchExpanding(c2, c1),
            SwinStage(c1, d1, hd, spatial, mlp),
        )
        self.head = nn.Linear(c1, 12)

    # -- transmitter --------------------------------------------------------------------------------
    def analysis(self, frames: torch.Tensor) -> Latents:
        """``[B, T, H, W, 3]`` in [0, 1] -> continuous latents bounded to (-4, 3)."""
        b, t, h, w, _ = frames.shape
        x = ((frames - _MEAN) / _STD).reshape(b * t, h, w, 3).permute(0, 3, 1, 2)
        x = self.embed_norm(self.embed(x).permute(0, 2, 3, 1)).reshape(b, t, h // 2, w // 2, -1)
        x_st = self.encoder(x)
        common = self.common_extractor(x_st)
        individual = self.individual_extractor(x_st - common)
        return Latents(bound(self.to_common(common)), bound(self.to_individual(individual)))

    def encode(self, frames: torch.Tensor) -> Latents:
        """Integer latents in -4..3 (as floats), what goes on the wire."""
        y = self.analysis(frames)
        return Latents(quantize(y.common, False), quantize(y.individual, False))

    # -- receiver -----------------------------------------------------------------------------------
    def recover(self, y: Latents, received: Latents) -> Latents:
        """Fill lost elements (``received`` is 1 where an element arrived, 0 where it was zero-filled)."""
        return Latents(
            self.common_recovery(y.common, received.common),
            self.individual_recovery(y.individual, received.individual),
        )

    def synthesis(self, y: Latents) -> torch.Tensor:
        """Recovered latents -> frames ``[B, T, H, W, 3]`` (unclamped)."""
        common = self.from_common(y.common)
        x = self.individual_upsample(self.from_individual(y.individual)) + common  # Y_s = Y_iru + Y_cr
        x = self.decoder(x)
        b, t, h, w, _ = x.shape
        x = self.head(x).view(b, t, h, w, 2, 2, 3).permute(0, 1, 2, 4, 3, 5, 6).reshape(b, t, 2 * h, 2 * w, 3)
        return x * _STD + _MEAN

    def decode(self, y: Latents, received: Latents) -> torch.Tensor:
        return self.synthesis(self.recover(y, received)).clamp(0, 1)

    # -- training -----------------------------------------------------------------------------------
    def aux_loss(self) -> torch.Tensor:
        """Mean MoE load-balancing loss of the last forward pass, over the MoE layers being trained
        (a frozen encoder's layers would only dilute the weight of the others)."""
        layers = [m for m in self.modules() if isinstance(m, MoE)]
        trained = [m for m in layers if m.router.weight.requires_grad] or layers
        return torch.stack([m.aux_loss.float() for m in trained]).mean()
