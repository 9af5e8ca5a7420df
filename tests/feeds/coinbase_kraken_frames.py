"""Helpers for the Coinbase and Kraken handler tests: message builders, recordings, book copies."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

from sentrycoin.market import Market
from sentrycore import OrderBook

# -- recordings ---------------------------------------------------------------------


def read_records(path: Path) -> list[dict[str, Any]]:
    """All JSON-lines records of a zstd recording (see realdata/README.md)."""
    with path.open("rb") as f:
        text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8")
        return [json.loads(line) for line in text if line.strip()]


def recv_frames(records: list[dict[str, Any]], conn: str | None = None) -> list[tuple[bytes, int]]:
    """(frame bytes, recv_ms) of every received frame, optionally of one connection."""
    return [
        (r["data"].encode(), int(r["ts"] * 1000))
        for r in records
        if r["t"] == "recv" and (conn is None or r["conn"] == conn)
    ]


# -- books --------------------------------------------------------------------------


def book_copy(market: Market) -> tuple[np.ndarray, np.ndarray]:
    return market.book.bids(), market.book.asks()


def same_book(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    return bool(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))


class CountingBook(OrderBook):
    """An OrderBook that records the batch calls a handler makes (the detector still sees a real book)."""

    def __init__(self, depth: int = 50, capacity: int = 5000, max_capacity: int | None = None) -> None:
        self.calls: list[str] = []

    def apply_bids(self, prices: np.ndarray, qtys: np.ndarray) -> None:
        self.calls.append("apply_bids")
        super().apply_bids(prices, qtys)

    def apply_asks(self, prices: np.ndarray, qtys: np.ndarray) -> None:
        self.calls.append("apply_asks")
        super().apply_asks(prices, qtys)

    def apply(self, bid_prices: np.ndarray, bid_qtys: np.ndarray, ask_prices: np.ndarray,
              ask_qtys: np.ndarray) -> None:
        self.calls.append(f"apply({len(bid_prices)} bids, {len(ask_prices)} asks)")
        super().apply(bid_prices, bid_qtys, ask_prices, ask_qtys)


def counting_book(market: Market) -> CountingBook:
    """Swap the market's book for a CountingBook holding the same levels."""
    old = market.book
    book = CountingBook(depth=old.depth, capacity=old.capacity, max_capacity=old.max_capacity)
    book.load_snapshot(old.bids(), old.asks())
    market.book = book
    return book


# -- Coinbase -----------------------------------------------------------------------


def cb_frame(seq: int, channel: str, events: list[dict[str, Any]],
             timestamp: str = "2026-08-09T21:05:48.483587501Z") -> bytes:
    return json.dumps({"channel": channel, "timestamp": timestamp, "sequence_num": seq,
                       "events": events}).encode()


def cb_l2(seq: int, product: str, kind: str, levels: list[tuple[str, str, str]],
          timestamp: str = "2026-08-09T21:05:48.483587501Z") -> bytes:
    """levels: (side, price, qty) with side bid | offer."""
    updates = [{"side": side, "event_time": "2026-08-09T21:05:48.170326Z", "price_level": p,
                "new_quantity": q} for side, p, q in levels]
    return cb_frame(seq, "l2_data", [{"type": kind, "product_id": product, "updates": updates}], timestamp)


def cb_heartbeat(seq: int) -> bytes:
    return cb_frame(seq, "heartbeats", [{"current_time": "2026-08-09 21:05:48.854840045 +0000 UTC",
                                         "heartbeat_counter": seq}])


def cb_snapshot_levels(mid: float, n: int = 5, step: float = 1.0, qty: str = "1.5") -> list[tuple[str, str, str]]:
    bids = [("bid", f"{mid - step * (i + 1):.2f}", qty) for i in range(n)]
    asks = [("offer", f"{mid + step * (i + 1):.2f}", qty) for i in range(n)]
    return bids + asks


# -- Kraken -------------------------------------------------------------------------


def kr_v2_book(kind: str, symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
               checksum: int | None) -> bytes:
    """A v2 book message; prices and quantities are written as raw JSON numbers."""
    def levels(side: list[tuple[str, str]]) -> str:
        return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in side) + "]"
    cs = "" if checksum is None else f',"checksum":{checksum}'
    return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":{levels(bids)},'
            f'"asks":{levels(asks)}{cs},"timestamp":"2026-01-02T03:04:05.678901Z"}}]}}').encode()


def kr_v2_instrument(pairs: list[tuple[str, int, int]], kind: str = "snapshot") -> bytes:
    return json.dumps({"channel": "instrument", "type": kind, "data": {
        "assets": [{"id": "BTC", "status": "enabled"}],
        "pairs": [{"symbol": s, "base": s.split("/")[0], "quote": s.split("/")[1], "status": "online",
                   "price_precision": pp, "qty_precision": qp, "price_increment": 0.1}
                  for s, pp, qp in pairs]}}).encode()


def kr_v1_snapshot(channel_id: int, pair: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]],
                   depth: int = 10) -> bytes:
    ts = "1618678123.481570"
    return json.dumps([channel_id, {"as": [[p, q, ts] for p, q in asks], "bs": [[p, q, ts] for p, q in bids]},
                       f"book-{depth}", pair]).encode()


def kr_v1_update(channel_id: int, pair: str, asks: list[list[str]] | None, bids: list[list[str]] | None,
                 checksum: int | str | None, depth: int = 10) -> bytes:
    """Levels are [price, qty] or [price, qty, "r"]; a timestamp is inserted."""
    ts = "1618678145.920470"

    def full(levels: list[list[str]]) -> list[list[str]]:
        return [[lv[0], lv[1], ts, *lv[2:]] for lv in levels]

    objs: list[dict[str, Any]] = []
    if asks is not None:
        objs.append({"a": full(asks)})
    if bids is not None:
        objs.append({"b": full(bids)})
    if checksum is not None:
        objs[-1]["c"] = str(checksum)
    return json.dumps([channel_id, *objs, f"book-{depth}", pair]).encode()


def kr_v1_status(pair: str, depth: int, channel_id: int = 42, status: str = "subscribed") -> bytes:
    return json.dumps({"channelID": channel_id, "channelName": f"book-{depth}", "event": "subscriptionStatus",
                       "pair": pair, "status": status, "subscription": {"depth": depth, "name": "book"}}).encode()
