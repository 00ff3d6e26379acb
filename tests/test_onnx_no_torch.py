"""The streaming path runs without PyTorch: a fresh interpreter in which `import torch` fails encodes and
decodes a GOP with the default model's shipped graphs (int8 by default, fp32 on request), and its codes
are PyTorch's (all but rounding ties for fp32, within the int8 parity limit for int8)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mstvsc_stream.media import read_frames, sample_clip_path
from mstvsc_stream.runtime import DEFAULT_MODEL, load_codec
from mstvsc_stream.runtime.onnx_export import PARITY_LIMITS

WIDTH, HEIGHT = 320, 240

CHILD = textwrap.dedent("""
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, NoTorch())

    import numpy as np
    from mstvsc_stream.media import read_frames, sample_clip_path
    from mstvsc_stream.runtime import load_codec

    out, width, height, precision = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    codec = load_codec(None, "auto", precision=precision)
    frames = read_frames(sample_clip_path(), n=codec.gop, size=(width, height))
    codes = codec.encode(frames)
    received = np.ones(codes.size, bool)
    received[::3] = False
    decoded = codec.decode(np.where(received, codes, 0).astype(np.int8), received, height, width)
    assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
    np.savez(out, codes=codes, decoded=decoded, backend=codec.backend)
""")


@pytest.mark.parametrize("precision, backend, graphs", [("auto", "onnx-cpu-int8", "int8"), ("fp32", "onnx-cpu", "fp32")])
def test_onnx_backend_streams_without_torch(tmp_path, precision: str, backend: str, graphs: str) -> None:
    out = tmp_path / "result.npz"
    run = subprocess.run([sys.executable, "-c", CHILD, str(out), str(WIDTH), str(HEIGHT), precision],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = np.load(out)
    assert str(result["backend"]) == backend
    frames = read_frames(sample_clip_path(), n=4, size=(WIDTH, HEIGHT))
    expected = load_codec(DEFAULT_MODEL, "torch").encode(frames)
    assert (result["codes"] == expected).mean() >= PARITY_LIMITS[graphs].code_agreement
    assert result["decoded"].shape == (4, HEIGHT, WIDTH, 3) and result["decoded"].dtype == np.uint8
