"""KrakenHandler: symbols, depth choice, v2 and v1 book sync, truncation, checksums, resubscribes."""

from __future__ import annotations

import json
import zlib
from decimal import Decimal

import pytest

from sentrycoin.feeds.base import Send
from sentrycoin.feeds.checksum import fixed_text, kraken_checksum, level_token, strip_number
from sentrycoin.feeds.kraken import (
    KrakenHandler,
    from_venue_symbol,
    protocol_for_url,
    subscription_depth,
    to_v1_pair,
    to_v2_symbol,
)
from sentrycoin.market import Market
from tests.feeds.coinbase_kraken_frames import (
    book_copy,
    counting_book,
    kr_v1_snapshot,
    kr_v1_status,
    kr_v1_update,
    kr_v2_book,
    kr_v2_instrument,
    same_book,
)

V2_URL = "ws://127.0.0.1:9/v2"
V1_URL = "ws://127.0.0.1:9/"


def make(symbols=("BTC-USD", "ETH-USD"), url=V2_URL, **kw) -> tuple[KrakenHandler, dict[str, Market]]:
    markets = [Market("kraken", s) for s in symbols]
    return KrakenHandler(markets, url, **kw), {m.symbol: m for m in markets}


def payloads(handler: KrakenHandler) -> list[dict]:
    out = []
    for action in handler.take_actions():
        assert isinstance(action, Send)
        out.append(json.loads(action.payload))
    return out


# -- symbols, depth, protocol -------------------------------------------------------


def test_symbol_mapping_both_protocols():
    assert to_v2_symbol("BTC-USD") == "BTC/USD"
    assert to_v1_pair("BTC-USD") == "XBT/USD"
    assert to_v1_pair("DOGE-USD") == "XDG/USD"
    assert to_v1_pair("KSM-BTC") == "KSM/XBT"
    assert to_v1_pair("ETH-CHF") == "ETH/CHF"
    assert from_venue_symbol("XBT/USD") == "BTC-USD"
    assert from_venue_symbol("BTC/USD") == "BTC-USD"
    assert from_venue_symbol("ADA/XBT") == "ADA-BTC"
    assert from_venue_symbol("XDG/EUR") == "DOGE-EUR"


@pytest.mark.parametrize("depth,expected", [(1, 10), (10, 10), (11, 25), (25, 25), (50, 100), (100, 100),
                                            (101, 500), (500, 500), (999, 1000), (1000, 1000), (5000, 1000)])
def test_subscription_depth_is_smallest_covering(depth, expected):
    assert subscription_depth(depth) == expected


def test_protocol_from_url():
    assert protocol_for_url("wss://ws.kraken.com/v2") == "v2"
    assert protocol_for_url("wss://ws.kraken.com") == "v1"
    assert protocol_for_url("wss://ws.kraken.com/") == "v1"
    assert protocol_for_url("wss://beta-ws.kraken.com") == "v1"
    assert protocol_for_url("ws://127.0.0.1:8000/v2") == "v2"
    assert protocol_for_url("ws://127.0.0.1:8000/") == "v2"
    handler, _ = make(url="ws://127.0.0.1:9/", protocol="v1")
    assert handler.protocol == "v1"
    with pytest.raises(ValueError):
        make(protocol="v3")  # type: ignore[arg-type]


def test_v2_connect_subscribes_instrument_then_book_with_covering_depth():
    handler, markets = make(depth=50)
    (spec,) = handler.connections()
    assert spec.symbols == ["BTC-USD", "ETH-USD"]
    assert spec.ping_payload == '{"method":"ping"}' and spec.ping_interval_s
    handler.on_connected(0)
    assert payloads(handler) == [
        {"method": "subscribe", "params": {"channel": "instrument", "snapshot": True}},
        {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"],
                                           "depth": 100, "snapshot": True}},
    ]
    assert all(m.connected for m in markets.values())


def test_v1_connect_subscribes_book_with_v1_pairs():
    handler, _ = make(url=V1_URL, protocol="v1", depth=10)
    assert handler.connections()[0].ping_payload == '{"event":"ping"}'
    handler.on_connected(0)
    assert payloads(handler) == [
        {"event": "subscribe", "pair": ["XBT/USD", "ETH/USD"], "subscription": {"name": "book", "depth": 10}},
    ]


# -- checksum text --------------------------------------------------------------------


def test_checksum_text_rules():
    assert strip_number("0.05000") == "5000"
    assert strip_number("0.00000304") == "304"
    assert level_token("0.05000", "0.00000304") == "5000304"  # Kraken's v1 guide example
    assert fixed_text(Decimal("0.001"), 8) == "0.00100000"
    assert fixed_text(Decimal("45290"), 1) == "45290.0"
    assert fixed_text(Decimal("1E-5"), 8) == "0.00001000"


# A v2 book written out by hand: numbers as the venue sends them (JSON
# numbers, trailing zeros lost), precisions 1 (price) and 8 (qty).
HAND_ASKS = [("45285.2", "0.001"), ("45286.4", "1.5"), ("45290", "5")]
HAND_BIDS = [("45283.5", "0.1"), ("45280.0", "12.34567891"), ("45279.9", "1e-05")]
# Asks lowest first, then bids highest first; each number written with its
# precision, '.' removed, leading zeros stripped.
HAND_TEXT = (
    "452852" "100000"          # 45285.2   0.00100000
    "452864" "150000000"       # 45286.4   1.50000000
    "452900" "500000000"       # 45290.0   5.00000000
    "452835" "10000000"        # 45283.5   0.10000000
    "452800" "1234567891"      # 45280.0  12.34567891
    "452799" "1000"            # 45279.9   0.00001000
)
HAND_CRC = zlib.crc32(HAND_TEXT.encode())


def v2_synced(depth: int = 10) -> tuple[KrakenHandler, dict[str, Market]]:
    handler, markets = make(depth=depth)
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, kr_v2_instrument([("BTC/USD", 1, 8), ("ETH/USD", 2, 8), ("XRP/USD", 5, 8)]), 1)
    return handler, markets


def test_v2_hand_built_snapshot_checksum():
    handler, markets = v2_synced()
    m = markets["BTC-USD"]
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC), 2)
    assert handler.checksum_ok == 1 and handler.checksum_failed == 0
    assert m.valid and m.book.best_bid == 45283.5 and m.book.best_ask == 45285.2
    assert m.book.bids().tolist()[2] == [45279.9, 0.00001]
    assert m.last_event_ms == 1767323045678
    assert handler.take_actions() == []


@pytest.mark.parametrize("stamp,expected", [
    ("2026-01-02T03:04:05.001Z", 1767323045001),
    ("2026-01-02T03:04:05.001", 1767323045001),  # no zone: UTC
    ("2026-01-02T04:04:05.001+01:00", 1767323045001),
])
def test_v2_event_time(stamp, expected):
    handler, markets = v2_synced()
    frame = kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC).replace(
        b"2026-01-02T03:04:05.678901Z", stamp.encode())
    handler.on_frame(0, frame, 5)
    assert handler.internal_errors == 0 and markets["BTC-USD"].last_event_ms == expected


def test_v2_snapshot_with_wrong_checksum_stays_invalid_and_resubscribes():
    handler, markets = v2_synced()
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC ^ 1), 2)
    assert not markets["BTC-USD"].valid and handler.checksum_failed == 1
    assert payloads(handler) == [
        {"method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}},
        {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10,
                                           "snapshot": True}},
    ]


def ladder(start: float, step: float, n: int, qty: str = "1.25") -> list[tuple[str, str]]:
    return [(f"{start + i * step:.1f}", qty) for i in range(n)]


def v2_crc(asks: list[tuple[str, str]], bids: list[tuple[str, str]], pp: int = 1, qp: int = 8) -> int:
    """The venue's checksum for a book given as text, lowest ask / highest bid first."""
    def fmt(side):
        return [(fixed_text(Decimal(p), pp), fixed_text(Decimal(q), qp)) for p, q in side]
    return kraken_checksum(fmt(asks), fmt(bids))


def test_v2_update_applies_one_batch_and_verifies():
    handler, markets = v2_synced()
    asks, bids = ladder(100.1, 0.1, 10), ladder(99.9, -0.1, 10)
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", bids, asks, v2_crc(asks, bids)), 2)
    m = markets["BTC-USD"]
    book = counting_book(m)
    new_asks = [("100.1", "3")] + asks[1:]
    new_bids = [bids[0], ("99.8", "0.5")] + bids[2:]
    handler.on_frame(0, kr_v2_book("update", "BTC/USD", [("99.8", "0.5")], [("100.1", "3")],
                                   v2_crc(new_asks, new_bids)), 3)
    assert book.calls == ["apply(1 bids, 1 asks)"]  # one batch call for the whole message
    assert handler.checksum_ok == 2 and m.valid and m.messages == 2


def test_v2_truncates_to_subscribed_depth():
    handler, markets = v2_synced(depth=10)
    m = markets["BTC-USD"]
    asks, bids = ladder(100.1, 0.1, 10), ladder(99.9, -0.1, 10)
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", bids, asks, v2_crc(asks, bids)), 2)
    # A better bid pushes the 10th (99.0) out of scope; Kraken sends no delete for it.
    bids = [("99.95", "2")] + bids[:9]
    handler.on_frame(0, kr_v2_book("update", "BTC/USD", [("99.95", "2")], [], v2_crc(asks, bids)), 3)
    assert m.book.bid_levels == 10 and 99.0 not in m.book.bids()[:, 0]
    assert 99.0 not in handler.book_state("BTC-USD").bid_tokens
    # Deleting the best bid leaves nine: the truncated level must not come back.
    bids = bids[1:]
    handler.on_frame(0, kr_v2_book("update", "BTC/USD", [("99.95", "0")], [], v2_crc(asks, bids)), 4)
    assert m.book.bid_levels == 9
    assert handler.checksum_failed == 0 and handler.checksum_ok == 3 and m.valid


def test_v2_ack_depth_sets_truncation():
    handler, markets = v2_synced(depth=10)
    ack = {"method": "subscribe", "result": {"channel": "book", "depth": 25, "snapshot": True, "symbol": "BTC/USD"},
           "success": True, "time_in": "2026-01-01T00:00:00Z", "time_out": "2026-01-01T00:00:00Z"}
    handler.on_frame(0, json.dumps(ack).encode(), 2)
    assert handler.book_state("BTC-USD").depth == 25
    asks, bids = ladder(100.1, 0.1, 20), ladder(99.9, -0.1, 20)
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", bids, asks, v2_crc(asks, bids)), 3)
    assert markets["BTC-USD"].book.bid_levels == 20 and markets["BTC-USD"].valid


def test_v2_checksum_mismatch_invalidates_and_resubscribes_only_that_symbol():
    handler, markets = v2_synced()
    for sym, mid in (("BTC/USD", 100.0), ("ETH/USD", 200.0)):
        pp = 1 if sym == "BTC/USD" else 2
        asks, bids = ladder(mid + 0.1, 0.1, 5), ladder(mid - 0.1, -0.1, 5)
        handler.on_frame(0, kr_v2_book("snapshot", sym, bids, asks, v2_crc(asks, bids, pp)), 2)
    assert all(m.valid for m in markets.values())
    btc = markets["BTC-USD"]
    handler.on_frame(0, kr_v2_book("update", "BTC/USD", [("99.95", "2")], [], 12345), 3)
    assert not btc.valid and btc.rejected == 1 and btc.resyncs == 1
    assert markets["ETH-USD"].valid
    assert handler.checksum_failed == 1
    assert payloads(handler) == [
        {"method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}},
        {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10,
                                           "snapshot": True}},
    ]
    # Updates before the fresh snapshot are dropped; the snapshot makes it valid again.
    before = book_copy(btc)
    handler.on_frame(0, kr_v2_book("update", "BTC/USD", [("99.97", "2")], [], 1), 4)
    assert same_book(book_copy(btc), before) and handler.checksum_failed == 1
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC), 5)
    assert btc.valid and btc.book.best_bid == 45283.5


def test_v2_book_before_instrument_waits_then_resubscribes():
    handler, markets = make(depth=10)
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC), 1)
    assert not markets["BTC-USD"].valid and len(markets["BTC-USD"].book) == 0
    handler.on_frame(0, kr_v2_instrument([("BTC/USD", 1, 8), ("ETH/USD", 2, 8)]), 2)
    assert [p["method"] for p in payloads(handler)] == ["unsubscribe", "subscribe"]
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC), 3)
    assert markets["BTC-USD"].valid


def test_v2_precision_change_resyncs():
    handler, markets = v2_synced()
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC), 2)
    handler.on_frame(0, kr_v2_instrument([("BTC/USD", 2, 8)], kind="update"), 3)
    assert not markets["BTC-USD"].valid
    assert [p["method"] for p in payloads(handler)] == ["unsubscribe", "subscribe"]


def test_v2_bad_values_are_refused_and_book_unchanged():
    handler, markets = v2_synced()
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC), 2)
    m = markets["BTC-USD"]
    before = book_copy(m)
    handler.on_frame(0, kr_v2_book("update", "BTC/USD", [("45283.6", "1")], [("45285.3", "-1")], 1), 3)
    assert same_book(book_copy(m), before)
    assert not m.valid and m.rejected == 1
    assert [p["method"] for p in payloads(handler)] == ["unsubscribe", "subscribe"]


def test_v2_failed_subscribe_invalidates_that_symbol():
    handler, markets = v2_synced()
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC), 2)
    handler.on_frame(0, b'{"method":"unsubscribe","success":false,"error":"Subscription Not Found",'
                        b'"symbol":"BTC/USD"}', 3)
    assert markets["BTC-USD"].valid
    handler.on_frame(0, b'{"error":"Currency pair not supported","method":"subscribe","success":false,'
                        b'"symbol":"BTC/USD","time_in":"2026-01-01T00:00:00Z","time_out":"2026-01-01T00:00:00Z"}', 4)
    assert not markets["BTC-USD"].valid
    assert markets["BTC-USD"].invalid_reason.startswith("subscribe failed")


def test_v2_acks_heartbeats_and_garbage():
    handler, markets = v2_synced()
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC), 2)
    before = book_copy(markets["BTC-USD"])
    handler.on_frame(0, b'{"channel":"heartbeat"}', 3)
    handler.on_frame(0, b'{"method":"pong","time_in":"x","time_out":"y"}', 3)
    handler.on_frame(0, b'{"channel":"status","type":"update","data":[{"system":"online"}]}', 3)
    handler.on_frame(0, b'{"method":"subscribe","success":false,"error":"Currency pair not supported",'
                        b'"result":{"channel":"book","symbol":"ETH/USD"}}', 3)
    assert handler.counters.decode_errors == 0
    # A refused subscribe is asked again at once (recovery), not left waiting forever.
    assert [(p["method"], p["params"].get("symbol")) for p in payloads(handler)
            if p["params"]["channel"] == "book"] == [("unsubscribe", ["ETH/USD"]), ("subscribe", ["ETH/USD"])]
    assert markets["ETH-USD"].last_error == "subscribe failed: Currency pair not supported"
    for junk in (b"", b"\xff", b"{", b"[1]", b'{"channel":"book","type":"update","data":[{"symbol":1}]}'):
        handler.on_frame(0, junk, 4)
    assert handler.counters.decode_errors == 5 and handler.internal_errors == 0
    assert same_book(book_copy(markets["BTC-USD"]), before) and markets["BTC-USD"].valid
    assert handler.take_actions() == []
    # An unreadable book frame that names a symbol: that book may have missed
    # an update, and Kraken has no sequence numbers, so it resyncs now.
    bad = b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":"x"}]}]}'
    handler.on_frame(0, bad, 5)
    assert handler.counters.decode_errors == 6
    assert same_book(book_copy(markets["BTC-USD"]), before) and not markets["BTC-USD"].valid
    assert [(p["method"], p["params"]["symbol"]) for p in payloads(handler)] == [
        ("unsubscribe", ["BTC/USD"]), ("subscribe", ["BTC/USD"])]


# -- v1 ---------------------------------------------------------------------------------


V1_ASKS = [("5541.30000", "2.50700000"), ("5541.80000", "0.33000000"), ("5542.70000", "0.64700000")]
V1_BIDS = [("5541.20000", "1.52900000"), ("5539.90000", "0.30000000"), ("5539.50000", "5.00000000")]


def v1_synced(depth: int = 10) -> tuple[KrakenHandler, dict[str, Market]]:
    handler, markets = make(url=V1_URL, protocol="v1", depth=depth)
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, kr_v1_status("XBT/USD", depth), 1)
    handler.on_frame(0, kr_v1_snapshot(336, "XBT/USD", V1_BIDS, V1_ASKS, depth), 2)
    return handler, markets


def test_v1_snapshot_then_two_object_update_with_checksum():
    handler, markets = v1_synced()
    m = markets["BTC-USD"]
    assert m.valid and m.book.best_ask == 5541.3 and m.book.best_bid == 5541.2
    asks = [("5541.30000", "2.00000000")] + V1_ASKS[1:]
    bids = V1_BIDS[:1] + V1_BIDS[2:] + [("5538.00000", "0.10000000")]
    crc = kraken_checksum(asks, bids)
    book = counting_book(m)
    frame = kr_v1_update(336, "XBT/USD", [["5541.30000", "2.00000000"]],
                         [["5539.90000", "0.00000000"], ["5538.00000", "0.10000000", "r"]], crc)
    handler.on_frame(0, frame, 3)
    assert handler.checksum_ok == 1 and handler.checksum_failed == 0 and m.valid
    assert book.calls == ["apply(2 bids, 1 asks)"]
    assert m.book.bids().tolist() == [[5541.2, 1.529], [5539.5, 5.0], [5538.0, 0.1]]
    assert m.last_event_ms == 1618678145920


def test_v1_checksum_mismatch_resubscribes_that_pair():
    handler, markets = v1_synced()
    handler.on_frame(0, kr_v1_update(336, "XBT/USD", [["5541.30000", "2.00000000"]], None, 1), 3)
    assert not markets["BTC-USD"].valid and handler.checksum_failed == 1
    assert payloads(handler) == [
        {"event": "unsubscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 10}},
        {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 10}},
    ]


def test_v1_truncation_uses_acknowledged_depth():
    handler, markets = make(url=V1_URL, protocol="v1", depth=10)
    handler.on_connected(0)
    handler.take_actions()
    asks = [(f"{101 + i}.00000", "1.00000000") for i in range(10)]
    bids = [(f"{99 - i}.00000", "1.00000000") for i in range(10)]
    handler.on_frame(0, kr_v1_status("XBT/USD", 10), 1)
    handler.on_frame(0, kr_v1_snapshot(7, "XBT/USD", bids, asks), 2)
    # A better ask pushes 110 out of scope.
    asks = [("100.50000", "1.00000000")] + asks[:9]
    handler.on_frame(0, kr_v1_update(7, "XBT/USD", [["100.50000", "1.00000000"]], None,
                                     kraken_checksum(asks, bids)), 3)
    m = markets["BTC-USD"]
    assert m.book.ask_levels == 10 and m.book.asks()[-1, 0] == 109.0
    # Remove the best ask: nine remain, 110 does not come back.
    asks = asks[1:]
    handler.on_frame(0, kr_v1_update(7, "XBT/USD", [["100.50000", "0.00000000"]], None,
                                     kraken_checksum(asks, bids)), 4)
    assert m.book.ask_levels == 9 and handler.checksum_failed == 0 and handler.checksum_ok == 2


def test_v1_updates_before_snapshot_and_other_channels_are_ignored():
    handler, markets = make(url=V1_URL, protocol="v1", depth=10)
    handler.on_connected(0)
    handler.on_frame(0, kr_v1_update(7, "XBT/USD", [["100.5", "1"]], None, 1), 1)
    handler.on_frame(0, b'[1665,[["0.1","2","1618678145.9","s","l",""]],"trade","WAVES/EUR"]', 1)
    handler.on_frame(0, b'{"event":"heartbeat"}', 1)
    handler.on_frame(0, b'{"connectionID":1,"event":"systemStatus","status":"online","version":"1.8.3"}', 1)
    assert len(markets["BTC-USD"].book) == 0 and handler.checksum_failed == 0


def test_v1_subscription_error_invalidates():
    handler, markets = make(url=V1_URL, protocol="v1", depth=10)
    handler.on_connected(0)
    handler.on_frame(0, json.dumps({"errorMessage": "Currency pair not supported XBT/USD", "event":
                                    "subscriptionStatus", "pair": "XBT/USD", "status": "error",
                                    "subscription": {"depth": 10, "name": "book"}}).encode(), 1)
    assert markets["BTC-USD"].invalid_reason.startswith("subscription error")


@pytest.mark.parametrize("frame", [
    b'[336,{"a":[["abc","1","1618678145.9"]],"c":"1"},"book-10","XBT/USD"]',
    b'[336,{"a":[["5541.3","nan","1618678145.9"]],"c":"1"},"book-10","XBT/USD"]',
    b'[336,{"a":[["5541.3","-1","1618678145.9"]],"c":"1"},"book-10","XBT/USD"]',
    b'[336,{"a":[["5541.3"]],"c":"1"},"book-10","XBT/USD"]',
    b'[336,{"a":[["5541.3","1","1618678145.9"]],"c":"x1"},"book-10","XBT/USD"]',
])
def test_v1_bad_values_leave_the_book_unchanged(frame):
    handler, markets = v1_synced()
    m = markets["BTC-USD"]
    before = book_copy(m)
    handler.on_frame(0, frame, 3)
    assert same_book(book_copy(m), before)
    assert not m.valid and m.rejected == 1
    assert [p["event"] for p in payloads(handler)] == ["unsubscribe", "subscribe"]


@pytest.mark.parametrize("ts", ["inf", "nan", "-1", "1e400", "16186781330365913", "0.5"])
def test_v1_odd_level_times_do_not_break_the_update(ts):
    handler, markets = v1_synced()
    asks = [("5541.30000", "2.00000000")] + V1_ASKS[1:]
    frame = json.dumps([336, {"a": [["5541.30000", "2.00000000", ts]], "c": str(kraken_checksum(asks, V1_BIDS))},
                        "book-10", "XBT/USD"]).encode()
    handler.on_frame(0, frame, 1234)
    m = markets["BTC-USD"]
    assert handler.checksum_ok == 1 and m.valid and m.book.asks(1).tolist() == [[5541.3, 2.0]]
    assert m.last_event_ms == 1234  # no usable venue time: the receive time


def test_v1_garbage_is_counted():
    handler, markets = v1_synced()
    before = book_copy(markets["BTC-USD"])
    for junk in (b"[", b"[1,2]", b'[336,{"a":5},"book-10","ETH/USD"]', b'\x00[336,"book-10","XBT/USD",1]'):
        handler.on_frame(0, junk, 3)
    assert handler.counters.decode_errors == 4 and handler.internal_errors == 0
    assert same_book(book_copy(markets["BTC-USD"]), before) and markets["BTC-USD"].valid
    # The unreadable frame naming ETH/USD may have been the snapshot that book waits for.
    assert [(p["event"], p["pair"]) for p in payloads(handler)] == [
        ("unsubscribe", ["ETH/USD"]), ("subscribe", ["ETH/USD"])]
    for junk in (b'[336,{"a":[]},{"b":[]},{"c":"1"},"book-10","XBT/USD"]', b'[336,{"a":5},"book-10","XBT/USD"]'):
        handler.on_frame(0, junk, 4)
    assert handler.counters.decode_errors == 6
    assert same_book(book_copy(markets["BTC-USD"]), before) and not markets["BTC-USD"].valid
    # One resubscribe, not one per bad frame: the first already awaits a snapshot.
    assert [p["event"] for p in payloads(handler)] == ["unsubscribe", "subscribe"]


def test_disconnect_invalidates_and_waits_for_snapshot():
    handler, markets = v1_synced()
    handler.on_disconnected(0)
    m = markets["BTC-USD"]
    assert not m.valid and not m.connected
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, kr_v1_update(336, "XBT/USD", [["5541.30000", "2.00000000"]], None, 1), 3)
    assert handler.checksum_failed == 0 and not m.valid
    handler.on_frame(0, kr_v1_snapshot(336, "XBT/USD", V1_BIDS, V1_ASKS), 4)
    assert m.valid


# Kraken's own worked example (WebSocket v2 book checksum guide): BTC/USD,
# price precision 1, qty precision 8, published CRC32 3310070434.
DOC_BIDS = [("45283.5", "0.10000000"), ("45283.4", "1.54582015"), ("45282.1", "0.10000000"),
            ("45281.0", "0.10000000"), ("45280.3", "1.54592586"), ("45279.0", "0.07990000"),
            ("45277.6", "0.03310103"), ("45277.5", "0.30000000"), ("45277.3", "1.54602737"),
            ("45276.6", "0.15445238")]
DOC_ASKS = [("45285.2", "0.00100000"), ("45286.4", "1.54571953"), ("45286.6", "1.54571109"),
            ("45289.6", "1.54560911"), ("45290.2", "0.15890660"), ("45291.8", "1.54553491"),
            ("45294.7", "0.04454749"), ("45296.1", "0.35380000"), ("45297.5", "0.09945542"),
            ("45299.5", "0.18772827")]
DOC_CRC = 3310070434


def _as_json_number(text: str) -> str:
    """What a float serializer puts on the wire: trailing zeros (and a bare '.0') gone."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def test_reference_checksum_reproduces_kraken_doc_example():
    assert kraken_checksum(DOC_ASKS, DOC_BIDS) == DOC_CRC


@pytest.mark.parametrize("wire", ["numbers", "strings"])
def test_v2_snapshot_of_kraken_doc_example_verifies(wire):
    handler, markets = v2_synced()
    if wire == "numbers":
        bids = [(_as_json_number(p), _as_json_number(q)) for p, q in DOC_BIDS]
        asks = [(_as_json_number(p), _as_json_number(q)) for p, q in DOC_ASKS]
        assert ("45281", "0.1") in bids  # precision must be restored, not read off the wire
    else:
        bids = [(f'"{p}"', f'"{q}"') for p, q in DOC_BIDS]
        asks = [(f'"{p}"', f'"{q}"') for p, q in DOC_ASKS]
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", bids, asks, DOC_CRC), 2)
    assert handler.checksum_ok == 1 and handler.checksum_failed == 0
    assert markets["BTC-USD"].valid and markets["BTC-USD"].book.best_ask == 45285.2


def test_an_internal_error_never_escapes_and_resyncs_the_connection():
    def broken_sink(event) -> None:
        raise RuntimeError("sink bug")

    market = Market("kraken", "BTC-USD", depth=3, on_alert=broken_sink)
    handler = KrakenHandler([market], V1_URL, protocol="v1", depth=10)
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, kr_v1_snapshot(336, "XBT/USD", V1_BIDS, V1_ASKS), 2)
    asks = [("5541.30000", "90.00000000")] + V1_ASKS[1:]
    handler.on_frame(0, kr_v1_update(336, "XBT/USD", [["5541.30000", "90.00000000"]], None,
                                     kraken_checksum(asks, V1_BIDS)), 3)  # alerts -> raises
    assert handler.internal_errors == 1 and not market.valid
    assert [p["event"] for p in payloads(handler)] == ["unsubscribe", "subscribe"]
