#!/usr/bin/env python3
"""Plot a shipped model's measured quality against segment loss from its card (no re-measuring).

    python tools/plot_card.py --model mstvsc-small-c48 --out docs/img/quality-vs-loss.png

The numbers are the ones ``tools/ship_model.py`` measured through the real wire path on validation
clips and stored in ``card.json``: the mean over the clips as a solid line, each clip dashed. The README's
plot is made with this command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mstvsc_stream.analysis.report import curves_png  # noqa: E402
from mstvsc_stream.runtime.zoo import CARD, ModelError, find_model  # noqa: E402

FPS = 30.0  # the card's kbps are for 30 fps


def card_document(card_json: dict) -> dict:
    """The card's quality section as an evaluation document :func:`curves_png` can draw."""
    quality = card_json["quality"]
    rows = [{"scheme": "mstvsc", **row} for row in quality["rows"]]
    for clip in quality.get("clips", []):
        rows += [{**row, "scheme": f"mstvsc: {clip['clip']}"} for row in clip["rows"]]
    return {"clip": f"{card_json['model_id']}, validation clips ({quality['frames_per_clip']} frames each)",
            "size": quality["size"], "fps": FPS, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or folder (default: the default model)")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    args = parser.parse_args()
    try:
        card = find_model(args.model)
    except ModelError as exc:
        print(f"plot_card: {exc}", file=sys.stderr)
        return 2
    args.out.write_bytes(curves_png(card_document(json.loads((card.folder / CARD).read_text()))))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
