"""Packet-loss recovery modules (Fig. 8): predict the missing latent elements from the received ones.

Each module sees the zero-filled latent and its received mask, and its prediction is gated by the
missing-element mask before it is added: ``Y_r = Y + f(Y, mask) * (1 - mask)``, so received elements
always pass through unchanged. The common part is one map per GOP (2D convolutions); the individual
part has a map per frame (3D convolutions, so neighbouring frames help fill each other's holes).

More capacity comes as a cascade (``stages`` > 1): each later stack sees the earlier fill and the same
mask and adds a correction to the missing elements only. Its last layer starts at zero, so a cascade
grown from a trained single stack predicts exactly as that stack did until it trains.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_stack(conv, channels: int, width: int, depth: int, kernel) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 2 * channels  # latent and mask
    for _ in range(depth - 1):
        layers += [conv(cin, width, kernel, padding="same"), nn.GELU()]
        cin = width
    layers.append(conv(cin, channels, kernel, padding="same"))
    return nn.Sequential(*layers)


def _refinements(conv, channels: int, width: int, depth: int, stages: int) -> nn.ModuleList:
    """The cascade's later stacks, each predicting nothing until it trains."""
    stacks = nn.ModuleList(_conv_stack(conv, channels, width, depth, 3) for _ in range(stages - 1))
    for stack in stacks:
        nn.init.zeros_(stack[-1].weight)
        nn.init.zeros_(stack[-1].bias)
    return stacks


class CommonRecovery(nn.Module):
    def __init__(self, channels: int, width: int, depth: int, stages: int = 1) -> None:
        super().__init__()
        self.net = _conv_stack(nn.Conv2d, channels, width, depth, 3)
        self.refine = _refinements(nn.Conv2d, channels, width, depth, stages)

    def forward(self, y: torch.Tensor, received: torch.Tensor) -> torch.Tensor:
        """``y``, ``received``: ``[B, 1, h, w, C]`` (received as 0/1 floats)."""
        missing = 1 - received
        for net in (self.net, *self.refine):
            x = torch.cat([y, received], -1)[:, 0].permute(0, 3, 1, 2)
            y = y + net(x).permute(0, 2, 3, 1)[:, None] * missing
        return y


class IndividualRecovery(nn.Module):
    def __init__(self, channels: int, width: int, depth: int, stages: int = 1) -> None:
        super().__init__()
        self.net = _conv_stack(nn.Conv3d, channels, width, depth, 3)
        self.refine = _refinements(nn.Conv3d, channels, width, depth, stages)

    def forward(self, y: torch.Tensor, received: torch.Tensor) -> torch.Tensor:
        """``y``, ``received``: ``[B, T, h, w, C]``."""
        missing = 1 - received
        for net in (self.net, *self.refine):
            x = torch.cat([y, received], -1).permute(0, 4, 1, 2, 3)
            y = y + net(x).permute(0, 2, 3, 4, 1) * missing
        return y
