from __future__ import annotations

import os
import subprocess
import sys
import zlib
from collections import Counter

import pytest

from sentrycoin.ha.sharding import market_id, shard_markets, shard_of

VENUES = ("binance", "binance-futures", "coinbase", "kraken", "bybit", "bybit-linear", "okx", "okx-swap")


def many_markets(n_bases: int = 150) -> list[tuple[str, str]]:
    return [(v, f"C{i:03d}-USDT") for v in VENUES for i in range(n_bases)]


def test_shard_is_crc32_of_exchange_colon_symbol() -> None:
    key = ("binance", "BTC-USDT")
    assert market_id(key) == "binance:BTC-USDT"
    for count in (1, 2, 3, 7):
        assert shard_of(key, count) == zlib.crc32(b"binance:BTC-USDT") % count


def test_shard_is_stable_across_processes() -> None:
    """Unlike hash(), the assignment must not depend on the per-process hash seed."""
    keys = [("binance", "BTC-USDT"), ("okx-swap", "ETH-USDT"), ("kraken", "SOL-USD")]
    here = [shard_of(k, 5) for k in keys]
    code = ("from sentrycoin.ha.sharding import shard_of; "
            f"print([shard_of(k, 5) for k in {keys!r}])")
    for seed in ("1", "12345"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert out.strip() == str(here)


@pytest.mark.parametrize("count", [2, 3, 4, 8])
def test_shards_partition_and_balance(count: int) -> None:
    markets = many_markets()
    parts = [shard_markets(markets, count, i) for i in range(count)]
    flat = [m for p in parts for m in p]
    assert sorted(flat) == sorted(markets) and len(flat) == len(set(flat))  # disjoint and complete
    for p in parts:  # input order is kept
        assert p == [m for m in markets if m in set(p)]
    sizes = Counter({i: len(p) for i, p in enumerate(parts)})
    expected = len(markets) / count
    assert all(abs(n - expected) <= 0.15 * expected for n in sizes.values()), sizes


def test_adding_a_market_moves_no_other() -> None:
    markets = many_markets(30)
    before = {m: shard_of(m, 4) for m in markets}
    after = {m: shard_of(m, 4) for m in markets + [("bybit", "NEW-USDT")]}
    assert all(after[m] == s for m, s in before.items())


def test_single_shard_keeps_everything() -> None:
    markets = many_markets(5)
    assert shard_markets(markets, 1, 0) == markets


@pytest.mark.parametrize("count,index", [(0, 0), (2, 2), (2, -1)])
def test_bad_shard_settings_rejected(count: int, index: int) -> None:
    with pytest.raises(ValueError, match="SHARD_"):
        shard_markets([("binance", "BTC-USDT")], count, index)
