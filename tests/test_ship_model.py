"""tools/ship_model.py: a checkpoint becomes a shipped model whose card says how it was trained and measured,
including the earlier phases of a model trained on from shipped weights (--continues)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from tool_modules import load_tool

from mstvsc_stream.media import sample_clip_path
from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.model.mstvsc import MSTVSC
from mstvsc_stream.runtime.zoo import file_sha256

ship_model = load_tool("ship_model")


def test_a_model_trained_on_from_shipped_weights_carries_its_history(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "models"
    (root / "earlier").mkdir(parents=True)
    (root / "earlier" / "card.json").write_text(json.dumps({
        "model_id": "earlier@0123456789abcdef", "data": ["old clips"],
        "training": {"steps": 7250, "stage1_steps": 3004, "hours": 3.78, "hardware": "2 CPU cores"}}))
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    cfg = CONFIGS["tiny-test"]
    torch.save({"config": cfg.to_dict(), "state_dict": MSTVSC(cfg).state_dict(), "step": 30, "stage": 2,
                "val": {"psnr@0": 20.0}}, run / "best.pt")
    log = [{"step": s, "stage": 1 if s <= 20 else 2, "time": 36.0 * s} for s in range(1, 31)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    monkeypatch.setattr(ship_model, "models_root", lambda: root)
    monkeypatch.setattr(sys, "argv", ["ship_model", "--checkpoint", str(run / "best.pt"), "--name", "later",
                                      "--continues", "earlier", "--data", "new clips", "old clips",
                                      "--val", str(sample_clip_path()), "--size", "128x128", "--frames", "4",
                                      "--loss", "0", "-q"])
    assert ship_model.main() == 0
    card = json.loads((root / "later" / "card.json").read_text())
    assert card["weights_sha256"] == file_sha256(root / "later" / "weights.pt")
    training = card["training"]
    assert (training["steps"], training["stage1_steps"], training["continues"]) == (7280, 3024, "earlier@0123456789abcdef")
    assert training["hours"] == pytest.approx(3.78 + 0.3)
    assert training["phases"] == ["7250 steps (3004 stage I, rest stage II), 3.78 h: earlier@0123456789abcdef",
                                  "then 30 steps (20 stage I, rest stage II), 0.30 h from its weights"]
    assert card["data"] == ["new clips", "old clips"]
    assert [row["loss"] for row in card["quality"]["rows"]] == [0.0]
    markdown = (root / "later" / "card.md").read_text()
    assert "- training: 7280 steps (3024 stage I, rest stage II), 4.08 h" in markdown
    assert "  - then 30 steps (20 stage I, rest stage II), 0.30 h from its weights" in markdown
