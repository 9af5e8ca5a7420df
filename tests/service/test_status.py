"""/status and /health: the JSON contract, NaN -> null, stale-feed detection."""

from __future__ import annotations

import math

import msgspec

from tests.service.conftest import SrvMonitor, srv_load_book

NUM = (int, float)
NUM_OR_NULL = (int, float, type(None))

# Contract: field -> allowed JSON types (after decoding).
BOOK_FIELDS: dict[str, tuple[type, ...]] = {
    "exchange": (str,),
    "symbol": (str,),
    "source": (str,),
    "connected": (bool,),
    "book_valid": (bool,),
    "last_update_age_ms": NUM_OR_NULL,
    "best_bid": NUM_OR_NULL,
    "best_ask": NUM_OR_NULL,
    "bid_volume": NUM_OR_NULL,
    "ask_volume": NUM_OR_NULL,
    "ratio": NUM_OR_NULL,
    "danger_ratio": NUM_OR_NULL,
    "state": (str,),
    "alerts": (int,),
    "last_alert": (dict, type(None)),
    "messages": (int,),
    "messages_per_s": NUM,
    "resyncs": (int,),
    "reconnects": (int,),
}


def _check_book(book: dict) -> None:
    for name, types in BOOK_FIELDS.items():
        assert name in book, f"/status book lacks {name!r}"
        value = book[name]
        # bool is an int subclass in Python: numbers must not be booleans and vice versa.
        assert isinstance(value, types) and not (isinstance(value, bool) and bool not in types), \
            f"{name}={value!r} has JSON type {type(value).__name__}, want {types}"
        if isinstance(value, float):
            assert math.isfinite(value)
    assert book["state"] in ("armed", "alerting", "cooldown")
    assert book["source"] in ("live", "simulated", "replay")


async def test_status_shape_and_values(srv_http, srv_make_market):
    serve, session = srv_http
    btc = srv_make_market("binance", "BTC-USDT")
    eth = srv_make_market("okx", "ETH-USDT", source="live")
    srv_load_book(btc, bid_qty=2.0, ask_qty=3.0)
    monitor = SrvMonitor([btc, eth], mode="simulated")
    base = await serve(monitor)

    async with session.get(f"{base}/status") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        doc = await resp.json()
    assert set(doc) >= {"version", "uptime_s", "mode", "settings", "books"}
    assert doc["version"] == "0.1.0-test"
    assert isinstance(doc["uptime_s"], NUM) and doc["uptime_s"] >= 0
    assert doc["mode"] == "simulated"
    assert doc["settings"]["telegram_bot_token"] == "***redacted***"
    assert doc["settings"]["db_path"] == "/var/lib/sentrycoin/a.db"  # non-JSON values become text
    assert [b["symbol"] for b in doc["books"]] == ["BTC-USDT", "ETH-USDT"]
    for book in doc["books"]:
        _check_book(book)

    b = doc["books"][0]
    assert b["exchange"] == "binance" and b["source"] == "simulated"
    assert b["book_valid"] is True and b["connected"] is True
    assert b["best_bid"] == 99.5 and b["best_ask"] == 100.5
    assert b["bid_volume"] == 20.0 and b["ask_volume"] == 30.0
    assert b["ratio"] == 1.5 and b["danger_ratio"] == 2.5
    assert b["state"] == "armed" and b["alerts"] == 0 and b["last_alert"] is None
    assert b["messages"] == 1
    assert isinstance(b["last_update_age_ms"], NUM) and 0 <= b["last_update_age_ms"] < 60_000


async def test_status_nan_and_empty_book_are_null(srv_http, srv_make_market):
    serve, session = srv_http
    empty = srv_make_market("kraken", "XBT-USD")  # never loaded: both sides empty
    asks_only = srv_make_market("bybit", "SOL-USDT")
    asks_only.book.load_snapshot([], [(10.0, 5.0)])  # no bids: ratio is +inf
    asks_only.mark_valid()
    assert math.isnan(empty.book.ratio) and math.isinf(asks_only.book.ratio)
    base = await serve(SrvMonitor([empty, asks_only]))

    async with session.get(f"{base}/status") as resp:
        raw = await resp.read()
    assert b"NaN" not in raw and b"Infinity" not in raw  # strict JSON
    doc = msgspec.json.decode(raw)
    e, a = doc["books"]
    for book in (e, a):
        _check_book(book)
    assert e["ratio"] is None and e["best_bid"] is None and e["best_ask"] is None
    assert e["last_update_age_ms"] is None and e["book_valid"] is False
    assert e["bid_volume"] == 0 and e["ask_volume"] == 0  # an empty side sums to exactly 0
    assert a["ratio"] is None and a["best_bid"] is None and a["best_ask"] == 10.0


async def test_status_reports_alert_state(srv_http, srv_make_market, srv_alert_manager):
    serve, session = srv_http
    manager = srv_alert_manager
    m = srv_make_market(on_alert=manager.submit)
    srv_load_book(m, 1.0, 1.0)
    srv_load_book(m, 1.0, 9.0)  # ratio 9: >= 2 x danger (critical), < 4 x (extreme)
    assert manager.stats.submitted == 1
    base = await serve(SrvMonitor([m], alert_manager=manager))
    async with session.get(f"{base}/status") as resp:
        book = (await resp.json())["books"][0]
    _check_book(book)
    assert book["state"] == "alerting" and book["alerts"] == 1 and book["ratio"] == 9.0
    last = book["last_alert"]
    assert last["severity"] == "critical" and manager.stats.by_severity == {"critical": 1}
    assert last["ratio"] == 9.0 and last["symbol"] == "BTC-USDT" and isinstance(last["event_ms"], int)


async def test_health_ok_then_503_when_feed_stalls(srv_http, srv_make_market):
    serve, session = srv_http
    m = srv_make_market()
    monitor = SrvMonitor([m], stale_after_s=5.0)
    base = await serve(monitor)

    async with session.get(f"{base}/health") as resp:  # no snapshot yet
        assert resp.status == 503
        body = await resp.json()
    assert body["status"] == "unavailable" and "sync" in body["reason"]

    srv_load_book(m, 1.0, 1.0)
    async with session.get(f"{base}/health") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok" and body["books_ok"] == 1

    m.last_update_monotonic -= 6.0  # the feed has said nothing for longer than stale_after_s
    async with session.get(f"{base}/health") as resp:
        assert resp.status == 503
        body = await resp.json()
    assert body["status"] == "unavailable" and "stalled" in body["reason"]

    srv_load_book(m, 1.0, 1.0)  # feed resumes
    async with session.get(f"{base}/health") as resp:
        assert resp.status == 200

    m.invalidate("sequence gap")  # fresh but out of sync: not healthy either
    async with session.get(f"{base}/health") as resp:
        assert resp.status == 503


async def test_health_without_markets_is_503(srv_http):
    serve, session = srv_http
    base = await serve(SrvMonitor([]))
    async with session.get(f"{base}/health") as resp:
        assert resp.status == 503
        assert (await resp.json())["reason"] == "no markets configured"


async def test_health_needs_only_one_fresh_book(srv_http, srv_make_market):
    serve, session = srv_http
    a, b = srv_make_market("binance", "BTC-USDT"), srv_make_market("okx", "BTC-USDT")
    srv_load_book(a, 1.0, 1.0)
    srv_load_book(b, 1.0, 1.0)
    b.last_update_monotonic -= 1000.0
    base = await serve(SrvMonitor([a, b], stale_after_s=10.0))
    async with session.get(f"{base}/health") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["books_ok"] == 1 and body["books_total"] == 2
