"""Replay throughput: a recording through the full pipeline (feed handler -> book -> detector), no network.

    .venv/bin/python benches/bench_replay.py                 # prints messages/s, median of 5
    .venv/bin/python -m pytest benches/bench_replay.py --benchmark-only

The recording is made once from the simulated market (Binance frames, 10 symbols,
`mixed` scenario, 20 simulated minutes) with the same tee `sentrycoin record` uses.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentrycoin.research.record import tee_handler  # noqa: E402
from sentrycoin.research.recording import Header, RecordingWriter  # noqa: E402
from sentrycoin.research.replay import replay_files  # noqa: E402
from sentrycoin.sim.source import simulated_source  # noqa: E402

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "ADA-USDT", "DOGE-USDT", "XRP-USDT", "LTC-USDT",
           "DOT-USDT", "LINK-USDT"]
SIM_MINUTES = 20


def make_recording(out_dir: Path) -> list[Path]:
    source = simulated_source(SYMBOLS, scenario="mixed", seed=5, realtime=False)
    writer = RecordingWriter(out_dir, Header(venue="binance", symbols=SYMBOLS, depth=50, source="simulated"),
                             prefix="bench")
    tee_handler(source.handler, writer)
    source.run_until(source.generator.start_ms + SIM_MINUTES * 60_000)
    writer.close()
    return writer.files


def replay_once(files: list[Path]) -> tuple[int, float, int, float]:
    """(messages, wall s, alerts, CPU s): on a shared machine the CPU time is the steadier figure."""
    started, cpu = time.perf_counter(), time.process_time()
    summary = replay_files(files)
    return summary.messages, time.perf_counter() - started, len(summary.alerts), time.process_time() - cpu


def test_replay_throughput(benchmark, tmp_path: Path) -> None:
    files = make_recording(tmp_path)
    messages = replay_once(files)[0]
    benchmark.extra_info["messages"] = messages
    benchmark.pedantic(replay_files, args=(files,), rounds=5, warmup_rounds=1)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = make_recording(Path(tmp))
        size = sum(f.stat().st_size for f in files)
        runs = [replay_once(files) for _ in range(6)][1:]  # first run warms caches
        messages, _, alerts, _ = runs[0]
        rates = [m / s for m, s, _, _ in runs]
        cpu_rates = [m / c for m, _, _, c in runs]
        print(f"recording: {len(files)} file(s), {size / 1e6:.1f} MB compressed, {messages:,} book messages, "
              f"{alerts} alerts, {len(SYMBOLS)} symbols, {SIM_MINUTES} simulated minutes")
        print(f"replay: median {statistics.median(rates):,.0f} messages/s "
              f"(min {min(rates):,.0f}, max {max(rates):,.0f}) over {len(rates)} runs; "
              f"per CPU second: median {statistics.median(cpu_rates):,.0f}, best {max(cpu_rates):,.0f}")


if __name__ == "__main__":
    main()
