"""LiveRunner.add_handler / remove_handler while running (what lease takeover in the monitor uses).

Against the local Binance emulator: a handler added to a running runner syncs
its books; a removed one has no connection or snapshot request left and its
Market objects are never touched again, so a new handler can take them over
and resync them to the venue's true book.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from sentrycoin.emulator import create_emulator
from sentrycoin.feeds.registry import make_handler
from sentrycoin.live import LiveRunner
from sentrycoin.market import Market

VENUE = "binance"
SYMBOLS = ["BTC-USDT", "ETH-USDT"]
AUDIT_DEPTH = 10

pytestmark = pytest.mark.timeout(30)


async def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        await asyncio.sleep(0.02)


def book_key(book, k: int = AUDIT_DEPTH):  # noqa: ANN001, ANN201
    return (tuple(map(tuple, book.bids(k).tolist())), tuple(map(tuple, book.asks(k).tolist())))


def handler_over(markets: list[Market], emu):  # noqa: ANN001, ANN201
    return make_handler(VENUE, markets, env={"BINANCE_WS_URL": emu.ws_url, "BINANCE_REST_URL": emu.rest_url})


def own_keys(runner: LiveRunner, handler) -> tuple[list, list]:  # noqa: ANN001
    return ([k for k in runner.connections if k[0] == id(handler)],
            [k for k in runner._snapshot_tasks if k[0] == id(handler)])


async def test_add_remove_and_hand_markets_to_a_new_handler() -> None:
    async with create_emulator(VENUE, SYMBOLS, seed=4, tick_s=0.01) as emu:
        btc, eth = (Market(VENUE, s) for s in SYMBOLS)
        h1 = handler_over([btc], emu)
        runner = LiveRunner([h1], snapshot_spacing_s={VENUE: 0.01})
        await runner.start()
        try:
            await wait_for(lambda: btc.valid, 5.0, "BTC from the first handler")

            h2 = handler_over([eth], emu)
            runner.add_handler(h2)
            runner.add_handler(h2)  # twice: still one
            assert runner.handlers == [h1, h2]
            await wait_for(lambda: eth.valid, 5.0, "ETH from a handler added while running")
            assert own_keys(runner, h2)[0]
            assert set(runner.stats()["feeds"][VENUE]["markets"]) <= set(SYMBOLS)

            await runner.remove_handler(h1)
            assert runner.handlers == [h2]
            assert own_keys(runner, h1) == ([], [])
            assert not btc.connected and not btc.valid
            frozen = btc.messages
            eth_messages = eth.messages
            await asyncio.sleep(0.3)
            assert btc.messages == frozen, "a removed handler's market kept receiving data"
            assert eth.messages > eth_messages, "removing one handler disturbed another"
            await runner.remove_handler(h1)  # unknown now: no-op

            # Both existing Market objects move to one new handler and resync from scratch.
            await runner.remove_handler(h2)
            for m in (btc, eth):
                m.invalidate("handed to a new handler")
            h3 = handler_over([btc, eth], emu)
            runner.add_handler(h3)
            await wait_for(lambda: btc.valid and eth.valid, 5.0, "both books on the new handler")
            emu.pause()
            try:
                await wait_for(lambda: all(m.valid and book_key(m.book) == emu.books[m.symbol].top_key(AUDIT_DEPTH)
                                           for m in (btc, eth)), 5.0, "books equal to the venue's")
            finally:
                emu.resume()
            assert {k[0] for k in runner.connections} == {id(h3)}
        finally:
            await runner.stop()


async def test_remove_cancels_a_pending_snapshot_request() -> None:
    async with create_emulator(VENUE, SYMBOLS, seed=5, tick_s=0.01) as emu:
        btc, eth = (Market(VENUE, s) for s in SYMBOLS)
        h1 = handler_over([btc, eth], emu)
        # 3 s between snapshot requests: the second symbol's request waits for its turn.
        runner = LiveRunner([h1], snapshot_spacing_s={VENUE: 3.0})
        await runner.start()
        try:
            await wait_for(lambda: btc.valid or eth.valid, 5.0, "the first snapshot")
            pending = list(runner._snapshot_tasks.values())
            assert pending and not all(t.done() for t in pending)
            late = eth if btc.valid else btc
            await runner.remove_handler(h1)
            assert all(t.done() for t in pending) and own_keys(runner, h1) == ([], [])
            await asyncio.sleep(0.2)
            assert not late.valid and late.resyncs == 0  # never synced by the cancelled request
            assert runner.snapshots_fetched == 1
        finally:
            await runner.stop()


async def test_add_and_remove_before_start() -> None:
    async with create_emulator(VENUE, SYMBOLS[:1], seed=6, tick_s=0.01) as emu:
        btc = Market(VENUE, SYMBOLS[0])
        h1 = handler_over([btc], emu)
        h0 = handler_over([Market(VENUE, SYMBOLS[0])], emu)
        runner = LiveRunner([h0], snapshot_spacing_s={VENUE: 0.01})
        await runner.remove_handler(h0)
        runner.add_handler(h1)
        assert runner.handlers == [h1] and runner.connections == {}  # nothing opened before start()
        await runner.start()
        try:
            await wait_for(lambda: btc.valid, 5.0, "BTC after start()")
            assert {k[0] for k in runner.connections} == {id(h1)}
        finally:
            await runner.stop()
