"""Deleted levels below the top-N window leave holes (see sentrycore/book.pyx).

A hole must be invisible: level counts, `bids()`/`asks()`, best prices, the
top-N volumes and truncation all match the plain-Python reference whatever
mix of deep deletes, reinserts, nearby inserts, window deletes (which pull a
hole to the window's edge), squeezes and capacity overflow happened.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrycore import OrderBook
from tests.core.reference import ReferenceBook
from tests.core.test_book_properties import assert_same


def _loaded(*, depth: int, capacity: int, bids: list, asks: list) -> tuple[OrderBook, ReferenceBook]:
    """The book under test and the reference, both loaded with the same snapshot."""
    book = OrderBook(depth=depth, capacity=capacity)
    ref = ReferenceBook(depth=depth, capacity=capacity)
    book.load_snapshot(bids, asks)
    ref.load_snapshot(bids, asks)
    return book, ref


def _ladder(n: int, start: float, step: float) -> list[list[float]]:
    return [[start + i * step, 1.0 + i % 7] for i in range(n)]


def test_deep_delete_leaves_an_invisible_hole_that_a_reinsert_refills() -> None:
    bids = _ladder(100, 1.0, 1.0)  # best bid 100, worst 1
    book, ref = _loaded(depth=5, capacity=1000, bids=bids, asks=[])
    volume = book.bid_volume

    book.update_bid(50.0, 0.0)
    ref.update_bid(50.0, 0.0)
    assert book._storage()[:2] == (100, 1)  # the slot stays, as a hole
    assert_same(book, ref)
    assert book.bid_volume == volume
    assert 50.0 not in book.bids()[:, 0]

    book.update_bid(50.0, 0.0)  # deleting it again: nothing to do
    assert book._storage()[:2] == (100, 1)
    book.update_bid(50.0, 3.5)  # the price comes back: the hole is refilled
    ref.update_bid(50.0, 3.5)
    assert book._storage()[:2] == (100, 0)
    assert_same(book, ref)


def test_insert_near_a_hole_consumes_it_instead_of_growing() -> None:
    bids = _ladder(100, 1.0, 1.0)
    book, ref = _loaded(depth=5, capacity=1000, bids=bids, asks=[])
    for price, qty in ((40.0, 0.0), (43.5, 2.0), (37.5, 4.0)):
        book.update_bid(price, qty)
        ref.update_bid(price, qty)
        assert_same(book, ref)
    # One delete made a hole; the first insert used it, the second had to grow.
    assert book._storage()[:2] == (101, 0)


def test_window_delete_removes_holes_waiting_below_the_window() -> None:
    depth = 3
    asks = _ladder(20, 100.0, 1.0)  # best ask 100
    book, ref = _loaded(depth=depth, capacity=1000, bids=[], asks=asks)
    # Holes right below the window (asks 103..106) ...
    for price in (103.0, 104.0, 105.0, 106.0):
        book.update_ask(price, 0.0)
        ref.update_ask(price, 0.0)
    assert book._storage()[3] == 4
    # ... then the window's levels go one by one: 107 must enter next.
    for price in (100.0, 101.0, 102.0):
        book.update_ask(price, 0.0)
        ref.update_ask(price, 0.0)
        assert_same(book, ref)
    assert book.best_ask == 107.0
    assert book.ask_volume == math.fsum(q for _, q in ref.asks(depth))
    assert book._storage()[3] == 0


def test_holes_are_squeezed_out_when_they_outnumber_levels() -> None:
    bids = _ladder(60, 1.0, 1.0)
    book, ref = _loaded(depth=2, capacity=1000, bids=bids, asks=[])
    for price in range(1, 50):
        book.update_bid(float(price), 0.0)
        ref.update_bid(float(price), 0.0)
        assert_same(book, ref)
        slots, holes = book._storage()[:2]
        assert holes <= slots - holes
    assert book._storage()[0] < 60  # at least one squeeze happened


def test_full_buffer_squeezes_holes_before_truncating() -> None:
    bids = _ladder(10, 1.0, 1.0)
    book, ref = _loaded(depth=2, capacity=10, bids=bids, asks=[])
    book.update_bid(3.0, 0.0)
    ref.update_bid(3.0, 0.0)
    assert book._storage()[:2] == (10, 1)
    # A new best level needs a slot: the hole is squeezed out, nothing dropped.
    book.update_bid(20.0, 1.0)
    ref.update_bid(20.0, 1.0)
    assert_same(book, ref)
    assert not book.truncated
    book.update_bid(21.0, 1.0)  # now really full: the worst level goes
    ref.update_bid(21.0, 1.0)
    assert_same(book, ref)
    assert book.truncated


def _batch(book: OrderBook, ref: ReferenceBook, bid_levels: list, ask_levels: list) -> None:
    arrays = [np.array([lv[i] for lv in side], dtype=np.float64) for side in (bid_levels, ask_levels) for i in (0, 1)]
    book.apply(*arrays)
    for price, qty in bid_levels:
        ref.update_bid(price, qty)
    for price, qty in ask_levels:
        ref.update_ask(price, qty)


@pytest.mark.parametrize("best_first", [False, True])
def test_seeded_deep_traffic_matches_reference_and_uses_holes(best_first: bool) -> None:
    # Real-book-like traffic: a 400-level side, most changes deep, deletes
    # and inserts clustering at the same prices, many levels per message.
    # best_first: each side's levels sorted best first with distinct prices,
    # as venues send them, which the search uses (see _lower_bound).
    rng = np.random.default_rng(20261126)
    grid = np.arange(1, 601) * 0.5
    bids = [[p, 1.0] for p in grid[:400]]
    asks = [[p, 1.0] for p in grid[200:]]
    asks = [[p + 300.0, q] for p, q in asks]
    book, ref = _loaded(depth=10, capacity=450, bids=bids, asks=asks)
    max_holes = 0
    for _ in range(1500):
        sides = []
        for lo in (0.0, 300.0):
            n = int(rng.integers(0, 40))
            prices = lo + rng.choice(grid, size=n, replace=not best_first)
            if best_first:
                prices = np.sort(prices)[::-1] if lo == 0.0 else np.sort(prices)
            qtys = np.where(rng.random(n) < 0.5, 0.0, np.round(rng.exponential(2.0, n) + 0.01, 3))
            sides.append(list(zip(prices.tolist(), qtys.tolist(), strict=True)))
        _batch(book, ref, *sides)
        assert_same(book, ref)
        s = book._storage()
        max_holes = max(max_holes, s[1], s[3])
    assert max_holes > 10  # the traffic did exercise holes


grid_prices = st.integers(min_value=1, max_value=300).map(lambda t: t * 0.25)
qtys = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False))
batches = st.lists(st.tuples(grid_prices, qtys), max_size=80)


@settings(max_examples=150, deadline=None)
@given(
    depth=st.integers(1, 12),
    extra=st.integers(0, 250),
    size=st.integers(0, 250),
    ops=st.lists(st.tuples(st.sampled_from(["bids", "asks", "both", "bid", "ask"]), batches, batches), max_size=40),
    best_first=st.booleans(),
)
def test_deep_books_with_holes_match_reference(depth: int, extra: int, size: int, ops: list, best_first: bool) -> None:
    ladder = [[t * 0.25, 1.0 + t % 5] for t in range(1, size + 1)]
    book, ref = _loaded(depth=depth, capacity=depth + extra, bids=ladder, asks=[[p + 100.0, q] for p, q in ladder])
    for kind, a, b in ops:
        if best_first:  # distinct prices, best first: the order venues send
            a = sorted(dict(a).items(), reverse=True)
            b = sorted(dict(b).items())
        asks = [(p + 100.0, q) for p, q in b]
        if kind == "bids":
            _batch(book, ref, a, [])
        elif kind == "asks":
            _batch(book, ref, [], asks)
        elif kind == "both":
            _batch(book, ref, a, asks)
        else:
            for p, q in a:
                if kind == "bid":
                    book.update_bid(p, q)
                    ref.update_bid(p, q)
                else:
                    book.update_ask(p + 100.0, q)
                    ref.update_ask(p + 100.0, q)
        assert_same(book, ref)
