"""`record` against the local venue emulator, then `replay`: the replayed books equal the venue's truth."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sentrycoin.config import load_settings
from sentrycoin.emulator import Fault, create_emulator
from sentrycoin.research.record import record_live
from sentrycoin.research.recording import ConnectRecord, FrameRecord, SnapshotRecord, read_records
from sentrycoin.research.replay import replay_files

SYMBOLS = ["BTC-USDT", "ETH-USDT"]


@pytest.mark.timeout(90)
async def test_record_then_replay_rebuilds_the_venue_books(tmp_path: Path) -> None:
    async with create_emulator("binance", SYMBOLS, seed=11) as emu:
        settings = load_settings(env={"EXCHANGE": "binance", "SYMBOLS": ",".join(SYMBOLS)})
        stop = asyncio.Event()
        os.environ["BINANCE_WS_URL"] = emu.ws_url
        os.environ["BINANCE_REST_URL"] = emu.rest_url
        try:
            task = asyncio.create_task(record_live(settings, tmp_path / "rec", stop, max_bytes=1_000_000))
            await asyncio.sleep(1.5)
            emu.inject(Fault.GAP, symbol="BTC-USDT")  # the recording must carry the resync too
            await asyncio.sleep(1.5)
            emu.pause()
            await asyncio.sleep(0.4)  # in-flight frames land
            truth = {s: emu.books[s].top_key(20) for s in SYMBOLS}
            stop.set()
            files = (await asyncio.wait_for(task, 20)).files
        finally:
            os.environ.pop("BINANCE_WS_URL", None)
            os.environ.pop("BINANCE_REST_URL", None)
    assert files
    records = [r for f in files for r in read_records(f)]
    assert any(isinstance(r, ConnectRecord) for r in records)
    assert sum(isinstance(r, SnapshotRecord) for r in records) >= 3  # one per symbol + the resync
    assert sum(isinstance(r, FrameRecord) for r in records) > 10

    summary = replay_files(files)
    by_symbol = {m.symbol: m for m in summary.markets}
    # The gap resynced BTC-USDT only; the recording ends with the connection
    # closing when recording stopped, which replay reproduces too.
    assert by_symbol["BTC-USDT"].resyncs == 2 and by_symbol["ETH-USDT"].resyncs == 1
    assert all(m.invalid_reason == "disconnected" for m in summary.markets)
    for symbol in SYMBOLS:
        market = by_symbol[symbol]
        bids, asks = truth[symbol]
        assert tuple(map(tuple, market.book.bids(20).tolist())) == bids
        assert tuple(map(tuple, market.book.asks(20).tolist())) == asks
