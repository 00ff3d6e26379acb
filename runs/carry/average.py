"""The weight average of ``runs/RUN/last.pt`` as a checkpoint ``tools/train.py --init`` and
``tools/ship_model.py`` read: ``runs/RUN/avg-STEP.pt`` (fp32), or with ``--carry`` the fp16
``runs/carry/RUN-STEP.pt`` this folder keeps between sessions, with the run's held-out score at that step.

    python runs/carry/average.py RUN STEP [--carry]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ship_model import half_precision  # noqa: E402


def averaged_state(last: dict) -> dict:
    """The weight average's parameters under the model's own names (AveragedModel prefixes ``module.``)."""
    return {k.removeprefix("module."): v for k, v in last["average"].items() if k != "n_averaged"}


def held_out_score(run: Path, step: int) -> dict | None:
    rows = (json.loads(line) for line in (run / "train_log.jsonl").open() if '"val"' in line)
    return next((row["val"] for row in rows if row["step"] == step), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("step", type=int)
    p.add_argument("--carry", action="store_true", help="fp16, with the held-out score, into runs/carry/")
    args = p.parse_args()
    run = ROOT / "runs" / args.run
    last = torch.load(run / "last.pt", weights_only=False)
    out = {"config": last["config"], "step": last["step"], "state_dict": averaged_state(last)}
    if args.carry:
        out.update(state_dict=half_precision(out["state_dict"]), val=held_out_score(run, args.step))
        torch.save(out, ROOT / "runs" / "carry" / f"{args.run}-{args.step}.pt")
    else:
        torch.save(out, run / f"avg-{args.step}.pt")


if __name__ == "__main__":
    main()
