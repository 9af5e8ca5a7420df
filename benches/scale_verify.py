"""Check that the scale benchmark measures a correct pipeline, not a fast wrong one.

    .venv/bin/python benches/scale_verify.py --markets 200 --frames 200000

Replays the first N frames of a cache file (benches/scale_replay.py) through
ReplaySource into a fresh Binance spot handler and compares every market's
top 50 levels with the simulated market's own state after the same N frames
(a second generator with the same seed, advanced N frames).  Exit 0 when
every book matches exactly and none was resynced.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benches.scale_replay import CACHE_DIR, ReplaySource, market_symbols, scenario_spec  # noqa: E402
from sentrycoin.feeds.binance import BinanceSpotHandler  # noqa: E402
from sentrycoin.market import Market  # noqa: E402
from sentrycoin.sim.generator import DepthSnapshot, MarketGenerator  # noqa: E402
from sentrycoin.sim.source import SIM_REST_URL, SIM_WS_URL  # noqa: E402


async def replay(path: Path, markets: list[Market], n_frames: int) -> ReplaySource:
    handler = BinanceSpotHandler(markets, SIM_WS_URL, SIM_REST_URL, depth=50)
    src = ReplaySource(handler, path, None)
    stop = asyncio.Event()
    inner = handler.on_frame

    def counted(conn_id: int, data: bytes, recv_ms: int) -> None:
        if not data.startswith(b'{"stream"'):
            inner(conn_id, data, recv_ms)  # the venue's reply to a SUBSCRIBE: not a frame of the file
            return
        if src.frames_seen >= n_frames:
            stop.set()
            return
        src.frames_seen += 1
        inner(conn_id, data, recv_ms)

    src.frames_seen = 0  # type: ignore[attr-defined]
    handler.on_frame = counted  # type: ignore[method-assign]
    await src.run(stop)
    src.close()
    return src


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--markets", type=int, default=200)
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--file", help="cache file (default: the first one for --markets)")
    p.add_argument("--scenario", default="mixed")
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args()
    path = Path(args.file) if args.file else sorted(CACHE_DIR.glob(f"{args.scenario}-m{args.markets}-s{args.seed}-f*.bin"))[0]
    symbols = market_symbols(args.markets)
    markets = [Market("binance", s, depth=50, source="simulated") for s in symbols]
    src = asyncio.run(replay(path, markets, args.frames))
    gen = MarketGenerator(symbols, scenario_spec(args.scenario), args.seed)
    for _ in range(src.frames_seen):  # type: ignore[attr-defined]
        gen.next_frame()
    decode = msgspec.json.Decoder(DepthSnapshot).decode
    bad = 0
    for m in markets:
        truth = decode(gen.snapshot_body(m.symbol, 50))
        tb = np.array([(float(p), float(q)) for p, q in truth.bids])
        ta = np.array([(float(p), float(q)) for p, q in truth.asks])
        if not (m.valid and np.array_equal(m.book.bids(50), tb) and np.array_equal(m.book.asks(50), ta)):
            bad += 1
            if bad <= 3:
                print(f"MISMATCH {m.symbol}: valid={m.valid} resyncs={m.resyncs}")
    resyncs = sum(m.resyncs for m in markets)
    print(f"{src.frames_seen} frames replayed from {path.name}; {len(markets) - bad}/{len(markets)} books equal to "  # type: ignore[attr-defined]
          f"the generator's top 50 levels; resyncs {resyncs}; unanswered snapshot requests {src.late_snapshot_requests}")
    return 0 if bad == 0 and resyncs == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
