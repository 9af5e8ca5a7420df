"""Binance depthUpdate parsing against its floor: a parser written for exactly one layout.

Contenders, all fed the same chained frames (benches/feed_frames.py) in the same run:

    sentrycore        DepthParser.parse: Binance's exact layout first, the
                      key-order-agnostic reader when that declines (parse only)
    floor             benches/floor_parser.pyx FloorParser.parse: hand-written for
                      Binance's byte layout only, minimal validation (parse only)
    sentrycore-any    DepthParser.parse_any_layout: the key-order-agnostic reader
                      alone (what parse was before the layout reader; context)
    on_frame          BinanceSpotHandler.on_frame, the whole hot path (parse +
                      chain check + book + detector; context)

Two frame sets: "recorded" (the 3,451 real BTCUSDT 2024-08-08 events) and
"synthetic" (benches/streams.py, ~20 level changes near the top).  Before
timing, every frame is parsed by both parsers and their fields and levels
compared.  The timing is interleaved: each run times every frame on its own
for each contender in turn; a contender's figure is its best run's median
(and its best run's mean per frame, from an untimed-per-frame round).  The
timer's own cost (a C call of `len` timed the same way) is printed, and the
ratio is given both as measured and with that overhead taken off both sides.

    .venv/bin/python benches/bench_parse_floor.py [--runs 7] [--json]

or through pytest-benchmark (one round = every frame once):

    .venv/bin/python -m pytest benches/bench_parse_floor.py --benchmark-only \\
        --benchmark-columns=median,mean,stddev,rounds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benches.bench_feed import SentryCoin  # noqa: E402
from benches.feed_frames import chained_frames, level_count, source  # noqa: E402
from benches.floor_build import load_floor  # noqa: E402
from sentrycore.parse import DepthParser  # noqa: E402

KINDS = ("recorded", "synthetic")
PARSERS = ("sentrycore", "floor", "sentrycore-any")


def check_same_results(parser: DepthParser, floor, frames: list[bytes]) -> None:
    """Both parsers accept every frame and give the same fields and levels."""
    for f in frames:
        assert parser.parse(f) == 1 and floor.parse(f) == 1, f[:120]
        ours = (parser.E, parser.symbol, parser.U, parser.u, parser.bids, parser.asks)
        theirs = (floor.E, floor.symbol, floor.U, floor.u, floor.bids, floor.asks)
        assert ours == theirs, f[:120]


def contenders(kind: str) -> tuple[dict[str, Callable], Callable[[], None], list[bytes]]:
    """(step per name, on_frame restart, frames): parse steps take a frame, on_frame (0, frame, 0)."""
    frames, snapshot = chained_frames(kind)
    parser = DepthParser()
    floor = load_floor().FloorParser()
    check_same_results(parser, floor, frames)
    hot = SentryCoin(frames, snapshot)
    steps: dict[str, Callable] = {
        "sentrycore": parser.parse,
        "floor": floor.parse,
        "sentrycore-any": parser.parse_any_layout,
        "on_frame": hot.handler.on_frame,
        "timer": len,  # a C call doing nothing useful: the timing overhead
    }

    def restart() -> None:
        hot.restart()

    return steps, restart, frames[1:]


def time_each(step: Callable, frames: list[bytes], on_frame: bool) -> list[int]:
    clock = time.perf_counter_ns
    per = []
    if on_frame:
        for f in frames:
            t = clock()
            step(0, f, 0)
            per.append(clock() - t)
    else:
        for f in frames:
            t = clock()
            step(f)
            per.append(clock() - t)
    return per


def time_round(step: Callable, frames: list[bytes], on_frame: bool) -> int:
    clock = time.perf_counter_ns
    t = clock()
    if on_frame:
        for f in frames:
            step(0, f, 0)
    else:
        for f in frames:
            step(f)
    return clock() - t


def measure(kind: str, runs: int) -> dict:
    steps, restart, frames = contenders(kind)
    medians: dict[str, list[float]] = {name: [] for name in steps}
    means: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(runs):
        for name, step in steps.items():  # interleaved: every contender once per run
            on_frame = name == "on_frame"
            if on_frame:
                restart()
            medians[name].append(statistics.median(time_each(step, frames, on_frame)))
            if on_frame:
                restart()
            means[name].append(time_round(step, frames, on_frame) / len(frames))
    best = {name: min(v) for name, v in medians.items()}
    best_mean = {name: min(v) for name, v in means.items()}
    timer = best.pop("timer")
    timer_mean = best_mean.pop("timer")
    levels = sorted(level_count(f) for f in frames)
    return {
        "frames": len(frames),
        "source": source(kind),
        "median_level_changes": levels[len(levels) // 2],
        "median_bytes": sorted(map(len, frames))[len(frames) // 2],
        "timer_overhead_ns": timer,
        "timer_overhead_mean_ns": timer_mean,
        "median_ns": best,
        "mean_ns": best_mean,
        "ratio_vs_floor": best["sentrycore"] / best["floor"],
        "ratio_vs_floor_net": (best["sentrycore"] - timer) / (best["floor"] - timer),
        "ratio_vs_floor_mean": best_mean["sentrycore"] / best_mean["floor"],
        "ratio_vs_floor_mean_net": (best_mean["sentrycore"] - timer_mean) / (best_mean["floor"] - timer_mean),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="interleaved runs; the best is kept (default 7)")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = ap.parse_args()
    load = os.getloadavg()
    results = {kind: measure(kind, args.runs) for kind in KINDS}
    load_end = os.getloadavg()
    if args.json:
        print(json.dumps({"loadavg_start": load, "loadavg_end": load_end, "runs": args.runs, "results": results},
                         indent=2))
        return
    print(f"load average (1/5/15 min) at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, at end "
          f"{load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}; best of {args.runs} interleaved runs")
    for kind, r in results.items():
        print(f"\n{kind}: {r['source']}; {r['frames']} frames, median {r['median_level_changes']} level changes, "
              f"median {r['median_bytes']} bytes; timer overhead {r['timer_overhead_ns']:.0f} ns "
              f"(median), {r['timer_overhead_mean_ns']:.0f} ns (mean)")
        print(f"{'contender':<18}{'median ns':>11}{'mean ns':>10}{'x floor (median)':>18}{'x floor net':>13}")
        t = r["timer_overhead_ns"]
        floor, floor_net = r["median_ns"]["floor"], r["median_ns"]["floor"] - t
        for name in (*PARSERS, "on_frame"):
            med, mean = r["median_ns"][name], r["mean_ns"][name]
            print(f"{name:<18}{med:>11.0f}{mean:>10.0f}{med / floor:>18.2f}{(med - t) / floor_net:>13.2f}")
        print(f"sentrycore / floor: {r['ratio_vs_floor']:.2f}x median ({r['ratio_vs_floor_net']:.2f}x without the "
              f"timer), {r['ratio_vs_floor_mean']:.2f}x mean ({r['ratio_vs_floor_mean_net']:.2f}x without the loop)")


# -- pytest-benchmark -----------------------------------------------------------------------

def _bench(benchmark, kind: str, name: str) -> None:
    steps, restart, frames = contenders(kind)
    step = steps[name]
    on_frame = name == "on_frame"
    if on_frame:
        restart()
    benchmark.extra_info["contender"] = name
    benchmark.extra_info["frames_per_round"] = len(frames)
    benchmark.extra_info["per_message_median_ns"] = statistics.median(time_each(step, frames, on_frame))

    # The book is rewound before each on_frame round, outside the timing.
    result = benchmark.pedantic(time_round, args=(step, frames, on_frame), setup=restart if on_frame else None,
                                rounds=15, iterations=1, warmup_rounds=1)
    benchmark.extra_info["per_message_mean_ns"] = result / len(frames)


def _make_tests() -> None:
    for kind in KINDS:
        for name in (*PARSERS, "on_frame"):
            def test(benchmark, kind=kind, name=name) -> None:
                _bench(benchmark, kind, name)
            test.__name__ = f"test_parse_floor_{kind}_{name.replace('-', '_')}"
            globals()[test.__name__] = test


_make_tests()

if __name__ == "__main__":
    main()
