"""A simulated run, recorded with the tee, replays to exactly the same alerts; recorded backtests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sentrycoin.market import DetectorSettings
from sentrycoin.research.backtest import backtest_recorded, load_labels
from sentrycoin.research.record import tee_handler
from sentrycoin.research.recording import Header, RecordingWriter
from sentrycoin.research.replay import replay_files
from sentrycoin.sim.source import simulated_source

SYMBOLS = ["BTC-USDT", "ETH-USDT"]


def record_sim(tmp_path: Path, scenario: str, seed: int, settings: DetectorSettings | None = None):
    alerts = []
    source = simulated_source(SYMBOLS, scenario=scenario, seed=seed, realtime=False, settings=settings,
                              on_alert=alerts.append)
    writer = RecordingWriter(tmp_path / "rec", Header(venue="binance", symbols=SYMBOLS, depth=50,
                                                      source="simulated"), prefix=f"{scenario}-{seed}",
                             max_bytes=100_000, flush_every=200)
    tee_handler(source.handler, writer)
    source.run_all()
    writer.close()
    return source, alerts, writer.files


def key(a) -> tuple:
    return (a.symbol, a.event_ms, a.severity, a.ratio, a.bid_volume, a.ask_volume, a.best_bid, a.best_ask)


@pytest.mark.parametrize(("scenario", "seed"), [("flash_crash", 1), ("whale_dump", 2)])
def test_replay_of_a_simulated_run_raises_exactly_its_alerts(tmp_path: Path, scenario: str, seed: int) -> None:
    source, live_alerts, files = record_sim(tmp_path, scenario, seed)
    assert live_alerts, "the scenario should alert"
    assert len(files) >= 2, "exercise rotation: books must carry across files"
    summary = replay_files(files)
    assert [key(a) for a in summary.alerts] == [key(a) for a in live_alerts]
    assert {a.source for a in summary.alerts} == {"replay"}
    by_symbol = {m.symbol: m for m in summary.markets}
    for market in source.markets:
        replayed = by_symbol[market.symbol]
        assert replayed.messages == market.messages
        assert replayed.book.bids(60).tolist() == market.book.bids(60).tolist()
        assert replayed.book.asks(60).tolist() == market.book.asks(60).tolist()


def write_labels(path: Path, windows) -> Path:
    rows = ["symbol,start,end,bottom"] + [f"{w.symbol},{w.start_ms},{w.end_ms},{w.bottom_ms}" for w in windows]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_backtest_on_a_recording_with_labels(tmp_path: Path) -> None:
    source, live_alerts, files = record_sim(tmp_path, "flash_crash", 4)
    windows = source.generator.windows()
    labels = load_labels(write_labels(tmp_path / "labels.csv", windows))
    assert len(labels) == len(windows) >= 1
    result = backtest_recorded(files, labels, out_dir=tmp_path / "out")
    assert len(result.score.windows) == len(windows)
    assert result.score.detected == len(windows)  # the default detector catches each crash before its bottom
    assert result.score.false_alerts == 0
    # The sweep re-runs the detector: a threshold far above any ratio detects nothing.
    by_threshold = {row.danger_ratio: row for row in result.sweep}
    assert by_threshold[2.5].detected == len(windows)
    assert by_threshold[6.0].detected <= by_threshold[2.5].detected
    for name in ("sweep_csv", "windows_csv", "summary_csv", "chart_png"):
        assert result.files[name].is_file() and result.files[name].stat().st_size > 0


def test_labels_accept_iso_times_and_reject_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text("symbol,start,end\nbtc-usdt,2024-08-08T10:00:00Z,2024-08-08T10:05:00\n")
    (w,) = load_labels(path)
    assert (w.symbol, w.start_ms, w.end_ms, w.bottom_ms) == ("BTC-USDT", 1723111200000, 1723111500000, 1723111500000)
    path.write_text("symbol,start,end\nBTC-USDT,later,soon\n")
    with pytest.raises(ValueError, match="l.csv:2"):
        load_labels(path)
    path.write_text("sym,from,to\n")
    with pytest.raises(ValueError, match="symbol,start,end"):
        load_labels(path)


def test_backtest_cli_on_a_recording(tmp_path: Path) -> None:
    source, _, files = record_sim(tmp_path, "flash_crash", 5)
    labels = write_labels(tmp_path / "labels.csv", source.generator.windows())
    proc = subprocess.run([sys.executable, "-m", "sentrycoin.cli", "backtest", *map(str, files), "--labels",
                           str(labels), "--out", str(tmp_path / "bt"), "--no-sweep"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "detected before bottom" in proc.stdout
    assert (tmp_path / "bt" / "chart.png").is_file()


def test_backtest_cli_simulated(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sentrycoin.cli", "backtest", "--simulate", "--scenario",
                           "flash_crash", "--seeds", "2", "--out", str(tmp_path / "sim")],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "detection rate" in proc.stdout and (tmp_path / "sim" / "sweep.csv").is_file()
