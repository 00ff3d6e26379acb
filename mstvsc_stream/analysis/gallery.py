"""Pictures of one GOP: every scheme at every loss rate side by side, and the common-only /
individual-only reconstructions of Fig. 12. Numbers say how much; these show what a viewer gets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.base import Codec
from .figures import new_figure

ORIGINAL = "original"


@dataclass
class Gallery:
    """Decoded frames of one GOP for every scheme and loss rate, kept for side-by-side pictures."""

    gop: int  # index of the GOP to keep
    gop_size: int
    views: dict[str, dict[float, np.ndarray]] = field(default_factory=dict)

    @property
    def frames(self) -> slice:
        """Where the GOP lies in the clip."""
        return slice(self.gop * self.gop_size, (self.gop + 1) * self.gop_size)

    def keep(self, scheme: str, loss: float, frames: np.ndarray, first_frame: int) -> None:
        """Store the GOP if it lies within ``frames``, which start at clip frame ``first_frame``."""
        start = self.frames.start - first_frame
        if 0 <= start and start + self.gop_size <= len(frames):
            self.views.setdefault(scheme, {})[loss] = frames[start : start + self.gop_size].copy()

    def save_strips(self, directory: Path, original: np.ndarray) -> list[Path]:
        """One PNG per loss rate: the original GOP on top, then each scheme's frames at that rate."""
        rates = sorted({rate for by_rate in self.views.values() for rate in by_rate})
        paths = []
        for rate in rates:
            rows = [(ORIGINAL, original[self.frames])]
            rows += [(scheme, by_rate[rate]) for scheme, by_rate in self.views.items() if rate in by_rate]
            path = directory / f"gop{self.gop}-loss{rate:g}.png"
            save_grid(path, f"GOP {self.gop} (frames {self.frames.start}-{self.frames.stop - 1}), loss {rate:g}",
                      rows)
            paths.append(path)
        return paths


def feature_views(codec: Codec, gop: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Decoded GOP from both latents, from the common latent alone and from the individual one alone.

    The other latent is zeroed and the mask says everything arrived, so the recovery modules leave the
    zeros alone and the picture shows what one latent carries by itself. Needs the codec's config
    (``codec.cfg``, as every backend has) to know where the common part ends.
    """
    height, width = gop.shape[1:3]
    codes = codec.encode(gop)
    n_common = int(np.prod(codec.cfg.latent_shapes(height, width)[0]))
    everything = np.ones(codes.size, dtype=bool)
    common_only, individual_only = codes.copy(), codes.copy()
    common_only[n_common:] = 0
    individual_only[:n_common] = 0
    return [(ORIGINAL, gop), ("both latents", codec.decode(codes, everything, height, width)),
            ("common only", codec.decode(common_only, everything, height, width)),
            ("individual only", codec.decode(individual_only, everything, height, width))]


def save_grid(path: Path, title: str, rows: list[tuple[str, np.ndarray]]) -> None:
    """A labelled grid: one row per ``(label, frames [T, H, W, 3])``, frames left to right."""
    n_cols = len(rows[0][1])
    height, width = rows[0][1].shape[1:3]
    scale = max(1.0, 160 / width)  # small frames are drawn larger so the labels stay readable
    label_w, title_h = 1.6, 0.5  # inches
    fig_w, fig_h = n_cols * width * scale / 100 + label_w, len(rows) * height * scale / 100 + title_h
    figure = new_figure((fig_w, fig_h))
    axes = figure.subplots(len(rows), n_cols, squeeze=False)
    for r, (label, frames) in enumerate(rows):
        for c in range(n_cols):
            axes[r][c].imshow(frames[c])
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.subplots_adjust(left=label_w / fig_w, right=0.99, bottom=0.01, top=1 - title_h / fig_h, wspace=0.03,
                           hspace=0.03)
    figure.savefig(path, dpi=100)
