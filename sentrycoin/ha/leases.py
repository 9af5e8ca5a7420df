"""Per-market leases on Redis: which replica watches which market right now.

Every replica runs a `LeaseManager` over the full market list.  Each market
has one lease key, ``<prefix>:lease:{<exchange>:<symbol>}`` = replica id, set
with ``SET NX PX ttl`` and renewed every ttl/3 by a Lua check-and-set (only
the holder can extend or delete it).  Each replica also refreshes a shard
heartbeat ``<prefix>:shard:<count>:<index>`` with the same TTL.

One round (`tick`), every ttl/3:

1. heartbeat; read which shards have a live heartbeat;
2. renew held leases (a lease found taken by another replica is *lost*;
   one that merely expired and is still free is taken back);
3. hand back markets of another shard whose owner is alive again (release:
   the owner acquires them on its next round);
4. acquire free markets of our own shard, and free markets of shards with no
   live heartbeat (a dead or missing replica; only from one TTL after start,
   so replicas started together see each other first): a dead replica's
   leases and heartbeat expire within one TTL, and survivors take its
   markets on their next round, so within ttl * 4/3 of its last renewal.

Changes are reported through ``on_change("acquired" | "lost", (exchange,
symbol))``; the monitor starts or stops watching that market.

While Redis is unreachable (see RedisCoordinator) nothing can be checked:
the manager keeps every market it holds and also takes all of its own shard,
preferring double coverage (duplicates are still deduplicated by episode
claims once Redis is back) to unwatched markets.  On recovery the next round
reconciles: leases held elsewhere are reported lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from sentrycoin.ha.coordinator import RedisCoordinator
from sentrycoin.ha.sharding import MarketKey, check_shard, market_id, shard_of

log = logging.getLogger("sentrycoin.ha")

ACQUIRED = "acquired"
LOST = "lost"

LeaseCallback = Callable[[str, MarketKey], None]

# Renew, or take back a lease that expired while nobody else took it.
# 1: held by us now, 0: held by someone else.
_RENEW_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Delete only if we hold it.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseManager:
    def __init__(
        self,
        coordinator: RedisCoordinator,
        markets: Iterable[MarketKey],
        *,
        shard_count: int = 1,
        shard_index: int = 0,
        ttl_ms: int = 15_000,
        on_change: LeaseCallback | None = None,
    ) -> None:
        check_shard(shard_count, shard_index)
        if ttl_ms < 30:
            raise ValueError(f"lease ttl_ms must be >= 30, got {ttl_ms}")
        self.coordinator = coordinator
        self.markets: list[MarketKey] = list(dict.fromkeys(markets))
        self.shard_count = shard_count
        self.shard_index = shard_index
        self.ttl_ms = int(ttl_ms)
        self.renew_every_s = self.ttl_ms / 3000.0
        self.on_change = on_change
        self._shard = {m: shard_of(m, shard_count) for m in self.markets}
        self.own_shard: list[MarketKey] = [m for m in self.markets if self._shard[m] == shard_index]
        self._held: set[MarketKey] = set()
        self._task: asyncio.Task[None] | None = None
        self.acquired_total = 0
        self.lost_total = 0
        self.ticks = 0
        self._takeover_after_s: float | None = None

    def __repr__(self) -> str:
        return (f"LeaseManager(shard {self.shard_index}/{self.shard_count}, held {len(self._held)}"
                f"/{len(self.markets)}, replica {self.coordinator.replica_id!r})")

    @property
    def held(self) -> frozenset[MarketKey]:
        return frozenset(self._held)

    @property
    def me(self) -> str:
        return self.coordinator.replica_id

    def lease_key(self, market: MarketKey) -> str:
        return f"{self.coordinator.key_prefix}:lease:{{{market_id(market)}}}"

    def heartbeat_key(self, shard_index: int) -> str:
        return f"{self.coordinator.key_prefix}:shard:{self.shard_count}:{shard_index}"

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """First round now (so own markets are reported before this returns), then every ttl/3."""
        if self._task is not None:
            return
        # Other shards' markets are taken only after one TTL: replicas started
        # together first see each other's heartbeats (no grab-then-hand-back churn).
        # A dead replica's leases take a TTL to expire anyway.
        self._takeover_after_s = asyncio.get_running_loop().time() + self.ttl_ms / 1000.0
        await self.tick()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="sentrycoin-leases")

    async def stop(self, *, release: bool = True) -> None:
        """Stop renewing.  `release`: give leases and heartbeat back now so another
        replica takes over on its next round instead of after the TTL."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if release and self.coordinator.available:
            held = list(self._held)
            release_script = self.coordinator.script(_RELEASE_LUA)
            hb = self.heartbeat_key(self.shard_index)

            async def run(r):
                pipe = r.pipeline(transaction=False)
                for m in held:
                    await release_script(keys=[self.lease_key(m)], args=[self.me], client=pipe)
                await release_script(keys=[hb], args=[self.me], client=pipe)
                return await pipe.execute()

            await self.coordinator.call("lease release", run)
        for m in sorted(self._held):
            self._change(LOST, m)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_every_s)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop renewals for good
                log.exception("HA: lease round failed")

    # -- one round -----------------------------------------------------------------

    async def tick(self) -> None:
        self.ticks += 1
        if not self.coordinator.available or not await self._tick_redis():
            self._tick_local()

    def _tick_local(self) -> None:
        """Redis unreachable: keep what we hold and cover our own shard."""
        for m in self.own_shard:
            if m not in self._held:
                self._change(ACQUIRED, m)

    async def _tick_redis(self) -> bool:
        coord, me, ttl = self.coordinator, self.me, self.ttl_ms
        renew = coord.script(_RENEW_LUA)
        release = coord.script(_RELEASE_LUA)
        held = sorted(self._held)
        shards = range(self.shard_count)

        async def phase1(r):
            pipe = r.pipeline(transaction=False)
            pipe.set(self.heartbeat_key(self.shard_index), me, px=ttl)
            for s in shards:
                pipe.get(self.heartbeat_key(s))
            for m in held:
                await renew(keys=[self.lease_key(m)], args=[me, ttl], client=pipe)
            return await pipe.execute()

        ok, res = await coord.call("lease renew", phase1)
        if not ok or res is None:
            return False
        beats = res[1:1 + self.shard_count]
        alive = {s for s, v in zip(shards, beats, strict=True) if v is not None and v != me}
        alive.add(self.shard_index)
        still: list[MarketKey] = []
        for m, r in zip(held, res[1 + self.shard_count:], strict=True):
            if int(r) == 1:
                still.append(m)
            else:
                self._change(LOST, m)
        # Hand back other shards' markets whose owner is alive.
        give_back = [m for m in still if self._shard[m] != self.shard_index and self._shard[m] in alive]
        takeover = self._takeover_after_s is None or asyncio.get_running_loop().time() >= self._takeover_after_s
        wanted = [m for m in self.markets if m not in self._held and (
            self._shard[m] == self.shard_index or (takeover and self._shard[m] not in alive))]
        if not give_back and not wanted:
            return True

        async def phase2(r):
            pipe = r.pipeline(transaction=False)
            for m in give_back:
                await release(keys=[self.lease_key(m)], args=[me], client=pipe)
            for m in wanted:
                pipe.set(self.lease_key(m), me, nx=True, px=ttl)
            return await pipe.execute()

        ok, res = await coord.call("lease acquire", phase2)
        if not ok or res is None:
            return False
        for m in give_back:
            log.info("HA: handing %s back to the replica of shard %d", market_id(m), self._shard[m])
            self._change(LOST, m)
        for m, r in zip(wanted, res[len(give_back):], strict=True):
            if r:
                self._change(ACQUIRED, m)
        return True

    def _change(self, kind: str, market: MarketKey) -> None:
        if kind == ACQUIRED:
            if market in self._held:
                return
            self._held.add(market)
            self.acquired_total += 1
        else:
            if market not in self._held:
                return
            self._held.discard(market)
            self.lost_total += 1
        log.debug("HA: lease %s %s", kind, market_id(market))
        if self.on_change is not None:
            try:
                self.on_change(kind, market)
            except Exception:
                log.exception("HA: lease callback failed for %s %s", kind, market_id(market))

    def stats(self) -> dict[str, int]:
        return {"held": len(self._held), "markets": len(self.markets), "acquired_total": self.acquired_total,
                "lost_total": self.lost_total}
