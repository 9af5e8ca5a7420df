"""Bybit v5 `orderbook.50.BTCUSDT` deltas rewritten from the real Binance recording's levels.

Same level changes, same order, same message boundaries as the Binance case
(benches/venue_frames.py), written as Bybit writes them (`61737.63`,
`0.001`).  Ours: BybitSpotHandler.on_frame (the C path).  Rival: cryptofeed's
Bybit feed driven offline (symbol table set directly, the book loaded by
its own handler from the snapshot message, then `message_handler` per frame).
"""

from __future__ import annotations

import json
from functools import cache, partial

from benches import venue_frames
from benches.feed_rivals import cryptofeed_available
from benches.venue_cases import FrameSink, VenueCase
from benches.venue_frames import trim
from sentrycoin.feeds.bybit import BybitSpotHandler
from sentrycoin.market import Market

FIRST_U = 2_000_000
WS = "ws://127.0.0.1:9/v5/public/spot"


def _message(kind: str, u: int, bids, asks, ts: int) -> bytes:
    return json.dumps({"topic": "orderbook.50.BTCUSDT", "type": kind, "ts": ts,
                       "data": {"s": "BTCUSDT", "b": [[trim(p), trim(q)] for p, q in bids],
                                "a": [[trim(p), trim(q)] for p, q in asks], "u": u, "seq": u * 3},
                       "cts": ts - 2}, separators=(",", ":")).encode()


@cache
def frames(levels: int | None = None) -> tuple[list[bytes], bytes]:
    """(deltas chained on the snapshot, snapshot message)."""
    bids, asks = venue_frames.snapshot()
    msgs = venue_frames.messages(levels)
    snap = _message("snapshot", FIRST_U, [b for b in bids if float(b[1])], [a for a in asks if float(a[1])],
                    msgs[0].event_ms)
    return [_message("delta", FIRST_U + 1 + i, m.bids, m.asks, m.event_ms) for i, m in enumerate(msgs)], snap


def _start_ours(snapshot: bytes) -> FrameSink:
    market = Market("bybit", "BTC-USDT", depth=50, capacity=5000, source="replay")
    h = BybitSpotHandler([market], WS)
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, snapshot, 0)
    assert market.valid, "bybit bench handler failed to sync"

    def check() -> None:
        assert market.valid and market.resyncs == 0, "bybit handler lost sync"
        assert h._frame_path.taken > 0, "bybit frames did not take the C path"

    sink = partial(h.on_frame, 0, recv_ms=0)
    sink.check = check  # type: ignore[attr-defined]  # run by bench_venues after each round
    return sink


def _start_rival(snapshot: bytes) -> FrameSink:
    import asyncio
    from decimal import Decimal

    from cryptofeed.defines import L2_BOOK, SPOT
    from cryptofeed.exchanges.bybit import Bybit
    from cryptofeed.symbols import Symbol, Symbols

    sym = Symbol("BTC", "USDT", type=SPOT)
    Symbols.set(Bybit.id, {sym.normalized: "BTC/USDT"},
                {"tick_size": {sym.normalized: Decimal("0.01")}, "instrument_type": {sym.normalized: SPOT}})

    async def on_book(book, receipt_timestamp) -> None:
        pass

    class Conn:  # cryptofeed reads the market type from the connection's URL
        address = "wss://stream.bybit.com/v5/public/spot"
        uuid = "bench"

    feed = Bybit(symbols=["BTC-USDT"], channels=[L2_BOOK], callbacks={L2_BOOK: on_book})
    conn = Conn()
    handler = feed.message_handler
    asyncio.run(handler(snapshot, conn, 0.0))
    return lambda frame: handler(frame, conn, 0.0)


def cases() -> list[VenueCase]:
    deltas, snapshot = frames()
    n = venue_frames.median_levels(venue_frames.messages())
    return [VenueCase(
        name=f"bybit ({n} levels)", venue="bybit", source="rewritten from the real Binance levels",
        levels=n, frames=deltas, start_ours=partial(_start_ours, snapshot),
        start_rival=None if cryptofeed_available() else partial(_start_rival, snapshot),
        rival_note="cryptofeed Bybit (no sequence check)")]
