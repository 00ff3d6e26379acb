"""Matplotlib without pyplot: figures drawn on the Agg canvas, so plotting needs no display and keeps no
global state between calls. Matplotlib is optional (the ``train`` extra); only plotting needs it."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class PlotError(ValueError):
    """Plotting was asked for but cannot be done here."""


def new_figure(size: tuple[float, float]) -> Figure:
    """An empty figure of ``size`` inches on an Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("plots need matplotlib: pip install matplotlib") from None
    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
