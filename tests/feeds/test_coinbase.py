"""CoinbaseHandler: subscriptions, snapshot/update application, the cross-channel sequence rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sentrycoin.feeds.base import Send
from sentrycoin.feeds.coinbase import CoinbaseHandler
from sentrycoin.market import AlertEvent, DetectorSettings, Market
from tests.feeds.coinbase_kraken_frames import (
    book_copy,
    cb_frame,
    cb_heartbeat,
    cb_l2,
    cb_snapshot_levels,
    counting_book,
    same_book,
)

SYMBOLS = ("BTC-USD", "ETH-USD")


def make(symbols=SYMBOLS, **kw) -> tuple[CoinbaseHandler, dict[str, Market]]:
    markets = [Market("coinbase", s) for s in symbols]
    handler = CoinbaseHandler(markets, "ws://127.0.0.1:9/", **kw)
    return handler, {m.symbol: m for m in markets}


def sends(handler: CoinbaseHandler) -> list[dict]:
    out = []
    for action in handler.take_actions():
        assert isinstance(action, Send)
        out.append(json.loads(action.payload))
    return out


def synced(symbols=SYMBOLS, **kw) -> tuple[CoinbaseHandler, dict[str, Market], int]:
    """Connected, both books snapshotted; returns the next sequence number."""
    handler, markets = make(symbols, **kw)
    handler.on_connected(0)
    handler.take_actions()
    seq = 0
    for i, s in enumerate(symbols):
        handler.on_frame(0, cb_l2(seq, s, "snapshot", cb_snapshot_levels(100.0 * (i + 1))), 1)
        seq += 1
    return handler, markets, seq


def test_subscribes_level2_and_heartbeats_one_channel_per_message():
    handler, markets = make()
    specs = handler.connections()
    assert len(specs) == 1 and specs[0].symbols == list(SYMBOLS) and specs[0].url == "ws://127.0.0.1:9/"
    handler.on_connected(0)
    assert sends(handler) == [
        {"type": "subscribe", "product_ids": list(SYMBOLS), "channel": "level2"},
        {"type": "subscribe", "product_ids": list(SYMBOLS), "channel": "heartbeats"},
    ]
    assert all(m.connected for m in markets.values())


def test_products_split_across_connections():
    handler, _ = make(("A-USD", "B-USD", "C-USD"), products_per_connection=2)
    specs = handler.connections()
    assert [s.symbols for s in specs] == [["A-USD", "B-USD"], ["C-USD"]]
    assert [s.conn_id for s in specs] == [0, 1]


def test_snapshot_replaces_book_and_marks_valid():
    handler, markets = make()
    handler.on_connected(0)
    m = markets["BTC-USD"]
    assert not m.valid
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", cb_snapshot_levels(100.0)), 1)
    assert m.valid and m.book.best_bid == 99.0 and m.book.best_ask == 101.0
    assert m.book.bid_levels == 5 and m.book.ask_levels == 5
    # A second snapshot replaces everything: none of the old levels survive.
    handler.on_frame(0, cb_l2(1, "BTC-USD", "snapshot", [("bid", "50", "2"), ("offer", "60", "3")]), 2)
    assert m.book.bids().tolist() == [[50.0, 2.0]]
    assert m.book.asks().tolist() == [[60.0, 3.0]]
    assert m.valid and m.messages == 2


def test_update_is_one_batch_then_after_message():
    handler, markets, seq = synced()
    m = markets["BTC-USD"]
    counting = counting_book(m)
    levels = [("bid", "99.5", "1"), ("offer", "100.5", "2"), ("bid", "98", "0"), ("offer", "101", "0"),
              ("bid", "97", "4")]
    handler.on_frame(0, cb_l2(seq, "BTC-USD", "update", levels,
                              timestamp="2026-08-09T21:05:49.250000Z"), 5)
    assert counting.calls == ["apply(3 bids, 2 asks)"]  # one batch call for the whole message
    assert m.book.best_bid == 99.5 and m.book.best_ask == 100.5
    assert 98.0 not in m.book.bids()[:, 0] and 101.0 not in m.book.asks()[:, 0]
    assert m.messages == 2
    # event time is the venue's message timestamp, in ms
    assert m.last_event_ms == 1786309549250


def test_update_with_one_side_is_one_batch_too():
    handler, markets, seq = synced()
    m = markets["ETH-USD"]
    counting = counting_book(m)
    handler.on_frame(0, cb_l2(seq, "ETH-USD", "update", [("offer", "200.5", "1")]), 5)
    assert counting.calls == ["apply(0 bids, 1 asks)"]
    assert m.book.best_ask == 200.5


@pytest.mark.parametrize("timestamp,expected_ms", [
    ("2026-08-09T21:05:49.250000999Z", 1786309549250),
    ("2026-08-09T21:05:49Z", 1786309549000),
    ("2026-08-09T21:05:49.001Z", 1786309549001),
    ("2026-08-09T21:05:48.999999999Z", 1786309548999),
    ("2026-08-09T21:05:49.25", 1786309549250),  # no zone: UTC
    ("yesterday", 77),  # unusable: the receive time
    ("", 77),
])
def test_event_time_from_message_timestamp(timestamp, expected_ms):
    handler, markets, seq = synced()
    handler.on_frame(0, cb_l2(seq, "BTC-USD", "update", [("bid", "99.5", "1")], timestamp=timestamp), 77)
    assert markets["BTC-USD"].last_event_ms == expected_ms
    assert markets["BTC-USD"].book.best_bid == 99.5 and handler.counters.decode_errors == 0


def test_heartbeat_between_l2_messages_is_not_a_gap():
    handler, markets, seq = synced()
    handler.on_frame(0, cb_heartbeat(seq), 3)
    handler.on_frame(0, cb_frame(seq + 1, "ticker", [{"type": "update", "tickers": []}]), 3)
    handler.on_frame(0, cb_l2(seq + 2, "BTC-USD", "update", [("bid", "99.5", "1")]), 4)
    assert handler.gaps == 0
    assert handler.take_actions() == []
    assert all(m.valid for m in markets.values())
    assert markets["BTC-USD"].book.best_bid == 99.5
    assert handler.counters.ignored == 2


def test_gap_across_channels_resyncs_every_book_on_the_connection():
    handler, markets, seq = synced()
    handler.on_frame(0, cb_heartbeat(seq), 3)
    # seq + 1 (say a ticker) is lost; the gap shows on an l2 message of one product ...
    before = book_copy(markets["BTC-USD"])
    handler.on_frame(0, cb_l2(seq + 2, "ETH-USD", "update", [("bid", "199.5", "1")]), 4)
    assert handler.gaps == 1
    # ... but both books are invalid: we cannot know whose message was lost.
    assert not markets["BTC-USD"].valid and not markets["ETH-USD"].valid
    assert markets["BTC-USD"].resyncs == 1 and markets["ETH-USD"].resyncs == 1
    assert sends(handler) == [
        {"type": "unsubscribe", "product_ids": list(SYMBOLS), "channel": "level2"},
        {"type": "subscribe", "product_ids": list(SYMBOLS), "channel": "level2"},
    ]
    # Updates of the old subscription are dropped until a snapshot arrives.
    handler.on_frame(0, cb_l2(seq + 3, "BTC-USD", "update", [("bid", "99.9", "1")]), 5)
    assert same_book(book_copy(markets["BTC-USD"]), before)
    assert not markets["BTC-USD"].valid
    handler.on_frame(0, cb_l2(seq + 4, "BTC-USD", "snapshot", cb_snapshot_levels(110.0)), 6)
    assert markets["BTC-USD"].valid and markets["BTC-USD"].book.best_bid == 109.0
    assert not markets["ETH-USD"].valid
    handler.on_frame(0, cb_l2(seq + 5, "ETH-USD", "snapshot", cb_snapshot_levels(210.0)), 7)
    assert markets["ETH-USD"].valid
    handler.on_frame(0, cb_l2(seq + 6, "ETH-USD", "update", [("offer", "210.5", "1")]), 8)
    assert markets["ETH-USD"].book.best_ask == 210.5
    assert handler.gaps == 1 and handler.take_actions() == []


@pytest.mark.parametrize("bad_seq", [0, 1, -1])
def test_sequence_going_backwards_or_repeating_is_a_gap(bad_seq):
    handler, markets, seq = synced()
    assert seq == 2
    handler.on_frame(0, cb_heartbeat(bad_seq), 3)
    assert handler.gaps == 1
    assert not any(m.valid for m in markets.values())
    assert [s["type"] for s in sends(handler)] == ["unsubscribe", "subscribe"]


def test_gap_only_touches_its_own_connection():
    handler, markets = make(products_per_connection=1)
    handler.on_connected(0)
    handler.on_connected(1)
    handler.take_actions()
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", cb_snapshot_levels(100.0)), 1)
    handler.on_frame(1, cb_l2(0, "ETH-USD", "snapshot", cb_snapshot_levels(200.0)), 1)
    handler.on_frame(1, cb_heartbeat(5), 2)  # gap on connection 1 only
    assert markets["BTC-USD"].valid and not markets["ETH-USD"].valid
    assert handler.take_actions() == [
        Send(1, '{"type":"unsubscribe","product_ids":["ETH-USD"],"channel":"level2"}'),
        Send(1, '{"type":"subscribe","product_ids":["ETH-USD"],"channel":"level2"}'),
    ]


def test_reconnect_restarts_the_sequence():
    handler, markets, seq = synced()
    handler.on_disconnected(0)
    assert not any(m.valid or m.connected for m in markets.values())
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, cb_heartbeat(0), 5)  # a new connection starts again at 0
    handler.on_frame(0, cb_l2(1, "BTC-USD", "update", [("bid", "99.5", "1")]), 5)
    assert handler.gaps == 0
    assert not markets["BTC-USD"].valid  # still waiting for its snapshot
    handler.on_frame(0, cb_l2(2, "BTC-USD", "snapshot", cb_snapshot_levels(100.0)), 6)
    assert markets["BTC-USD"].valid


def test_garbage_frames_are_counted_and_never_raise():
    handler, markets, seq = synced()
    before = {s: book_copy(m) for s, m in markets.items()}
    for junk in (b"", b"\x00\xff", b"not json", b"[1,2,3]", b'{"channel": 5}', b'{"sequence_num": "x"}',
                 b'{"channel":"l2_data","sequence_num":' + str(seq).encode() + b',"events":[{"type":7}]}'):
        handler.on_frame(0, junk, 3)
    assert handler.counters.decode_errors == 7 and handler.internal_errors == 0
    for s, m in markets.items():
        assert same_book(book_copy(m), before[s])
    # The unreadable l2_data message spent a sequence number: books resync.
    assert not any(m.valid for m in markets.values())


def test_bad_values_reject_the_message_and_resubscribe_that_product():
    handler, markets, seq = synced()
    m = markets["BTC-USD"]
    before = book_copy(m)
    # A good bid and a NaN ask in one event: nothing of it may be applied.
    handler.on_frame(0, cb_l2(seq, "BTC-USD", "update", [("bid", "99.5", "1"), ("offer", "100.5", "NaN")]), 3)
    assert same_book(book_copy(m), before)
    assert not m.valid and m.rejected == 1
    assert markets["ETH-USD"].valid
    assert sends(handler) == [
        {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
    ]


@pytest.mark.parametrize("levels", [
    [("bid", "99.5", "-1")],
    [("offer", "0", "1")],
    [("bid", "inf", "1")],
    [("ask", "100.5", "1")],  # Coinbase says "offer"
])
def test_other_bad_updates_leave_the_book_unchanged(levels):
    handler, markets, seq = synced()
    m = markets["BTC-USD"]
    before = book_copy(m)
    handler.on_frame(0, cb_l2(seq, "BTC-USD", "update", levels), 3)
    assert same_book(book_copy(m), before)
    assert not m.valid and m.rejected == 1


def test_bad_snapshot_is_refused():
    handler, markets = make()
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", [("bid", "99", "1"), ("offer", "nan", "1")]), 1)
    m = markets["BTC-USD"]
    assert not m.valid and m.rejected == 1 and len(m.book) == 0
    assert [s["type"] for s in sends(handler)] == ["unsubscribe", "subscribe"]


def test_unknown_products_and_other_channels_are_ignored():
    handler, markets, seq = synced()
    handler.on_frame(0, cb_l2(seq, "DOGE-USD", "update", [("bid", "1", "1")]), 3)
    handler.on_frame(0, cb_frame(seq + 1, "subscriptions", [{"subscriptions": {"level2": ["BTC-USD"]}}]), 3)
    handler.on_frame(0, b'{"type":"error","message":"failure to subscribe"}', 3)
    assert handler.counters.ignored == 3 and handler.counters.decode_errors == 0
    assert handler.gaps == 0 and all(m.valid for m in markets.values())


def test_alerts_flow_through_after_message():
    alerts: list[AlertEvent] = []
    market = Market("coinbase", "BTC-USD", depth=5, settings=DetectorSettings(danger_ratio=2.5),
                    on_alert=alerts.append)
    handler = CoinbaseHandler([market], "ws://127.0.0.1:9/")
    handler.on_connected(0)
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", cb_snapshot_levels(100.0)), 1)
    assert alerts == []
    # Asks swell to 10x the bids: the detector must fire on this message.
    handler.on_frame(0, cb_l2(1, "BTC-USD", "update", [("offer", "101.00", "15")]), 2)
    assert len(alerts) == 1
    assert alerts[0].exchange == "coinbase" and alerts[0].symbol == "BTC-USD"
    assert math.isclose(alerts[0].ratio, (15 + 4 * 1.5) / (5 * 1.5))


def test_big_snapshot_keeps_best_levels():
    handler, markets = make(("BTC-USD",))
    handler.on_connected(0)
    levels = [("bid", f"{1000 - i * 0.01:.2f}", "1") for i in range(7000)]
    levels += [("offer", f"{1001 + i * 0.01:.2f}", "2") for i in range(7000)]
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", levels), 1)
    book = markets["BTC-USD"].book
    assert book.best_bid == 1000.0 and book.best_ask == 1001.0
    assert book.truncated and book.bid_levels == book.max_capacity
    assert np.all(np.diff(book.bids()[:, 0]) < 0)


def test_an_internal_error_never_escapes_and_resyncs_the_connection():
    def broken_sink(event: AlertEvent) -> None:
        raise RuntimeError("sink bug")

    market = Market("coinbase", "BTC-USD", depth=5, on_alert=broken_sink)
    handler = CoinbaseHandler([market], "ws://127.0.0.1:9/")
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", cb_snapshot_levels(100.0)), 1)
    handler.on_frame(0, cb_l2(1, "BTC-USD", "update", [("offer", "101.00", "15")]), 2)  # alerts -> raises
    assert handler.internal_errors == 1 and not market.valid
    assert [s["type"] for s in sends(handler)] == ["unsubscribe", "subscribe"]
