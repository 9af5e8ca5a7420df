"""End to end: registry + live runner + KrakenHandler (v2) against the local venue emulator on 127.0.0.1.

The emulator speaks Kraken v2 (JSON numbers in shortest form, instrument
precisions, truncation left to the client, CRC32 on every message).  Faults
that lose or corrupt book data must make the affected book (and only it)
resync, after which it is valid again and equal to the emulator's true book.
"""

from __future__ import annotations

import pytest

from tests.feeds.binance_bybit_okx_frames import emulator_round_trip

SYMBOLS = ("BTC-USD", "ETH-USD")


@pytest.mark.timeout(90)
async def test_faults_resync_only_that_book_and_book_matches_truth():
    faults = ["drop", "bad_checksum", "reorder"]
    out = await emulator_round_trip("kraken", faults, symbols=SYMBOLS)
    assert out["initial"]
    assert out["resynced"] == {f: (True, True) for f in faults}
    assert out["other_resyncs"] == [0]
    assert out["mine"] == out["truth"]
    assert out["counters"].decode_errors == 0


@pytest.mark.timeout(90)
async def test_garbage_frame_is_counted_and_disturbs_no_book():
    out = await emulator_round_trip("kraken", ["garbage"], symbols=SYMBOLS)
    assert out["resynced"] == {"garbage": (False, True)}
    assert out["counters"].decode_errors >= 1
    assert out["other_resyncs"] == [0]
    assert out["mine"] == out["truth"]
