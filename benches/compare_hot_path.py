"""The Binance hot path of two (or more) checkouts, each its own build, interleaved.

A change to the parser must not slow `BinanceSpotHandler.on_frame`; two
builds of sentrycore cannot live in one process, so each checkout's own venv
runs one measurement in a child process (benches/bench_feed.py's SentryCoin
contender and `run_round`, the checkout's own code), checkouts taking turns,
best of `--runs`; the load average is printed beside every run.

    .venv/bin/python benches/compare_hot_path.py /work/main /work/wt-mine [--runs 3] [--json]

Each checkout needs `.venv/bin/python` and its extensions built; nothing is
written into it (no bytecode).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

KINDS = ("recorded", "synthetic")


def child(root: str, rounds: int) -> None:
    """Runs inside the checkout's venv: per-message median and mean of on_frame, best of `rounds`."""
    sys.path.insert(0, root)
    import sentrycore.parse
    from benches.bench_feed import SentryCoin, run_round
    from benches.feed_frames import chained_frames

    if not sentrycore.parse.__file__.startswith(root):
        raise SystemExit(f"{root}: sentrycore imported from {sentrycore.parse.__file__}")
    out = {}
    for kind in KINDS:
        frames, snapshot = chained_frames(kind)
        c = SentryCoin(frames, snapshot)
        body = frames[1:]
        medians, means = [], []
        for _ in range(rounds):
            per: list[int] = []
            run_round(c, body, per)
            medians.append(statistics.median(per))
            means.append(run_round(c, body, None) / len(body))
        out[kind] = {"median_ns": min(medians), "mean_ns": min(means)}
    print(json.dumps(out))


def measure(root: Path, rounds: int) -> dict:
    python = root / ".venv" / "bin" / "python"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([str(python), str(Path(__file__).resolve()), "--child", str(root), "--rounds", str(rounds)],
                          cwd=root, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkouts", nargs="*", type=Path, help="checkout directories (each with .venv and a build)")
    ap.add_argument("--runs", type=int, default=3, help="turns per checkout; the best is kept (default 3)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds over the frames within one turn (default 5)")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.rounds)
        return
    if len(args.checkouts) < 2:
        ap.error("give at least two checkouts")
    runs: list[dict] = []
    for turn in range(args.runs):
        for root in args.checkouts:
            load = os.getloadavg()[0]
            result = measure(root.resolve(), args.rounds)
            runs.append({"checkout": str(root), "turn": turn, "loadavg_1min": load, **result})
            if not args.json:
                print(f"turn {turn} {root}: " + ", ".join(
                    f"{k} median {result[k]['median_ns']:.0f} ns" for k in KINDS) + f" (load {load:.2f})")
    best = {str(root): {k: min(r[k]["median_ns"] for r in runs if r["checkout"] == str(root)) for k in KINDS}
            for root in args.checkouts}
    if args.json:
        print(json.dumps({"runs": runs, "best_median_ns": best}, indent=2))
        return
    first = str(args.checkouts[0])
    print(f"\nbest of {args.runs}, on_frame per message median (ns), vs {first}:")
    for root, row in best.items():
        print(f"{root:<28}" + "".join(f"{k} {row[k]:>6.0f} ({row[k] / best[first][k]:.2f}x)   " for k in KINDS))


if __name__ == "__main__":
    main()
