"""Live frame source: runs sans-I/O feed handlers against real venues.

`LiveRunner` opens every `ConnectionSpec` of every handler through
`sentrycoin.transport.Connection` and executes the actions handlers queue:

* `Send`       -> a text frame on that handler's connection `conn_id`;
* `FetchSnapshot` -> GET through one shared aiohttp session (timeout,
  retries with backoff), body handed to `on_snapshot`;
* `Reconnect`  -> close and reopen that connection (`make_before_break`:
  open the replacement first, see `Connection.switch_over`).

Venue budgets (sentrycoin.ratelimit):

* REST weight (Binance): a handler with `rest_weight_limit` / `snapshot_weight`
  has its snapshot requests paced per REST host on a `WeightBudget` fed by the
  `X-MBX-USED-WEIGHT-1M` each response reports, keeping a margin
  (`weight_margin`) for other clients behind the IP.  Requests to such a host
  go one at a time, so a 429 stops every later request: after a `429` no
  request reaches that host until `Retry-After` passes; a `418` is an IP ban,
  held for max(`Retry-After`, `ban_backoff_s` doubled per repeat), logged once,
  and written into the waiting markets' `invalid_reason` / `last_error`
  ("Binance IP ban (418) until HH:MM:SS UTC") so /status shows it.  Other
  venues keep a minimum spacing between snapshot requests.
* Client messages: Binance 5/s (spot) and 10/s (futures) per connection,
  Coinbase 8/s per IP (one bucket shared by every Coinbase connection).
* New connections: OKX 3 per second per IP (one bucket per WebSocket host).

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
import logging
import random
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp

from sentrycoin.feeds.base import FeedHandler, FetchSnapshot, Reconnect, Send
from sentrycoin.feeds.recovery import RecoveryPolicy
from sentrycoin.ratelimit import TokenBucket, WeightBudget, parse_retry_after
from sentrycoin.transport import Backoff, Connection, TransportSettings

log = logging.getLogger("sentrycoin.live")

#: Seconds between two snapshot requests to the same venue, for venues
#: without a weight budget (Binance is paced on its reported weight instead).
DEFAULT_SNAPSHOT_SPACING_S: dict[str, float] = {
    # OKX market/books: 40 requests per 2 s per IP, shared by okx and okx-swap.
    "okx": 0.12,
    "okx-swap": 0.12,
}
FALLBACK_SNAPSHOT_SPACING_S = 0.2
#: Client frames the venue accepts per second, and whether it counts them per
#: connection or per IP (Binance closes a connection that sends more than
#: 5 (spot) / 10 (futures) a second; Coinbase allows 8 per IP).
DEFAULT_SEND_BUDGETS: dict[str, tuple[str, float]] = {
    "binance": ("connection", 5.0),
    "binance-futures": ("connection", 10.0),
    "coinbase": ("ip", 8.0),
}
#: New WebSocket connections per second per IP (per WebSocket host).
DEFAULT_CONNECT_BUDGETS: dict[str, float] = {
    "okx": 3.0,
    "okx-swap": 3.0,
}
#: The REST weight headers Binance sends (spot and USD-M).
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


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
        weight_margin: float = 0.2,
        weight_limits: Mapping[str, tuple[int, float]] | None = None,
        ban_backoff_s: float = 120.0,
        ban_backoff_max_s: float = 6 * 3600.0,
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
        # Weight-metered REST hosts: budget, one request at a time, ban state.
        self.weight_margin = weight_margin
        # venue -> (weight, window_s) replacing the handler's `rest_weight_limit` (tests shrink it).
        self.weight_limits = dict(weight_limits or {})
        self.ban_backoff_s = ban_backoff_s
        self.ban_backoff_max_s = ban_backoff_max_s
        self.weight_budgets: dict[str, WeightBudget] = {}
        self._host_locks: dict[str, asyncio.Lock] = {}
        self._bans: dict[str, int] = {}  # host -> consecutive 418s
        self._send_buckets: dict[str, TokenBucket] = {}
        self._connect_buckets: dict[str, TokenBucket] = {}
        self.rate_limited = 0  # 429 answers
        self.bans = 0  # 418 answers
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
        for spec in handler.connections():
            conn = Connection(
                spec, handler,
                settings=settings,
                drain=self.drain,
                rng=random.Random(self._rng.random()),
                send_bucket=self._send_bucket(handler.venue, spec.url),
                connect_bucket=self._connect_bucket(handler.venue, spec.url),
            )
            self.connections[(id(handler), spec.conn_id)] = conn
            conn.start()

    def _send_bucket(self, venue: str, url: str) -> TokenBucket | None:
        """The venue's message budget: per IP (shared), per connection (new), or the setting."""
        budget = DEFAULT_SEND_BUDGETS.get(venue)
        if self.transport_settings.max_sends_per_s or budget is None:
            return None  # the connection builds its own from TransportSettings.max_sends_per_s
        scope, per_s = budget
        if scope == "connection":
            return TokenBucket.at_most(per_s, 1.0)
        key = f"{venue} {host_of(url)}"
        bucket = self._send_buckets.get(key)
        if bucket is None:
            bucket = self._send_buckets[key] = TokenBucket.at_most(per_s, 1.0)
        return bucket

    def _connect_bucket(self, venue: str, url: str) -> TokenBucket | None:
        per_s = DEFAULT_CONNECT_BUDGETS.get(venue)
        if per_s is None:
            return None
        key = host_of(url)  # okx and okx-swap share ws.okx.com, and its budget
        bucket = self._connect_buckets.get(key)
        if bucket is None:
            bucket = self._connect_buckets[key] = TokenBucket.at_most(per_s, 1.0, burst=1.0)
        return bucket

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
                    if action.make_before_break:
                        conn.switch_over(action.reason)
                    else:
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

    async def _wait_turn(self, venue: str, default_s: float = FALLBACK_SNAPSHOT_SPACING_S) -> None:
        spacing = self.snapshot_spacing_s.get(venue, default_s)
        now = time.monotonic()
        slot = max(now, self._next_request_at.get(venue, 0.0))
        self._next_request_at[venue] = slot + spacing
        if slot > now:
            await asyncio.sleep(slot - now)

    def _weight_budget(self, handler: FeedHandler, url: str) -> tuple[str, WeightBudget] | None:
        limit = getattr(handler, "rest_weight_limit", None)
        if limit is None:
            return None
        host = host_of(url)
        budget = self.weight_budgets.get(host)
        if budget is None:
            weight, window_s = self.weight_limits.get(handler.venue, limit)
            budget = self.weight_budgets[host] = WeightBudget(weight, window_s, self.weight_margin)
            self._host_locks[host] = asyncio.Lock()
        return host, budget

    async def _fetch(self, handler: FeedHandler, action: FetchSnapshot) -> None:
        backoff = Backoff(self.snapshot_retry_initial_s, self.snapshot_retry_max_s, 2.0, 0.5,
                          random.Random(self._rng.random()))
        session = self._session
        assert session is not None
        metered = self._weight_budget(handler, action.url)
        while self._started:
            if metered is None:
                await self._wait_turn(handler.venue)
                outcome = await self._request(handler, action, session, None)
            else:
                host, budget = metered
                # One request at a time per metered host: a 429 then stops every later one.
                async with self._host_locks[host]:
                    await self._wait_turn(handler.venue, 0.0)  # the weight paces these
                    weight = handler.snapshot_weight(action)  # type: ignore[attr-defined]
                    while True:
                        wait_s = budget.wait_s(weight)
                        if wait_s <= 0 or not self._started:
                            break
                        await asyncio.sleep(wait_s)
                    budget.spend(weight)
                    outcome = await self._request(handler, action, session, (host, budget))
            if outcome is None:
                return  # answered
            self.snapshot_failures += 1
            delay = outcome if outcome > 0 else backoff.next_delay()
            await asyncio.sleep(delay)

    async def _request(self, handler: FeedHandler, action: FetchSnapshot, session: aiohttp.ClientSession,
                       metered: tuple[str, WeightBudget] | None) -> float | None:
        """One GET.  None: answered and handed over; else the delay before retrying (0: backoff)."""
        try:
            async with session.get(action.url) as resp:
                body = await resp.read()
                if metered is not None:
                    self._observe_weight(metered[1], resp.headers.get(USED_WEIGHT_HEADER))
                if resp.status == 200:
                    self._answered(handler, action, body)
                    if metered is not None:
                        self._bans.pop(metered[0], None)
                    return None
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if metered is not None and resp.status in (418, 429):
                    self._limited(handler, metered[0], metered[1], resp.status, retry_after)
                    return 0.0 if resp.status == 429 else 0.001  # the budget holds the wait
                log.warning("%s %s: snapshot HTTP %d: %.200r", handler.venue, action.symbol,
                            resp.status, body)
                return retry_after or 0.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # timeout, refused, reset
            log.warning("%s %s: snapshot request failed: %s: %s", handler.venue, action.symbol,
                        type(exc).__name__, exc)
            return 0.0

    @staticmethod
    def _observe_weight(budget: WeightBudget, header: str | None) -> None:
        if header is None:
            return
        try:
            budget.observe(int(header))
        except ValueError:
            log.warning("unreadable %s header %r", USED_WEIGHT_HEADER, header[:40])

    def _limited(self, handler: FeedHandler, host: str, budget: WeightBudget, status: int,
                 retry_after_s: float | None) -> None:
        """429: hold every request to `host` for Retry-After.  418: an IP ban, held longer."""
        if status == 429:
            self.rate_limited += 1
            wait_s = retry_after_s if retry_after_s is not None else budget.window_s
            budget.block_for(wait_s)
            self._hold_recovery(host, budget.blocked_until)
            log.warning("%s: HTTP 429 from %s (weight %d/%d used): no request for %.1fs",
                        handler.venue, host, budget.used, budget.limit, wait_s)
            return
        self.bans += 1
        already_banned = budget.blocked_until > time.monotonic()
        repeats = self._bans.get(host, 0)
        self._bans[host] = repeats + 1
        backoff_s = min(self.ban_backoff_max_s, self.ban_backoff_s * 2 ** min(repeats, 32))
        wait_s = max(retry_after_s or 0.0, backoff_s)
        budget.block_for(wait_s)
        self._hold_recovery(host, budget.blocked_until)
        until = datetime.fromtimestamp(time.time() + wait_s, UTC).strftime("%H:%M:%S UTC")
        reason = f"Binance IP ban (418) until {until}"
        if not already_banned:
            log.error("%s: %s from %s: no snapshot request to it before then", handler.venue, reason, host)
        # Every book that waits on this host's snapshots says why in /status.
        for other in self._handlers_of_host(host):
            for market in other.markets.values():
                if not market.valid:
                    market.invalidate(reason)

    def _hold_recovery(self, host: str, until_monotonic: float) -> None:
        """Books waiting on `host`'s snapshots are not failing while we may not ask it."""
        for other in self._handlers_of_host(host):
            other.recovery_held_until = max(other.recovery_held_until, until_monotonic)

    def _handlers_of_host(self, host: str) -> list[FeedHandler]:
        """The handlers whose REST snapshots come from `host`."""
        return [h for h in self.handlers if h.rest_url and host_of(h.rest_url) == host]

    def _answered(self, handler: FeedHandler, action: FetchSnapshot, body: bytes) -> None:
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
            "rate_limited": self.rate_limited,
            "bans": self.bans,
            "rest_weight": {host: {"used": b.used, "limit": b.limit,
                                   "blocked_for_s": round(max(0.0, b.blocked_until - time.monotonic()), 3)}
                            for host, b in self.weight_budgets.items()},
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
