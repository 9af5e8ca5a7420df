"""Per-market leases on a real redis-server (TTL 1 s: renewals every ~0.33 s)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from sentrycoin.ha.coordinator import RedisCoordinator
from sentrycoin.ha.leases import ACQUIRED, LOST, LeaseManager
from sentrycoin.ha.sharding import shard_markets
from tests.ha.conftest import RedisServer, wait_until

TTL_MS = 1000
MARKETS = [(v, f"C{i:02d}-USDT") for v in ("binance", "okx", "bybit") for i in range(8)]


class Replica:
    """One replica: its coordinator, lease manager and the watch list the callback keeps."""

    def __init__(self, url: str, name: str, shard_count: int, shard_index: int) -> None:
        self.coord = RedisCoordinator(url, replica_id=name, key_prefix="t", retry_interval_s=0.05)
        self.watching: set[tuple[str, str]] = set()
        self.events: list[tuple[str, tuple[str, str]]] = []
        self.leases = LeaseManager(self.coord, MARKETS, shard_count=shard_count, shard_index=shard_index,
                                   ttl_ms=TTL_MS, on_change=self.on_change)

    def on_change(self, kind: str, market: tuple[str, str]) -> None:
        self.events.append((kind, market))
        if kind == ACQUIRED:
            assert market not in self.watching
            self.watching.add(market)
        else:
            assert kind == LOST
            self.watching.remove(market)

    async def start(self) -> Replica:
        await self.coord.start()
        await self.leases.start()
        return self

    async def crash(self) -> None:
        """Stop renewing without releasing anything (kill -9)."""
        await self.leases.stop(release=False)
        await self.coord.stop()

    async def stop(self) -> None:
        await self.leases.stop()
        await self.coord.stop()


async def test_two_replicas_split_markets_by_shard_and_take_over_a_dead_one(redis_server: RedisServer) -> None:
    a = await Replica(redis_server.url, "a", 2, 0).start()
    b = await Replica(redis_server.url, "b", 2, 1).start()
    try:
        own_a, own_b = set(shard_markets(MARKETS, 2, 0)), set(shard_markets(MARKETS, 2, 1))
        assert own_a and own_b
        assert a.watching == own_a and b.watching == own_b  # first round, before start() returned
        assert a.leases.held == own_a
        # Steady state over several renewals (> 1 TTL): nothing moves.
        await asyncio.sleep(1.5)
        assert a.watching == own_a and b.watching == own_b
        assert [k for k, _ in a.events] == [ACQUIRED] * len(own_a)

        await b.crash()
        # B's leases and heartbeat expire within one TTL; A's next round takes them.
        assert await wait_until(lambda: a.watching == set(MARKETS), TTL_MS / 1000 * 2)
        assert a.leases.held == set(MARKETS)

        # B comes back (new process, same shard): A hands its markets back.
        b2 = await Replica(redis_server.url, "b2", 2, 1).start()
        try:
            assert await wait_until(lambda: b2.watching == own_b and a.watching == own_a, 2.0)
            assert sorted(m for k, m in a.events if k == LOST) == sorted(own_b)
        finally:
            await b2.stop()
    finally:
        await a.stop()


async def test_graceful_stop_hands_over_without_waiting_for_the_ttl(redis_server: RedisServer) -> None:
    a = await Replica(redis_server.url, "a", 2, 0).start()
    b = await Replica(redis_server.url, "b", 2, 1).start()
    try:
        await asyncio.sleep(TTL_MS / 1000 + 0.1)  # past A's start-up takeover delay
        await b.stop()
        assert b.watching == set()  # stop() reports every market as lost
        assert await wait_until(lambda: a.watching == set(MARKETS), 0.9)
    finally:
        await a.stop()


async def test_standby_replica_of_the_same_shard_takes_over(redis_server: RedisServer) -> None:
    active = await Replica(redis_server.url, "active", 1, 0).start()
    standby = await Replica(redis_server.url, "standby", 1, 0).start()
    try:
        assert active.watching == set(MARKETS) and standby.watching == set()
        await active.crash()
        assert await wait_until(lambda: standby.watching == set(MARKETS), TTL_MS / 1000 * 2)
    finally:
        await standby.stop()


async def test_only_the_holder_renews_a_lease(redis_server: RedisServer) -> None:
    a = await Replica(redis_server.url, "a", 1, 0).start()
    try:
        market = MARKETS[3]
        r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            key = a.leases.lease_key(market)
            assert await r.get(key) == "a"
            await r.set(key, "intruder", px=60_000)  # someone else owns it now
            await a.leases.tick()
            assert (LOST, market) in a.events and market not in a.watching
            assert await r.get(key) == "intruder"  # not overwritten, not extended by us
            await a.leases.stop()  # release must not delete another replica's lease
            assert await r.get(key) == "intruder"
            assert await r.get(a.leases.lease_key(MARKETS[0])) is None  # ours are released
        finally:
            await r.aclose()
    finally:
        await a.coord.stop()


async def test_redis_outage_keeps_markets_watched(redis_server: RedisServer) -> None:
    a = await Replica(redis_server.url, "a", 2, 0).start()
    try:
        own = set(shard_markets(MARKETS, 2, 0))
        redis_server.kill()
        await a.leases.tick()  # no exception
        assert a.coord.degraded and a.watching == own
        redis_server.start()  # empty: leases are gone
        assert await wait_until(lambda: not a.coord.degraded, 3.0)
        await a.leases.tick()
        r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            assert await r.get(a.leases.lease_key(sorted(own)[0])) == "a"  # taken back
        finally:
            await r.aclose()
        assert a.watching == own
    finally:
        await a.stop()


async def test_degraded_at_start_watches_own_shard() -> None:
    from tests.ha.conftest import free_port

    coord = RedisCoordinator(f"redis://127.0.0.1:{free_port()}/0", replica_id="x", retry_interval_s=10)
    await coord.start()
    seen: list[tuple[str, tuple[str, str]]] = []
    leases = LeaseManager(coord, MARKETS, shard_count=3, shard_index=2, ttl_ms=TTL_MS,
                          on_change=lambda k, m: seen.append((k, m)))
    try:
        await leases.start()
        own = set(shard_markets(MARKETS, 3, 2))
        assert own and {m for _, m in seen} == own and leases.held == own
    finally:
        await leases.stop()
        await coord.stop()
