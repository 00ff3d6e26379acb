"""Fig. 9 and Fig. 10 surfaces: packet loss, and the quality f_p predicts from it, over symbol error
rate and packet count, cut by a threshold plane; the black line is the planner's choice per SER."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .figures import new_figure, png_bytes
from .planner import PlanError, QualityCurve, loss_rate, plan_packets

GRID = 48


@dataclass(frozen=True)
class Link:
    bits: int
    header: int
    origin: int

    def ser_range(self, ser: float) -> np.ndarray:
        """From the SER at which the data sent as one packet is lost 1% of the time, to the one at which
        1-byte payloads are lost 99% of the time (widened to include ``ser``)."""
        low = -math.expm1(math.log(0.99) * self.bits / (8 * (self.header + self.origin)))
        high = -math.expm1(math.log(0.01) * self.bits / (8 * (self.header + 1)))
        if ser > 0:
            low, high = min(low, ser), max(high, ser)
        return np.geomspace(low, high, GRID)

    def packet_range(self) -> np.ndarray:
        return np.unique(np.geomspace(1, self.origin, GRID).round()).astype(int)

    def loss_grid(self, sers: np.ndarray, packets: np.ndarray) -> np.ndarray:
        return np.array([[loss_rate(s, self.header, self.origin, n, self.bits) for s in sers] for n in packets])

    def best_line(self, sers: np.ndarray, max_loss: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SER, packets and loss of the plan at each SER where ``max_loss`` is reachable (None: nowhere)."""
        points = []
        for ser in sers if max_loss is not None else ():
            try:
                plan = plan_packets(ser, self.bits, self.header, self.origin, max_loss)
            except PlanError:
                continue
            points.append((ser, plan.packets, plan.loss_rate))
        return tuple(np.array(column) for column in zip(*points)) if points else (np.array([]),) * 3


def _surface(link: Link, ser: float, z_of_loss: Callable, threshold: float, max_loss: float | None, z_label: str,
             title: str) -> bytes:
    sers, packets = link.ser_range(ser), link.packet_range()
    x, y = np.meshgrid(np.log10(sers), np.log10(packets))
    figure = new_figure((8, 6))
    ax = figure.add_subplot(projection="3d")
    ax.plot_surface(x, y, z_of_loss(link.loss_grid(sers, packets)), cmap="viridis", alpha=0.85, linewidth=0)
    ax.plot_surface(x, y, np.full_like(x, threshold), color="red", alpha=0.25, linewidth=0)
    line_ser, line_packets, line_loss = link.best_line(sers, max_loss)
    if line_ser.size:
        ax.plot(np.log10(line_ser), np.log10(line_packets), z_of_loss(line_loss), color="black", linewidth=2.5,
                label="fewest packets meeting the threshold")
        ax.legend(fontsize=8)
    ax.set_xlabel("log10 symbol error rate")
    ax.set_ylabel("log10 packets N_p")
    ax.set_zlabel(z_label)
    ax.set_title(f"{title}\n{link.origin} data bytes, {link.header}-byte headers, {link.bits} bit(s)/symbol",
                 fontsize=9)
    return png_bytes(figure)


def loss_surface_png(link: Link, ser: float, max_loss: float) -> bytes:
    """Fig. 9: packet loss rate (eq. 6) with the ``max_loss`` plane."""
    return _surface(link, ser, lambda loss: loss, max_loss, max_loss, "packet loss rate",
                    f"packet loss, threshold {max_loss:.3g}")


def quality_surface_png(link: Link, ser: float, curve: QualityCurve, min_quality: float) -> bytes:
    """Fig. 10: f_p of the packet loss rate with the ``min_quality`` plane."""
    try:
        max_loss: float | None = curve.max_loss_for(min_quality)
    except PlanError:
        max_loss = None  # no loss rate is good enough: no line to draw
    return _surface(link, ser, curve, min_quality, max_loss, "MS-SSIM (f_p)", f"MS-SSIM, threshold {min_quality:g}")
