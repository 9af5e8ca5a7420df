"""Bybit v5 spot and linear: snapshot/delta rules, resubscribe, depth choice."""

from __future__ import annotations

import json
import logging

import pytest

from sentrycoin.feeds.base import Send
from sentrycoin.feeds.bybit import BybitLinearHandler, BybitSpotHandler, choose_depth
from tests.feeds.binance_bybit_okx_frames import bb_book, book_dict, book_state, make_markets, sends

WS = "ws://127.0.0.1:9/v5/public/spot"
BIDS = [(100.0, 1.0), (99.0, 2.0)]
ASKS = [(101.0, 1.0), (102.0, 3.0)]


def handler(cls=BybitSpotHandler, symbols=("BTC-USDT", "ETH-USDT"), **kw):
    markets = make_markets(cls.venue, list(symbols))
    h = cls(markets, WS, **kw)
    return h, {x.symbol: x for x in markets}


def synced(cls=BybitSpotHandler):
    h, m = handler(cls)
    h.on_connected(0)
    h.take_actions()
    for native in ("BTCUSDT", "ETHUSDT"):
        h.on_frame(0, bb_book(native, "snapshot", 1000, BIDS, ASKS), 1)
    assert all(x.valid for x in m.values())
    return h, m


def test_connection_spec_and_subscribe():
    h, m = handler()
    (spec,) = h.connections()
    assert spec.url == WS and spec.symbols == ["BTC-USDT", "ETH-USDT"]
    assert json.loads(spec.ping_payload) == {"op": "ping"} and spec.ping_interval_s == 20
    h.on_connected(0)
    assert sends(h.take_actions()) == [{"op": "subscribe", "args": ["orderbook.50.BTCUSDT", "orderbook.50.ETHUSDT"]}]
    assert all(x.connected for x in m.values())


def test_subscribe_args_chunked_and_connections_split():
    symbols = [f"S{i}-USDT" for i in range(25)]
    h, _ = handler(symbols=symbols, symbols_per_connection=12)
    assert [len(s.symbols) for s in h.connections()] == [12, 12, 1]
    h.on_connected(1)
    msgs = sends(h.take_actions())
    assert [len(x["args"]) for x in msgs] == [10, 2]
    assert msgs[0]["args"][0] == "orderbook.50.S12USDT"
    assert all(isinstance(a, Send) for a in h.actions) and h.actions == []


@pytest.mark.parametrize("depth,chosen", [(1, 1), (10, 50), (50, 50), (51, 200), (200, 200), (500, 1000), (5000, 1000)])
def test_depth_choice(depth, chosen, caplog):
    assert choose_depth(depth) == chosen
    with caplog.at_level(logging.INFO, logger="sentrycoin.feeds.bybit"):
        markets = make_markets("bybit-linear", ["BTC-USDT"], depth=min(depth, 1000), capacity=5000)
        h = BybitLinearHandler(markets, WS, depth=depth)
    h.on_connected(0)
    assert sends(h.take_actions())[0]["args"] == [f"orderbook.{chosen}.BTCUSDT"]
    assert f"orderbook.{chosen}" in caplog.text


def test_snapshot_then_deltas():
    h, m = handler()
    btc = m["BTC-USDT"]
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, bb_book("BTCUSDT", "delta", 7, [(100.0, 5.0)]), 1)  # before any snapshot: ignored
    assert not btc.valid and btc.messages == 0 and btc.book.bid_levels == 0
    h.on_frame(0, bb_book("BTCUSDT", "snapshot", 10, BIDS, ASKS), 2)
    assert btc.valid and btc.messages == 1
    h.on_frame(0, bb_book("BTCUSDT", "delta", 11, [(100.0, 0.0), (98.5, 4.0)], [(101.0, 2.0)]), 3)
    h.on_frame(0, bb_book("BTCUSDT", "delta", 12, [], [(100.5, 1.0)]), 4)
    assert btc.valid and btc.messages == 3
    assert book_dict(btc) == ({99.0: 2.0, 98.5: 4.0}, {100.5: 1.0, 101.0: 2.0, 102.0: 3.0})
    assert btc.last_event_ms == 1_700_000_000_000
    assert h.take_actions() == []


@pytest.mark.parametrize("u", [1002, 1000, 999], ids=["gap", "duplicate", "reorder"])
@pytest.mark.parametrize("cls", [BybitSpotHandler, BybitLinearHandler])
def test_sequence_break_resubscribes_that_symbol_only(cls, u):
    h, m = synced(cls)
    btc, eth = m["BTC-USDT"], m["ETH-USDT"]
    before = book_state(btc)
    h.on_frame(0, bb_book("BTCUSDT", "delta", u, [(100.0, 9.0)]), 2)
    assert book_state(btc) == before
    assert not btc.valid and btc.resyncs == 1 and btc.rejected == 1
    assert sends(h.take_actions()) == [
        {"op": "unsubscribe", "args": ["orderbook.50.BTCUSDT"]},
        {"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]},
    ]
    # Other symbol unaffected.
    h.on_frame(0, bb_book("ETHUSDT", "delta", 1001, [(100.0, 3.0)]), 3)
    assert eth.valid and book_dict(eth)[0][100.0] == 3.0
    # Deltas still in flight are ignored until the new snapshot.
    h.on_frame(0, bb_book("BTCUSDT", "delta", 1003, [(100.0, 8.0)]), 4)
    assert not btc.valid and book_state(btc) == before
    h.on_frame(0, bb_book("BTCUSDT", "snapshot", 2000, [(90.0, 1.0)], [(91.0, 1.0)]), 5)
    assert btc.valid and book_dict(btc) == ({90.0: 1.0}, {91.0: 1.0})
    h.on_frame(0, bb_book("BTCUSDT", "delta", 2001, [(90.0, 2.0)]), 6)
    assert btc.valid and h.take_actions() == []


def test_u_equal_1_is_a_snapshot():
    h, m = synced()
    btc = m["BTC-USDT"]
    h.on_frame(0, bb_book("BTCUSDT", "delta", 1, [(50.0, 1.0)], [(51.0, 1.0)]), 2)
    assert btc.valid and btc.resyncs == 0
    assert book_dict(btc) == ({50.0: 1.0}, {51.0: 1.0})  # replaced, not merged
    h.on_frame(0, bb_book("BTCUSDT", "delta", 2, [(49.0, 1.0)]), 3)
    assert btc.valid and book_dict(btc)[0] == {50.0: 1.0, 49.0: 1.0}
    assert h.take_actions() == []


def test_new_snapshot_replaces_book_any_time():
    h, m = synced()
    h.on_frame(0, bb_book("BTCUSDT", "snapshot", 5, [(10.0, 1.0)], [(11.0, 1.0)]), 2)
    assert book_dict(m["BTC-USDT"]) == ({10.0: 1.0}, {11.0: 1.0}) and m["BTC-USDT"].valid


def test_bad_values_rejected_atomically():
    h, m = synced()
    btc = m["BTC-USDT"]
    before = book_state(btc)
    h.on_frame(0, bb_book("BTCUSDT", "delta", 1001, [(100.0, 4.0)], [(101.0, -2.0)]), 2)
    assert book_state(btc) == before and not btc.valid and btc.rejected == 1
    assert len(sends(h.take_actions())) == 2


def test_bad_snapshot_rejected():
    h, m = handler()
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, bb_book("BTCUSDT", "snapshot", 10, [(-1.0, 1.0)], ASKS), 1)
    assert not m["BTC-USDT"].valid and m["BTC-USDT"].book.ask_levels == 0
    assert [x["op"] for x in sends(h.take_actions())] == ["unsubscribe", "subscribe"]


def test_garbage_and_acks():
    h, m = synced()
    before = {s: book_state(x) for s, x in m.items()}
    for junk in (b"", b"\xff\xfe", b"{", b"[]", b"null", b'{"topic":5}'):
        h.on_frame(0, junk, 2)
    assert h.counters.decode_errors == 6
    h.on_frame(0, b'{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}', 2)
    h.on_frame(0, b'{"op":"pong","args":["1675418560633"],"conn_id":"x"}', 2)
    h.on_frame(0, b'{"success":true,"ret_msg":"","conn_id":"x","req_id":"","op":"subscribe"}', 2)
    h.on_frame(0, b'{"success":false,"ret_msg":"error:handler not found","conn_id":"x","op":"subscribe"}', 2)
    h.on_frame(0, bb_book("XRPUSDT", "delta", 5, [(1.0, 1.0)]), 2)  # not ours
    assert h.counters.ignored == 5
    assert all(x.valid for x in m.values())
    assert {s: book_state(x) for s, x in m.items()} == before
    assert h.take_actions() == []


def test_undecodable_book_message_for_our_topic_resubscribes():
    h, m = synced()
    h.on_frame(0, b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["x","1"]],"a":[],"u":1001}}', 2)
    assert h.counters.decode_errors == 1
    assert not m["BTC-USDT"].valid and m["ETH-USDT"].valid
    assert sends(h.take_actions())[1] == {"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}


def test_unknown_type_resubscribes():
    h, m = synced()
    h.on_frame(0, bb_book("BTCUSDT", "weird", 1001, [(100.0, 1.0)]), 2)
    assert h.counters.decode_errors == 1 and not m["BTC-USDT"].valid


def test_disconnect_and_reconnect():
    h, m = synced()
    h.on_disconnected(0)
    assert not any(x.valid or x.connected for x in m.values())
    h.on_frame(0, bb_book("BTCUSDT", "delta", 1001, [(100.0, 1.0)]), 2)  # straggler: ignored
    assert not m["BTC-USDT"].valid
    h.on_connected(0)
    assert sends(h.take_actions())[0]["op"] == "subscribe"
    h.on_frame(0, bb_book("BTCUSDT", "snapshot", 5000, BIDS, ASKS), 3)
    assert m["BTC-USDT"].valid and m["BTC-USDT"].connected


def test_failed_subscribe_names_the_reason():
    h, m = handler()
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, b'{"success":false,"ret_msg":"Invalid symbol :[orderbook.50.ETHUSDT]","conn_id":"x","op":"subscribe"}', 1)
    assert "Invalid symbol" in m["ETH-USDT"].invalid_reason
    assert m["BTC-USDT"].invalid_reason == "waiting for snapshot"
    assert h.counters.ignored == 1 and h.counters.decode_errors == 0
