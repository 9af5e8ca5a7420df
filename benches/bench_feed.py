"""Per-message cost of the Binance depthUpdate hot path: decode + sequence check + apply + detector.

Contenders, all fed the same chained frames (benches/feed_frames.py) in the same run:

    sentrycoin            BinanceSpotHandler.on_frame (DepthParser fast path, OrderBook, detector)
    sentrycoin-msgspec    the same handler's msgspec reference path (what on_frame did before)
    msgspec+dict          msgspec typed decode + U/u check + DictBisectBook + Python top-50 sums + threshold
    cryptofeed            cryptofeed's Binance feed: message_handler() per frame (book only)
    cryptofeed+top50      ... plus best-50 bid/ask volumes read from its book after each message

Two frame sets: "recorded" (real BTCUSDT 2024-08-08 events; many updates
deep in a 1000+-level book) and "synthetic" (~20 changes near the top,
benches/streams.py).

Run as a script for the table of per-message medians (each frame timed on
its own, timer overhead shown separately) and speedups:

    .venv/bin/python benches/bench_feed.py [--repeats 5]

or through pytest-benchmark (one round = every frame once; reported time
is per round, `extra_info.per_message_ns` per message):

    .venv/bin/python -m pytest benches/bench_feed.py --benchmark-only \
        --benchmark-columns=median,mean,stddev,rounds
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benches.feed_frames import FIRST_ID, chained_frames, level_count, source, synced_spot_handler  # noqa: E402
from benches.feed_rivals import CryptofeedPipeline, MsgspecDictPipeline, cryptofeed_available  # noqa: E402

DEPTH = 50
KINDS = ("recorded", "synthetic")


class Contender:
    """One pipeline over one frame set: `restart()` rewinds the sequence, `step(frame)` handles one frame."""

    name = ""
    is_async = False
    on_frame_args = False  # step(0, frame, 0) instead of step(frame)

    def restart(self) -> None: ...

    def volumes(self) -> tuple[float, float]: ...


class SentryCoin(Contender):
    name = "sentrycoin"

    def __init__(self, frames: list[bytes], snapshot: bytes, reference_path: bool = False) -> None:
        self.handler, self.market = synced_spot_handler(snapshot, frames[0])
        self.state = self.handler._states["BTC-USDT"]
        self.snapshot, self.first_frame = snapshot, frames[0]
        if reference_path:
            self.name = "sentrycoin-msgspec"
            h = self.handler

            def step(frame: bytes) -> None:
                c = h.counters
                c.frames += 1
                c.bytes += len(frame)
                h._decode_frame(frame, 0)

            self.step = step
        else:
            # on_frame(conn_id, data, recv_ms) is called directly by the runner:
            # no wrapper call in the timed loop.
            self.step = self.handler.on_frame
            self.on_frame_args = True

    def restart(self) -> None:
        # Back to the snapshot's book (untimed): the frames replayed on the book they
        # left behind would cross it, and a crossed book is rightly dropped.
        self.state.reset()
        self.handler.on_snapshot("BTC-USDT", self.snapshot, 0)
        self.handler.on_frame(0, self.first_frame, 0)
        self.state.last_u = FIRST_ID + 1

    def check(self) -> None:
        assert self.market.valid and self.market.resyncs == 0 and getattr(self.market, "crossed", 0) == 0, \
            "sentrycoin lost sync"

    def volumes(self) -> tuple[float, float]:
        return self.market.book.bid_volume, self.market.book.ask_volume


class MsgspecDict(Contender):
    name = "msgspec+dict"

    def __init__(self, frames: list[bytes], snapshot: bytes) -> None:
        self.pipe = MsgspecDictPipeline(snapshot, depth=DEPTH)
        self.pipe.on_frame(frames[0])
        self.step = self.pipe.on_frame

    def restart(self) -> None:
        self.pipe.last_u = FIRST_ID + 1

    def check(self) -> None:
        pass

    def volumes(self) -> tuple[float, float]:
        return self.pipe.book.volumes(DEPTH)


class Cryptofeed(Contender):
    is_async = True

    def __init__(self, frames: list[bytes], snapshot: bytes, top_n: int | None) -> None:
        self.name = "cryptofeed+top50" if top_n else "cryptofeed"
        self.pipe = CryptofeedPipeline(snapshot, top_n=top_n)
        handler = self.pipe.handler
        self.step = lambda frame: handler(frame, None, 0.0)  # a coroutine: awaited by the runner
        self.first = frames[0]

    def restart(self) -> None:
        self.pipe.feed.last_update_id[self.pipe.std] = FIRST_ID + 1

    def check(self) -> None:
        assert self.pipe.feed.last_update_id.get(self.pipe.std, 0) > FIRST_ID, "cryptofeed reset its book"

    def volumes(self) -> tuple[float, float]:
        book = self.pipe.book().book
        from itertools import islice
        return (float(sum(book.bids[p] for p in islice(book.bids, DEPTH))),
                float(sum(book.asks[p] for p in islice(book.asks, DEPTH))))


def contenders(kind: str, with_cryptofeed: bool = True) -> tuple[list[Contender], list[bytes]]:
    frames, snapshot = chained_frames(kind)
    out: list[Contender] = [SentryCoin(frames, snapshot), SentryCoin(frames, snapshot, reference_path=True),
                            MsgspecDict(frames, snapshot)]
    if with_cryptofeed and cryptofeed_available() is None:
        for top in (None, DEPTH):
            c = Cryptofeed(frames, snapshot, top)
            asyncio.run(c.step(frames[0]))
            out.append(c)
    return out, frames[1:]


def run_round(c: Contender, frames: list[bytes], per_frame: list[int] | None) -> int:
    """Every frame once; returns the round's total ns (and appends per-frame ns when asked)."""
    c.restart()
    step = c.step
    clock = time.perf_counter_ns
    if c.is_async:
        async def go() -> int:
            t0 = clock()
            if per_frame is None:
                for f in frames:
                    await step(f)
            else:
                for f in frames:
                    t = clock()
                    await step(f)
                    per_frame.append(clock() - t)
            return clock() - t0
        total = asyncio.run(go())
    elif c.on_frame_args:
        t0 = clock()
        if per_frame is None:
            for f in frames:
                step(0, f, 0)
        else:
            for f in frames:
                t = clock()
                step(0, f, 0)
                per_frame.append(clock() - t)
        total = clock() - t0
    else:
        t0 = clock()
        if per_frame is None:
            for f in frames:
                step(f)
        else:
            for f in frames:
                t = clock()
                step(f)
                per_frame.append(clock() - t)
        total = clock() - t0
    c.check()
    return total


def timer_overhead_ns() -> float:
    clock = time.perf_counter_ns
    noop = lambda f: None  # noqa: E731
    samples = []
    for _ in range(200_000):
        t = clock()
        noop(b"")
        samples.append(clock() - t)
    return statistics.median(samples)


def check_same_volumes(cs: list[Contender]) -> None:
    """The contenders must hold the same top-50 volumes after the same frames."""
    ref = cs[0].volumes()
    for c in cs[1:]:
        got = c.volumes()
        assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(ref, got, strict=True)), (c.name, ref, got)


def measure(kind: str, repeats: int) -> list[dict]:
    cs, frames = contenders(kind)
    rows = []
    for c in cs:
        per: list[int] = []
        rounds = 1 if c.name.startswith("cryptofeed") else repeats  # ~100x slower: one round is plenty
        totals = [run_round(c, frames, None) for _ in range(rounds)]
        for _ in range(rounds):
            run_round(c, frames, per)
        per.sort()
        rows.append({
            "name": c.name,
            "median_ns": per[len(per) // 2],
            "p90_ns": per[int(len(per) * 0.9)],
            "mean_ns": statistics.median(totals) / len(frames),
        })
    check_same_volumes(cs)
    return rows


def breakdown(kind: str, repeats: int) -> dict[str, float]:
    """Median ns per frame of SentryCoin's steps, cumulatively: parse; + book apply; whole on_frame."""
    from sentrycore.parse import DepthParser

    frames, snapshot = chained_frames(kind)
    c = SentryCoin(frames, snapshot)
    book = c.market.book
    parser = DepthParser()
    parse = parser.parse
    apply_to = parser.apply_to
    clock = time.perf_counter_ns
    out: dict[str, list[int]] = {"parse": [], "parse+apply": [], "on_frame": []}
    body = frames[1:]
    for _ in range(repeats):
        # Same book evolution for every step: rewind by replaying through on_frame.
        for f in body:
            t = clock()
            parse(f)
            out["parse"].append(clock() - t)
        for f in body:
            parse(f)
            t = clock()
            apply_to(book)
            out["parse+apply"].append(clock() - t)
        c.restart()
        on_frame = c.handler.on_frame
        for f in body:
            t = clock()
            on_frame(0, f, 0)
            out["on_frame"].append(clock() - t)
    med = {k: float(statistics.median(v)) for k, v in out.items()}
    med["parse+apply"] += med["parse"]
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="rounds per contender (cryptofeed: 1)")
    args = ap.parse_args()
    reason = cryptofeed_available()
    if reason:
        print(f"cryptofeed not run: {reason}")
    overhead = timer_overhead_ns()
    print(f"timer overhead per timed frame (included in medians/p90): {overhead:.0f} ns")
    for kind in KINDS:
        frames, _ = chained_frames(kind)
        levels = sorted(level_count(f) for f in frames)
        print(f"\n{kind}: {source(kind)}; {len(frames) - 1} frames/round, "
              f"median {levels[len(levels) // 2]} level changes, median {sorted(map(len, frames))[len(frames) // 2]} bytes")
        rows = measure(kind, args.repeats)
        best_rival = min(r["median_ns"] for r in rows if not r["name"].startswith("sentrycoin"))
        ours = rows[0]["median_ns"]
        print(f"{'contender':<20}{'median ns':>11}{'p90 ns':>11}{'mean ns':>11}{'x slower than sentrycoin':>27}")
        for r in rows:
            print(f"{r['name']:<20}{r['median_ns']:>11.0f}{r['p90_ns']:>11.0f}{r['mean_ns']:>11.0f}"
                  f"{r['median_ns'] / ours:>27.1f}")
        print(f"speedup vs best off-the-shelf rival (median): {best_rival / ours:.1f}x")
        b = breakdown(kind, args.repeats)
        print(f"sentrycoin breakdown (medians, each incl. timer): parse {b['parse']:.0f} ns, "
              f"book apply {b['parse+apply'] - b['parse']:.0f} ns, whole on_frame {b['on_frame']:.0f} ns")


# -- pytest-benchmark -----------------------------------------------------------------------

def _bench(benchmark, kind: str, index: int) -> None:
    import pytest

    cs, frames = contenders(kind)
    if index >= len(cs):
        pytest.skip(f"cryptofeed not available: {cryptofeed_available()}")
    c = cs[index]
    benchmark.extra_info["contender"] = c.name
    benchmark.extra_info["frames_per_round"] = len(frames)
    per: list[int] = []
    run_round(c, frames, per)
    per.sort()
    benchmark.extra_info["per_message_median_ns"] = per[len(per) // 2]
    rounds = 1 if c.name.startswith("cryptofeed") else 5
    result = benchmark.pedantic(run_round, args=(c, frames, None), rounds=rounds, iterations=1, warmup_rounds=0)
    benchmark.extra_info["per_message_mean_ns"] = result / len(frames)


def _make_tests() -> None:
    names = ["sentrycoin", "sentrycoin_msgspec", "msgspec_dict", "cryptofeed", "cryptofeed_top50"]
    for kind in KINDS:
        for i, name in enumerate(names):
            def test(benchmark, kind=kind, i=i) -> None:
                _bench(benchmark, kind, i)
            test.__name__ = f"test_feed_{kind}_{name}"
            globals()[test.__name__] = test


_make_tests()

if __name__ == "__main__":
    main()
