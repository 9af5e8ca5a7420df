"""Fixtures for the HTTP surface tests (test_server*, test_status*, test_metrics*,
test_dashboard*).  Every name here starts with `srv_` / `Srv` so the alert and
store tests in this directory can add their own without colliding."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sentrycoin.alerts.base import DeliveryError, Notifier
from sentrycoin.feeds.base import FeedCounters
from sentrycoin.market import AlertEvent, DetectorSettings, Market
from sentrycoin.server.metrics import ProcessingTimeHistogram
from sentrycoin.store import AlertRecord


def srv_load_book(market: Market, bid_qty: float, ask_qty: float, *, mid: float = 100.0,
                  levels: int = 10, event_ms: int | None = None) -> None:
    """Replace the book with `levels` levels per side of equal qty, mark it valid,
    and run the message path (`after_message`) exactly as a feed would."""
    bids = [(mid - 0.5 - i * 0.5, bid_qty) for i in range(levels)]
    asks = [(mid + 0.5 + i * 0.5, ask_qty) for i in range(levels)]
    market.book.load_snapshot(bids, asks)
    market.connected = True
    market.mark_valid()
    market.after_message(int(time.time() * 1000) if event_ms is None else event_ms)


class SrvBrokenNotifier(Notifier):
    """A notifier whose endpoint always refuses: feeds the failure counters."""

    name = "broken"

    async def send(self, alert: AlertRecord) -> None:
        raise DeliveryError("endpoint refused the alert (test)", permanent=True)


class SrvMonitor:
    """Implements sentrycoin.server.protocols.MonitorLike for tests."""

    def __init__(self, markets: list[Market], *, mode: str = "simulated", stale_after_s: float = 30.0,
                 alert_manager: Any = None) -> None:
        self.mode = mode
        self.markets = markets
        self.started_monotonic = time.monotonic()
        self.stale_after_s = stale_after_s
        self.version = "0.1.0-test"
        self.alert_manager = alert_manager
        self.processing_time = ProcessingTimeHistogram()
        self.counters: dict[str, FeedCounters] = {}
        for m in markets:
            self.counters.setdefault(m.exchange, FeedCounters())

    def settings_redacted(self) -> dict[str, Any]:
        return {"danger_ratio": 2.5, "depth": 50, "telegram_bot_token": "***redacted***",
                "symbols": [m.symbol for m in self.markets], "db_path": Path("/var/lib/sentrycoin/a.db")}

    def feed_counters(self) -> dict[str, FeedCounters]:
        return self.counters


@pytest.fixture
def srv_make_market() -> Callable[..., Market]:
    def make(exchange: str = "binance", symbol: str = "BTC-USDT", *, source: str = "simulated",
             on_alert: Callable[[AlertEvent], None] | None = None, danger_ratio: float = 2.5,
             cooldown_s: float = 300.0) -> Market:
        return Market(exchange, symbol, depth=50, capacity=1000, source=source, on_alert=on_alert,
                      settings=DetectorSettings(danger_ratio=danger_ratio, cooldown_s=cooldown_s))
    return make


@pytest.fixture
def srv_store(tmp_path: Any) -> Any:
    from sentrycoin.store import AlertStore

    store = AlertStore(tmp_path / "alerts.sqlite")
    yield store
    store.close()


@pytest.fixture
async def srv_alert_manager(srv_store: Any) -> AsyncIterator[Any]:
    """The real AlertManager over a temp SQLite store, with a console notifier
    (writing to a StringIO) and one that always fails; started and stopped."""
    from sentrycoin.alerts.console import ConsoleNotifier
    from sentrycoin.alerts.manager import AlertManager

    manager = AlertManager(srv_store, [ConsoleNotifier(io.StringIO(), color=False), SrvBrokenNotifier()])
    await manager.start()
    yield manager
    await manager.stop(drain_timeout_s=1.0)


@pytest.fixture
async def srv_serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """`base_url = await srv_serve(monitor, token=None, tick_s=0.5)`: a real server on
    127.0.0.1 (random port), cleaned up after the test."""
    from sentrycoin.server.app import bound_port, create_app, start_server

    runners: list[Any] = []

    async def serve(monitor: Any, token: str | None = None, **kwargs: Any) -> str:
        app = create_app(monitor, status_token=token, **kwargs)
        runner, _site = await start_server(app, "127.0.0.1", 0)
        runners.append(runner)
        return f"http://127.0.0.1:{bound_port(runner)}"

    yield serve
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def srv_http(srv_serve: Any) -> AsyncIterator[Any]:
    """(serve, session): the server factory plus an aiohttp ClientSession."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        yield srv_serve, session
