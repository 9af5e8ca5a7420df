"""The dashboard's push channel: Server-Sent Events at GET /live.

One background ticker per app wakes every `tick_s` (0.5 s).  Each tick it

* samples message counts (for messages_per_s) and each book's ratio (for the
  sparklines; `history_s` worth is kept so a freshly opened page shows the
  last minutes at once),
* notices new alerts by comparing each market's `last_alert` with what it
  saw last tick (the detector sets it in `Market.after_message`, so an alert
  reaches the page by the same path it reaches the alert manager: nothing has
  to be wired for the dashboard), and
* if anyone is watching, builds ONE aggregated update, encodes it once, and
  hands the same bytes to every subscriber.

So the cost is per tick, never per message, and a browser gets at most two
small events a second however busy the feeds are.  SSE rather than a
WebSocket because the traffic is one-way, EventSource reconnects by itself,
and it goes through proxies as a plain HTTP response.

Events sent (each `data:` is a JSON object):

* ``snapshot`` (once, on connect): {"mode", "fallback", "version", "tick_ms", "history_ms", "books": [...],
  "history": {key: [[t_ms, ratio|null], ...]}, "alerts": [newest first]}
* ``update`` (every tick): {"t_ms", "uptime_s", "mode", "fallback", "books": [...], "alerts": [new ones]}
  ("mode" can change while the page is open: MOCK_FALLBACK switches venues to the
  simulator and back; "fallback" lists those venues, as /status does)
* ``outcomes`` (every ~15 s): {"alerts": [{exchange, symbol, event_ms, severity, outcome}], "summary": {...}}
  (also in the snapshot as "outcomes")

Each book entry is the /status book object plus "key" ("exchange|symbol"),
"bids"/"asks" (best `levels` [price, qty] pairs, best first) and "point"
([t_ms, ratio|null], the sparkline sample of this tick).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import msgspec
from aiohttp import web

from sentrycoin.market import AlertEvent, Market
from sentrycoin.server.protocols import MonitorLike
from sentrycoin.server.status import MessageRates, alert_json, book_status, fallback_status, finite

log = logging.getLogger("sentrycoin.server.live")

_encode = msgspec.json.Encoder().encode


def market_key(market: Market) -> str:
    return f"{market.exchange}|{market.symbol}"


def _levels(rows: Any) -> list[list[float]]:
    # bids(n)/asks(n) return an (n, 2) float64 array, best first.
    return [[float(p), float(q)] for p, q in rows.tolist()]


class LiveHub:
    """Aggregates monitor state every tick and fans it out to SSE subscribers."""

    def __init__(
        self,
        monitor: MonitorLike,
        *,
        tick_s: float = 0.5,
        history_s: float = 300.0,
        levels: int = 10,
        recent_alerts: int = 50,
        outcomes_every_s: float = 15.0,
    ) -> None:
        self.monitor = monitor
        self.tick_s = tick_s
        self.levels = levels
        self.rates = MessageRates(window_s=max(5.0, 4 * tick_s))
        self._history_len = max(2, int(history_s / tick_s))
        self._history: dict[str, deque[list[Any]]] = {}
        self._recent_alerts: deque[dict[str, Any]] = deque(maxlen=recent_alerts)
        # Per Market object: MOCK_FALLBACK swaps the object shown under a key, and the
        # live market's old last_alert coming back into view is history, not news.
        self._seen_alert: dict[int, AlertEvent | None] = {}
        self._subscribers: set[asyncio.Queue[bytes | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_books: list[dict[str, Any]] = []
        self.ticks = 0
        # Alert outcomes fill in over the 15 minutes after each alert: pushed
        # every `outcomes_every_s`, read from the store (not per tick).
        self._outcome_ticks = max(1, int(round(outcomes_every_s / tick_s)))
        self._outcome_task: asyncio.Task[None] | None = None
        self._last_outcomes: dict[str, Any] | None = None

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._seed_seen_alerts()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sentrycoin-live")

    async def stop(self) -> None:
        for queue in list(self._subscribers):
            self._offer(queue, None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._outcome_task is not None:
            self._outcome_task.cancel()
            await asyncio.gather(self._outcome_task, return_exceptions=True)
            self._outcome_task = None

    def _seed_seen_alerts(self) -> None:
        # Alerts raised before the server started are history, not news.
        for m in self.monitor.markets:
            self._seen_alert[id(m)] = m.last_alert
            if m.last_alert is not None:
                self._recent_alerts.appendleft(self._alert_entry(m.last_alert))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                self.tick()
            except Exception:  # a bug here must not kill the dashboard for good
                log.exception("live tick failed")
            next_at += self.tick_s
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (busy loop): skip, don't burst
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    # -- one tick ------------------------------------------------------------

    def tick(self) -> None:
        self.ticks += 1
        markets = self.monitor.markets
        now_s = time.monotonic()
        t_ms = int(time.time() * 1000)
        self.rates.sample(markets, now_s)
        new_alerts: list[dict[str, Any]] = []
        books: list[dict[str, Any]] = []
        watching = bool(self._subscribers)
        for m in markets:
            key = market_key(m)
            point = [t_ms, finite(m.book.ratio) if m.valid else None]
            hist = self._history.get(key)
            if hist is None:
                hist = self._history[key] = deque(maxlen=self._history_len)
            hist.append(point)
            if m.last_alert is not self._seen_alert.get(id(m)):
                self._seen_alert[id(m)] = m.last_alert
                if m.last_alert is not None:
                    entry = self._alert_entry(m.last_alert)
                    new_alerts.append(entry)
                    self._recent_alerts.appendleft(entry)
            if watching:
                books.append(self._book_entry(m, now_s, point))
        if watching:
            self._last_books = books
            payload = {
                "t_ms": t_ms,
                "uptime_s": round(now_s - self.monitor.started_monotonic, 1),
                "mode": self.monitor.mode,
                "fallback": fallback_status(self.monitor),
                "books": books,
                "alerts": new_alerts,
            }
            data = _sse("update", _encode(payload))
            for queue in list(self._subscribers):
                self._offer(queue, data)
            if self.ticks % self._outcome_ticks == 0 and (self._outcome_task is None or self._outcome_task.done()):
                # Read on the store's reader thread; pushed when it answers.
                self._outcome_task = asyncio.get_running_loop().create_task(self._push_outcomes())

    async def _push_outcomes(self) -> None:
        outcomes = await self.outcomes()
        if outcomes is not None:
            data = _sse("outcomes", _encode(outcomes))
            for queue in list(self._subscribers):
                self._offer(queue, data)

    async def outcomes(self) -> dict[str, Any] | None:
        """Recent alerts' price outcomes and the running summary, from the alert store
        (read on its reader thread, never on the loop)."""
        manager = getattr(self.monitor, "alert_manager", None)
        store = getattr(manager, "store", None) if manager is not None else None
        if store is None:
            return None
        limit = self._recent_alerts.maxlen or 50
        try:
            rows, summary = await store.read(lambda s: (s.recent(limit=limit), s.outcome_summary()))
        except Exception as exc:  # a busy or broken database must not break the push channel
            log.debug("reading alert outcomes failed: %s", type(exc).__name__)  # /health names store problems
            return None
        self._last_outcomes = {
            "alerts": [
                {k: r.get(k) for k in ("exchange", "symbol", "event_ms", "severity", "outcome")}
                for r in rows if r.get("outcome")
            ],
            "summary": summary,
        }
        return self._last_outcomes

    def _book_entry(self, m: Market, now_s: float, point: list[Any] | None = None) -> dict[str, Any]:
        entry = book_status(m, self.rates, now_s)
        entry["key"] = market_key(m)
        entry["bids"] = _levels(m.book.bids(self.levels))
        entry["asks"] = _levels(m.book.asks(self.levels))
        entry["point"] = point
        return entry

    @staticmethod
    def _alert_entry(event: AlertEvent) -> dict[str, Any]:
        entry = alert_json(event)
        assert entry is not None
        return entry

    def snapshot(self) -> dict[str, Any]:
        now_s = time.monotonic()
        return {
            "mode": self.monitor.mode,
            "fallback": fallback_status(self.monitor),
            "version": self.monitor.version,
            "tick_ms": int(self.tick_s * 1000),
            "history_ms": int(self._history_len * self.tick_s * 1000),
            "uptime_s": round(now_s - self.monitor.started_monotonic, 1),
            "books": [self._book_entry(m, now_s) for m in self.monitor.markets],
            "history": {k: list(v) for k, v in self._history.items()},
            "alerts": list(self._recent_alerts),
            "outcomes": self._last_outcomes,
        }

    # -- subscribers ----------------------------------------------------------

    @staticmethod
    def _offer(queue: asyncio.Queue[bytes | None], data: bytes | None) -> None:
        # A slow client loses its oldest pending update instead of growing memory.
        while True:
            try:
                queue.put_nowait(data)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def handle_sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: don't buffer the stream
            }
        )
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
        self._subscribers.add(queue)
        try:
            # Lost alerts between ticks show up in the log via the snapshot on reconnect.
            await self.outcomes()  # fresh for a (re)connecting page; the store's reader thread
            await response.write(b"retry: 2000\n\n" + _sse("snapshot", _encode(self.snapshot())))
            while True:
                data = await queue.get()
                if data is None:
                    break
                await response.write(data)
        except ConnectionResetError:  # the browser went away
            pass
        finally:
            self._subscribers.discard(queue)
        return response


def _sse(event: str, data: bytes) -> bytes:
    # JSON from msgspec never contains a raw newline, so one data: line suffices.
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
