"""Lease-driven takeover in the monitor: real redis-server, local Binance emulator, two Monitors.

Each replica watches its shard; when one dies (its run task is cancelled, so
its leases are never released, like kill -9) the other picks its markets up
within about one lease TTL and syncs their books from the venue; when a
replica of that shard comes back, they are handed back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sentrycoin.config import ConfigError, load_settings
from sentrycoin.emulator import create_emulator
from sentrycoin.ha.setup import HASettings
from sentrycoin.ha.sharding import shard_of
from sentrycoin.monitor import Monitor
from tests.ha.conftest import RedisServer

TTL_S = 1.5
VENUE = "binance"
# Two markets per shard of 2 (crc32 of "binance:<symbol>").
SYMBOLS = ["BTC-USDT", "ETH-USDT", "DOGE-USDT", "BNB-USDT"]
ALL = {(VENUE, s) for s in SYMBOLS}
SHARD = {i: {k for k in ALL if shard_of(k, 2) == i} for i in (0, 1)}
AUDIT_DEPTH = 10

pytestmark = pytest.mark.timeout(60)


def test_symbols_split_two_and_two() -> None:
    assert len(SHARD[0]) == 2 and len(SHARD[1]) == 2


async def wait_for(cond: Callable[[], bool], timeout_s: float, what: Callable[[], str]) -> float:
    """Poll until `cond()`; returns the seconds it took, fails with `what()` on timeout."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.1f} s: {what()}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class Replica:
    """One Monitor (live mode, no HTTP) and its run task."""

    def __init__(self, tmp_path: Path, name: str, index: int, redis_url: str, emu, **extra: str) -> None:  # noqa: ANN001
        settings = load_settings(env={"EXCHANGE": VENUE, "SYMBOLS": ",".join(SYMBOLS)})
        settings.db_path = str(tmp_path / f"{name}.db")
        env = {"REDIS_URL": redis_url, "SHARD_COUNT": "2", "SHARD_INDEX": str(index), "REPLICA_ID": name,
               "REDIS_KEY_PREFIX": "failover", "LEASE_TTL_S": str(TTL_S),
               "BINANCE_WS_URL": emu.ws_url, "BINANCE_REST_URL": emu.rest_url, **extra}
        self.name = name
        self.monitor = Monitor(settings, env=env, serve_http=False, console=True)
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Replica:
        self.task = asyncio.create_task(self.monitor.run(self.stop_event), name=f"monitor {self.name}")
        return self

    async def crash(self) -> None:
        """Cancel the run task: nothing is released (the leases expire after their TTL)."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        # A cancelled Monitor.run leaves its live runner's sockets open (a dead process would
        # not have any): close them so the emulator stops feeding this replica.
        await self.monitor._stop_source()

    async def stop(self) -> None:
        self.stop_event.set()
        if self.task is not None:
            await asyncio.wait_for(asyncio.gather(self.task, return_exceptions=True), 15)

    # -- what it watches ------------------------------------------------------

    def watched(self) -> set[tuple[str, str]]:
        return {m.key for m in self.monitor.markets}

    def consistent(self) -> bool:
        """/status (markets), _by_key and the handlers all name the same markets, once each."""
        m = self.monitor
        by_handler = [(h.venue, s) for h in m.handlers for s in h.markets]
        return (len(by_handler) == len(set(by_handler)) == len(m.markets)
                and set(by_handler) == self.watched() == set(m._by_key)
                and all(m._by_key[k] is h.markets[k[1]] for h in m.handlers for k in
                        [(h.venue, s) for s in h.markets]))

    def all_valid(self) -> bool:
        return bool(self.monitor.markets) and all(mk.valid for mk in self.monitor.markets)

    def watches(self, keys: set[tuple[str, str]]) -> bool:
        return self.watched() == keys and self.consistent() and self.all_valid()

    def describe(self) -> str:
        return f"{self.name}: " + ", ".join(
            f"{mk.symbol} valid={mk.valid} ({mk.invalid_reason})" for mk in self.monitor.markets) + (
            f"; handlers {[sorted(h.markets) for h in self.monitor.handlers]}")


def book_key(book, k: int = AUDIT_DEPTH):  # noqa: ANN001, ANN201
    return (tuple(map(tuple, book.bids(k).tolist())), tuple(map(tuple, book.asks(k).tolist())))


async def books_equal_truth(replica: Replica, emu) -> None:  # noqa: ANN001
    """Freeze the venue and wait until every book this replica watches is the venue's book."""
    emu.pause()
    try:
        def equal() -> bool:
            return all(mk.valid and book_key(mk.book) == emu.books[mk.symbol].top_key(AUDIT_DEPTH)
                       for mk in replica.monitor.markets)
        await wait_for(equal, 5.0, replica.describe)
    finally:
        emu.resume()


async def test_survivor_takes_over_a_crashed_replica_and_hands_back(tmp_path: Path,
                                                                    redis_server: RedisServer) -> None:
    async with create_emulator(VENUE, SYMBOLS, seed=1) as emu:
        a = Replica(tmp_path, "a", 0, redis_server.url, emu)
        b = Replica(tmp_path, "b", 1, redis_server.url, emu)
        b2: Replica | None = None
        # Before running: the static shard, as without leases.
        assert a.watched() == SHARD[0] and b.watched() == SHARD[1]
        a.start(), b.start()
        try:
            await wait_for(lambda: a.watches(SHARD[0]) and b.watches(SHARD[1]), 10.0,
                           lambda: a.describe() + " | " + b.describe())
            assert a.monitor._leases is not None and a.monitor._leases.held == SHARD[0]
            assert b.monitor._leases is not None and b.monitor._leases.held == SHARD[1]
            kept = {mk.key: mk for mk in a.monitor.markets}
            resyncs0 = {k: mk.resyncs for k, mk in kept.items()}
            # Past A's start-up grace (one TTL) nothing moves while both are alive.
            await asyncio.sleep(TTL_S * 1.2)
            assert a.watched() == SHARD[0] and b.watched() == SHARD[1]

            await b.crash()
            took_s = await wait_for(lambda: a.watched() == ALL and a.consistent(), TTL_S * 4 / 3 + 1.5,
                                    a.describe)
            # B's leases expire within one TTL, A's next round (every TTL/3) takes them,
            # then the debounce (0.5 s): about one TTL in all.
            assert took_s <= TTL_S * 4 / 3 + 1.5
            assert a.monitor._leases.held == ALL
            await wait_for(lambda: a.watches(ALL), 10.0, a.describe)
            await books_equal_truth(a, emu)
            # A kept its own Market objects (resynced from a fresh snapshot), and created new
            # live ones for B's markets.
            for key, market in kept.items():
                assert a.monitor._by_key[key] is market and market.resyncs > resyncs0[key]
            assert all(mk.source == "live" for mk in a.monitor.markets)
            assert [h.venue for h in a.monitor.handlers] == [VENUE]
            runner = a.monitor._source
            assert runner.handlers == a.monitor.handlers
            assert {k[0] for k in runner.connections} == {id(a.monitor.handlers[0])}

            # A replica of shard 1 comes back: A hands B's markets back.
            b2 = Replica(tmp_path, "b2", 1, redis_server.url, emu).start()
            await wait_for(lambda: a.watches(SHARD[0]) and b2.watches(SHARD[1]), 12.0,
                           lambda: a.describe() + " | " + b2.describe())
            await books_equal_truth(b2, emu)
            assert a.monitor._leases.held == SHARD[0] and b2.monitor._leases.held == SHARD[1]
        finally:
            for r in (a, b, b2):
                if r is not None and r.task is not None and not r.task.done():
                    await r.stop()


async def test_redis_outage_keeps_every_held_market_watched(tmp_path: Path, redis_server: RedisServer) -> None:
    """Alone on shard 0 of 2, A takes shard 1 after one TTL; a Redis outage then changes nothing."""
    async with create_emulator(VENUE, SYMBOLS, seed=3) as emu:
        a = Replica(tmp_path, "a", 0, redis_server.url, emu).start()
        try:
            await wait_for(lambda: a.watches(ALL), TTL_S * 4 / 3 + 10.0, a.describe)
            redis_server.kill()
            await asyncio.sleep(TTL_S * 2)  # several lease rounds fail
            assert a.monitor.ha is not None and a.monitor.ha.coordinator.degraded
            assert a.watches(ALL), a.describe()
            assert a.monitor._leases is not None and a.monitor._leases.held == ALL
        finally:
            await a.stop()


# -- without leasing nothing changes ---------------------------------------------------


def _monitor(tmp_path: Path, env: dict[str, str]) -> Monitor:
    settings = load_settings(env={"EXCHANGE": VENUE, "SYMBOLS": ",".join(SYMBOLS)})
    settings.db_path = str(tmp_path / "m.db")
    return Monitor(settings, env={"REPLICA_ID": "x", **env}, serve_http=False, console=True)


@pytest.mark.parametrize("env,watched", [
    ({}, ALL),
    ({"SHARD_COUNT": "2", "SHARD_INDEX": "1"}, SHARD[1]),  # static shard without Redis
    ({"REDIS_URL": "redis://127.0.0.1:1/0"}, ALL),  # SHARD_COUNT 1: replicas for uptime
])
def test_no_leases_without_redis_and_shards(tmp_path: Path, env: dict[str, str],
                                            watched: set[tuple[str, str]]) -> None:
    m = _monitor(tmp_path, env)  # never run: its store worker has no thread to stop
    assert m._leases is None
    assert {mk.key for mk in m.markets} == watched


def test_leases_cover_every_configured_market(tmp_path: Path) -> None:
    m = _monitor(tmp_path, {"REDIS_URL": "redis://127.0.0.1:1/0", "SHARD_COUNT": "2", "SHARD_INDEX": "0",
                            "LEASE_TTL_S": "4.5"})
    assert m._leases is not None
    assert set(m._leases.markets) == ALL and set(m._leases.own_shard) == SHARD[0]
    assert m._leases.ttl_ms == 4500
    assert {mk.key for mk in m.markets} == SHARD[0]  # until the first lease round
    assert m.settings_redacted()["ha"]["lease_ttl_s"] == 4.5


def test_lease_ttl_setting() -> None:
    assert HASettings.from_env({}).lease_ttl_s == 10.0
    assert not HASettings.from_env({"SHARD_COUNT": "2"}).leasing
    assert HASettings.from_env({"REDIS_URL": "redis://r:6379/0", "SHARD_COUNT": "2"}).leasing
    for bad in ("ten", "0.1", "-3", "nan", "inf"):
        with pytest.raises(ConfigError, match="LEASE_TTL_S"):
            HASettings.from_env({"LEASE_TTL_S": bad})
