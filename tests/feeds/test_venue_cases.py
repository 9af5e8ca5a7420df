"""The Coinbase and Kraken bench cases (benches/venue_cases): frames every handler takes as the venue meant.

A bench row is only worth its number if the frames chain, the checksums
are the venue book's, and both consumers really process them; these run the
cases' own handlers over every frame.
"""

from __future__ import annotations

import asyncio
import inspect
import logging

import pytest

from tests.realdata import realdata_path


@pytest.fixture(autouse=True)
def _quiet(caplog):
    caplog.set_level(logging.ERROR)  # replayed event times are "skewed" from now: one warning each


def test_coinbase_case_chains_on_our_handler():
    realdata_path("COINBASE.jsonl.zst")
    from benches.venue_cases import coinbase

    snapshots, updates, _ = coinbase.recorded()
    handler = coinbase.ours(snapshots)
    for frame in updates:
        handler.on_frame(0, frame, 0)
    assert handler.gaps == 0 and handler.counters.decode_errors == 0 and handler.counters.ignored == 0
    assert all(m.valid for m in handler.markets.values())
    assert sum(m.messages for m in handler.markets.values()) == len(snapshots) + len(updates)
    [case] = coinbase.cases()
    assert case.levels == 5 and case.frames == updates


def test_kraken_v2_case_checksums_are_the_venue_books():
    realdata_path("BINANCE_SPOT_BTCUSDT_20240808.gz")
    pytest.importorskip("sortedcontainers")
    from benches.venue_cases import kraken

    snapshot, updates, v1_snapshot, v1_updates = kraken.v2_frames()
    assert len(updates) == len(v1_updates) > 3000
    handler = kraken.ours_v2(snapshot)
    for frame in updates:
        handler.on_frame(0, frame, 0)
    assert handler.checksum_failed == 0 and handler.checksum_ok == len(updates) + 1
    assert handler.markets["BTC-USD"].valid and handler.markets["BTC-USD"].book.bid_levels <= kraken.DEPTH
    # The same levels as v1 frames give the same book and checksums.
    v1 = kraken.ours_v1(v1_snapshot, ["XBT/USD"])
    for frame in v1_updates:
        v1.on_frame(0, frame, 0)
    assert v1.checksum_failed == 0 and v1.checksum_ok == len(v1_updates)  # a v1 snapshot carries none
    assert v1.markets["BTC-USD"].book.bids().tolist() == handler.markets["BTC-USD"].book.bids().tolist()


def test_rivals_process_the_case_frames():
    realdata_path("COINBASE.jsonl.zst")
    realdata_path("KRAKEN.jsonl.zst")
    realdata_path("BINANCE_SPOT_BTCUSDT_20240808.gz")
    pytest.importorskip("cryptofeed")
    pytest.importorskip("sortedcontainers")
    from benches.venue_cases import coinbase, kraken

    loop = asyncio.new_event_loop()
    try:
        for case in coinbase.cases() + kraken.cases():
            assert case.start_rival is not None, case.name
            sink = case.start_rival()
            assert inspect.iscoroutinefunction(sink), case.name
            for frame in case.frames[:200]:
                loop.run_until_complete(sink(frame))
            ours = case.start_ours()
            for frame in case.frames[:200]:
                ours(frame)
    finally:
        loop.close()
