"""tools/independent_decoder.py, written from docs/wire-format.md alone, decodes the project's datagrams
into the same pictures as the project's own receiver path (GopPacketizer + GopDecoder).

A small synthetic 320x240 clip of 3 GOPs is encoded with the shipped model; its datagrams (descriptor
copies, segments, end-flag copies) are made by the sender's own functions, with GOP counters 255..257 so
the 8-bit GOP number wraps. The lossy case loses every segment of the first and the last GOP (the first is
decoded from an all-lost latent, the last holds the previous frame) and about half of the rest.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from mstvsc_stream.net.gopbuffer import ReleasedGop
from mstvsc_stream.pipeline.batching import end_of_input_datagrams, gop_datagrams
from mstvsc_stream.pipeline.decoding import GopDecoder
from mstvsc_stream.runtime import load_codec
from mstvsc_stream.wire import DEFAULT_SEED, DESCRIPTOR_COPIES, GopPacketizer, SessionDescriptor, seed_fingerprint
from mstvsc_stream.wire.descriptor import split_model_id

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "independent_decoder.py"
MODEL_DIR = ROOT / "models" / "mstvsc-small-c48"
H, W, T, FIRST = 240, 320, 4, 255


def load_tool():
    """The tool as a module (it is a script under tools/, not part of the package)."""
    if "independent_decoder" not in sys.modules:
        spec = importlib.util.spec_from_file_location("independent_decoder", TOOL)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up while being made
        spec.loader.exec_module(module)
    return sys.modules["independent_decoder"]


def synthetic_clip(n: int) -> np.ndarray:
    """Moving gradients and a bright square: something with edges and motion, [n, H, W, 3] uint8."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    frames = []
    for t in range(n):
        r = 128 + 100 * np.sin((x + 6 * t) / 23.0)
        g = 128 + 100 * np.cos((y - 4 * t) / 17.0)
        b = (x + y + 10 * t) % 256
        frame = np.stack([r, g, b], axis=-1)
        frame[60 + 3 * t: 120 + 3 * t, 100 + 5 * t: 170 + 5 * t] = 240
        frames.append(frame)
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def stream():
    """The codec, the clip's descriptors and per-GOP datagrams, and the sender's packetizer."""
    codec = load_codec("mstvsc-small-c48", backend="onnx", threads=1, precision="int8")
    n = codec.latent_length(H, W)
    packetizer = GopPacketizer(n, DEFAULT_SEED)
    name, model_hash = split_model_id(codec.model_id)
    clip = synthetic_clip(3 * T)
    gops = []
    for k in range(3):
        desc = SessionDescriptor(0x0123456789ABCDEF, FIRST + k, 1_700_000_000_000_000 + k * 133_333, W, H,
                                 30000, T, n, packetizer.payload_size, packetizer.n_segments,
                                 seed_fingerprint(DEFAULT_SEED), name, model_hash)
        segments = packetizer.segments(codec.encode(clip[k * T:(k + 1) * T]))
        gops.append((desc, gop_datagrams(desc, segments, range(len(segments)), DESCRIPTOR_COPIES)))
    return codec, packetizer, gops


def project_frames(codec, gops, kept: list[list[bytes]]) -> np.ndarray:
    """What the project's receiver shows for these GOPs, given the datagrams kept of each."""
    decoder = GopDecoder(codec, DEFAULT_SEED)
    out = []
    for (desc, _), datagrams in zip(gops, kept):
        payloads = {int.from_bytes(d[1:3], "big"): d[3:] for d in datagrams if d[1:3] != b"\xff\xff"}
        gop = ReleasedGop(desc.gop_counter, desc, False, payloads, 0.0 if payloads else None)
        out.append(decoder.render(gop, held=False)[0])
    return np.concatenate(out)


def independent_frames(kept: list[list[bytes]], last: SessionDescriptor) -> np.ndarray:
    records = [(0, d) for datagrams in kept for d in datagrams] + [(0, d) for d in end_of_input_datagrams(last)]
    frames, stats, fps_milli = load_tool().decode_records(records, str(MODEL_DIR), DEFAULT_SEED, "int8")
    assert fps_milli == 30000 and stats["gops"] == 3 and not stats["drops"]
    return frames


def test_lossless_matches_project_receiver(stream) -> None:
    codec, _, gops = stream
    kept = [datagrams for _, datagrams in gops]
    ours = independent_frames(kept, gops[-1][0])
    theirs = project_frames(codec, gops, kept)
    assert ours.shape == (3 * T, H, W, 3)
    np.testing.assert_array_equal(ours, theirs)


def test_lossy_matches_project_receiver(stream) -> None:
    codec, _, gops = stream
    rng = np.random.default_rng(7)
    kept = []
    for k, (_, datagrams) in enumerate(gops):
        descriptors = [d for d in datagrams if d[1:3] == b"\xff\xff"]
        segments = [d for d in datagrams if d[1:3] != b"\xff\xff"]
        if k == 1:
            segments = [d for d in segments if rng.random() < 0.5]
            assert 0 < len(segments) < len(gops[1][1]) - DESCRIPTOR_COPIES
        else:
            segments = []  # first GOP: decoded all-lost; last GOP: holds the previous frame
        kept.append(descriptors[:1] + segments)
    ours = independent_frames(kept, gops[-1][0])
    theirs = project_frames(codec, gops, kept)
    np.testing.assert_array_equal(ours, theirs)
    assert all(np.array_equal(ours[2 * T - 1], ours[i]) for i in range(2 * T, 3 * T))


def test_tool_does_not_import_the_package() -> None:
    tree = ast.parse(TOOL.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.startswith(("mstvsc", "tests")) for name in imported), imported


def test_spec_test_vectors() -> None:
    """The independent reading of the spec reproduces its own byte-exact GOP example."""
    tool = load_tool()
    from test_wire_spec import VECTORS

    stream_ = tool.Stream(seed=DEFAULT_SEED)
    for label in ("0", "1", "5"):  # segment 1 (datagram 3) lost
        stream_.feed(bytes.fromhex(VECTORS[f"gop.datagram.{label}"]))
    codes, mask = tool.reassemble(stream_.session, stream_.gops[258].payloads, DEFAULT_SEED)
    assert codes.tolist() == [int(v) for v in VECTORS["gop.received_codes"].split()]
    assert "".join("1" if m else "0" for m in mask) == VECTORS["gop.received_mask"]
    assert tool.permutation(10, DEFAULT_SEED).tolist() == [int(v) for v in VECTORS["perm.n10"].split()]
