"""Binance spot and USD-M futures: sync rules and failure paths with hand-built frames."""

from __future__ import annotations

import json
import logging

import pytest

from sentrycoin.feeds.base import FetchSnapshot, Reconnect, Send
from sentrycoin.feeds.binance import MAX_LIFETIME_S, BinanceFuturesHandler, BinanceSpotHandler
from tests.feeds.binance_bybit_okx_frames import bn_depth, bn_snapshot, book_dict, book_state, fetches, make_markets

WS = "ws://127.0.0.1:9/stream"
REST = "http://127.0.0.1:9/api/v3/depth"
SNAP_BIDS = [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)]
SNAP_ASKS = [(101.0, 1.5), (102.0, 2.5), (103.0, 3.5)]


def connect(h, conn_id: int = 0) -> None:
    """Open the connection and have Binance acknowledge every SUBSCRIBE: the snapshots are requested."""
    h.on_connected(conn_id)
    ids = [json.loads(a.payload)["id"] for a in h.take_actions() if isinstance(a, Send)]
    for request_id in ids:
        h.on_frame(conn_id, b'{"result":null,"id":%d}' % request_id, 1)
    h.take_actions()


def spot(symbols=("BTC-USDT", "ETH-USDT"), **kw):
    markets = make_markets("binance", list(symbols))
    h = BinanceSpotHandler(markets, WS, REST, **kw)
    return h, {m.symbol: m for m in markets}


def synced_spot(last_id: int = 100):
    """Both symbols synced at `last_id` (bridged by one event U=last_id+1..u=last_id+1)."""
    h, m = spot()
    connect(h)
    for sym, native in (("BTC-USDT", "BTCUSDT"), ("ETH-USDT", "ETHUSDT")):
        h.on_snapshot(sym, bn_snapshot(last_id, SNAP_BIDS, SNAP_ASKS), 1)
        h.on_frame(0, bn_depth(native, last_id + 1, last_id + 1, [(100.0, 1.1)]), 2)
        assert m[sym].valid
    assert h.take_actions() == []
    return h, m


# -- connections and requests ---------------------------------------------------

def test_one_combined_connection_subscribed_by_messages():
    h, _ = spot()
    (spec,) = h.connections()
    assert spec.url == WS  # no stream names in the URL (1024 of them make ~20 KB)
    assert spec.symbols == ["BTC-USDT", "ETH-USDT"]
    assert spec.max_lifetime_s == MAX_LIFETIME_S < 24 * 3600
    assert spec.ping_payload is None
    h.on_connected(0)
    assert [json.loads(a.payload) for a in h.take_actions()] == [
        {"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms", "ethusdt@depth@100ms"], "id": 1}]


def test_url_is_used_as_given():
    markets = make_markets("binance", ["BTC-USDT"])
    h = BinanceSpotHandler(markets, WS + "?x=1", REST)
    assert h.connections()[0].url == WS + "?x=1"


def test_connections_split_past_the_stream_limit():
    h, _ = spot(("A-USDT", "B-USDT", "C-USDT", "D-USDT", "E-USDT"), max_streams_per_connection=2)
    specs = h.connections()
    assert [s.symbols for s in specs] == [["A-USDT", "B-USDT"], ["C-USDT", "D-USDT"], ["E-USDT"]]
    assert [s.conn_id for s in specs] == [0, 1, 2]
    h.on_connected(2)
    assert [json.loads(a.payload)["params"] for a in h.take_actions()] == [["eusdt@depth@100ms"]]


def test_subscribe_messages_carry_at_most_200_streams():
    symbols = [f"S{i}-USDT" for i in range(450)]
    h = BinanceSpotHandler(make_markets("binance", symbols, depth=5, capacity=5), WS, REST)
    h.on_connected(0)
    sizes = [len(json.loads(a.payload)["params"]) for a in h.take_actions()]
    assert sizes == [200, 200, 50]


def test_futures_keeps_to_200_streams_per_connection():
    symbols = [f"S{i}-USDT" for i in range(450)]
    h = BinanceFuturesHandler(make_markets("binance-futures", symbols, depth=5, capacity=5), WS, REST)
    assert [len(s.symbols) for s in h.connections()] == [200, 200, 50]


def test_default_limit_is_1024_streams_per_connection():
    symbols = [f"S{i}-USDT" for i in range(1030)]
    markets = make_markets("binance", symbols, depth=5, capacity=5)
    h = BinanceSpotHandler(markets, WS, REST)
    assert [len(s.symbols) for s in h.connections()] == [1024, 6]


def test_subscribe_reply_fetches_one_snapshot_per_symbol():
    h, m = spot()
    h.on_connected(0)
    (sub,) = h.take_actions()
    assert all(x.connected for x in m.values())
    h.on_frame(0, b'{"result":null,"id":%d}' % json.loads(sub.payload)["id"], 1)
    assert h.take_actions() == [
        FetchSnapshot("BTC-USDT", REST + "?symbol=BTCUSDT&limit=1000"),
        FetchSnapshot("ETH-USDT", REST + "?symbol=ETHUSDT&limit=1000"),
    ]
    h.on_frame(0, b'{"result":null,"id":99}', 2)  # not ours
    assert h.take_actions() == []


def test_first_event_fetches_when_the_reply_has_not_come():
    h, m = spot(("BTC-USDT",))
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, bn_depth("BTCUSDT", 10, 12, [(100.0, 5.0)]), 1)
    assert fetches(h) == [FetchSnapshot("BTC-USDT", REST + "?symbol=BTCUSDT&limit=1000")]
    h.on_frame(0, b'{"result":null,"id":1}', 2)  # already asked: no second request
    assert h.take_actions() == []


def test_refused_subscribe_says_so_in_status():
    h, m = spot(("BTC-USDT",))
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, b'{"error":{"code":2,"msg":"Invalid request"},"id":1}', 1)
    assert not m["BTC-USDT"].valid and "subscribe refused" in m["BTC-USDT"].last_error
    assert h.take_actions() == []


def test_snapshot_limit_covers_depth():
    markets = make_markets("binance", ["BTC-USDT"], depth=2000, capacity=6000)
    assert BinanceSpotHandler(markets, WS, REST, depth=2000).snapshot_limit == 5000
    markets = make_markets("binance-futures", ["BTC-USDT"])
    assert BinanceFuturesHandler(markets, WS, REST).snapshot_limit == 1000


def test_rest_url_required():
    with pytest.raises(ValueError):
        BinanceSpotHandler(make_markets("binance", ["BTC-USDT"]), WS, None)


# -- spot sync ----------------------------------------------------------------------

def test_buffered_events_bridge_into_snapshot():
    h, m = spot(("BTC-USDT",))
    btc = m["BTC-USDT"]
    connect(h)
    h.on_frame(0, bn_depth("BTCUSDT", 95, 99, [(100.0, 9.0)]), 1)  # inside the snapshot: dropped
    h.on_frame(0, bn_depth("BTCUSDT", 100, 103, [(99.0, 0.0)], [(101.0, 4.0)]), 2)  # bridges L=101
    h.on_frame(0, bn_depth("BTCUSDT", 104, 104, [(97.0, 7.0)]), 3)
    assert not btc.valid and btc.messages == 0
    h.on_snapshot("BTC-USDT", bn_snapshot(101, SNAP_BIDS, SNAP_ASKS), 4)
    assert btc.valid
    assert btc.messages == 2
    bids, asks = book_dict(btc)
    assert bids == {100.0: 1.0, 98.0: 3.0, 97.0: 7.0}
    assert asks == {101.0: 4.0, 102.0: 2.5, 103.0: 3.5}
    h.on_frame(0, bn_depth("BTCUSDT", 105, 106, [], [(101.0, 0.0)]), 5)
    assert btc.valid and btc.book.best_ask == 102.0
    assert h.take_actions() == [] and btc.resyncs == 0


def test_snapshot_before_any_event_waits_for_bridge():
    h, m = spot(("BTC-USDT",))
    btc = m["BTC-USDT"]
    connect(h)
    h.on_snapshot("BTC-USDT", bn_snapshot(200, SNAP_BIDS, SNAP_ASKS), 1)
    assert not btc.valid  # loaded, but no event has bridged yet
    h.on_frame(0, bn_depth("BTCUSDT", 190, 200, [(100.0, 5.0)]), 2)  # u <= L: dropped
    assert not btc.valid and book_dict(btc)[0][100.0] == 1.0
    h.on_frame(0, bn_depth("BTCUSDT", 201, 202, [(100.0, 6.0)]), 3)
    assert btc.valid and book_dict(btc)[0][100.0] == 6.0


def test_snapshot_older_than_buffer_is_fetched_again():
    h, m = spot(("BTC-USDT",))
    btc = m["BTC-USDT"]
    connect(h)
    h.on_frame(0, bn_depth("BTCUSDT", 50, 60, [(100.0, 5.0)]), 1)
    before = book_state(btc)
    h.on_snapshot("BTC-USDT", bn_snapshot(48, SNAP_BIDS, SNAP_ASKS), 2)  # 48 + 1 < 50
    assert fetches(h) == [FetchSnapshot("BTC-USDT", REST + "?symbol=BTCUSDT&limit=1000")]
    assert not btc.valid and book_state(btc) == before  # the stale snapshot was not loaded
    h.on_snapshot("BTC-USDT", bn_snapshot(49, SNAP_BIDS, SNAP_ASKS), 3)  # 49 + 1 == 50: bridges
    assert btc.valid and book_dict(btc)[0][100.0] == 5.0


def test_hole_in_buffer_restarts_buffer():
    h, m = spot(("BTC-USDT",))
    btc = m["BTC-USDT"]
    connect(h)
    h.on_frame(0, bn_depth("BTCUSDT", 10, 12, [(100.0, 5.0)]), 1)
    h.on_frame(0, bn_depth("BTCUSDT", 15, 16, [(99.0, 5.0)]), 2)  # 13..14 lost
    h.on_snapshot("BTC-USDT", bn_snapshot(12, SNAP_BIDS, SNAP_ASKS), 3)  # cannot reach 15
    assert len(fetches(h)) == 1 and not btc.valid
    h.on_snapshot("BTC-USDT", bn_snapshot(14, SNAP_BIDS, SNAP_ASKS), 4)
    assert btc.valid and book_dict(btc)[0][99.0] == 5.0 and book_dict(btc)[0][100.0] == 1.0


def test_snapshot_that_does_not_bridge_the_next_event_resyncs():
    h, m = spot(("BTC-USDT",))
    btc = m["BTC-USDT"]
    connect(h)
    h.on_snapshot("BTC-USDT", bn_snapshot(200, SNAP_BIDS, SNAP_ASKS), 1)
    h.on_frame(0, bn_depth("BTCUSDT", 205, 206, [(100.0, 6.0)]), 2)  # 201..204 missing
    assert not btc.valid and book_dict(btc)[0][100.0] == 1.0
    assert len(fetches(h)) == 1
    # The event that showed the hole starts the new buffer.
    h.on_snapshot("BTC-USDT", bn_snapshot(205, SNAP_BIDS, SNAP_ASKS), 3)
    assert btc.valid and book_dict(btc)[0][100.0] == 6.0


@pytest.mark.parametrize("U,u", [(103, 103), (102, 102)], ids=["gap", "reorder"])
def test_sequence_break_resyncs_only_that_symbol(U, u):
    h, m = synced_spot(100)
    btc, eth = m["BTC-USDT"], m["ETH-USDT"]
    if U == 102:  # reorder: 103 arrives before 102
        h.on_frame(0, bn_depth("BTCUSDT", 103, 103, [(100.0, 3.0)]), 3)
    else:
        before = book_state(btc)
        h.on_frame(0, bn_depth("BTCUSDT", U, u, [(100.0, 3.0)]), 3)
        assert book_state(btc) == before  # sequence checked before applying
    assert not btc.valid and btc.resyncs == 1 and btc.rejected == 1
    assert h.take_actions() == [FetchSnapshot("BTC-USDT", REST + "?symbol=BTCUSDT&limit=1000")]
    # The other symbol on the connection is untouched and keeps applying.
    assert eth.valid and eth.resyncs == 0
    h.on_frame(0, bn_depth("ETHUSDT", 102, 102, [(100.0, 2.0)]), 4)
    assert eth.valid and book_dict(eth)[0][100.0] == 2.0
    assert h.take_actions() == []


@pytest.mark.parametrize("U,u", [(101, 101), (100, 101), (90, 95)], ids=["duplicate", "overlap", "old"])
def test_event_already_applied_is_ignored_not_a_gap(U, u):
    h, m = synced_spot(100)
    btc = m["BTC-USDT"]
    before = book_state(btc)
    h.on_frame(0, bn_depth("BTCUSDT", U, u, [(100.0, 3.0)]), 3)
    assert book_state(btc) == before and btc.valid and btc.resyncs == 0
    assert h.take_actions() == []
    h.on_frame(0, bn_depth("BTCUSDT", 102, 102, [(100.0, 4.0)]), 4)  # the chain goes on
    assert btc.valid and book_dict(btc)[0][100.0] == 4.0


def test_resync_then_recovers_from_new_snapshot():
    h, m = synced_spot(100)
    btc = m["BTC-USDT"]
    h.on_frame(0, bn_depth("BTCUSDT", 110, 111, [(100.0, 3.0)]), 3)  # gap
    assert not btc.valid
    h.take_actions()
    h.on_frame(0, bn_depth("BTCUSDT", 112, 113, [(99.0, 4.0)]), 4)
    h.on_snapshot("BTC-USDT", bn_snapshot(111, [(100.0, 3.0), (99.0, 2.0)], SNAP_ASKS), 5)
    assert btc.valid and book_dict(btc)[0] == {100.0: 3.0, 99.0: 4.0}
    assert btc.resyncs == 1


def test_bad_values_reject_message_and_leave_book_unchanged():
    h, m = synced_spot(100)
    btc = m["BTC-USDT"]
    before = book_state(btc)
    # Bids fine, one ask negative: the bids must not land either.
    h.on_frame(0, bn_depth("BTCUSDT", 102, 102, [(100.0, 7.0)], [(101.0, -1.0)]), 3)
    assert book_state(btc) == before
    assert not btc.valid and btc.rejected == 1
    assert [a.symbol for a in fetches(h)] == ["BTC-USDT"]


@pytest.mark.parametrize("bad", ["NaN", "inf", "0"])
def test_bad_price_rejected(bad):
    h, m = synced_spot(100)
    btc = m["BTC-USDT"]
    before = book_state(btc)
    frame = bn_depth("BTCUSDT", 102, 102, [(100.0, 1.0)], [(101.5, 1.0)]).replace(b'"101.5"', f'"{bad}"'.encode())
    h.on_frame(0, frame, 3)
    assert book_state(btc) == before and not btc.valid


def test_garbage_frames_count_and_keep_books():
    h, m = synced_spot(100)
    before = {s: book_state(x) for s, x in m.items()}
    for junk in (b"", b"\x00\xff", b"not json", b"[1,2", b'{"stream":1}', b"123", b'"x"'):
        h.on_frame(0, junk, 3)
    assert h.counters.decode_errors == 7
    assert all(x.valid for x in m.values())
    assert {s: book_state(x) for s, x in m.items()} == before


def test_undecodable_depth_event_for_known_stream_resyncs_it():
    h, m = synced_spot(100)
    frame = b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":102,"u":102,"b":"x","a":[]}}'
    h.on_frame(0, frame, 3)
    assert h.counters.decode_errors == 1
    assert not m["BTC-USDT"].valid and m["ETH-USDT"].valid
    assert [a.symbol for a in fetches(h)] == ["BTC-USDT"]


def test_acks_and_other_streams_are_ignored():
    h, m = synced_spot(100)
    h.counters.ignored = 0
    h.on_frame(0, b'{"result":null,"id":1}', 3)
    h.on_frame(0, b'{"stream":"btcusdt@bookTicker","data":{"u":5,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}}', 3)
    h.on_frame(0, bn_depth("XRPUSDT", 1, 2, [(1.0, 1.0)]), 3)
    assert h.counters.ignored == 3 and h.counters.decode_errors == 0
    assert all(x.valid for x in m.values())


def test_bad_snapshot_bodies():
    h, m = spot(("BTC-USDT",))
    btc = m["BTC-USDT"]
    connect(h)
    h.on_snapshot("BTC-USDT", b'{"code":-1003,"msg":"Too many requests"}', 1)
    assert h.counters.decode_errors == 1 and len(fetches(h)) == 1  # the first retry is at once
    h.on_snapshot("BTC-USDT", bn_snapshot(5, [(100.0, -1.0)], SNAP_ASKS), 2)
    assert not btc.valid and btc.rejected == 2 and btc.last_error.startswith("bad snapshot")
    assert btc.book.bid_levels == 0
    # A second failure soon after the first waits out the backoff before asking again.
    assert fetches(h) == []
    due = h.recovery_due("BTC-USDT")
    assert due is not None
    h.tick(due + 0.001)
    assert len(fetches(h)) == 1


def test_late_duplicate_snapshot_is_ignored():
    h, m = synced_spot(100)
    h.counters.ignored = 0
    before = book_state(m["BTC-USDT"])
    h.on_snapshot("BTC-USDT", bn_snapshot(50, [(1.0, 1.0)], [(2.0, 1.0)]), 3)
    assert book_state(m["BTC-USDT"]) == before and m["BTC-USDT"].valid
    h.on_snapshot("NOPE-USDT", bn_snapshot(50), 3)
    assert h.counters.ignored == 2


def test_disconnect_invalidates_and_reconnect_refetches():
    h, m = synced_spot(100)
    h.on_disconnected(0)
    assert not any(x.valid or x.connected for x in m.values())
    h.on_frame(0, bn_depth("BTCUSDT", 102, 102, [(100.0, 9.0)]), 3)  # stale frame after drop: buffered only
    assert not m["BTC-USDT"].valid
    h.take_actions()
    h.on_connected(0)
    (sub,) = h.take_actions()
    h.on_frame(0, b'{"result":null,"id":%d}' % json.loads(sub.payload)["id"], 1)
    assert [a.symbol for a in fetches(h)] == ["BTC-USDT", "ETH-USDT"]
    h.on_snapshot("BTC-USDT", bn_snapshot(300, SNAP_BIDS, SNAP_ASKS), 4)
    h.on_frame(0, bn_depth("BTCUSDT", 301, 301, [(100.0, 2.0)]), 5)
    assert m["BTC-USDT"].valid


def test_snapshot_request_repeated_when_answer_never_comes():
    h, m = spot(("BTC-USDT",))
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, b'{"result":null,"id":1}', 1)
    assert len(fetches(h)) == 1
    h.on_frame(0, bn_depth("BTCUSDT", 1, 1, [(100.0, 1.0)]), 1_000)
    h.on_frame(0, bn_depth("BTCUSDT", 2, 2, [(100.0, 1.0)]), 5_000)
    assert fetches(h) == []
    h.on_frame(0, bn_depth("BTCUSDT", 3, 3, [(100.0, 1.0)]), 20_000)
    assert len(fetches(h)) == 1


def test_alerts_only_on_a_valid_book():
    alerts = []
    markets = make_markets("binance", ["BTC-USDT"])
    markets[0].on_alert = alerts.append
    h = BinanceSpotHandler(markets, WS, REST)
    connect(h)
    heavy_asks = [(101.0, 50.0), (102.0, 50.0)]
    h.on_frame(0, bn_depth("BTCUSDT", 10, 10, [(100.0, 1.0)], heavy_asks), 1)  # buffered, not applied
    assert alerts == []
    h.on_snapshot("BTC-USDT", bn_snapshot(9, [(100.0, 1.0)], [(101.0, 1.0)]), 2)
    assert markets[0].valid and len(alerts) == 1
    assert alerts[0].exchange == "binance" and alerts[0].symbol == "BTC-USDT"
    assert alerts[0].ratio == pytest.approx(100.0)


# -- futures ------------------------------------------------------------------------

def futures(symbols=("BTC-USDT", "ETH-USDT")):
    markets = make_markets("binance-futures", list(symbols))
    h = BinanceFuturesHandler(markets, WS, REST)
    connect(h)
    return h, {x.symbol: x for x in markets}


def test_futures_bridge_uses_pu_rules():
    h, m = futures(("BTC-USDT",))
    btc = m["BTC-USDT"]
    h.on_frame(0, bn_depth("BTCUSDT", 90, 99, [(100.0, 9.0)], pu=89), 1)  # u < L: dropped
    h.on_frame(0, bn_depth("BTCUSDT", 100, 105, [(100.0, 5.0)], pu=99), 2)  # U <= L=100 <= u
    h.on_frame(0, bn_depth("BTCUSDT", 106, 110, [(99.0, 0.0)], pu=105), 3)
    h.on_snapshot("BTC-USDT", bn_snapshot(100, SNAP_BIDS, SNAP_ASKS), 4)
    assert btc.valid and btc.messages == 2
    assert book_dict(btc)[0] == {100.0: 5.0, 98.0: 3.0}
    # Futures ids need not be contiguous: only pu must chain.
    h.on_frame(0, bn_depth("BTCUSDT", 120, 125, [(97.0, 1.0)], pu=110), 5)
    assert btc.valid and btc.messages == 3


def test_futures_event_ending_at_snapshot_id_bridges():
    """u == L is dropped on spot but bridges on futures (U <= L <= u)."""
    h, m = futures(("BTC-USDT",))
    h.on_snapshot("BTC-USDT", bn_snapshot(100, SNAP_BIDS, SNAP_ASKS), 1)
    h.on_frame(0, bn_depth("BTCUSDT", 95, 100, [(100.0, 5.0)], pu=94), 2)
    assert m["BTC-USDT"].valid and book_dict(m["BTC-USDT"])[0][100.0] == 5.0


def test_futures_stale_snapshot_refetched():
    h, m = futures(("BTC-USDT",))
    h.on_frame(0, bn_depth("BTCUSDT", 100, 105, [(100.0, 5.0)], pu=99), 1)
    h.on_snapshot("BTC-USDT", bn_snapshot(99, SNAP_BIDS, SNAP_ASKS), 2)  # L < first U
    assert not m["BTC-USDT"].valid
    assert fetches(h) == [FetchSnapshot("BTC-USDT", REST + "?symbol=BTCUSDT&limit=1000")]


def test_futures_pu_break_resyncs_only_that_symbol():
    h, m = futures()
    for sym, native in (("BTC-USDT", "BTCUSDT"), ("ETH-USDT", "ETHUSDT")):
        h.on_snapshot(sym, bn_snapshot(100, SNAP_BIDS, SNAP_ASKS), 1)
        h.on_frame(0, bn_depth(native, 99, 101, [(100.0, 1.5)], pu=98), 2)
    assert all(x.valid for x in m.values())
    before = book_state(m["BTC-USDT"])
    h.on_frame(0, bn_depth("BTCUSDT", 103, 104, [(100.0, 7.0)], pu=102), 3)  # pu != 101
    assert book_state(m["BTC-USDT"]) == before
    assert not m["BTC-USDT"].valid and m["ETH-USDT"].valid
    assert [a.symbol for a in fetches(h)] == ["BTC-USDT"]


def test_futures_rejects_spot_shaped_events():
    h, m = futures(("BTC-USDT",))
    h.on_frame(0, bn_depth("BTCUSDT", 1, 2, [(100.0, 1.0)]), 1)  # no pu
    assert h.counters.decode_errors == 1


def test_garbage_flood_logs_are_throttled(caplog):
    h, m = synced_spot(100)
    with caplog.at_level(logging.WARNING, logger="sentrycoin.feeds"):
        for _ in range(1000):
            h.on_frame(0, b"\x00garbage", 3)
    assert h.counters.decode_errors == 1000
    lines = [r for r in caplog.records if "undecodable" in r.getMessage()]
    assert 1 <= len(lines) <= 2
    assert all(x.valid for x in m.values())


def test_resync_during_buffer_replay_keeps_the_rest_buffered():
    h, m = spot(("BTC-USDT",))
    btc = m["BTC-USDT"]
    connect(h)
    h.on_frame(0, bn_depth("BTCUSDT", 10, 10, [(100.0, 2.0)]), 1)
    h.on_frame(0, bn_depth("BTCUSDT", 11, 11, [(100.0, 3.0)], [(101.0, -5.0)]), 2)  # bad ask
    h.on_frame(0, bn_depth("BTCUSDT", 12, 12, [(99.0, 4.0)]), 3)
    h.on_snapshot("BTC-USDT", bn_snapshot(9, SNAP_BIDS, SNAP_ASKS), 4)
    assert not btc.valid and btc.rejected == 1
    assert [a.symbol for a in fetches(h)] == ["BTC-USDT"]
    h.on_snapshot("BTC-USDT", bn_snapshot(11, SNAP_BIDS, SNAP_ASKS), 5)  # bridges into event 12
    assert btc.valid and book_dict(btc)[0][99.0] == 4.0


# -- serverShutdown: make before break ------------------------------------------------

@pytest.mark.parametrize("frame", [
    b'{"e":"serverShutdown","E":1733990400000}',
    b'{"stream":"btcusdt@depth@100ms","data":{"e":"serverShutdown","E":1733990400000}}',
], ids=["raw", "wrapped"])
def test_server_shutdown_asks_for_a_switch_over_of_that_connection(frame):
    h, m = spot(("A-USDT", "B-USDT", "C-USDT"), max_streams_per_connection=2)
    h.on_connected(1)
    h.take_actions()
    sink = h.frame_sink(1)
    assert h.frame_sink(1) is sink  # one frame path per connection
    sink(1, frame, 5)
    assert h.take_actions() == [Reconnect(1, "serverShutdown", make_before_break=True)]
    # Through the handler-wide path (replay, sim) the connection is not known: all switch.
    h.on_frame(1, frame, 6)
    assert h.take_actions() == [Reconnect(0, "serverShutdown", make_before_break=True),
                                Reconnect(1, "serverShutdown", make_before_break=True)]
    assert h.counters.decode_errors == 0


def test_switch_over_subscribes_the_new_socket_and_the_books_carry_on():
    h, m = synced_spot(100)
    btc = m["BTC-USDT"]
    h.on_switched(0)
    (sub,) = h.take_actions()
    assert json.loads(sub.payload)["method"] == "SUBSCRIBE"
    assert btc.valid  # nothing was reset
    # Both sockets deliver for a while: each event arrives twice, in any order.
    old, new = h.frame_sink(0), h.frame_sink(0)
    for U, qty in ((102, 2.0), (103, 3.0), (104, 4.0)):
        ev = bn_depth("BTCUSDT", U, U, [(100.0, qty)])
        old(0, ev, U)
        new(0, ev, U)
    new(0, b'{"result":null,"id":%d}' % json.loads(sub.payload)["id"], 9)  # synced books need no snapshot
    assert h.take_actions() == []
    assert btc.valid and btc.resyncs == 0 and book_dict(btc)[0][100.0] == 4.0


def test_frame_sink_goes_through_a_wrapped_on_frame():
    h, m = spot(("BTC-USDT",))
    seen = []
    inner = h.on_frame

    def tee(conn_id, data, recv_ms):  # noqa: ANN001, ANN202 - the recorder's shape
        seen.append(data)
        inner(conn_id, data, recv_ms)

    h.on_frame = tee
    assert h.frame_sink(0) is tee
    h.frame_sink(0)(0, b'{"e":"serverShutdown"}', 1)
    assert seen and isinstance(h.take_actions()[0], Reconnect)
