"""Floating-point drift of the incrementally maintained top-N volumes is bounded."""

from __future__ import annotations

import math

import numpy as np

from sentrycore import OrderBook

UPDATES = 10_000_000
BATCH = 500
CHECK_EVERY = 100_000


def _stream(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Prices on a 2,000-tick grid, clustered near the top; quantities spanning
    # nine orders of magnitude (whales next to dust) so that cancellation in a
    # naive running sum would show; 30 % deletes.
    ticks = np.minimum(rng.exponential(150.0, n).astype(np.int64), 1999)
    qtys = np.exp(rng.normal(0.0, 3.0, n))
    qtys[rng.random(n) < 0.02] *= 1e4
    qtys[rng.random(n) < 0.30] = 0.0
    return ticks.astype(np.float64), qtys


def test_top_n_volumes_stay_within_1e9_of_exact_over_10_million_updates() -> None:
    rng = np.random.default_rng(20261126)
    book = OrderBook(depth=50, capacity=5000)
    worst = 0.0
    done = 0
    while done < UPDATES:
        ticks, qtys = _stream(rng, CHECK_EVERY)
        for start in range(0, CHECK_EVERY, BATCH):
            t = ticks[start : start + BATCH]
            q = qtys[start : start + BATCH]
            book.apply_bids(np.ascontiguousarray(10_000.0 - t * 0.5), np.ascontiguousarray(q))
            book.apply_asks(np.ascontiguousarray(10_000.5 + t * 0.5), np.ascontiguousarray(q[::-1]))
        done += CHECK_EVERY
        for got, levels in ((book.bid_volume, book.bids(50)), (book.ask_volume, book.asks(50))):
            exact = math.fsum(levels[:, 1])
            if exact == 0.0:
                assert got == 0.0
            else:
                err = abs(got - exact) / exact
                worst = max(worst, err)
                assert err <= 1e-9, f"drift {err:.3e} after {done} updates"
    assert done == UPDATES
    # Not a bound we promise, but a sign the compensation works at all:
    assert worst < 1e-12


def test_emptied_side_reads_exactly_zero_after_heavy_traffic() -> None:
    rng = np.random.default_rng(7)
    book = OrderBook(depth=50)
    prices = 100.0 + np.arange(400) * 0.1
    for _ in range(200):
        q = np.exp(rng.normal(0.0, 4.0, prices.size))
        book.apply_bids(prices, q)
        book.apply_asks(prices + 50.0, q)
    book.apply_bids(prices, np.zeros_like(prices))
    book.apply_asks(prices + 50.0, np.zeros_like(prices))
    assert book.bid_levels == 0 and book.ask_levels == 0
    assert book.bid_volume == 0.0 and book.ask_volume == 0.0
    assert math.copysign(1.0, book.bid_volume) == 1.0
    assert math.isnan(book.ratio)
