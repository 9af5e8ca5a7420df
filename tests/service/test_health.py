"""/health tells the truth: 200 while some book is valid and fresh (an orchestrator
must not restart a monitor because one symbol is delisted), but the body says
"degraded" and names every book invalid for longer than 3 x STALE_AFTER_S, and
every problem the monitor reports itself; ?strict=1 answers 503 then.  The same
facts reach /status (invalid_since, last_error, ...) and /metrics
(sentrycoin_books_invalid)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from sentrycoin.market import Market
from sentrycoin.server.status import DEGRADED_AFTER_STALE
from tests.service.conftest import SrvMonitor, srv_load_book
from tests.service.test_metrics import _samples

STALE_S = 2.0


def _age_invalidity(market: Market, seconds: float) -> None:
    """Pretend the book went invalid `seconds` ago (monotonic clock, as /health reads it)."""
    assert market.invalid_since_monotonic is not None
    market.invalid_since_monotonic -= seconds


async def _get(session: Any, url: str) -> tuple[int, Any]:
    async with session.get(url) as resp:
        return resp.status, await resp.json()


async def test_health_degraded_names_books_invalid_too_long_and_strict_is_503(srv_http, srv_make_market):
    serve, session = srv_http
    good = srv_make_market("binance", "BTC-USDT", source="live")
    gone = srv_make_market("okx", "LUNA-USDT", source="live")  # delisted: never in sync again
    brief = srv_make_market("kraken", "XBT-USD", source="live")  # a normal short resync
    for m in (good, gone, brief):
        srv_load_book(m, 1.0, 1.0)
    gone.invalidate("snapshot timeout")
    brief.invalidate("checksum mismatch")
    _age_invalidity(gone, STALE_S * DEGRADED_AFTER_STALE + 1.0)
    _age_invalidity(brief, STALE_S * DEGRADED_AFTER_STALE - 1.0)
    base = await serve(SrvMonitor([good, gone, brief], mode="live", stale_after_s=STALE_S))

    status, body = await _get(session, f"{base}/health")
    assert status == 200, body  # the process works and a book is fresh: no restart loop
    assert body["status"] == "degraded"
    assert body["books_ok"] == 1 and body["books_total"] == 3 and body["books_invalid"] == 1
    (problem,) = body["problems"]  # the short resync is not named
    assert problem["kind"] == "book_invalid"
    assert (problem["exchange"], problem["symbol"], problem["reason"]) == ("okx", "LUNA-USDT", "snapshot timeout")
    assert problem["invalid_for_s"] > STALE_S * DEGRADED_AFTER_STALE
    assert "LUNA-USDT" in problem["message"] and "snapshot timeout" in problem["message"]
    since = datetime.fromisoformat(problem["invalid_since"].replace("Z", "+00:00"))
    assert int(since.timestamp() * 1000) == gone.invalid_since_ms

    status, strict = await _get(session, f"{base}/health?strict=1")
    assert status == 503 and strict["status"] == "degraded" and strict["strict"] is True
    assert [p["symbol"] for p in strict["problems"]] == ["LUNA-USDT"]
    assert (await _get(session, f"{base}/health?strict=0"))[0] == 200

    async with session.get(f"{base}/metrics") as resp:
        samples = _samples(await resp.text())
    assert samples[("sentrycoin_books_invalid", ())] == 1.0

    # The delisted symbol comes back: nothing left to name, strict is happy too.
    srv_load_book(gone, 1.0, 1.0)
    status, body = await _get(session, f"{base}/health?strict=1")
    assert status == 200 and body["status"] == "ok" and body["problems"] == [] and body["books_invalid"] == 0
    async with session.get(f"{base}/metrics") as resp:
        assert _samples(await resp.text())[("sentrycoin_books_invalid", ())] == 0.0


async def test_health_unavailable_still_names_the_problems(srv_http, srv_make_market):
    serve, session = srv_http
    m = srv_make_market("binance", "BTC-USDT", source="live")  # never got a snapshot
    _age_invalidity(m, STALE_S * DEGRADED_AFTER_STALE + 5.0)
    base = await serve(SrvMonitor([m], mode="live", stale_after_s=STALE_S))
    status, body = await _get(session, f"{base}/health")
    assert status == 503 and body["status"] == "unavailable"
    assert [p["reason"] for p in body["problems"]] == ["waiting for snapshot"]


@pytest.mark.parametrize("query, needle", [("strict=maybe", "'maybe'"), ("verbose=1", "verbose")])
async def test_health_bad_query_is_400_naming_it(srv_http, srv_make_market, query, needle):
    serve, session = srv_http
    m = srv_make_market()
    srv_load_book(m, 1.0, 1.0)
    base = await serve(SrvMonitor([m]))
    status, body = await _get(session, f"{base}/health?{query}")
    assert status == 400 and needle in body["error"]


class ProblemMonitor(SrvMonitor):
    """A monitor reporting its own problems (a venue on the simulator, a broken store ...)."""

    def __init__(self, markets: list[Market], problems: list[dict[str, Any]] | Exception, **kw: Any) -> None:
        super().__init__(markets, **kw)
        self.problems = problems

    def health_problems(self) -> list[dict[str, Any]]:
        if isinstance(self.problems, Exception):
            raise self.problems
        return self.problems


async def test_monitor_problems_make_health_degraded(srv_http, srv_make_market):
    serve, session = srv_http
    m = srv_make_market()
    srv_load_book(m, 1.0, 1.0)
    store_problem = {"kind": "alert_store", "message": "alert store read-only: alerts kept in memory"}
    base = await serve(ProblemMonitor([m], [store_problem]))
    status, body = await _get(session, f"{base}/health")
    assert status == 200 and body["status"] == "degraded" and body["problems"] == [store_problem]
    assert body["books_invalid"] == 0
    assert (await _get(session, f"{base}/health?strict=true"))[0] == 503


async def test_a_broken_health_check_is_itself_a_problem_not_a_500(srv_http, srv_make_market):
    serve, session = srv_http
    m = srv_make_market()
    srv_load_book(m, 1.0, 1.0)
    base = await serve(ProblemMonitor([m], RuntimeError("boom")))
    status, body = await _get(session, f"{base}/health")
    assert status == 200 and body["status"] == "degraded"
    assert [p["kind"] for p in body["problems"]] == ["health_check_failed"]


async def test_status_books_say_since_when_and_why_they_are_invalid(srv_http, srv_make_market):
    serve, session = srv_http
    m = Market("okx", "BTC-USDT", depth=50, capacity=1000, source="live")
    m.clock_skew, m.checksum_mismatches, m.crossed = 3, 2, 1
    plain = srv_make_market("binance", "ETH-USDT", source="live")
    srv_load_book(m, 1.0, 1.0)
    srv_load_book(plain, 1.0, 1.0)
    m.invalidate("checksum mismatch")
    _age_invalidity(m, 12.0)
    base = await serve(SrvMonitor([m, plain], mode="live", stale_after_s=STALE_S))

    _, doc = await _get(session, f"{base}/status")
    book, other = doc["books"]
    assert book["book_valid"] is False and book["source"] == "live"
    assert book["last_error"] == "checksum mismatch" and book["invalid_reason"] == "checksum mismatch"
    since = datetime.fromisoformat(book["invalid_since"].replace("Z", "+00:00"))
    assert int(since.timestamp() * 1000) == m.invalid_since_ms
    assert 12.0 <= book["invalid_for_s"] < 60.0
    assert book["clock_skew"] == 3 and book["checksum_mismatches"] == 2 and book["crossed"] == 1
    assert other["clock_skew"] == 0 and other["checksum_mismatches"] == 0 and other["crossed"] == 0
    assert other["invalid_since"] is None and other["invalid_for_s"] is None and other["last_error"] is None
    assert doc["fallback"] == []

    async with session.get(f"{base}/metrics") as resp:
        samples = _samples(await resp.text())
    lab = (("exchange", "okx"), ("symbol", "BTC-USDT"))
    assert samples[("sentrycoin_book_clock_skew_total", lab)] == 3.0
    assert samples[("sentrycoin_book_checksum_mismatches_total", lab)] == 2.0
    assert samples[("sentrycoin_book_crossed_total", lab)] == 1.0
    assert samples[("sentrycoin_book_clock_skew_total", (("exchange", "binance"), ("symbol", "ETH-USDT")))] == 0.0

    # Healed: no longer invalid, but what happened stays readable.
    srv_load_book(m, 1.0, 1.0)
    _, doc = await _get(session, f"{base}/status")
    book = doc["books"][0]
    assert book["book_valid"] is True and book["invalid_since"] is None and book["invalid_for_s"] is None
    assert book["invalid_reason"] is None and book["last_error"] == "checksum mismatch"


class MixedMonitor(SrvMonitor):
    def __init__(self, markets: list[Market], fallback: list[dict[str, Any]], **kw: Any) -> None:
        super().__init__(markets, **kw)
        self.fallback = fallback

    def fallback_status(self) -> list[dict[str, Any]]:
        return self.fallback


async def test_fallback_venues_reach_status_metrics_and_the_live_channel(srv_http, srv_make_market):
    serve, session = srv_http
    live = srv_make_market("okx", "BTC-USDT", source="live")
    sim = srv_make_market("binance", "BTC-USDT", source="simulated")
    for m in (live, sim):
        srv_load_book(m, 1.0, 1.0)
    fallback = [{"venue": "binance", "since": "2026-12-07T02:00:00.000Z", "simulated_symbols": ["BTC-USDT"],
                 "live_symbols": [], "last_error": "connection refused", "probe_reconnects": 7}]
    base = await serve(MixedMonitor([live, sim], fallback, mode="mixed"), tick_s=0.05)
    _, doc = await _get(session, f"{base}/status")
    assert doc["mode"] == "mixed" and doc["fallback"] == fallback
    assert [b["source"] for b in doc["books"]] == ["live", "simulated"]
    async with session.get(f"{base}/metrics") as resp:
        samples = _samples(await resp.text())
    assert samples[("sentrycoin_info", (("mode", "mixed"), ("version", "0.1.0-test")))] == 1.0
    assert samples[("sentrycoin_venues_simulated", ())] == 1.0
    # The dashboard's push channel carries mode and fallback in every update (they change live).
    async with session.get(f"{base}/live") as resp:
        seen: dict[str, Any] = {}
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("snapshot", "update"):
                seen[event] = json.loads(line[6:])
                if len(seen) == 2:
                    break
    for event in ("snapshot", "update"):
        assert seen[event]["mode"] == "mixed" and seen[event]["fallback"] == fallback
