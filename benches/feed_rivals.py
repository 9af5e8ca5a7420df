"""Off-the-shelf Binance depth pipelines that bench_feed.py races SentryCoin against.

* `MsgspecDictPipeline`: the best plain-Python pipeline we know -- one typed
  msgspec decode (strings converted to floats by msgspec), the U/u chain
  check, `benches.rivals.DictBisectBook`, top-50 volumes summed in Python and
  the ratio compared with the danger threshold.
* `CryptofeedPipeline`: cryptofeed's own `Binance` feed, driven offline.
  Its symbol table is filled by its own `_parse_symbol_data` from a minimal
  exchangeInfo-shaped dict (the constructor would otherwise fetch it over
  HTTP); its book and `last_update_id` are seeded from the recording's REST
  snapshot the way its `_snapshot` does; each frame then goes through
  `await feed.message_handler(frame, conn, timestamp)` -- JSON decode with
  Decimal prices, its sequence check, its order_book update and its
  book callback.  With `top_n`, the callback also computes the best-N bid
  and ask volumes from its book (iterating `order_book`'s SortedDict), which is what
  a SentryCoin-style detector would need.
"""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import islice

import msgspec

from benches.rivals import DictBisectBook

Level = tuple[float, float]


class _Depth(msgspec.Struct, gc=False):
    E: int
    s: str
    U: int
    u: int
    b: list[Level]
    a: list[Level]


class _Combined(msgspec.Struct, gc=False):
    stream: str
    data: _Depth


class MsgspecDictPipeline:
    """msgspec typed decode + U/u chain + DictBisectBook + Python top-N sums + threshold."""

    def __init__(self, snapshot: bytes, depth: int = 50, danger_ratio: float = 2.5) -> None:
        snap = json.loads(snapshot)
        self.book = DictBisectBook()
        self.book.load([(float(p), float(q)) for p, q in snap["bids"] if float(q) > 0],
                       [(float(p), float(q)) for p, q in snap["asks"] if float(q) > 0])
        self.last_u = snap["lastUpdateId"]
        self.depth = depth
        self.danger_ratio = danger_ratio
        self.decoder = msgspec.json.Decoder(_Combined, strict=False)
        self.alerts = 0

    def on_frame(self, data: bytes) -> None:
        ev = self.decoder.decode(data).data
        if ev.U != self.last_u + 1:
            raise RuntimeError("gap")  # never happens on the chained bench frames
        self.book.apply(ev.b, ev.a)
        self.last_u = ev.u
        bid, ask = self.book.volumes(self.depth)
        if bid > 0 and ask / bid >= self.danger_ratio:
            self.alerts += 1


def cryptofeed_available() -> str | None:
    """None when cryptofeed imports, else the reason it does not."""
    try:
        import cryptofeed.exchanges.binance  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the venv
        return f"{type(exc).__name__}: {exc}"
    return None


class CryptofeedPipeline:
    """cryptofeed.exchanges.Binance fed frames directly (no network)."""

    def __init__(self, snapshot: bytes, top_n: int | None = None, symbol: str = "BTCUSDT") -> None:
        from cryptofeed.defines import L2_BOOK
        from cryptofeed.exchanges.binance import Binance
        from cryptofeed.symbols import Symbols
        from cryptofeed.types import OrderBook

        if not Symbols.populated(Binance.id):
            info = {"symbols": [{"symbol": symbol, "baseAsset": "BTC", "quoteAsset": "USDT", "status": "TRADING",
                                 "filters": [{"tickSize": "0.01000000"}]}]}
            syms, sym_info = Binance._parse_symbol_data(info)
            Symbols.set(Binance.id, syms, sym_info)
        self.top_n = top_n
        self.volumes = (0.0, 0.0)
        self.updates = 0
        self.feed = Binance(symbols=["BTC-USDT"], channels=[L2_BOOK], callbacks={L2_BOOK: self._on_book})
        snap = json.loads(snapshot, parse_float=Decimal)
        std = self.feed.exchange_symbol_to_std_symbol(symbol)
        self.feed.last_update_id[std] = snap["lastUpdateId"]
        self.feed._l2_book[std] = OrderBook(self.feed.id, std, max_depth=self.feed.max_depth,
                                            bids={Decimal(p): Decimal(q) for p, q in snap["bids"]},
                                            asks={Decimal(p): Decimal(q) for p, q in snap["asks"]})
        self.std = std
        self.handler = self.feed.message_handler

    async def _on_book(self, book, receipt_timestamp) -> None:
        self.updates += 1
        if self.top_n:
            n = self.top_n
            bids = book.book.bids
            asks = book.book.asks
            # order_book's SortedDict iterates its prices best first; of the
            # ways to read the top n (index(i), keys(), to_list()) this was fastest.
            self.volumes = (sum([bids[p] for p in islice(bids, n)]),
                            sum([asks[p] for p in islice(asks, n)]))

    def book(self):
        return self.feed._l2_book[self.std]
