"""The sender's one adaptation policy: which rung of a degradation ladder to stream at.

A rung is a frame size and rate. ``--degrade resolution`` builds a ladder of the shipped sizes below
the starting one (640x480, 320x240, 256x192), ``--degrade framerate`` a ladder of the starting rate and
half of it, ``--degrade drop`` a ladder of one rung: the live sender then drops whole GOPs when the
encoder falls behind (its behaviour before there was a choice). After WebRTC's degradation preference.

Two inputs feed the same decision:

* **CPU** (:meth:`AdaptationPolicy.observe_encode`): each GOP's encode time against the rung's budget,
  the GOP interval. The smoothed ratio above 1 for ``down_after_s`` steps down one rung; one slow GOP
  does not (it decays out of the average first). Stepping up needs the encode time predicted at the
  rung above (scaled by the rungs' measured warm-up costs, never below the time here for a larger rung)
  within ``headroom`` of that rung's budget for ``up_after_s``.
* **Link** (:meth:`AdaptationPolicy.observe_link`): a congestion controller's target rate. Every rung
  whose stream rate exceeds it is off limits: the policy steps down to the best rung that fits (after
  the same ``down_after_s``), and steps up only to a rung that fits both the CPU and the link.

Whatever asks for it, no two switches are closer than ``min_switch_interval_s``, so the receiver never
sees sessions flap. The class is pure: time comes from the injected ``clock``, nothing is measured here
but what it is told, so tests drive it with a fake clock and a deliberately slow codec.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..runtime.base import Codec, Refining
from .advice import ENCODER_BEHIND

DEGRADE_MODES = ("drop", "framerate", "resolution")
# The frame sizes a resolution ladder steps through, largest first; each pads to a shipped graph size.
# 256x192 is the last step: sides of 160 px or less pad awkwardly to 64 and get no MS-SSIM.
RESOLUTION_STEPS = ((640, 480), (320, 240), (256, 192))
CPU, LINK, HEADROOM = ENCODER_BEHIND, "link rate", "headroom"  # reasons, in the words of the warnings


@dataclass(frozen=True)
class Rung:
    """One operating point: frame size, frame rate and what it costs."""

    width: int
    height: int
    fps: float
    gop: int = 4
    cost_s: float | None = None  # encode time of one GOP measured at start-up; None: scaled by pixels
    kbps: float | None = None  # the stream's rate at this rung, for the link input; None: any link fits

    @property
    def budget_s(self) -> float:
        """The GOP interval: a live encoder slower than this falls behind."""
        return self.gop / self.fps

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height} @ {self.fps:g} fps"


@dataclass(frozen=True)
class AdaptationConfig:
    down_after_s: float = 1.5  # sustained lag (or link shortfall) before stepping down
    up_after_s: float = 3.0  # sustained headroom before stepping back up
    min_switch_interval_s: float = 4.0  # never two switches closer than this
    headroom: float = 0.75  # step up only when the rung above is predicted at <= this share of its budget
    smoothing: float = 0.3  # weight of the newest GOP in the smoothed encode time

    def __post_init__(self) -> None:
        if min(self.down_after_s, self.up_after_s, self.min_switch_interval_s) < 0:
            raise ValueError("adaptation periods must be >= 0")
        if not (0 < self.headroom < 1 and 0 < self.smoothing <= 1):
            raise ValueError("headroom must be in (0, 1) and smoothing in (0, 1]")


@dataclass(frozen=True)
class Switch:
    """A change of rung: the sender starts a new session at ``to``."""

    at: float  # the policy's clock
    before: Rung
    to: Rung
    reason: str  # CPU, LINK or "headroom"
    detail: str  # numbers for the log line

    @property
    def down(self) -> bool:
        return self.to.width * self.to.height * self.to.fps < self.before.width * self.before.height * self.before.fps


@dataclass
class _Timer:
    """Since when a condition has held (None while it does not)."""

    since: float | None = None

    def update(self, holds: bool, now: float) -> float:
        """How long the condition has held as of ``now``."""
        if not holds:
            self.since = None
            return 0.0
        if self.since is None:
            self.since = now
        return now - self.since


@dataclass
class AdaptationPolicy:
    """Chooses the rung; see the module docstring. ``ladder[0]`` is the best rung and the start."""

    ladder: Sequence[Rung]
    config: AdaptationConfig = field(default_factory=AdaptationConfig)
    clock: Callable[[], float] = time.monotonic
    level: int = 0
    switches: list[Switch] = field(default_factory=list)
    _encode_s: float | None = None
    _link_kbps: float | None = None
    _lag: _Timer = field(default_factory=_Timer)
    _headroom: _Timer = field(default_factory=_Timer)
    _short_link: _Timer = field(default_factory=_Timer)
    _started: float = 0.0
    _start_level: int = 0  # where the stream began (start_where_it_fits may skip the top rungs)
    _degraded_since: float | None = None
    _degraded_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.ladder:
            raise ValueError("a ladder needs at least one rung")
        self._started = self.clock()

    @property
    def rung(self) -> Rung:
        return self.ladder[self.level]

    @property
    def load(self) -> float | None:
        """Smoothed encode time over the current rung's budget (above 1: falling behind)."""
        return None if self._encode_s is None else self._encode_s / self.rung.budget_s

    def start_where_it_fits(self) -> str | None:
        """Before the first GOP: start at the best rung whose start-up cost (``Rung.cost_s``, measured by the
        sender) is within ``headroom`` of its budget, the test for stepping up, so a machine already known
        to be too slow for the top rung does not drop GOPs for the ``down_after_s`` the smoothed encode time
        needs to show it. Headroom, since the start-up cost is of blank GOPs with the other end still idle
        (live GOPs took 1.3-1.5 times as long on a 2-core machine shared with the receiver). Returns why
        (for the log) when that is not the top rung; stepping up later works as after any step down."""
        share = self.config.headroom
        fits = (i for i, rung in enumerate(self.ladder) if rung.cost_s is None or rung.cost_s <= share * rung.budget_s)
        level = next(fits, len(self.ladder) - 1)
        if level == 0:
            return None
        top = self.ladder[0]
        assert top.cost_s is not None
        self.level = self._start_level = level
        self._degraded_since = self.clock()
        return (f"encoding {top.label} took {top.cost_s * 1000:.0f} ms per GOP at start-up, over "
                f"{share:.0%} of its {top.budget_s * 1000:.0f} ms budget")

    def observe_encode(self, seconds: float) -> Switch | None:
        """One GOP took ``seconds`` to encode at the current rung; returns the switch to make, if any."""
        a = self.config.smoothing
        self._encode_s = seconds if self._encode_s is None else (1 - a) * self._encode_s + a * seconds
        return self._decide()

    def observe_link(self, target_kbps: float | None) -> Switch | None:
        """The congestion controller's target rate (None: no limit); returns the switch to make, if any."""
        self._link_kbps = target_kbps
        return self._decide()

    def degraded_s(self) -> float:
        """Time spent below the best rung so far."""
        ongoing = 0.0 if self._degraded_since is None else self.clock() - self._degraded_since
        return self._degraded_s + ongoing

    def summary(self) -> dict[str, object]:
        """Counters for the sender's report."""
        return {"rung_first": self.ladder[0].label, "rung": self.rung.label,
                "rung_start": self.ladder[self._start_level].label, "switches": len(self.switches),
                "seconds_degraded": round(self.degraded_s(), 2),
                "switch_log": [{"at_s": round(s.at - self._started, 2), "to": s.to.label, "reason": s.reason}
                               for s in self.switches]}

    # --- the decision ----------------------------------------------------------------------------------

    def _fits_link(self, level: int) -> bool:
        kbps = self.ladder[level].kbps
        return self._link_kbps is None or kbps is None or kbps <= self._link_kbps

    def _predicted_load(self, level: int) -> float | None:
        """The smoothed encode time scaled to rung ``level``, over that rung's budget."""
        if self._encode_s is None:
            return None
        here, there = self.rung, self.ladder[level]
        pixels = (there.width * there.height) / (here.width * here.height)
        scale = there.cost_s / here.cost_s if here.cost_s and there.cost_s else pixels
        # The warm-up costs of a quick codec are mostly timing noise: they may scale, never invert, the
        # order of the sizes (a larger rung predicted cheaper than this one would step up into a stall).
        scale = max(scale, 1.0) if pixels >= 1 else min(scale, 1.0)
        return self._encode_s * scale / there.budget_s

    def _decide(self) -> Switch | None:
        now, cfg = self.clock(), self.config
        load = self.load
        lagging = self._lag.update(load is not None and load > 1.0, now)
        link_short = self._short_link.update(not self._fits_link(self.level), now)
        up = self.level - 1
        up_load = self._predicted_load(up) if up >= 0 else None
        roomy = self._headroom.update(up_load is not None and up_load <= cfg.headroom and self._fits_link(up), now)
        if self.switches and now - self.switches[-1].at < cfg.min_switch_interval_s:
            return None
        if self.level + 1 < len(self.ladder):
            if link_short >= cfg.down_after_s and link_short > 0:
                target = next((i for i in range(self.level + 1, len(self.ladder)) if self._fits_link(i)),
                              len(self.ladder) - 1)
                return self._switch(target, LINK, f"{self.rung.kbps:.0f} kbps over a {self._link_kbps:.0f} kbps target")
            if lagging >= cfg.down_after_s and lagging > 0:
                assert self._encode_s is not None
                return self._switch(self.level + 1, CPU, f"encoding takes {self._encode_s * 1000:.0f} ms per GOP, "
                                                         f"over the {self.rung.budget_s * 1000:.0f} ms budget")
        if up >= 0 and roomy >= cfg.up_after_s and roomy > 0:
            assert up_load is not None
            return self._switch(up, HEADROOM, f"predicted {up_load:.0%} of the "
                                                f"{self.ladder[up].budget_s * 1000:.0f} ms budget there")
        return None

    def _switch(self, level: int, reason: str, detail: str) -> Switch:
        now = self.clock()
        switch = Switch(now, self.rung, self.ladder[level], reason, detail)
        if self._encode_s is not None:  # carry the smoothed time over, scaled to the new rung
            load = self._predicted_load(level)
            self._encode_s = None if load is None else load * self.ladder[level].budget_s
        self.level = level
        self.switches.append(switch)
        for timer in (self._lag, self._headroom, self._short_link):
            timer.since = None
        if level > 0 and self._degraded_since is None:
            self._degraded_since = now
        elif level == 0 and self._degraded_since is not None:
            self._degraded_s += now - self._degraded_since
            self._degraded_since = None
        return switch


def graphs_at_hand(codec: Codec) -> Callable[[int, int], bool]:
    """``available(width, height)`` for a codec: whether it has graphs for that size without exporting
    (ONNX backends say so with ``serves``; others run any size)."""
    serves = getattr(codec, "serves", None)
    return (lambda w, h: serves(h, w)) if serves is not None else (lambda w, h: True)


def build_ladder(mode: str, width: int, height: int, fps: float, gop: int,
                 available: Callable[[int, int], bool] = lambda w, h: True) -> list[Rung]:
    """The rungs for ``--degrade mode`` starting at ``width x height @ fps``. ``available(w, h)`` says
    whether the codec has graphs for a size (resolution steps only go to sizes that need no export)."""
    top = Rung(width, height, fps, gop)
    if mode == "framerate":
        return [top, Rung(width, height, fps / 2, gop)]
    if mode == "resolution":
        below = [Rung(w, h, fps, gop) for w, h in RESOLUTION_STEPS if w * h < width * height and available(w, h)]
        return [top, *below]
    if mode == "drop":
        return [top]
    raise ValueError(f"unknown degradation {mode!r} (choose {', '.join(DEGRADE_MODES)})")


AUTO_HEADROOM = 0.75  # --size auto: the encode time may fill at most this share of the GOP interval
AUTO_TIMED_RUNS = 2  # timed encodes per candidate after the one that opens its session; the slower counts


def blank_gop_seconds(codec: Codec, width: int, height: int, runs: int,
                      pick: Callable[[list[float]], float] = max,
                      clock: Callable[[], float] = time.perf_counter) -> float | None:
    """Seconds one blank GOP takes to encode at ``width x height``: one untimed encode first (it opens the
    size's session and grows buffers), then ``pick`` of ``runs`` timed ones (None when ``runs`` is 0). A
    refining codec is timed without refinement: its own pass is what a size must afford, and live
    refinement fills whatever time is left."""
    blank = np.zeros((codec.gop, height, width, 3), np.uint8)
    times = []
    with _without_refinement(codec):
        codec.encode(blank)
        for _ in range(runs):
            started = clock()
            codec.encode(blank)
            times.append(clock() - started)
    return pick(times) if times else None


@contextmanager
def _without_refinement(codec: Codec) -> Iterator[None]:
    if not isinstance(codec, Refining):
        yield
        return
    budget, codec.refine_budget_s = codec.refine_budget_s, 0.0
    try:
        yield
    finally:
        codec.refine_budget_s = budget


def choose_size(codec: Codec, fps: float, candidates: Sequence[tuple[int, int]] = RESOLUTION_STEPS,
                available: Callable[[int, int], bool] = lambda w, h: True,
                clock: Callable[[], float] = time.perf_counter) -> tuple[tuple[int, int], str, bool]:
    """``--size auto``: the largest of ``candidates`` (largest first) the encoder runs in real time with
    headroom on this machine now, timed on blank GOPs before the session starts; failing that, the largest
    that runs in real time at all (said, with the advice for when it falls behind); failing that, the
    smallest. Returns the size, the reason (for the log) and whether it comes with headroom."""
    budget = codec.gop / fps
    tried: list[str] = []
    costs: dict[tuple[int, int], float | None] = {}
    sizes = [size for size in candidates if available(*size)] or list(candidates[-1:])
    for width, height in sizes:
        cost = costs[width, height] = blank_gop_seconds(codec, width, height, AUTO_TIMED_RUNS, max, clock)
        tried.append(f"{width}x{height} {cost * 1000:.0f} ms")
        if cost <= AUTO_HEADROOM * budget:
            return (width, height), (f"{width}x{height}, the largest size encoded within {AUTO_HEADROOM * 100:.0f} % of "
                                     f"the {budget * 1000:.0f} ms GOP interval at {fps:g} fps here "
                                     f"(per GOP: {', '.join(tried)})"), True
    interval = f"the {budget * 1000:.0f} ms GOP interval at {fps:g} fps (per GOP: {', '.join(tried)})"
    in_time = [size for size in sizes if costs[size] <= budget]
    if in_time:
        width, height = in_time[0]
        return (width, height), (f"{width}x{height}, the largest size encoded within {interval}, though with less "
                                 f"than {100 - AUTO_HEADROOM * 100:.0f} % headroom: GOPs are dropped whenever the "
                                 f"CPU gets busier"), False
    width, height = sizes[-1]
    return (width, height), (f"{width}x{height}, the smallest shipped size, though even it takes more than "
                             f"{interval}: GOPs will be dropped"), False
