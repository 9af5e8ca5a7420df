"""MOCK_FALLBACK's state machine (sentrycoin/fallback.py) on a stand-in runner:
switch after the window, twins labelled simulated, probing with the 5-minute
backoff cap, each market back as soon as its live book is in sync, the
simulator stopped and the cap restored when the last one is back.  The whole
round trip against a real venue emulator is tests/service/test_mock_fallback_e2e.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from sentrycoin.config import load_settings
from sentrycoin.fallback import PROBE_BACKOFF_MAX_S, MockFallback
from sentrycoin.market import AlertEvent, DetectorSettings, Market
from sentrycoin.sim.source import simulated_source
from sentrycoin.transport import Backoff, TransportSettings
from tests.transport.conftest import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _load(market: Market, bid_qty: float, ask_qty: float) -> None:
    """What a feed does with a snapshot: load, mark valid, run the message path."""
    bids = np.array([[99.5 - i, bid_qty] for i in range(5)])
    asks = np.array([[100.5 + i, ask_qty] for i in range(5)])
    market.book.load_snapshot(bids, asks)
    market.connected = True
    market.mark_valid()
    market.after_message(time.time_ns() // 1_000_000 + 60_000)  # after any simulated frame


class Stage:
    """What the monitor provides: the shown market list and the simulator factory."""

    def __init__(self, live: list[Market]) -> None:
        self.shown = list(live)
        self.alerts: list[AlertEvent] = []

    def show(self, old: Market, new: Market) -> None:
        self.shown[self.shown.index(old)] = new

    def make_source(self, venue: str, live: list[Market]) -> Any:
        return simulated_source([m.symbol for m in live], scenario="normal", seed=5, exchange=venue,
                                settings=DetectorSettings(danger_ratio=0.01, cooldown_s=0.0),
                                on_alert=self.alerts.append, realtime=True)


def _runner(handler: Any) -> Any:
    backoff = Backoff(0.01, 30.0)
    return SimpleNamespace(handlers=[handler], transport_settings=TransportSettings(backoff_max_s=30.0),
                           connections={(id(handler), 0): SimpleNamespace(backoff=backoff)})


async def test_switch_probe_and_come_back_market_by_market() -> None:
    btc, eth = Market("binance", "BTC-USDT"), Market("binance", "ETH-USDT")
    handler = SimpleNamespace(venue="binance", markets={"BTC-USDT": btc, "ETH-USDT": eth})
    runner = _runner(handler)
    stage = Stage([btc, eth])
    clock = FakeClock()
    fallback = MockFallback(runner, after_s=20.0, make_source=stage.make_source, show=stage.show,
                            speed=20.0, clock=clock)
    backoff = runner.connections[(id(handler), 0)].backoff

    # Connected at first, then down: the window counts from when the last connection closed.
    btc.connected = True
    fallback.check()
    clock.now += 60.0
    fallback.check()
    assert not fallback.active
    btc.connected = False
    for m in (btc, eth):
        m.invalidate("connection refused")
    fallback.check()
    clock.now += 19.0
    fallback.check()
    assert not fallback.active, "switched before MOCK_FALLBACK_AFTER_S"
    clock.now += 1.5
    fallback.check()
    try:
        assert set(fallback.active) == {"binance"} and fallback.switches == 1
        twins = list(stage.shown)
        assert [(t.exchange, t.symbol, t.source) for t in twins] == [
            ("binance", "BTC-USDT", "simulated"), ("binance", "ETH-USDT", "simulated")]
        assert backoff.max_s == PROBE_BACKOFF_MAX_S == 300.0  # the probe retries at most every 5 min
        (st,) = fallback.status()
        assert st["venue"] == "binance" and st["simulated_symbols"] == ["BTC-USDT", "ETH-USDT"]
        assert st["live_symbols"] == [] and st["last_error"] == "connection refused"
        assert st["since"].endswith("Z")
        (problem,) = fallback.problems()
        assert problem["kind"] == "venue_simulated" and problem["venue"] == "binance"
        assert "connection refused" in problem["message"] and "SIMULATED" in problem["message"]

        # The twins are driven by the simulator and alert, labelled simulated.
        await wait_for(lambda: all(t.valid for t in twins) and len(stage.alerts) >= 2, 10.0, "simulated twins")
        assert {(a.symbol, a.source) for a in stage.alerts} == {("BTC-USDT", "simulated"), ("ETH-USDT", "simulated")}

        # BTC's venue answers (connected, snapshot in sync): BTC is shown live again at once.
        fallback.check()
        assert stage.shown[0] is twins[0], "connected alone is not enough: the book must be in sync"
        _load(btc, 1.0, 1.0)
        fallback.check()
        assert stage.shown == [btc, twins[1]]
        (st,) = fallback.status()
        assert st["simulated_symbols"] == ["ETH-USDT"] and st["live_symbols"] == ["BTC-USDT"]
        # The BTC twin is silenced: a crash in its book raises nothing any more.
        stage.alerts.clear()
        _load(twins[0], 1000.0, 1.0)  # ratio 0.001: below the re-arm level
        _load(twins[0], 1.0, 50.0)  # ratio 50: would fire
        assert not [a for a in stage.alerts if a.symbol == "BTC-USDT"]
        assert backoff.max_s == PROBE_BACKOFF_MAX_S  # ETH still probing

        # ETH back too: the simulator stops and the normal backoff cap returns.
        _load(eth, 1.0, 1.0)
        fallback.check()
        assert stage.shown == [btc, eth] and not fallback.active and fallback.returns == 1
        assert backoff.max_s == 30.0
        assert fallback.status() == [] and fallback.problems() == []
        await asyncio.sleep(0.1)
        sim_tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("sentrycoin-fallback-sim")]
        assert not sim_tasks, "the simulator kept running after every market was back"

        # Down again later: a new window, a new switch.
        for m in (btc, eth):
            m.connected = False
            m.invalidate("disconnected")
        fallback.check()
        clock.now += 21.0
        fallback.check()
        assert set(fallback.active) == {"binance"} and fallback.switches == 2
    finally:
        await fallback.stop()


async def test_a_reachable_venue_never_switches_and_stop_ends_the_simulators() -> None:
    up = Market("okx", "BTC-USDT")
    up.connected = True
    down = Market("kraken", "XBT-USD")
    handlers = [SimpleNamespace(venue="okx", markets={"BTC-USDT": up}),
                SimpleNamespace(venue="kraken", markets={"XBT-USD": down})]
    runner = SimpleNamespace(handlers=handlers, transport_settings=TransportSettings(), connections={})
    stage = Stage([up, down])
    clock = FakeClock()
    fallback = MockFallback(runner, after_s=5.0, make_source=stage.make_source, show=stage.show, clock=clock)
    fallback.start()
    fallback.check()
    clock.now += 6.0
    fallback.check()
    assert set(fallback.active) == {"kraken"}
    assert stage.shown[0] is up and stage.shown[1].source == "simulated"
    task = fallback.active["kraken"].task
    await fallback.stop()
    assert task is not None and task.done()


async def test_monitor_mode_says_mixed_when_some_venues_are_simulated(tmp_path: Path) -> None:
    from sentrycoin.monitor import Monitor

    toml = tmp_path / "m.toml"
    toml.write_text('[[markets]]\nexchange = "binance"\nsymbols = ["BTC-USDT"]\n'
                    '[[markets]]\nexchange = "okx"\nsymbols = ["BTC-USDT"]\n')
    settings = load_settings(toml, env={"SENTRY_DB": str(tmp_path / "a.db"), "MOCK_FALLBACK": "true"})
    monitor = Monitor(settings, env={}, serve_http=False, console=False)
    try:
        assert monitor.mode == "live"
        binance, okx = monitor.markets
        twin = Market("binance", "BTC-USDT", source="simulated")
        monitor._show_instead(binance, twin)
        assert monitor.markets == [twin, okx] and monitor.mode == "mixed"
        monitor._show_instead(okx, Market("okx", "BTC-USDT", source="simulated"))
        assert monitor.mode == "simulated"
        monitor._show_instead(twin, binance)
        assert monitor.mode == "mixed" and monitor._mid_price_of("binance", "BTC-USDT") is None
        assert monitor.health_problems() == [] and monitor.fallback_status() == []
    finally:
        await monitor.store.close()
