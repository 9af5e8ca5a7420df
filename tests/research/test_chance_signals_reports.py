"""Chance baseline, early detections, signals side by side, and what the reports say."""

from __future__ import annotations

import csv
import io
import struct
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console

from sentrycoin.market import DetectorSettings
from sentrycoin.research.backtest import (
    Signal,
    backtest_simulated,
    chance_baseline,
    parse_signals,
    print_report,
    random_alert_times,
    score,
    signal_values,
    sweep,
)
from sentrycoin.research.labels import parse_drop_rule
from sentrycoin.research.results import COLUMN_DOCS, SWEEP_COLUMNS, Recording, Series
from sentrycoin.sim.scenarios import CrashWindow
from sentrycore import OrderBook

DAY = 86_400_000


def W(symbol, start, bottom, end):
    return CrashWindow(symbol, "test", start, start, bottom, end)


def flat_series(n: int, step_ms: int = 1000, symbol: str = "A") -> Series:
    t = np.arange(n, dtype=np.int64) * step_ms
    return Series(symbol, t, np.ones(n), np.ones(n), np.full(n, 100.0), depth=50)


# -- chance -------------------------------------------------------------------------------------------


def test_random_alert_times_keep_the_gap_and_the_span() -> None:
    rng = np.random.default_rng(1)
    times = random_alert_times(rng, 1_000.0, 100_000.0, 5, 15_000.0, 2_000)
    assert times.shape == (2_000, 5)
    assert (times >= 1_000.0).all() and (times <= 101_000.0).all()
    assert (np.diff(times, axis=1) >= 15_000.0 - 1e-6).all()
    # Uniform over placements: the first alert's mean is a sixth of the free span (40 s) in.
    assert abs(times[:, 0].mean() - (1_000 + 40_000 / 6)) < 500


def test_chance_known_answers() -> None:
    ser = flat_series(1001)  # 1,000 s of data
    half = Recording({"A": ser}, [W("A", 0, 500_000, 600_000)])  # [start, bottom) covers half the span
    one_alert = [{"A": [10]}]
    c = chance_baseline([half], one_alert, detected=1, cooldown_s=300, draws=4_000, seed=3)
    assert c.draws == 4_000
    assert abs(c.detection_rate - 0.5) < 0.03 and abs(c.p_value - 0.5) < 0.03
    assert (c.p05, c.p95) == (0.0, 1.0)
    assert chance_baseline([half], one_alert, detected=0, cooldown_s=300, draws=1_000).p_value == 1.0
    whole = Recording({"A": ser}, [W("A", 0, 1_000_001, 1_000_001)])
    assert chance_baseline([whole], one_alert, detected=1, cooldown_s=300).detection_rate == 1.0
    # No alerts: chance detects nothing; the p-value of detecting 0 is 1.
    none = chance_baseline([half], [{"A": []}], detected=0, cooldown_s=300)
    assert none.detection_rate == 0.0 and none.p_value == 1.0
    # Seeded: the same seed gives the same numbers.
    a = chance_baseline([half], [{"A": [1, 400_000]}], detected=1, cooldown_s=300, seed=7)
    b = chance_baseline([half], [{"A": [1, 400_000]}], detected=1, cooldown_s=300, seed=7)
    assert a == b


def test_early_alerts_are_detections_not_false_alerts() -> None:
    wins = [W("A", 100_000, 150_000, 200_000)]
    early = score({"A": [70_000]}, wins, DAY, early_ms=60_000)
    assert early.detected == 1 and early.early == 1 and early.false_alerts == 0
    assert early.windows[0].early and early.windows[0].delay_after_onset_ms == -30_000
    assert early.windows[0].warning_before_bottom_ms == 80_000
    too_early = score({"A": [30_000]}, wins, DAY, early_ms=60_000)
    assert too_early.detected == 0 and too_early.false_alerts == 1


def test_sweep_rows_carry_the_chance_baseline(tmp_path) -> None:
    n = 1001
    t = np.arange(n, dtype=np.int64) * 1000
    ratio = np.ones(n)
    ratio[490:495] = 4.0  # the only spike: inside the window
    ser = Series("A", t, np.ones(n), ratio, np.full(n, 100.0), depth=50)
    rec = Recording({"A": ser}, [W("A", 480_000, 520_000, 600_000)])
    rows = sweep([rec], [2.0, 5.0], DetectorSettings(cooldown_s=300), labels="x", draws=2_000)
    hit, nothing = rows
    assert (hit.detected, hit.alerts, hit.signal, hit.labels) == (1, 1, "levels:50", "x")
    # One random alert in 1,000 s lands in a 40 s [start, bottom) 4 % of the time.
    assert abs(hit.chance_detection_rate - 0.04) < 0.015 and abs(hit.chance_p_value - 0.04) < 0.015
    assert nothing.detected == 0 and nothing.chance_detection_rate == 0.0 and nothing.chance_p_value == 1.0
    assert set(COLUMN_DOCS) == set(SWEEP_COLUMNS)


# -- signals ------------------------------------------------------------------------------------------


def test_parse_signals() -> None:
    assert parse_signals("levels:50, levels:10,band:25,levels:50") == [
        Signal("levels", 50), Signal("levels", 10), Signal("band", 25)]
    assert [s.name for s in parse_signals("band:2.5")] == ["band:2.5"]
    for bad in ("levels", "levels:x", "band:-1", "band:10000", "levels:2.5", "depth:10", ""):
        with pytest.raises(ValueError, match="--signals"):
            parse_signals(bad)


def test_signal_values_on_a_known_book() -> None:
    book = OrderBook(depth=3)
    book.load_snapshot([[99.9, 1.0], [99.8, 2.0], [99.7, 4.0], [99.0, 8.0]],
                       [[100.1, 1.0], [100.2, 1.0], [100.3, 1.0], [101.0, 9.0]])
    assert signal_values(book, Signal("levels", 3)) == (7.0, 3.0)  # the book's own volumes
    assert signal_values(book, Signal("levels", 2)) == (3.0, 2.0)
    # Mid 100.0; 25 bps: bids >= 99.75, asks <= 100.25.
    bid, ask = signal_values(book, Signal("band", 25))
    assert bid == pytest.approx(99.9 * 1 + 99.8 * 2) and ask == pytest.approx(100.1 + 100.2)
    empty = OrderBook(depth=3)
    assert signal_values(empty, Signal("band", 25)) == (0.0, 0.0)


def test_band_reads_past_the_first_64_levels() -> None:
    book = OrderBook(depth=10, capacity=1000)
    bids = [[100.0 - 0.001 * i, 1.0] for i in range(300)]  # all 300 within 0.3 % of mid
    book.load_snapshot(bids, [[100.001, 1.0]])
    bid, _ = signal_values(book, Signal("band", 50))
    assert bid == pytest.approx(sum(p * q for p, q in bids))


def test_simulated_backtest_scores_each_signal_with_its_baseline(tmp_path) -> None:
    signals = parse_signals("levels:50,levels:10,band:25")
    result = backtest_simulated("flash_crash", 2, thresholds=[2.5, 4.0], out_dir=tmp_path, signals=signals,
                                draws=1_000)
    assert [r.signal for r in result.at_settings] == ["levels:50", "levels:10", "band:25"]
    assert [(r.signal, r.danger_ratio) for r in result.sweep] == [
        (s, th) for s in ("levels:50", "levels:10", "band:25") for th in (2.5, 4.0)]
    assert all(0.0 <= r.chance_p_value <= 1.0 for r in result.sweep)
    # The default signal at the default threshold catches the simulated crashes (the sim is built to).
    assert result.at_settings[0].detected == 2
    with open(result.files["sweep_csv"]) as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == SWEEP_COLUMNS and {r["signal"] for r in got} == {"levels:50", "levels:10", "band:25"}
    with open(result.files["windows_csv"]) as fh:
        wins = list(csv.DictReader(fh))
    assert {"delay_after_onset_s", "warning_before_bottom_s", "early"} <= set(wins[0])
    assert len(wins) == 2 * 3  # two seeds' crashes, once per signal


# -- reports ------------------------------------------------------------------------------------------


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_simulated_chart_has_one_panel_per_seed(tmp_path) -> None:
    one = backtest_simulated("whale_dump", 1, thresholds=None, out_dir=tmp_path / "one", draws=1_000)
    three = backtest_simulated("whale_dump", 3, thresholds=None, out_dir=tmp_path / "three", draws=1_000)
    w1, _ = png_size(one.files["chart_png"])
    w3, _ = png_size(three.files["chart_png"])
    assert w3 == 3 * w1  # small multiples side by side, not seed 0 alone


def test_reports_say_what_they_are(tmp_path) -> None:
    result = backtest_simulated("whale_dump", 2, thresholds=[2.5], out_dir=tmp_path, draws=1_000,
                                drop_rules=[parse_drop_rule("1%:5m")])
    buf = io.StringIO()
    print_report(result, Console(file=buf, width=160))
    out = buf.getvalue()
    assert out.startswith("Simulated backtest: whale_dump x 2 seeds (BTC-USDT)")
    assert "labels: the crash windows the whale_dump scenario drew" in out
    assert "labels: the mid falls >= 1 % from its highest point of the previous 5 min" in out
    assert "chance: 1,000 draws (seed 0)" in out
    assert "delay after onset" in out and "warning before bottom" in out and "lead" not in out
    assert png_size(result.files["sweep_png"])[0] > 300
    with open(result.files["summary_csv"]) as fh:
        summary = next(csv.DictReader(fh))
    assert summary["kind"] == "simulated" and "median_delay_after_onset_s" in summary


def test_backtest_cli_user_errors() -> None:
    for args, needle in ((["--simulate", "--label-drop", "5:5m"], "--label-drop '5:5m'"),
                         (["--simulate", "--signals", "band:x"], "--signals 'band:x'"),
                         (["--simulate", "--chance-draws", "10"], "--chance-draws 10"),
                         (["--simulate", "--early-s", "-1"], "--early-s -1"),
                         (["nofile.gz", "--label-drop", "1%:1m"], "nofile.gz: no such file")):
        proc = subprocess.run([sys.executable, "-m", "sentrycoin.cli", "backtest", *args], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        (line,) = proc.stderr.strip().splitlines()
        assert needle in line


def test_long_backtests_show_a_progress_bar_on_a_terminal(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    backtest_simulated("whale_dump", 2, thresholds=[2.5], draws=1_000, progress=True)
    shown = capsys.readouterr().err
    assert "whale_dump: seeds" in shown and "scoring" in shown
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    backtest_simulated("whale_dump", 1, thresholds=None, draws=1_000, progress=True)
    assert capsys.readouterr().err == ""  # a pipe or a log file gets no bar


def test_the_simulated_numbers_in_docs_research_md() -> None:
    """docs/research.md, 'What chance does on the simulated market' (seeded: reproducible)."""
    result = backtest_simulated("flash_crash", 20, thresholds=None, early_ms=60_000)
    (row,) = result.at_settings
    assert (row.windows, row.detected, row.alerts, row.false_alerts) == (20, 20, 60, 0)
    assert (round(row.median_delay_after_onset_s, 1), round(row.median_warning_before_bottom_s, 1)) == (10.4, 21.4)
    assert (round(row.chance_detection_rate, 2), round(row.chance_p05, 2), round(row.chance_p95, 2)) == (
        0.77, 0.6, 0.9)
    assert round(row.chance_p_value, 3) == 0.005
