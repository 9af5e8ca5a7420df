"""Per-message cost of every venue's handler, ours vs cryptofeed's, and x Binance at the same level count.

Each venue module in benches/venue_cases/ (found by listing the package, so a
new module plugs in without editing this file) offers `cases()`: a venue's
update messages (real recordings, or rewritten from the real Binance
recording's levels) and two consumers, SentryCoin's handler and cryptofeed's
handler for that venue, each started fresh and synced for every round.  For
every case this prints the median ns per message of ours and of cryptofeed's,
their ratio, and ours divided by Binance's on events of the same number of
level changes (benches/venue_cases/binance.py `at_levels`), with the issue-14
goals: within 2x of Binance, at least 5x faster than cryptofeed.

Method: every frame is timed on its own (perf_counter_ns; the timer's own
cost is printed and included); contenders are interleaved round by round;
a round's figure is its median, the reported one the best (lowest) round.
A consumer may carry a `check()` that runs after each round (ours: the book
stayed valid, every frame chained, no checksum mismatch).

    .venv/bin/python benches/bench_venues.py [--repeats 3] [--json] [--only okx]

or through pytest-benchmark (one round = every frame of a case once):

    .venv/bin/python -m pytest benches/bench_venues.py --benchmark-only \
        --benchmark-columns=median,mean,rounds
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import pkgutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benches.venue_cases as venue_cases  # noqa: E402
from benches.venue_cases import VenueCase  # noqa: E402

#: Issue 14's goals per case.
MAX_X_BINANCE = 2.0
MIN_X_CRYPTOFEED = 5.0


def case_modules() -> list[str]:
    """Every venue module of benches/venue_cases (binance first)."""
    names = sorted(m.name for m in pkgutil.iter_modules(venue_cases.__path__) if not m.name.startswith("_"))
    return sorted(names, key=lambda n: n != "binance")


def load_cases(only: str | None = None) -> list[VenueCase]:
    out: list[VenueCase] = []
    for name in case_modules():
        try:
            module = importlib.import_module(f"benches.venue_cases.{name}")
        except ImportError as exc:  # a venue module another change has not landed yet
            print(f"venue case module {name} not loaded: {exc}", file=sys.stderr)
            continue
        for case in module.cases():
            if only is None or only in case.name:
                out.append(case)
    return out


def binance_base(levels: int) -> VenueCase:
    from benches.venue_cases.binance import at_levels

    return at_levels(levels)


def run_round(start, frames, per_frame: list[int] | None) -> int:
    """A fresh consumer, every frame once; returns the round's ns (per-frame ns appended when asked).

    The first frame is a warm-up (not timed): it tells a coroutine consumer
    (cryptofeed) from a plain one."""
    sink = start()
    clock = time.perf_counter_ns
    first = sink(frames[0])
    body = frames[1:]
    if asyncio.iscoroutine(first):
        async def go() -> int:
            await first
            t0 = clock()
            if per_frame is None:
                for f in body:
                    await sink(f)
            else:
                for f in body:
                    t = clock()
                    await sink(f)
                    per_frame.append(clock() - t)
            return clock() - t0
        total = asyncio.run(go())
    else:
        t0 = clock()
        if per_frame is None:
            for f in body:
                sink(f)
        else:
            for f in body:
                t = clock()
                sink(f)
                per_frame.append(clock() - t)
        total = clock() - t0
    check = getattr(sink, "check", None)
    if check is not None:
        check()
    return total


def median_ns(start, frames) -> float:
    per: list[int] = []
    run_round(start, frames, per)
    return float(statistics.median(per))


def timer_overhead_ns() -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(100_000):
        t = clock()
        samples.append(clock() - t)
    return float(statistics.median(samples))


def load_average() -> str:
    try:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average: unknown"


def measure(cases: list[VenueCase], repeats: int) -> list[dict]:
    """Rows per case: best-of-rounds medians of ours, cryptofeed's and the Binance base, interleaved."""
    bases = {c.levels: (c if c.venue == "binance" else binance_base(c.levels)) for c in cases}
    best: dict[tuple[str, str], float] = {}
    contenders = []
    for levels, base in sorted(bases.items()):
        contenders.append((f"binance@{levels}", "ours", base.start_ours, base.frames))
    for c in cases:
        if c.venue != "binance":
            contenders.append((c.name, "ours", c.start_ours, c.frames))
        if c.start_rival is not None:
            contenders.append((c.name, "rival", c.start_rival, c.frames))
    for _ in range(repeats):
        for key, who, start, frames in contenders:
            m = median_ns(start, frames)
            best[(key, who)] = min(m, best.get((key, who), m))
    rows = []
    for c in cases:
        ours = best[(c.name if c.venue != "binance" else f"binance@{c.levels}", "ours")]
        rival = best.get((c.name, "rival"))
        base = best[(f"binance@{c.levels}", "ours")]
        rows.append({
            "case": c.name, "venue": c.venue, "source": c.source, "levels": c.levels, "messages": len(c.frames),
            "ours_ns": ours, "cryptofeed_ns": rival, "rival_note": c.rival_note,
            "x_faster_than_cryptofeed": rival / ours if rival else None,
            "binance_ns": base, "x_binance": ours / base,
            "goals": c.goals,
            "goal_x_binance_ok": ours / base <= MAX_X_BINANCE if c.goals else None,
            "goal_vs_cryptofeed_ok": (rival / ours >= MIN_X_CRYPTOFEED) if rival and c.goals else None,
        })
    return rows


def print_table(rows: list[dict], overhead: float, load: str) -> None:
    print(f"{load}; timer overhead per timed frame (included): {overhead:.0f} ns")
    print(f"{'case':<50}{'levels':>7}{'ours ns':>9}{'cf ns':>10}{'cf/ours':>9}{'x Binance':>11}  goals")
    for r in rows:
        cf = f"{r['cryptofeed_ns']:.0f}" if r["cryptofeed_ns"] else "-"
        ratio = f"{r['x_faster_than_cryptofeed']:.1f}" if r["x_faster_than_cryptofeed"] else "-"
        if not r["goals"]:
            goals = "(no goal: information)"
        else:
            goals = "ok" if r["goal_x_binance_ok"] else f"> {MAX_X_BINANCE}x Binance"
        if r["goal_vs_cryptofeed_ok"] is not None:
            goals += ", " + ("ok" if r["goal_vs_cryptofeed_ok"] else f"< {MIN_X_CRYPTOFEED}x cryptofeed")
        print(f"{r['case']:<50}{r['levels']:>7}{r['ours_ns']:>9.0f}{cf:>10}{ratio:>9}{r['x_binance']:>11.2f}  {goals}")
    print("cryptofeed:", "; ".join(sorted({f"{r['venue']}: {r['rival_note']}" for r in rows if r["rival_note"]})))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds per contender (best round counts)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--only", default=None, help="only cases whose name contains this text")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats {args.repeats}: must be at least 1")
    cases = load_cases(args.only)
    overhead = timer_overhead_ns()
    load_before = load_average()
    rows = measure(cases, args.repeats)
    load = f"{load_before} (before), {load_average()} (after)"
    if args.json:
        print(json.dumps({"load": load, "timer_overhead_ns": overhead, "repeats": args.repeats, "rows": rows},
                         indent=1))
    else:
        print_table(rows, overhead, load)


# -- pytest-benchmark: one entry per case and consumer ------------------------------------------------

def _bench_ids() -> list[str]:
    try:
        cases = load_cases()
    except Exception:  # pragma: no cover - a broken case module shows as one failing entry
        return ["load-error"]
    ids = []
    for c in cases:
        ids.append(f"{c.name}|ours")
        ids.append(f"{c.name}|cryptofeed")
    return ids


def _run_bench(benchmark, bench_id: str) -> None:
    import pytest

    name, _, who = bench_id.partition("|")
    case = next(c for c in load_cases() if c.name == name)
    start = case.start_ours if who == "ours" else case.start_rival
    if start is None:
        pytest.skip("cryptofeed not installed")
    benchmark.extra_info.update({"case": name, "consumer": who, "levels": case.levels,
                                 "messages": len(case.frames), "per_message_median_ns": median_ns(start, case.frames)})
    rounds = 1 if who == "cryptofeed" else 3
    total = benchmark.pedantic(run_round, args=(start, case.frames, None), rounds=rounds, iterations=1)
    benchmark.extra_info["per_message_mean_ns"] = total / (len(case.frames) - 1)


def _make_tests() -> None:
    import pytest

    @pytest.mark.parametrize("bench_id", _bench_ids())
    def test_venue(benchmark, bench_id: str) -> None:
        _run_bench(benchmark, bench_id)

    globals()["test_venue"] = test_venue


if "pytest" in sys.modules:
    _make_tests()

if __name__ == "__main__":
    main()
