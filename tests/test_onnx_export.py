"""ONNX export of the real network (tiny config, random weights): parity with PyTorch in fp32 and int8,
the shared weights blob, the user cache, shipping into a model folder, and refusing graphs of other
weights."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from tool_modules import load_tool

from mstvsc_stream.media import read_frames, sample_clip_path
from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.model.mstvsc import MSTVSC
from mstvsc_stream.model.swin import Mlp, SwinBlock
from mstvsc_stream.runtime import ModelError, find_model
from mstvsc_stream.runtime import onnx_export
from mstvsc_stream.runtime.onnx_backend import OnnxCodec
from mstvsc_stream.runtime.onnx_export import PARITY_LIMITS, _SharedBlob, check_parity, install_graphs
from mstvsc_stream.runtime.onnx_graphs import WEIGHTS_BLOB, cache_folder, shipped_sizes
from mstvsc_stream.runtime.torch_backend import load_torch_model
from mstvsc_stream.runtime.zoo import file_sha256

TINY = CONFIGS["tiny-test"]
SIZE = (128, 128)  # (height, width), already a multiple of 64


def write_model_folder(folder: Path, model: MSTVSC) -> None:
    folder.mkdir(parents=True)
    torch.save({"config": model.cfg.to_dict(), "state_dict": model.state_dict()}, folder / "weights.pt")
    card = {"name": "tiny-test", "config": model.cfg.to_dict(), "weights_sha256": file_sha256(folder / "weights.pt")}
    (folder / "card.json").write_text(json.dumps(card))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny model folder whose graphs were exported on demand into a private cache (one export for
    the whole module: exporting is the slow part)."""
    torch.manual_seed(0)
    model = MSTVSC(TINY).eval()
    root = tmp_path_factory.mktemp("onnx")
    write_model_folder(root / "tiny", model)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MSTVSC_CACHE_DIR", str(root / "cache"))
        card = find_model(str(root / "tiny"))
        OnnxCodec(card, threads=1).prepare(*SIZE)
    return model, card, root


@pytest.fixture
def cache(tiny, monkeypatch):
    monkeypatch.setenv("MSTVSC_CACHE_DIR", str(tiny[2] / "cache"))


def test_exported_graphs_match_pytorch_on_real_frames(tiny, cache) -> None:
    model, card, _ = tiny
    frames = read_frames(sample_clip_path(), n=2 * TINY.gop, size=SIZE[::-1])
    parity = check_parity(model, OnnxCodec(card, threads=1), frames)
    assert parity.elements == 2 * TINY.latent_length(*SIZE)
    assert parity.code_mismatch <= 0.001 and parity.max_code_step <= 1
    assert parity.decoder_max_abs <= 1e-3 and parity.decoder_max_abs_lossy <= 1e-3
    assert parity.ok


def test_int8_graphs_are_quantised_and_close(tiny, cache) -> None:
    """Random weights: the mechanics (quantised ops, own cache folder, codes close). How close a trained
    model must be is the next test's business; an untrained recovery net amplifies any difference."""
    model, card, _ = tiny
    frames = read_frames(sample_clip_path(), n=2 * TINY.gop, size=SIZE[::-1])
    codec = OnnxCodec(card, threads=1, precision="int8")
    parity = check_parity(model, codec, frames)
    assert codec.backend == "onnx-cpu-int8" and parity.precision == "int8"
    limits = PARITY_LIMITS["int8"]
    assert 0 < parity.code_mismatch <= 1 - limits.code_agreement and parity.max_code_step <= limits.max_code_step
    assert parity.decoder_max_abs <= limits.decoder_max_abs
    for part in ("encoder", "decoder"):
        proto = onnx.load(cache_folder(card, SIZE, "int8") / f"{part}-128x128.int8.onnx", load_external_data=False)
        assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {node.op_type for node in proto.graph.node}
        # every product with a weight is quantised, the tiles' shared weights included
        weights = {tensor.name for tensor in proto.graph.initializer}
        assert not [n.name for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
        assert not [n.name for n in proto.graph.node if n.op_type == "Transpose" and n.input[0] in weights]


@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("grid", [(1, 32, 48), (2, 20, 24)])  # the second pads (20 is no multiple of 8)
def test_the_tiled_block_computes_what_the_block_does(shift: bool, heads: int, grid: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    block = SwinBlock(16, heads, (1, 8, 8), shift, Mlp(16, 4.0)).eval()
    x = torch.randn(1, *grid, 16)
    with torch.no_grad():
        expected = block(x)
        tiled = onnx_export.TiledBlock(block, budget=256)  # 4 windows of 64 tokens per tile
        assert torch.allclose(tiled(x), expected, atol=1e-5)
        block.attn = onnx_export.SplitProjectionAttention(block.attn)
        assert torch.allclose(tiled(x), expected, atol=1e-5)


def test_tiles_divide_the_windows_within_the_budget_and_the_cap() -> None:
    assert onnx_export._tile_windows(640, 64, 2048) == 32  # 20 tiles of 32 windows
    assert onnx_export._tile_windows(20, 64, 2048) == 20  # one tile
    assert onnx_export._tile_windows(30, 64, 256) == 3  # 4 windows would not divide 30
    assert onnx_export._tile_windows(5120, 64, 2048) == 5120 // onnx_export.MAX_TILES  # capped


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_shipped_graphs_of_the_default_model_pass_parity(precision: str) -> None:
    card = find_model(None)
    frames = read_frames(sample_clip_path(), n=card.config.gop, size=(320, 240))
    parity = check_parity(load_torch_model(card), OnnxCodec(card, threads=1, precision=precision), frames)
    assert parity.ok, parity


def test_cached_graphs_are_reused_and_serve_every_size_that_pads_alike(tiny, cache, monkeypatch) -> None:
    _, card, _ = tiny
    monkeypatch.setattr(onnx_export, "export_to_cache", lambda *a: pytest.fail("exported again"))
    codec = OnnxCodec(card, threads=1)
    frames = np.random.default_rng(0).integers(0, 256, (TINY.gop, 100, 120, 3), dtype=np.uint8)  # pads to 128x128
    codes = codec.encode(frames)
    assert codes.dtype == np.int8 and codes.shape == (TINY.latent_length(100, 120),)
    assert codes.min() >= -4 and codes.max() <= 3
    decoded = codec.decode(codes, np.ones(codes.size, bool), 100, 120)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8


def test_weights_live_once_in_the_blob(tiny, cache) -> None:
    _, card, _ = tiny
    graphs = cache_folder(card, SIZE)
    blob = (graphs / WEIGHTS_BLOB).stat().st_size
    model = MSTVSC(TINY)
    conv_weights = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    parameter_bytes = sum(p.numel() * 4 for p in model.parameters()) - sum(w.numel() * 2 for w in conv_weights)
    assert parameter_bytes <= blob < 2 * parameter_bytes  # all weights, once (plus folded index tables)
    for graph in graphs.glob("*.onnx"):
        proto = onnx.load(graph, load_external_data=False)
        inline = sum(len(t.raw_data) for t in proto.graph.initializer)
        assert inline < 0.1 * blob, f"{graph.name} carries its own weights"


def test_decoder_convolution_weights_are_stored_in_half_and_computed_in_float(tiny, cache) -> None:
    _, card, _ = tiny
    proto = onnx.load(cache_folder(card, SIZE) / "decoder-128x128.onnx", load_external_data=False)
    stored = {t.name: t.data_type for t in proto.graph.initializer}
    cast_from = {n.output[0]: (n.input[0], n.attribute[0].i) for n in proto.graph.node if n.op_type == "Cast"}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert convs  # the recovery networks
    for conv in convs:
        source, to = cast_from[conv.input[1]]
        assert to == TensorProto.FLOAT and stored[source] == TensorProto.FLOAT16
    encoder = onnx.load(cache_folder(card, SIZE) / "encoder-128x128.onnx", load_external_data=False)
    float_weights = {t.name for t in encoder.graph.initializer if t.data_type == TensorProto.FLOAT}
    assert all(n.input[1] in float_weights for n in encoder.graph.node if n.op_type == "Conv")  # codes stay exact


def test_a_model_shipped_in_half_is_stored_in_half_and_computed_exactly(tmp_path, monkeypatch) -> None:
    """tools/ship_model.py stores fp16 weights: the graphs then hold (nearly) every weight in fp16 at no cost
    in parity, since fp16 holds those values exactly; only the q projections (scale folded in) stay fp32."""
    torch.manual_seed(1)
    model = MSTVSC(TINY).eval()
    model.load_state_dict(load_tool("ship_model").half_precision(model.state_dict()))
    write_model_folder(tmp_path / "half", model)
    monkeypatch.setenv("MSTVSC_CACHE_DIR", str(tmp_path / "cache"))
    card = find_model(str(tmp_path / "half"))
    codec = OnnxCodec(card, threads=1)
    frames = read_frames(sample_clip_path(), n=TINY.gop, size=SIZE[::-1])
    parity = check_parity(load_torch_model(card), codec, frames)
    assert parity.code_mismatch == 0 and parity.decoder_max_abs_lossy <= 1e-5
    for part in ("encoder", "decoder"):
        proto = onnx.load(cache_folder(card, SIZE) / f"{part}-128x128.onnx", load_external_data=False)
        sizes = {t.data_type: 0 for t in proto.graph.initializer}
        for t in proto.graph.initializer:
            sizes[t.data_type] += int(np.prod(t.dims))
        assert sizes[TensorProto.FLOAT16] > 5 * sizes.get(TensorProto.FLOAT, 0), part


def test_identical_tensors_of_several_graphs_are_stored_once(tmp_path) -> None:
    weight = np.arange(1024, dtype=np.float32).reshape(32, 32)

    def graph(name: str) -> onnx.ModelProto:
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        g = helper.make_graph([node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
                              [numpy_helper.from_array(weight, "w")])
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    blob = _SharedBlob()
    protos = [graph("a"), graph("b")]
    for proto in protos:
        blob.externalize(proto)
    assert len(blob.data) == weight.nbytes
    (tmp_path / WEIGHTS_BLOB).write_bytes(blob.data)
    x = np.ones((1, 32), np.float32)
    for i, proto in enumerate(protos):
        onnx.save_model(proto, tmp_path / f"{i}.onnx")
        session = ort.InferenceSession(str(tmp_path / f"{i}.onnx"), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"x": x})[0], x @ weight)


@pytest.fixture
def shipped(tiny, cache, tmp_path):
    """The tiny model with its graphs installed beside the weights, as the export tool ships them."""
    _, card, _ = tiny
    folder = tmp_path / "tiny"
    shutil.copytree(card.folder, folder)
    (folder / "encoder-999x999.onnx").write_bytes(b"graph of a size no longer shipped")
    copy = tmp_path / "staging"
    shutil.copytree(cache_folder(card, SIZE), copy)
    hashes = {p.name: file_sha256(p) for p in copy.iterdir()}
    install_graphs(copy, find_model(str(folder)), hashes)
    return find_model(str(folder)), hashes


def test_install_lists_graphs_in_the_card_and_drops_stale_ones(shipped) -> None:
    card, hashes = shipped
    assert card.data["onnx"] == hashes and card.data["name"] == "tiny-test"
    for name, digest in card.data["onnx"].items():
        assert file_sha256(card.folder / name) == digest
    assert not (card.folder / "encoder-999x999.onnx").exists()
    assert shipped_sizes(card) == [SIZE]


def test_other_sizes_without_pytorch_are_refused_naming_the_shipped_ones(shipped, tmp_path, monkeypatch) -> None:
    card, _ = shipped
    monkeypatch.setenv("MSTVSC_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setitem(sys.modules, "mstvsc_stream.runtime.onnx_export", None)  # as if torch were missing
    codec = OnnxCodec(card, threads=1)
    codec.prepare(*SIZE)  # shipped: fine
    frames = np.zeros((TINY.gop, 200, 200, 3), np.uint8)
    with pytest.raises(ModelError, match=r"200x200 frames \(padded 256x256\); shipped: 128x128; .*needs PyTorch"):
        codec.encode(frames)


def test_graphs_of_other_weights_are_refused(shipped) -> None:
    card, _ = shipped
    other = dataclasses.replace(card, weights_sha256="0" * 64)
    with pytest.raises(ModelError, match="not exported from this model's weights"):
        OnnxCodec(other, threads=1).prepare(*SIZE)


def test_a_missing_weights_blob_is_one_line(shipped) -> None:
    card, _ = shipped
    (card.folder / WEIGHTS_BLOB).unlink()
    with pytest.raises(ModelError, match=f"cannot load .*encoder-128x128.onnx: .*{WEIGHTS_BLOB}"):
        OnnxCodec(card, threads=1).prepare(*SIZE)
