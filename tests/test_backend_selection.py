"""Backend choice: auto prefers ONNX Runtime, falls back cleanly (and says so) without CUDA or PyTorch,
and explicit requests that cannot be met fail in one line."""

from __future__ import annotations

import dataclasses
import logging
import sys

import onnxruntime
import pytest
import torch

from mstvsc_stream.runtime import DEFAULT_MODEL, ModelError, find_model, load_codec
from mstvsc_stream.runtime.backends import choose_backend, choose_precision
from mstvsc_stream.runtime.onnx_backend import OnnxCodec, default_threads

CPU_ONLY = ["CPUExecutionProvider"]
WITH_CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture(scope="module")
def card():
    card = find_model(DEFAULT_MODEL)
    assert card.data.get("onnx"), "run tools/export_onnx.py: the default model ships ONNX graphs"
    return card


@pytest.fixture
def unexported(card):
    return dataclasses.replace(card, data={k: v for k, v in card.data.items() if k != "onnx"})


@pytest.fixture
def no_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: CPU_ONLY)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_prefers_shipped_onnx_graphs(card, caplog) -> None:
    with caplog.at_level(logging.INFO):
        assert choose_backend(card, "auto", "cpu") == ("onnx", "cpu")
    assert "backend auto: ONNX Runtime on the CPU (graphs shipped for 256x192, 320x256" in caplog.text


def test_auto_uses_onnx_without_torch_when_graphs_ship(card, no_torch) -> None:
    assert choose_backend(card, "auto", "cpu") == ("onnx", "cpu")


def test_auto_exports_on_demand_when_torch_is_there(unexported, caplog) -> None:
    with caplog.at_level(logging.INFO):
        assert choose_backend(unexported, "auto", "cpu") == ("onnx", "cpu")
    assert "graphs exported on demand" in caplog.text


def test_nothing_to_run_is_one_line(unexported, no_torch) -> None:
    with pytest.raises(ModelError, match="no inference backend"):
        choose_backend(unexported, "auto", "cpu")


def test_auto_cuda_without_any_cuda_falls_back_to_cpu(card, no_cuda, caplog) -> None:
    assert choose_backend(card, "auto", "cuda") == ("onnx", "cpu")
    assert "no usable CUDA (ONNX Runtime: no CUDA provider; PyTorch: no CUDA device); using the CPU" in caplog.text


def test_auto_cuda_without_torch_says_so(card, no_cuda, no_torch, caplog) -> None:
    assert choose_backend(card, "auto", "cuda") == ("onnx", "cpu")
    assert "PyTorch: not installed" in caplog.text


def test_auto_cuda_prefers_the_onnx_cuda_provider(card, monkeypatch) -> None:
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: WITH_CUDA)
    assert choose_backend(card, "auto", "cuda") == ("onnx", "cuda")
    assert OnnxCodec(card, "cuda").providers == WITH_CUDA


def test_auto_cuda_takes_torch_when_only_torch_has_cuda(card, no_cuda, monkeypatch, caplog) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with caplog.at_level(logging.INFO):
        assert choose_backend(card, "auto", "cuda") == ("torch", "cuda")
    assert "PyTorch on CUDA (ONNX Runtime has no CUDA provider here)" in caplog.text


def test_onnx_on_cuda_without_provider_runs_on_cpu(card, no_cuda, caplog) -> None:
    codec = load_codec(DEFAULT_MODEL, "onnx", "cuda")
    assert codec.backend == "onnx-cpu" and codec.providers == CPU_ONLY
    assert "no CUDAExecutionProvider" in caplog.text


@pytest.mark.parametrize("backend, device, message", [
    ("torch", "cuda", "PyTorch sees no CUDA device"),
    ("tensorrt", "cpu", "unknown backend 'tensorrt'"),
    ("onnx", "tpu", "unknown device 'tpu'"),
])
def test_impossible_requests_are_one_line(card, no_cuda, backend: str, device: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        choose_backend(card, backend, device)


def test_explicit_torch_without_torch_is_one_line(card, no_torch) -> None:
    with pytest.raises(ModelError, match=r"needs PyTorch: pip install 'mstvsc-stream\[train\]'"):
        choose_backend(card, "torch", "cpu")


def test_explicit_torch_loads_the_torch_codec() -> None:
    assert load_codec(DEFAULT_MODEL, "torch").backend == "torch-cpu"


def test_threads_default_and_override(monkeypatch) -> None:
    monkeypatch.delenv("MSTVSC_THREADS", raising=False)
    assert 1 <= default_threads() <= 8
    monkeypatch.setenv("MSTVSC_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("MSTVSC_THREADS", "many")
    with pytest.raises(ModelError, match="MSTVSC_THREADS must be a positive integer"):
        default_threads()


def test_auto_precision_is_int8_for_onnx_on_the_cpu(card, caplog) -> None:
    with caplog.at_level(logging.INFO):
        assert choose_precision(card, "onnx", "cpu", "auto") == "int8"
    assert "precision auto: int8" in caplog.text
    assert load_codec(DEFAULT_MODEL, "onnx").backend == "onnx-cpu-int8"


@pytest.mark.parametrize("backend, device", [("onnx", "cuda"), ("torch", "cpu"), ("torch", "cuda")])
def test_auto_precision_is_fp32_where_int8_does_not_run(card, backend: str, device: str) -> None:
    assert choose_precision(card, backend, device, "auto") == "fp32"


def test_auto_precision_without_int8_graphs_or_a_way_to_export_them_is_fp32(card, no_torch) -> None:
    fp32_only = dataclasses.replace(card, data={**card.data, "onnx": {
        name: digest for name, digest in card.data["onnx"].items() if ".int8." not in name}})
    assert choose_precision(fp32_only, "onnx", "cpu", "auto") == "fp32"
    assert choose_precision(card, "onnx", "cpu", "auto") == "int8"  # shipped: no export needed


@pytest.mark.parametrize("backend, device, precision, message", [
    ("torch", "cpu", "int8", "int8 runs on ONNX Runtime's CPU provider only"),
    ("onnx", "cuda", "int8", "int8 runs on ONNX Runtime's CPU provider only"),
    ("onnx", "cpu", "fp16", "unknown precision 'fp16'"),
])
def test_impossible_precisions_are_one_line(card, backend: str, device: str, precision: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        choose_precision(card, backend, device, precision)


def test_explicit_fp32_onnx_codec() -> None:
    assert load_codec(DEFAULT_MODEL, "onnx", precision="fp32").backend == "onnx-cpu"
