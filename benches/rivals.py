"""The books SentryCoin's core is measured against, each producing top-N volumes.

All expose: load(bids, asks); apply(bid_levels, ask_levels); volumes(n) -> (bid, ask).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from itertools import islice

# order_book and sortedcontainers (bench extras) are imported by the books that use
# them, so the pure-Python DictBisectBook (the venue cases' reference) imports without them.


class DictBisectBook:
    """The fastest pure-Python book we know: dict of sizes + a sorted price list."""

    def __init__(self) -> None:
        self.bid: dict[float, float] = {}
        self.ask: dict[float, float] = {}
        self.bid_prices: list[float] = []  # ascending: best bid last
        self.ask_prices: list[float] = []  # ascending: best ask first

    def load(self, bids, asks) -> None:
        self.bid = dict(bids)
        self.ask = dict(asks)
        self.bid_prices = sorted(self.bid)
        self.ask_prices = sorted(self.ask)

    @staticmethod
    def _set(sizes: dict, prices: list, price: float, qty: float) -> None:
        if qty == 0.0:
            if sizes.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]
        else:
            if price not in sizes:
                insort(prices, price)
            sizes[price] = qty

    def apply(self, bid_levels, ask_levels) -> None:
        for p, q in bid_levels:
            self._set(self.bid, self.bid_prices, p, q)
        for p, q in ask_levels:
            self._set(self.ask, self.ask_prices, p, q)

    def volumes(self, n: int) -> tuple[float, float]:
        bid = self.bid
        ask = self.ask
        return (sum([bid[p] for p in self.bid_prices[-n:]]), sum([ask[p] for p in self.ask_prices[:n]]))


class SortedDictBook:
    def __init__(self) -> None:
        from sortedcontainers import SortedDict

        self._sorted_dict = SortedDict
        self.bid = SortedDict()
        self.ask = SortedDict()

    def load(self, bids, asks) -> None:
        self.bid = self._sorted_dict(bids)
        self.ask = self._sorted_dict(asks)

    @staticmethod
    def _set(side, price: float, qty: float) -> None:
        if qty == 0.0:
            side.pop(price, None)
        else:
            side[price] = qty

    def apply(self, bid_levels, ask_levels) -> None:
        for p, q in bid_levels:
            self._set(self.bid, p, q)
        for p, q in ask_levels:
            self._set(self.ask, p, q)

    def volumes(self, n: int) -> tuple[float, float]:
        bid, ask = self.bid, self.ask
        return (
            sum([bid[p] for p in islice(reversed(bid), n)]),
            sum([ask[p] for p in islice(ask, n)]),
        )

    def update_bid(self, price: float, qty: float) -> None:
        self._set(self.bid, price, qty)

    def update_ask(self, price: float, qty: float) -> None:
        self._set(self.ask, price, qty)


class OrderBookLibBook:
    """The `order-book` C library (cryptofeed's book)."""

    def __init__(self) -> None:
        import order_book

        self._new_book = order_book.OrderBook
        self.book = order_book.OrderBook()

    def load(self, bids, asks) -> None:
        self.book = self._new_book()
        b, a = self.book.bids, self.book.asks
        for p, q in bids:
            b[p] = q
        for p, q in asks:
            a[p] = q

    def apply(self, bid_levels, ask_levels) -> None:
        b, a = self.book.bids, self.book.asks
        for p, q in bid_levels:
            if q == 0.0:
                if p in b:
                    del b[p]
            else:
                b[p] = q
        for p, q in ask_levels:
            if q == 0.0:
                if p in a:
                    del a[p]
            else:
                a[p] = q

    def volumes(self, n: int) -> tuple[float, float]:
        # index(i) walks the library's sorted view: the cheapest way to the top n.
        b, a = self.book.bids, self.book.asks
        nb = min(n, len(b))
        na = min(n, len(a))
        return (sum([b.index(i)[1] for i in range(nb)]), sum([a.index(i)[1] for i in range(na)]))
