"""Replay of real Coinbase Advanced Trade traffic (realdata/COINBASE.jsonl.zst) through CoinbaseHandler.on_frame.

The recording holds one connection carrying level2, ticker, market_trades,
candles and heartbeats for BTC-USD and ETH-USD; `sequence_num` runs across
all of them.  The books must rebuild with zero gaps, never show crossed at a
valid state, and match a plain-dict reference rebuilt from the same frames.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest

from sentrycoin.feeds.coinbase import CoinbaseHandler
from sentrycoin.market import Market
from tests.feeds.coinbase_kraken_frames import read_records, recv_frames
from tests.realdata import realdata_path

SYMBOLS = ("BTC-USD", "ETH-USD")


@lru_cache(maxsize=1)
def _frames() -> tuple[tuple[bytes, int], ...]:
    records = read_records(realdata_path("COINBASE.jsonl.zst"))
    conns = {r["conn"] for r in records if r["t"] == "recv"}
    assert len(conns) == 1, conns
    return tuple(recv_frames(records))


@pytest.fixture()
def frames() -> tuple[tuple[bytes, int], ...]:
    return _frames()


def replay(frames, capacity: int = 5000, check_crossed: bool = True):
    markets = [Market("coinbase", s, capacity=capacity, source="replay") for s in SYMBOLS]
    handler = CoinbaseHandler(markets, "wss://advanced-trade-ws.coinbase.com")
    handler.on_connected(0)
    subscribe = handler.take_actions()
    crossed = 0
    valid_checks = 0
    for data, recv_ms in frames:
        handler.on_frame(0, data, recv_ms)
        if check_crossed:
            for m in markets:
                if m.valid:
                    valid_checks += 1
                    if not m.book.best_bid < m.book.best_ask:
                        crossed += 1
    return handler, {m.symbol: m for m in markets}, subscribe, crossed, valid_checks


def test_recording_sequence_is_contiguous_across_channels(frames):
    # Independent of the handler: the property the handler relies on.
    seqs = [json.loads(d)["sequence_num"] for d, _ in frames]
    channels = {json.loads(d)["channel"] for d, _ in frames}
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert {"l2_data", "heartbeats", "ticker"} <= channels


def test_replay_rebuilds_books_with_zero_gaps(frames):
    handler, markets, subscribe, crossed, valid_checks = replay(frames)
    l2_events = {s: 0 for s in SYMBOLS}
    for data, _ in frames:
        msg = json.loads(data)
        if msg["channel"] == "l2_data":
            for ev in msg["events"]:
                l2_events[ev["product_id"]] += 1
    assert len(subscribe) == 2
    assert handler.gaps == 0
    assert handler.counters.decode_errors == 0 and handler.internal_errors == 0
    assert handler.counters.frames == len(frames)
    assert handler.take_actions() == []  # never needed a resubscribe
    assert crossed == 0 and valid_checks > 1000
    for s, m in markets.items():
        assert m.valid, s
        assert m.resyncs == 0 and m.rejected == 0
        assert m.messages == l2_events[s] > 100
        assert m.book.bid_levels > 1000 and m.book.ask_levels > 1000
        assert m.book.best_bid < m.book.best_ask
        assert m.last_event_ms is not None and m.last_event_ms > 1_786_000_000_000


def _reference_books(frames):
    """Plain dict books from the same frames, by json and Decimal-free float parsing."""
    books = {s: ({}, {}) for s in SYMBOLS}
    for data, _ in frames:
        msg = json.loads(data)
        if msg["channel"] != "l2_data":
            continue
        for ev in msg["events"]:
            bids, asks = books[ev["product_id"]]
            if ev["type"] == "snapshot":
                bids.clear()
                asks.clear()
            for u in ev["updates"]:
                side = bids if u["side"] == "bid" else asks
                price, qty = float(u["price_level"]), float(u["new_quantity"])
                if qty == 0.0:
                    side.pop(price, None)
                else:
                    side[price] = qty
    return books


def test_replay_matches_reference_book(frames):
    handler, markets, _, _, _ = replay(frames, capacity=200_000, check_crossed=False)
    reference = _reference_books(frames)
    for s, m in markets.items():
        ref_bids, ref_asks = reference[s]
        want_bids = np.array(sorted(ref_bids.items(), reverse=True))
        want_asks = np.array(sorted(ref_asks.items()))
        assert not m.book.truncated
        np.testing.assert_array_equal(m.book.bids(), want_bids)
        np.testing.assert_array_equal(m.book.asks(), want_asks)
        assert m.book.bid_volume == pytest.approx(want_bids[:50, 1].sum(), rel=1e-12)
        assert m.book.ask_volume == pytest.approx(want_asks[:50, 1].sum(), rel=1e-12)


@pytest.mark.parametrize("channel", ["heartbeats", "ticker"])
def test_dropping_one_non_l2_frame_is_detected(frames, channel):
    # Lose one frame of another channel mid-stream: both books must resync.
    candidates = [i for i, (d, _) in enumerate(frames) if json.loads(d)["channel"] == channel]
    idx = candidates[len(candidates) // 2]  # well after both snapshots
    handler, markets, _, crossed, _ = replay(frames[:idx] + frames[idx + 1:])
    assert handler.gaps == 1
    actions = [json.loads(a.payload) for a in handler.take_actions()]
    assert actions == [
        {"type": "unsubscribe", "product_ids": list(SYMBOLS), "channel": "level2"},
        {"type": "subscribe", "product_ids": list(SYMBOLS), "channel": "level2"},
    ]
    # No fresh snapshot comes in a recording: the books stay invalid.
    assert all(not m.valid and m.resyncs == 1 for m in markets.values())
    assert crossed == 0
