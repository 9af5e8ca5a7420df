"""Backtest charts (PNG, matplotlib's Agg canvas: no display, no global backend)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sentrycoin.sim.scenarios import CrashWindow

if TYPE_CHECKING:
    from sentrycoin.research.results import Series, SweepRow



def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # Agg without touching the global backend
    return fig


def plot_series(series: Series, windows: Sequence[CrashWindow], alerts_ms: Sequence[int], danger_ratio: float,
                path: str | Path, title: str = "") -> Path:
    """PNG: mid price above, ratio (log scale) with the danger line below; alerts and windows marked."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = int(series.event_ms[0]) if len(series) else 0
    t = (series.event_ms - t0) / 1000.0
    fig = _figure(11, 6.5)
    ax_p, ax_r = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1]})
    ax_p.plot(t, series.mid, lw=0.8, color="tab:blue")
    ax_p.set_ylabel(f"{series.symbol} mid")
    ratio = np.clip(series.ratio, 1e-3, 1e4)
    ax_r.plot(t, ratio, lw=0.7, color="tab:gray", label="ask/bid ratio")
    ax_r.axhline(danger_ratio, color="tab:red", ls="--", lw=1, label=f"danger {danger_ratio:g}")
    ax_r.set_yscale("log")
    ax_r.set_ylabel("ratio")
    ax_r.set_xlabel("seconds")
    for w in windows:
        if w.symbol != series.symbol:
            continue
        for ax in (ax_p, ax_r):
            ax.axvspan((w.start_ms - t0) / 1000, (w.end_ms - t0) / 1000, color="tab:orange", alpha=0.12)
            ax.axvline((w.bottom_ms - t0) / 1000, color="tab:orange", lw=0.8)
    for i, a in enumerate(alerts_ms):
        for ax in (ax_p, ax_r):
            ax.axvline((a - t0) / 1000, color="tab:red", lw=0.9, alpha=0.8,
                       label="alert" if (ax is ax_r and i == 0) else None)
    ax_r.legend(loc="upper right", fontsize=8)
    if title:
        ax_p.set_title(_wrap(title), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_runs(panels: Sequence[tuple[str, Series, Sequence[CrashWindow], Sequence[int]]], path: str | Path,
              title: str = "") -> Path:
    """Small multiples: one panel per run (seed), mid price with its windows and alerts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(1, len(panels))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = _figure(3.2 * cols, 2.2 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    # The grid may have more cells than panels: the spare cells stay empty.
    for ax, (name, ser, windows, alerts_ms) in zip(axes, panels, strict=False):
        t0 = int(ser.event_ms[0]) if len(ser) else 0
        ax.plot((ser.event_ms - t0) / 1000.0, ser.mid, lw=0.6, color="tab:blue")
        for w in windows:
            if w.symbol == ser.symbol:
                ax.axvspan((w.start_ms - t0) / 1000, (w.end_ms - t0) / 1000, color="tab:orange", alpha=0.2)
        for a in alerts_ms:
            ax.axvline((a - t0) / 1000, color="tab:red", lw=0.8)
        ax.set_title(f"{name}: {ser.symbol}", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(_wrap(title + "  (orange: crash windows, red: alerts)"), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_sweep(rows: Sequence[SweepRow], path: str | Path, title: str = "") -> Path:
    """Detection rate vs false alerts per day, one curve per signal, chance as a band (5-95 %);
    one panel per label set that has windows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    label_sets = [name for name in dict.fromkeys(r.labels for r in rows)
                  if any(r.labels == name and not math.isnan(r.detection_rate) for r in rows)]
    fig = _figure(7 * max(1, len(label_sets)), 5.5)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(label_sets)), squeeze=False)).ravel()
    colors = ["tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
    for ax, labels in zip(axes, label_sets or [""], strict=True):
        mine_all = [r for r in rows if r.labels == labels]
        for i, name in enumerate(dict.fromkeys(r.signal for r in rows)):
            mine = sorted((r for r in mine_all if r.signal == name and not math.isnan(r.detection_rate)),
                          key=lambda r: (r.false_per_day, r.danger_ratio))
            if not mine:
                continue
            color = colors[i % len(colors)]
            x = [r.false_per_day for r in mine]
            ax.plot(x, [r.detection_rate for r in mine], marker="o", ms=3, color=color, label=name)
            ax.fill_between(x, [r.chance_p05 for r in mine], [r.chance_p95 for r in mine], color=color,
                            alpha=0.15, label=f"{name}: chance 5-95 %")
            ax.plot(x, [r.chance_detection_rate for r in mine], ls=":", color=color, lw=1)
        ax.set_xlabel("false alerts per market-day")
        ax.set_ylabel("detection rate")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(labels or "no labelled windows", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(_wrap(title), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _wrap(title: str, width: int = 110) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(title, width))
