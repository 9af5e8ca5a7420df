"""Backtest metrics on hand-made cases with known answers; files written; simulated runs."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from rich.console import Console

from sentrycoin.market import DetectorSettings, Market
from sentrycoin.research.backtest import (
    DEFAULT_THRESHOLDS,
    Recording,
    Series,
    SeriesRecorder,
    backtest_simulated,
    detect,
    run_cli,
    score,
    score_series,
    sweep,
    sweep_table,
    write_sweep_csv,
)
from sentrycoin.sim.scenarios import CrashWindow

DAY = 86_400_000


def W(symbol, start, bottom, end, fall=None):
    return CrashWindow(symbol, "flash_crash", start, start if fall is None else fall, bottom, end)


def test_score_hand_made_case():
    windows = [W("A", 1000, 3000, 5000, fall=2000), W("A", 10_000, 12_000, 15_000), W("A", 20_000, 21_000, 25_000)]
    alerts = {"A": [1500, 2500, 12_500, 30_000, 8000], "B": [100]}
    s = score(alerts, windows, market_ms=2 * DAY)
    assert [w.outcome for w in s.windows] == ["detected", "late", "missed"]
    assert (s.detected, s.late, s.missed) == (1, 1, 2)
    assert s.detection_rate == pytest.approx(1 / 3)
    assert s.alerts == 6
    assert s.false_alerts == 3 and sorted(s.false_alert_ms) == [100, 8000, 30_000]
    assert s.false_per_day == pytest.approx(1.5)
    assert s.delays_s().tolist() == [0.5]
    assert s.warnings_s().tolist() == [1.5]
    assert s.median_delay_after_onset_s == 0.5 and s.median_warning_before_bottom_s == 1.5
    # An alert 500 ms before a window counts with early_ms=600 (negative lead), not otherwise.
    s2 = score({"A": [9500]}, windows, market_ms=DAY, early_ms=600)
    assert [w.outcome for w in s2.windows] == ["missed", "detected", "missed"]
    assert s2.delays_s().tolist() == [-0.5] and s2.false_alerts == 0
    s3 = score({"A": [9500]}, windows, market_ms=DAY)
    assert s3.false_alerts == 1 and s3.detected == 0
    # Alerts inside a crash the data cut off count neither way.
    s4 = score({"A": [40_500]}, windows, market_ms=DAY, unscored=[W("A", 40_000, 41_000, 99_000)])
    assert s4.alerts == 0 and s4.false_alerts == 0 and len(s4.windows) == 3


def test_delay_distribution_percentiles():
    windows = [W("A", i * 100_000, i * 100_000 + 50_000, i * 100_000 + 90_000) for i in range(5)]
    alerts = {"A": [i * 100_000 + 1000 * (i + 1) for i in range(5)]}  # delays 1..5 s
    s = score(alerts, windows, market_ms=DAY)
    assert s.detection_rate == 1.0 and s.median_delay_after_onset_s == 3.0
    p = s.delay_percentiles((0, 50, 100))
    assert p == {"p0": 1.0, "p50": 3.0, "p100": 5.0}
    empty = score({}, windows, market_ms=DAY)
    assert math.isnan(empty.median_delay_after_onset_s) and empty.missed == 5


def _series(ratios, bid=1.0):
    n = len(ratios)
    t = np.arange(n, dtype=np.int64) * 1000
    return Series("A", t, np.full(n, bid), np.array(ratios, dtype=float) * bid, np.full(n, 100.0))


def test_detect_and_sweep_known_answer():
    ser = _series([1, 3, 3, 1, 1, 3, 1, 5, 1])
    settings = DetectorSettings(cooldown_s=0)
    assert detect(ser, settings) == [(1000, 1), (5000, 1), (7000, 2)]  # 5 >= 2 x 2.5: critical
    rec = Recording({"A": ser}, [W("A", 6500, 8000, 8500)])
    s = score_series(rec, settings)
    assert (s.detected, s.false_alerts) == (1, 2) and s.delays_s().tolist() == [0.5]
    rows = sweep([rec], [2.0, 4.0, 6.0], settings)
    assert [(r.danger_ratio, r.detected, r.false_alerts, r.alerts) for r in rows] == [
        (2.0, 1, 2, 3), (4.0, 1, 0, 1), (6.0, 0, 0, 0)]
    # Settings other than the threshold carry over (persistence 1500 ms: no 1-sample spike passes).
    rows = sweep([rec], [2.0], DetectorSettings(cooldown_s=0, min_persistence_ms=1500))
    assert rows[0].alerts == 0


def test_recorder_keeps_only_valid_books():
    m = Market("binance", "A", depth=5)
    m.book.load_snapshot([[99.0, 2.0]], [[101.0, 5.0]])
    rec = SeriesRecorder()
    m.after_message(1000)
    rec(m)  # not valid yet: ignored
    m.mark_valid()
    m.after_message(2000)
    rec(m)
    s = rec.series()["A"]
    assert s.event_ms.tolist() == [2000]
    assert s.ratio.tolist() == [2.5] and s.mid.tolist() == [100.0]


def test_sweep_csv_and_table(tmp_path):
    ser = _series([1, 3, 1])
    rows = sweep([Recording({"A": ser}, [])], DEFAULT_THRESHOLDS, DetectorSettings(cooldown_s=0))
    assert DEFAULT_THRESHOLDS[0] == 1.5 and DEFAULT_THRESHOLDS[-1] == 6.0 and len(DEFAULT_THRESHOLDS) == 19
    with open(write_sweep_csv(rows, tmp_path / "s.csv")) as fh:
        got = list(csv.DictReader(fh))
    # Ratio 3 alerts (falsely: no windows) at every danger ratio up to 3, none above.
    assert [(float(r["danger_ratio"]), int(r["false_alerts"])) for r in got if r["danger_ratio"] in ("3", "3.25")] == [
        (3.0, 1), (3.25, 0)]
    assert got[0]["detection_rate"] == ""  # no windows: no rate, not 0 %
    buf = io.StringIO()
    Console(file=buf, width=80).print(sweep_table(rows, mark=2.5))
    assert "1.50" in buf.getvalue() and "6.00" in buf.getvalue()


def test_backtest_simulated_writes_png_and_csv(tmp_path):
    result = backtest_simulated("flash_crash", 3, out_dir=tmp_path, thresholds=[2.0, 2.5, 3.0])
    s = result.score
    assert len(s.windows) == 3 and s.detection_rate == 1.0 and s.false_alerts == 0
    assert all(lead > 0 for lead in s.delays_s())  # the alert comes after the first precursor...
    assert all(w > 0 for w in s.warnings_s())  # ...and before the bottom
    png = result.files["chart_png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    with open(result.files["sweep_csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["danger_ratio"]) for r in rows] == [2.0, 2.5, 3.0]
    assert rows[1]["detected"] == "3"
    with open(result.files["windows_csv"]) as fh:
        wins = list(csv.DictReader(fh))
    assert [w["run"] for w in wins] == ["seed 0", "seed 1", "seed 2"]
    assert all(w["outcome"] == "detected" for w in wins)
    with open(result.files["summary_csv"]) as fh:
        summary = next(csv.DictReader(fh))
    assert summary["scenario"] == "flash_crash" and summary["detection_rate"] == "1"


def test_run_cli_prints_and_returns_exit_codes(tmp_path):
    buf = io.StringIO()
    console = Console(file=buf, width=100)
    assert run_cli("whale_dump", 2, out_dir=tmp_path, console=console) == 0
    out = buf.getvalue()
    assert "detection rate" in out and "100%" in out and "Threshold sweep" in out
    assert (tmp_path / "chart.png").exists() and (tmp_path / "sweep.csv").exists()
    buf = io.StringIO()
    assert run_cli("no_such_scenario", 1, out_dir=None, console=Console(file=buf)) == 2
    assert "unknown scenario" in buf.getvalue()


def test_windows_csv_round_trip_and_errors(tmp_path):
    from sentrycoin.research.backtest import Score, WindowResult, load_windows_csv, write_windows_csv

    wins = [W("A", 1000, 3000, 5000, fall=2000), W("B", 7000, 8000, 9000)]
    s = Score(windows=[WindowResult(wins[0], "detected", 1500, "x"), WindowResult(wins[1], "missed", None, "x")])
    path = write_windows_csv(s, tmp_path / "w.csv")
    assert load_windows_csv(path) == wins
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,start_ms,bottom_ms,end_ms\nA,5,3,9\n")
    with pytest.raises(ValueError, match="bad.csv:2"):
        load_windows_csv(bad)


def test_argparse_glue(tmp_path):
    import argparse

    from sentrycoin.research.backtest import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["backtest", "--simulate", "--scenario", "whale_dump", "--seeds", "1", "--no-sweep",
                              "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert (tmp_path / "summary.csv").exists() and not (tmp_path / "sweep.csv").exists()
    args = parser.parse_args(["backtest"])
    assert args.func(args) == 2
