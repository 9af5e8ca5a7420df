"""/alerts (query parsing, JSON shape from the real SQLite store), bearer-token
guard, the dashboard page and its assets, and the SSE push channel."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import msgspec
import pytest

from sentrycoin.server.app import parse_alert_query
from tests.service.conftest import SrvMonitor, srv_load_book

TOKEN = "s3cret-T0ken"


def _crash(market, event_ms: int) -> None:
    srv_load_book(market, 1.0, 1.0, event_ms=event_ms - 1)
    srv_load_book(market, 1.0, 3.0, event_ms=event_ms)  # ratio 3 >= 2.5: warning


async def test_alerts_lists_store_rows_with_outcomes(srv_http, srv_make_market, srv_store, srv_alert_manager):
    serve, session = srv_http
    manager = srv_alert_manager
    btc = srv_make_market("binance", "BTC-USDT", on_alert=manager.submit, cooldown_s=0)
    eth = srv_make_market("binance", "ETH-USDT", on_alert=manager.submit, cooldown_s=0)
    _crash(btc, 1_700_000_000_000)
    _crash(eth, 1_700_000_100_000)
    _crash(btc, 1_700_000_200_000)
    await manager.store.flush()
    assert srv_store.count() == 3
    base = await serve(SrvMonitor([btc, eth], alert_manager=manager))

    async with session.get(f"{base}/alerts") as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert doc["count"] == 3 and len(doc["alerts"]) == 3 and doc["store"] is True
    assert [a["event_ms"] for a in doc["alerts"]] == [1_700_000_200_000, 1_700_000_100_000, 1_700_000_000_000]
    first = doc["alerts"][0]
    assert first["symbol"] == "BTC-USDT" and first["exchange"] == "binance"
    assert first["severity"] == "warning" and first["ratio"] == 3.0
    assert set(first["deliveries"]) == {"console", "broken"}
    assert isinstance(first["deliveries"]["console"]["state"], str)
    assert "outcome" in first
    summary = doc["outcomes"]
    assert isinstance(summary, dict) and summary["alerts_total"] == 3

    async with session.get(f"{base}/alerts", params={"symbol": "btc-usdt", "limit": "1"}) as resp:
        doc = await resp.json()
    assert [a["event_ms"] for a in doc["alerts"]] == [1_700_000_200_000]
    assert doc["symbol"] == "BTC-USDT" and doc["limit"] == 1

    async with session.get(f"{base}/alerts", params={"since": "1700000100000"}) as resp:
        doc = await resp.json()
    assert doc["count"] == 2
    async with session.get(f"{base}/alerts", params={"since": "2023-11-14T22:15:00Z"}) as resp:
        doc = await resp.json()  # 22:15 UTC is 1_700_000_100_000 ms
    assert doc["since_ms"] == 1_700_000_100_000 and doc["count"] == 2


async def test_alerts_without_store_is_empty_not_error(srv_http, srv_make_market):
    serve, session = srv_http
    base = await serve(SrvMonitor([srv_make_market()], alert_manager=None))
    async with session.get(f"{base}/alerts") as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert doc["alerts"] == [] and doc["count"] == 0 and doc["outcomes"] is None and doc["store"] is False


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=1001", "limit"),
        ("limit=-5", "limit"),
        ("symbol=BTCUSDT", "BASE-QUOTE"),
        ("symbol=BTC-USDT;drop", "BASE-QUOTE"),
        ("since=yesterday", "since"),
        ("colour=red", "unknown query parameter"),
    ],
)
async def test_alerts_bad_query_is_400(srv_http, srv_make_market, srv_alert_manager, query, needle):
    serve, session = srv_http
    base = await serve(SrvMonitor([srv_make_market()], alert_manager=srv_alert_manager))
    async with session.get(f"{base}/alerts?{query}") as resp:
        assert resp.status == 400
        body = await resp.json()
    assert needle in body["error"]


def test_parse_alert_query_defaults():
    assert parse_alert_query({}) == (100, None, None)
    assert parse_alert_query({"limit": "1000", "symbol": "eth-btc", "since": "0"}) == (1000, "ETH-BTC", 0)


@pytest.mark.parametrize("path", ["/status", "/alerts", "/metrics", "/live", "/static/app.js"])
async def test_token_guards_everything_but_health(srv_http, srv_make_market, path):
    serve, session = srv_http
    m = srv_make_market()
    srv_load_book(m, 1.0, 1.0)
    base = await serve(SrvMonitor([m]), token=TOKEN)

    async with session.get(f"{base}/health") as resp:
        assert resp.status == 200  # load balancers probe without a token
    async with session.get(f"{base}{path}") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in await resp.text()
    async with session.get(f"{base}{path}", headers={"Authorization": "Bearer wrong"}) as resp:
        assert resp.status == 401
    async with session.get(f"{base}{path}", headers={"Authorization": TOKEN}) as resp:
        assert resp.status == 401  # the scheme is required
    async with session.get(f"{base}{path}", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 200
        if path == "/live":
            await resp.content.readuntil(b"\n\n")  # the stream is open; don't wait for it to end


async def test_dashboard_token_in_url_becomes_cookie(srv_serve, srv_make_market, caplog):
    serve = srv_serve
    base = await serve(SrvMonitor([srv_make_market()]), token=TOKEN)
    # unsafe=True: keep cookies from a bare IP host (127.0.0.1), as a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await _token_cookie_flow(session, base, caplog)


async def _token_cookie_flow(session, base, caplog):
    async with session.get(f"{base}/") as resp:  # no token: a form asking for it
        assert resp.status == 401
        page = await resp.text()
    assert 'name="token"' in page and TOKEN not in page

    caplog.set_level(logging.INFO, logger="sentrycoin.server.access")
    async with session.get(f"{base}/?token={TOKEN}", allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/"
        cookie = resp.cookies["sentrycoin_token"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert TOKEN not in caplog.text  # the access log masks it
    assert "token=***" in caplog.text

    async with session.get(f"{base}/") as resp:  # the session now carries the cookie
        assert resp.status == 200 and "SentryCoin" in await resp.text()
    async with session.get(f"{base}/status") as resp:
        assert resp.status == 200
    async with session.get(f"{base}/?token=nope", allow_redirects=False) as resp:
        assert resp.status == 200  # a valid cookie still wins; the bad token sets nothing
        assert "sentrycoin_token" not in resp.cookies


async def test_no_token_configured_means_open(srv_http, srv_make_market):
    serve, session = srv_http
    base = await serve(SrvMonitor([srv_make_market()]))
    for path in ("/", "/status", "/alerts", "/metrics", "/static/app.js", "/static/style.css"):
        async with session.get(f"{base}{path}") as resp:
            assert resp.status == 200, path
            if path == "/":
                page = await resp.text()
                # Offline-safe: the page pulls nothing from other origins.
                assert "http://" not in page and "https://" not in page
                assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    async with session.get(f"{base}/static/app.js") as resp:
        js = await resp.text()
    assert "EventSource(\"/live\")" in js and "setInterval" not in js  # pushed, not polled


async def _next_event(resp) -> tuple[str, dict]:
    raw = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5.0)
    event, data = "message", b""
    for line in raw.split(b"\n"):
        if line.startswith(b"event: "):
            event = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
    return event, (msgspec.json.decode(data) if data else {})


async def test_live_pushes_snapshot_then_aggregated_updates(srv_http, srv_make_market, srv_alert_manager):
    serve, session = srv_http
    manager = srv_alert_manager
    m = srv_make_market("binance", "BTC-USDT", on_alert=manager.submit)
    srv_load_book(m, 1.0, 1.0)
    base = await serve(SrvMonitor([m], alert_manager=manager), tick_s=0.05)

    async with session.get(f"{base}/live") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        event, snap = await _next_event(resp)
        while event != "snapshot":
            event, snap = await _next_event(resp)
        assert snap["mode"] == "simulated" and [b["key"] for b in snap["books"]] == ["binance|BTC-USDT"]
        book = snap["books"][0]
        assert book["ratio"] == 1.0 and book["bids"][0] == [99.5, 1.0] and book["asks"][0] == [100.5, 1.0]
        assert isinstance(snap["history"], dict) and snap["alerts"] == []

        # Many messages between two ticks produce one update with the latest state.
        for _ in range(50):
            srv_load_book(m, 1.0, 2.0)
        srv_load_book(m, 1.0, 3.0)  # crosses 2.5: the detector fires
        assert manager.stats.submitted == 1
        seen_alert, ratios = None, []
        for _ in range(40):
            event, upd = await _next_event(resp)
            assert event == "update"
            ratios.append(upd["books"][0]["ratio"])
            assert upd["books"][0]["point"][1] == upd["books"][0]["ratio"]
            if upd["alerts"]:
                seen_alert = upd["alerts"]
                break
        assert seen_alert is not None, "alert never pushed"
        assert len(seen_alert) == 1 and seen_alert[0]["severity"] == "warning"
        assert seen_alert[0]["symbol"] == "BTC-USDT" and seen_alert[0]["ratio"] == 3.0
        assert ratios[-1] == 3.0

        # The next update does not repeat it.
        event, upd = await _next_event(resp)
        assert upd["alerts"] == []


async def test_live_hub_pushes_alert_outcomes(srv_make_market, srv_alert_manager):
    import asyncio as _asyncio

    import msgspec

    from sentrycoin.server.live import LiveHub

    manager = srv_alert_manager
    market = srv_make_market(on_alert=manager.submit)
    market.book.load_snapshot([[100.0, 1.0]], [[101.0, 5.0]])
    market.mark_valid()
    market.after_message(1_700_000_000_000)  # ratio 5: an alert
    await manager.store.flush()
    (row,) = await manager.store.read(lambda s: s.recent(limit=5))
    await manager.store.run_write(lambda s: s.save_outcome(
        row["id"], {"complete": False, "start_ms": row["event_ms"], "ref_mid": 100.5, "samples": 60,
                    "mid_60s": 99.0, "max_drop_pct": 1.6, "lead_to_low_s": 42.0}))
    hub = LiveHub(SrvMonitor([market], alert_manager=manager), tick_s=0.1, outcomes_every_s=0.2)
    queue: _asyncio.Queue = _asyncio.Queue(maxsize=10)
    hub._subscribers.add(queue)
    hub.tick()
    assert queue.qsize() == 1  # an update only
    hub.tick()
    assert hub._outcome_task is not None
    await hub._outcome_task  # read on the store's reader thread, then pushed
    events = [queue.get_nowait() for _ in range(queue.qsize())]
    outcome_events = [e for e in events if e.startswith(b"event: outcomes\n")]
    assert len(outcome_events) == 1
    doc = msgspec.json.decode(outcome_events[0].split(b"data: ", 1)[1])
    (alert,) = doc["alerts"]
    assert (alert["symbol"], alert["event_ms"]) == ("BTC-USDT", 1_700_000_000_000)
    assert alert["outcome"]["max_drop_pct"] == 1.6 and alert["outcome"]["mid_60s"] == 99.0
    assert doc["summary"]["alerts_total"] == 1
    assert hub.snapshot()["outcomes"]["alerts"][0]["outcome"]["lead_to_low_s"] == 42.0
