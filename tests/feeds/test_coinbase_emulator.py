"""End to end: registry + live runner + CoinbaseHandler against the local venue emulator on 127.0.0.1.

`sequence_num` spans the whole connection, so a lost, repeated or reordered
message resyncs every book on it (both symbols here), after which they are
valid again and equal to the emulator's true books.
"""

from __future__ import annotations

import pytest

from tests.feeds.binance_bybit_okx_frames import emulator_round_trip

SYMBOLS = ("BTC-USD", "ETH-USD")


@pytest.mark.timeout(90)
async def test_sequence_faults_resync_the_connection_and_books_match_truth():
    faults = ["gap", "drop", "duplicate", "reorder"]
    out = await emulator_round_trip("coinbase", faults, symbols=SYMBOLS)
    assert out["initial"]
    assert out["resynced"] == {f: (True, True) for f in faults}
    # The other book shares the connection: it resynced with every fault (a
    # REORDERed message that lands late can rightly cause one more).
    assert out["other_resyncs"][0] >= len(faults)
    assert out["mine"] == out["truth"]
    assert out["counters"].decode_errors == 0


@pytest.mark.timeout(90)
async def test_garbage_frame_is_counted_and_spends_no_sequence_number():
    out = await emulator_round_trip("coinbase", ["garbage"], symbols=SYMBOLS)
    assert out["resynced"] == {"garbage": (False, True)}
    assert out["counters"].decode_errors >= 1
    assert out["other_resyncs"] == [0]
    assert out["mine"] == out["truth"]
