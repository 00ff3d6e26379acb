"""Common and individual feature extractors (Fig. 7) and the decoder's individual upsample module.

The common extractor collapses the GOP's time axis (a 3D convolution whose kernel spans all ``T``
frames), mixes channels (1x1x1) and refines with a residual convolution net: what stays the same over
the GOP is sent once. What remains per frame (``X_st - X_c``) is downsampled once more by a 3D Swin
stage before it becomes the individual latent, so the per-frame detail costs a quarter of the common map.
"""

from __future__ import annotations

import torch
from torch import nn

from .moe import moe_ffn
from .swin import PatchExpanding, PatchMerging, SwinStage


class ResidualConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.GELU(), nn.Conv2d(dim, dim, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CommonExtractor(nn.Module):
    """``X_st [B, T, h, w, C5]`` -> common features ``[B, 1, h, w, C5]``."""

    def __init__(self, dim: int, gop: int) -> None:
        super().__init__()
        self.collapse = nn.Conv3d(dim, dim, (gop, 1, 1))
        self.act = nn.GELU()
        self.mix = nn.Conv3d(dim, dim, 1)
        self.refine = ResidualConv(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mix(self.act(self.collapse(x.permute(0, 4, 1, 2, 3))))  # [B, C, 1, h, w]
        return self.refine(y[:, :, 0]).permute(0, 2, 3, 1)[:, None]


class IndividualExtractor(nn.Module):
    """Per-frame residual ``[B, T, h, w, C5]`` -> ``[B, T, h/2, w/2, C6]`` (patch merging + 3D Swin MoE)."""

    def __init__(self, dim: int, out: int, depth: int, head_dim: int, window, moe_args) -> None:
        super().__init__()
        self.merge = PatchMerging(dim, out)
        self.stage = SwinStage(out, depth, head_dim, window, moe_ffn(*moe_args))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(self.merge(x))


class IndividualUpsample(nn.Module):
    """Mirror of :class:`IndividualExtractor`: ``[B, T, h/2, w/2, C6]`` -> ``[B, T, h, w, C5]``."""

    def __init__(self, dim: int, out: int, depth: int, head_dim: int, window, moe_args) -> None:
        super().__init__()
        self.stage = SwinStage(dim, depth, head_dim, window, moe_ffn(*moe_args))
        self.expand = PatchExpanding(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.stage(x))
