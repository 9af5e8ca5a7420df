"""Real-shaped Binance depthUpdate frames for the feed benchmarks.

Two frame sets, each a list of combined-stream frames whose U/u form one
unbroken chain after a REST-snapshot body (lastUpdateId = FIRST_ID):

* `chained_frames("recorded")`: the 3,451 diff-depth events of the
  2024-08-08 BTCUSDT recording (../shared/realdata, hftbacktest), verbatim
  except for U/u, with the recording's own 1000-level snapshot.  Median 16
  level changes, median 23 bp from the top of book, so many updates land
  deep in a 1000+-level book.
* `chained_frames("synthetic")`: benches/streams.py's BTCUSDT-like stream
  (the one bench_book.py uses) written as Binance frames with 8-decimal
  strings: ~20 level changes per message, all within 100 ticks of the top,
  1,500-level snapshot.

When the recording is absent, "recorded" falls back to generated frames of
the same sizes (see `source()`).  `synced_spot_handler()` returns a
BinanceSpotHandler synced just before the first chained frame.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

from sentrycoin.feeds.binance import BinanceSpotHandler
from sentrycoin.market import DetectorSettings, Market

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "BINANCE_SPOT_BTCUSDT_20240808.gz"
WS = "ws://127.0.0.1:9/stream"
REST = "http://127.0.0.1:9/api/v3/depth"
#: The chain starts right after this snapshot id.
FIRST_ID = 1_000_000

_IDS = re.compile(rb'"U":\d+,"u":\d+')


def _recorded() -> tuple[list[bytes], bytes | None]:
    if not REALDATA.is_file():
        return [], None
    frames: list[bytes] = []
    snapshot = None
    with gzip.open(REALDATA, "rb") as fh:
        for line in fh:
            _, _, frame = line.rstrip(b"\n").partition(b" ")
            if b'"depthUpdate"' in frame:
                frames.append(frame)
            elif frame.startswith(b'{"lastUpdateId"'):
                snapshot = frame
    return frames, snapshot


def _generated(n: int = 3000, seed: int = 7) -> tuple[list[bytes], bytes]:
    rng = random.Random(seed)
    mid = 61800.0
    frames = []

    def side(sign: int, mid: float) -> list[list[str]]:
        k = max(1, int(rng.gauss(10, 5)))
        out = []
        for _ in range(k):
            price = round(mid + sign * rng.expovariate(1 / 20) + sign * 0.01, 2)
            qty = 0.0 if rng.random() < 0.4 else round(rng.expovariate(3), 5)
            out.append([f"{price:.8f}", f"{qty:.8f}"])
        return out

    for _ in range(n):
        mid += rng.gauss(0, 2)
        data = {"e": "depthUpdate", "E": 1723161255208, "s": "BTCUSDT", "U": 1, "u": 1,
                "b": side(-1, mid), "a": side(1, mid)}
        frames.append(json.dumps({"stream": "btcusdt@depth@100ms", "data": data},
                                 separators=(",", ":")).encode())
    levels = [[f"{mid - 0.01 * i:.8f}", "0.50000000"] for i in range(1, 1001)]
    asks = [[f"{mid + 0.01 * i:.8f}", "0.50000000"] for i in range(1, 1001)]
    snapshot = json.dumps({"lastUpdateId": 0, "bids": levels, "asks": asks}).encode()
    return frames, snapshot


def source(kind: str = "recorded") -> str:
    if kind == "synthetic":
        return "benches/streams.py (near-top BTCUSDT-like)"
    return "recording BINANCE_SPOT_BTCUSDT_20240808" if REALDATA.is_file() else "generated (recording absent)"


def _synthetic() -> tuple[list[bytes], bytes]:
    from benches.streams import make_stream

    stream = make_stream(messages=3_000)
    frames = []
    for bids, asks in stream.lists:
        data = {"e": "depthUpdate", "E": 1723161255208, "s": "BTCUSDT", "U": 1, "u": 1,
                "b": [[f"{p:.8f}", f"{q:.8f}"] for p, q in bids],
                "a": [[f"{p:.8f}", f"{q:.8f}"] for p, q in asks]}
        frames.append(json.dumps({"stream": "btcusdt@depth@100ms", "data": data},
                                 separators=(",", ":")).encode())
    snapshot = json.dumps({"lastUpdateId": 0,
                           "bids": [[f"{p:.8f}", f"{q:.8f}"] for p, q in stream.snapshot_bids],
                           "asks": [[f"{p:.8f}", f"{q:.8f}"] for p, q in stream.snapshot_asks]}).encode()
    return frames, snapshot


def chained_frames(kind: str = "recorded", first_id: int = FIRST_ID) -> tuple[list[bytes], bytes]:
    """(frames with U/u renumbered into one chain starting at first_id + 1, snapshot body at first_id)."""
    if kind == "synthetic":
        frames, snapshot = _synthetic()
    else:
        frames, snapshot = _recorded()
        if not frames or snapshot is None:
            frames, snapshot = _generated()
    out = []
    u = first_id
    for f in frames:
        out.append(_IDS.sub(f'"U":{u + 1},"u":{u + 1}'.encode(), f, count=1))
        u += 1
    snap = json.loads(snapshot)
    snap["lastUpdateId"] = first_id
    return out, json.dumps(snap).encode()


def synced_spot_handler(snapshot: bytes, first_frame: bytes,
                        settings: DetectorSettings | None = None) -> tuple[BinanceSpotHandler, Market]:
    """A handler whose BTC-USDT book is synced; `first_frame` (U = snapshot id + 1) bridges it."""
    market = Market("binance", "BTC-USDT", depth=50, capacity=5000, source="replay", settings=settings)
    h = BinanceSpotHandler([market], WS, REST)
    h.on_connected(0)
    h.take_actions()
    h.on_snapshot("BTC-USDT", snapshot, 0)
    h.on_frame(0, first_frame, 0)
    assert market.valid, "bench handler failed to sync"
    return h, market


def level_count(frame: bytes) -> int:
    d = json.loads(frame)["data"]
    return len(d["b"]) + len(d["a"])
