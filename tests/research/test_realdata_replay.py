"""The real recordings in ../shared/realdata replay through `replay` (skipped with a reason when absent)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sentrycoin.research.replay import replay_files
from tests.realdata import realdata_path

RAW = ["BINANCE_SPOT_BTCUSDT_20240808.gz", "BINANCE_SPOT_ETHUSDT_20240808.gz",
       "BINANCE_SPOT_BTCUSDT_20240809.gz", "BINANCE_SPOT_ETHUSDT_20240809.gz"]


def test_the_0808_and_0809_files_chain_into_one_stream_per_symbol() -> None:
    # Given in glob order (BTC, BTC, ETH, ETH would work too): each 0809 file continues its 0808 file.
    summary = replay_files([realdata_path(n) for n in RAW])
    assert set(summary.formats.values()) == {"binance-raw"}
    by_symbol = {m.symbol: m for m in summary.markets}
    assert set(by_symbol) == {"BTC-USDT", "ETH-USDT"}
    for market in by_symbol.values():
        # No snapshot in the 0809 files: only an unbroken chain keeps the books valid to the end.
        assert market.valid and market.resyncs == 0 and market.rejected == 0
    # Every depth event after the one REST snapshot per symbol (3,451 + 3,044 and 3,434 + 3,036 events).
    assert by_symbol["BTC-USDT"].messages == 6_493
    assert by_symbol["ETH-USDT"].messages == 6_468
    assert summary.snapshots == 2
    assert 640 < summary.span_s < 660  # ~11 minutes


@pytest.mark.parametrize(("name", "venue", "books"), [
    ("BINANCE.jsonl.zst", "binance", 4), ("COINBASE.jsonl.zst", "coinbase", 2), ("KRAKEN.jsonl.zst", "kraken", 10)])
def test_cryptofeed_captures_replay_with_every_book_in_sync(name: str, venue: str, books: int) -> None:
    summary = replay_files([realdata_path(name)])
    assert summary.formats == {str(realdata_path(name)): "cryptofeed"}
    assert len(summary.markets) == books
    for market in summary.markets:
        assert market.exchange == venue
        assert market.valid and market.resyncs == 0 and market.rejected == 0 and market.messages > 0, market


def test_replay_cli_on_the_real_btcusdt_stream() -> None:
    files = [str(realdata_path(n)) for n in RAW[0::2]]
    proc = subprocess.run([sys.executable, "-m", "sentrycoin.cli", "replay", "--no-progress", *files],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "6,493" in proc.stdout and "BTC-USDT" in proc.stdout
