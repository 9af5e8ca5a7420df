"""Coinbase cases for bench_venues.py: the real level2 recording, ours vs cryptofeed's Coinbase feed.

Frames: every `l2_data` update of ../shared/realdata/COINBASE.jsonl.zst
(BTC-USD and ETH-USD, 2026-08-09), byte for byte except `sequence_num`,
renumbered so the update messages alone chain (on the live connection the
number also counts the ticker, trade and heartbeat messages between them).
Both handlers start from the recording's two `l2_data` snapshots.

The rival is cryptofeed's `Coinbase` feed, driven offline: its symbol table
comes from its own `_parse_symbol_data` on the recording's product list (the
constructor would fetch it), the snapshots go through its
`message_handler`, and every frame then through `await
feed.message_handler(frame, conn, ts)` -- JSON decode with Decimal prices,
its dict book updates and its (empty) book callback.  cryptofeed follows no
`sequence_num`.
"""

from __future__ import annotations

import io
import json
import re
import statistics
from functools import partial
from pathlib import Path
from typing import Any

from benches.venue_cases import FrameSink, VenueCase

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata" / "COINBASE.jsonl.zst"
WS = "ws://127.0.0.1:9/"
PRODUCTS = ("BTC-USD", "ETH-USD")
_SEQ = re.compile(rb'"sequence_num":\d+')


def _records() -> list[dict[str, Any]]:
    import zstandard

    with REALDATA.open("rb") as f:
        text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8")
        return [json.loads(line) for line in text if line.strip()]


def _renumber(frame: bytes, seq: int) -> bytes:
    out, n = _SEQ.subn(b'"sequence_num":%d' % seq, frame, count=1)
    if n != 1:
        raise ValueError("a level2 frame without sequence_num")
    return out


def recorded() -> tuple[list[bytes], list[bytes], dict[str, Any]]:
    """(snapshot frames numbered 0.., update frames chaining after them, the product list body)."""
    records = _records()
    products: dict[str, Any] = {}
    snapshots: list[bytes] = []
    updates: list[bytes] = []
    for r in records:
        if r["t"] == "http" and "/products" in r["url"] and not products:
            products = json.loads(r["data"])
        elif r["t"] == "recv":
            data = r["data"].encode()
            if b'"channel":"l2_data"' not in data:
                continue
            if b'"type":"snapshot"' in data:
                snapshots.append(data)
            elif b'"type":"update"' in data:
                updates.append(data)
    seq = 0
    numbered_snapshots = []
    for frame in snapshots:
        numbered_snapshots.append(_renumber(frame, seq))
        seq += 1
    numbered_updates = []
    for frame in updates:
        numbered_updates.append(_renumber(frame, seq))
        seq += 1
    return numbered_snapshots, numbered_updates, products


def level_count(frame: bytes) -> int:
    return sum(len(ev.get("updates", [])) for ev in json.loads(frame)["events"])


def _start_ours(snapshots: list[bytes]) -> FrameSink:
    return partial(ours(snapshots).on_frame, 0, recv_ms=0)


def ours(snapshots: list[bytes]):
    """Our handler (BTC-USD, ETH-USD), synced on the recording's snapshots."""
    from sentrycoin.feeds.coinbase import CoinbaseHandler
    from sentrycoin.market import Market

    markets = [Market("coinbase", p, depth=50, capacity=5000, source="replay") for p in PRODUCTS]
    handler = CoinbaseHandler(markets, WS)
    handler.on_connected(0)
    handler.take_actions()
    for frame in snapshots:
        handler.on_frame(0, frame, 0)
    if not all(m.valid for m in markets):
        raise RuntimeError("coinbase bench handler failed to sync")
    return handler


class _Conn:
    uuid = "bench"


def _start_rival(snapshots: list[bytes], products: dict[str, Any]) -> FrameSink:
    import asyncio

    from cryptofeed.defines import L2_BOOK
    from cryptofeed.exchanges.coinbase import Coinbase
    from cryptofeed.symbols import Symbols

    if not Symbols.populated(Coinbase.id):
        syms, info = Coinbase._parse_symbol_data(products)
        Symbols.set(Coinbase.id, syms, info)

    async def on_book(book, receipt_timestamp) -> None:
        pass

    feed = Coinbase(symbols=list(PRODUCTS), channels=[L2_BOOK], callbacks={L2_BOOK: on_book})
    conn = _Conn()
    loop = asyncio.new_event_loop()
    try:
        for frame in snapshots:
            loop.run_until_complete(feed.message_handler(frame.decode(), conn, 0.0))
    finally:
        loop.close()
    # A partial of the coroutine function: the runner sees one to await.
    return partial(feed.message_handler, conn=conn, timestamp=0.0)


def _cryptofeed_ok() -> bool:
    try:
        import cryptofeed.exchanges.coinbase  # noqa: F401
    except Exception:
        return False
    return True


def cases() -> list[VenueCase]:
    if not REALDATA.is_file():
        return []
    snapshots, updates, products = recorded()
    rival = _cryptofeed_ok()
    return [VenueCase(
        name=f"coinbase level2 (real, {int(statistics.median(level_count(f) for f in updates))} levels)",
        venue="coinbase",
        source="real COINBASE.jsonl.zst (l2_data updates; sequence_num renumbered to chain)",
        levels=int(statistics.median(level_count(f) for f in updates)),
        frames=updates,
        start_ours=lambda: _start_ours(snapshots),
        start_rival=(lambda: _start_rival(snapshots, products)) if rival else None,
        rival_note="cryptofeed Coinbase: no sequence check (it has none), empty book callback",
    )]
