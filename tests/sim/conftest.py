"""Helpers for the simulated-market tests: run a scenario through the real
Binance spot handler and collect alerts and the book's (time, ratio, mid)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sentrycoin.market import AlertEvent, DetectorSettings, Market
from sentrycoin.sim.scenarios import CrashWindow
from sentrycoin.sim.source import SimSource, simulated_source


@dataclass
class Run:
    source: SimSource
    alerts: list[AlertEvent]
    series: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)  # (ms, ratio, mid)

    def arrays(self, symbol: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = np.array(self.series[symbol], dtype=float)
        return s[:, 0], s[:, 1], s[:, 2]

    def windows(self, symbol: str) -> list[CrashWindow]:
        return self.source.generator.windows(symbol)

    def alerts_for(self, symbol: str) -> list[AlertEvent]:
        return [a for a in self.alerts if a.symbol == symbol]


def run_scenario(scenario, seed: int, symbols: list[str], settings: DetectorSettings | None = None,
                 seconds: float | None = None, record: bool = True, **kw) -> Run:
    alerts: list[AlertEvent] = []
    series: dict[str, list[tuple[int, float, float]]] = {s: [] for s in symbols}

    def observe(m: Market) -> None:
        if m.valid:
            series[m.symbol].append((m.last_event_ms, m.book.ratio, m.mid_price()))

    src = simulated_source(symbols, scenario=scenario, seed=seed, settings=settings, on_alert=alerts.append,
                           realtime=False, observer=observe if record else None, **kw)
    if seconds is None:
        src.run_all()
    else:
        src.run_until(src.generator.start_ms + int(seconds * 1000))
    return Run(src, alerts, series)
