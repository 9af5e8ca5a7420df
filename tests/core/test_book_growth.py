"""OrderBook growth: sides start at `capacity` slots and double up to `max_capacity`.

A grown book must hold exactly what a book allocated at max_capacity from the
start would (the dict reference in tests/core/reference.py, whose capacity is
the bound), with the same top-N and band sums; growth must stop at the bound,
where the deepest level is dropped and `truncated` set; and a book never holds
fewer slots than levels (see "Capacity" in sentrycore/book.pyx).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrycore import OrderBook
from tests.core.reference import ReferenceBook
from tests.core.test_book_properties import apply, assert_same, ops

SLOT_BYTES = 16  # one float64 key + one float64 quantity


def reference_band(ref: ReferenceBook, bps: float) -> tuple[float, float]:
    """Notional within `bps` of the mid, from the reference's dicts (same floor formula as the book)."""
    if not ref.bid or not ref.ask:
        return 0.0, 0.0
    mid = 0.5 * (ref.best_bid + ref.best_ask)
    half = mid * bps * 1e-4
    bid = math.fsum(p * q for p, q in ref.bid.items() if p >= mid - half)
    ask = math.fsum(p * q for p, q in ref.ask.items() if -p >= -(mid + half))
    return bid, ask


def assert_slots_hold_levels(book: OrderBook) -> None:
    bid_slots, ask_slots = book.allocated_slots
    for slots in (bid_slots, ask_slots):
        assert book.capacity <= slots <= book.max_capacity
    used_bids, _, used_asks, _ = book._storage()
    assert bid_slots >= used_bids >= book.bid_levels
    assert ask_slots >= used_asks >= book.ask_levels
    assert book.allocated_bytes == SLOT_BYTES * (bid_slots + ask_slots)


@settings(max_examples=300, deadline=None)
@given(
    depth=st.integers(1, 6),
    initial_extra=st.integers(0, 3),
    bound_extra=st.integers(0, 160),
    bps=st.sampled_from([0.0, 100.0, 1000.0, 9900.0]),
    seq=st.lists(ops, max_size=60),
)
def test_growing_book_matches_a_reference_sized_at_the_bound(depth: int, initial_extra: int, bound_extra: int,
                                                             bps: float, seq: list) -> None:
    # Tiny initial capacities against up to 240 distinct prices per side: a
    # run grows many times, through holes, snapshots, clears and truncation.
    initial = depth + initial_extra
    bound = initial + bound_extra
    book = OrderBook(depth=depth, capacity=initial, max_capacity=bound, band_bps=bps)
    ref = ReferenceBook(depth=depth, capacity=bound)
    for op in seq:
        apply(book, ref, op)
        assert_same(book, ref)
        assert_slots_hold_levels(book)
        if bps:
            for got, want in zip((book.band_bid_notional, book.band_ask_notional), reference_band(ref, bps), strict=True):
                assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6), (got, want)


def test_growth_doubles_and_keeps_every_level_and_exact_sums() -> None:
    depth = 10
    book = OrderBook(depth=depth, capacity=depth, max_capacity=4096, band_bps=50.0)
    ref = ReferenceBook(depth=depth, capacity=4096)
    rng = random.Random(7)
    prices = [1000.0 + 0.5 * i for i in range(3000)]
    rng.shuffle(prices)
    seen_slots = [book.allocated_slots[0]]
    for k, price in enumerate(prices):
        qty = float(rng.randint(1, 1000))  # integers: every sum is exact
        book.update_bid(price, qty)
        ref.update_bid(price, qty)
        book.update_ask(price + 5000.0, qty)
        ref.update_ask(price + 5000.0, qty)
        if book.allocated_slots[0] != seen_slots[-1]:
            seen_slots.append(book.allocated_slots[0])
            # Right after a growth: every level still there, sums exact.
            assert book.bids().tolist() == [list(lv) for lv in ref.bids(len(ref.bid))]
            assert book.asks().tolist() == [list(lv) for lv in ref.asks(len(ref.ask))]
            assert book.volumes == (ref.bid_volume, ref.ask_volume)
            want_bid, want_ask = reference_band(ref, 50.0)
            assert book.band_bid_notional == want_bid and book.band_ask_notional == want_ask
        if k % 500 == 0:
            for i in range(0, len(prices[:k]), 7):  # deletes (deep ones leave holes)
                book.update_bid(prices[i], 0.0)
                ref.update_bid(prices[i], 0.0)
    assert seen_slots == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 4096]  # the last clamped to the bound
    assert not book.truncated
    assert book.bids().tolist() == [list(lv) for lv in ref.bids(len(ref.bid))]
    assert book.volumes == (ref.bid_volume, ref.ask_volume)


def test_growth_stops_at_max_capacity_then_truncates() -> None:
    book = OrderBook(depth=2, capacity=4, max_capacity=10)
    for price in range(100, 110):
        book.update_bid(float(price), 1.0)
    assert book.allocated_slots == (10, 4)  # 4 -> 8 -> 10 (clamped), asks untouched
    assert book.bid_levels == 10 and not book.truncated
    book.update_bid(99.0, 1.0)  # worse than all ten: dropped
    assert book.truncated and book.bid_levels == 10
    book.update_bid(110.0, 5.0)  # better: the deepest (100) makes room
    assert book.bids()[:, 0].tolist() == [float(p) for p in range(110, 100, -1)]
    assert book.bid_volume == 6.0
    assert book.allocated_slots == (10, 4)


def test_snapshot_beyond_max_capacity_keeps_the_best_and_grows_to_the_bound() -> None:
    book = OrderBook(depth=2, capacity=3, max_capacity=5)
    book.load_snapshot([[p, 1] for p in range(90, 100)], [[p, 1] for p in range(100, 102)])
    assert book.truncated
    assert book.bids()[:, 0].tolist() == [99, 98, 97, 96, 95]
    assert book.allocated_slots == (5, 3)


def test_snapshot_refits_the_book_and_never_below_what_it_holds() -> None:
    book = OrderBook(depth=5, capacity=64, max_capacity=8192)
    big = [[1000.0 - 0.01 * i, 1.0] for i in range(5000)]
    book.load_snapshot(big, [[2000.0, 1.0]])
    assert book.allocated_slots == (8192, 64)  # 64 doubled until 5,000 fit
    assert book.bid_levels == 5000
    # A resync to a 1,000-level snapshot gives back the memory the run grew into...
    book.load_snapshot(big[:1000], [[2000.0, 1.0]])
    assert book.allocated_slots == (1024, 64)
    assert book.bids().tolist() == big[:1000]
    # ...but a snapshot that needs more than half keeps the buffer (no churn).
    book.load_snapshot(big[:700], [[2000.0, 1.0]])
    assert book.allocated_slots == (1024, 64)
    # And never below `capacity`, however small the snapshot.
    book.load_snapshot([[1.0, 1.0]], [])
    assert book.allocated_slots == (64, 64)
    assert book.bid_volume == 1.0 and book.ask_levels == 0


def test_updates_within_capacity_never_reallocate() -> None:
    # The hot path's common case: changes to held levels and inserts into free slots.
    book = OrderBook(depth=50, capacity=256, max_capacity=5000)
    book.load_snapshot([[1000.0 - i, 1.0] for i in range(200)], [[1001.0 + i, 1.0] for i in range(200)])
    before = book.allocated_slots
    rng = random.Random(3)
    for _ in range(5000):
        price = 1000.0 - rng.randrange(250)
        book.update_bid(price, float(rng.randrange(0, 3)))
        book.apply_asks(np.array([1001.0 + rng.randrange(250)]), np.array([float(rng.randrange(0, 3))]))
    assert book.allocated_slots == before


def test_default_bound_is_the_initial_capacity() -> None:
    # Backward compatible: OrderBook(depth, capacity) is fixed-size as before.
    book = OrderBook(depth=2, capacity=3)
    assert book.max_capacity == 3
    for price in (100.0, 99.0, 98.0, 97.0):
        book.update_bid(price, 1.0)
    assert book.truncated and book.allocated_slots == (3, 3)


def test_small_book_allocates_little_and_a_grown_one_matches_its_levels() -> None:
    small = OrderBook(depth=50, capacity=64, max_capacity=5000)
    assert small.allocated_bytes == 2 * 64 * SLOT_BYTES  # 2 KB, not 160 KB
    grown = OrderBook(depth=50, capacity=64, max_capacity=5000)
    levels = 2202 // 2  # the real Binance book of the issue, per side
    grown.load_snapshot([[100.0 - 0.01 * i, 1.0] for i in range(levels)],
                        [[101.0 + 0.01 * i, 1.0] for i in range(levels)])
    # Doubling wastes less than half: at most twice the levels' 16 bytes.
    assert 2 * levels * SLOT_BYTES <= grown.allocated_bytes < 2 * 2 * levels * SLOT_BYTES


@pytest.mark.parametrize("capacity, max_capacity", [(10, 9), (0, 5)])
def test_bad_capacities_are_refused(capacity: int, max_capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        OrderBook(depth=1, capacity=capacity, max_capacity=max_capacity)
