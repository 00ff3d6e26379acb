"""Packet loss models with Linux netem's meanings, seeded so every loss pattern can be replayed.

The same seed gives the same pattern whether it is drawn all at once (``LossProcess.draw``, used by
offline evaluation to drop segments) or one packet at a time (``LossProcess.lose``, used by the relay),
so a result measured offline can be reproduced over real UDP and vice versa.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class ProbabilityError(ValueError):
    """A probability that is not a number in [0, 1] or a percentage in [0%, 100%]."""


def parse_probability(text: str) -> float:
    """Read ``"0.3"`` or ``"30%"`` as 0.3.

    Unlike netem, a bare number is a fraction, not a percent; a bare number above 1 is refused rather
    than guessed at, so ``30`` cannot silently mean 30 % to one reader and 3000 % to another.
    """
    body = text.strip()
    is_percent = body.endswith("%")
    try:
        value = float(body[:-1] if is_percent else body)
    except ValueError:
        raise ProbabilityError(f"{text!r} is not a probability; write e.g. 0.3 or 30%") from None
    if is_percent:
        value /= 100.0
    if not 0.0 <= value <= 1.0:  # also refuses nan
        hint = "" if is_percent else f"; did you mean {body}%?"
        raise ProbabilityError(f"{text!r} is not a probability between 0 and 1 (or 0% and 100%){hint}")
    return value


def check_probability(name: str, value: float) -> None:
    """Refuse a probability outside [0, 1] with a message naming the parameter."""
    if not 0.0 <= value <= 1.0:
        raise ProbabilityError(f"{name} must be between 0 and 1, got {value}")


class LossModel(Protocol):
    """A Markov loss model: ``draw`` continues a chain from ``bad`` (the state of the next packet)."""

    @property
    def mean_loss_rate(self) -> float: ...

    def draw(self, n: int, rng: np.random.Generator, bad: bool) -> tuple[np.ndarray, bool]:
        """Loss flags (True = lost) for the next ``n`` packets, and the state of the packet after them."""
        ...


@dataclass(frozen=True)
class BernoulliLoss:
    """netem ``loss random P``: every packet is lost independently with probability ``p``."""

    p: float

    def __post_init__(self) -> None:
        check_probability("loss probability", self.p)

    @property
    def mean_loss_rate(self) -> float:
        return self.p

    def draw(self, n: int, rng: np.random.Generator, bad: bool) -> tuple[np.ndarray, bool]:
        return rng.random(n) < self.p, bad


@dataclass(frozen=True)
class GilbertElliottLoss:
    """netem ``loss gemodel p r 1-h 1-k``: a two-state chain with its own loss rate per state.

    ``p`` is the chance to move good -> bad and ``r`` bad -> good after each packet; a packet is lost
    with ``bad_loss`` (netem's 1-h) in the bad state and ``good_loss`` (1-k) in the good one. The
    chain starts in the good state, as netem's does.
    """

    p: float
    r: float
    bad_loss: float = 1.0
    good_loss: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p", "r", "bad_loss", "good_loss"):
            check_probability(f"gemodel {name}", getattr(self, name))

    @classmethod
    def netem(
        cls, p: float, r: float | None = None, one_minus_h: float | None = None, one_minus_k: float | None = None
    ) -> GilbertElliottLoss:
        """Build from netem's argument list, filling omitted values with netem's documented defaults.

        With only ``p`` (r = 1 - p, 1-h = 1, 1-k = 0) the chain is exactly Bernoulli loss at rate p.
        """
        return cls(
            p=p,
            r=1.0 - p if r is None else r,
            bad_loss=1.0 if one_minus_h is None else one_minus_h,
            good_loss=0.0 if one_minus_k is None else one_minus_k,
        )

    @property
    def bad_state_share(self) -> float:
        """Stationary probability of the bad state, p / (p + r)."""
        total = self.p + self.r
        return 0.0 if total == 0.0 else self.p / total

    @property
    def mean_loss_rate(self) -> float:
        share = self.bad_state_share
        return share * self.bad_loss + (1.0 - share) * self.good_loss

    def draw(self, n: int, rng: np.random.Generator, bad: bool) -> tuple[np.ndarray, bool]:
        # Vectorised through sojourn times: the chain stays in a state for a geometric number of
        # packets (mean 1/p in good, 1/r in bad), so whole runs are drawn at once instead of packets.
        states = self._states(n + 1, rng, bad)
        loss_rate = np.where(states[:n], self.bad_loss, self.good_loss)
        return rng.random(n) < loss_rate, bool(states[n])

    def _states(self, n: int, rng: np.random.Generator, bad: bool) -> np.ndarray:
        """Bad-state flags of ``n`` consecutive packets starting in state ``bad``."""
        packets_per_cycle = self._mean_sojourn(self.p, n) + self._mean_sojourn(self.r, n)
        cycles = math.ceil(n / packets_per_cycle) + 4
        pieces: list[np.ndarray] = []
        covered = 0
        while covered < n:
            good_runs = self._sojourns(self.p, cycles, rng, n)
            bad_runs = self._sojourns(self.r, cycles, rng, n)
            first, second = (bad_runs, good_runs) if bad else (good_runs, bad_runs)
            runs = np.stack([first, second], axis=1).ravel()
            flags = np.tile([bad, not bad], cycles)
            pieces.append(np.repeat(flags, runs))
            covered += int(runs.sum())
        return np.concatenate(pieces)[:n]

    @staticmethod
    def _mean_sojourn(leave: float, cap: int) -> float:
        return float(cap) if leave == 0.0 else min(1.0 / leave, float(cap))

    @staticmethod
    def _sojourns(leave: float, count: int, rng: np.random.Generator, cap: int) -> np.ndarray:
        """Run lengths of a state left with probability ``leave`` after each packet (never left if 0)."""
        if leave == 0.0:
            return np.full(count, cap, dtype=np.int64)
        return np.minimum(rng.geometric(leave, count), cap)


class LossProcess:
    """One seeded stream of loss decisions from a model, consumed in any mix of bulk and single draws.

    Decisions are generated in fixed blocks, so the stream depends only on the model and the seed,
    never on how callers slice it: ``draw(n)`` equals ``n`` calls of ``lose()``.
    """

    BLOCK = 4096

    def __init__(self, model: LossModel, seed: int | np.random.SeedSequence | None = None) -> None:
        self.model = model
        self._rng = np.random.default_rng(seed)
        self._bad = False
        self._buffer = np.zeros(0, dtype=bool)
        self._position = 0

    def lose(self) -> bool:
        """Whether the next packet is lost."""
        if self._position == len(self._buffer):
            self._refill()
        lost = bool(self._buffer[self._position])
        self._position += 1
        return lost

    def draw(self, n: int) -> np.ndarray:
        """Loss flags (True = lost) for the next ``n`` packets."""
        if n < 0:
            raise ValueError(f"cannot draw a loss pattern for {n} packets")
        parts: list[np.ndarray] = []
        needed = n
        while needed > 0:
            if self._position == len(self._buffer):
                self._refill()
            take = min(needed, len(self._buffer) - self._position)
            parts.append(self._buffer[self._position : self._position + take])
            self._position += take
            needed -= take
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)

    def _refill(self) -> None:
        self._buffer, self._bad = self.model.draw(self.BLOCK, self._rng, self._bad)
        self._position = 0


def loss_pattern(model: LossModel, n: int, seed: int | np.random.SeedSequence | None = None) -> np.ndarray:
    """Loss flags (True = lost) for ``n`` packets; the same seed always gives the same pattern."""
    return LossProcess(model, seed).draw(n)
