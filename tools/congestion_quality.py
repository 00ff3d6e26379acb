"""Picture quality of a congestion_bench run, decoded with the real model.

``tools/congestion_bench.py`` measures the transport with a codec of the real model's stream size; its
JSON keeps, for every GOP the first receiver released, which segment labels arrived and whether the
decoder decoded or held it. This replays exactly that with the real model (``mstvsc-small-c48`` by
default): the sample clip's frames of each GOP are encoded, only the segments that arrived are kept,
and the receiver's own GopDecoder decodes them (recovery network driven by the loss mask; held and
concealed GOPs repeat the last frame, as live). PSNR is per frame against the source, averaged.

    python tools/congestion_quality.py bottleneck-on.json bottleneck-off.json --from-s 10 --seconds 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from mstvsc_stream.media import FileSource, sample_clip_path
from mstvsc_stream.media.quality import psnr
from mstvsc_stream.net.gopbuffer import ReleasedGop
from mstvsc_stream.pipeline.decoding import GopDecoder
from mstvsc_stream.runtime import load_codec
from mstvsc_stream.wire import DEFAULT_SEED, GopPacketizer, SessionDescriptor, new_session_id, split_model_id

SIZE = (320, 240)
FPS = 30.0


def clip_gops(gop: int, count: int) -> list[np.ndarray]:
    """The looped sample clip at 320x240, 30 fps, cut into ``count`` GOPs, as the bench's sender read it."""
    source = FileSource(sample_clip_path(), size=SIZE, fps=FPS, loop=True)
    frames = list(itertools.islice(source, gop * count))
    source.close()
    return [np.stack(frames[i * gop:(i + 1) * gop]) for i in range(count)]


def quality(run: dict, codec, first_gop: int, gops: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    width, height = SIZE
    n_elements = codec.latent_length(height, width)
    packetizer = GopPacketizer(n_elements, DEFAULT_SEED)
    name, weights = split_model_id(codec.model_id)
    descriptor = SessionDescriptor(new_session_id(), 0, 0, width, height, round(FPS * 1000), codec.gop, n_elements,
                                   packetizer.payload_size, packetizer.n_segments, packetizer.seed_fingerprint,
                                   name, weights)  # fmt: skip
    records = [r for r in run["gops"] if first_gop <= r["counter"] < first_gop + gops]
    if not records:
        raise SystemExit("no GOPs of that span in the run")
    sources = clip_gops(codec.gop, first_gop + gops)
    decoder = GopDecoder(codec, DEFAULT_SEED)
    scores, received = [], []
    for record in records:
        original = sources[record["counter"]]
        segments = packetizer.segments(codec.encode(original))
        payloads = {label: segments[label] for label in record["labels"]}
        gop = ReleasedGop(record["counter"], replace(descriptor, gop_counter=record["counter"]), False, payloads,
                          0.0 if payloads else None)  # fmt: skip
        frames, _ = decoder.render(gop, held=record["outcome"] == "HELD")
        scores += [psnr(original[i], frames[i]) for i in range(codec.gop)]
        received.append(len(payloads) / packetizer.n_segments)
    return {"gops": len(records), "psnr_db": round(float(np.mean(scores)), 2),
            "segments_received": round(float(np.mean(received)), 3),
            "outcomes": {o: sum(r["outcome"] == o for r in records) for o in ("DECODED", "HELD", "CONCEALED")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="congestion_bench.py --json outputs")
    p.add_argument("--model", help="installed model (default: the default model)")
    p.add_argument("--from-s", type=float, default=10.0, help="first GOP at this many seconds of stream")
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args(argv)
    codec = load_codec(args.model)
    gop_s = codec.gop / FPS
    for path in args.runs:
        run = json.loads(path.read_text())
        result = quality(run, codec, int(args.from_s / gop_s), int(args.seconds / gop_s))
        print(json.dumps({"run": str(path), "feedback": run["feedback"], **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
