"""Backtesting: score alerts against crash windows, beside chance; sweep thresholds and signals.

The pipeline is run once per input (a simulated seed, or recorded files) and
after every applied message of a valid book the recorder keeps the event
time, the market's local clock (`Market.clock_ms()`: the simulated or
recorded receive time), the mid price and each signal's (bid value, ask
value) (`SeriesRecorder`).  The detector only ever sees those two numbers
and the local clock, so re-running
`ImbalanceDetector.evaluate_volumes` over the series gives exactly the
alerts the full pipeline would give at another threshold: a sweep costs one
cheap pass per (signal, threshold), not a re-run.

Signals (`--signals`): ``levels:N`` = ask/bid volume over the best N levels
(the detector's default, N = the book depth); ``band:B`` = ask notional /
bid notional within B basis points of the mid.  The detector's settings
(danger ratio, persistence, cooldown) apply to whichever signal is scored.

Crash windows come from the scenario (simulated runs), a labels CSV, or
the price path itself (`--label-drop`, sentrycoin/research/labels.py).

Scoring (per symbol, per window):

* detected: the first alert in [start - early_ms, bottom); an alert before
  the start is an *early* detection; delay_after_onset = alert - start
  (negative when early), warning_before_bottom = bottom - alert;
* late: the first alert falls in [bottom, end] (counted as missed);
* missed: no alert before the bottom;
* false alert: an alert outside every window's [start - early_ms, end];
  `false_per_day` is per monitored market per day of data.

Chance baseline: beside each row, `draws` seeded sets of random alert times,
per market the same number of alerts as the detector raised there, spread
uniformly over that market's data with at least the cooldown between them
(or the detector's own smallest gap there, when escalations re-alerted
inside the cooldown), scored the same way: their mean detection rate, its 5-95 % range, and the
share of draws that detect at least as many windows as the detector (the
p-value of "the detector does better than chance").
"""

from __future__ import annotations

import csv
import dataclasses
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from pathlib import Path

import numpy as np

from sentrycoin.market import DetectorSettings, Market
from sentrycoin.research.charts import plot_runs, plot_series, plot_sweep
from sentrycoin.research.labels import DropRule, label_drops, low_between, parse_drop_rule
from sentrycoin.research.report import console as report_console
from sentrycoin.research.report import maybe_progress, print_report

# Re-exported: callers take the sweep table from here, beside the rows it shows.
from sentrycoin.research.report import sweep_table as sweep_table
from sentrycoin.research.results import (
    DEFAULT_DRAWS,
    NO_CHANCE,
    SWEEP_COLUMNS,
    Backtest,
    Chance,
    LabelSet,
    Recording,
    Score,
    Series,
    SweepRow,
    WindowResult,
)
from sentrycoin.research.signals import Signal, parse_signals, signal_values
from sentrycoin.sim.scenarios import CrashWindow, ScenarioSpec, load_scenario

#: danger ratios for the default sweep: 1.5 .. 6.0 in steps of 0.25
DEFAULT_THRESHOLDS = tuple(round(1.5 + 0.25 * i, 2) for i in range(19))
DEFAULT_EARLY_S = 60.0


# -- recording ------------------------------------------------------------------------------


class SeriesRecorder:
    """An observer for any frame source: `recorder(market)` after each applied message.

    Records the book's own top-N volumes and, for each extra `signals` entry,
    its (bid, ask) values computed from the book's levels."""

    def __init__(self, signals: Sequence[Signal] = ()) -> None:
        self.signals = list(signals)
        self._rows: dict[str, list[tuple[float, ...]]] = {}
        self._times: dict[str, list[tuple[int, int]]] = {}  # exact ints: (event_ms, clock_ms)
        self._depth: dict[str, int] = {}

    def __call__(self, market: Market) -> None:
        if not market.valid or market.last_event_ms is None:
            return
        book = market.book
        mid = market.mid_price()
        row: list[float] = [book.bid_volume, book.ask_volume, math.nan if mid is None else mid]
        for sig in self.signals:
            row.extend(signal_values(book, sig))
        self._rows.setdefault(market.symbol, []).append(tuple(row))
        self._times.setdefault(market.symbol, []).append((market.last_event_ms, market.clock_ms()))
        self._depth[market.symbol] = book.depth

    def series(self) -> dict[str, Series]:
        out = {}
        width = 3 + 2 * len(self.signals)
        for symbol, rows in self._rows.items():
            a = np.array(rows, dtype=float).reshape(-1, width)
            times = np.array(self._times[symbol], dtype=np.int64).reshape(-1, 2)
            extra = {sig.name: (a[:, 3 + 2 * i].copy(), a[:, 4 + 2 * i].copy()) for i, sig in enumerate(self.signals)}
            out[symbol] = Series(symbol, times[:, 0].copy(), a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy(),
                                 extra, self._depth[symbol], times[:, 1].copy())
        return out


def detect(series: Series, settings: DetectorSettings) -> list[tuple[int, int]]:
    """(event_ms, severity) of every alert a fresh detector raises over the series
    (deciding on the series' clock_ms, as the pipeline did)."""
    det = settings.build()
    evaluate = det.evaluate_volumes
    clock = series.event_ms if series.clock_ms is None else series.clock_ms
    out = []
    for t, now, b, a in zip(series.event_ms.tolist(), clock.tolist(), series.bid_volume.tolist(),
                            series.ask_volume.tolist(), strict=True):
        sev = evaluate(b, a, now)
        if sev:
            out.append((t, sev))
    return out


# -- scoring -----------------------------------------------------------------------------


def _by_symbol(windows: Iterable[CrashWindow]) -> dict[str, list[CrashWindow]]:
    out: dict[str, list[CrashWindow]] = {}
    for w in windows:
        out.setdefault(w.symbol, []).append(w)
    return out


def score(alerts_ms: Mapping[str, Iterable[int]], windows: Iterable[CrashWindow], market_ms: int,
          *, early_ms: int = 0, run: str = "", unscored: Iterable[CrashWindow] = ()) -> Score:
    """Score alert times (per symbol) against windows.

    `market_ms` is the monitored time summed over markets (for false alerts
    per day); `early_ms` accepts alerts that precede a window's start.
    Alerts inside `unscored` windows (crashes the data cut off half way)
    count neither way.
    """
    by_symbol = _by_symbol(windows)
    skip = _by_symbol(unscored)
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


def alerts_of(rec: Recording, settings: DetectorSettings, signal: Signal | None = None) -> dict[str, list[int]]:
    return {s: [t for t, _ in detect(ser.for_signal(signal), settings)] for s, ser in rec.series.items()}


def score_series(rec: Recording, settings: DetectorSettings, *, early_ms: int = 0, run: str = "",
                 signal: Signal | None = None) -> Score:
    return score(alerts_of(rec, settings, signal), rec.windows, rec.market_ms, early_ms=early_ms, run=run,
                 unscored=rec.partial)


# -- chance baseline ---------------------------------------------------------------------------


def random_alert_times(rng: np.random.Generator, t0: float, span: float, k: int, gap: float,
                       draws: int) -> np.ndarray:
    """(draws, k) sorted alert times in [t0, t0 + span], every two at least `gap` apart.

    k sorted uniforms on the span shortened by the gaps, then the gaps put
    back: uniform over all such placements."""
    u = np.sort(rng.uniform(0.0, max(0.0, span - gap * (k - 1)), size=(draws, k)), axis=1)
    return t0 + u + gap * np.arange(k)


def chance_baseline(inputs: Sequence[Recording], alerts: Sequence[dict[str, list[int]]], detected: int,
                    *, cooldown_s: float, early_ms: int = 0, draws: int = DEFAULT_DRAWS,
                    seed: int = 0) -> Chance:
    """Monte Carlo: per input and market, as many alerts as `alerts` holds there, uniform over
    the market's data with at least `cooldown_s` between them (or the detector's own smallest
    gap there, when escalations re-alerted sooner); scored like the detector."""
    n_windows = sum(len(rec.windows) for rec in inputs)
    if n_windows == 0 or draws <= 0:
        return NO_CHANCE
    rng = np.random.default_rng(seed)
    hits = np.zeros(draws, dtype=np.int64)
    cooldown_ms = cooldown_s * 1000.0
    for rec, rec_alerts in zip(inputs, alerts, strict=True):
        wins = _by_symbol(rec.windows)
        for symbol, ser in sorted(rec.series.items()):
            k = len(rec_alerts.get(symbol, ()))
            if not wins.get(symbol) or k == 0 or not len(ser):
                continue
            t0, span = float(ser.event_ms[0]), float(ser.span_ms)
            # The spacing the detector kept: its cooldown, or less where escalations
            # re-alerted inside it (never more than the span allows).
            own = float(np.diff(sorted(rec_alerts[symbol])).min()) if k > 1 else 0.0
            gap = min(cooldown_ms, own, span / (k - 1)) if k > 1 else 0.0
            times = random_alert_times(rng, t0, span, k, gap, draws)
            for w in wins[symbol]:
                inside = (times >= w.start_ms - early_ms) & (times < w.bottom_ms)
                hits += inside.any(axis=1)
    rates = hits / n_windows
    return Chance(float(rates.mean()), float(np.percentile(rates, 5)), float(np.percentile(rates, 95)),
                  float(np.mean(hits >= detected)), draws)


# -- sweep ----------------------------------------------------------------------------------------


def evaluate(inputs: Sequence[Recording], settings: DetectorSettings, *, signal: Signal | None = None,
             early_ms: int = 0, labels: str = "", draws: int = DEFAULT_DRAWS, seed: int = 0,
             runs: Sequence[str] | None = None) -> tuple[Score, SweepRow]:
    """Score `settings` on every input; the row carries the chance baseline."""
    total = Score()
    alerts = []
    for i, rec in enumerate(inputs):
        rec_alerts = alerts_of(rec, settings, signal)
        alerts.append(rec_alerts)
        total = total.merge(score(rec_alerts, rec.windows, rec.market_ms, early_ms=early_ms,
                                  run=runs[i] if runs else "", unscored=rec.partial))
    chance = chance_baseline(inputs, alerts, total.detected, cooldown_s=settings.cooldown_s, early_ms=early_ms,
                             draws=draws, seed=seed)
    name = signal.name if signal is not None else _default_signal_name(inputs)
    return total, _row(labels, name, settings.danger_ratio, total, chance)


def _default_signal_name(inputs: Sequence[Recording]) -> str:
    depth = next((ser.depth for rec in inputs for ser in rec.series.values() if ser.depth), 0)
    return f"levels:{depth}" if depth else "levels"


def sweep(inputs: Sequence[Recording], thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
          base: DetectorSettings | None = None, *, early_ms: int = 0, signal: Signal | None = None,
          labels: str = "", draws: int = DEFAULT_DRAWS, seed: int = 0) -> list[SweepRow]:
    """Re-run only the detector per threshold over recorded series (other settings carry over)."""
    base = base or DetectorSettings()
    rows = []
    for th in thresholds:
        settings = dataclasses.replace(base, danger_ratio=float(th), rearm_ratio=None)
        rows.append(evaluate(inputs, settings, signal=signal, early_ms=early_ms, labels=labels, draws=draws,
                             seed=seed)[1])
    return rows


def _row(labels: str, signal: str, th: float, s: Score, c: Chance) -> SweepRow:
    return SweepRow(labels, signal, th, len(s.windows), s.detected, s.early, s.late, s.missed, s.detection_rate,
                    s.alerts, s.false_alerts, s.false_per_day, s.median_delay_after_onset_s,
                    s.median_warning_before_bottom_s, c.detection_rate, c.p05, c.p95, c.p_value)


def write_sweep_csv(rows: Sequence[SweepRow], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SWEEP_COLUMNS)
        for r in rows:
            w.writerow([_fmt(getattr(r, c)) for c in SWEEP_COLUMNS])
    return path


WINDOW_COLUMNS = ["labels", "signal", "run", "symbol", "kind", "start_ms", "fall_ms", "bottom_ms", "end_ms",
                  "outcome", "early", "first_alert_ms", "delay_after_onset_s", "warning_before_bottom_s"]


def write_windows_csv(s: Score, path: str | Path, *, labels: str = "", signal: str = "",
                      append: bool = False) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", newline="") as fh:
        w = csv.writer(fh)
        if not append or fh.tell() == 0:
            w.writerow(WINDOW_COLUMNS)
        for r in s.windows:
            win = r.window
            w.writerow([labels, signal, r.run, win.symbol, win.kind, win.start_ms, win.fall_ms, win.bottom_ms,
                        win.end_ms, r.outcome, int(r.early), "" if r.first_alert_ms is None else r.first_alert_ms,
                        "" if r.delay_after_onset_ms is None else r.delay_after_onset_ms / 1000,
                        "" if r.warning_before_bottom_ms is None else r.warning_before_bottom_ms / 1000])
    return path


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return str(v)


# -- one backtest --------------------------------------------------------------------------------


def _run_backtest(kind: str, name: str, seeds: list[int], inputs: Sequence[dict[str, Series]],
                  label_sets: list[LabelSet], settings: DetectorSettings, signals: list[Signal | None],
                  thresholds: Iterable[float] | None, early_ms: int, draws: int, seed: int,
                  runs: Sequence[str], out_dir: Path | None, progress: bool) -> Backtest:
    thresholds = list(thresholds) if thresholds is not None else None
    symbols = sorted({s for series in inputs for s in series})
    at_settings: list[SweepRow] = []
    rows: list[SweepRow] = []
    first_score: Score | None = None
    scores: list[tuple[LabelSet, str, Score]] = []
    steps = len(label_sets) * len(signals) * (1 + len(thresholds or ()))
    with maybe_progress(progress, "scoring", steps) as advance:
        for ls in label_sets:
            for sig in signals:
                total, row = evaluate(ls.inputs, settings, signal=sig, early_ms=early_ms, labels=ls.name,
                                      draws=draws, seed=seed, runs=runs)
                advance(1)
                at_settings.append(row)
                scores.append((ls, row.signal, total))
                if first_score is None:
                    first_score = total
                for th in thresholds or ():
                    s = dataclasses.replace(settings, danger_ratio=float(th), rearm_ratio=None)
                    rows.append(evaluate(ls.inputs, s, signal=sig, early_ms=early_ms, labels=ls.name, draws=draws,
                                         seed=seed)[1])
                    advance(1)
    market_ms = sum(ser.span_ms for series in inputs for ser in series.values())
    result = Backtest(kind, name, seeds, symbols, settings, first_score or Score(), rows,
                      label_sets=label_sets, signals=[s for s in signals if s is not None],
                      at_settings=at_settings, early_s=early_ms / 1000, market_ms=market_ms, draws=draws,
                      chance_seed=seed)
    if out_dir is not None:
        _write_outputs(result, scores, inputs, runs, out_dir, signals[0])
    return result


def _write_outputs(result: Backtest, scores: list[tuple[LabelSet, str, Score]], inputs: Sequence[dict[str, Series]],
                   runs: Sequence[str], out: Path, signal: Signal | None) -> None:
    """sweep.csv + sweep.png, windows.csv, summary.csv, chart.png."""
    out.mkdir(parents=True, exist_ok=True)
    if result.sweep:
        result.files["sweep_csv"] = write_sweep_csv(result.sweep, out / "sweep.csv")
        result.files["sweep_png"] = plot_sweep(result.sweep, out / "sweep.png", title=result.title)
    windows_csv = out / "windows.csv"
    for i, (ls, sig, s) in enumerate(scores):
        write_windows_csv(s, windows_csv, labels=ls.name, signal=sig, append=i > 0)
    result.files["windows_csv"] = windows_csv
    summary = result.summary()
    with (out / "summary.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(summary))
        w.writerow([_fmt(v) for v in summary.values()])
    result.files["summary_csv"] = out / "summary.csv"
    windows = result.label_sets[0].inputs if result.label_sets else ()
    chart = out / "chart.png"
    if result.kind == "simulated":
        panels = []
        for i, series in enumerate(inputs):
            sym = next((s for s in result.symbols if s in series and len(series[s])), None)
            if sym is None:
                continue
            ser = series[sym].for_signal(signal)
            rec = windows[i] if i < len(windows) else None
            panels.append((runs[i], ser, (rec.windows + rec.partial) if rec else [],
                           [t for t, _ in detect(ser, result.settings)]))
        if panels:
            result.files["chart_png"] = plot_runs(panels, chart, title=result.title)
    elif inputs:
        series = inputs[0]
        sym = next((s for s in result.symbols if s in series and len(series[s])), None)
        if sym is not None:
            ser = series[sym].for_signal(signal)
            rec = windows[0] if windows else None
            result.files["chart_png"] = plot_series(
                ser, (rec.windows + rec.partial) if rec else [], [t for t, _ in detect(ser, result.settings)],
                result.settings.danger_ratio, chart, title=f"{result.title}: {sym}")


def _drop_label_sets(rules: Sequence[DropRule], inputs: Sequence[dict[str, Series]]) -> list[LabelSet]:
    out = []
    for rule in rules:
        recs = tuple(Recording(series, [w for sym, ser in sorted(series.items())
                                        for w in label_drops(sym, ser.event_ms, ser.mid, rule)])
                     for series in inputs)
        out.append(LabelSet(rule.name, rule.describe(), recs))
    return out


def _signals_to_record(signals: Sequence[Signal], depth: int) -> list[Signal]:
    return [s for s in signals if not (s.kind == "levels" and int(s.size) == depth)]


# -- simulated backtests ---------------------------------------------------------------------


def record_simulated(scenario: str | ScenarioSpec, seed: int, symbols: Sequence[str], *, depth: int = 50,
                     duration_s: float | None = None, signals: Sequence[Signal] = ()) -> Recording:
    """Run a scenario once through the real pipeline (BinanceSpotHandler, books) and record the series."""
    from sentrycoin.sim.source import simulated_source

    spec = load_scenario(scenario) if isinstance(scenario, str) else scenario
    recorder = SeriesRecorder(_signals_to_record(signals, depth))
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
    signals: Sequence[Signal] = (),
    drop_rules: Sequence[DropRule] = (),
    draws: int = DEFAULT_DRAWS,
    chance_seed: int = 0,
    progress: bool = False,
) -> Backtest:
    """Run `scenario` for each seed (0..seeds-1, or the given list), score alerts at `settings`
    against the scenario's crash windows (and any `drop_rules`), sweep `thresholds` (None: no
    sweep) per signal and, with `out_dir`, write sweep.csv/.png, windows.csv, summary.csv and
    chart.png (every seed, small multiples)."""
    spec = load_scenario(scenario) if isinstance(scenario, str) else scenario
    settings = settings or DetectorSettings()
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("need at least one seed")
    recs = []
    with maybe_progress(progress, f"{spec.name}: seeds", len(seed_list)) as advance:
        for seed in seed_list:
            recs.append(record_simulated(spec, seed, symbols, depth=depth, duration_s=duration_s, signals=signals))
            advance(1)
    series = [rec.series for rec in recs]
    label_sets = [LabelSet("scenario", f"labels: the crash windows the {spec.name} scenario drew", tuple(recs))]
    label_sets += _drop_label_sets(drop_rules, series)
    return _run_backtest("simulated", spec.name, seed_list, series, label_sets, settings, list(signals) or [None],
                         thresholds, early_ms, draws, chance_seed, [f"seed {s}" for s in seed_list],
                         Path(out_dir) if out_dir is not None else None, progress)


# -- recorded data ------------------------------------------------------------------------------


def record_replay(paths: Sequence[str | Path], *, depth: int | None = None, signals: Sequence[Signal] = (),
                  allow_truncated: bool = False, progress: bool = False) -> tuple[dict[str, Series], list[str]]:
    """Replay files of any readable format through the real pipeline and record each market's
    series; also returns one line per file replayed only up to a cut (`allow_truncated`)."""
    from sentrycoin.research.replay import replay_files

    recorder = SeriesRecorder(_signals_to_record(signals, depth or 50))
    summary = replay_files(paths, depth=depth, observer=recorder, allow_truncated=allow_truncated,
                           show_progress=progress and sys.stderr.isatty())
    return recorder.series(), [cut.describe() for cut in summary.truncated]


def backtest_recorded(
    paths: Sequence[str | Path],
    labels: Sequence[CrashWindow] = (),
    *,
    settings: DetectorSettings | None = None,
    thresholds: Iterable[float] | None = DEFAULT_THRESHOLDS,
    depth: int | None = None,
    early_ms: int = 0,
    out_dir: str | Path | None = None,
    signals: Sequence[Signal] = (),
    drop_rules: Sequence[DropRule] = (),
    labels_name: str = "labels",
    labels_path: str | Path | None = None,
    draws: int = DEFAULT_DRAWS,
    chance_seed: int = 0,
    allow_truncated: bool = False,
    progress: bool = False,
) -> Backtest:
    """Score the detector on recorded data against labelled windows (`labels`, or a labels CSV at
    `labels_path` whose missing bottoms are the price low) and/or windows from `drop_rules`."""
    settings = settings or DetectorSettings()
    series, truncated = record_replay(paths, depth=depth, signals=signals, allow_truncated=allow_truncated,
                                      progress=progress)
    if not any(len(ser) for ser in series.values()):
        raise ValueError("the files produced no valid book updates (no book data, or no snapshot to start a book)")
    label_sets: list[LabelSet] = []
    if labels_path is not None:
        labels = load_labels(labels_path, series)
        labels_name = Path(labels_path).name
    if labels or labels_path is not None:
        first_ms = min(int(ser.event_ms[0]) for ser in series.values() if len(ser))
        last_ms = max(int(ser.event_ms[-1]) for ser in series.values() if len(ser))
        inside = [w for w in labels if first_ms <= w.start_ms and w.end_ms <= last_ms]
        partial = [w for w in labels if w not in inside and w.start_ms <= last_ms and w.end_ms >= first_ms]
        label_sets.append(LabelSet(labels_name, f"labels: {labels_name} ({len(labels)} windows given, "
                                                f"{len(inside)} inside the data)",
                                   (Recording(series, inside, partial),)))
    label_sets += _drop_label_sets(drop_rules, [series])
    if not label_sets:
        raise ValueError("give crash labels: --labels FILE and/or --label-drop PERCENT%:DURATION")
    name = ", ".join(Path(p).name for p in paths)
    result = _run_backtest("recorded", name, [], [series], label_sets, settings, list(signals) or [None],
                           thresholds, early_ms, draws, chance_seed, ["recording"],
                           Path(out_dir) if out_dir is not None else None, progress)
    result.truncated = truncated
    return result


def _time_ms(raw: str, where: str) -> int:
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        from datetime import datetime

        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{where}: {raw!r} is neither Unix ms nor an ISO-8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp() * 1000)
    # Unix seconds, ms or us: pick by magnitude.
    if value < 1e11:
        value *= 1000
    elif value > 1e14:
        value /= 1000
    return int(value)


def load_labels(path: str | Path, series: dict[str, Series] | None = None) -> list[CrashWindow]:
    """Crash labels: CSV with columns symbol, start, end (Unix s/ms/us or ISO-8601 UTC) and
    optionally bottom.  A missing bottom is the time of the lowest mid between start and end in
    `series` (the end when there is no price there, or no series).  The windows.csv this module
    writes works too."""
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
            symbol = row["symbol"].strip().upper()
            start = _time_ms(row["start"], where)
            end = _time_ms(row["end"], where)
            if row.get("bottom"):
                bottom = _time_ms(row["bottom"], where)
            else:
                ser = (series or {}).get(symbol)
                low = low_between(ser.event_ms, ser.mid, start, end) if ser is not None else None
                bottom = end if low is None else low
            if not start <= bottom <= end:
                raise ValueError(f"{where}: need start <= bottom <= end")
            out.append(CrashWindow(symbol, row.get("kind") or "labelled", start, start, bottom, end))
    return out


# -- command line -------------------------------------------------------------------------------


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
    early_s: float = DEFAULT_EARLY_S,
    signals: Sequence[Signal] = (),
    drop_rules: Sequence[DropRule] = (),
    draws: int = DEFAULT_DRAWS,
    chance_seed: int = 0,
    progress: bool = False,
) -> int:
    """`sentrycoin backtest --simulate --scenario NAME|FILE.toml --seeds N`: prints the report,
    writes the files; returns a process exit code (2 for a bad scenario)."""
    from sentrycoin.sim.scenarios import ScenarioError

    console = console or report_console()
    settings = DetectorSettings(danger_ratio=danger_ratio, min_persistence_ms=min_persistence_ms,
                                cooldown_s=cooldown_s)
    try:
        result = backtest_simulated(scenario, seeds, symbols=symbols, settings=settings,
                                    thresholds=DEFAULT_THRESHOLDS if sweep_thresholds else None,
                                    duration_s=duration_s, out_dir=out_dir, early_ms=int(early_s * 1000),
                                    signals=signals, drop_rules=drop_rules, draws=draws, chance_seed=chance_seed,
                                    progress=progress)
    except (ScenarioError, ValueError) as exc:
        console.print(f"[red]sentrycoin: {exc}[/red]")
        return 2
    print_report(result, console)
    return 0


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


def register(sub) -> None:
    from sentrycoin.cli_common import non_negative_float, non_negative_int, positive_float, positive_int
    from sentrycoin.research.readers import READABLE

    p = sub.add_parser("backtest", help="score the detector against crashes (recordings or simulated scenarios), "
                                        "beside chance")
    p.add_argument("files", nargs="*", help=f"recorded files, replayed in this order and chained: {READABLE}")
    p.add_argument("--labels", help="CSV of known crash windows: symbol,start,end[,bottom] (Unix time or ISO-8601; "
                                    "bottom defaults to the time of the price low)")
    p.add_argument("--label-drop", action="append", default=[], metavar="PERCENT%:DURATION",
                   help="label windows where the mid falls at least PERCENT within DURATION (peak to low), "
                        "e.g. 0.5%%:5m; repeatable: each is scored on its own")
    p.add_argument("--signals", help="signals scored side by side: levels:N (top-N volumes) and/or band:BPS "
                                     "(notional within BPS of mid), e.g. levels:50,levels:10,band:25 "
                                     "(default: levels at the book depth)")
    p.add_argument("--early-s", type=float, default=DEFAULT_EARLY_S,
                   help="an alert up to this many seconds before a window's start is an early detection "
                        f"(default {DEFAULT_EARLY_S:g})")
    p.add_argument("--chance-draws", type=int, default=DEFAULT_DRAWS,
                   help=f"random alert sets drawn for the chance baseline (default {DEFAULT_DRAWS}, >= 1000)")
    p.add_argument("--chance-seed", type=int, default=0, help="seed of the chance baseline's draws")
    p.add_argument("--allow-truncated", action="store_true", help="use a file cut short up to the cut")
    p.add_argument("--depth", type=positive_int, help="levels per side of the book's own volumes (default: as recorded, 50)")
    p.add_argument("--simulate", action="store_true", help="run a simulated scenario over many seeds")
    p.add_argument("--scenario", default="flash_crash",
                   help="normal, flash_crash, whale_dump, spoof, recovery, mixed, or a .toml file")
    p.add_argument("--seeds", type=positive_int, default=20, help="number of seeds (0..N-1)")
    p.add_argument("--symbols", default="BTC-USDT", help="comma-separated BASE-QUOTE symbols (simulated)")
    p.add_argument("--danger-ratio", type=positive_float, default=2.5,
                   help="the detector's danger ratio (ask/bid volume) scored, and the sweep's reference row")
    p.add_argument("--min-persistence-ms", type=non_negative_int, default=0,
                   help="how long the ratio must stay past the danger ratio before an alert, in ms")
    p.add_argument("--cooldown-s", type=non_negative_float, default=300.0,
                   help="seconds after an alert before the same market alerts again")
    p.add_argument("--duration-s", type=positive_float, help="simulated seconds per seed (endless scenarios: 3600)")
    p.add_argument("--no-sweep", action="store_true", help="skip the threshold sweep")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", default="backtest-out",
                   help="folder for sweep.csv, sweep.png, windows.csv, summary.csv, chart.png")
    p.set_defaults(func=cmd_backtest)


def _user_error(message: str) -> int:
    import sys

    print(f"sentrycoin: {message}", file=sys.stderr)
    return 2


def cmd_backtest(args) -> int:
    try:
        signals = parse_signals(args.signals) if args.signals else []
        rules = [parse_drop_rule(text) for text in args.label_drop]
    except ValueError as exc:
        return _user_error(str(exc))
    if args.chance_draws < 1000:
        return _user_error(f"--chance-draws {args.chance_draws}: at least 1000 draws")
    if args.early_s < 0:
        return _user_error(f"--early-s {args.early_s:g}: must be >= 0")
    from sentrycoin.cli_common import check_out_dir
    from sentrycoin.config import ConfigError

    try:
        check_out_dir(args.out, "--out")
    except ConfigError as exc:
        return _user_error(str(exc))
    progress = not args.no_progress
    if args.simulate:
        from sentrycoin.cli_common import check_scenario
        from sentrycoin.config import parse_symbols

        try:
            check_scenario(args.scenario, "--scenario")
            symbols = parse_symbols(args.symbols, "--symbols")
        except ConfigError as exc:
            return _user_error(str(exc))
        return run_cli(args.scenario, args.seeds, symbols=symbols, danger_ratio=args.danger_ratio,
                       min_persistence_ms=args.min_persistence_ms, cooldown_s=args.cooldown_s,
                       duration_s=args.duration_s, sweep_thresholds=not args.no_sweep, out_dir=args.out,
                       early_s=args.early_s, signals=signals, drop_rules=rules, draws=args.chance_draws,
                       chance_seed=args.chance_seed, progress=progress)
    return _cmd_backtest_recorded(args, signals, rules, progress)


def _cmd_backtest_recorded(args, signals: list[Signal], rules: list[DropRule], progress: bool) -> int:
    from sentrycoin.research.readers import InputError

    if not args.files or not (args.labels or rules):
        return _user_error("give recorded files and --labels FILE and/or --label-drop PERCENT%:DURATION, "
                           "or --simulate --scenario NAME")
    settings = DetectorSettings(danger_ratio=args.danger_ratio, min_persistence_ms=args.min_persistence_ms,
                                cooldown_s=args.cooldown_s)
    try:
        result = backtest_recorded(args.files, settings=settings,
                                   thresholds=None if args.no_sweep else DEFAULT_THRESHOLDS, out_dir=args.out,
                                   depth=args.depth, early_ms=int(args.early_s * 1000), signals=signals,
                                   drop_rules=rules, labels_path=args.labels, draws=args.chance_draws,
                                   chance_seed=args.chance_seed, allow_truncated=args.allow_truncated,
                                   progress=progress)
    except InputError as exc:
        return _user_error(str(exc))
    except (OSError, ValueError) as exc:
        return _user_error(str(exc))
    print_report(result, report_console())
    return 0
