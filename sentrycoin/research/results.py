"""What a backtest produces: the recorded series, scores, the chance baseline, sweep rows and
the whole result.  Plain data, apart from the arithmetic of scoring; backtest.py computes
them, report.py prints them and charts.py draws them (neither needs backtest.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sentrycoin.market import DetectorSettings
from sentrycoin.research.signals import Signal
from sentrycoin.sim.scenarios import CrashWindow

DAY_MS = 86_400_000
#: Random draws of the chance baseline (>= 1,000: p-values to about +-0.015).
DEFAULT_DRAWS = 1000


@dataclass(slots=True)
class Series:
    """One market's numbers after every applied message (valid book only).

    `bid_volume` / `ask_volume` are what the detector is fed: the book's
    top-N volumes, or one signal's values after `for_signal`."""

    symbol: str
    event_ms: np.ndarray  # int64
    bid_volume: np.ndarray  # float64
    ask_volume: np.ndarray
    mid: np.ndarray
    signals: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    depth: int = 0  # the book's N: "levels:<depth>" is bid_volume / ask_volume
    # int64, the detector's clock at each row (the market's local clock: the
    # simulated or recorded receive time); None: the same as event_ms.
    clock_ms: np.ndarray | None = None

    @property
    def ratio(self) -> np.ndarray:
        # Same convention as the detector: inf when only asks remain, NaN when empty.
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.ask_volume / self.bid_volume

    def __len__(self) -> int:
        return len(self.event_ms)

    def for_signal(self, signal: Signal | None) -> Series:
        if signal is None or (signal.kind == "levels" and int(signal.size) == self.depth):
            return self
        try:
            bid, ask = self.signals[signal.name]
        except KeyError:
            raise ValueError(f"signal {signal.name} was not recorded for {self.symbol}") from None
        return Series(self.symbol, self.event_ms, bid, ask, self.mid, self.signals, self.depth, self.clock_ms)

    @property
    def span_ms(self) -> int:
        return int(self.event_ms[-1] - self.event_ms[0]) if len(self) else 0


@dataclass(slots=True)
class WindowResult:
    window: CrashWindow
    outcome: str  # detected | late | missed
    first_alert_ms: int | None
    run: str = ""  # which input (e.g. "seed 7")

    @property
    def delay_after_onset_ms(self) -> int | None:
        """First alert - window start (negative: an early detection)."""
        if self.outcome != "detected" or self.first_alert_ms is None:
            return None
        return self.first_alert_ms - self.window.start_ms

    @property
    def warning_before_bottom_ms(self) -> int | None:
        if self.outcome != "detected" or self.first_alert_ms is None:
            return None
        return self.window.bottom_ms - self.first_alert_ms

    @property
    def early(self) -> bool:
        return (self.outcome == "detected" and self.first_alert_ms is not None
                and self.first_alert_ms < self.window.start_ms)


@dataclass(slots=True)
class Score:
    windows: list[WindowResult] = field(default_factory=list)
    alerts: int = 0
    false_alerts: int = 0
    false_alert_ms: list[int] = field(default_factory=list)
    market_ms: int = 0  # monitored time summed over markets

    def merge(self, other: Score) -> Score:
        return Score(self.windows + other.windows, self.alerts + other.alerts,
                     self.false_alerts + other.false_alerts, self.false_alert_ms + other.false_alert_ms,
                     self.market_ms + other.market_ms)

    @property
    def detected(self) -> int:
        return sum(1 for w in self.windows if w.outcome == "detected")

    @property
    def early(self) -> int:
        return sum(1 for w in self.windows if w.early)

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

    def delays_s(self) -> np.ndarray:
        return np.array([w.delay_after_onset_ms / 1000 for w in self.windows
                         if w.delay_after_onset_ms is not None], dtype=float)

    def warnings_s(self) -> np.ndarray:
        return np.array([w.warning_before_bottom_ms / 1000 for w in self.windows
                         if w.warning_before_bottom_ms is not None], dtype=float)

    def delay_percentiles(self, qs: Sequence[float] = (10, 25, 50, 75, 90)) -> dict[str, float]:
        delays = self.delays_s()
        if not len(delays):
            return {f"p{int(q)}": math.nan for q in qs}
        return {f"p{int(q)}": float(np.percentile(delays, q)) for q in qs}

    @property
    def median_delay_after_onset_s(self) -> float:
        d = self.delays_s()
        return float(np.median(d)) if len(d) else math.nan

    @property
    def median_warning_before_bottom_s(self) -> float:
        w = self.warnings_s()
        return float(np.median(w)) if len(w) else math.nan


@dataclass(slots=True)
class Recording:
    """What one run of the pipeline leaves for scoring, with one set of windows."""

    series: dict[str, Series]
    windows: list[CrashWindow]  # crashes wholly inside the data
    partial: list[CrashWindow] = field(default_factory=list)  # crashes the data cut off

    @property
    def market_ms(self) -> int:
        return sum(ser.span_ms for ser in self.series.values())


@dataclass(slots=True, frozen=True)
class Chance:
    """What random alert times at the detector's rate and cooldown achieve."""

    detection_rate: float  # mean over draws
    p05: float  # 5th and 95th percentile of the draws' detection rate
    p95: float
    p_value: float  # share of draws detecting at least as many windows as the detector
    draws: int


NO_CHANCE = Chance(math.nan, math.nan, math.nan, math.nan, 0)


@dataclass(slots=True, frozen=True)
class LabelSet:
    """One definition of what counts as a crash, and the windows it gives per input."""

    name: str  # "scenario", "drop 0.5%:5m", "labels.csv"
    description: str
    inputs: tuple[Recording, ...]


@dataclass(slots=True, frozen=True)
class SweepRow:
    labels: str
    signal: str
    danger_ratio: float
    windows: int
    detected: int
    early: int
    late: int
    missed: int
    detection_rate: float
    alerts: int
    false_alerts: int
    false_per_day: float
    median_delay_after_onset_s: float
    median_warning_before_bottom_s: float
    chance_detection_rate: float
    chance_p05: float
    chance_p95: float
    chance_p_value: float


SWEEP_COLUMNS = [f.name for f in dataclasses.fields(SweepRow)]

#: What each CSV column means (docs/research.md repeats this table).
COLUMN_DOCS = {
    "labels": "which crash definition the row is scored against",
    "signal": "levels:N (top-N volumes) or band:BPS (notional within BPS of mid)",
    "danger_ratio": "the detector's threshold on ask/bid of the signal",
    "windows": "crash windows scored",
    "detected": "windows with an alert in [start - early_s, bottom)",
    "early": "of those, first alert before the window's start",
    "late": "windows whose first alert came in [bottom, end]",
    "missed": "windows not detected (late ones included)",
    "detection_rate": "detected / windows",
    "alerts": "alerts raised",
    "false_alerts": "alerts outside every [start - early_s, end]",
    "false_per_day": "false alerts per market per day of data",
    "median_delay_after_onset_s": "median of first alert - window start, s (negative: early)",
    "median_warning_before_bottom_s": "median of bottom - first alert, s",
    "chance_detection_rate": "mean detection rate of random alerts at the same rate and cooldown",
    "chance_p05": "5th percentile of the random draws' detection rate",
    "chance_p95": "95th percentile of the random draws' detection rate",
    "chance_p_value": "share of random draws detecting at least as many windows (small = better than chance)",
}


@dataclass(slots=True)
class Backtest:
    kind: str  # "simulated" | "recorded"
    scenario: str  # scenario name, or the files
    seeds: list[int]
    symbols: list[str]
    settings: DetectorSettings
    score: Score  # configured settings, first label set, first signal
    sweep: list[SweepRow]
    files: dict[str, Path] = field(default_factory=dict)
    label_sets: list[LabelSet] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    at_settings: list[SweepRow] = field(default_factory=list)  # one per (label set, signal)
    early_s: float = 0.0
    market_ms: int = 0
    draws: int = DEFAULT_DRAWS
    chance_seed: int = 0
    truncated: list[str] = field(default_factory=list)  # files used only up to a cut

    @property
    def title(self) -> str:
        what = ", ".join(self.symbols)
        if self.kind == "simulated":
            return f"Simulated backtest: {self.scenario} x {len(self.seeds)} seeds ({what})"
        days = self.market_ms / 60_000
        return f"Recorded backtest: {self.scenario} ({what}; {days:,.1f} market-minutes)"

    def summary(self) -> dict[str, float | int | str]:
        s = self.score
        out: dict[str, float | int | str] = {
            "kind": self.kind, "scenario": self.scenario, "seeds": len(self.seeds), "symbols": ",".join(self.symbols),
            "labels": self.label_sets[0].name if self.label_sets else "",
            "signal": self.at_settings[0].signal if self.at_settings else "",
            "danger_ratio": self.settings.danger_ratio, "early_s": self.early_s, "windows": len(s.windows),
            "detected": s.detected, "early": s.early, "late": s.late, "missed": s.missed,
            "detection_rate": s.detection_rate, "alerts": s.alerts, "false_alerts": s.false_alerts,
            "false_per_day": s.false_per_day, "median_delay_after_onset_s": s.median_delay_after_onset_s,
            "median_warning_before_bottom_s": s.median_warning_before_bottom_s,
        }
        out.update({f"delay_after_onset_{k}_s": v for k, v in s.delay_percentiles().items()})
        if self.at_settings:
            row = self.at_settings[0]
            out.update(chance_detection_rate=row.chance_detection_rate, chance_p_value=row.chance_p_value)
        return out
