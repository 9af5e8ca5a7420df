"""Live frame source: runs sans-I/O feed handlers against real venues.

`LiveRunner` opens every `ConnectionSpec` of every handler through
`sentrycoin.transport.Connection` and executes the actions handlers queue:

* `Send`       -> a text frame on that handler's connection `conn_id`;
* `FetchSnapshot` -> GET through one shared aiohttp session (timeout, a
  minimum spacing between requests per venue because REST snapshots are
  weight-limited, retries with backoff), body handed to `on_snapshot`;
* `Reconnect`  -> close and reopen that connection.

It also drives book recovery: every `recovery_tick_s` each handler's `tick`
runs on the monotonic clock, so an invalid book always has its next step
(re-request, then reconnect) scheduled (sentrycoin.feeds.recovery).

Usage (what ``sentrycoin run`` does)::

    runner = LiveRunner([handler])
    await runner.run()          # until runner.stop() is awaited elsewhere

Handlers can be added (`add_handler`) and removed (`await remove_handler`)
while it runs: the monitor rebuilds a venue's handler when this replica's
market leases change (sentrycoin.ha).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from typing import Mapping, Sequence

import aiohttp

from sentrycoin.feeds.base import FeedHandler, FetchSnapshot, Reconnect, Send
from sentrycoin.feeds.recovery import RecoveryPolicy
from sentrycoin.transport import Backoff, Connection, TransportSettings

log = logging.getLogger("sentrycoin.live")

#: Seconds between two snapshot requests to the same venue.  Binance charges
#: 50-250 weight per depth snapshot out of 6000/min; the others are gentler.
DEFAULT_SNAPSHOT_SPACING_S: dict[str, float] = {
    "binance": 0.5,
    "binance-futures": 0.5,
}
FALLBACK_SNAPSHOT_SPACING_S = 0.2
#: Client frames per second per connection.  Binance closes connections that send
#: more than 5 (spot) / 10 (futures) messages a second; stay under with margin.
DEFAULT_MAX_SENDS_PER_S: dict[str, float] = {
    "binance": 4.0,
    "binance-futures": 8.0,
}


class LiveRunner:
    """Opens the handlers' connections and carries out their actions."""

    def __init__(
        self,
        handlers: Sequence[FeedHandler],
        *,
        transport: TransportSettings | None = None,
        snapshot_timeout_s: float = 10.0,
        snapshot_spacing_s: Mapping[str, float] | None = None,
        snapshot_retry_initial_s: float = 1.0,
        snapshot_retry_max_s: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
        recovery: RecoveryPolicy | None = None,
        recovery_tick_s: float = 0.5,
    ) -> None:
        self.handlers = list(handlers)
        self.recovery = recovery
        self.recovery_tick_s = recovery_tick_s
        self._ticker: asyncio.Task[None] | None = None
        self.transport_settings = transport or TransportSettings()
        self.snapshot_timeout_s = snapshot_timeout_s
        self.snapshot_spacing_s = dict(DEFAULT_SNAPSHOT_SPACING_S)
        if snapshot_spacing_s:
            self.snapshot_spacing_s.update(snapshot_spacing_s)
        self.snapshot_retry_initial_s = snapshot_retry_initial_s
        self.snapshot_retry_max_s = snapshot_retry_max_s
        self._rng = rng or random.Random()
        self._session = session
        self._own_session = session is None
        # (id(handler), conn_id) -> Connection
        self.connections: dict[tuple[int, int], Connection] = {}
        self._snapshot_tasks: dict[tuple[int, str], asyncio.Task[None]] = {}
        self._next_request_at: dict[str, float] = {}
        self._stopped = asyncio.Event()
        self._started = False
        self.snapshots_fetched = 0
        self.snapshot_failures = 0
        self.send_failures = 0

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Open every connection (returns at once; they connect in the background)."""
        if self._started:
            return
        self._started = True
        self._stopped.clear()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.snapshot_timeout_s),
            )
        for handler in self.handlers:
            self._open(handler)
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="book recovery")

    async def _tick_loop(self) -> None:
        while self._started:
            await asyncio.sleep(self.recovery_tick_s)
            now = time.monotonic()
            for handler in list(self.handlers):
                try:
                    handler.tick(now)
                except Exception:  # a bug of ours must not stop recovery for every venue
                    log.exception("%s: recovery tick failed", handler.venue)
                if handler.actions:
                    self.drain(handler)

    def _open(self, handler: FeedHandler) -> None:
        if self.recovery is not None:
            handler.recovery_policy = self.recovery
        settings = self.transport_settings
        rate = DEFAULT_MAX_SENDS_PER_S.get(handler.venue)
        if settings.max_sends_per_s is None and rate is not None:
            settings = dataclasses.replace(settings, max_sends_per_s=rate)
        for spec in handler.connections():
            conn = Connection(
                spec, handler,
                settings=settings,
                drain=self.drain,
                rng=random.Random(self._rng.random()),
            )
            self.connections[(id(handler), spec.conn_id)] = conn
            conn.start()

    def add_handler(self, handler: FeedHandler) -> None:
        """Watch `handler`'s markets too; its connections open now if the runner is running
        (else on `start()`).  Used when a replica acquires market leases (sentrycoin.ha)."""
        if any(h is handler for h in self.handlers):
            return
        self.handlers.append(handler)
        if self._started:
            self._open(handler)

    async def remove_handler(self, handler: FeedHandler) -> None:
        """Stop `handler`: cancel its snapshot requests and close its connections.

        Safe while running.  Once this returns nothing calls the handler any
        more, so its Market objects can be handed to a new handler.  The
        handler leaves `handlers` first: actions it queues while its sockets
        close (a resync after on_disconnected) are then dropped, not executed.
        """
        if not any(h is handler for h in self.handlers):
            return
        self.handlers = [h for h in self.handlers if h is not handler]
        hid = id(handler)
        tasks = [self._snapshot_tasks.pop(key) for key in [k for k in self._snapshot_tasks if k[0] == hid]]
        for task in tasks:
            task.cancel()
        conns = [self.connections.pop(key) for key in [k for k in self.connections if k[0] == hid]]
        await asyncio.gather(*tasks, *(c.stop() for c in conns), return_exceptions=True)
        handler.take_actions()  # whatever it queued while closing is moot

    async def run(self) -> None:
        """Start, then wait until `stop()`; always closes everything on exit."""
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self._close()

    async def stop(self) -> None:
        self._stopped.set()
        await self._close()

    async def _close(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        tasks = list(self._snapshot_tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._snapshot_tasks.clear()
        await asyncio.gather(*(c.stop() for c in self.connections.values()), return_exceptions=True)
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- actions ------------------------------------------------------------

    def drain(self, handler: FeedHandler) -> None:
        """Execute everything the handler queued.  Called synchronously after each callback."""
        for action in handler.take_actions():
            if isinstance(action, Send):
                conn = self.connections.get((id(handler), action.conn_id))
                if conn is None or not conn.send(action.payload):
                    self.send_failures += 1
            elif isinstance(action, FetchSnapshot):
                self._fetch_later(handler, action)
            elif isinstance(action, Reconnect):
                conn = self.connections.get((id(handler), action.conn_id))
                if conn is not None:
                    conn.counters.requested_reconnects += 1
                    conn.reconnect(action.reason)
            else:
                log.error("%s queued an unknown action %r", handler.venue, action)

    def _fetch_later(self, handler: FeedHandler, action: FetchSnapshot) -> None:
        if not self._started or not any(h is handler for h in self.handlers):
            return  # stopped, or a removed handler closing its sockets
        key = (id(handler), action.symbol)
        running = self._snapshot_tasks.get(key)
        if running is not None and not running.done():
            # One request in flight per symbol is enough: its answer is at least as fresh.
            return
        task = asyncio.get_running_loop().create_task(
            self._fetch(handler, action), name=f"snapshot {handler.venue} {action.symbol}")
        self._snapshot_tasks[key] = task

    async def _wait_turn(self, venue: str) -> None:
        spacing = self.snapshot_spacing_s.get(venue, FALLBACK_SNAPSHOT_SPACING_S)
        now = time.monotonic()
        slot = max(now, self._next_request_at.get(venue, 0.0))
        self._next_request_at[venue] = slot + spacing
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _fetch(self, handler: FeedHandler, action: FetchSnapshot) -> None:
        backoff = Backoff(self.snapshot_retry_initial_s, self.snapshot_retry_max_s, 2.0, 0.5,
                          random.Random(self._rng.random()))
        session = self._session
        assert session is not None
        while self._started:
            await self._wait_turn(handler.venue)
            delay: float | None = None
            try:
                async with session.get(action.url) as resp:
                    body = await resp.read()
                    if resp.status == 200:
                        recv_ms = time.time_ns() // 1_000_000
                        self.snapshots_fetched += 1
                        # This request is answered: a FetchSnapshot the handler queues from
                        # on_snapshot (e.g. "too old, fetch again") must start a new one.
                        key = (id(handler), action.symbol)
                        if self._snapshot_tasks.get(key) is asyncio.current_task():
                            del self._snapshot_tasks[key]
                        try:
                            handler.on_snapshot(action.symbol, body, recv_ms)
                        except Exception:
                            log.exception("%s %s: handler failed on a snapshot", handler.venue, action.symbol)
                            market = handler.markets.get(action.symbol)
                            if market is not None:
                                market.invalidate("snapshot handler error")
                        self.drain(handler)
                        return
                    retry_after = resp.headers.get("Retry-After")
                    if retry_after is not None:
                        try:
                            delay = float(retry_after)
                        except ValueError:
                            delay = None
                    log.warning("%s %s: snapshot HTTP %d: %.200r", handler.venue, action.symbol,
                                resp.status, body)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # timeout, refused, reset
                log.warning("%s %s: snapshot request failed: %s: %s", handler.venue, action.symbol,
                            type(exc).__name__, exc)
            self.snapshot_failures += 1
            if delay is None:
                delay = backoff.next_delay()
            await asyncio.sleep(delay)

    # -- introspection -------------------------------------------------------

    def stats(self) -> dict[str, object]:
        per_conn = []
        for handler in self.handlers:
            for spec in handler.connections():
                conn = self.connections.get((id(handler), spec.conn_id))
                if conn is not None:
                    entry = conn.stats()
                    entry["venue"] = handler.venue
                    per_conn.append(entry)
        return {
            "connections": per_conn,
            "snapshots_fetched": self.snapshots_fetched,
            "snapshot_failures": self.snapshot_failures,
            "send_failures": self.send_failures,
            "feeds": {
                h.venue: {
                    "frames": h.counters.frames,
                    "bytes": h.counters.bytes,
                    "decode_errors": h.counters.decode_errors,
                    "ignored": h.counters.ignored,
                    "checksum_skipped": h.counters.checksum_skipped,
                    "markets": {
                        sym: {
                            "valid": m.valid, "connected": m.connected, "messages": m.messages,
                            "resyncs": m.resyncs, "reconnects": m.reconnects, "rejected": m.rejected,
                        }
                        for sym, m in h.markets.items()
                    },
                }
                for h in self.handlers
            },
        }
