"""Per-market state: one book, one detector, validity and counters.

A `Market` is what every frame source (live venue, simulated market, replay)
drives: the feed handler applies a decoded message to `market.book`, then
calls `market.after_message(event_ms)`, which runs the detector when the book
is valid and hands any alert to `on_alert` (never awaited: delivery happens
elsewhere).  The HTTP status, metrics and dashboard read these objects
directly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sentrycoin.alert_fields import AlertFields
from sentrycoin.feeds.venues import size_unit as venue_size_unit
from sentrycore import SEVERITY_NAMES, ImbalanceDetector, OrderBook
from sentrycore.marketcore import DEFAULT_CLOCK_SKEW_MS, MarketCore

log = logging.getLogger("sentrycoin.market")

#: Where a market's frames come from; shown in /status and in every alert.
SOURCES = ("live", "simulated", "replay")
#: The detector's inputs (SIGNAL): top-N volumes, or notional within the band.
SIGNALS = ("levels", "band")
#: At most one clock-skew warning per market per this many seconds.
CLOCK_SKEW_LOG_EVERY_S = 60.0


@dataclass(slots=True, frozen=True)
class DetectorSettings:
    danger_ratio: float = 2.5
    rearm_ratio: float | None = None  # None: 0.9 * danger_ratio
    min_persistence_ms: int = 0
    cooldown_s: float = 300.0
    critical_multiple: float = 2.0
    extreme_multiple: float = 4.0
    realert_on_escalation: bool = True
    min_volume: float = 0.0
    # An event time further than this from its receive time is counted in
    # Market.clock_skew (CLOCK_SKEW_S); timing never uses event times anyway.
    clock_skew_s: float = DEFAULT_CLOCK_SKEW_MS / 1000.0
    # What the detector's ratio compares (SIGNAL): "levels", the top-N
    # volumes, or "band", the notional within band_bps of the mid (BAND_BPS).
    signal: str = "levels"
    band_bps: float = 25.0

    @property
    def clock_skew_ms(self) -> int:
        return max(1, round(self.clock_skew_s * 1000.0))

    @property
    def book_band_bps(self) -> float:
        """The band the book keeps: band_bps for the band signal, else 0.0 (off, no cost)."""
        return self.band_bps if self.signal == "band" else 0.0

    def build(self) -> ImbalanceDetector:
        """The detector; ValueError (naming the field) on an out-of-range value."""
        if not 0.0 < self.clock_skew_s < math.inf:
            raise ValueError(f"clock_skew_s must be finite and > 0, got {self.clock_skew_s!r}")
        if self.signal not in SIGNALS:
            raise ValueError(f"signal must be one of {', '.join(SIGNALS)}, got {self.signal!r}")
        if not 0.0 < self.band_bps < 1e4:
            raise ValueError(f"band_bps must be > 0 and < 10000, got {self.band_bps!r}")
        return ImbalanceDetector(
            danger_ratio=self.danger_ratio,
            rearm_ratio=self.rearm_ratio,
            min_persistence_ms=self.min_persistence_ms,
            cooldown_s=self.cooldown_s,
            critical_multiple=self.critical_multiple,
            extreme_multiple=self.extreme_multiple,
            realert_on_escalation=self.realert_on_escalation,
            min_volume=self.min_volume,
        )


class AlertEvent(AlertFields, frozen=True, kw_only=True):
    """One detector decision, with the book's numbers at that instant (fields: AlertFields)."""

    size_unit: str = "coins"  # what bid_volume / ask_volume count: "coins" or "contracts" (okx-swap)

    @property
    def mid_price(self) -> float:
        return (self.best_bid + self.best_ask) / 2.0


AlertSink = Callable[[AlertEvent], None]


#: Slots per side a book may grow to: deeper levels are dropped (the book is
#: flagged truncated).  Far below the top-N any detector reads.
MAX_BOOK_CAPACITY = 5000
#: Levels per side of a typical full-depth snapshot (Binance's limit=1000),
#: where the books of venues that publish no bound start.
FULL_DEPTH_START_LEVELS = 1000
#: Spare slots over what the venue publishes, at least this many: a message
#: may add a level before it deletes the one it pushes out (Kraken truncates
#: only after a message).
BOOK_MARGIN_MIN = 16


@dataclass(slots=True, frozen=True)
class BookCapacity:
    """Slots per book side: `initial` allocated with the book, doubled on demand
    up to `maximum` (beyond it the deepest level is dropped and the book is
    flagged truncated).  Each venue's feed handler says what its books need
    (`FeedHandler.book_capacity`); 16 bytes per slot."""

    initial: int
    maximum: int

    @classmethod
    def for_levels(cls, levels: int, depth: int) -> BookCapacity:
        """For a venue that sends `levels` per side, read to detector depth
        `depth`: those levels plus a quarter (at least BOOK_MARGIN_MIN),
        growing on demand to MAX_BOOK_CAPACITY."""
        initial = max(depth, min(levels + max(BOOK_MARGIN_MIN, levels // 4), MAX_BOOK_CAPACITY))
        return cls(initial, max(initial, MAX_BOOK_CAPACITY))


def _drop_alert(event: AlertEvent) -> None:
    pass


class Market(MarketCore):
    """State of one (exchange, symbol) book.

    The per-message part (book, detector, `valid`, `messages`,
    `clock_skew`, `last_event_ms`, `last_update_monotonic`, `clock` and
    `after_message`) lives in the Cython base class, so a Cython feed path
    finishes a message without a Python call.  The detector runs on the
    local clock (`clock_ms()`: monotonic live, the source's `SourceClock`
    in replay and simulation), never on the venue's event times.

    `capacity`: a `BookCapacity` (initial and maximum slots; whoever builds a
    venue's markets passes its handler's, `registry.book_capacity`), an int
    (a fixed-size book of that many levels per side), or None: sized like a
    full-depth venue's (a typical snapshot, growing on demand).
    """

    __slots__ = (
        "exchange", "symbol", "source", "settings", "on_alert",
        "connected", "resyncs", "reconnects", "rejected",
        "last_alert", "invalid_reason", "created_monotonic",
        "invalid_since_ms", "invalid_since_monotonic", "last_error", "checksum_mismatches", "size_unit",
        "_skew_logged_monotonic",
    )

    def __init__(
        self,
        exchange: str,
        symbol: str,
        *,
        depth: int = 50,
        capacity: int | BookCapacity | None = None,
        settings: DetectorSettings | None = None,
        on_alert: AlertSink | None = None,
        source: str = "live",
        size_unit: str | None = None,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        self.exchange = exchange
        self.symbol = symbol
        self.source = source
        self.settings = settings or DetectorSettings()
        if capacity is None:
            capacity = BookCapacity.for_levels(max(depth, FULL_DEPTH_START_LEVELS), depth)
        elif isinstance(capacity, int):
            capacity = BookCapacity(capacity, capacity)  # a fixed-size book
        book = OrderBook(depth=depth, capacity=capacity.initial, max_capacity=capacity.maximum,
                         band_bps=self.settings.book_band_bps)
        MarketCore.__init__(self, book,
                            self.settings.build(), self.settings.clock_skew_ms,
                            band_signal=self.settings.signal == "band")
        self.on_alert: AlertSink = on_alert or _drop_alert
        self.connected = False
        self.resyncs = 0
        self.reconnects = 0
        self.rejected = 0  # messages refused (bad values, gaps, checksums)
        self.checksum_mismatches = 0  # the venue's checksum disagreed with our book
        self.last_alert: AlertEvent | None = None
        self.invalid_reason: str | None = "waiting for snapshot"
        self.created_monotonic = time.monotonic()
        # When the book last became invalid (wall ms for people, monotonic for
        # deciding); both None while it is valid.  A new book starts invalid.
        self.invalid_since_ms: int | None = time.time_ns() // 1_000_000
        self.invalid_since_monotonic: float | None = self.created_monotonic
        # Why the book last went invalid; kept after it heals, so /status can
        # say what happened (None until the first failure).
        self.last_error: str | None = None
        if size_unit is None:
            size_unit = venue_size_unit(exchange)
        # What the book's sizes count ("coins" of the base asset, or "contracts"):
        # bid_volume / ask_volume and MIN_VOLUME are in this unit.
        self.size_unit = size_unit
        self._skew_logged_monotonic: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.exchange, self.symbol)

    # -- driven by feed handlers ------------------------------------------

    def invalidate(self, reason: str) -> None:
        """The book may be out of sync: stop alerting until a fresh snapshot."""
        # Valid, or just dropped by the core (a crossed book: no reason set yet).
        if self.valid or self.invalid_reason is None:
            self.resyncs += 1
            log.warning("%s %s: book invalid (%s), resyncing", self.exchange, self.symbol, reason)
        if self.valid or self.invalid_since_monotonic is None:
            self.invalid_since_ms = time.time_ns() // 1_000_000
            self.invalid_since_monotonic = time.monotonic()
        self.valid = False
        self.invalid_reason = reason
        self.last_error = reason
        self.detector.reset_signal()

    def mark_valid(self) -> None:
        if not self.valid:
            log.info("%s %s: book in sync", self.exchange, self.symbol)
        self.valid = True
        self.invalid_reason = None
        self.invalid_since_ms = None
        self.invalid_since_monotonic = None

    def _on_clock_skew(self, event_ms: int, recv_ms: int) -> None:
        # Called from C only when a run of skewed events starts; a clock that
        # keeps flapping is still logged at most once a minute per market.
        now = time.monotonic()
        if self._skew_logged_monotonic is not None and now - self._skew_logged_monotonic < CLOCK_SKEW_LOG_EVERY_S:
            return
        self._skew_logged_monotonic = now
        log.warning("%s %s: event time %+.3f s from receive time (CLOCK_SKEW_S %.3g s): counted in clock_skew "
                    "(%d so far), never used for timing", self.exchange, self.symbol, (event_ms - recv_ms) / 1000.0,
                    self.clock_skew_ms / 1000.0, self.clock_skew)

    def invalid_for_s(self, now_monotonic: float | None = None) -> float:
        """Seconds this book has been invalid (0.0 while valid)."""
        since = self.invalid_since_monotonic
        if self.valid or since is None:
            return 0.0
        return (time.monotonic() if now_monotonic is None else now_monotonic) - since

    def _emit(self, severity: int, event_ms: int) -> None:
        book = self.book
        ratio = book.ratio
        if self.band_signal:
            # The ratio the detector fired on (band notionals), not the top-N one.
            bid_notional, ask_notional = book.band_bid_notional, book.band_ask_notional
            ratio = ask_notional / bid_notional if bid_notional > 0.0 else (math.inf if ask_notional > 0.0 else math.nan)
        event = AlertEvent(
            exchange=self.exchange,
            symbol=self.symbol,
            source=self.source,
            severity=SEVERITY_NAMES[severity],
            ratio=ratio,
            danger_ratio=self.detector.danger_ratio,
            bid_volume=book.bid_volume,
            ask_volume=book.ask_volume,
            best_bid=book.best_bid,
            best_ask=book.best_ask,
            depth=book.depth,
            event_ms=event_ms,
            size_unit=self.size_unit,
        )
        self.last_alert = event
        self.on_alert(event)

    # -- read by status / metrics -----------------------------------------

    def state(self, now_ms: int | None = None) -> str:
        """armed | alerting | cooldown, at `now_ms` on the detector's clock
        (default: now, `clock_ms()`; never pass a wall or venue time)."""
        if now_ms is None:
            now_ms = self.clock_ms()
        return self.detector.state(now_ms)

    def mid_price(self) -> float | None:
        bid, ask = self.book.best_bid, self.book.best_ask
        if math.isnan(bid) or math.isnan(ask):
            return None
        return (bid + ask) / 2.0

    def __repr__(self) -> str:
        return f"Market({self.exchange!r}, {self.symbol!r}, source={self.source!r}, valid={self.valid})"
