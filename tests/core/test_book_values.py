"""Bad values are rejected with ValueError and leave the book unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sentrycore import OrderBook

BAD_PRICES = [math.nan, math.inf, -math.inf, 0.0, -1.0]
BAD_QTYS = [math.nan, math.inf, -math.inf, -1e-9]


def loaded() -> OrderBook:
    book = OrderBook(depth=3, capacity=10)
    book.load_snapshot([[100, 1], [99, 2]], [[101, 3], [102, 4]])
    return book


def state(book: OrderBook) -> tuple:
    return (book.bids().tolist(), book.asks().tolist(), book.bid_volume, book.ask_volume)


@pytest.mark.parametrize("price", BAD_PRICES)
def test_single_update_rejects_bad_price(price: float) -> None:
    book = loaded()
    before = state(book)
    with pytest.raises(ValueError, match="price"):
        book.update_bid(price, 1.0)
    with pytest.raises(ValueError, match="price"):
        book.update_ask(price, 1.0)
    assert state(book) == before


@pytest.mark.parametrize("qty", BAD_QTYS)
def test_single_update_rejects_bad_quantity(qty: float) -> None:
    book = loaded()
    before = state(book)
    with pytest.raises(ValueError, match="quantity"):
        book.update_bid(100.0, qty)
    with pytest.raises(ValueError, match="quantity"):
        book.update_ask(101.0, qty)
    assert state(book) == before


@pytest.mark.parametrize("bad_index", [0, 2, 4])
@pytest.mark.parametrize("bad", [(math.nan, 1.0), (100.0, -1.0), (0.0, 1.0), (100.0, math.inf)])
def test_batch_is_validated_before_any_level_is_applied(bad_index: int, bad: tuple) -> None:
    book = loaded()
    before = state(book)
    prices = np.array([98.0, 99.0, 100.0, 100.5, 97.0])
    qtys = np.array([5.0, 0.0, 7.0, 1.0, 2.0])
    prices[bad_index], qtys[bad_index] = bad
    with pytest.raises(ValueError):
        book.apply_bids(prices, qtys)
    with pytest.raises(ValueError):
        book.apply_asks(prices, qtys)
    assert state(book) == before


@pytest.mark.parametrize("bad_side", ["bids", "asks"])
def test_apply_both_sides_is_all_or_nothing(bad_side: str) -> None:
    book = loaded()
    before = state(book)
    good_p, good_q = np.array([98.0, 100.5]), np.array([1.0, 2.0])
    bad_p, bad_q = np.array([103.0, 104.0]), np.array([1.0, math.nan])
    args = (bad_p, bad_q, good_p + 5, good_q) if bad_side == "bids" else (good_p, good_q, bad_p, bad_q)
    with pytest.raises(ValueError, match="quantity"):
        book.apply(*args)
    assert state(book) == before  # the good side was not applied either
    book.apply(good_p, good_q, good_p + 5.0, good_q)
    assert book.bids(2).tolist() == [[100.5, 2.0], [100.0, 1.0]]


def test_batch_length_mismatch() -> None:
    book = loaded()
    with pytest.raises(ValueError, match="length"):
        book.apply_bids(np.array([1.0, 2.0]), np.array([1.0]))


def test_snapshot_rejects_bad_values_and_keeps_old_book() -> None:
    book = loaded()
    before = state(book)
    with pytest.raises(ValueError):
        book.load_snapshot([[100, 1], [99, math.nan]], [[101, 1]])
    with pytest.raises(ValueError):
        book.load_snapshot([[100, 1]], [[-101, 1]])
    with pytest.raises(ValueError, match="shape"):
        book.load_snapshot([[100, 1, 3]], [[101, 1]])
    assert state(book) == before


def test_constructor_arguments() -> None:
    with pytest.raises(ValueError):
        OrderBook(depth=0)
    with pytest.raises(ValueError):
        OrderBook(depth=50, capacity=10)
    book = OrderBook(depth=7, capacity=70)
    assert (book.depth, book.capacity, book.truncated) == (7, 70, False)
