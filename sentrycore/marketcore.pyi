"""Type stubs for sentrycore.marketcore."""

from sentrycore.book import OrderBook
from sentrycore.detector import ImbalanceDetector

class MarketCore:
    """Book, detector, validity and per-message counters of one market.

    Subclasses implement `_emit(severity, event_ms)`, which `after_message`
    calls when the detector fires.
    """

    book: OrderBook
    detector: ImbalanceDetector
    valid: bool
    messages: int
    crossed: int  # messages after which the book was crossed (each made it invalid)
    last_event_ms: int | None
    last_update_monotonic: float | None

    def __init__(self, book: OrderBook, detector: ImbalanceDetector) -> None: ...
    def after_message(self, event_ms: int) -> None:
        """Call once per applied message: counts it, stamps the event time and
        time.monotonic(), and runs the detector when the book is valid."""
    def _emit(self, severity: int, event_ms: int) -> None: ...
