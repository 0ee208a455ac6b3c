"""The report's plots: matplotlib SVG, units on every axis, readable printed in grey (black
and grey lines told apart by marker and dash, never by colour alone)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis import trends as tr

WEEK_S = tr.WEEK_S
STYLE: Any = {  # rc parameters (typed loosely: matplotlib types them as literals)
    "font.family": "DejaVu Sans",
    "font.size": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#cccccc",
    "grid.linewidth": 0.5,
    "axes.edgecolor": "#333333",
    "svg.fonttype": "none",  # text stays text: smaller files, searchable PDF
    "svg.hashsalt": "poise-report",  # the same data gives the same SVG
}
INK = "#000000"
GREY = "#777777"
BAND = "#dddddd"


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buf.getvalue()


def _weeks(t_s: Sequence[float], t0_s: float) -> list[float]:
    return [(t - t0_s) / WEEK_S for t in t_s]


def _figure(rows: int = 1, height_in: float = 2.3) -> tuple[Figure, list[Axes]]:
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(6.6, height_in * rows), layout="constrained")
        axes = [fig.add_subplot(rows, 1, i + 1) for i in range(rows)]
    return fig, axes


def trend_plot(
    s: tr.Series,
    t: tr.Trend,
    t0_s: float,
    ylabel: str,
    *,
    lines: Sequence[tuple[float, str, str]] = (),
) -> str:
    """Values per session, the baseline with its MDC band, the Theil-Sen line and any
    reference lines (value, label, dash)."""
    with mpl.rc_context(STYLE):
        fig, (ax,) = _figure()
        x = _weeks(s.t_s, t0_s)
        if math.isfinite(t.mdc) and math.isfinite(t.baseline):
            ax.axhspan(
                t.baseline - t.mdc,
                t.baseline + t.mdc,
                facecolor=BAND,
                hatch="///",
                edgecolor="#aaaaaa",
                linewidth=0,
                label="baseline ± MDC95",
            )
            ax.axhline(t.baseline, color=GREY, linewidth=1, label="baseline")
        ax.plot(
            x,
            s.values,
            marker="o",
            markersize=3.5,
            linestyle="-",
            linewidth=0.8,
            color=INK,
            label="per session",
        )
        if len(x) > 1 and math.isfinite(t.slope_per_week):
            mid_x = sum(x) / len(x)
            mid_y = sorted(s.values)[len(s.values) // 2]
            xs = [x[0], x[-1]]
            ax.plot(
                xs,
                [mid_y + t.slope_per_week * (v - mid_x) for v in xs],
                color=INK,
                linestyle="--",
                linewidth=1.2,
                label=f"trend {t.slope_per_week:+.3g}/week",
            )
        for value, label, dash in lines:
            ax.axhline(value, color=INK, linestyle=dash, linewidth=1.0, label=label)
        ax.set_xlabel("week of the period")
        ax.set_ylabel(ylabel)
        ax.legend(loc="best", fontsize=7, frameon=False)
        return _svg(fig)


def panels_plot(
    panels: Sequence[
        tuple[str, Sequence[float], Sequence[float], Sequence[tuple[float, str, str]], str]
    ],
    t0_s: float,
) -> str:
    """Stacked panels sharing the week axis: (ylabel, t_s, values, reference lines, style)
    with style "line" or "bar"."""
    with mpl.rc_context(STYLE):
        fig, axes = _figure(len(panels), 1.7)
        for ax, (ylabel, t_s, values, refs, style) in zip(axes, panels, strict=True):
            x = _weeks(t_s, t0_s) if style != "bar" else list(t_s)
            if not values:
                ax.text(
                    0.5,
                    0.5,
                    "no data in this period",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    color=GREY,
                )
            elif style == "bar":
                ax.bar(x, values, width=0.7, color=BAND, edgecolor=INK, linewidth=0.6)
            else:
                ax.plot(x, values, marker="s", markersize=3.5, linewidth=0.8, color=INK)
            for value, label, dash in refs:
                ax.axhline(value, color=INK, linestyle=dash, linewidth=1.0, label=label)
            if refs:
                ax.legend(loc="best", fontsize=7, frameon=False)
            ax.set_ylabel(ylabel)
        axes[-1].set_xlabel("week of the period")
        return _svg(fig)
