"""Read-only views of the running monitor: the /status document and /health.

Everything here reads the live `Market` objects at request time; nothing is
copied per message, so serving status costs the hot path nothing.  The exact
shape of /status is a contract documented in docs/status.md.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from sentrycoin.market import AlertEvent, Market

if TYPE_CHECKING:
    from sentrycoin.server.app import MonitorLike


def finite(value: float | None) -> float | None:
    """JSON has no NaN/inf: undefined numbers (empty side, no bids) become null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def now_ms_for(market: Market) -> int:
    """The clock the detector's cooldown runs on.

    Live and simulated markets are stamped with wall-clock event times, so
    the cooldown keeps running when the feed goes quiet; a replay runs on the
    recording's clock, so its own last event time is "now".
    """
    if market.source == "replay":
        return market.last_event_ms or 0
    return int(time.time() * 1000)


def alert_json(event: AlertEvent | None) -> dict[str, Any] | None:
    if event is None:
        return None
    return {
        "exchange": event.exchange,
        "symbol": event.symbol,
        "source": event.source,
        "severity": event.severity,
        "ratio": finite(event.ratio),
        "danger_ratio": finite(event.danger_ratio),
        "bid_volume": finite(event.bid_volume),
        "ask_volume": finite(event.ask_volume),
        "best_bid": finite(event.best_bid),
        "best_ask": finite(event.best_ask),
        "depth": event.depth,
        "event_ms": event.event_ms,
        "size_unit": event.size_unit,
    }


class MessageRates:
    """messages_per_s per market, over a short sliding window.

    `sample()` is called by the server's background ticker (every ~0.5 s);
    the rate is the message-count difference across the window, so it reads
    two integers per market per tick and nothing per message.
    """

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        # key -> deque[(monotonic_s, messages)]
        self._samples: dict[tuple[str, str], deque[tuple[float, int]]] = {}

    def sample(self, markets: list[Market], now_s: float | None = None) -> None:
        now_s = time.monotonic() if now_s is None else now_s
        for market in markets:
            ring = self._samples.get(market.key)
            if ring is None:
                ring = self._samples[market.key] = deque()
            ring.append((now_s, market.messages))
            # Keep one sample older than the window so the rate spans all of it.
            while len(ring) > 2 and now_s - ring[1][0] >= self.window_s:
                ring.popleft()

    def rate(self, market: Market, now_s: float | None = None) -> float:
        now_s = time.monotonic() if now_s is None else now_s
        ring = self._samples.get(market.key)
        if ring:
            t0, m0 = ring[0]
            span_s = now_s - t0
            if span_s > 0.05:
                return max(0.0, (market.messages - m0) / span_s)
        # No ticker sample yet: average since the market was created.
        span_s = now_s - market.created_monotonic
        return market.messages / span_s if span_s > 0.05 else 0.0


def book_status(market: Market, rates: MessageRates | None, now_s: float) -> dict[str, Any]:
    """One entry of /status "books" (see docs/status.md for every field)."""
    book = market.book
    age_ms = None
    if market.last_update_monotonic is not None:
        age_ms = max(0.0, (now_s - market.last_update_monotonic) * 1000.0)
    rate = rates.rate(market, now_s) if rates is not None else MessageRates().rate(market, now_s)
    return {
        "exchange": market.exchange,
        "symbol": market.symbol,
        "source": market.source,
        "connected": bool(market.connected),
        "book_valid": bool(market.valid),
        "invalid_reason": market.invalid_reason,
        "last_update_age_ms": None if age_ms is None else round(age_ms, 1),
        "best_bid": finite(book.best_bid),
        "best_ask": finite(book.best_ask),
        "bid_volume": finite(book.bid_volume),
        "ask_volume": finite(book.ask_volume),
        "size_unit": market.size_unit,
        "ratio": finite(book.ratio),
        "danger_ratio": finite(market.detector.danger_ratio),
        "state": market.state(now_ms_for(market)),
        "alerts": int(market.detector.alerts),
        "last_alert": alert_json(market.last_alert),
        "messages": int(market.messages),
        "messages_per_s": round(rate, 3),
        "resyncs": int(market.resyncs),
        "reconnects": int(market.reconnects),
        "rejected": int(market.rejected),
        "depth": int(book.depth),
        "bid_levels": int(book.bid_levels),
        "ask_levels": int(book.ask_levels),
        "truncated": bool(book.truncated),
    }


def status_document(monitor: MonitorLike, rates: MessageRates | None = None) -> dict[str, Any]:
    now_s = time.monotonic()
    return {
        "version": monitor.version,
        "uptime_s": round(max(0.0, now_s - monitor.started_monotonic), 3),
        "mode": monitor.mode,
        "stale_after_s": finite(monitor.stale_after_s),
        "settings": monitor.settings_redacted(),
        "books": [book_status(m, rates, now_s) for m in monitor.markets],
    }


def fresh(market: Market, stale_after_s: float, now_s: float) -> bool:
    """A valid book updated within the stale window."""
    return (
        market.valid
        and market.last_update_monotonic is not None
        and now_s - market.last_update_monotonic <= stale_after_s
    )


def health(monitor: MonitorLike) -> tuple[int, dict[str, Any]]:
    """(http_status, body) for /health: 200 while any book is valid and fresh."""
    now_s = time.monotonic()
    markets = monitor.markets
    ok = sum(1 for m in markets if fresh(m, monitor.stale_after_s, now_s))
    body: dict[str, Any] = {
        "books_ok": ok,
        "books_total": len(markets),
        "uptime_s": round(max(0.0, now_s - monitor.started_monotonic), 3),
        "mode": monitor.mode,
    }
    if ok:
        return 200, {"status": "ok", **body}
    if not markets:
        reason = "no markets configured"
    elif not any(m.valid for m in markets):
        reason = "no order book is in sync yet (waiting for snapshot or resyncing)"
    else:
        reason = f"no valid order book updated in the last {monitor.stale_after_s:g} s (feed stalled)"
    return 503, {"status": "unavailable", "reason": reason, **body}
