"""Type stubs for sentrycore.band."""

from sentrycore.book import OrderBook

def band_notional(book: OrderBook, bps: float) -> tuple[float, float]:
    """(bid notional, ask notional): sum(price x qty) over the bids at or above
    mid x (1 - bps/1e4) and the asks at or below mid x (1 + bps/1e4); (0.0, 0.0)
    when a side is empty.  ValueError unless 0 < bps < 10000."""
