"""Replay of real Kraken v1 `book-1000` traffic (realdata/KRAKEN.jsonl.zst) through KrakenHandler.on_frame.

Every update in the recording carries Kraken's CRC32 of the top 10 levels per
side: an oracle for the whole book path (decode, apply, truncate, checksum
text).  All of them must match.
"""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

from sentrycoin.feeds.kraken import KrakenHandler, from_venue_symbol
from sentrycoin.market import Market
from tests.feeds.coinbase_kraken_frames import read_records, recv_frames
from tests.realdata import realdata_path

BOOK_CONN = "KRAKEN.ws.50"  # the recording's book connection (48: trades, 49: ticker)


@lru_cache(maxsize=1)
def _recording() -> tuple[list[str], tuple[tuple[bytes, int], ...]]:
    records = read_records(realdata_path("KRAKEN.jsonl.zst"))
    header = next(r for r in records if r["t"] == "header")
    sub = next(r for r in records if r["t"] == "send" and r["conn"] == BOOK_CONN)
    pairs = json.loads(sub["data"])["pair"]
    symbols = [from_venue_symbol(p) for p in pairs]
    # The recorder's own names (normal form) must agree with our mapping of the v1 pairs.
    assert sorted(symbols) == sorted(header["config"]["l2_book"])
    return symbols, tuple(recv_frames(records, BOOK_CONN))


@pytest.fixture()
def recording():
    return _recording()


def _count_checksums(frames) -> int:
    n = 0
    for data, _ in frames:
        msg = json.loads(data)
        if isinstance(msg, list):
            n += sum(1 for part in msg[1:-2] if "c" in part)
    return n


def replay(symbols, frames, depth: int = 1000):
    markets = [Market("kraken", s, source="replay") for s in symbols]
    handler = KrakenHandler(markets, "wss://ws.kraken.com", depth=depth)
    assert handler.protocol == "v1"
    handler.on_connected(0)
    subscribe = handler.take_actions()
    for data, recv_ms in frames:
        handler.on_frame(0, data, recv_ms)
    return handler, {m.symbol: m for m in markets}, subscribe


def test_every_checksum_in_the_recording_matches(recording):
    symbols, frames = recording
    expected = _count_checksums(frames)
    assert expected == 4269  # the recording's update messages, all with "c"
    handler, markets, subscribe = replay(symbols, frames)
    assert json.loads(subscribe[0].payload)["subscription"] == {"name": "book", "depth": 1000}
    assert handler.checksum_failed == 0
    assert handler.checksum_ok == expected
    assert handler.counters.decode_errors == 0 and handler.internal_errors == 0
    assert handler.counters.checksum_skipped == 0
    assert handler.take_actions() == []
    assert len(markets) == 10
    for s, m in markets.items():
        assert m.valid, s
        assert m.rejected == 0 and m.resyncs == 0
        assert m.messages > 10
        assert m.book.best_bid < m.book.best_ask
        assert handler.book_state(s).depth == 1000


def test_acknowledged_depth_wins_over_the_configured_one(recording):
    # Configured for depth 50 (we would subscribe 100), but the venue's acks
    # say book-1000: truncating at 100 would be wrong; the acks must rule.
    symbols, frames = recording
    handler, markets, _ = replay(symbols, frames, depth=50)
    assert handler.checksum_failed == 0 and handler.checksum_ok == 4269
    assert all(handler.book_state(s).depth == 1000 for s in symbols)


def _top_level_update(symbols, frames) -> tuple[int, str]:
    """Index of an update whose first level lands in the top 10 (so the checksum covers it)."""
    markets = [Market("kraken", s) for s in symbols]
    handler = KrakenHandler(markets, "wss://ws.kraken.com", depth=1000)
    handler.on_connected(0)
    by_symbol = {m.symbol: m for m in markets}
    for i, (data, recv_ms) in enumerate(frames):
        handler.on_frame(0, data, recv_ms)
        msg = json.loads(data)
        if i < 200 or not isinstance(msg, list) or len(msg) != 4 or "c" not in msg[1]:
            continue
        key = "a" if "a" in msg[1] else "b"
        price, qty = msg[1][key][0][0], msg[1][key][0][1]
        book = by_symbol[from_venue_symbol(msg[-1])].book
        top = (book.asks(10) if key == "a" else book.bids(10))[:, 0].tolist()
        if float(qty) > 0 and float(price) in top:
            return i, msg[-1]
    raise AssertionError("no top-of-book update found")


def test_a_corrupted_quantity_is_caught_by_the_checksum(recording):
    symbols, frames = recording
    idx, pair = _top_level_update(symbols, frames)
    msg = json.loads(frames[idx][0])
    key = "a" if "a" in msg[1] else "b"
    qty = msg[1][key][0][1]
    # Change the last digit of the quantity: still a valid number, now wrong.
    msg[1][key][0][1] = qty[:-1] + ("1" if qty[-1] != "1" else "2")
    corrupted = frames[:idx] + ((json.dumps(msg).encode(), frames[idx][1]),) + frames[idx + 1:]
    handler, markets, _ = replay(symbols, corrupted)
    symbol = from_venue_symbol(pair)
    assert handler.checksum_failed == 1  # later updates wait for a snapshot that never comes
    assert not markets[symbol].valid and markets[symbol].rejected == 1
    assert all(m.valid for s, m in markets.items() if s != symbol)
    actions = [json.loads(a.payload) for a in handler.take_actions()]
    assert actions == [
        {"event": "unsubscribe", "pair": [pair], "subscription": {"name": "book", "depth": 1000}},
        {"event": "subscribe", "pair": [pair], "subscription": {"name": "book", "depth": 1000}},
    ]
