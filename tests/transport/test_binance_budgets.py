"""Binance in 2026, end to end against the emulator: REST weight budget, 429/418, serverShutdown.

The emulator enforces the IP's weight per window (1 s here instead of 60 s so
the test is quick), answers 429 with Retry-After when a request would pass
the limit and bans the IP (418) when a request comes before Retry-After has
passed.  200 symbols resyncing at once must never be banned and must all end
valid and equal to the venue's true books.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from sentrycoin.emulator import Fault, create_emulator
from sentrycoin.feeds.registry import make_handler, venue_info
from sentrycoin.live import LiveRunner
from sentrycoin.market import Market
from sentrycoin.transport import TransportSettings
from tests.transport.conftest import wait_for
from tests.transport.test_e2e_faults import AuditedMarket, book_key, whole_book_matches

FAST = TransportSettings(stale_after_s=2.0, backoff_initial_s=0.02, backoff_max_s=0.1, connect_timeout_s=2.0)


def env_for(venue: str, emu) -> dict[str, str]:  # noqa: ANN001
    info = venue_info(venue)
    return {info.ws_env: emu.ws_url, info.rest_env: emu.rest_url}


def in_sync(emu, markets: list[Market]) -> bool:  # noqa: ANN001
    return all(m.valid and book_key(m.book) == emu.books[m.symbol].top_key(10)
               and whole_book_matches(m, emu.books[m.symbol]) for m in markets)


async def converge(emu, markets: list[Market], timeout_s: float) -> None:  # noqa: ANN001
    def describe() -> str:
        bad = [m for m in markets if not m.valid]
        return f"{len(bad)} invalid, e.g. " + ", ".join(f"{m.symbol}: {m.invalid_reason}" for m in bad[:3])

    await wait_for(lambda: all(m.valid for m in markets), timeout_s, what=describe)
    emu.pause()
    try:
        await wait_for(lambda: in_sync(emu, markets), 10.0, what=lambda: "books equal to the truth; not: " + ", ".join(
            f"{m.symbol} valid={m.valid} ({m.invalid_reason}) top={book_key(m.book, 1)} truth={emu.books[m.symbol].top_key(1)} "
            f"held={m.book.bid_levels}/{m.book.ask_levels}" for m in markets if not in_sync(emu, [m]))[:1500])
    finally:
        emu.resume()


async def test_emulator_bans_a_client_that_ignores_retry_after():
    """The emulator's rule, shown with a naive client: without it the budget test could not fail."""
    async with create_emulator("binance", ["BTC-USDT"], seed=1, weight_limit=100, weight_window_s=5.0,
                               ban_s=30.0, retry_after_s=4.0) as emu:
        statuses = []
        async with aiohttp.ClientSession() as http:
            for _ in range(4):  # 50 weight each: the third passes the limit, the fourth ignores Retry-After
                async with http.get(f"{emu.rest_url}?symbol=BTCUSDT&limit=1000") as resp:
                    statuses.append((resp.status, resp.headers.get("X-MBX-USED-WEIGHT-1M"),
                                     resp.headers.get("Retry-After")))
        window_edge = statuses[0][1] != "50"  # a window boundary fell between the requests
        if not window_edge:
            assert [s[0] for s in statuses] == [200, 200, 429, 418]
            assert statuses[1][1] == "100" and statuses[2][2] == "4"
            assert emu.answers_418 == 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("venue,limit", [("binance", 2400), ("binance-futures", 960)])
async def test_200_symbols_resyncing_at_once_are_never_banned(venue: str, limit: int, caplog):
    symbols = [f"S{i:03d}-USDT" for i in range(200)]
    problems: list[str] = []
    async with create_emulator(venue, symbols, seed=9, tick_s=0.05, warmup_steps=30,
                               weight_limit=limit, weight_window_s=1.0, ban_s=60.0, retry_after_s=2.0,
                               book_kwargs={"min_levels": 6, "max_levels": 12}) as emu:
        markets = [AuditedMarket(venue, s, depth=10, capacity=200, emulator=emu, problems=problems)
                   for s in symbols]
        handler = make_handler(venue, markets, depth=10, env=env_for(venue, emu))
        runner = LiveRunner([handler], transport=FAST, weight_limits={venue: (limit, 1.0)},
                            snapshot_retry_initial_s=0.05, snapshot_retry_max_s=0.2)
        await runner.start()
        try:
            # Every symbol wants its first snapshot at once: 200 x 50 (spot) / 20 (futures) weight,
            # several windows' worth.  Another client behind the IP spends the whole window's
            # weight meanwhile, so the venue's count runs past ours and 429s do come.
            await wait_for(lambda: len(emu.rest_requests) >= 5, 10.0, what="requests under way")
            for _ in range(3):
                emu.add_weight(limit)
                await asyncio.sleep(0.3)
            await converge(emu, markets, 60.0)
            assert emu.answers_418 == 0
            # Then all 200 resync at once (a gap on every stream).
            requests0 = len(emu.rest_requests)
            resyncs0 = [m.resyncs for m in markets]
            for s in symbols:
                emu.inject(Fault.GAP, symbol=s)
            await wait_for(lambda: all(m.resyncs > r for m, r in zip(markets, resyncs0, strict=True)), 10.0,
                           what="every book noticed its gap")
            emu.add_weight(int(limit * 0.9))
            await converge(emu, markets, 60.0)
            assert len(emu.rest_requests) - requests0 >= len(symbols)
        finally:
            await runner.stop()
    assert emu.answers_418 == 0, "the client was banned"
    assert emu.answers_429 >= 1 and runner.rate_limited == emu.answers_429
    assert problems == []


@pytest.mark.timeout(60)
async def test_ip_ban_is_held_logged_once_shown_in_status_then_healed(caplog):
    symbols = ["BTC-USDT", "ETH-USDT", "XRP-USDT"]
    async with create_emulator("binance", symbols, seed=3, tick_s=0.02, weight_limit=6000,
                               weight_window_s=1.0, ban_s=1.0) as emu:
        markets = [Market("binance", s) for s in symbols]
        handler = make_handler("binance", markets, env=env_for("binance", emu))
        runner = LiveRunner([handler], transport=FAST, weight_limits={"binance": (6000, 1.0)}, ban_backoff_s=1.5,
                            snapshot_retry_initial_s=0.05, snapshot_retry_max_s=0.2)
        emu.ban(1.0)  # banned before we even start (an earlier run of ours, say)
        with caplog.at_level(logging.ERROR, logger="sentrycoin.live"):
            await runner.start()
            try:
                await wait_for(lambda: runner.bans >= 1, 5.0, what="a 418")
                t418 = time.monotonic()
                await wait_for(lambda: all("Binance IP ban (418) until" in (m.invalid_reason or "")
                                           for m in markets), 5.0, what="ban shown on every waiting book")
                assert all("Binance IP ban (418)" in (m.last_error or "") for m in markets)
                stats = runner.stats()["rest_weight"]
                assert next(iter(stats.values()))["blocked_for_s"] > 0.5
                requests_during_ban = len(emu.rest_requests)
                await asyncio.sleep(1.0)
                assert len(emu.rest_requests) == requests_during_ban  # nothing sent while banned
                await wait_for(lambda: all(m.valid for m in markets), 10.0, what="healed after the ban")
                assert time.monotonic() - t418 >= 1.4  # the ban backoff, not the 1 s Retry-After alone
            finally:
                await runner.stop()
    bans = [r for r in caplog.records if "Binance IP ban (418)" in r.getMessage()]
    assert len(bans) == 1 and runner.bans == emu.answers_418 == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("venue", ["binance", "binance-futures"])
async def test_server_shutdown_switches_connection_without_a_gap(venue: str):
    symbols = ["BTC-USDT", "ETH-USDT"]
    problems: list[str] = []
    async with create_emulator(venue, symbols, seed=5, tick_s=0.01) as emu:
        markets = [AuditedMarket(venue, s, depth=50, emulator=emu, problems=problems) for s in symbols]
        handler = make_handler(venue, markets, env=env_for(venue, emu))
        settings = TransportSettings(stale_after_s=2.0, backoff_initial_s=0.5, backoff_max_s=1.0,
                                     switchover_overlap_s=0.5)
        runner = LiveRunner([handler], transport=settings)
        await runner.start()
        try:
            await converge(emu, markets, 10.0)
            resyncs = [m.resyncs for m in markets]
            fetched = runner.snapshots_fetched
            messages = [m.messages for m in markets]
            (old,) = emu.open_sessions()
            emu.server_shutdown(grace_s=1.5)
            conn = next(iter(runner.connections.values()))
            await wait_for(lambda: conn.counters.switchovers == 1, 5.0, what="switch-over")
            await wait_for(lambda: old.closed, 5.0, what="old socket closed")
            (new,) = emu.open_sessions()
            assert new is not old and new.subscribed == set(symbols)
            # Books kept flowing through the switch and are still the venue's.
            await wait_for(lambda: all(m.messages > n + 20 for m, n in zip(markets, messages, strict=True)), 5.0,
                           what="traffic on the new socket")
            await converge(emu, markets, 5.0)
            assert [m.resyncs for m in markets] == resyncs  # never invalid: no gap
            assert runner.snapshots_fetched == fetched  # the chain continued: no new snapshot
            assert all(m.connected for m in markets) and conn.counters.disconnects == 0
            assert handler.counters.decode_errors == 0
        finally:
            await runner.stop()
    assert problems == []


@pytest.mark.timeout(60)
async def test_1030_streams_subscribe_by_messages_within_5_per_second():
    """Spot: 1024 streams on one connection by SUBSCRIBE messages, never > 5 messages/s (the
    emulator closes a connection that sends more), and no ~20 KB URL."""
    symbols = [f"S{i:04d}-USDT" for i in range(1030)]
    async with create_emulator("binance", symbols, seed=2, tick_s=1.0, warmup_steps=1,
                               book_kwargs={"min_levels": 2, "max_levels": 4}) as emu:
        markets = [Market("binance", s, depth=5, capacity=20) for s in symbols]
        handler = make_handler("binance", markets, depth=5, env=env_for("binance", emu))
        assert all(len(spec.url) < 100 for spec in handler.connections())
        runner = LiveRunner([handler], transport=FAST)
        await runner.start()
        try:
            await wait_for(lambda: sum(len(s.subscribed) for s in emu.open_sessions()) == len(symbols), 20.0,
                           what="every stream subscribed")
            sizes = sorted(len(s.subscribed) for s in emu.open_sessions())
            assert sizes == [6, 1024]
            assert emu.rate_limit_closes == 0
            for session in emu.sessions:
                times = session.received_at
                assert all(b - a >= 1.0 for a, b in zip(times, times[5:], strict=False))  # each with the 6th after it, "more than 5 messages in a second"
        finally:
            await runner.stop()
