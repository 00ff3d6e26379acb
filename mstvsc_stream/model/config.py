"""Model configurations: the paper's Table II sizes and the project's operating points.

Every latent size follows from two facts: the spatial-temporal encoder reaches H/32 x W/32, and the
individual part is downsampled once more (H/64 x W/64, one map per frame), while the common part is one
map for the whole GOP. With ``T`` frames, the channel bandwidth ratio (eq. 14) is therefore

    CBR = (C*HW/1024 + T*C*HW/4096) / (3*T*HW)   =  C/6144 for T = 4.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Frames are padded to a multiple of this (2x2 embedding, four merges to H/32, one more for the
# individual part) and cropped back after decoding.
FRAME_ALIGN = 64


@dataclass(frozen=True)
class MSTVSCConfig:
    """Widths and depths of every stage, named as in the paper (Table II)."""

    name: str
    depths: tuple[int, int, int] = (1, 1, 1)  # N1..N3, spatial stages
    widths: tuple[int, int, int] = (24, 48, 72)  # C1..C3
    st_depths: tuple[int, int] = (1, 1)  # N4, N5, spatial-temporal stages
    st_widths: tuple[int, int] = (96, 120)  # C4, C5
    ind_depth: int = 1  # N6
    ind_width: int = 144  # C6
    latent: int = 48  # C, channels of the transmitted latent
    gop: int = 4
    window: int = 8  # spatial window of the per-frame Swin stages
    st_window: int = 4  # spatial window of the 3D stages (temporal window = whole GOP)
    head_dim: int = 24
    mlp_ratio: float = 4.0
    experts: int = 4  # m
    top_k: int = 2  # K_r
    expert_ratio: float = 2.0  # hidden width of each expert, relative to its input
    recovery_width: int = 96
    recovery_depth: int = 3  # conv layers per recovery module (the paper uses 1 + output conv)
    recovery_stages: int = 1  # recovery stacks in cascade, each refining the previous fill (the paper: 1)
    # N1..N6 of the receiver's side (synthesis stages and the individual part's upsampling) where they differ from
    # the sender's: a deeper decoder leaves the encoder, its speed and the wire as they are.
    synthesis_depths: tuple[int, int, int, int, int, int] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def analysis_depths(self) -> tuple[int, int, int, int, int, int]:
        """N1..N6 of the encoder: spatial stages, spatial-temporal stages, individual extractor."""
        return (*self.depths, *self.st_depths, self.ind_depth)

    @property
    def decoder_depths(self) -> tuple[int, int, int, int, int, int]:
        """N1..N6 of the synthesis, in the encoder's order: its own where set, else the encoder's."""
        return self.synthesis_depths or self.analysis_depths

    @property
    def cbr(self) -> float:
        """Channel bandwidth ratio k/m (eq. 14) for frames whose sides are multiples of FRAME_ALIGN."""
        common = self.latent / 1024
        individual = self.gop * self.latent / 4096
        return (common + individual) / (3 * self.gop)

    def latent_shapes(self, height: int, width: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of the common ``[1, h, w, C]`` and individual ``[T, h/2, w/2, C]`` latents."""
        ph, pw = padded_size(height, width)
        common = (1, ph // 32, pw // 32, self.latent)
        individual = (self.gop, ph // 64, pw // 64, self.latent)
        return common, individual

    def latent_length(self, height: int, width: int) -> int:
        common, individual = self.latent_shapes(height, width)
        return _prod(common) + _prod(individual)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MSTVSCConfig":
        fields = dict(data)
        for key in ("depths", "widths", "st_depths", "st_widths", "synthesis_depths"):
            if fields.get(key) is not None:
                fields[key] = tuple(fields[key])
        return cls(**fields)


def padded_size(height: int, width: int) -> tuple[int, int]:
    """The frame size the network actually sees (sides rounded up to FRAME_ALIGN)."""
    return -(-height // FRAME_ALIGN) * FRAME_ALIGN, -(-width // FRAME_ALIGN) * FRAME_ALIGN


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for n in shape:
        out *= n
    return out


_SMALL = dict(depths=(1, 1, 1), widths=(24, 48, 72), st_depths=(1, 1), st_widths=(96, 120), ind_depth=1, ind_width=144)
_MID = dict(depths=(2, 2, 2), widths=(24, 48, 72), st_depths=(2, 2), st_widths=(96, 120), ind_depth=2, ind_width=144)
_LARGE = dict(depths=(2, 2, 2), widths=(48, 96, 144), st_depths=(2, 2), st_widths=(192, 240), ind_depth=2, ind_width=288)

CONFIGS: dict[str, MSTVSCConfig] = {
    # Table II exactly (C = 96, CBR 0.0156).
    "small": MSTVSCConfig(name="small", latent=96, **_SMALL),
    "mid": MSTVSCConfig(name="mid", latent=96, **_MID),
    "large": MSTVSCConfig(name="large", latent=96, **_LARGE),
    # The paper's operating point, CBR = 48/6144 = 0.0078 with 3-bit symbols and GOP 4.
    "small-c48": MSTVSCConfig(name="small-c48", latent=48, **_SMALL),
    "mid-c48": MSTVSCConfig(name="mid-c48", latent=48, **_MID),
    # The default's encoder (and wire) with mid's two blocks per synthesis stage: the receiver pays for any gain
    # (tried from the default in docs/training.md's eighteenth round: +0.05 dB for twice the decode time).
    "small-c48-mid-decoder": MSTVSCConfig(name="small-c48-mid-decoder", latent=48, synthesis_depths=(2,) * 6, **_SMALL),
    # The default's decoder (and wire) with a second, shifted-window block in the encoder's coarse stages N3..N6,
    # which cost least (H/8 and below): the sender pays 1.5x its encode, the receiver nothing (tried from the
    # default in docs/training.md's nineteenth round: +0.04 dB after stage III).
    "small-c48-deep-encoder": MSTVSCConfig(
        name="small-c48-deep-encoder", latent=48, synthesis_depths=(1,) * 6,
        **{**_SMALL, "depths": (1, 1, 2), "st_depths": (2, 2), "ind_depth": 2},
    ),
    # Tiny random-initialised config for fast tests of the real code path.
    "tiny-test": MSTVSCConfig(
        name="tiny-test", depths=(1, 1, 1), widths=(8, 8, 16), st_depths=(1, 1), st_widths=(16, 16),
        ind_depth=1, ind_width=16, latent=4, head_dim=8, experts=2, top_k=1, recovery_width=8, recovery_depth=2,
    ),
    # The same with two blocks per stage (a shifted-window block after each), as "mid" is to "small".
    "tiny-test-mid": MSTVSCConfig(
        name="tiny-test-mid", depths=(2, 2, 2), widths=(8, 8, 16), st_depths=(2, 2), st_widths=(16, 16),
        ind_depth=2, ind_width=16, latent=4, head_dim=8, experts=2, top_k=1, recovery_width=8, recovery_depth=2,
    ),
}
