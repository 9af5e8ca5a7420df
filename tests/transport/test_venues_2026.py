"""Venues as they are in December 2026, end to end against the emulator (its true books).

* Coinbase serves `-USDC` products as the `-USD` book: BTC-USD and BTC-USDC both sync;
* OKX `books` with and without the WebSocket snapshot (REST bridge), okx and okx-swap;
* a quiet OKX connection that answers only the text `ping` is not killed as stale.
"""

from __future__ import annotations

import asyncio

import pytest

from sentrycoin.emulator import Fault, create_emulator
from sentrycoin.feeds.registry import make_handler, venue_info
from sentrycoin.live import LiveRunner
from sentrycoin.market import Market
from sentrycoin.transport import TransportSettings
from tests.transport.conftest import wait_for
from tests.transport.test_e2e_faults import AuditedMarket, book_key, whole_book_matches

FAST = TransportSettings(stale_after_s=0.6, backoff_initial_s=0.02, backoff_max_s=0.1, connect_timeout_s=2.0)


def env_for(venue: str, emu) -> dict[str, str]:  # noqa: ANN001
    info = venue_info(venue)
    env = {info.ws_env: emu.ws_url}
    if emu.rest_url:
        env[info.rest_env] = emu.rest_url
    return env


async def converge(emu, markets: list[Market], truth_of, timeout_s: float = 8.0) -> None:  # noqa: ANN001
    """Every book valid, then (truth frozen) equal to the emulator's true book."""
    def describe() -> str:
        return ", ".join(f"{m.symbol} valid={m.valid} ({m.invalid_reason})" for m in markets)

    await wait_for(lambda: all(m.valid for m in markets), timeout_s, what=describe)
    emu.pause()
    try:
        await wait_for(lambda: all(m.valid and book_key(m.book) == truth_of(m).top_key(10)
                                   and whole_book_matches(m, truth_of(m)) for m in markets),
                       timeout_s, what=describe)
    finally:
        emu.resume()


@pytest.mark.timeout(60)
async def test_coinbase_usd_and_usdc_markets_both_follow_the_usd_book():
    problems: list[str] = []
    async with create_emulator("coinbase", ["BTC-USD", "ETH-USD"], seed=4, tick_s=0.01) as emu:
        symbols = ["BTC-USD", "BTC-USDC", "ETH-USDC"]
        markets = [AuditedMarket("coinbase", s, depth=50, emulator=None, problems=problems) for s in symbols]
        handler = make_handler("coinbase", markets, env=env_for("coinbase", emu))
        runner = LiveRunner([handler], transport=FAST)
        await runner.start()
        try:
            def truth(m: Market):  # noqa: ANN202
                return emu.books[m.symbol.replace("-USDC", "-USD")]

            await converge(emu, markets, truth)
            # One stream for BTC: the emulator saw one level2 subscription naming BTC-USD.
            (session,) = emu.open_sessions()
            assert session.subscribed == {"BTC-USD", "ETH-USD"}
            # A sequence gap resyncs the connection; every market comes back to the truth.
            resyncs = markets[1].resyncs
            emu.inject(Fault.GAP, symbol="BTC-USD")
            await wait_for(lambda: markets[1].resyncs > resyncs, 5.0, what="gap noticed")
            await converge(emu, markets, truth)
        finally:
            await runner.stop()
    assert problems == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("venue", ["okx", "okx-swap"])
@pytest.mark.parametrize("ws_snapshot", [True, False], ids=["ws-snapshot", "rest-bridge"])
async def test_okx_syncs_with_and_without_websocket_snapshot(venue: str, ws_snapshot: bool):
    problems: list[str] = []
    symbols = ["BTC-USDT", "ETH-USDT"]
    # The REST answer trails the stream by a few steps, so the bridge has buffered updates to skip.
    async with create_emulator(venue, symbols, seed=6, tick_s=0.01, ws_snapshot=ws_snapshot,
                               rest_lag_steps=3, rest_delay_s=0.05) as emu:
        markets = [AuditedMarket(venue, s, depth=50, emulator=emu, problems=problems) for s in symbols]
        handler = make_handler(venue, markets, env=env_for(venue, emu))
        runner = LiveRunner([handler], transport=FAST, snapshot_spacing_s={venue: 0.0})
        await runner.start()
        try:
            await converge(emu, markets, lambda m: emu.books[m.symbol])
            rest0 = len(emu.rest_requests)
            if ws_snapshot:
                assert rest0 == 0  # the WebSocket snapshot needs no REST request
            else:
                assert rest0 >= len(symbols)
                expected = "BTC-USDT-SWAP" if venue == "okx-swap" else "BTC-USDT"
                assert any(f"instId={expected}&sz=400" in r for r in emu.rest_requests)
            # A gap resubscribes; without a WebSocket snapshot the REST bridge heals it again.
            resyncs = markets[0].resyncs
            emu.inject(Fault.GAP, symbol="BTC-USDT")
            await wait_for(lambda: markets[0].resyncs > resyncs, 5.0, what="gap noticed")
            await converge(emu, markets, lambda m: emu.books[m.symbol])
            if not ws_snapshot:
                assert len(emu.rest_requests) > rest0
                # A stale REST answer (older than the buffered stream) is refused and fetched again.
                rest1 = len(emu.rest_requests)
                emu.inject(Fault.STALE_SNAPSHOT, symbol="BTC-USDT")
                emu.inject(Fault.GAP, symbol="BTC-USDT")
                await wait_for(lambda: emu.pending_faults() == 0, 5.0, what="faults delivered")
                await converge(emu, markets, lambda m: emu.books[m.symbol])
                assert len(emu.rest_requests) - rest1 >= 2
        finally:
            await runner.stop()
    assert problems == []


@pytest.mark.timeout(30)
async def test_quiet_okx_connection_answering_text_pong_is_not_stale():
    """OKX ignores WebSocket PINGs: the idle probe must be the text `ping`, whose `pong` keeps it alive."""
    async with create_emulator("okx", ["BTC-USDT"], seed=2, tick_s=0.01) as emu:
        markets = [Market("okx", "BTC-USDT")]
        handler = make_handler("okx", markets, env=env_for("okx", emu))
        settings = TransportSettings(stale_after_s=0.4, backoff_initial_s=0.02, backoff_max_s=0.1)
        runner = LiveRunner([handler], transport=settings)
        await runner.start()
        try:
            await wait_for(lambda: markets[0].valid, 5.0, what="synced")
            emu.pause()  # nothing more to say: only pings and pongs from now on
            await asyncio.sleep(2.0)  # five stale periods
            conn = next(iter(runner.connections.values()))
            assert conn.counters.stale_reconnects == 0 and conn.counters.connects == 1
            assert conn.counters.ws_pings_sent == 0 and conn.counters.app_pings_sent >= 3
            (session,) = emu.open_sessions()
            assert session.received.count("ping") >= 3 and session.protocol_pings == 0
            assert markets[0].valid
        finally:
            await runner.stop()


def most_in_any_window(times: list[float], window_s: float = 1.0) -> int:
    times = sorted(times)
    return max((sum(1 for t in times if start <= t < start + window_s) for start in times), default=0)


@pytest.mark.timeout(60)
async def test_coinbase_messages_stay_under_8_per_second_per_ip_across_connections():
    products = [f"P{i}-USD" for i in range(12)]
    async with create_emulator("coinbase", products, seed=3, tick_s=0.05, warmup_steps=20) as emu:
        markets = [Market("coinbase", p) for p in products]
        from sentrycoin.feeds.coinbase import CoinbaseHandler

        # One product per connection: 12 connections, 24 subscribe messages at start, all from one IP.
        handler = CoinbaseHandler(markets, emu.ws_url, products_per_connection=1)
        runner = LiveRunner([handler], transport=FAST)
        await runner.start()
        try:
            await wait_for(lambda: all(m.valid for m in markets), 15.0, what="every book synced")
            await wait_for(lambda: sum(len(s.received_at) for s in emu.sessions) >= 24, 10.0,
                           what="every subscribe sent")
            times = [t for s in emu.sessions for t in s.received_at]
            assert most_in_any_window(times) <= 8
            assert sum(c.counters.sends_delayed for c in runner.connections.values()) > 0
        finally:
            await runner.stop()


@pytest.mark.timeout(60)
async def test_okx_opens_at_most_3_connections_per_second():
    symbols = [f"C{i}-USDT" for i in range(9)]
    async with create_emulator("okx", symbols, seed=3, tick_s=0.05, warmup_steps=20) as emu:
        markets = [Market("okx", s) for s in symbols]
        from sentrycoin.feeds.okx import OkxSpotHandler

        handler = OkxSpotHandler(markets, emu.ws_url, emu.rest_url, symbols_per_connection=1)
        runner = LiveRunner([handler], transport=FAST)
        await runner.start()
        try:
            await wait_for(lambda: all(m.valid for m in markets), 15.0, what="every book synced")
            opened = [s.opened_at for s in emu.sessions]
            assert len(opened) == 9 and most_in_any_window(opened) <= 3
        finally:
            await runner.stop()
