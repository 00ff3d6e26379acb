"""Mixture-of-Experts feed-forward layer (the MLP replacement of the paper's 3D Swin blocks, Fig. 6).

A linear router scores ``m`` experts per token, the top ``K_r`` are kept and their softmax-renormalised
weights mix the experts' outputs. The experts are evaluated densely with stacked weights (one batched
matmul): at the token counts of the H/16-H/64 stages this is faster on a CPU than gathering tokens per
expert, and it exports to ONNX as plain matmuls. The GShard-style load-balancing loss (ref. [34]) is left
in ``aux_loss`` after every forward pass for the training loop to collect.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MoE(nn.Module):
    def __init__(self, dim: int, experts: int, top_k: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.experts = experts
        self.top_k = top_k
        self.router = nn.Linear(dim, experts)
        self.w1 = nn.Parameter(torch.empty(experts, dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(experts, 1, hidden))
        self.w2 = nn.Parameter(torch.empty(experts, hidden, dim))
        self.b2 = nn.Parameter(torch.zeros(experts, 1, dim))
        nn.init.trunc_normal_(self.w1, std=dim**-0.5)
        nn.init.trunc_normal_(self.w2, std=hidden**-0.5)
        self.aux_loss = torch.zeros(())

    def gates(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse mixing weights ``[N, m]`` (top-K renormalised) and the router's full probabilities."""
        probs = self.router(tokens).softmax(-1)
        top, idx = probs.topk(self.top_k, dim=-1)
        weights = torch.zeros_like(probs).scatter(-1, idx, top / top.sum(-1, keepdim=True))
        return weights, probs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        weights, probs = self.gates(tokens)
        hidden = F.gelu(torch.matmul(tokens.unsqueeze(0), self.w1) + self.b1)  # [m, N, hidden]
        out = torch.matmul(hidden, self.w2) + self.b2  # [m, N, dim]
        mixed = torch.einsum("mnd,nm->nd", out, weights)
        if self.training:
            # fraction of tokens dispatched to each expert times its mean router probability, times m:
            # 1.0 when balanced, up to m when one expert takes everything.
            dispatched = (weights > 0).float().mean(0) / self.top_k
            self.aux_loss = self.experts * (dispatched * probs.mean(0)).sum()
        return mixed.view(shape)


def moe_ffn(experts: int, top_k: int, ratio: float):
    """A factory ``dim -> MoE`` for :class:`~mstvsc_stream.model.swin.SwinStage`."""
    return lambda dim: MoE(dim, experts, top_k, ratio)
