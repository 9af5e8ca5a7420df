"""Backtest on the 11 real minutes of BTCUSDT and ETHUSDT (skipped with a reason when the files are absent)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np

from sentrycoin.research.backtest import backtest_recorded, parse_signals
from sentrycoin.research.labels import label_drops, parse_drop_rule
from tests.realdata import realdata_path

FILES = ["BINANCE_SPOT_BTCUSDT_20240808.gz", "BINANCE_SPOT_BTCUSDT_20240809.gz",
         "BINANCE_SPOT_ETHUSDT_20240808.gz", "BINANCE_SPOT_ETHUSDT_20240809.gz"]


def test_real_minutes_labels_sweep_and_baseline(tmp_path) -> None:
    paths = [realdata_path(n) for n in FILES]
    rule = parse_drop_rule("0.1%:60s")
    result = backtest_recorded(paths, drop_rules=[rule, parse_drop_rule("0.5%:5m")],
                               signals=parse_signals("levels:50,levels:10,band:25"), early_ms=60_000,
                               out_dir=tmp_path)
    assert result.title.startswith("Recorded backtest: BINANCE_SPOT_BTCUSDT_20240808.gz")
    assert result.symbols == ["BTC-USDT", "ETH-USDT"] and 21 < result.market_ms / 60_000 < 22
    small, crash = result.label_sets
    # Small falls happen; a 0.5 % fall within 5 minutes does not (the data's own README says so).
    assert sum(len(r.windows) for r in small.inputs) > 0
    assert sum(len(r.windows) for r in crash.inputs) == 0
    rows = [r for r in result.sweep if r.labels == small.name]
    assert len(rows) == 3 * 19  # three signals x the default thresholds
    assert all(0.0 <= r.chance_p_value <= 1.0 and 0.0 <= r.chance_detection_rate <= 1.0 for r in rows)
    assert all(math.isnan(r.detection_rate) for r in result.sweep if r.labels == crash.name)
    # Every labelled window is a real >= 0.1 % fall within 60 s of the recorded mid.
    for rec in small.inputs:
        for w in rec.windows:
            ser = rec.series[w.symbol]
            lo = np.searchsorted(ser.event_ms, w.bottom_ms - rule.within_ms)
            hi = np.searchsorted(ser.event_ms, w.bottom_ms, side="right")
            peak = np.nanmax(ser.mid[lo:hi])
            low = ser.mid[hi - 1]
            assert low <= (1 - rule.drop) * peak
        assert rec.windows == [w for sym, ser in sorted(rec.series.items())
                               for w in label_drops(sym, ser.event_ms, ser.mid, rule)]
    for name in ("sweep_csv", "sweep_png", "windows_csv", "summary_csv", "chart_png"):
        assert result.files[name].stat().st_size > 0


def test_backtest_cli_on_real_files(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sentrycoin.cli", "backtest", *map(str, map(realdata_path, FILES)),
                           "--label-drop", "0.1%:60s", "--no-sweep", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Recorded backtest:" in proc.stdout and "x 0 seeds" not in proc.stdout
    assert "labels: the mid falls >= 0.1 % from its highest point of the previous 1 min" in proc.stdout


def test_the_worked_example_in_docs_research_md() -> None:
    """The numbers docs/research.md quotes, from the command it shows (seeded: reproducible)."""
    paths = [realdata_path(n) for n in FILES]
    result = backtest_recorded(paths, drop_rules=[parse_drop_rule("0.1%:60s"), parse_drop_rule("0.5%:5m")],
                               signals=parse_signals("levels:50,levels:10,band:25"), early_ms=60_000)
    small = {r.signal: r for r in result.at_settings if r.labels == "drop 0.1%:60s"}
    got = {s: (r.windows, r.detected, r.early, r.alerts, r.false_alerts, round(r.chance_detection_rate, 2),
               round(r.chance_p_value, 3)) for s, r in small.items()}
    assert got == {"levels:50": (10, 5, 3, 7, 0, 0.53, 0.796), "levels:10": (10, 6, 3, 13, 3, 0.71, 0.939),
                   "band:25": (10, 2, 0, 2, 0, 0.19, 0.790)}
    crash = [r for r in result.at_settings if r.labels == "drop 0.5%:5m"]
    assert [(r.windows, r.alerts, r.false_alerts) for r in crash][0] == (0, 7, 7)
    rows = [r for r in result.sweep if r.labels == "drop 0.1%:60s"]
    best = min(rows, key=lambda r: r.chance_p_value)
    assert (round(best.chance_p_value, 3), best.signal, best.danger_ratio, best.detected) == (0.715, "band:25", 1.75, 4)
