"""What the band signal adds to the Binance hot path (`bench_feed.py`'s recorded frames).

Contenders, same frames, same run (each round replays the chained frames of
benches/feed_frames.py into a freshly synced BinanceSpotHandler):

    feed           BinanceSpotHandler.on_frame per frame, SIGNAL=levels (the
                   default: the book keeps no band, top-50 detector)
    feed+band      the same with SIGNAL=band, BAND_BPS=bps: the book keeps the
                   band notionals incrementally and the detector reads them
    feed+read      feed plus one Python call reading the book (`book.volumes`)
    feed+walk      feed plus `sentrycore.band.band_notional(book, bps)` after
                   every frame: the walk over the band the live path does not
                   use (its own cost is (feed+walk) - (feed+read))

The issue's bound is "the band signal adds <= 10 % to bench_feed":
feed+band / feed - 1.  That band off costs nothing against main (a book
without a band pays one key comparison per level change) is measured across
builds, see the lead's report for the command.

    .venv/bin/python benches/bench_band.py [--repeats 7] [--bps 25]
    .venv/bin/python -m pytest benches/bench_band.py --benchmark-only
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benches.feed_frames import chained_frames, source, synced_spot_handler  # noqa: E402
from sentrycoin.market import DetectorSettings  # noqa: E402
from sentrycore.band import band_notional  # noqa: E402

CONTENDERS = ("feed", "feed+band", "feed+read", "feed+walk")


def run_round(kind: str, frames: list[bytes], snapshot: bytes, bps: float) -> tuple[int, int]:
    """(ns for the round, messages applied): a fresh synced handler, every frame once."""
    settings = DetectorSettings(signal="band", band_bps=bps) if kind == "feed+band" else DetectorSettings()
    handler, market = synced_spot_handler(snapshot, frames[0], settings)
    on_frame = handler.on_frame
    book = market.book
    body = frames[1:]
    before = market.messages
    if kind in ("feed", "feed+band"):
        start = time.perf_counter_ns()
        for f in body:
            on_frame(0, f, 0)
        took = time.perf_counter_ns() - start
    elif kind == "feed+read":
        start = time.perf_counter_ns()
        for f in body:
            on_frame(0, f, 0)
            _ = book.volumes  # the read is part of what is measured
        took = time.perf_counter_ns() - start
    else:
        start = time.perf_counter_ns()
        for f in body:
            on_frame(0, f, 0)
            band_notional(book, bps)
        took = time.perf_counter_ns() - start
    assert market.valid
    if kind == "feed+band":
        # The incremental sums must be the walk's, or the timing means nothing.
        walk = band_notional(book, bps)
        assert math.isclose(book.band_bid_notional, walk[0], rel_tol=1e-9)
        assert math.isclose(book.band_ask_notional, walk[1], rel_tol=1e-9)
    return took, market.messages - before


def levels_in_band(frames: list[bytes], snapshot: bytes, bps: float) -> tuple[int, int]:
    """Median and max count of book levels within the band after each message (what the walk reads)."""
    handler, market = synced_spot_handler(snapshot, frames[0], DetectorSettings())
    counts = []
    for f in frames[1:]:
        handler.on_frame(0, f, 0)
        mid = (market.book.best_bid + market.book.best_ask) / 2
        half = mid * bps * 1e-4
        bids = market.book.bids()
        asks = market.book.asks()
        counts.append(int((bids[:, 0] >= mid - half).sum() + (asks[:, 0] <= mid + half).sum()))
    counts.sort()
    return counts[len(counts) // 2], counts[-1]


def measure(repeats: int, bps: float) -> dict[str, float]:
    frames, snapshot = chained_frames("recorded")
    per: dict[str, list[float]] = {k: [] for k in CONTENDERS}
    for _ in range(repeats):  # interleaved, so load drifts hit every contender alike
        for kind in CONTENDERS:
            took, n = run_round(kind, frames, snapshot, bps)
            per[kind].append(took / n)
    return {k: statistics.median(v) for k, v in per.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--bps", type=float, default=25.0)
    args = ap.parse_args()
    frames, snapshot = chained_frames("recorded")
    median_levels, max_levels = levels_in_band(frames, snapshot, args.bps)
    print(f"recorded: {source('recorded')}; {len(frames) - 1} frames/round; levels within {args.bps:g} bps: "
          f"median {median_levels}, max {max_levels}")
    med = measure(args.repeats, args.bps)
    for kind in CONTENDERS:
        print(f"{kind:<12}{med[kind]:>9.0f} ns/message (median of {args.repeats} rounds)")
    print(f"band signal (incremental): feed+band vs feed: {100 * (med['feed+band'] / med['feed'] - 1):+.1f} %")
    walk = med["feed+walk"] - med["feed+read"]
    print(f"band walk (not used live): {walk:.0f} ns/message = {100 * walk / med['feed']:.1f} % of the feed path")


# -- pytest-benchmark -----------------------------------------------------------------------------


def _bench(benchmark, kind: str) -> None:
    frames, snapshot = chained_frames("recorded")
    took, n = run_round(kind, frames, snapshot, 25.0)
    benchmark.extra_info["messages_per_round"] = n
    benchmark.pedantic(run_round, args=(kind, frames, snapshot, 25.0), rounds=7, iterations=1, warmup_rounds=1)


def test_band_feed(benchmark) -> None:
    _bench(benchmark, "feed")


def test_band_feed_read(benchmark) -> None:
    _bench(benchmark, "feed+read")


def test_band_feed_band(benchmark) -> None:
    _bench(benchmark, "feed+band")


def test_band_feed_walk(benchmark) -> None:
    _bench(benchmark, "feed+walk")


if __name__ == "__main__":
    main()
