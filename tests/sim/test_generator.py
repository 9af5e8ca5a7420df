"""The generator: determinism, Binance wire format, U/u chaining, book truth."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import msgspec
import numpy as np
import pytest

from sentrycoin.sim.generator import CATALOGUE, MarketGenerator, fmt_e8, profile_for, venue_symbol

SYMBOLS = ["BTC-USDT", "ETH-USDT", "DOGE-USDT"]


def digest(gen: MarketGenerator, n: int) -> str:
    h = hashlib.sha256()
    for _ in range(n):
        f = gen.next_frame()
        assert f is not None
        h.update(f.symbol.encode())
        h.update(f.recv_ms.to_bytes(8, "little"))
        h.update(f.data)
    for s in gen.symbols:
        h.update(gen.snapshot_body(s))
    return h.hexdigest()


def test_same_seed_same_bytes_and_different_seed_differs():
    a = digest(MarketGenerator(SYMBOLS, "mixed", seed=42), 3000)
    b = digest(MarketGenerator(SYMBOLS, "mixed", seed=42), 3000)
    c = digest(MarketGenerator(SYMBOLS, "mixed", seed=43), 3000)
    assert a == b
    assert a != c


def test_first_frame_is_exact_binance_combined_stream_bytes():
    gen = MarketGenerator(["BTC-USDT"], "normal", seed=1)
    data = gen.next_frame().data
    assert data.startswith(b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1767225600000,'
                           b'"s":"BTCUSDT","U":')
    msg = msgspec.json.decode(data)
    assert list(msg["data"]) == ["e", "E", "s", "U", "u", "b", "a"]


def test_frames_chain_and_levels_are_on_the_grid():
    gen = MarketGenerator(SYMBOLS, "flash_crash", seed=3)
    last_u = {s: msgspec.json.decode(gen.snapshot_body(s))["lastUpdateId"] for s in SYMBOLS}
    levels = {s: 0 for s in SYMBOLS}
    frames = {s: 0 for s in SYMBOLS}
    last_e = 0
    for f in gen.frames():
        msg = msgspec.json.decode(f.data)
        ev = msg["data"]
        sym = f.symbol
        assert msg["stream"] == venue_symbol(sym).lower() + "@depth@100ms"
        assert ev["s"] == venue_symbol(sym) and ev["E"] == f.recv_ms >= last_e
        last_e = ev["E"]
        assert ev["U"] == last_u[sym] + 1 and ev["u"] >= ev["U"] + len(ev["b"]) + len(ev["a"]) - 1
        last_u[sym] = ev["u"]
        prof = profile_for(sym)
        tick, lot = Decimal(prof.tick), Decimal(prof.lot)
        for side, desc in ((ev["b"], True), (ev["a"], False)):
            prices = [Decimal(p) for p, _ in side]
            assert prices == sorted(prices, reverse=desc)
            for p, q in side:
                assert len(p.split(".")[1]) == 8 and len(q.split(".")[1]) == 8
                assert Decimal(p) % tick == 0 and Decimal(p) > 0
                assert Decimal(q) % lot == 0 and Decimal(q) >= 0
        levels[sym] += len(ev["b"]) + len(ev["a"])
        frames[sym] += 1
    duration_s = gen.spec.duration_s
    for s in SYMBOLS:
        assert 9 * duration_s <= frames[s] <= 10 * duration_s  # one frame per 100 ms, only when something changed
        assert levels[s] / duration_s >= 20  # tens of level updates per second


def test_snapshot_has_hundreds_of_levels_and_respects_limit():
    gen = MarketGenerator(["ETH-USDT"], "normal", seed=5)
    for _ in range(200):
        gen.next_frame()
    snap = msgspec.json.decode(gen.snapshot_body("ETH-USDT"))
    assert len(snap["bids"]) >= 300 and len(snap["asks"]) >= 300
    best_bid, best_ask = Decimal(snap["bids"][0][0]), Decimal(snap["asks"][0][0])
    assert best_bid < best_ask
    assert 2000 < best_bid < 4500
    small = msgspec.json.decode(gen.snapshot_for_url("ETH-USDT", "sim://x/api/v3/depth?symbol=ETHUSDT&limit=100"))
    assert len(small["bids"]) == 100 and small["bids"] == snap["bids"][:100]
    assert small["lastUpdateId"] == snap["lastUpdateId"]


def test_each_symbol_has_its_own_price_and_tick():
    gen = MarketGenerator(["BTC-USDT", "DOGE-USDT", "FOO-USDT"], "normal", seed=1)
    mids = {s: gen.sims[s].mid_price() for s in gen.symbols}
    assert 50_000 < mids["BTC-USDT"] < 80_000
    assert 0.05 < mids["DOGE-USDT"] < 0.5
    foo = profile_for("FOO-USDT")
    assert foo == profile_for("FOO-USDT")  # stable, derived from the name
    assert mids["FOO-USDT"] == pytest.approx(foo.mid, rel=0.01)
    assert CATALOGUE["DOGE-USDT"].tick == "0.00001"
    with pytest.raises(ValueError):
        MarketGenerator(["btcusdt"], "normal", seed=1)
    with pytest.raises(ValueError):
        MarketGenerator(["BTC-USDT", "BTC-USDT"], "normal", seed=1)


def test_fmt_e8_is_exact():
    assert fmt_e8(6_500_012_000_000) == "65000.12000000"
    assert fmt_e8(1) == "0.00000001"
    assert fmt_e8(0) == "0.00000000"


def test_handler_book_equals_generator_truth():
    """Snapshot + diffs through the real Binance handler rebuild the generator's book exactly."""
    from tests.sim.conftest import run_scenario

    run = run_scenario("flash_crash", 11, ["BTC-USDT", "XRP-USDT"], seconds=60, record=False)
    for market in run.source.markets:
        sim = run.source.generator.sims[market.symbol]
        assert market.valid and market.resyncs == 0 and market.rejected == 0
        tick = sim.tick_e8 / 1e8
        lot = sim.lot_e8 / 1e8
        want_bids = np.array([[-k * tick, q * lot] for k, q in zip(sim.bids.keys, sim.bids.qty, strict=True)])
        want_asks = np.array([[k * tick, q * lot] for k, q in zip(sim.asks.keys, sim.asks.qty, strict=True)])
        assert market.book.bid_levels == len(want_bids) and market.book.ask_levels == len(want_asks)
        np.testing.assert_allclose(market.book.bids(len(want_bids)), want_bids, rtol=1e-12)
        np.testing.assert_allclose(market.book.asks(len(want_asks)), want_asks, rtol=1e-12)
        assert market.book.ratio == pytest.approx(sim.top_ratio(market.book.depth), rel=1e-9)


def test_derived_profiles_are_usable_for_any_name():
    from sentrycoin.sim.generator import _e8

    for i in range(300):
        p = profile_for(f"C{i}X-USDT")
        tick_e8, lot_e8 = _e8(p.tick), _e8(p.lot)  # exact multiples of 1e-8
        assert p.mid * 1e8 / tick_e8 >= 1000  # thousands of ticks: room for a deep crash
        assert p.base_qty * 1e8 / lot_e8 >= 100  # sizes are many lots: rounding stays small
