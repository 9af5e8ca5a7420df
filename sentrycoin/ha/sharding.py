"""Static market sharding: which replica watches which (exchange, symbol).

A market belongs to shard ``crc32(b"exchange:symbol") % shard_count``.  CRC-32
(zlib, IEEE polynomial) is used because it is stable across processes,
platforms and Python versions (unlike ``hash()``, which is salted per process),
so every replica computes the same assignment from the same market list
without talking to each other.  Adding or removing a market never moves any
other market; changing SHARD_COUNT does reshuffle (plain modulo, no
consistent hashing: replicas are few and restart together when it changes).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

MarketKey = tuple[str, str]  # (exchange, symbol), the same as Market.key


def market_id(key: MarketKey) -> str:
    """'binance:BTC-USDT': the text that is hashed and used in Redis keys."""
    exchange, symbol = key
    return f"{exchange}:{symbol}"


def check_shard(shard_count: int, shard_index: int) -> None:
    if shard_count < 1:
        raise ValueError(f"SHARD_COUNT must be >= 1, got {shard_count}")
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"SHARD_INDEX must be in [0, {shard_count - 1}], got {shard_index}")


def shard_of(key: MarketKey, shard_count: int) -> int:
    """The shard (0 .. shard_count-1) that owns `key`."""
    if shard_count < 1:
        raise ValueError(f"SHARD_COUNT must be >= 1, got {shard_count}")
    return zlib.crc32(market_id(key).encode("utf-8")) % shard_count


def shard_markets(markets_keys: Iterable[MarketKey], shard_count: int, shard_index: int) -> list[MarketKey]:
    """The markets of `markets_keys` owned by shard `shard_index`, input order kept."""
    check_shard(shard_count, shard_index)
    return [k for k in markets_keys if shard_of(k, shard_count) == shard_index]
