"""Value bounds: no finite accepted input can drive a book's sums to inf or NaN.

Before the bounds, two bid levels of quantity 1e308 overflowed the running
bid sum to inf (a false EXTREME alert once the asks moved) and the removal of
one of them left inf - 1e308 = NaN in the sum until the next exact
recomputation, a thousand updates later.  Now such a message is rejected
whole (ValueError, book unchanged), on every path: Python, the Cython
Binance parser (`sentrycore.parse`), and the feed handler's reject/resync.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentrycoin.feeds.base import FetchSnapshot
from sentrycoin.feeds.binance import BinanceSpotHandler
from sentrycoin.market import DetectorSettings, Market
from sentrycore import OrderBook
from sentrycore.book import MAX_PRICE, MAX_QTY
from sentrycore.parse import ChainState, DepthParser
from tests.feeds.binance_bybit_okx_frames import bn_snapshot

HUGE = 1e308


def state(book: OrderBook) -> tuple:
    return (book.bids().tobytes(), book.asks().tobytes(), book.volumes, book._storage())


def loaded(depth: int = 5) -> OrderBook:
    book = OrderBook(depth=depth, capacity=64)
    book.load_snapshot([(100.0 - i, 1.0 + i) for i in range(10)], [(101.0 + i, 2.0) for i in range(10)])
    return book


def test_bounds_are_what_the_docs_say() -> None:
    assert (MAX_PRICE, MAX_QTY) == (1e15, 1e18)
    book = OrderBook(depth=2, capacity=4)
    book.update_bid(MAX_PRICE, MAX_QTY)  # both bounds are inclusive
    book.update_ask(MAX_PRICE, MAX_QTY)
    assert book.volumes == (MAX_QTY, MAX_QTY)
    for price, qty in ((math.nextafter(MAX_PRICE, math.inf), 1.0), (1.0, math.nextafter(MAX_QTY, math.inf))):
        with pytest.raises(ValueError, match=r"<= 1e\+1[58]"):
            book.update_bid(price, qty)


def test_two_huge_bid_levels_are_rejected_book_unchanged() -> None:
    book = loaded()
    before = state(book)
    prices = np.array([100.5, 100.25])
    huge = np.array([HUGE, HUGE])
    for call in (lambda: book.apply_bids(prices, huge),
                 lambda: book.apply(prices, huge, np.empty(0), np.empty(0)),
                 lambda: book.update_bid(100.5, HUGE)):
        with pytest.raises(ValueError, match="invalid quantity 1e\\+308"):
            call()
        assert state(book) == before
    with pytest.raises(ValueError, match="invalid quantity"):
        book.load_snapshot([(100.5, HUGE), (100.25, HUGE)], [(101.0, 1.0)])
    assert state(book) == before


def test_the_sums_stay_exact_through_levels_at_the_bound() -> None:
    # The largest accepted quantities, inserted, replaced and removed inside
    # the top-N window, many times: the sums stay finite and exact.
    book = OrderBook(depth=5, capacity=16)
    for i in range(3000):  # several exact recomputations (every 1024 adjustments)
        small = float(1 + i % 3)
        book.apply_bids(np.array([100.0, 99.0, 98.0]), np.array([MAX_QTY, MAX_QTY, small]))
        assert math.isclose(book.bid_volume, 2 * MAX_QTY, rel_tol=1e-15)
        book.apply_bids(np.array([100.0, 99.0]), np.array([0.0, 1.0]))
        # The huge levels left no residue: compensation keeps the small sum exact.
        assert book.bid_volume == 1.0 + small


# Any finite double, weighted towards the bounds and the range beyond them.
finite = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e-300, 1.0, MAX_QTY, MAX_PRICE, 1e300, HUGE, 1.7976931348623157e308]),
    st.floats(min_value=1e14, max_value=1e20),
)
level = st.tuples(st.sampled_from([99.0, 99.5, 100.0, 101.0, 101.5, 102.0, 1e15, 1e16]) | finite, finite)
# (how it is written: one incremental message, a snapshot, or level by level; bids; asks)
message = st.tuples(st.sampled_from(["apply", "snapshot", "update"]),
                    st.lists(level, max_size=6), st.lists(level, max_size=6))


def accepted(levels: list) -> bool:
    return all(0 < p <= MAX_PRICE and 0 <= q <= MAX_QTY for p, q in levels)


def writes(book: OrderBook, how: str, bids: list, asks: list):
    """(the levels one write carries, the write) for each all-or-nothing write of the message."""
    if how == "snapshot":
        yield bids + asks, lambda: book.load_snapshot(bids, asks)
    elif how == "apply":
        yield bids + asks, lambda: book.apply(
            np.array([p for p, _ in bids], dtype=np.float64), np.array([q for _, q in bids], dtype=np.float64),
            np.array([p for p, _ in asks], dtype=np.float64), np.array([q for _, q in asks], dtype=np.float64))
    else:
        for p, q in bids:
            yield [(p, q)], lambda p=p, q=q: book.update_bid(p, q)
        for p, q in asks:
            yield [(p, q)], lambda p=p, q=q: book.update_ask(p, q)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message, min_size=1, max_size=40))
def test_sums_are_never_nan_or_inf_for_any_finite_input(messages: list) -> None:
    book = OrderBook(depth=3, capacity=8)
    for how, bids, asks in messages:
        for levels, write in writes(book, how, bids, asks):
            before = state(book)
            try:
                write()
            except ValueError:
                assert not accepted(levels)
                assert state(book) == before  # rejected whole
                continue
            assert accepted(levels)
            bid_volume, ask_volume = book.volumes
            assert math.isfinite(bid_volume) and math.isfinite(ask_volume)
            assert bid_volume >= 0.0 and ask_volume >= 0.0
            assert not math.isnan(book.ratio) or (bid_volume == 0.0 and ask_volume == 0.0)
            if book.bid_levels and book.ask_levels:
                assert math.isfinite(book.best_bid + book.best_ask)


# -- the Cython Binance parser path ----------------------------------------------------------

def frame(U: int, u: int, bids: str, asks: str = "[]", E: int = 1_723_161_255_208) -> bytes:
    return (b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":%d,"s":"BTCUSDT","U":%d,"u":%d,'
            b'"b":%s,"a":%s}}' % (E, U, u, bids.encode(), asks.encode()))


# Bare JSON numbers reach 1e308 in the parser; decimal strings are capped at
# 96 characters, so 1e20 ("1" and twenty zeros) stands in for them.
HUGE_BIDS = ['[["100.5",1e308],["100.25",1e308]]', '[["100.5","100000000000000000000"]]']


@pytest.mark.parametrize("bids", HUGE_BIDS)
def test_depthparser_refuses_huge_quantities_book_unchanged(bids: str) -> None:
    book = loaded()
    before = state(book)
    p = DepthParser()
    assert p.parse(frame(1, 1, bids)) == 1  # parsed: the values are doubles...
    assert p.n_bids >= 1 and p.bids[0][1] > MAX_QTY
    assert not p.valid  # ...beyond the bound
    assert p.apply_to(book) is False and state(book) == before
    st_ = ChainState(Market("binance", "BTC-USDT", depth=5))
    st_.book.load_snapshot(book.bids(), book.asks())
    st_.synced, st_.last_u = True, 0
    before_market = state(st_.book)
    assert p.take(frame(1, 1, bids), {"BTCUSDT": st_}, False) is False  # declined: nothing touched
    assert state(st_.book) == before_market and st_.last_u == 0 and st_.market.messages == 0


@pytest.mark.parametrize("bids", HUGE_BIDS)
def test_binance_handler_rejects_and_resyncs_without_an_alert(bids: str) -> None:
    alerts: list = []
    market = Market("binance", "BTC-USDT", depth=5, settings=DetectorSettings(danger_ratio=2.5), on_alert=alerts.append)
    h = BinanceSpotHandler([market], "ws://127.0.0.1:9/stream", "http://127.0.0.1:9/api/v3/depth", depth=5)
    h.on_connected(0)
    h.take_actions()
    h.on_snapshot("BTC-USDT", bn_snapshot(10, [(100.0, 1.0), (99.0, 1.0)], [(101.0, 1.0), (102.0, 1.0)]), 0)
    h.on_frame(0, frame(11, 11, '[["100.0","2"]]'), 1)
    assert market.valid and market.messages == 1
    before = state(market.book)
    h.take_actions()

    h.on_frame(0, frame(12, 12, bids, '[["101.0","3"]]'), 2)

    assert state(market.book) == before  # not one level of the message applied
    assert not market.valid and market.rejected == 1 and market.resyncs == 1
    assert "bad level" in market.invalid_reason and market.messages == 1
    assert [a for a in h.take_actions() if isinstance(a, FetchSnapshot)], "a resync must be scheduled"
    assert alerts == []
    assert math.isfinite(market.book.bid_volume) and math.isfinite(market.book.ask_volume)
