"""The simulated BTC-USDT traffic looks like the real thing (recorded Binance BTCUSDT, 2024-08-08)."""

from __future__ import annotations

import gzip

import msgspec
import numpy as np

from sentrycoin.sim.generator import MarketGenerator
from tests.realdata import realdata_path


def _stats(events: list[dict]) -> dict[str, float]:
    levels = np.array([len(e["b"]) + len(e["a"]) for e in events])
    ids = np.array([e["u"] - e["U"] + 1 for e in events])
    qtys = [q for e in events for side in (e["b"], e["a"]) for _, q in side]
    span_s = (events[-1]["E"] - events[0]["E"]) / 1000
    return {
        "frames_per_s": len(events) / span_s,
        "levels_median": float(np.median(levels)),
        "ids_per_level": float(ids.sum() / levels.sum()),
        "delete_fraction": sum(1 for q in qtys if float(q) == 0) / len(qtys),
    }


def test_simulated_btc_traffic_matches_real_binance_statistics():
    real = []
    with gzip.open(realdata_path("BINANCE_SPOT_BTCUSDT_20240808.gz"), "rt") as fh:
        for line in fh:
            msg = msgspec.json.decode(line.split(" ", 1)[1])
            if msg.get("stream", "").endswith("@depth@100ms"):
                real.append(msg["data"])
    gen = MarketGenerator(["BTC-USDT"], "normal", seed=1)
    sim = [msgspec.json.decode(f.data)["data"] for f in gen.frames(gen.start_ms + 360_000)]
    r, s = _stats(real), _stats(sim)
    assert 0.8 < s["frames_per_s"] / r["frames_per_s"] < 1.25
    assert 0.5 < s["levels_median"] / r["levels_median"] < 2.0
    assert 0.7 < s["ids_per_level"] / r["ids_per_level"] < 1.4
    assert abs(s["delete_fraction"] - r["delete_fraction"]) < 0.15
