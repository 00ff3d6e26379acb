"""The streaming path runs without PyTorch: a fresh interpreter in which `import torch` fails encodes and
decodes a GOP with the default model's shipped graphs, and its codes are PyTorch's."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from mstvsc_stream.media import read_frames, sample_clip_path
from mstvsc_stream.runtime import DEFAULT_MODEL, load_codec

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

    out, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    codec = load_codec(None, "auto")
    frames = read_frames(sample_clip_path(), n=codec.gop, size=(width, height))
    codes = codec.encode(frames)
    received = np.ones(codes.size, bool)
    received[::3] = False
    decoded = codec.decode(np.where(received, codes, 0).astype(np.int8), received, height, width)
    assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
    np.savez(out, codes=codes, decoded=decoded, backend=codec.backend)
""")


def test_onnx_backend_streams_without_torch(tmp_path) -> None:
    out = tmp_path / "result.npz"
    run = subprocess.run([sys.executable, "-c", CHILD, str(out), str(WIDTH), str(HEIGHT)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = np.load(out)
    assert str(result["backend"]) == "onnx-cpu"
    frames = read_frames(sample_clip_path(), n=4, size=(WIDTH, HEIGHT))
    expected = load_codec(DEFAULT_MODEL, "torch").encode(frames)
    assert (result["codes"] == expected).mean() >= 0.999
    assert result["decoded"].shape == (4, HEIGHT, WIDTH, 3) and result["decoded"].dtype == np.uint8
