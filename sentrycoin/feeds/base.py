"""The contract between frame sources and venue protocol handlers.

A `FeedHandler` is sans-I/O: it never opens a socket.  It is told what
arrived (`on_frame`, `on_snapshot`, `on_connected`, `on_disconnected`) and
answers by mutating its markets' books and by queueing `Action`s (send a
frame, fetch a REST snapshot, reconnect) that the frame source carries out.
The same handler therefore runs unchanged behind the live transport
(`sentrycoin.transport`), the simulated market (`sentrycoin.sim`) and replay
(`sentrycoin.research.replay`): only the source of frames differs.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sentrycoin.feeds.recovery import BookRecovery, RecoveryPolicy
from sentrycoin.market import FULL_DEPTH_START_LEVELS, BookCapacity, Market

# Re-exported: handlers, the monitor and tests take FeedCounters from here.  It
# has C fields, so the Cython Binance frame path counts without Python writes.
from sentrycore.counters import FeedCounters as FeedCounters

log = logging.getLogger("sentrycoin.feeds")


@dataclass(slots=True)
class ConnectionSpec:
    """One WebSocket connection the handler wants open."""

    conn_id: int
    url: str
    symbols: list[str]  # normal form BASE-QUOTE
    # Application-level keepalive: payload to send every ping_interval_s (None: none needed).
    ping_payload: bytes | str | None = None
    ping_interval_s: float | None = None
    # Planned reconnect before the venue's forced disconnect (None: never).
    max_lifetime_s: float | None = None


@dataclass(slots=True, frozen=True)
class Send:
    conn_id: int
    payload: bytes | str


@dataclass(slots=True, frozen=True)
class FetchSnapshot:
    """GET `url`; hand the body to `on_snapshot(symbol, body, recv_ms)`."""

    symbol: str
    url: str


@dataclass(slots=True, frozen=True)
class Reconnect:
    conn_id: int
    reason: str
    # Open the replacement socket first, call `on_switched(conn_id)`, close the
    # old one after an overlap (Binance serverShutdown): no gap in the books.
    make_before_break: bool = False


Action = Send | FetchSnapshot | Reconnect


class FeedHandler:
    """Base class; one subclass per venue in sentrycoin/feeds/<venue>.py."""

    #: Venue name as used on the command line, in config and in /status.
    venue: ClassVar[str] = ""

    @classmethod
    def book_levels(cls, depth: int) -> int:
        """Levels per side this venue sends for a detector depth of `depth`: the
        depth it publishes (Bybit, OKX, Kraken), or, for a full-depth feed
        (Binance, Coinbase), the size of a typical snapshot."""
        return max(depth, FULL_DEPTH_START_LEVELS)

    @classmethod
    def book_capacity(cls, depth: int) -> BookCapacity:
        """Slots per side for this venue's books (`BookCapacity.for_levels` of
        `book_levels`).  Whoever builds a venue's markets passes this (see
        `registry.book_capacity`): a bounded venue's books then do not grow in
        normal traffic; a full-depth one's grow (amortised, rarely) into the
        levels its diffs add beyond the snapshot."""
        return BookCapacity.for_levels(cls.book_levels(depth), depth)

    def __init__(self, markets: list[Market], ws_url: str, rest_url: str | None = None) -> None:
        self.markets: dict[str, Market] = {m.symbol: m for m in markets}
        self.ws_url = ws_url
        self.rest_url = rest_url
        self.counters = FeedCounters()
        # One spec per connection the handler wants; filled by the subclass.
        self._specs: list[ConnectionSpec] = []
        self.actions: list[Action] = []
        self._log_throttle = LogThrottle()
        # Book recovery (sentrycoin.feeds.recovery): the frame source may replace the policy.
        self.recovery_policy = RecoveryPolicy()
        self._recovery: dict[str, BookRecovery] = {}
        self._recovery_rng = random.Random()
        self.snapshot_timeouts = 0  # requests that produced no valid book in time
        # Until this monotonic time the frame source itself holds our requests back (a
        # venue's 429 / 418 on its REST host): waiting then is not a failed request.
        self.recovery_held_until = 0.0
        self.recovery_reconnects = 0  # connections reopened because books would not heal
        self._conn_by_symbol: dict[str, int] = {}  # filled from connections() on first use

    # -- what the source asks ---------------------------------------------

    def connections(self) -> list[ConnectionSpec]:
        return self._specs

    def take_actions(self) -> list[Action]:
        actions, self.actions = self.actions, []
        return actions

    # -- what the source tells --------------------------------------------

    def on_connected(self, conn_id: int) -> None:
        """The connection is open: queue the subscribe frames."""
        raise NotImplementedError

    def on_disconnected(self, conn_id: int) -> None:
        """The connection dropped: its books can no longer be trusted."""
        for spec in self.connections():
            if spec.conn_id == conn_id:
                for symbol in spec.symbols:
                    market = self.markets[symbol]
                    market.connected = False
                    market.invalidate("disconnected")

    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        raise NotImplementedError

    def on_snapshot(self, symbol: str, body: bytes, recv_ms: int) -> None:
        raise NotImplementedError(f"{self.venue} takes no REST snapshots")

    def request_books(self, conn_id: int, symbols: list[str]) -> None:
        """Venue-specific: forget these books' sync state and queue what makes the
        venue send them afresh (a resubscribe, a REST snapshot).  Called for books
        that are already invalid, on connection `conn_id`."""
        raise NotImplementedError

    # -- book recovery (sentrycoin.feeds.recovery) ---------------------------

    def fail_book(self, symbol: str, reason: str, now: float | None = None) -> None:
        """The book of `symbol` is out of sync: count it, invalidate it, and schedule
        its re-request (at once after a healthy spell, else after a backoff).

        The venue code has already reset its own sync state for the symbol, so no
        message is applied as if in sync until the new snapshot lands."""
        self.fail_books([symbol], reason, now)

    def fail_books(self, symbols: list[str], reason: str, now: float | None = None) -> None:
        """`fail_book` for several books; those due at once share one `request_books` per connection."""
        now = time.monotonic() if now is None else now
        policy = self.recovery_policy
        due: dict[int, list[str]] = {}
        for symbol in symbols:
            market = self.markets[symbol]
            self.reject(market, reason)
            if not market.connected:
                continue  # the connection's reconnect re-requests every book on it
            rec = self._book_recovery(symbol)
            if rec.retry_at is not None:
                continue  # already due at a set time: one request is enough
            delay = rec.failure_delay(policy, now)
            if delay <= 0.0:
                rec.deadline = now + policy.snapshot_timeout_s
                due.setdefault(self.conn_id_of(symbol), []).append(symbol)
            else:
                rec.retry_at = now + delay
                rec.deadline = None
                self._log_throttle.log(log, logging.INFO, "retry:" + symbol, "%s %s: %s; asking again in %.1fs",
                                       self.venue, symbol, reason, delay)
        for conn_id, due_symbols in due.items():
            self.request_books(conn_id, due_symbols)

    def tick(self, now: float) -> None:
        """Drive recovery; the frame source calls this about once a second.

        Every invalid book on an open connection ends this call with a
        re-request due (`retry_at`) or a deadline for the one in flight."""
        policy = self.recovery_policy
        due: dict[int, list[str]] = {}
        reconnect: dict[int, str] = {}
        for symbol, market in self.markets.items():
            rec = self._recovery.get(symbol)
            if market.valid:
                if rec is not None:
                    rec.retry_at = rec.deadline = None
                    rec.failed_requests = 0
                continue
            if market.invalid_reason is None:
                # The core stopped trusting a book the handler thinks is in sync
                # (a crossed book after a whole message): resync it like any failure.
                self.fail_book(symbol, "crossed book", now)
                continue
            if not market.connected:
                if rec is not None:
                    rec.retry_at = rec.deadline = None
                continue
            if rec is None:
                rec = self._book_recovery(symbol)
            if now < self.recovery_held_until:
                # The source's hold is the scheduled step (its reason is the book's
                # invalid_reason); the snapshot clock starts again when it ends.
                rec.deadline = None
                continue
            if rec.retry_at is not None:
                if now >= rec.retry_at:
                    rec.retry_at = None
                    rec.deadline = now + policy.snapshot_timeout_s
                    due.setdefault(self.conn_id_of(symbol), []).append(symbol)
                continue
            if rec.deadline is None:
                # A request is in flight that nobody timed (the subscribe on connect).
                rec.deadline = now + policy.snapshot_timeout_s
                continue
            if now < rec.deadline:
                continue
            rec.deadline = None
            rec.failed_requests += 1
            self.snapshot_timeouts += 1
            market.invalidate("snapshot timeout")
            conn_id = self.conn_id_of(symbol)
            if rec.failed_requests >= policy.reconnect_after:
                rec.failed_requests = 0
                reconnect[conn_id] = f"{symbol}: no valid book after {policy.reconnect_after} requests"
            else:
                rec.last_failure_at = now
                rec.retry_at = now + rec.backoff.next_delay()
                self._log_throttle.log(log, logging.WARNING, "timeout:" + symbol,
                                       "%s %s: no valid book %.0fs after asking; asking again",
                                       self.venue, symbol, policy.snapshot_timeout_s)
        for conn_id, symbols in due.items():
            if conn_id not in reconnect:
                self.request_books(conn_id, symbols)
        for conn_id, why in reconnect.items():
            log.warning("%s conn %s: reconnecting (%s)", self.venue, conn_id, why)
            self.recovery_reconnects += 1
            self.actions.append(Reconnect(conn_id, why))

    def recovery_due(self, symbol: str) -> float | None:
        """Monotonic time of the book's next recovery step (None: valid, or its connection
        is down and the transport's reconnect is the step)."""
        rec = self._recovery.get(symbol)
        if rec is None:
            return None
        return rec.retry_at if rec.retry_at is not None else rec.deadline

    def _book_recovery(self, symbol: str) -> BookRecovery:
        rec = self._recovery.get(symbol)
        if rec is None:
            rec = self._recovery[symbol] = BookRecovery(self.recovery_policy, self._recovery_rng)
        return rec

    def conn_id_of(self, symbol: str) -> int:
        if symbol not in self._conn_by_symbol:
            # Subclasses build their connection specs after this __init__: map lazily.
            self._conn_by_symbol = {s: spec.conn_id for spec in self.connections() for s in spec.symbols}
        return self._conn_by_symbol[symbol]

    # -- shared helpers for subclasses --------------------------------------

    def decode_error(self, what: str, data: bytes | str, exc: object = None) -> None:
        """Count a frame we could not understand and log it (throttled, truncated)."""
        self.counters.decode_errors += 1
        throttle = getattr(self, "_log_throttle", None)
        if throttle is None:  # a subclass that skipped FeedHandler.__init__
            throttle = self._log_throttle = LogThrottle()
        if isinstance(data, (bytes, bytearray, memoryview)):
            head: object = bytes(data[:160])
        else:
            head = str(data)[:160]
        throttle.log(log, logging.WARNING, "decode:" + what, "%s: undecodable %s (%s): %r",
                     self.venue, what, exc, head)

    def reject(self, market: Market, reason: str) -> None:
        """A message the book cannot take: count it and invalidate (no alerts) until resynced."""
        market.rejected += 1
        market.invalidate(reason)

    def mark_connected(self, conn_id: int) -> list[str]:
        """Mark the connection's markets connected; returns its symbols ([] if unknown)."""
        for spec in self.connections():
            if spec.conn_id == conn_id:
                for symbol in spec.symbols:
                    self.markets[symbol].connected = True
                return list(spec.symbols)
        return []


# -- helpers shared by the venue handlers ------------------------------------

_INF = math.inf

#: (price, qty) pairs as msgspec decodes them: `list[tuple[float, float]]` with strict=False.
Levels = list


class LogThrottle:
    """At most one log line per `interval_s` per key; counts what it held back.

    A garbage flood (thousands of bad frames a second) must not become a log
    flood, yet the first occurrence is always logged at once.
    """

    __slots__ = ("interval_s", "_last", "_held")

    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, logger: logging.Logger, level: int, key: str, msg: str, *args: object) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        self._last[key] = now
        if held:
            logger.log(level, msg + " (%d similar suppressed)", *args, held)
        else:
            logger.log(level, msg, *args)
        return True


def levels_valid(levels: Levels) -> bool:
    """True when every (price, qty) is finite with price > 0 and qty >= 0."""
    for price, qty in levels:
        if not (0.0 < price < _INF and 0.0 <= qty < _INF):
            return False
    return True


def apply_levels(book: object, bids: Levels, asks: Levels) -> None:
    """Apply one message's levels with ONE `OrderBook.apply` call.

    Atomic: `apply` validates both sides before touching either, so a bad
    level raises ValueError and leaves the book unchanged.  One `np.array`
    call turns both sides into a (2, n) float64 array whose rows are
    contiguous: the fastest of the forms measured (fromiter, array module,
    per-side arrays, transposed copies).
    """
    nb = len(bids)
    if nb + len(asks) == 0:
        return
    arr = np.array(list(zip(*(bids + asks), strict=True)), np.float64)
    book.apply(arr[0, :nb], arr[1, :nb], arr[0, nb:], arr[1, nb:])  # type: ignore[attr-defined]


def load_levels(book: object, bids: Levels, asks: Levels) -> None:
    """Replace the book with a snapshot; ValueError (book unchanged) on bad levels."""
    bid_arr = np.array(bids, np.float64).reshape(-1, 2) if bids else np.empty((0, 2))
    ask_arr = np.array(asks, np.float64).reshape(-1, 2) if asks else np.empty((0, 2))
    book.load_snapshot(bid_arr, ask_arr)  # type: ignore[attr-defined]


def chunked(items: list, size: int) -> list[list]:
    """Split `items` into lists of at most `size` (venue per-connection / per-message limits)."""
    return [items[i:i + size] for i in range(0, len(items), size)]
