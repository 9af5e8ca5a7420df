"""sentrycore.band: the core's band walk equals a plain dict book's notional within the band."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrycore import OrderBook
from sentrycore.band import band_notional


def reference(bids: dict[float, float], asks: dict[float, float], bps: float) -> tuple[float, float]:
    if not bids or not asks:
        return 0.0, 0.0
    mid = (max(bids) + min(asks)) / 2
    half = mid * bps * 1e-4
    return (sum(p * q for p, q in bids.items() if p >= mid - half),
            sum(p * q for p, q in asks.items() if p <= mid + half))


prices = st.integers(min_value=1, max_value=400).map(lambda i: round(1000.0 + 0.25 * i, 2))
sizes = st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.5, 7.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), prices, sizes), min_size=1, max_size=300),
       st.sampled_from([1.0, 5.0, 25.0, 100.0, 500.0]))
def test_band_matches_a_dict_book_after_any_updates(updates, bps) -> None:
    # Depth 3: most changes land below the top-N window, where deletes leave holes.
    book = OrderBook(depth=3, capacity=512)
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for is_bid, price, qty in updates:
        # Keep the book uncrossed: bids at or below 1050, asks above.
        side, ref, update = (bids, bids, book.update_bid) if is_bid else (asks, asks, book.update_ask)
        price = price if (price <= 1050.0) == is_bid else (2100.5 - price)
        update(price, qty)
        if qty == 0.0:
            ref.pop(price, None)
        else:
            ref[price] = qty
        got = band_notional(book, bps)
        want = reference(bids, asks, bps)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-9)


def test_known_book_and_errors() -> None:
    book = OrderBook(depth=3)
    assert band_notional(book, 25.0) == (0.0, 0.0)
    book.load_snapshot([[99.9, 1.0], [99.8, 2.0], [99.7, 4.0]], [[100.1, 1.0], [100.3, 5.0]])
    bid, ask = band_notional(book, 25.0)  # mid 100.0: bids >= 99.75, asks <= 100.25
    assert math.isclose(bid, 99.9 + 199.6) and math.isclose(ask, 100.1)
    book.update_ask(100.1, 0.0)  # one side has nothing inside the band: 0, not the whole side
    bid, ask = band_notional(book, 10.0)  # mid 100.1: asks <= 100.2001
    assert ask == 0.0 and math.isclose(bid, 0.0)
    for bad in (0.0, -1.0, 10_000.0, float("nan")):
        with pytest.raises(ValueError, match="bps"):
            band_notional(book, bad)
