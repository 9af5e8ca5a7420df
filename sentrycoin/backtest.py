"""Backtesting: score alerts against labelled crash windows; sweep thresholds.

The pipeline is run once per input (simulated seed, later a recording) and
the book's (event_ms, bid_volume, ask_volume, mid, clock_ms) after every
applied message is kept (`SeriesRecorder`).  The detector only ever sees
the two volumes and the market's local clock (`Market.clock_ms()`: the
simulated or recorded receive time, not the venue's event time), so
re-running `ImbalanceDetector.evaluate_volumes` over the series gives
exactly the alerts the full pipeline would give at another threshold: a
sweep costs one cheap pass per threshold, not a re-run.

Scoring (per symbol, per labelled `CrashWindow`):

* detected: an alert in [start - early_ms, bottom) — before the price bottom;
  lead time = first such alert - window start (how long after the first
  precursor the alarm came), warning = bottom - that alert (how much
  warning was left);
* late: the first alert falls in [bottom, end] (counted as missed);
* missed: no alert before the bottom;
* false alert: an alert outside every window's [start - early_ms, end];
  `false_per_day` is per monitored market per day of data.

`backtest_simulated(...)` runs a scenario over N seeds; `run_cli(...)` is what
`sentrycoin backtest --simulate ...` calls.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from sentrycoin.market import DetectorSettings, Market
from sentrycoin.sim.scenarios import CrashWindow, ScenarioSpec, load_scenario

DAY_MS = 86_400_000
#: danger ratios for the default sweep: 1.5 .. 6.0 in steps of 0.25
DEFAULT_THRESHOLDS = tuple(round(1.5 + 0.25 * i, 2) for i in range(19))


# -- recording --------------------------------------------------------------------------


@dataclass(slots=True)
class Series:
    """One market's book numbers after every applied message (valid book only)."""

    symbol: str
    event_ms: np.ndarray  # int64
    bid_volume: np.ndarray  # float64
    ask_volume: np.ndarray
    mid: np.ndarray
    # int64, the detector's clock at each row; None: the same as event_ms.
    clock_ms: np.ndarray | None = None

    @property
    def ratio(self) -> np.ndarray:
        # Same convention as the detector: inf when only asks remain, NaN when empty.
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.ask_volume / self.bid_volume

    def __len__(self) -> int:
        return len(self.event_ms)


class SeriesRecorder:
    """An observer for any frame source: `recorder(market)` after each applied message."""

    def __init__(self) -> None:
        self._rows: dict[str, list[tuple[int, float, float, float, int]]] = {}

    def __call__(self, market: Market) -> None:
        if not market.valid or market.last_event_ms is None:
            return
        book = market.book
        mid = market.mid_price()
        self._rows.setdefault(market.symbol, []).append(
            (market.last_event_ms, book.bid_volume, book.ask_volume, math.nan if mid is None else mid,
             market.clock_ms()))

    def series(self) -> dict[str, Series]:
        out = {}
        for symbol, rows in self._rows.items():
            times = np.array([(r[0], r[4]) for r in rows], dtype=np.int64).reshape(-1, 2)
            a = np.array([r[1:4] for r in rows], dtype=float).reshape(-1, 3)
            out[symbol] = Series(symbol, times[:, 0].copy(), a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy(),
                                 times[:, 1].copy())
        return out


def detect(series: Series, settings: DetectorSettings) -> list[tuple[int, int]]:
    """(event_ms, severity) of every alert a fresh detector raises over the series
    (deciding on the series' clock_ms, as the pipeline did)."""
    det = settings.build()
    evaluate = det.evaluate_volumes
    clock = series.event_ms if series.clock_ms is None else series.clock_ms
    out = []
    for t, now, b, a in zip(series.event_ms.tolist(), clock.tolist(), series.bid_volume.tolist(),
                            series.ask_volume.tolist()):
        sev = evaluate(b, a, now)
        if sev:
            out.append((t, sev))
    return out


# -- scoring -----------------------------------------------------------------------------


@dataclass(slots=True)
class WindowResult:
    window: CrashWindow
    outcome: str  # detected | late | missed
    first_alert_ms: int | None
    run: str = ""  # which input (e.g. "seed 7")

    @property
    def lead_ms(self) -> int | None:
        return None if self.outcome != "detected" else self.first_alert_ms - self.window.start_ms

    @property
    def warning_ms(self) -> int | None:
        return None if self.outcome != "detected" else self.window.bottom_ms - self.first_alert_ms


@dataclass(slots=True)
class Score:
    windows: list[WindowResult] = field(default_factory=list)
    alerts: int = 0
    false_alerts: int = 0
    false_alert_ms: list[int] = field(default_factory=list)
    market_ms: int = 0  # monitored time summed over markets

    def merge(self, other: "Score") -> "Score":
        return Score(self.windows + other.windows, self.alerts + other.alerts,
                     self.false_alerts + other.false_alerts, self.false_alert_ms + other.false_alert_ms,
                     self.market_ms + other.market_ms)

    @property
    def detected(self) -> int:
        return sum(1 for w in self.windows if w.outcome == "detected")

    @property
    def late(self) -> int:
        return sum(1 for w in self.windows if w.outcome == "late")

    @property
    def missed(self) -> int:
        return len(self.windows) - self.detected

    @property
    def detection_rate(self) -> float:
        return self.detected / len(self.windows) if self.windows else math.nan

    @property
    def false_per_day(self) -> float:
        return self.false_alerts / (self.market_ms / DAY_MS) if self.market_ms > 0 else math.nan

    def lead_times_s(self) -> np.ndarray:
        return np.array([w.lead_ms / 1000 for w in self.windows if w.lead_ms is not None], dtype=float)

    def warnings_s(self) -> np.ndarray:
        return np.array([w.warning_ms / 1000 for w in self.windows if w.warning_ms is not None], dtype=float)

    def lead_percentiles(self, qs: Sequence[float] = (10, 25, 50, 75, 90)) -> dict[str, float]:
        lead = self.lead_times_s()
        if not len(lead):
            return {f"p{int(q)}": math.nan for q in qs}
        return {f"p{int(q)}": float(np.percentile(lead, q)) for q in qs}

    @property
    def median_lead_s(self) -> float:
        lead = self.lead_times_s()
        return float(np.median(lead)) if len(lead) else math.nan

    @property
    def median_warning_s(self) -> float:
        w = self.warnings_s()
        return float(np.median(w)) if len(w) else math.nan


def score(alerts_ms: dict[str, Iterable[int]], windows: Iterable[CrashWindow], market_ms: int,
          *, early_ms: int = 0, run: str = "", unscored: Iterable[CrashWindow] = ()) -> Score:
    """Score alert times (per symbol) against labelled windows.

    `market_ms` is the monitored time summed over markets (for false alerts
    per day); `early_ms` accepts alerts that slightly precede a window's start.
    Alerts inside `unscored` windows (crashes the data cut off half way) count
    neither way.
    """
    by_symbol: dict[str, list[CrashWindow]] = {}
    for w in windows:
        by_symbol.setdefault(w.symbol, []).append(w)
    skip: dict[str, list[CrashWindow]] = {}
    for w in unscored:
        skip.setdefault(w.symbol, []).append(w)
    result = Score(market_ms=market_ms)
    for symbol in sorted(set(by_symbol) | set(alerts_ms)):
        times = sorted(t for t in alerts_ms.get(symbol, ())
                       if not any(w.start_ms - early_ms <= t <= w.end_ms for w in skip.get(symbol, ())))
        wins = sorted(by_symbol.get(symbol, []), key=lambda w: w.start_ms)
        result.alerts += len(times)
        for w in wins:
            before = [t for t in times if w.start_ms - early_ms <= t < w.bottom_ms]
            after = [t for t in times if w.bottom_ms <= t <= w.end_ms]
            if before:
                result.windows.append(WindowResult(w, "detected", before[0], run))
            elif after:
                result.windows.append(WindowResult(w, "late", after[0], run))
            else:
                result.windows.append(WindowResult(w, "missed", None, run))
        for t in times:
            if not any(w.start_ms - early_ms <= t <= w.end_ms for w in wins):
                result.false_alerts += 1
                result.false_alert_ms.append(t)
    return result


@dataclass(slots=True)
class Recording:
    """What one run of the pipeline leaves for scoring."""

    series: dict[str, Series]
    windows: list[CrashWindow]  # crashes wholly inside the data
    partial: list[CrashWindow] = field(default_factory=list)  # crashes the data cut off


def score_series(rec: Recording, settings: DetectorSettings, *, early_ms: int = 0, run: str = "") -> Score:
    alerts = {s: [t for t, _ in detect(ser, settings)] for s, ser in rec.series.items()}
    market_ms = sum(int(ser.event_ms[-1] - ser.event_ms[0]) for ser in rec.series.values() if len(ser))
    return score(alerts, rec.windows, market_ms, early_ms=early_ms, run=run, unscored=rec.partial)


# -- threshold sweep ---------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class SweepRow:
    danger_ratio: float
    windows: int
    detected: int
    late: int
    missed: int
    detection_rate: float
    alerts: int
    false_alerts: int
    false_per_day: float
    median_lead_s: float
    median_warning_s: float


def sweep(inputs: Sequence[Recording],
          thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
          base: DetectorSettings | None = None, *, early_ms: int = 0) -> list[SweepRow]:
    """Re-run only the detector per threshold over recorded series."""
    base = base or DetectorSettings()
    rows = []
    for th in thresholds:
        settings = dataclasses.replace(base, danger_ratio=float(th), rearm_ratio=None)
        total = Score()
        for rec in inputs:
            total = total.merge(score_series(rec, settings, early_ms=early_ms))
        rows.append(_row(float(th), total))
    return rows


def _row(th: float, s: Score) -> SweepRow:
    return SweepRow(th, len(s.windows), s.detected, s.late, s.missed, s.detection_rate, s.alerts,
                    s.false_alerts, s.false_per_day, s.median_lead_s, s.median_warning_s)


SWEEP_COLUMNS = [f.name for f in dataclasses.fields(SweepRow)]


def write_sweep_csv(rows: Sequence[SweepRow], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SWEEP_COLUMNS)
        for r in rows:
            w.writerow([_fmt(getattr(r, c)) for c in SWEEP_COLUMNS])
    return path


def write_windows_csv(s: Score, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "symbol", "kind", "start_ms", "fall_ms", "bottom_ms", "end_ms", "outcome",
                    "first_alert_ms", "lead_s", "warning_s"])
        for r in s.windows:
            win = r.window
            w.writerow([r.run, win.symbol, win.kind, win.start_ms, win.fall_ms, win.bottom_ms, win.end_ms,
                        r.outcome, "" if r.first_alert_ms is None else r.first_alert_ms,
                        "" if r.lead_ms is None else r.lead_ms / 1000,
                        "" if r.warning_ms is None else r.warning_ms / 1000])
    return path


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def sweep_table(rows: Sequence[SweepRow], title: str = "Threshold sweep", mark: float | None = None):
    """A rich Table of the sweep; `mark` highlights the configured threshold."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0), caption_justify="left",
                  caption="crash: labelled crashes; ok: alerted before the price bottom; late: only after it; "
                          "f/day: false alerts per market-day; lead: median s from crash start to alert; "
                          "warn: median s from alert to bottom")
    # Short headers: the table must fit an 80-column terminal.
    for name in ("danger", "crash", "ok", "late", "miss", "rate", "alerts", "false", "f/day", "lead", "warn"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in rows:
        style = "bold" if mark is not None and abs(r.danger_ratio - mark) < 1e-9 else None
        table.add_row(f"{r.danger_ratio:.2f}", str(r.windows), str(r.detected), str(r.late), str(r.missed),
                      _pct(r.detection_rate), str(r.alerts), str(r.false_alerts), _num(r.false_per_day),
                      _num(r.median_lead_s), _num(r.median_warning_s), style=style)
    return table


def _pct(v: float) -> str:
    return "-" if math.isnan(v) else f"{100 * v:.0f}%"


def _num(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.1f}"


# -- chart --------------------------------------------------------------------------------


def plot_series(series: Series, windows: Sequence[CrashWindow], alerts_ms: Sequence[int], danger_ratio: float,
                path: str | Path, title: str = "") -> Path:
    """PNG: mid price above, ratio (log scale) with the danger line below; alerts and windows marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = int(series.event_ms[0]) if len(series) else 0
    t = (series.event_ms - t0) / 1000.0
    fig = Figure(figsize=(11, 6.5), dpi=100)
    FigureCanvasAgg(fig)  # Agg without touching the global backend
    ax_p, ax_r = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1]})
    ax_p.plot(t, series.mid, lw=0.8, color="tab:blue")
    ax_p.set_ylabel(f"{series.symbol} mid")
    ratio = np.clip(series.ratio, 1e-3, 1e4)
    ax_r.plot(t, ratio, lw=0.7, color="tab:gray", label="ask/bid ratio (top N)")
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
        ax_p.set_title(title)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


# -- simulated backtests ---------------------------------------------------------------------


def record_simulated(scenario: str | ScenarioSpec, seed: int, symbols: Sequence[str], *, depth: int = 50,
                     duration_s: float | None = None) -> Recording:
    """Run a scenario once through the real pipeline (BinanceSpotHandler, books) and record the series."""
    from sentrycoin.sim.source import simulated_source

    spec = load_scenario(scenario) if isinstance(scenario, str) else scenario
    recorder = SeriesRecorder()
    src = simulated_source(list(symbols), scenario=spec, seed=seed, depth=depth, realtime=False, observer=recorder)
    if duration_s is None and spec.duration_s is None:
        duration_s = 3600.0  # endless scenarios (mixed): one hour unless told
    until = None if duration_s is None else src.generator.start_ms + int(duration_s * 1000)
    src.run_until(until)
    end_ms = src.generator.now_ms
    # Only crashes wholly inside the run can be scored.
    drawn = [w for w in src.generator.windows() if w.start_ms < end_ms]
    return Recording(recorder.series(), [w for w in drawn if w.end_ms <= end_ms],
                     [w for w in drawn if w.end_ms > end_ms])


@dataclass(slots=True)
class SimBacktest:
    scenario: str
    seeds: list[int]
    symbols: list[str]
    settings: DetectorSettings
    score: Score
    sweep: list[SweepRow]
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> dict[str, float | int | str]:
        s = self.score
        out: dict[str, float | int | str] = {
            "scenario": self.scenario, "seeds": len(self.seeds), "symbols": ",".join(self.symbols),
            "danger_ratio": self.settings.danger_ratio, "windows": len(s.windows), "detected": s.detected,
            "late": s.late, "missed": s.missed, "detection_rate": s.detection_rate, "alerts": s.alerts,
            "false_alerts": s.false_alerts, "false_per_day": s.false_per_day,
            "median_lead_s": s.median_lead_s, "median_warning_s": s.median_warning_s,
        }
        out.update({f"lead_{k}_s": v for k, v in s.lead_percentiles().items()})
        return out


def backtest_simulated(
    scenario: str | ScenarioSpec = "flash_crash",
    seeds: int | Sequence[int] = 20,
    *,
    symbols: Sequence[str] = ("BTC-USDT",),
    settings: DetectorSettings | None = None,
    thresholds: Iterable[float] | None = DEFAULT_THRESHOLDS,
    duration_s: float | None = None,
    depth: int = 50,
    early_ms: int = 0,
    out_dir: str | Path | None = None,
) -> SimBacktest:
    """Run `scenario` for each seed (0..seeds-1, or the given list), score alerts at `settings`,
    sweep `thresholds` (None: no sweep) and, with `out_dir`, write sweep.csv, windows.csv,
    summary.csv and chart.png (the first seed's first symbol)."""
    spec = load_scenario(scenario) if isinstance(scenario, str) else scenario
    settings = settings or DetectorSettings()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("need at least one seed")
    inputs = []
    total = Score()
    for seed in seed_list:
        rec = record_simulated(spec, seed, symbols, depth=depth, duration_s=duration_s)
        inputs.append(rec)
        total = total.merge(score_series(rec, settings, early_ms=early_ms, run=f"seed {seed}"))
    rows = sweep(inputs, thresholds, settings, early_ms=early_ms) if thresholds is not None else []
    result = SimBacktest(spec.name, seed_list, list(symbols), settings, total, rows)
    if out_dir is not None:
        _write_outputs(result, inputs[0], Path(out_dir), f"{spec.name}, seed {seed_list[0]}")
    return result


def _write_outputs(result: SimBacktest, first: Recording, out: Path, title: str) -> None:
    """sweep.csv, windows.csv, summary.csv and chart.png (the first symbol of `first`)."""
    if result.sweep:
        result.files["sweep_csv"] = write_sweep_csv(result.sweep, out / "sweep.csv")
    result.files["windows_csv"] = write_windows_csv(result.score, out / "windows.csv")
    summary = result.summary()
    with (out / "summary.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(summary))
        w.writerow([_fmt(v) for v in summary.values()])
    result.files["summary_csv"] = out / "summary.csv"
    sym = next((s for s in result.symbols if s in first.series and len(first.series[s])), None)
    if sym is not None:
        alerts0 = [t for t, _ in detect(first.series[sym], result.settings)]
        result.files["chart_png"] = plot_series(
            first.series[sym], first.windows + first.partial, alerts0, result.settings.danger_ratio,
            out / "chart.png", title=f"{title}: {sym}")


# -- recorded data ------------------------------------------------------------------------------


def record_replay(paths: Sequence[str | Path], *, depth: int | None = None) -> dict[str, Series]:
    """Replay recordings / Tardis CSVs through the real pipeline and record each market's series."""
    from sentrycoin.replay import replay_files

    recorder = SeriesRecorder()
    replay_files(paths, depth=depth, observer=recorder)
    return recorder.series()


def backtest_recorded(
    paths: Sequence[str | Path],
    labels: Sequence[CrashWindow],
    *,
    settings: DetectorSettings | None = None,
    thresholds: Iterable[float] | None = DEFAULT_THRESHOLDS,
    depth: int | None = None,
    early_ms: int = 0,
    out_dir: str | Path | None = None,
) -> SimBacktest:
    """Score the detector on recorded data against labelled crash windows (symbol, start, end)."""
    settings = settings or DetectorSettings()
    series = record_replay(paths, depth=depth)
    if not series:
        raise ValueError("the recordings produced no valid book updates")
    first_ms = min(int(ser.event_ms[0]) for ser in series.values() if len(ser))
    last_ms = max(int(ser.event_ms[-1]) for ser in series.values() if len(ser))
    inside = [w for w in labels if first_ms <= w.start_ms and w.end_ms <= last_ms]
    partial = [w for w in labels if w not in inside and w.start_ms <= last_ms and w.end_ms >= first_ms]
    rec = Recording(series, inside, partial)
    total = score_series(rec, settings, early_ms=early_ms, run="recording")
    rows = sweep([rec], thresholds, settings, early_ms=early_ms) if thresholds is not None else []
    name = ", ".join(Path(p).name for p in paths)
    result = SimBacktest(name, [], sorted(series), settings, total, rows)
    if out_dir is not None:
        _write_outputs(result, rec, Path(out_dir), "recording")
    return result


def _time_ms(raw: str, where: str) -> int:
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        from datetime import datetime, timezone

        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{where}: {raw!r} is neither Unix ms nor an ISO-8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return int(parsed.timestamp() * 1000)
    # Unix seconds, ms or us: pick by magnitude.
    if value < 1e11:
        value *= 1000
    elif value > 1e14:
        value /= 1000
    return int(value)


def load_labels(path: str | Path) -> list[CrashWindow]:
    """Crash labels: CSV with columns symbol, start, end (Unix s/ms/us or ISO-8601 UTC) and
    optionally bottom (the low; defaults to end).  The windows.csv this module writes works too."""
    out = []
    with Path(path).open(newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if {"start_ms", "bottom_ms", "end_ms"} <= cols:
            return load_windows_csv(path)
        if not {"symbol", "start", "end"} <= cols:
            raise ValueError(f"{path}: labels need columns symbol,start,end (optional bottom); got {sorted(cols)}")
        for i, row in enumerate(reader, start=2):
            where = f"{path}:{i}"
            start = _time_ms(row["start"], where)
            end = _time_ms(row["end"], where)
            bottom = _time_ms(row["bottom"], where) if row.get("bottom") else end
            if not start <= bottom <= end:
                raise ValueError(f"{where}: need start <= bottom <= end")
            out.append(CrashWindow(row["symbol"].strip().upper(), row.get("kind") or "labelled", start, start,
                                   bottom, end))
    return out


def print_report(result: SimBacktest, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    s = result.score
    t = Table(title=f"Simulated backtest: {result.scenario} x {len(result.seeds)} seeds "
                    f"({', '.join(result.symbols)}), danger {result.settings.danger_ratio:g}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    lead = s.lead_percentiles()
    for k, v in (("crash windows", str(len(s.windows))), ("detected before bottom", str(s.detected)),
                 ("late (after bottom)", str(s.late)), ("missed", str(s.missed)),
                 ("detection rate", _pct(s.detection_rate)), ("alerts", str(s.alerts)),
                 ("false alerts", str(s.false_alerts)), ("false alerts / market-day", _num(s.false_per_day)),
                 ("lead time p10/p50/p90 s", f"{_num(lead['p10'])} / {_num(lead['p50'])} / {_num(lead['p90'])}"),
                 ("warning before bottom p50 s", _num(s.median_warning_s))):
        t.add_row(k, v)
    console.print(t)
    if result.sweep:
        console.print(sweep_table(result.sweep, mark=result.settings.danger_ratio))
    for name, path in result.files.items():
        console.print(f"{name}: {path}")


def run_cli(
    scenario: str = "flash_crash",
    seeds: int = 20,
    *,
    symbols: Sequence[str] = ("BTC-USDT",),
    danger_ratio: float = 2.5,
    min_persistence_ms: int = 0,
    cooldown_s: float = 300.0,
    duration_s: float | None = None,
    sweep_thresholds: bool = True,
    out_dir: str | Path | None = "backtest-out",
    console=None,
) -> int:
    """`sentrycoin backtest --simulate --scenario NAME|FILE.toml --seeds N`: prints the report,
    writes the files; returns a process exit code (2 for a bad scenario)."""
    from rich.console import Console

    from sentrycoin.sim.scenarios import ScenarioError

    console = console or Console()
    settings = DetectorSettings(danger_ratio=danger_ratio, min_persistence_ms=min_persistence_ms,
                                cooldown_s=cooldown_s)
    try:
        result = backtest_simulated(scenario, seeds, symbols=symbols, settings=settings,
                                    thresholds=DEFAULT_THRESHOLDS if sweep_thresholds else None,
                                    duration_s=duration_s, out_dir=out_dir)
    except (ScenarioError, ValueError) as exc:
        console.print(f"[red]backtest: {exc}[/red]")
        return 2
    print_report(result, console)
    return 0


# -- labelled windows for recorded data -----------------------------------------------------


def load_windows_csv(path: str | Path) -> list[CrashWindow]:
    """Crash labels for a recording, in the windows.csv format this module writes
    (columns symbol, kind, start_ms, fall_ms, bottom_ms, end_ms; others ignored)."""
    out = []
    with Path(path).open(newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            try:
                out.append(CrashWindow(row["symbol"], row.get("kind") or "crash", int(row["start_ms"]),
                                       int(row.get("fall_ms") or row["start_ms"]), int(row["bottom_ms"]),
                                       int(row["end_ms"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{i}: bad crash window row ({exc!r})") from None
            w = out[-1]
            if not (w.start_ms <= w.fall_ms <= w.bottom_ms <= w.end_ms):
                raise ValueError(f"{path}:{i}: need start_ms <= fall_ms <= bottom_ms <= end_ms")
    return out


# -- argparse glue (the CLI may mount this as `sentrycoin backtest`) --------------------------------


def register(sub) -> None:
    p = sub.add_parser("backtest", help="score the detector against labelled crashes (recordings or simulated scenarios)")
    p.add_argument("files", nargs="*", help="recordings (*.jsonl.zst) or Tardis CSVs to backtest (with --labels)")
    p.add_argument("--labels", help="CSV of known crash windows: symbol,start,end[,bottom] (Unix time or ISO-8601)")
    p.add_argument("--simulate", action="store_true", help="run a simulated scenario over many seeds")
    p.add_argument("--scenario", default="flash_crash",
                   help="normal, flash_crash, whale_dump, spoof, recovery, mixed, or a .toml file")
    p.add_argument("--seeds", type=int, default=20, help="number of seeds (0..N-1)")
    p.add_argument("--symbols", default="BTC-USDT", help="comma-separated BASE-QUOTE symbols")
    p.add_argument("--danger-ratio", type=float, default=2.5)
    p.add_argument("--min-persistence-ms", type=int, default=0)
    p.add_argument("--cooldown-s", type=float, default=300.0)
    p.add_argument("--duration-s", type=float, help="simulated seconds per seed (endless scenarios: 3600)")
    p.add_argument("--no-sweep", action="store_true", help="skip the threshold sweep")
    p.add_argument("--out", default="backtest-out", help="folder for sweep.csv, windows.csv, summary.csv, chart.png")
    p.set_defaults(func=cmd_backtest)


def cmd_backtest(args) -> int:
    if not args.simulate:
        return _cmd_backtest_recorded(args)
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    return run_cli(args.scenario, args.seeds, symbols=symbols, danger_ratio=args.danger_ratio,
                   min_persistence_ms=args.min_persistence_ms, cooldown_s=args.cooldown_s,
                   duration_s=args.duration_s, sweep_thresholds=not args.no_sweep, out_dir=args.out)


def _cmd_backtest_recorded(args) -> int:
    import sys

    from rich.console import Console

    if not args.files or not args.labels:
        print("sentrycoin backtest: give recordings and --labels FILE, or --simulate --scenario NAME", file=sys.stderr)
        return 2
    console = Console()
    settings = DetectorSettings(danger_ratio=args.danger_ratio, min_persistence_ms=args.min_persistence_ms,
                                cooldown_s=args.cooldown_s)
    try:
        labels = load_labels(args.labels)
        result = backtest_recorded(args.files, labels, settings=settings,
                                   thresholds=None if args.no_sweep else DEFAULT_THRESHOLDS, out_dir=args.out)
    except (OSError, ValueError) as exc:
        print(f"sentrycoin backtest: {exc}", file=sys.stderr)
        return 2
    print_report(result, console)
    return 0
