"""Swin Transformer building blocks over ``[B, D, H, W, C]`` token grids.

One implementation serves both codecs of the paper: the per-frame spatial codec is a 3D Swin with a
temporal window of 1 (frames never attend to each other), the spatial-temporal codec uses a temporal
window spanning the whole GOP (Video Swin, ref. [33]) with a Mixture-of-Experts feed-forward layer.
Windows shrink to the grid when the grid is smaller, and grids that are not a multiple of the window are
padded inside the block, so any frame size works.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

Window = tuple[int, int, int]


def _effective(window: Window, size: tuple[int, int, int], shift: bool) -> tuple[Window, Window]:
    """Window clipped to the grid, and the cyclic shift (half a window where the grid exceeds it)."""
    win = tuple(min(w, s) for w, s in zip(window, size))
    shifts = tuple(w // 2 if shift and s > w else 0 for w, s in zip(win, size))
    return win, shifts  # type: ignore[return-value]


@lru_cache(maxsize=64)
@torch.inference_mode(False)  # cached tensors must also serve autograd after an inference-mode first use
def _relative_index(win: Window, table: Window) -> torch.Tensor:
    """Index into the bias table (laid out for the configured window ``table``) for window ``win``."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(n) for n in win], indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    td, th, tw = table
    return ((rel[0] + td - 1) * (2 * th - 1) + (rel[1] + th - 1)) * (2 * tw - 1) + (rel[2] + tw - 1)


@lru_cache(maxsize=64)
@torch.inference_mode(False)
def _shift_mask(padded: tuple[int, int, int], win: Window, shifts: Window) -> torch.Tensor:
    """Additive attention mask ``[nW, N, N]`` keeping shifted windows from mixing distant regions."""
    label = torch.zeros(padded)
    count = 0
    slices = [
        ((slice(0, -w), slice(-w, -s), slice(-s, None)) if s else (slice(None),))
        for w, s in zip(win, shifts)
    ]
    for sd in slices[0]:
        for sh in slices[1]:
            for sw in slices[2]:
                label[sd, sh, sw] = count
                count += 1
    windows = _partition(label[None, ..., None], win).squeeze(-1)  # [nW, N]
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


def _partition(x: torch.Tensor, win: Window) -> torch.Tensor:
    """``[B, D, H, W, C]`` -> ``[B * nW, N, C]`` windows of ``N = prod(win)`` tokens."""
    b, d, h, w, c = x.shape
    wd, wh, ww = win
    x = x.view(b, d // wd, wd, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, c)


def _merge(windows: torch.Tensor, win: Window, b: int, d: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_partition`."""
    wd, wh, ww = win
    x = windows.view(b, d // wd, h // wh, w // ww, wd, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias."""

    def __init__(self, dim: int, heads: int, window: Window) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        size = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.bias_table = nn.Parameter(torch.zeros(size, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)

    def forward(self, windows: torch.Tensor, b: int, win: Window, mask: torch.Tensor | None) -> torch.Tensor:
        n_win_b, n, c = windows.shape
        qkv = self.qkv(windows).view(b, n_win_b // b, n, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # each [B, nW, heads, N, hd]
        # explicit softmax attention: on CPU it beats SDPA's masked path (no mask checks) and exports cleanly
        attn = torch.matmul(q * self.scale, k.transpose(-2, -1)) + self.position_bias(win, mask, n).to(q.dtype)
        out = torch.matmul(attn.softmax(-1), v)
        return self.proj(out.permute(0, 1, 3, 2, 4).reshape(n_win_b, n, c))

    def position_bias(self, win: Window, mask: torch.Tensor | None, n: int) -> torch.Tensor:
        """Relative position bias ``[heads, N, N]``, plus the shift mask when given (``[nW, heads, N, N]``)."""
        index = _relative_index(win, self.window).to(self.bias_table.device)
        bias = self.bias_table[index.reshape(-1)].view(n, n, self.heads).permute(2, 0, 1)
        return bias if mask is None else bias + mask.to(bias.dtype)[:, None]


class Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float) -> None:
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class SwinBlock(nn.Module):
    """(Shifted-)window attention then a feed-forward layer (an MLP or an MoE layer), both residual."""

    def __init__(self, dim: int, heads: int, window: Window, shift: bool, ffn: nn.Module) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = ffn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w, _ = x.shape
        win, shifts = _effective(self.window, (d, h, w), self.shift)
        y = self.norm1(x)
        pads = [(-n) % s for n, s in zip((d, h, w), win)]
        if any(pads):
            y = F.pad(y, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        dp, hp, wp = d + pads[0], h + pads[1], w + pads[2]
        mask = None
        if any(shifts):
            y = torch.roll(y, shifts=tuple(-s for s in shifts), dims=(1, 2, 3))
            mask = _shift_mask((dp, hp, wp), win, shifts).to(y.device)
        y = self.attn(_partition(y, win), b, win, mask)
        y = _merge(y, win, b, dp, hp, wp)
        if any(shifts):
            y = torch.roll(y, shifts=shifts, dims=(1, 2, 3))
        x = x + y[:, :d, :h, :w]
        return x + self.ffn(self.norm2(x))


class PatchMerging(nn.Module):
    """Halve H and W by concatenating 2x2 neighbours (4C) and projecting to the next width."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w, c = x.shape
        x = x.view(b, d, h // 2, 2, w // 2, 2, c).permute(0, 1, 2, 4, 3, 5, 6).reshape(b, d, h // 2, w // 2, 4 * c)
        return self.reduce(self.norm(x))


class PatchExpanding(nn.Module):
    """Double H and W: project to 4x the next width and scatter into 2x2 neighbours."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.expand = nn.Linear(dim, 4 * out, bias=False)
        self.norm = nn.LayerNorm(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w, _ = x.shape
        x = self.expand(x).view(b, d, h, w, 2, 2, -1).permute(0, 1, 2, 4, 3, 5, 6).reshape(b, d, 2 * h, 2 * w, -1)
        return self.norm(x)


class SwinStage(nn.Sequential):
    """``depth`` blocks alternating regular and shifted windows."""

    def __init__(self, dim: int, depth: int, head_dim: int, window: Window, make_ffn) -> None:
        heads = max(1, dim // head_dim)
        super().__init__(*[SwinBlock(dim, heads, window, i % 2 == 1, make_ffn(dim)) for i in range(depth)])
