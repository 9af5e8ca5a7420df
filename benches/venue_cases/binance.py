"""Binance spot cases: the real BTCUSDT 2024-08-08 diff-depth events.

`cases()` is the recording as it is (median 16 level changes per event);
`at_levels(n)` the same stream of level changes regrouped into events of n
changes (benches/venue_frames.py), the "x Binance" base of a venue case of
n levels.  Ours: BinanceSpotHandler.on_frame (the C path).  Rival:
cryptofeed's Binance feed driven offline (benches/feed_rivals.py).
"""

from __future__ import annotations

import json
from functools import cache, partial

from benches import venue_frames
from benches.feed_frames import FIRST_ID, synced_spot_handler
from benches.feed_rivals import CryptofeedPipeline, cryptofeed_available
from benches.venue_cases import FrameSink, VenueCase

SOURCE_REAL = "real BINANCE_SPOT_BTCUSDT_20240808"


def frames_of(msgs: list[venue_frames.Message]) -> tuple[list[bytes], bytes]:
    """Combined-stream events chained after a snapshot at FIRST_ID (the first event bridges it)."""
    out = []
    for i, m in enumerate(msgs):
        u = FIRST_ID + 1 + i
        data = {"e": "depthUpdate", "E": m.event_ms, "s": "BTCUSDT", "U": u, "u": u,
                "b": [list(x) for x in m.bids], "a": [list(x) for x in m.asks]}
        out.append(json.dumps({"stream": "btcusdt@depth@100ms", "data": data}, separators=(",", ":")).encode())
    bids, asks = venue_frames.snapshot()
    snap = json.dumps({"lastUpdateId": FIRST_ID, "bids": [list(x) for x in bids],
                       "asks": [list(x) for x in asks]}).encode()
    return out, snap


def _start_ours(snapshot: bytes, first: bytes) -> FrameSink:
    h, market = synced_spot_handler(snapshot, first)

    def check() -> None:
        assert market.valid and market.resyncs == 0, "binance handler lost sync"

    sink = partial(h.on_frame, 0, recv_ms=0)
    sink.check = check  # type: ignore[attr-defined]  # run by bench_venues after each round
    return sink


def _start_rival(snapshot: bytes, first: bytes) -> FrameSink:
    import asyncio

    pipe = CryptofeedPipeline(snapshot)
    asyncio.run(pipe.handler(first, None, 0.0))
    handler = pipe.handler
    return lambda frame: handler(frame, None, 0.0)


@cache
def at_levels(levels: int | None = None) -> VenueCase:
    """Binance events of `levels` level changes each (None: the recording's own events)."""
    msgs = venue_frames.messages(levels)
    if levels is not None and levels == venue_frames.median_levels(venue_frames.messages()):
        msgs = venue_frames.messages()  # the recording itself already has that size
    frames, snapshot = frames_of(msgs)
    n = venue_frames.median_levels(msgs)
    rival = None if cryptofeed_available() else partial(_start_rival, snapshot, frames[0])
    return VenueCase(
        name=f"binance ({n} levels)", venue="binance",
        source=SOURCE_REAL if msgs == venue_frames.messages() else f"{SOURCE_REAL}, regrouped to {n} levels",
        levels=n, frames=frames[1:], start_ours=partial(_start_ours, snapshot, frames[0]),
        start_rival=rival, rival_note="cryptofeed Binance, book only")


def cases() -> list[VenueCase]:
    return [at_levels(None)]
