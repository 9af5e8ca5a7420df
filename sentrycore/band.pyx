# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The band signal: bid and ask notional within a few basis points of the mid.

`levels:N` (the book's own top-N volumes) counts the same number of levels
on each side however far from the mid they sit; the band counts money near
the touch: sum(price x quantity) over the bid levels at or above
mid x (1 - bps/10^4) and the ask levels at or below mid x (1 + bps/10^4).
The detector's ratio is then ask notional / bid notional.

This is a bounded walk from the touch over the book's sorted arrays (best
level last, key = sign x price; holes have quantity 0 and add nothing): it
reads exactly the levels inside the band and stops at the first one outside,
so its cost is the number of levels within `bps` of the mid.  That is too
much per message on a deep book (~1,400 levels at 25 bps on BTCUSDT), so the
live signal uses the book's incremental band sums (`OrderBook(band_bps=...)`,
see book.pyx); this walk stays as their reference (tests/core) and for
research on any bps.  Both take the band's floors from book.pxd's
band_floors, so they select exactly the same levels.
"""

from sentrycore.book cimport BookSide, OrderBook, band_floors


cdef inline double _side_notional(BookSide* side, double key_floor) noexcept nogil:
    # Keys ascend to the best level at n - 1; walk down while still inside the band.
    cdef Py_ssize_t i = side.n - 1
    cdef double total = 0.0
    cdef double key
    while i >= 0:
        key = side.keys[i]
        if key < key_floor:
            break
        total += key * side.qtys[i]
        i -= 1
    return total * side.sign  # key x sign = price


cdef void c_band_notional(OrderBook book, double bps, double* bid_notional, double* ask_notional) noexcept nogil:
    cdef double bid_floor, ask_floor
    if book._bids.n - book._bids.holes <= 0 or book._asks.n - book._asks.holes <= 0:
        bid_notional[0] = 0.0
        ask_notional[0] = 0.0
        return
    # Bids: key = price >= mid - half.  Asks: key = -price >= -(mid + half).
    band_floors(book.c_best_bid(), book.c_best_ask(), bps, &bid_floor, &ask_floor)
    bid_notional[0] = _side_notional(&book._bids, bid_floor)
    ask_notional[0] = _side_notional(&book._asks, ask_floor)


def band_notional(OrderBook book not None, double bps):
    """(bid notional, ask notional) within `bps` basis points of the mid; (0.0, 0.0) when a side is empty."""
    if not (bps > 0.0 and bps < 1e4):
        raise ValueError(f"bps must be in (0, 10000), got {bps!r}")
    cdef double bid, ask
    c_band_notional(book, bps, &bid, &ask)
    return bid, ask
