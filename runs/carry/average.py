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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("step", type=int)
    p.add_argument("--carry", action="store_true", help="fp16, with the held-out score, into runs/carry/")
    args = p.parse_args()
    run = ROOT / "runs" / args.run
    last = torch.load(run / "last.pt", weights_only=False)
    state = {k.removeprefix("module."): v for k, v in last["average"].items() if k != "n_averaged"}
    out = {"config": last["config"], "step": last["step"], "state_dict": state}
    if args.carry:
        rows = (json.loads(line) for line in (run / "train_log.jsonl").open() if '"val"' in line)
        out |= {"state_dict": half_precision(state), "val": next((r["val"] for r in rows if r["step"] == args.step), None)}
    torch.save(out, ROOT / "runs" / "carry" / f"{args.run}-{args.step}.pt" if args.carry else run / f"avg-{args.step}.pt")


if __name__ == "__main__":
    main()
