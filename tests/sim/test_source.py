"""SimSource: drives the real BinanceSpotHandler with no network."""

from __future__ import annotations

import asyncio

import pytest

from sentrycoin.feeds.base import Reconnect
from sentrycoin.feeds.binance import BinanceSpotHandler
from sentrycoin.market import Market
from sentrycoin.sim.generator import MarketGenerator
from sentrycoin.sim.source import SIM_REST_URL, SIM_WS_URL, SimSource, simulated_source

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]


def test_books_sync_and_markets_are_marked_simulated():
    src = simulated_source(SYMBOLS, scenario="normal", seed=1, realtime=False)
    assert src.run_until(src.generator.start_ms + 20_000) > 0
    assert src.snapshots == len(SYMBOLS)
    for m in src.markets:
        assert m.source == "simulated" and m.exchange == "binance"
        assert m.valid and m.connected and m.resyncs == 0 and m.rejected == 0
        assert m.messages >= 190
    assert src.handler.counters.decode_errors == 0


def test_slow_snapshot_is_bridged_into_buffered_stream():
    """The REST answer lands 1.5 s after the request: 15 buffered events per symbol must be bridged."""
    src = simulated_source(SYMBOLS, scenario="normal", seed=2, realtime=False, snapshot_delay_ms=1500)
    src.run_until(src.generator.start_ms + 1400)
    assert not any(m.valid for m in src.markets)
    src.run_until(src.generator.start_ms + 10_000)
    for m in src.markets:
        assert m.valid and m.resyncs == 0 and m.rejected == 0
        sim = src.generator.sims[m.symbol]
        assert m.book.best_bid == pytest.approx(-sim.bids.keys[0] * sim.tick_e8 / 1e8)
        assert m.book.bid_levels == len(sim.bids.keys)


def test_tee_records_everything_needed_to_replay_identically():
    frames: list[tuple[int, bytes]] = []
    snaps: list[tuple[str, int, bytes]] = []
    alerts: list = []
    src = simulated_source(["BTC-USDT", "ETH-USDT"], scenario="flash_crash", seed=4, realtime=False,
                           tee=lambda ms, data: frames.append((ms, data)), on_alert=alerts.append)
    src.snapshot_tee = lambda sym, ms, body: snaps.append((sym, ms, body))
    src.run_all()
    assert len(frames) == src.frames and len(snaps) == 2 and alerts
    # Replay the recording into fresh markets: same books, same alerts.
    replayed: list = []
    markets = [Market("binance", s, on_alert=replayed.append, source="replay") for s in ("BTC-USDT", "ETH-USDT")]
    h = BinanceSpotHandler(markets, SIM_WS_URL, SIM_REST_URL)
    h.on_connected(0)
    pending = list(snaps)
    for ms, data in frames:
        while pending and pending[0][1] <= ms:
            sym, at, body = pending.pop(0)
            h.on_snapshot(sym, body, at)
        h.on_frame(0, data, ms)
    assert [(a.symbol, a.severity, a.event_ms, a.ratio) for a in replayed] == \
        [(a.symbol, a.severity, a.event_ms, a.ratio) for a in alerts]
    for a, b in zip(markets, src.markets, strict=True):
        assert a.book.ratio == b.book.ratio and a.book.best_bid == b.book.best_bid


def test_reconnect_action_resyncs_the_books():
    src = simulated_source(["BTC-USDT"], scenario="normal", seed=3, realtime=False)
    src.run_until(src.generator.start_ms + 5000)
    m = src.markets[0]
    assert m.valid
    src.handler.actions.append(Reconnect(0, "test"))
    src.step()
    assert src.reconnects == 1
    assert not m.valid
    src.run_until(src.generator.start_ms + 8000)
    assert m.valid and src.snapshots == 2


def test_explicit_handler_and_generator():
    markets = [Market("binance", s, source="simulated") for s in SYMBOLS]
    handler = BinanceSpotHandler(markets, SIM_WS_URL, SIM_REST_URL, depth=50)
    src = SimSource(handler, MarketGenerator(SYMBOLS, "whale_dump", seed=9))
    assert src.run_all() > 1000
    assert all(m.valid for m in markets)
    with pytest.raises(ValueError, match="subscribe"):
        SimSource(BinanceSpotHandler(markets[:1], SIM_WS_URL, SIM_REST_URL), MarketGenerator(SYMBOLS, "normal"))
    with pytest.raises(ValueError, match="endless"):
        simulated_source(["BTC-USDT"], scenario="mixed", seed=1, realtime=False).run_all()


async def test_realtime_mode_is_paced_and_stops():
    src = simulated_source(["BTC-USDT", "ETH-USDT"], scenario="mixed", seed=5, realtime=True)
    stop = asyncio.Event()
    speed = 20.0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    sim0 = src.generator.now_ms
    task = asyncio.create_task(src.run(stop, speed=speed))
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 2.0)
    elapsed = loop.time() - t0
    advanced_ms = src.generator.now_ms - sim0
    assert src.frames > 0 and all(m.valid for m in src.markets)
    # Never ahead of the clock: at most one frame interval past wall time x speed.
    assert advanced_ms <= elapsed * speed * 1000 + 100
    # Realtime markets carry current timestamps.
    assert abs(src.markets[0].last_event_ms - (sim0 + advanced_ms)) <= 200


async def test_fast_forward_still_yields_to_the_event_loop():
    src = simulated_source(["BTC-USDT", "ETH-USDT"], scenario="normal", seed=6, realtime=True)
    stop = asyncio.Event()
    ticks = 0

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    tick_task = asyncio.create_task(ticker())
    task = asyncio.create_task(src.run(stop, speed=10_000.0))  # far faster than it can go
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(asyncio.gather(task, tick_task), 5.0)
    assert src.frames > 1000
    assert ticks >= 3
