"""DistributedDataParallel really averages gradients: two CPU ranks (gloo) on different batches, wrapped
by the training tool's own ``make_objective``, stay identical through the stage changes that freeze and
unfreeze the encoder."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.model.mstvsc import MSTVSC
from mstvsc_stream.model.training import LossWeights, StageLoss
from tool_modules import load_tool

train = load_tool("train")

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="this torch build has no torch.distributed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = MSTVSC(CONFIGS["tiny-test"])
    objective = StageLoss(model, LossWeights())
    args = argparse.Namespace(compile=False, lr=1e-2, recovery_only=False)
    batches = []
    for stage in (1, 1, 2, 2, 3):
        net, optimizer = train.make_objective(model, objective, stage, args, distributed=True)
        generator = torch.Generator().manual_seed(100 * rank + len(batches))  # each rank its own batch
        frames = torch.rand(2, 4, 64, 64, 3, generator=generator)
        batches.append(frames)
        loss, _ = net(frames, torch.tensor([0.0, 0.5]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.save({"state": model.state_dict(), "batches": batches}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ranks_train_one_model_on_different_batches(tmp_path: Path) -> None:
    mp.start_processes(_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert all(not torch.equal(x, y) for x, y in zip(a["batches"], b["batches"]))
    torch.manual_seed(0)
    start = MSTVSC(CONFIGS["tiny-test"]).state_dict()  # same seed as the ranks' initial weights
    assert any(not torch.equal(start[k], a["state"][k]) for k in start)  # training moved the weights
    for key, value in a["state"].items():
        assert torch.allclose(value, b["state"][key], atol=1e-6), key
