"""Training data: random GOPs and crops from videos, Vimeo-90k septuplets, or animated still images.

Everything is decoded once into a flat uint8 file (:class:`ClipStore`) that every training process maps;
a batch is ``[B, T, S, S, 3]`` uint8 RGB. Three sources, mixed by ``GopSampler``:

* a folder (or list) of video files, decoded with PyAV, each also kept at half size so a crop sees a
  wider field of view;
* the Vimeo-90k septuplet layout used by the paper (``sequences/XXXXX/YYYY/im1.png .. im7.png``, listed
  by ``sep_trainlist.txt`` when present);
* still images animated with a random smooth camera motion (pan and zoom), for scene variety.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import av
import cv2
import numpy as np

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".y4m", ".mpg", ".mpeg"}


class DataError(Exception):
    """A training source that cannot be read (one-line message)."""


def decode_video(path: Path, max_frames: int | None = None) -> np.ndarray:
    """All frames of a video as ``[N, H, W, 3]`` uint8 RGB."""
    try:
        with av.open(str(path)) as container:
            frames = []
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames and len(frames) >= max_frames:
                    break
    except (av.error.FFmpegError, OSError) as exc:
        raise DataError(f"cannot decode {path}: {exc}") from None
    if not frames:
        raise DataError(f"no video frames in {path}")
    return np.stack(frames)


def find_videos(paths: Iterable[Path]) -> list[Path]:
    """Video files named directly or found (recursively) in folders."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.exists():
            found.append(path)
        else:
            raise DataError(f"no such file or folder: {path}")
    return found


def vimeo_septuplets(root: Path, limit: int | None = None) -> list[np.ndarray]:
    """Sequences of the Vimeo-90k septuplet layout, each ``[7, H, W, 3]``."""
    listing = root / "sep_trainlist.txt"
    if listing.exists():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        dirs = [root / "sequences" / name for name in names]
    else:
        dirs = sorted(p.parent for p in (root / "sequences").glob("*/*/im1.png"))
    if not dirs:
        raise DataError(f"no septuplets under {root}/sequences")
    sequences = []
    for d in dirs[:limit]:
        images = [cv2.imread(str(d / f"im{i}.png"), cv2.IMREAD_COLOR) for i in range(1, 8)]
        if any(im is None for im in images):
            raise DataError(f"incomplete septuplet {d}")
        sequences.append(np.stack([cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in images]))
    return sequences


def half_size(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA) for f in frames])


def animate_still(image: np.ndarray, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``[frames, size, size, 3]`` clip of a smooth random pan/zoom over ``image``."""
    h, w = image.shape[:2]
    scale0 = rng.uniform(size / min(h, w), 1.0) if min(h, w) > size else size / min(h, w)
    zoom = rng.uniform(-0.02, 0.02)
    velocity = rng.normal(0, 3.0, size=2)
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    out = []
    for t in range(frames):
        s = scale0 * (1 + zoom * t)
        m = np.array([[1 / s, 0, cx + velocity[0] * t - size / (2 * s)], [0, 1 / s, cy + velocity[1] * t - size / (2 * s)]])
        out.append(cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REFLECT))
    return np.stack(out)


def skimage_stills() -> list[np.ndarray]:
    """Real photographs shipped inside scikit-image (no download)."""
    from skimage import data

    names = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "motorcycle_left"]
    images = []
    for name in names:
        try:
            images.append(np.ascontiguousarray(getattr(data, name)()[..., :3]))
        except Exception:  # some datasets need an optional download; skip those
            continue
    return images


class ClipStore:
    """Decoded clips in one flat uint8 file, opened as read-only memmaps.

    Decoding happens once (rank 0 under DDP) and every process maps the same file, so N training ranks
    share one copy of the frames in the page cache instead of holding N copies in their own memory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index_path = path.with_suffix(".json")

    def current(self, sources: list[str]) -> bool:
        """Whether the store was built from exactly these sources (so a resumed run skips decoding)."""
        try:
            index = json.loads(self.index_path.read_text())
        except (OSError, ValueError):
            return False
        return self.path.exists() and isinstance(index, dict) and index.get("sources") == sources

    def build(self, clips: Iterable[np.ndarray], sources: list[str] | None = None) -> None:
        """Write the clips; a full disk (or any write error) raises :class:`DataError` and leaves nothing
        half-written behind, so a failed build never holds the space the next attempt needs."""
        shapes = []
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")  # runs starting together on one cache each write their own
        try:
            with tmp.open("wb") as out:
                for clip in clips:
                    out.write(np.ascontiguousarray(clip, dtype=np.uint8).tobytes())
                    shapes.append(list(clip.shape))
            tmp.replace(self.path)
            self.index_path.write_text(json.dumps({"sources": sources or [], "shapes": shapes}))
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DataError(f"cannot write the decoded clips to {self.path}: {exc.strerror or exc} (3 bytes per "
                            "pixel of every frame, a quarter more for the half-size copies; --clip-cache puts them "
                            "elsewhere)") from exc

    def open(self) -> list[np.ndarray]:
        shapes = [tuple(s) for s in json.loads(self.index_path.read_text())["shapes"]]
        if not shapes:
            return []
        flat = np.memmap(self.path, dtype=np.uint8, mode="r")
        clips, offset = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            clips.append(flat[offset:offset + size].reshape(shape))
            offset += size
        return clips


class GopSampler:
    """Draws random GOP crops from clips and still images.

    A clip smaller than the crop is skipped rather than upscaled: upscaled frames are blurrier than any
    camera's and would teach the codec the wrong statistics.
    """

    def __init__(self, clips: list[np.ndarray], stills: list[np.ndarray], gop: int, seed: int = 0,
                 still_fraction: float = 0.15, clip_weights: list[float] | None = None) -> None:
        """``clip_weights`` scale each clip's chance of being drawn (by default in proportion to its length):
        how a source listed twice in the training data is drawn twice as often but stored once."""
        weights = [1.0] * len(clips) if clip_weights is None else list(clip_weights)
        if len(weights) != len(clips) or any(w < 0 for w in weights):
            raise DataError(f"need one non-negative weight per clip: {len(weights)} weights for {len(clips)} clips")
        kept = [(c, w) for c, w in zip(clips, weights) if len(c) >= gop and w > 0]
        self.clips = [c for c, _ in kept]
        self.clip_weights = [w for _, w in kept]
        self.stills = stills
        if not self.clips and not self.stills:
            raise DataError("no training data: give video files/folders, a Vimeo-90k root or enable stills")
        self.gop = gop
        self.rng = np.random.default_rng(seed)
        self.still_fraction = still_fraction
        self._eligible: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def eligible(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the clips at least ``size`` on both sides, and their sampling probabilities (by length
        times the clip's weight)."""
        if size not in self._eligible:
            idx = np.array([i for i, c in enumerate(self.clips) if min(c.shape[1:3]) >= size], dtype=int)
            weights = np.array([len(self.clips[i]) * self.clip_weights[i] for i in idx], dtype=float)
            self._eligible[size] = (idx, weights / weights.sum() if len(idx) else weights)
        return self._eligible[size]

    def gop_crop(self, size: int) -> np.ndarray:
        rng = self.rng
        idx, weights = self.eligible(size)
        if not len(idx) and not self.stills:
            raise DataError(f"no training clip is at least {size}x{size} and stills are off")
        if not len(idx) or (self.stills and rng.random() < self.still_fraction):
            return animate_still(self.stills[rng.integers(len(self.stills))], self.gop, size, rng)
        clip = self.clips[idx[rng.choice(len(idx), p=weights)]]
        n, h, w, _ = clip.shape
        t0 = rng.integers(n - self.gop + 1)
        y, x = rng.integers(h - size + 1), rng.integers(w - size + 1)
        gop = clip[t0:t0 + self.gop, y:y + size, x:x + size]
        if rng.random() < 0.5:
            gop = gop[:, :, ::-1]
        if rng.random() < 0.5:
            gop = gop[::-1]
        return np.ascontiguousarray(gop)

    def batch(self, batch: int, size: int) -> np.ndarray:
        return np.stack([self.gop_crop(size) for _ in range(batch)])
