"""Codec throughput on this machine: encoder and decoder frames per second per frame size and backend,
peak memory, the wire work per GOP, and x264 at the same size and bitrate for scale.

Every (size, backend, side) runs in a fresh interpreter, so its peak RSS is what a sender (encode) or a
receiver (decode) process of that kind needs, not the high-water mark of everything measured before.
Frames come from the bundled sample clip, streamed GOP by GOP (looping) outside the timed region. Times
are the median over ``gops`` GOPs after a warm-up GOP (which also opens sessions and allocates buffers).
The decode side decodes random codes, fully received: its cost does not depend on the values, and the
decoder process then never loads the encoder. ``wire_ms_per_gop`` is the sender's share of the wire
path (interleave, pack, segment) on encode rows and the receiver's (reassemble) on decode rows.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing import get_context

import av
import numpy as np

from ..media import FileSource, sample_clip_path
from ..runtime import Codec, load_codec
from ..runtime.onnx_backend import default_threads
from .evaluation import stream_kbps
from ..wire import DEFAULT_SEED, GopPacketizer

SIDES = ("encode", "decode")
X264 = "x264"
# what --backend names, as (runtime backend, precision); rows name the backend as the codec reports it
CODEC_BACKENDS = {"onnx-int8": ("onnx", "int8"), "onnx": ("onnx", "fp32"), "torch": ("torch", "fp32")}
FPS = 30.0  # the rate the x264 bitrate is matched at
WARMUP_GOPS = 1
WIRE_RUNS = 50


Clip = Iterator[np.ndarray]


@dataclass(frozen=True)
class Job:
    size: tuple[int, int]  # (width, height)
    backend: str  # a key of CODEC_BACKENDS, or X264
    side: str
    gops: int
    model: str | None = None
    device: str = "cpu"
    threads: int | None = None
    kbps: float = 0.0  # x264 only: target bitrate
    gop: int = 0  # x264 only: frames per timed group (the semantic codec's GOP)


def run_bench(sizes: list[tuple[int, int]], backends: list[str], gops: int, model: str | None = None,
              device: str = "cpu", threads: int | None = None) -> Iterator[dict]:
    """Rows for every size: each backend's encode and decode, then x264 at the codec's bitrate."""
    rate_codec = load_codec(model, "onnx")  # only its latent size and id: opens no session
    for width, height in sizes:
        for backend in backends:
            for side in SIDES:
                yield run_isolated(Job((width, height), backend, side, gops, model, device, threads))
        kbps = stream_kbps(rate_codec, height, width, FPS, None, DEFAULT_SEED)
        yield run_isolated(Job((width, height), X264, "encode", gops, kbps=kbps, gop=rate_codec.gop))


def run_isolated(job: Job) -> dict:
    """Run ``job`` in a fresh interpreter (spawned, never forked) and return its row."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(run_job, job).result()


def run_job(job: Job) -> dict:
    width, height = job.size
    clip = iter(FileSource(sample_clip_path(), size=job.size, loop=True))
    if job.backend == X264:
        gop_size, backend, wire = job.gop, X264, None
        times = _timed(_x264_encoder(job), clip, gop_size, job.gops)
    else:
        runtime, precision = CODEC_BACKENDS[job.backend]
        codec = load_codec(job.model, runtime, job.device, job.threads, precision)
        gop_size, backend = codec.gop, codec.backend
        packetizer = GopPacketizer(codec.latent_length(height, width), DEFAULT_SEED)
        side = _encode_side if job.side == "encode" else _decode_side
        times, wire = side(codec, packetizer, clip, job.gops, height, width)
    seconds = statistics.median(times)
    row = {"size": f"{width}x{height}", "backend": backend, "side": job.side, "fps": gop_size / seconds,
           "ms_per_gop": seconds * 1000, "peak_mb": peak_rss_mb(), "wire_ms_per_gop": wire}
    if job.backend == X264:
        row["kbps"] = job.kbps
    return row


def _timed(work: Callable[[np.ndarray], object], clip: Clip, gop: int, gops: int) -> list[float]:
    times = []
    for i in range(WARMUP_GOPS + gops):
        frames = np.stack([next(clip) for _ in range(gop)])
        start = time.perf_counter()
        work(frames)
        if i >= WARMUP_GOPS:
            times.append(time.perf_counter() - start)
    return times


def median_ms(work: Callable[[], object], runs: int = WIRE_RUNS) -> float:
    """Median wall time of ``runs`` calls of ``work``, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _encode_side(codec: Codec, packetizer: GopPacketizer, clip: Clip, gops: int, height: int,
                 width: int) -> tuple[list[float], float]:
    codes: list[np.ndarray] = []
    times = _timed(lambda frames: codes.append(codec.encode(frames)), clip, codec.gop, gops)
    return times, median_ms(lambda: packetizer.segments(codes[-1]))


def _decode_side(codec: Codec, packetizer: GopPacketizer, clip: Clip, gops: int, height: int,
                 width: int) -> tuple[list[float], float]:
    n = codec.latent_length(height, width)
    codes = np.random.default_rng(0).integers(-4, 4, n, dtype=np.int8)
    received = np.ones(n, bool)
    segments = dict(enumerate(packetizer.segments(codes)))
    times = _timed(lambda _: codec.decode(codes, received, height, width), clip, codec.gop, gops)
    return times, median_ms(lambda: packetizer.reassemble(segments))


def _x264_encoder(job: Job) -> Callable[[np.ndarray], None]:
    """libx264 as a low-latency live encoder would run it: zerolatency, veryfast, the codec's bitrate."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height = job.size
    encoder.pix_fmt = "yuv420p"
    encoder.bit_rate = int(job.kbps * 1000)
    encoder.framerate = Fraction(FPS)
    encoder.time_base = Fraction(1, int(FPS))
    encoder.options = {"preset": "veryfast", "tune": "zerolatency"}
    pts = iter(range(sys.maxsize))

    def encode(frames: np.ndarray) -> None:
        for image in frames:  # the RGB -> YUV conversion is part of a real sender's work
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = next(pts)
            encoder.encode(frame)

    return encode


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def machine_info(threads: int | None) -> dict:
    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads_text = threads or f"default (ONNX Runtime {default_threads()}, PyTorch its own, x264 auto)"
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable, "load_avg_1m": round(os.getloadavg()[0], 2),
            "threads": threads_text,
            "platform": platform.platform(), "python": platform.python_version(),
            "onnxruntime": version("onnxruntime") or version("onnxruntime-gpu"), "torch": version("torch"),
            "av": av.__version__, "numpy": np.__version__}


def combine_runs(runs: list[list[dict]]) -> list[dict]:
    """One row per (size, backend, side) from several runs of :func:`run_bench`: the median fps and ms per
    GOP with the runs' range (``fps_min``, ``fps_max``), the largest peak memory, the per-run fps."""
    combined = []
    for rows in zip(*runs):
        fps = [r["fps"] for r in rows]
        wire = [r["wire_ms_per_gop"] for r in rows if r["wire_ms_per_gop"] is not None]
        combined.append({**rows[0], "fps": statistics.median(fps), "fps_min": min(fps), "fps_max": max(fps),
                         "fps_runs": fps, "ms_per_gop": statistics.median(r["ms_per_gop"] for r in rows),
                         "peak_mb": max(r["peak_mb"] for r in rows),
                         "wire_ms_per_gop": statistics.median(wire) if wire else None})
    return combined


def format_table(rows: list[dict]) -> str:
    lines = [f"{'size':>10} {'backend':>14} {'side':>7} {'fps (range)':>20} {'ms/GOP':>9} {'peak MB':>8} {'wire ms':>8}"]
    for r in rows:
        wire = "-" if r["wire_ms_per_gop"] is None else f"{r['wire_ms_per_gop']:.3f}"
        fps = f"{r['fps']:.2f}" + (f" ({r['fps_min']:.1f}-{r['fps_max']:.1f})" if "fps_min" in r else "")
        lines.append(f"{r['size']:>10} {r['backend']:>14} {r['side']:>7} {fps:>20} {r['ms_per_gop']:>9.1f}"
                     f" {r['peak_mb']:>8.0f} {wire:>8}")
    return "\n".join(lines)
