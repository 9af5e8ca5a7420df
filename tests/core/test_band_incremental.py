"""The book's incremental band notionals against the walk in sentrycore.band.

`OrderBook(band_bps=...)` keeps the notional within the band around the mid
with running sums that move with the mid (see "Band notional" in book.pyx);
sentrycore.band.band_notional walks the band afresh and is the reference.
"""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrycoin.feeds.binance import BinanceSpotHandler
from sentrycoin.market import DetectorSettings, Market
from sentrycore import OrderBook
from sentrycore.band import band_notional
from tests.core.reference import ReferenceBook
from tests.core.test_book_properties import apply, ops
from tests.realdata import realdata_path

# 0.5-tick prices in (0, 60]: the mid sits near 30, so 10 bps holds a level
# or so, 9900 bps every bid (the worst ones, which drop for capacity, too),
# and a mid move crosses many floors.
bps_values = st.sampled_from([10.0, 100.0, 400.0, 1000.0, 5000.0, 9900.0])


def assert_band_matches(book: OrderBook) -> None:
    want_bid, want_ask = band_notional(book, book.band_bps)
    for got, want in ((book.band_bid_notional, want_bid), (book.band_ask_notional, want_ask)):
        # Compensated running sums against a plain walk: both within a few
        # ulps of the exact sum; abs_tol covers a band that emptied (0.0 vs
        # the residue of the largest terms once summed, ~1e-16 x 6e7).
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6), (got, want)


@settings(max_examples=400, deadline=None)
@given(
    bps=bps_values,
    depth=st.integers(min_value=1, max_value=6),
    capacity=st.integers(min_value=6, max_value=40),
    seq=st.lists(ops, min_size=1, max_size=60),
)
def test_band_sums_equal_the_walk_after_any_sequence(bps: float, depth: int, capacity: int, seq: list) -> None:
    # Small capacities make levels drop for capacity and deep deletes leave
    # holes (depth < capacity), so every path that changes a quantity runs.
    capacity = max(capacity, depth)
    book = OrderBook(depth=depth, capacity=capacity, band_bps=bps)
    ref = ReferenceBook(depth=depth, capacity=capacity)
    for op in seq:
        apply(book, ref, op)
        assert_band_matches(book)


def test_band_sums_follow_a_wandering_mid_through_renormalisations() -> None:
    # A long run whose mid drifts over hundreds of ticks both ways: the floors
    # move by one tick and by many, levels go in and out of the band, and the
    # sums pass several exact recomputations (every 4096 adjustments).
    rng = np.random.default_rng(7)
    book = OrderBook(depth=20, capacity=3000, band_bps=25.0)
    tick = 0.01
    mid = 1000.0
    book.load_snapshot(
        [[mid - tick * (k + 1), 1.0 + k % 7] for k in range(1500)],
        [[mid + tick * (k + 1), 1.0 + k % 5] for k in range(1500)],
    )
    assert_band_matches(book)
    for step in range(20_000):
        mid += tick * rng.integers(-3, 4) * (10 if step % 997 == 0 else 1)
        offsets = rng.integers(1, 400, size=12)
        qtys = np.where(rng.random(12) < 0.3, 0.0, rng.random(12) * 10.0)
        bid_prices = np.round(mid - offsets[:6] * tick, 2)
        ask_prices = np.round(mid + offsets[6:] * tick, 2)
        # Clear the crossing side so the mid really moves with `mid`.
        book.apply(
            np.concatenate([bid_prices, np.round(mid + np.arange(1, 4) * tick, 2)]),
            np.concatenate([qtys[:6], np.zeros(3)]),
            np.concatenate([ask_prices, np.round(mid - np.arange(0, 3) * tick, 2)]),
            np.concatenate([qtys[6:], np.zeros(3)]),
        )
        if step % 50 == 0:
            assert_band_matches(book)
    assert_band_matches(book)
    assert book.band_bid_notional > 0.0 and book.band_ask_notional > 0.0


def test_band_off_costs_nothing_and_reads_zero() -> None:
    book = OrderBook(depth=5, capacity=50)
    assert book.band_bps == 0.0
    book.load_snapshot([[99.0, 1.0], [98.0, 2.0]], [[101.0, 1.0]])
    book.update_bid(99.5, 3.0)
    assert (book.band_bid_notional, book.band_ask_notional) == (0.0, 0.0)


def test_empty_side_reads_exactly_zero_and_refills() -> None:
    book = OrderBook(depth=5, capacity=50, band_bps=100.0)
    book.load_snapshot([[99.5, 1.0], [99.0, 2.0]], [[100.5, 1.0]])
    assert book.band_bid_notional == pytest.approx(99.5 + 99.0 * 2.0)
    assert book.band_ask_notional == pytest.approx(100.5)
    book.update_ask(100.5, 0.0)
    assert (book.band_bid_notional, book.band_ask_notional) == (0.0, 0.0)
    book.update_ask(100.0, 2.0)  # mid 99.75, band [98.75, 100.75]
    assert book.band_bid_notional == pytest.approx(99.5 + 99.0 * 2.0)
    assert book.band_ask_notional == pytest.approx(200.0)
    book.clear()
    assert (book.band_bid_notional, book.band_ask_notional) == (0.0, 0.0)


@pytest.mark.parametrize("bps", [-1.0, float("nan"), float("inf"), 1e4])
def test_band_bps_out_of_range_is_refused(bps: float) -> None:
    with pytest.raises(ValueError, match="band_bps"):
        OrderBook(band_bps=bps)


@pytest.mark.parametrize("name,symbol", [("BINANCE_SPOT_BTCUSDT_20240808.gz", "BTC-USDT"),
                                         ("BINANCE_SPOT_ETHUSDT_20240808.gz", "ETH-USDT")])
@pytest.mark.parametrize("bps", [5.0, 25.0])
def test_band_sums_equal_the_walk_on_real_binance_frames(name: str, symbol: str, bps: float) -> None:
    # The live path: recorded frames through BinanceSpotHandler's Cython
    # parser into a SIGNAL=band market; after every depth frame the book's
    # sums must be the walk's.
    frames = []
    with gzip.open(realdata_path(name), "rb") as fh:
        for line in fh:
            frames.append(line.rstrip(b"\n").partition(b" ")[2])
    market = Market("binance", symbol, depth=50, capacity=20000, source="replay",
                    settings=DetectorSettings(signal="band", band_bps=bps))
    h = BinanceSpotHandler([market], "ws://127.0.0.1:9/stream", "http://127.0.0.1:9/api/v3/depth")
    h.on_connected(0)
    h.take_actions()
    checked = 0
    for frame in frames:
        if frame.startswith(b'{"lastUpdateId"'):
            h.on_snapshot(symbol, frame, 0)
        else:
            h.on_frame(0, frame, 0)
        if b"depthUpdate" in frame and market.valid:
            assert_band_matches(market.book)
            checked += 1
    assert checked > 3000
    assert market.book.band_bid_notional > 0.0 and market.book.band_ask_notional > 0.0
