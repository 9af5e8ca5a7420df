"""Kraken cases for bench_venues.py: v2 `book` (checksum on) rewritten from real Binance levels, and real v1.

* "kraken v2": the 2024-08-08 BTCUSDT recording's snapshot and diff-depth
  levels (benches/feed_frames.py) written as Kraken v2 `book` messages for
  BTC/USD, subscribed at depth 1000 with instrument precisions 2 (price) and
  8 (qty): numbers as JSON numbers without trailing zeros (as Kraken writes
  them), only what Kraken would send -- a delete of a level the book does
  not hold is dropped, levels pushed beyond the depth get no delete -- and
  every message carries the correct CRC32 of the venue's book, computed
  here from the text with `sentrycoin.feeds.checksum.kraken_checksum` on a
  sortedcontainers model of that book.  Ours verifies every checksum.
* "kraken v1 (real)": every book update of ../shared/realdata/KRAKEN.jsonl.zst
  (10 pairs, depth 1000, 2021), after the recording's snapshots.

The rival is cryptofeed's `Kraken` feed (it speaks v1 only), driven offline:
symbol table from its own `_parse_symbol_data` on an AssetPairs-shaped dict,
snapshots through its `message_handler`, then every frame through `await
feed.message_handler(frame, conn, ts)` -- checksum validation off, its
default.  For the v2 row it is fed the same levels as v1 frames (same
prices and sizes as strings with the instrument's decimals, same checksum).
"""

from __future__ import annotations

import io
import json
import statistics
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from benches.venue_cases import FrameSink, VenueCase
from sentrycoin.feeds.checksum import kraken_checksum

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
V2_URL = "ws://127.0.0.1:9/v2"
V1_URL = "ws://127.0.0.1:9/"
DEPTH = 1000
PRICE_PLACES, QTY_PLACES = 2, 8
TIMESTAMP = "2024-08-08T23:54:15.208000Z"
V1_TIME = "1723161255.208000"


# -- v2 frames rewritten from the Binance recording -----------------------------------------


def _number(value: Decimal) -> str:
    """A JSON number as Kraken v2 writes it: no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text


class _VenueBook:
    """What Kraken's book holds (text), truncated to the depth, and its checksum."""

    def __init__(self, bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]]) -> None:
        from sortedcontainers import SortedDict

        self.bids = SortedDict({p: q for p, q in bids})
        self.asks = SortedDict({p: q for p, q in asks})
        self._truncate()

    def _truncate(self) -> None:
        while len(self.bids) > DEPTH:
            self.bids.popitem(0)  # lowest bid
        while len(self.asks) > DEPTH:
            self.asks.popitem(-1)  # highest ask

    def apply(self, levels: list[tuple[Decimal, Decimal]], side: Any) -> list[tuple[Decimal, Decimal]]:
        sent = []
        for p, q in levels:
            if q == 0:
                if p in side:
                    del side[p]
                    sent.append((p, q))
            else:
                side[p] = q
                sent.append((p, q))
        return sent

    def checksum(self) -> int:
        def text(pairs):
            return [(f"{p:.{PRICE_PLACES}f}", f"{q:.{QTY_PLACES}f}") for p, q in pairs]
        asks = [(p, self.asks[p]) for p in self.asks.islice(0, 10)]
        bids = [(p, self.bids[p]) for p in self.bids.islice(len(self.bids) - 10 if len(self.bids) > 10 else 0)][::-1]
        return kraken_checksum(text(asks), text(bids))


def _levels(pairs: list[list[str]]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(q)) for p, q in pairs]


def v2_frames() -> tuple[bytes, list[bytes], list[bytes], list[bytes]]:
    """(v2 snapshot, v2 updates, the same as v1 frames: snapshot first, then updates)."""
    from benches.feed_frames import chained_frames

    frames, snapshot = chained_frames("recorded")
    snap = json.loads(snapshot)
    book = _VenueBook(_levels(snap["bids"]), _levels([lv for lv in snap["asks"]]))
    snap_bids = [(p, book.bids[p]) for p in reversed(book.bids)]
    snap_asks = [(p, book.asks[p]) for p in book.asks]
    crc = book.checksum()
    v2_snapshot = _v2("snapshot", snap_bids, snap_asks, crc)
    v1 = [json.dumps([42, {"as": [[f"{p:.{PRICE_PLACES}f}", f"{q:.{QTY_PLACES}f}", V1_TIME] for p, q in snap_asks],
                           "bs": [[f"{p:.{PRICE_PLACES}f}", f"{q:.{QTY_PLACES}f}", V1_TIME] for p, q in snap_bids]},
                      "book-1000", "XBT/USD"], separators=(",", ":")).encode()]
    updates = []
    for frame in frames:
        data = json.loads(frame)["data"]
        bids = book.apply(_levels(data["b"]), book.bids)
        asks = book.apply(_levels(data["a"]), book.asks)
        book._truncate()
        if not bids and not asks:
            continue
        crc = book.checksum()
        updates.append(_v2("update", bids, asks, crc))
        parts: list[dict[str, Any]] = []
        if asks:
            parts.append({"a": [[f"{p:.{PRICE_PLACES}f}", f"{q:.{QTY_PLACES}f}", V1_TIME] for p, q in asks]})
        if bids:
            parts.append({"b": [[f"{p:.{PRICE_PLACES}f}", f"{q:.{QTY_PLACES}f}", V1_TIME] for p, q in bids]})
        parts[-1]["c"] = str(crc)
        v1.append(json.dumps([42, *parts, "book-1000", "XBT/USD"], separators=(",", ":")).encode())
    return v2_snapshot, updates, v1[:1], v1[1:]


def _v2(kind: str, bids, asks, checksum: int) -> bytes:
    def side(levels):
        return "[" + ",".join(f'{{"price":{_number(p)},"qty":{_number(q)}}}' for p, q in levels) + "]"
    return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"BTC/USD","bids":{side(bids)},'
            f'"asks":{side(asks)},"checksum":{checksum},"timestamp":"{TIMESTAMP}"}}]}}').encode()


def _v2_instrument() -> bytes:
    return json.dumps({"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": [
        {"symbol": "BTC/USD", "base": "BTC", "quote": "USD", "status": "online",
         "price_precision": PRICE_PLACES, "qty_precision": QTY_PLACES}]}}).encode()


def _start_ours_v2(snapshot: bytes) -> FrameSink:
    return partial(ours_v2(snapshot).on_frame, 0, recv_ms=0)


def ours_v2(snapshot: bytes):
    """Our v2 handler, synced on `snapshot` (BTC-USD, depth 1000, the instrument's precisions)."""
    from sentrycoin.feeds.kraken import KrakenHandler
    from sentrycoin.market import Market

    market = Market("kraken", "BTC-USD", depth=50, capacity=5000, source="replay")
    handler = KrakenHandler([market], V2_URL, depth=DEPTH)
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, _v2_instrument(), 0)
    handler.on_frame(0, snapshot, 0)
    if not market.valid:
        raise RuntimeError("kraken v2 bench handler failed to sync")
    return handler


# -- v1: the real recording ------------------------------------------------------------------


def v1_recorded() -> tuple[list[bytes], list[bytes], list[str]]:
    """(snapshot frames, book update frames, v1 pair names) of the real v1 recording."""
    import zstandard

    with (REALDATA / "KRAKEN.jsonl.zst").open("rb") as f:
        text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(f), encoding="utf-8")
        records = [json.loads(line) for line in text if line.strip()]
    snapshots, updates, pairs = [], [], []
    for r in records:
        if r["t"] != "recv" or not r["data"].startswith("["):
            continue
        msg = json.loads(r["data"])
        if not str(msg[-2]).startswith("book"):
            continue
        if "as" in msg[1] or "bs" in msg[1]:
            snapshots.append(r["data"].encode())
            pairs.append(msg[-1])
        else:
            updates.append(r["data"].encode())
    return snapshots, updates, pairs


def _start_ours_v1(snapshots: list[bytes], pairs: list[str]) -> FrameSink:
    return partial(ours_v1(snapshots, pairs).on_frame, 0, recv_ms=0)


def ours_v1(snapshots: list[bytes], pairs: list[str]):
    """Our v1 handler for `pairs`, synced on the recording's snapshots."""
    from sentrycoin.feeds.kraken import KrakenHandler, from_venue_symbol
    from sentrycoin.market import Market

    markets = [Market("kraken", from_venue_symbol(p), depth=50, capacity=5000, source="replay") for p in pairs]
    handler = KrakenHandler(markets, V1_URL, depth=DEPTH, protocol="v1")
    handler.on_connected(0)
    handler.take_actions()
    for frame in snapshots:
        handler.on_frame(0, frame, 0)
    if not all(m.valid for m in markets):
        raise RuntimeError("kraken v1 bench handler failed to sync")
    return handler


class _Conn:
    uuid = "bench"


def _start_rival(snapshots: list[bytes], pairs: list[str]) -> FrameSink:
    import asyncio

    from cryptofeed.defines import L2_BOOK
    from cryptofeed.exchanges.kraken import Kraken
    from cryptofeed.symbols import Symbols

    # Set for this feed's pairs each time (the two cases name different pairs).
    syms, info = Kraken._parse_symbol_data({"result": {p.replace("/", ""): {"wsname": p} for p in pairs}})
    Symbols.set(Kraken.id, syms, info)

    async def on_book(book, receipt_timestamp) -> None:
        pass

    std = [p.replace("XBT", "BTC").replace("XDG", "DOGE").replace("/", "-") for p in pairs]
    feed = Kraken(symbols=std, channels=[L2_BOOK], callbacks={L2_BOOK: on_book}, max_depth=DEPTH)
    conn = _Conn()
    loop = asyncio.new_event_loop()
    try:
        for frame in snapshots:
            loop.run_until_complete(feed.message_handler(frame.decode(), conn, 0.0))
    finally:
        loop.close()
    return partial(feed.message_handler, conn=conn, timestamp=0.0)


def _cryptofeed_ok() -> bool:
    try:
        import cryptofeed.exchanges.kraken  # noqa: F401
    except Exception:
        return False
    return True


def _v2_levels(frame: bytes) -> int:
    data = json.loads(frame)["data"][0]
    return len(data["bids"]) + len(data["asks"])


def _v1_levels(frame: bytes) -> int:
    return sum(len(part.get("a", [])) + len(part.get("b", [])) for part in json.loads(frame)[1:-2])


def cases() -> list[VenueCase]:
    out: list[VenueCase] = []
    rival = _cryptofeed_ok()
    from benches.feed_frames import REALDATA as BINANCE_RECORDING

    if BINANCE_RECORDING.is_file():
        v2_snapshot, v2_updates, v1_snapshot, v1_updates = v2_frames()
        levels = int(statistics.median(_v2_levels(f) for f in v2_updates))
        out.append(VenueCase(
            name=f"kraken v2 book, CRC checked ({levels} levels)",
            venue="kraken",
            source="rewritten from the real Binance BTCUSDT 2024-08-08 levels (depth 1000, checksums of the venue book)",
            levels=levels,
            frames=v2_updates,
            start_ours=lambda: _start_ours_v2(v2_snapshot),
            start_rival=(lambda: _v1_translating(_start_rival(v1_snapshot, ["XBT/USD"]), v2_updates, v1_updates))
            if rival else None,
            rival_note="cryptofeed Kraken (v1 only): each frame's same levels as a v1 frame, checksum off (its default)",
        ))
    if (REALDATA / "KRAKEN.jsonl.zst").is_file():
        snapshots, updates, pairs = v1_recorded()
        levels = int(statistics.median(_v1_levels(f) for f in updates))
        out.append(VenueCase(
            name=f"kraken v1 book, CRC checked (real, {levels} levels)",
            venue="kraken",
            source="real KRAKEN.jsonl.zst (v1 book-1000 updates, 10 pairs)",
            levels=levels,
            frames=updates,
            start_ours=lambda: _start_ours_v1(snapshots, pairs),
            start_rival=(lambda: _start_rival(snapshots, pairs)) if rival else None,
            rival_note="cryptofeed Kraken: checksum off (its default)",
            # v1 is what the real recording holds; the goals are set for v2, the live protocol.
            goals=False,
        ))
    return out


def _v1_translating(rival: FrameSink, v2: list[bytes], v1: list[bytes]) -> FrameSink:
    """cryptofeed's sink taking our v2 frame and handing it the v1 frame of the same levels.

    The cost added to the rival is one dict get (a bytes key hashes once) and
    one coroutine frame, well under 1 % of its per-message cost."""
    by_frame = dict(zip(v2, v1, strict=True))
    handler = rival

    async def sink(data: bytes) -> None:
        await handler(by_frame[data])

    return sink
