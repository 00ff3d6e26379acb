"""Export the PyTorch model to fixed-size ONNX graphs and check them against PyTorch (needs torch, onnx).

The encoder graph ends in the integer codes the wire carries (rounding inside), the decoder graph starts
from codes plus the received mask (loss recovery inside), so a backend only pads, flattens and converts
to uint8 around them (:mod:`~mstvsc_stream.runtime.layout`). The int8 graphs are the fp32 graphs with
ONNX Runtime's dynamic quantisation applied to every matrix product (weights int8 per tensor, activations
uint8 per run): nothing to calibrate, and the codes stay 3-bit integers, so an int8 sender and an fp32
receiver (or the reverse) interoperate. Initializers of every graph written in one go are de-duplicated
into one shared weights blob: the weights are the same at every frame size, so a folder of N sizes
holds one copy of them instead of N (plus one int8 copy of the matrices). The decoder's convolution weights
(the loss recovery's, two thirds of the default model's parameters, which the int8 graphs share) are stored
in fp16 and cast to fp32 inside the graph, which ONNX Runtime folds once when it loads it. That keeps the
default model's blob under the repository's 30 MB per file; the model trained under bf16 autocast (coarser
still), and the recovery only fills lost elements, so a fully received GOP decodes exactly as before. The
encoder keeps fp32 weights: its outputs are rounded to codes, and rounded weights would flip some. Every
other weight that fp16 holds exactly (all of them, for a model shipped in fp16) is stored in fp16 as well,
which changes nothing computed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from ..model import swin
from ..model.swin import SwinBlock, Window, WindowAttention
from ..model.mstvsc import MSTVSC, Latents
from .base import Codec
from .layout import join_codes, pad_frames, split_codes
from .onnx_graphs import (
    CODES, ENCODER, FP32, FRAMES, GRAPH_FORMAT, INT8, META_FORMAT, META_WEIGHTS, PARTS, PRECISIONS, RECEIVED,
    WEIGHTS_BLOB, cache_folder, graph_name, size_text,
)
from .torch_backend import load_torch_model
from .zoo import CARD, ModelCard, file_sha256

log = logging.getLogger(__name__)

QUANTIZED_OPS = ["MatMul", "Gemm"]
_INLINE_BYTES = 1024  # smaller initializers (norm scales, shapes) stay inside the graph file
_ALIGN = 64


class EncoderGraph(nn.Module):
    """Padded float frames ``[1, T, Hp, Wp, 3]`` -> int8 common and individual codes."""

    def __init__(self, model: MSTVSC) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.model.encode(frames)
        return y.common.to(torch.int8), y.individual.to(torch.int8)


class DecoderGraph(nn.Module):
    """Zero-filled codes and 0/1 received masks -> padded float frames in [0, 1]."""

    def __init__(self, model: MSTVSC) -> None:
        super().__init__()
        self.model = model

    def forward(self, codes_common: torch.Tensor, codes_individual: torch.Tensor,
                received_common: torch.Tensor, received_individual: torch.Tensor) -> torch.Tensor:
        y = Latents(codes_common * received_common, codes_individual * received_individual)
        return self.model.decode(y, Latents(received_common, received_individual))


def _example_inputs(model: MSTVSC, part: str, padded: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    height, width = padded
    if part == ENCODER:
        return (torch.rand(1, model.cfg.gop, height, width, 3),)
    common, individual = model.cfg.latent_shapes(height, width)
    return tuple(torch.zeros(1, *shape) for shape in (common, individual, common, individual))


class SplitProjectionAttention(nn.Module):
    """:class:`~mstvsc_stream.model.swin.WindowAttention` as exported: the same weights, laid out for
    ONNX Runtime on a CPU.

    Training keeps one ``qkv`` projection (one large matrix product is fastest in PyTorch); exported,
    its output must be split and transposed into per-head q, k and v, which on the largest stage costs as
    much as a matrix product. Here q, k and v are three projections holding the rows of ``qkv`` (the
    softmax scale folded into q's), so single-head windows need no split and no transpose at all, and
    ONNX Runtime quantises the three activations once (MatMulIntegerToFloat).
    """

    def __init__(self, attn: WindowAttention) -> None:
        super().__init__()
        self.heads, self.original = attn.heads, attn
        width = attn.proj.in_features
        weight, bias = attn.qkv.weight.detach(), attn.qkv.bias.detach()
        self.q, self.k, self.v = (nn.Linear(width, width) for _ in range(3))
        for i, (linear, scale) in enumerate(((self.q, attn.scale), (self.k, 1.0), (self.v, 1.0))):
            linear.weight.data = weight[i * width : (i + 1) * width] * scale
            linear.bias.data = bias[i * width : (i + 1) * width] * scale

    def forward(self, windows: torch.Tensor, b: int, win: Window, mask: torch.Tensor | None) -> torch.Tensor:
        n_win_b, n, c = windows.shape
        heads, head_dim = self.heads, c // self.heads
        shape = (b, n_win_b // b, n, heads, head_dim)
        if heads == 1:  # [B, nW, 1, N, hd] is the projection's own layout
            q, k, v = (p(windows).view(b, n_win_b // b, 1, n, head_dim) for p in (self.q, self.k, self.v))
            k_t = k.transpose(-2, -1)  # folded into the matrix product by ONNX Runtime
        else:
            q, v = (p(windows).view(shape).transpose(2, 3) for p in (self.q, self.v))
            k_t = self.k(windows).view(shape).permute(0, 1, 3, 4, 2)
        attn = torch.matmul(q, k_t) + self.original.position_bias(win, mask, n).to(q.dtype)
        out = torch.matmul(attn.softmax(-1), v)
        out = out.reshape(n_win_b, n, c) if heads == 1 else out.transpose(2, 3).reshape(n_win_b, n, c)
        return self.original.proj(out)


# Tokens per tile: the MLP's hidden activations of a 2,048-token tile of the first stage (0.75 MiB) and its
# attention scores (0.5 MiB) stay in a 2 MiB L2 cache between operators. Measured on the 320x256 int8
# graphs, one thread, interleaved, against the graphs before issue 15: 2,048-token tiles 1.43-1.46x,
# 4,096 1.24-1.31x, 8,192 1.24-1.32x, untiled 1.19-1.22x (docs/models.md).
TILE_TOKENS = 2048
# Every tile is a copy of the block in the graph, and exporting takes longer than linearly in their number
# (a 640x512 size: 3 min at 32 tiles per block, 5.5 min at 64), so larger grids get larger tiles.
MAX_TILES = 32


def _tile_windows(windows: int, tokens: int, budget: int) -> int:
    """Windows per tile: the largest divisor of ``windows`` whose tile holds at most ``budget`` tokens."""
    most = max(1, budget // tokens, -(-windows // MAX_TILES))
    return max(d for d in range(1, min(windows, most) + 1) if windows % d == 0)


class TiledBlock(nn.Module):
    """:class:`~mstvsc_stream.model.swin.SwinBlock` as exported: the whole block in window order, a tile
    of windows at a time.

    Norms, projections, the MLP and the residual adds act on each token alone, so they may run in window
    order as well as attention does: the grid is partitioned once, each tile of windows runs the whole
    block, and the tiles are merged once. On the first stage every separate pass (bias add, softmax,
    norm, GELU, dynamic quantisation) over the full tensors (8 MiB of tokens, 21 MiB of attention scores,
    32 MiB of MLP activations at 320x256) went to memory; over a tile they stay in the L2 cache. The int8
    graphs quantise each tile's activations with their own range (slightly closer to fp32). Grids that
    need padding keep the block as it is (its padded tokens are zeros after the norm, not before).
    """

    def __init__(self, block: SwinBlock, budget: int) -> None:
        super().__init__()
        self.block, self.budget = block, budget

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = self.block
        b, d, h, w, _ = x.shape
        win, shifts = swin._effective(block.window, (d, h, w), block.shift)
        if any((-n) % s for n, s in zip((d, h, w), win)):
            return block(x)
        mask = None
        if any(shifts):
            x = torch.roll(x, shifts=tuple(-s for s in shifts), dims=(1, 2, 3))
            mask = swin._shift_mask((d, h, w), win, shifts).to(x.device)
        windows = swin._partition(x, win)
        per_batch, n = windows.shape[0] // b, windows.shape[1]
        step = _tile_windows(per_batch, n, self.budget)
        tiles = []
        for start in range(0, windows.shape[0], step):
            tile = windows[start : start + step]
            tile_mask = None if mask is None else mask[start % per_batch : start % per_batch + step]
            tile = tile + block.attn(block.norm1(tile), 1, win, tile_mask)
            tiles.append(tile + block.ffn(block.norm2(tile)))
        y = swin._merge(torch.cat(tiles) if len(tiles) > 1 else tiles[0], win, b, d, h, w)
        return torch.roll(y, shifts=shifts, dims=(1, 2, 3)) if any(shifts) else y


@contextlib.contextmanager
def _export_layout(model: MSTVSC) -> Iterator[None]:
    """Swaps every block's attention for :class:`SplitProjectionAttention`, and every block for a
    :class:`TiledBlock` around it, while exporting."""
    blocks = [m for m in model.modules() if isinstance(m, SwinBlock) and isinstance(m.attn, WindowAttention)]
    originals = [block.attn for block in blocks]
    parents = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if isinstance(child, SwinBlock)]
    try:
        for block in blocks:
            block.attn = SplitProjectionAttention(block.attn)
        for parent, name, child in parents:
            setattr(parent, name, TiledBlock(child, TILE_TOKENS))
        yield
    finally:
        for parent, name, child in parents:
            setattr(parent, name, child)
        for block, attn in zip(blocks, originals):
            block.attn = attn


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter narrates every step on stdout and warns about unrelated optional packages."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        exporter_log.setLevel(level)


def _clear_swin_caches() -> None:
    swin._relative_index.cache_clear()
    swin._shift_mask.cache_clear()


def _export_part(model: MSTVSC, part: str, padded: tuple[int, int]) -> onnx.ModelProto:
    module = EncoderGraph(model) if part == ENCODER else DecoderGraph(model)
    inputs, outputs = ([FRAMES], ["common", "individual"]) if part == ENCODER else ([*CODES, *RECEIVED], [FRAMES])
    # swin.py memoises the index and mask tensors it builds per window. Cleared before tracing, the
    # graph is the same whatever ran earlier in this process; cleared after, the fake tensors built
    # while tracing never reach an eager call.
    _clear_swin_caches()
    with _quiet_exporter(), _export_layout(model):
        try:
            program = torch.onnx.export(module.eval(), _example_inputs(model, part, padded), dynamo=True,
                                        verbose=False, input_names=inputs, output_names=outputs)
        finally:
            _clear_swin_caches()
    proto = program.model_proto
    _fold_transposed_weights(proto.graph)
    if part != ENCODER:
        _store_in_half(proto.graph, _convolution_weights(proto.graph))
    for node in proto.graph.node:  # source locations of the traced Python: half the file, no use at run time
        del node.metadata_props[:]
        node.doc_string = ""
    return proto


def _fold_transposed_weights(graph: onnx.GraphProto) -> None:
    """Replace ``Transpose(initializer)`` nodes by the transposed initializer. The exporter leaves them in
    when a weight serves several matrix products (one per tile), and the quantiser only quantises a
    product whose weight is an initializer."""
    inits = {tensor.name: tensor for tensor in graph.initializer}
    for node in [n for n in graph.node if n.op_type == "Transpose" and n.input[0] in inits]:
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        array = numpy_helper.to_array(inits[node.input[0]])
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array.transpose(perm)), node.output[0]))
        graph.node.remove(node)
    used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)


def _large_float_weights(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    return [t for t in graph.initializer
            if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) * 4 >= _INLINE_BYTES]


def _convolution_weights(graph: onnx.GraphProto) -> set[str]:
    convs = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    return convs & {t.name for t in _large_float_weights(graph)}


def _exact_in_half(graph: onnx.GraphProto) -> set[str]:
    """The fp32 weights that fp16 holds exactly (all of a model shipped in fp16 but the folded q scale)."""
    def exact(array: np.ndarray) -> bool:
        return np.array_equal(array.astype(np.float16).astype(np.float32), array)

    return {t.name for t in _large_float_weights(graph) if exact(numpy_helper.to_array(t))}


def _store_in_half(graph: onnx.GraphProto, names: set[str]) -> None:
    """Store the named fp32 initializers as fp16, each cast back to fp32 at the top of the graph (see
    the module docstring). Compute stays fp32."""
    casts = []
    for tensor in [t for t in graph.initializer if t.name in names]:
        half = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), f"{tensor.name}.fp16")
        graph.initializer.remove(tensor)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [tensor.name], to=onnx.TensorProto.FLOAT))
    for position, cast in enumerate(casts):  # before every node, so the graph stays in topological order
        graph.node.insert(position, cast)


def _quantized(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The int8 twin of a float graph (see the module docstring)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = onnx.ModelProto()
    source.CopyFrom(proto)  # the quantiser rewrites its input in place
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "int8.onnx"
        logging.disable(logging.WARNING)  # it advises pre-processing on the root logger, which buys nothing here
        try:
            quantize_dynamic(source, target, op_types_to_quantize=QUANTIZED_OPS, weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        return onnx.load(target)


class _SharedBlob:
    """Moves large initializers of several graphs into one file, storing identical tensors once."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._offsets: dict[bytes, int] = {}

    def externalize(self, proto: onnx.ModelProto) -> None:
        for tensor in proto.graph.initializer:
            raw = numpy_helper.to_array(tensor).tobytes()
            if len(raw) < _INLINE_BYTES:
                continue
            key = hashlib.sha256(raw).digest()
            if key not in self._offsets:
                self.data += bytes(-len(self.data) % _ALIGN)
                self._offsets[key] = len(self.data)
                self.data += raw
            for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
                tensor.ClearField(field)
            del tensor.external_data[:]
            for k, v in (("location", WEIGHTS_BLOB), ("offset", self._offsets[key]), ("length", len(raw))):
                tensor.external_data.add(key=k, value=str(v))
            tensor.data_location = onnx.TensorProto.EXTERNAL


def export_graphs(model: MSTVSC, card: ModelCard, sizes: list[tuple[int, int]], folder: Path,
                  precisions: tuple[str, ...] = PRECISIONS, on_step: Callable[[str], None] | None = None
                  ) -> dict[str, str]:
    """Write encoder and decoder graphs in each precision for each padded ``(height, width)``, and their
    shared weights blob, into ``folder``; return ``{file name: sha256}`` for all of them (the card's
    ``"onnx"`` mapping). ``on_step`` hears of each part exported ("encoder 320x256"), for progress."""
    model = model.eval().cpu()
    blob = _SharedBlob()
    graphs: dict[str, onnx.ModelProto] = {}
    for padded in sizes:
        for part in PARTS:
            fp32 = _export_part(model, part, padded)
            # quantised before the blob takes the float weights out of the graph
            protos = {p: fp32 if p == FP32 else _quantized(fp32) for p in precisions}
            for precision, proto in protos.items():
                _store_in_half(proto.graph, _exact_in_half(proto.graph))
                for key, value in ((META_WEIGHTS, card.weights_sha256), (META_FORMAT, GRAPH_FORMAT)):
                    proto.metadata_props.add(key=key, value=value)
                blob.externalize(proto)
                graphs[graph_name(part, padded, precision)] = proto
            log.info("exported %s %s", part, size_text(*padded))
            if on_step is not None:
                on_step(f"{part} {size_text(*padded)}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, proto in graphs.items():
        onnx.save_model(proto, folder / name)
    (folder / WEIGHTS_BLOB).write_bytes(blob.data)
    return {name: file_sha256(folder / name) for name in sorted([*graphs, WEIGHTS_BLOB])}


def export_to_cache(card: ModelCard, padded: tuple[int, int], precision: str = FP32) -> Path:
    """Export one padded size and precision into the user cache (atomically: a whole folder or nothing)."""
    target = cache_folder(card, padded, precision)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".export-"))
    try:
        export_graphs(load_torch_model(card), card, [padded], staging, (precision,))
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # otherwise a concurrent export finished first: use that one
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def install_graphs(staging: Path, card: ModelCard, hashes: dict[str, str]) -> None:
    """Move checked graphs into the model folder, drop graphs of sizes no longer shipped, list the new
    ones in card.json. Graphs of other sizes would point into the replaced blob, so none may stay."""
    for old in card.folder.glob("*.onnx"):
        if old.name.split("-")[0] in PARTS and old.name not in hashes:
            old.unlink()
    for name in hashes:
        os.replace(staging / name, card.folder / name)
    path = card.folder / CARD
    data = json.loads(path.read_text())
    data["onnx"] = hashes
    path.write_text(json.dumps(data, indent=2) + "\n")


class GraphCodec(Codec, Protocol):
    """What :func:`check_parity` needs of the codec under test: an
    :class:`~mstvsc_stream.runtime.onnx_backend.OnnxCodec`, named by shape only so this module does not
    import the backend (which imports this one lazily to export missing sizes)."""

    precision: str

    def decode_float(self, codes: np.ndarray, received: np.ndarray, height: int, width: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ParityLimits:
    """What a precision must achieve against PyTorch (decoded pixels in [0, 1], before uint8 rounding)."""

    code_agreement: float  # fraction of codes equal to PyTorch's
    max_code_step: int  # largest difference between a code and PyTorch's
    decoder_max_abs: float  # bound on |error| of every decoded value but the outliers
    decoder_outliers: float  # share of decoded values allowed past that bound (MoE routing ties)
    decoder_rms: float  # root mean square over all values


PARITY_LIMITS = {
    # the rest are ties: the same numbers summed in another order round a code the other way, or send a
    # token to the other of two equally scored MoE experts (then the pixels that token decodes to differ)
    FP32: ParityLimits(code_agreement=0.999, max_code_step=1, decoder_max_abs=1e-3, decoder_outliers=1e-3,
                       decoder_rms=1e-3),
    # 8-bit matrix products move some latents across a rounding boundary (rarely two); 4e-3 RMS on the
    # decoded pixels is 48 dB, far below the codec's own error (measured: ~0.01 dB PSNR cost)
    INT8: ParityLimits(code_agreement=0.93, max_code_step=2, decoder_max_abs=0.15, decoder_outliers=1e-3,
                       decoder_rms=4e-3),
}


@dataclass(frozen=True)
class Parity:
    """How closely the ONNX graphs reproduce PyTorch on some GOPs."""

    size: str
    precision: str
    elements: int
    code_mismatch: float  # fraction of code elements that differ
    max_code_step: int  # largest difference between differing codes (1 for a rounding tie)
    decoder_max_abs: float  # all elements received
    decoder_max_abs_lossy: float  # half the elements lost (the recovery networks fill them)
    decoder_outliers: float  # share of decoded values past the precision's bound (the larger case)
    decoder_rms: float  # the larger of the two cases

    @property
    def ok(self) -> bool:
        limits = PARITY_LIMITS[self.precision]
        return (1 - self.code_mismatch >= limits.code_agreement and self.max_code_step <= limits.max_code_step
                and self.decoder_outliers <= limits.decoder_outliers and self.decoder_rms <= limits.decoder_rms)


@torch.inference_mode()
def check_parity(model: MSTVSC, codec: GraphCodec, frames: np.ndarray, seed: int = 0) -> Parity:
    """Encode ``frames`` (whole GOPs) with both, then decode PyTorch's codes with both, fully received
    and with half the elements lost; compare codes exactly and decoded floats before uint8 rounding."""
    model = model.eval().cpu()
    encoder, decoder = EncoderGraph(model), DecoderGraph(model)
    rng = np.random.default_rng(seed)
    gop, (height, width) = codec.gop, frames.shape[1:3]
    bound = PARITY_LIMITS[codec.precision].decoder_max_abs
    mismatched, total, step, worst, rms, outliers = 0, 0, 0, [0.0, 0.0], 0.0, 0.0
    for start in range(0, len(frames) - gop + 1, gop):
        group = frames[start : start + gop]
        ref = join_codes(*(c.numpy() for c in encoder(torch.from_numpy(pad_frames(group)))))
        diff = np.abs(codec.encode(group).astype(np.int16) - ref)
        mismatched, total, step = mismatched + int((diff > 0).sum()), total + ref.size, max(step, int(diff.max()))
        for i, received in enumerate((np.ones(ref.size, bool), rng.random(ref.size) >= 0.5)):
            codes = np.where(received, ref, 0).astype(np.int8)
            feeds = [torch.from_numpy(a) for pair in (split_codes(model.cfg, codes, height, width),
                                                      split_codes(model.cfg, received, height, width)) for a in pair]
            error = codec.decode_float(codes, received, height, width) - decoder(*feeds).numpy()
            worst[i] = max(worst[i], float(np.abs(error).max()))
            rms = max(rms, float(np.sqrt(np.mean(np.square(error, dtype=np.float64)))))
            outliers = max(outliers, float(np.mean(np.abs(error) > bound)))
    return Parity(size_text(height, width), codec.precision, total, mismatched / total, step, worst[0], worst[1],
                  outliers, rms)
