"""Packetisation planning (paper, section III, eq. 1-10): how many packets to cut a GOP's data into.

A packet is lost when any of its symbols is in error, so longer packets are lost more often (eq. 1-3);
cutting the data into more packets shortens them (eq. 4) but repeats the headers (eq. 5). The planner
finds the fewest packets whose loss rate meets a threshold, given either directly or as a semantic
quality floor through the measured curve f_p of MS-SSIM against packet loss (eq. 8, 10).

Lengths are bytes, ``bits`` is bits per symbol (the paper's M, modulation order 2**M), ``ser`` the
symbol error rate P_s. The equations take real numbers as in the paper; the plan uses whole-byte
payloads (the largest packet, ``ceil(data / packets)`` bytes, sets the loss rate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np


class PlanError(ValueError):
    """A threshold no packetisation can meet, or unusable planning input."""


def symbols_per_packet(packet_bytes: float, bits: int) -> float:
    """Eq. 2: N_symbol = 8 * P_length / M."""
    return 8 * packet_bytes / bits


def packet_loss(ser: float, packet_bytes: float, bits: int) -> float:
    """Eq. 1: P_L = 1 - (1 - P_s)^N_symbol (computed as -expm1(N log1p(-P_s)) to stay exact at tiny SER)."""
    if ser >= 1.0:
        return 1.0
    return -math.expm1(symbols_per_packet(packet_bytes, bits) * math.log1p(-ser))


def packet_length(header: float, data: float) -> float:
    """Eq. 3: P_length = L_head + L_data."""
    return header + data


def payload_length(origin: float, packets: float) -> float:
    """Eq. 4: L_data = L_origin / N_p."""
    return origin / packets


def total_bytes(origin: float, header: float, packets: float) -> float:
    """Eq. 5: L_total = N_p * L_head + L_origin."""
    return packets * header + origin


def loss_rate(ser: float, header: float, origin: float, packets: float, bits: int) -> float:
    """Eq. 6: packet loss with the data cut into ``packets`` equal packets."""
    return packet_loss(ser, packet_length(header, payload_length(origin, packets)), bits)


def loss_floor(ser: float, header: float, bits: int) -> float:
    """Eq. 7: the loss of the headers alone, which every packetisation exceeds."""
    return packet_loss(ser, header, bits)


def loss_slope(ser: float, header: float, origin: float, packets: float, bits: int) -> float:
    """Eq. 9: dP_L/dN_p, negative for 0 < P_s < 1 (more packets, shorter, less often lost)."""
    exponent = symbols_per_packet(packet_length(header, payload_length(origin, packets)), bits)
    return 8 * origin * math.log1p(-ser) / (bits * packets**2) * (1 - ser) ** exponent


@dataclass(frozen=True)
class Plan:
    packets: int
    payload: int
    loss_rate: float
    total_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def check_link(ser: float, bits: int, header: int, origin: int) -> None:
    if not 0.0 <= ser <= 1.0:
        raise PlanError(f"symbol error rate must be between 0 and 1, got {ser}")
    if bits < 1:
        raise PlanError(f"bits per symbol must be at least 1, got {bits}")
    if header < 0 or origin < 1:
        raise PlanError(f"need header >= 0 and data >= 1 bytes, got {header} and {origin}")


def plan_packets(ser: float, bits: int, header: int, origin: int, max_loss: float) -> Plan:
    """Eq. 10 for a loss threshold: the fewest packets (least header overhead, eq. 5) whose loss rate is at
    most ``max_loss``. The loss falls as packets are added (eq. 9), so a bisection finds the edge."""
    check_link(ser, bits, header, origin)

    def loss(packets: int) -> float:
        return packet_loss(ser, header + -(-origin // packets), bits)

    if loss(origin) > max_loss:
        raise PlanError(f"packet loss <= {max_loss:g} is out of reach at SER {ser:g}: even 1-byte payloads are "
                        f"lost at {loss(origin):.4g}, the {header}-byte headers alone at "
                        f"{loss_floor(ser, header, bits):.4g} (eq. 7)")
    low, high = 1, origin
    while low < high:
        middle = (low + high) // 2
        if loss(middle) <= max_loss:
            high = middle
        else:
            low = middle + 1
    return Plan(low, -(-origin // low), loss(low), int(total_bytes(origin, header, low)))


@dataclass(frozen=True)
class QualityCurve:
    """f_p: a quality score (MS-SSIM) against packet loss, from measurements at a few loss rates.

    Made non-increasing by a running minimum, as the paper finds f_p to be, so noise in the measurements
    never promises more quality at a higher loss than was seen at a lower one; linear in between, flat
    beyond the measured ends.
    """

    losses: tuple[float, ...]
    scores: tuple[float, ...]

    @classmethod
    def from_points(cls, points: Iterable[tuple[float, float]]) -> QualityCurve:
        worst: dict[float, float] = {}
        for loss, score in points:
            worst[loss] = min(score, worst.get(loss, score))
        if not worst:
            raise PlanError("no quality measurements to build f_p from")
        losses = sorted(worst)
        scores = np.minimum.accumulate([worst[loss] for loss in losses])
        return cls(tuple(losses), tuple(float(s) for s in scores))

    def __call__(self, loss: float | np.ndarray) -> float | np.ndarray:
        return np.interp(loss, self.losses, self.scores)

    def max_loss_for(self, threshold: float) -> float:
        """The highest measured-range loss rate at which the score is still at least ``threshold``."""
        if self.scores[0] < threshold:
            raise PlanError(f"MS-SSIM >= {threshold:g} is out of reach: the curve gives at most "
                            f"{self.scores[0]:.4f}, at loss {self.losses[0]:g}")
        for i in range(1, len(self.losses)):
            if self.scores[i] < threshold:
                (l0, l1), (s0, s1) = self.losses[i - 1 : i + 1], self.scores[i - 1 : i + 1]
                return l0 + (s0 - threshold) / (s0 - s1) * (l1 - l0)
        return self.losses[-1]


def best_quality(curve: QualityCurve, ser: float, header: int, bits: int) -> float:
    """Eq. 8: Gamma_MAX(P_s) = f_p(loss floor), the best quality any packetisation can reach."""
    return float(curve(loss_floor(ser, header, bits)))


def plan_for_quality(curve: QualityCurve, min_quality: float, ser: float, bits: int, header: int,
                     origin: int) -> tuple[float, Plan]:
    """Eq. 10 for a quality threshold: the loss rate f_p allows, and the fewest packets meeting it."""
    check_link(ser, bits, header, origin)
    gamma_max = best_quality(curve, ser, header, bits)
    if gamma_max < min_quality:
        raise PlanError(f"MS-SSIM >= {min_quality:g} is out of reach at SER {ser:g}: the {header}-byte headers "
                        f"alone are lost at {loss_floor(ser, header, bits):.4g} (eq. 7), so MS-SSIM stays below "
                        f"{gamma_max:.4f} (eq. 8)")
    max_loss = curve.max_loss_for(min_quality)
    return max_loss, plan_packets(ser, bits, header, origin, max_loss)
