"""Type stubs for sentrycore.marketcore."""

from sentrycore.book import OrderBook
from sentrycore.detector import ImbalanceDetector

DEFAULT_CLOCK_SKEW_MS: int
"""5000: the default `clock_skew_ms` (CLOCK_SKEW_S = 5)."""

class SourceClock:
    """The local clock of a frame source that is not the live machine: a
    replay (recorded receive times) or the simulated market (simulated
    receive times).  The source sets `now_ms` before handing over each frame
    or snapshot; every market it drives shares the one object."""

    now_ms: int
    """Unix ms."""

    def __init__(self, now_ms: int = 0) -> None: ...

class MarketCore:
    """Book, detector, validity and per-message counters of one market.

    Subclasses implement `_emit(severity, event_ms)`, which `after_message`
    calls when the detector fires.

    Time: `event_ms` (the venue's time) is kept as data only.  The detector's
    cooldown, persistence and re-arm run on the local clock: the machine's
    monotonic clock in ms when `clock` is None (live), else `clock.now_ms`.
    """

    book: OrderBook
    detector: ImbalanceDetector
    valid: bool
    messages: int
    crossed: int  # messages after which the book was crossed (each made it invalid)
    clock_skew: int
    """Applied messages whose event time was more than `clock_skew_ms` away
    from their receive time (live: the wall clock; else `clock.now_ms`)."""
    clock_skew_ms: int
    clock: SourceClock | None
    """None: live.  Set by replay / simulation to their SourceClock."""
    band_signal: bool
    """The detector reads `book.band_bid_notional` / `band_ask_notional`
    instead of the top-N volumes (read-only; the book needs band_bps > 0,
    else ValueError)."""
    last_event_ms: int | None
    last_update_monotonic: float | None

    def __init__(
        self,
        book: OrderBook,
        detector: ImbalanceDetector,
        clock_skew_ms: int = 5000,
        clock: SourceClock | None = None,
        band_signal: bool = False,
    ) -> None: ...
    def after_message(self, event_ms: int) -> None:
        """Call once per applied message: counts it, stamps the event time and
        time.monotonic(), counts a skewed event time in `clock_skew`, and
        runs the detector at `clock_ms()` when the book is valid."""
    def clock_ms(self) -> int:
        """The detector's now: `clock.now_ms`, or time.monotonic() in ms when live.
        Pass it to `detector.state()`; compare it with `detector.last_alert_ms`."""
    def _emit(self, severity: int, event_ms: int) -> None: ...
    def _on_clock_skew(self, event_ms: int, recv_ms: int) -> None:
        """Called (from C) for the first message of each run of skewed ones,
        after counting it; the base class does nothing, Market logs."""
