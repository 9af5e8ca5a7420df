"""Backtest reports for people: the rich tables, the progress bar, the console width."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress

    from sentrycoin.research.results import Backtest, SweepRow


def sweep_table(rows: Sequence[SweepRow], title: str = "Threshold sweep", mark: float | None = None):
    """A rich Table of the sweep; `mark` highlights the configured threshold."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0), caption_justify="left",
                  caption="ok: alerted before the price bottom (early: before the window's start); "
                          "late: only after the bottom; f/day: false alerts per market-day; "
                          "delay: median s from window start to alert; warn: median s from alert to bottom; "
                          "chance: random alerts at the same rate and cooldown (mean rate, "
                          "p = share of draws doing at least as well)")
    # Short headers: the table must fit a 100-column terminal.
    for name in ("signal", "danger", "wins", "ok", "early", "late", "rate", "alerts", "false", "f/day", "delay",
                 "warn", "chance", "p"):
        table.add_column(name, justify="left" if name == "signal" else "right", no_wrap=True)
    for r in rows:
        style = "bold" if mark is not None and abs(r.danger_ratio - mark) < 1e-9 else None
        table.add_row(r.signal, f"{r.danger_ratio:.2f}", str(r.windows), str(r.detected), str(r.early),
                      str(r.late), _pct(r.detection_rate), str(r.alerts), str(r.false_alerts),
                      _num(r.false_per_day), _num(r.median_delay_after_onset_s),
                      _num(r.median_warning_before_bottom_s), _pct(r.chance_detection_rate),
                      _p(r.chance_p_value), style=style)
    return table


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.0f}%"


def _num(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.1f}"


def _p(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def print_report(result: Backtest, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(f"[bold]{result.title}[/bold]")
    console.print(f"detector: danger ratio {result.settings.danger_ratio:g}, persistence "
                  f"{result.settings.min_persistence_ms} ms, cooldown {result.settings.cooldown_s:g} s; "
                  f"an alert up to {result.early_s:g} s before a window's start counts as an early detection")
    for line in result.truncated:
        console.print(f"[yellow]{line}[/yellow]")
    for sig in result.signals:
        console.print(f"signal {sig.describe()}")
    for ls in result.label_sets:
        console.print(f"\n[bold]{ls.name}[/bold] - {ls.description}")
        t = Table(title=f"at danger {result.settings.danger_ratio:g}", title_justify="left")
        t.add_column("metric")
        for row in result.at_settings:
            if row.labels == ls.name:
                t.add_column(row.signal, justify="right")
        mine = [r for r in result.at_settings if r.labels == ls.name]
        for label, fmt in (
                ("crash windows", lambda r: str(r.windows)),
                ("detected before bottom", lambda r: str(r.detected)),
                ("  of which early (before start)", lambda r: str(r.early)),
                ("late (after bottom)", lambda r: str(r.late)),
                ("missed", lambda r: str(r.missed)),
                ("detection rate", lambda r: _pct(r.detection_rate)),
                ("alerts", lambda r: str(r.alerts)),
                ("false alerts", lambda r: str(r.false_alerts)),
                ("false alerts / market-day", lambda r: _num(r.false_per_day)),
                ("delay after onset p50 s", lambda r: _num(r.median_delay_after_onset_s)),
                ("warning before bottom p50 s", lambda r: _num(r.median_warning_before_bottom_s)),
                ("chance: detection rate (5-95 %)",
                 lambda r: "-" if math.isnan(r.chance_detection_rate) else
                 f"{_pct(r.chance_detection_rate)} ({_pct(r.chance_p05)}-{_pct(r.chance_p95)})"),
                ("chance: p-value", lambda r: _p(r.chance_p_value))):
            t.add_row(label, *(fmt(r) for r in mine))
        console.print(t)
        rows = [r for r in result.sweep if r.labels == ls.name]
        if rows:
            console.print(sweep_table(rows, title=f"Threshold sweep ({ls.name})", mark=result.settings.danger_ratio))
    if result.label_sets:
        console.print(f"chance: {result.draws:,} draws (seed {result.chance_seed}) of random alert times, per market "
                      "as many as the detector raised there, uniform over its data with at least the cooldown "
                      "(or the detector's own smallest gap) between them, scored the same way")
    for name, path in result.files.items():
        console.print(f"{name}: {path}")


class maybe_progress:
    """A rich progress bar on stderr (only when asked and stderr is a terminal); yields advance(n)."""

    def __init__(self, enabled: bool, what: str, total: int | None) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.what, self.total = what, total
        self.bar: Progress | None = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = self.bar = Progress(TextColumn(self.what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                  transient=True, console=Console(stderr=True))
        bar.start()
        task = bar.add_task(self.what, total=self.total)
        return lambda n: bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def console():
    """Reports are wide: a pipe or file gets 160 columns instead of rich's 80."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=160)
