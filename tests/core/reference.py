"""A plain-Python order book with the documented semantics of sentrycore.OrderBook.

Slow and obviously correct: a dict per side, volumes recomputed exactly with
math.fsum on every read.  Capacity overflow: inserting into a full side drops
the worst level, unless the new level would itself be the worst.
"""

from __future__ import annotations

import math


class ReferenceBook:
    def __init__(self, depth: int = 50, capacity: int = 5000) -> None:
        self.depth = depth
        self.capacity = capacity
        self.bid: dict[float, float] = {}
        self.ask: dict[float, float] = {}
        self.truncated = False

    def _update(self, side: dict[float, float], price: float, qty: float, best_is_high: bool) -> None:
        if qty == 0:
            side.pop(price, None)
            return
        if price in side or len(side) < self.capacity:
            side[price] = qty
            return
        self.truncated = True
        worst = min(side) if best_is_high else max(side)
        new_is_worse = price < worst if best_is_high else price > worst
        if new_is_worse:
            return
        del side[worst]
        side[price] = qty

    def update_bid(self, price: float, qty: float) -> None:
        self._update(self.bid, price, qty, True)

    def update_ask(self, price: float, qty: float) -> None:
        self._update(self.ask, price, qty, False)

    def load_snapshot(self, bids, asks) -> None:
        self.bid.clear()
        self.ask.clear()
        merged_bids: dict[float, float] = {}
        merged_asks: dict[float, float] = {}
        for p, q in bids:
            merged_bids[float(p)] = float(q)
        for p, q in asks:
            merged_asks[float(p)] = float(q)
        self.bid = dict(sorted(((p, q) for p, q in merged_bids.items() if q > 0), reverse=True)[: self.capacity])
        self.ask = dict(sorted((p, q) for p, q in merged_asks.items() if q > 0)[: self.capacity])
        self.truncated = (
            sum(1 for q in merged_bids.values() if q > 0) > self.capacity
            or sum(1 for q in merged_asks.values() if q > 0) > self.capacity
        )

    def bids(self, n: int) -> list[tuple[float, float]]:
        return sorted(self.bid.items(), reverse=True)[:n]

    def asks(self, n: int) -> list[tuple[float, float]]:
        return sorted(self.ask.items())[:n]

    @property
    def bid_volume(self) -> float:
        return math.fsum(q for _, q in self.bids(self.depth))

    @property
    def ask_volume(self) -> float:
        return math.fsum(q for _, q in self.asks(self.depth))

    @property
    def best_bid(self) -> float:
        return max(self.bid) if self.bid else math.nan

    @property
    def best_ask(self) -> float:
        return min(self.ask) if self.ask else math.nan
