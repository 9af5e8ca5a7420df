"""OrderBook against the plain-Python reference on random operation sequences."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrycore import OrderBook
from tests.core.reference import ReferenceBook

# Prices on a coarse grid so that updates hit existing levels often.
prices = st.integers(min_value=1, max_value=120).map(lambda t: t * 0.5)
qtys = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False),
)
levels = st.lists(st.tuples(prices, qtys), max_size=40)

ops = st.one_of(
    st.tuples(st.just("snapshot"), levels, levels),
    st.tuples(st.just("bid"), prices, qtys),
    st.tuples(st.just("ask"), prices, qtys),
    st.tuples(st.just("delete_bid"), prices),
    st.tuples(st.just("delete_ask"), prices),
    st.tuples(st.just("batch_bids"), levels),
    st.tuples(st.just("batch_asks"), levels),
    st.tuples(st.just("batch_both"), levels, levels),
    st.tuples(st.just("clear"),),
)


def apply(book: OrderBook, ref: ReferenceBook, op: tuple) -> None:
    kind = op[0]
    if kind == "snapshot":
        book.load_snapshot(op[1], op[2])
        ref.load_snapshot(op[1], op[2])
    elif kind == "bid":
        book.update_bid(op[1], op[2])
        ref.update_bid(op[1], op[2])
    elif kind == "ask":
        book.update_ask(op[1], op[2])
        ref.update_ask(op[1], op[2])
    elif kind == "delete_bid":
        book.update_bid(op[1], 0.0)
        ref.update_bid(op[1], 0.0)
    elif kind == "delete_ask":
        book.update_ask(op[1], 0.0)
        ref.update_ask(op[1], 0.0)
    elif kind in ("batch_bids", "batch_asks"):
        p = np.array([lv[0] for lv in op[1]], dtype=np.float64)
        q = np.array([lv[1] for lv in op[1]], dtype=np.float64)
        if kind == "batch_bids":
            book.apply_bids(p, q)
            for price, qty in op[1]:
                ref.update_bid(price, qty)
        else:
            book.apply_asks(p, q)
            for price, qty in op[1]:
                ref.update_ask(price, qty)
    elif kind == "batch_both":
        arrays = [np.array([lv[i] for lv in side], dtype=np.float64) for side in (op[1], op[2]) for i in (0, 1)]
        book.apply(*arrays)
        for price, qty in op[1]:
            ref.update_bid(price, qty)
        for price, qty in op[2]:
            ref.update_ask(price, qty)
    elif kind == "clear":
        book.clear()
        ref.bid.clear()
        ref.ask.clear()
        ref.truncated = False


def assert_same(book: OrderBook, ref: ReferenceBook) -> None:
    assert book.bid_levels == len(ref.bid)
    assert book.ask_levels == len(ref.ask)
    for got, want in ((book.best_bid, ref.best_bid), (book.best_ask, ref.best_ask)):
        assert (math.isnan(got) and math.isnan(want)) or got == want
    n = book.depth + 3
    assert book.bids(n).tolist() == [list(lv) for lv in ref.bids(n)]
    assert book.asks(n).tolist() == [list(lv) for lv in ref.asks(n)]
    assert book.volumes == (book.bid_volume, book.ask_volume)
    for got, want in ((book.bid_volume, ref.bid_volume), (book.ask_volume, ref.ask_volume)):
        if want == 0.0:
            assert got == 0.0
        else:
            assert math.isclose(got, want, rel_tol=1e-12), (got, want)
    assert book.truncated == ref.truncated


@settings(max_examples=300, deadline=None)
@given(depth=st.integers(1, 8), extra=st.integers(0, 20), seq=st.lists(ops, max_size=60))
def test_random_operations_match_reference(depth: int, extra: int, seq: list) -> None:
    book = OrderBook(depth=depth, capacity=depth + extra)
    ref = ReferenceBook(depth=depth, capacity=depth + extra)
    for op in seq:
        apply(book, ref, op)
        assert_same(book, ref)


@settings(max_examples=100, deadline=None)
@given(seq=st.lists(ops, max_size=80))
def test_default_depth_matches_reference(seq: list) -> None:
    book = OrderBook()
    ref = ReferenceBook()
    for op in seq:
        apply(book, ref, op)
        assert_same(book, ref)


def test_ratio_conventions() -> None:
    book = OrderBook(depth=2)
    assert math.isnan(book.ratio)
    assert book.bid_volume == 0.0 and book.ask_volume == 0.0
    book.update_ask(101.0, 3.0)
    assert book.ratio == math.inf
    book.update_bid(100.0, 2.0)
    assert book.ratio == 1.5
    book.update_ask(101.0, 0.0)
    assert book.ratio == 0.0


def test_top_n_window_moves_with_inserts_and_deletes() -> None:
    book = OrderBook(depth=2, capacity=10)
    book.load_snapshot([[100, 1], [99, 2], [98, 4]], [[101, 8]])
    assert book.bid_volume == 3.0
    book.update_bid(100.5, 16)  # new best pushes 99 out of the top 2
    assert book.bid_volume == 17.0
    book.update_bid(100.5, 0)  # 99 comes back in
    assert book.bid_volume == 3.0
    book.update_bid(100, 0)  # 98 enters
    assert book.bid_volume == 6.0
    book.update_bid(98, 32)  # size change inside the window
    assert book.bid_volume == 34.0
    book.update_bid(50, 64)  # far below the window: no change
    assert book.bid_volume == 34.0


def test_capacity_drops_worst_level_and_flags_truncation() -> None:
    book = OrderBook(depth=2, capacity=3)
    book.load_snapshot([[100, 1], [99, 1], [98, 1]], [])
    assert not book.truncated
    book.update_bid(97, 5)  # worse than everything held: dropped
    assert book.truncated
    assert book.bids(5)[:, 0].tolist() == [100, 99, 98]
    book.update_bid(101, 5)  # better: the worst (98) makes room
    assert book.bids(5)[:, 0].tolist() == [101, 100, 99]
    assert book.bid_volume == 6.0
    book.clear()
    assert not book.truncated


def test_snapshot_larger_than_capacity_keeps_best_levels() -> None:
    book = OrderBook(depth=2, capacity=3)
    book.load_snapshot([[p, 1] for p in range(90, 100)], [[p, 1] for p in range(100, 110)])
    assert book.truncated
    assert book.bids(5)[:, 0].tolist() == [99, 98, 97]
    assert book.asks(5)[:, 0].tolist() == [100, 101, 102]


def test_snapshot_accepts_any_order_and_last_duplicate_wins() -> None:
    book = OrderBook(depth=3)
    book.load_snapshot(np.array([[99, 1], [101, 2], [100, 3], [101, 5]], dtype=float), np.empty((0, 2)))
    assert book.bids(3).tolist() == [[101, 5], [100, 3], [99, 1]]
    assert book.bid_volume == 9.0


def test_bids_and_asks_accessors() -> None:
    book = OrderBook(depth=2)
    book.load_snapshot([[100, 1], [99, 2]], [[101, 3], [102, 4]])
    assert book.bids(1).tolist() == [[100, 1]]
    assert book.asks(10).tolist() == [[101, 3], [102, 4]]
    assert book.bids(0).shape == (0, 2)
    assert book.bids().shape == (2, 2)
    assert book.bids(1).dtype == np.float64
