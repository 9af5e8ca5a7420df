"""The real Binance recording's level changes, ready to be written in any venue's format.

`benches/venue_cases/` rewrites these into Bybit, OKX (and other venues')
messages, so every venue is measured on the same real BTCUSDT 2024-08-08 book
traffic (../shared/realdata, via benches/feed_frames.py; generated frames of
the same sizes when the recording is absent):

* `snapshot()`: the recording's 1000-level REST snapshot, as (price, qty)
  text pairs per side;
* `messages(levels=None)`: the update messages in order, each
  `Message(bids, asks, event_ms)`.  `levels=None` keeps the recording's own
  message boundaries (median 16 level changes); `levels=n` regroups the
  same stream of changes, in the same order, into messages of n changes --
  extended by as many as it takes to leave the book uncrossed, as every
  real message does -- so a venue case of n levels per message has a
  Binance base of the same size.

Texts are Binance's (`61737.63000000`); `trim()` gives the shortest form
other venues send (`61737.63`, `0.001`, `0`).
"""

from __future__ import annotations

import json
from functools import cache
from typing import NamedTuple

from benches.feed_frames import chained_frames, source  # noqa: F401  (source: the row label)

Level = tuple[str, str]


class Message(NamedTuple):
    bids: list[Level]
    asks: list[Level]
    event_ms: int


@cache
def _recorded() -> tuple[tuple[Message, ...], tuple[tuple[Level, ...], tuple[Level, ...]]]:
    frames, snapshot = chained_frames("recorded")
    out = []
    for frame in frames:
        d = json.loads(frame)["data"]
        out.append(Message([tuple(x) for x in d["b"]], [tuple(x) for x in d["a"]], d["E"]))
    snap = json.loads(snapshot)
    return tuple(out), (tuple(tuple(x) for x in snap["bids"]), tuple(tuple(x) for x in snap["asks"]))


def snapshot() -> tuple[list[Level], list[Level]]:
    bids, asks = _recorded()[1]
    return list(bids), list(asks)


@cache
def _regrouped(levels: int) -> tuple[Message, ...]:
    import numpy as np

    from sentrycore.book import OrderBook

    changes = [(side, lv, m.event_ms) for m in _recorded()[0] for side, lvs in (("b", m.bids), ("a", m.asks))
               for lv in lvs]
    bids, asks = snapshot()
    book = OrderBook(depth=50, capacity=20000)
    book.load_snapshot(np.array(bids, np.float64).reshape(-1, 2), np.array(asks, np.float64).reshape(-1, 2))
    out: list[Message] = []
    cur_b: list[Level] = []
    cur_a: list[Level] = []
    for side, (px, qty), event_ms in changes:
        p, q = np.array([float(px)]), np.array([float(qty)])
        if side == "b":
            cur_b.append((px, qty))
            book.apply_bids(p, q)
        else:
            cur_a.append((px, qty))
            book.apply_asks(p, q)
        crossed = book.bid_levels and book.ask_levels and book.best_bid >= book.best_ask
        if len(cur_b) + len(cur_a) >= levels and not crossed:
            out.append(Message(cur_b, cur_a, event_ms))
            cur_b, cur_a = [], []
    return tuple(out)


def messages(levels: int | None = None) -> list[Message]:
    """The update messages in order (see the module docstring)."""
    if levels is None:
        return list(_recorded()[0])
    return list(_regrouped(levels))


def median_levels(msgs: list[Message]) -> int:
    counts = sorted(len(m.bids) + len(m.asks) for m in msgs)
    return counts[len(counts) // 2]


def trim(text: str) -> str:
    """`61737.63000000` -> `61737.63`, `0.00000000` -> `0`, `5.00` -> `5`."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
