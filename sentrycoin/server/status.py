"""Read-only views of the running monitor: the /status document and /health.

Everything here reads the live `Market` objects at request time; nothing is
copied per message, so serving status costs the hot path nothing.  The exact
shape of /status is a contract documented in docs/status.md.

/health is a list of named problems ({"kind", "message", ...}): every book
invalid for longer than `DEGRADED_AFTER_STALE` x STALE_AFTER_S, plus what
the monitor itself reports through its optional `health_problems()` (a venue
on simulated data under MOCK_FALLBACK, a degraded alert store, ...).  Any
problem makes the body say "degraded"; the status code stays 200 while some
book is valid and fresh, so an orchestrator does not restart a monitor that
one delisted symbol leaves half blind; `?strict=1` answers 503 instead.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import Any

import msgspec

from sentrycoin.market import AlertEvent, Market
from sentrycoin.server.protocols import MonitorLike
from sentrycoin.store import iso_utc

log = logging.getLogger("sentrycoin.server.status")

#: A book invalid for longer than this many STALE_AFTER_S is a /health problem
#: (short resyncs are normal; three stale windows of blindness are not).
DEGRADED_AFTER_STALE = 3.0


def finite(value: float | None) -> float | None:
    """JSON has no NaN/inf: undefined numbers (empty side, no bids) become null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def alert_json(event: AlertEvent | None) -> dict[str, Any] | None:
    """The alert as /status and /live show it: every field of the event (AlertFields and
    size_unit), numbers that are not finite as null."""
    if event is None:
        return None
    return {name: finite(value) if isinstance(value, float) else value
            for name, value in msgspec.structs.asdict(event).items()}


class MessageRates:
    """messages_per_s per market, over a short sliding window.

    `sample()` is called by the server's background ticker (every ~0.5 s);
    the rate is the message-count difference across the window, so it reads
    two integers per market per tick and nothing per message.
    """

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        # key -> deque[(monotonic_s, messages)]
        # Keyed by the Market object's id: MOCK_FALLBACK shows another object (a
        # simulated twin, or the live market again) under the same (exchange, symbol),
        # and one object's message count must not be subtracted from another's.
        self._samples: dict[int, deque[tuple[float, int]]] = {}

    def sample(self, markets: list[Market], now_s: float | None = None) -> None:
        now_s = time.monotonic() if now_s is None else now_s
        for market in markets:
            ring = self._samples.get(id(market))
            if ring is None:
                ring = self._samples[id(market)] = deque()
            ring.append((now_s, market.messages))
            # Keep one sample older than the window so the rate spans all of it.
            while len(ring) > 2 and now_s - ring[1][0] >= self.window_s:
                ring.popleft()
        if len(self._samples) > len(markets):  # a market no longer shown
            shown = {id(m) for m in markets}
            for gone in [k for k in self._samples if k not in shown]:
                del self._samples[gone]

    def rate(self, market: Market, now_s: float | None = None) -> float:
        now_s = time.monotonic() if now_s is None else now_s
        ring = self._samples.get(id(market))
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
        "invalid_since": None if market.valid else iso_utc_or_none(market.invalid_since_ms),
        "invalid_for_s": None if market.valid else round(market.invalid_for_s(now_s), 1),
        "last_error": market.last_error,
        "last_update_age_ms": None if age_ms is None else round(age_ms, 1),
        "best_bid": finite(book.best_bid),
        "best_ask": finite(book.best_ask),
        "bid_volume": finite(book.bid_volume),
        "ask_volume": finite(book.ask_volume),
        "size_unit": market.size_unit,
        "ratio": finite(book.ratio),
        "danger_ratio": finite(market.detector.danger_ratio),
        "state": market.state(),  # on the market's own local clock
        "alerts": int(market.detector.alerts),
        "last_alert": alert_json(market.last_alert),
        "messages": int(market.messages),
        "messages_per_s": round(rate, 3),
        "resyncs": int(market.resyncs),
        "reconnects": int(market.reconnects),
        "rejected": int(market.rejected),
        # Counters other parts add to Market as they land (the clock-skew guard,
        # checksum verification): 0 until then.
        "clock_skew": market.clock_skew,
        "checksum_mismatches": market.checksum_mismatches,
        "crossed": market.crossed,
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
        "fallback": fallback_status(monitor),
        "books": [book_status(m, rates, now_s) for m in monitor.markets],
    }


def iso_utc_or_none(ms: int | None) -> str | None:
    return None if ms is None else iso_utc(ms)


def fallback_status(monitor: MonitorLike) -> list[dict[str, Any]]:
    """Venues shown on simulated data because they could not be reached (MOCK_FALLBACK)."""
    get = getattr(monitor, "fallback_status", None)
    return list(get()) if callable(get) else []


def fresh(market: Market, stale_after_s: float, now_s: float) -> bool:
    """A valid book updated within the stale window."""
    return (
        market.valid
        and market.last_update_monotonic is not None
        and now_s - market.last_update_monotonic <= stale_after_s
    )


def invalid_books(markets: list[Market], stale_after_s: float, now_s: float) -> list[Market]:
    """Books invalid for longer than DEGRADED_AFTER_STALE x stale_after_s (what /health names)."""
    limit_s = stale_after_s * DEGRADED_AFTER_STALE
    return [m for m in markets if not m.valid and m.invalid_for_s(now_s) > limit_s]


def book_problem(market: Market, now_s: float) -> dict[str, Any]:
    reason = market.invalid_reason or market.last_error or "invalid"
    invalid_for_s = round(market.invalid_for_s(now_s), 1)
    return {
        "kind": "book_invalid",
        "exchange": market.exchange,
        "symbol": market.symbol,
        "source": market.source,
        "reason": reason,
        "invalid_since": iso_utc_or_none(market.invalid_since_ms),
        "invalid_for_s": invalid_for_s,
        "message": f"{market.exchange} {market.symbol}: book invalid for {invalid_for_s:.0f} s ({reason})",
    }


def monitor_problems(monitor: MonitorLike) -> list[dict[str, Any]]:
    """The monitor's own problems (its optional `health_problems()`), never raising."""
    get = getattr(monitor, "health_problems", None)
    if not callable(get):
        return []
    try:
        return list(get())
    except Exception as exc:  # /health must answer even when a check is broken
        log.exception("health_problems() failed")
        return [{"kind": "health_check_failed", "message": f"a health check failed: {type(exc).__name__}"}]


def alert_problems(manager: Any) -> list[dict[str, Any]]:
    """The alert pipeline's problems: the store's (alerts are still delivered from
    memory: degraded) and delivery's own (alerts cannot be delivered: `fatal`, 503)."""
    if manager is None:
        return []
    out: list[dict[str, Any]] = []
    for kind, method, fatal in (("alert_store", "store_problem", False), ("alert_delivery", "delivery_problem", True)):
        get = getattr(manager, method, None)
        if not callable(get):
            continue
        try:
            message = get()
        except Exception as exc:  # /health must answer even when a check is broken
            log.exception("%s() failed", method)
            message = f"a health check failed: {type(exc).__name__}"
        if isinstance(message, str):
            out.append({"kind": kind, "message": message, **({"fatal": True} if fatal else {})})
    return out


def health(monitor: MonitorLike, *, strict: bool = False) -> tuple[int, dict[str, Any]]:
    """(http_status, body) for /health.

    200 while any book is valid and fresh and alerts can be delivered ("ok",
    or "degraded" with the problems named and joined in `reason`); 503 when
    no book is ("unavailable") or delivery itself is impossible, and with
    `strict` also while degraded.
    """
    now_s = time.monotonic()
    markets = monitor.markets
    ok = sum(1 for m in markets if fresh(m, monitor.stale_after_s, now_s))
    blind = invalid_books(markets, monitor.stale_after_s, now_s)
    problems = ([book_problem(m, now_s) for m in blind] + monitor_problems(monitor)
                + alert_problems(getattr(monitor, "alert_manager", None)))
    fatal = [p["message"] for p in problems if p.get("fatal")]
    body: dict[str, Any] = {
        "books_ok": ok,
        "books_total": len(markets),
        "books_invalid": len(blind),
        "uptime_s": round(max(0.0, now_s - monitor.started_monotonic), 3),
        "mode": monitor.mode,
        "strict": strict,
        "problems": problems,
    }
    if ok and not fatal:
        if problems:
            reason = "; ".join(str(p.get("message", p.get("kind"))) for p in problems)
            return (503 if strict else 200), {"status": "degraded", "reason": reason, **body}
        return 200, {"status": "ok", **body}
    if fatal:
        reason = "; ".join(fatal)
    elif not markets:
        reason = "no markets configured"
    elif not any(m.valid for m in markets):
        reason = "no order book is in sync yet (waiting for snapshot or resyncing)"
    else:
        reason = f"no valid order book updated in the last {monitor.stale_after_s:g} s (feed stalled)"
    return 503, {"status": "unavailable", "reason": reason, **body}
