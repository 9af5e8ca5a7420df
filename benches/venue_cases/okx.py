"""OKX v5 `books` updates rewritten from the real Binance recording's levels, two checksum modes.

Same level changes, order and message boundaries as the Binance case
(benches/venue_frames.py), written as OKX writes them
(`["61737.63","0.001","0","1"]`, `ts` a string, seqId steps of 3):

* "checksum 0": what live OKX sends since mid-2026 (skipped and counted);
* "real CRC32": every message carries the true signed CRC32 of the best 25
  levels per side after it (computed here from a plain text model of the
  book), verified by SentryCoin on every message.

Ours: OkxSpotHandler.on_frame (the C path).  Rival: cryptofeed's OKX feed
driven offline with its default `checksum_validation=False`; the extra case
"cryptofeed checksum on" turns it on for the real-CRC32 frames.
"""

from __future__ import annotations

import heapq
import json
import zlib
from functools import cache, partial

from benches import venue_frames
from benches.feed_rivals import cryptofeed_available
from benches.venue_cases import FrameSink, VenueCase
from benches.venue_frames import trim
from sentrycoin.feeds.okx import OkxSpotHandler
from sentrycoin.market import Market

FIRST_SEQ = 3_000_000
SEQ_STEP = 3
WS = "ws://127.0.0.1:9/ws/v5/public"


def _checksum(bids: dict[float, tuple[str, str]], asks: dict[float, tuple[str, str]]) -> int:
    top_b = [bids[p] for p in heapq.nlargest(25, bids)]
    top_a = [asks[p] for p in heapq.nsmallest(25, asks)]
    parts = []
    for i in range(max(len(top_b), len(top_a))):
        for side in (top_b, top_a):
            if i < len(side):
                parts.extend(side[i])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= (1 << 31) else crc


def _message(action: str, seq: int, prev: int, bids, asks, ts: int, checksum: int) -> bytes:
    return json.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action,
                       "data": [{"asks": [[p, q, "0", "1"] for p, q in asks],
                                 "bids": [[p, q, "0", "1"] for p, q in bids],
                                 "ts": str(ts), "checksum": checksum, "prevSeqId": prev, "seqId": seq}]},
                      separators=(",", ":")).encode()


@cache
def frames(real_checksum: bool, levels: int | None = None) -> tuple[list[bytes], bytes]:
    """(updates chained on the snapshot, snapshot message)."""
    bids, asks = venue_frames.snapshot()
    model_b = {float(p): (trim(p), trim(q)) for p, q in bids if float(q)}
    model_a = {float(p): (trim(p), trim(q)) for p, q in asks if float(q)}
    msgs = venue_frames.messages(levels)
    snap = _message("snapshot", FIRST_SEQ, -1, list(model_b.values()), list(model_a.values()), msgs[0].event_ms,
                    _checksum(model_b, model_a) if real_checksum else 0)
    out = []
    seq = FIRST_SEQ
    for m in msgs:
        b = [(trim(p), trim(q)) for p, q in m.bids]
        a = [(trim(p), trim(q)) for p, q in m.asks]
        for side, model in ((b, model_b), (a, model_a)):
            for p, q in side:
                if float(q) == 0.0:
                    model.pop(float(p), None)
                else:
                    model[float(p)] = (p, q)
        checksum = _checksum(model_b, model_a) if real_checksum else 0
        out.append(_message("update", seq + SEQ_STEP, seq, b, a, m.event_ms, checksum))
        seq += SEQ_STEP
    return out, snap


def _start_ours(snapshot: bytes) -> FrameSink:
    market = Market("okx", "BTC-USDT", depth=50, capacity=5000, source="replay")
    h = OkxSpotHandler([market], WS)
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, snapshot, 0)
    assert market.valid, "okx bench handler failed to sync"

    def check() -> None:
        assert market.valid and market.checksum_mismatches == 0 and market.resyncs == 0, "okx handler lost sync"
        assert h._frame_path.taken > 0, "okx frames did not take the C path"

    sink = partial(h.on_frame, 0, recv_ms=0)
    sink.check = check  # type: ignore[attr-defined]  # run by bench_venues after each round
    return sink


def _start_rival(snapshot: bytes, checksum_validation: bool) -> FrameSink:
    import asyncio

    from cryptofeed.defines import L2_BOOK, SPOT
    from cryptofeed.exchanges.okx import OKX
    from cryptofeed.symbols import Symbol, Symbols

    sym = Symbol("BTC", "USDT", type=SPOT)
    Symbols.set(OKX.id, {sym.normalized: "BTC-USDT"},
                {"tick_size": {sym.normalized: "0.1"}, "instrument_type": {sym.normalized: SPOT}})

    async def on_book(book, receipt_timestamp) -> None:
        pass

    feed = OKX(symbols=["BTC-USDT"], channels=[L2_BOOK], callbacks={L2_BOOK: on_book},
               checksum_validation=checksum_validation)
    handler = feed.message_handler
    asyncio.run(handler(snapshot, None, 0.0))
    return lambda frame: handler(frame, None, 0.0)


def cases() -> list[VenueCase]:
    n = venue_frames.median_levels(venue_frames.messages())
    have_cf = cryptofeed_available() is None
    out = []
    for real, label in ((False, "checksum 0"), (True, "real CRC32")):
        updates, snapshot = frames(real)
        out.append(VenueCase(
            name=f"okx {label} ({n} levels)", venue="okx", source="rewritten from the real Binance levels",
            levels=n, frames=updates, start_ours=partial(_start_ours, snapshot),
            start_rival=partial(_start_rival, snapshot, False) if have_cf else None,
            rival_note="cryptofeed OKX, checksum_validation=False (its default)"))
    updates, snapshot = frames(True)
    out.append(VenueCase(
        name=f"okx real CRC32, cryptofeed checksum on ({n} levels)", venue="okx",
        source="rewritten from the real Binance levels", levels=n, frames=updates,
        start_ours=partial(_start_ours, snapshot),
        start_rival=partial(_start_rival, snapshot, True) if have_cf else None,
        rival_note="cryptofeed OKX, checksum_validation=True"))
    return out
