"""Cross-replica alert episodes and per-channel delivery leases on Redis.

Several replicas may watch the same market (for uptime); each one's detector
fires on the same crash, a few hundred ms apart.  Two steps decide who sends:

1. **Join the episode** (once per alert).  One key per (exchange, symbol,
   severity)::

       <prefix>:episode:{<exchange>:<symbol>}:<severity>   value: episode id, PX = window

   The first replica to fire sets it to its own episode id; a later alert of
   any replica on the same crash *joins* it and adopts that id, so the
   episode id (webhook Idempotency-Key, JSON body, /alerts) is the same on
   every replica.  A live key of a *higher* severity *covers* the alert: it
   then stands in for that episode (claims its channels, see gate.py).  The window is the detector
   cooldown (at least `min_window_ms`); event times of two replicas' books
   differ, so they are not part of the key.

2. **Lease the channel** (before every send attempt), per notifier::

       <prefix>:delivery:{<episode id>}:<channel>:lease   value: replica id, PX = lease TTL
       <prefix>:delivery:{<episode id>}:<channel>:done    value: replica id that delivered

   `claim_channel` answers SEND (the lease is free, expired or already ours:
   it is ours now), HELD (another replica holds a live lease: ask again
   later) or DONE (someone delivered: suppress, recording who).  The sender
   renews its lease while it retries (`renew_channels`, every TTL/3) and
   `finish_channel` either marks the channel done (delivered) or releases it
   (permanent failure here, e.g. a revoked Telegram token), so another
   replica takes over at once; a replica that dies stops renewing and its
   lease expires within one TTL.  Leases are per channel: a replica whose
   Telegram is broken may still own the webhook.

All scripts are atomic Lua; `{...}` hash tags keep each script's keys in one
Redis Cluster slot.

Failure handling.  Every Redis call has a short timeout.  On the first error
the coordinator logs ONE warning, switches to local decisions (episodes on
local cooldowns; every channel claim is SEND unless this replica already
delivered it: replicas may then both deliver - we prefer a duplicate to a
lost alert), and probes Redis in the background with a small write.  When
the probe succeeds it copies its live local episodes into Redis (SET NX,
remaining TTL), logs once and goes back to Redis.  Nothing here ever raises
into callers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

log = logging.getLogger("sentrycoin.ha")

T = TypeVar("T")

#: Order of severities (names from sentrycore.SEVERITY_NAMES).
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2, "extreme": 3}
_BY_RANK = ("warning", "critical", "extreme")

_JOIN_LUA = """
-- KEYS[1]: key of the alert's severity; KEYS[2..n]: keys of the higher severities.
-- ARGV[1]: this replica's episode id; ARGV[2]: window (ms).
-- Returns {1, id} new episode, {2, id} joined an existing one, {3, id} covered by a higher severity.
for i = 2, #KEYS do
  local other = redis.call('GET', KEYS[i])
  if other then return {3, other} end
end
local existing = redis.call('GET', KEYS[1])
if existing then return {2, existing} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, ARGV[1]}
"""

_CLAIM_CHANNEL_LUA = """
-- KEYS[1]: lease, KEYS[2]: done.  ARGV[1]: replica id, ARGV[2]: lease TTL (ms).
-- Returns {1} ours (send), {2, holder, pttl} held by another replica, {3, who} delivered.
local done = redis.call('GET', KEYS[2])
if done then return {3, done} end
local holder = redis.call('GET', KEYS[1])
if (not holder) or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1}
end
return {2, holder, redis.call('PTTL', KEYS[1])}
"""

_FINISH_CHANNEL_LUA = """
-- KEYS[1]: lease, KEYS[2]: done.  ARGV[1]: replica id, ARGV[2]: '1' delivered / '0' released,
-- ARGV[3]: how long the done mark lives (ms).
if ARGV[2] == '1' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# Extend our lease (or take it back if it expired and nobody took it); 0: another replica has it.
_RENEW_CHANNEL_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

NEW, JOINED, COVERED = 1, 2, 3
SEND, HELD, DONE = "send", "held", "done"

#: How long a `done` mark lives: far longer than any retry streak, so a replica
#: whose own copy of the alert waited out an outage still finds it and does not resend.
DONE_TTL_MS = 24 * 3600 * 1000


class EpisodeJoin:
    """The answer of `join_episode`."""

    __slots__ = ("status", "episode_id")

    def __init__(self, status: int, episode_id: str) -> None:
        self.status = status
        self.episode_id = episode_id

    @property
    def covered(self) -> bool:
        return self.status == COVERED

    def __repr__(self) -> str:
        return f"EpisodeJoin({('', 'new', 'joined', 'covered')[self.status]}, {self.episode_id!r})"


class ChannelClaim:
    """The answer of `claim_channel`: SEND, HELD (by `holder`, for `pttl_ms` more) or DONE (by `holder`)."""

    __slots__ = ("status", "holder", "pttl_ms")

    def __init__(self, status: str, holder: str | None = None, pttl_ms: int = 0) -> None:
        self.status = status
        self.holder = holder
        self.pttl_ms = pttl_ms

    def __repr__(self) -> str:
        return f"ChannelClaim({self.status}, holder={self.holder!r}, pttl_ms={self.pttl_ms})"


def default_replica_id() -> str:
    """Unique per process.  Set REPLICA_ID to a stable name (pod name) so a
    restarted replica can finish delivering its own claimed alerts."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def safe_redis_url(url: str) -> str:
    """scheme://host:port/db without user or password (for logs)."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix://{parts.path}"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path or ''}"
    except ValueError:
        return "<redis url>"


class LocalCooldowns:
    """The claim semantics of the Lua script on a process-local dict."""

    def __init__(self, clock_s: Callable[[], float] = time.monotonic) -> None:
        self._clock_s = clock_s
        self._entries: dict[str, tuple[float, str]] = {}  # key -> (expires at, clock s; token)

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: str, now_s: float) -> tuple[float, str] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now_s:
            del self._entries[key]
            return None
        return entry

    def join(self, keys: list[str], episode_id: str, window_ms: int) -> EpisodeJoin:
        """The semantics of _JOIN_LUA on this process's dict."""
        now_s = self._clock_s()
        for key in keys[1:]:
            entry = self._live(key, now_s)
            if entry is not None:
                return EpisodeJoin(COVERED, entry[1])
        entry = self._live(keys[0], now_s)
        if entry is not None:
            return EpisodeJoin(JOINED, entry[1])
        self.set(keys[0], episode_id, window_ms)
        return EpisodeJoin(NEW, episode_id)

    def get(self, key: str) -> str | None:
        entry = self._live(key, self._clock_s())
        return entry[1] if entry is not None else None

    def set(self, key: str, token: str, ttl_ms: int) -> None:
        now_s = self._clock_s()
        if len(self._entries) > 10_000:
            self.prune(now_s)
        self._entries[key] = (now_s + ttl_ms / 1000.0, token)

    def prune(self, now_s: float | None = None) -> None:
        now_s = self._clock_s() if now_s is None else now_s
        for key in [k for k, (until, _) in self._entries.items() if until <= now_s]:
            del self._entries[key]

    def live(self) -> list[tuple[str, str, int]]:
        """(key, token, remaining ms) of every unexpired claim."""
        now_s = self._clock_s()
        self.prune(now_s)
        return [(k, tok, max(1, int((until - now_s) * 1000))) for k, (until, tok) in self._entries.items()]


class RedisCoordinator:
    """Episode claims (and the Redis connection the lease manager shares)."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "sentrycoin",
        replica_id: str | None = None,
        op_timeout_s: float = 0.25,
        connect_timeout_s: float = 0.5,
        retry_interval_s: float = 1.0,
        min_window_ms: int = 5_000,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {scheme or 'no'} scheme")
        if op_timeout_s <= 0 or connect_timeout_s <= 0 or retry_interval_s <= 0:
            raise ValueError("timeouts and retry interval must be > 0")
        self.url = url
        self.safe_url = safe_redis_url(url)
        self.key_prefix = key_prefix
        self.replica_id = replica_id or default_replica_id()
        self.op_timeout_s = op_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retry_interval_s = retry_interval_s
        self.min_window_ms = max(1, int(min_window_ms))
        self.local = LocalCooldowns(clock_s)
        self._clock_s = clock_s
        # Counters for /metrics (plain ints: one event-loop thread).
        self.claims_won = 0
        self.claims_lost = 0
        self.local_claims = 0  # claims decided by the local fallback
        self.redis_errors = 0  # Redis calls that failed or timed out
        self.outages = 0  # times we switched to local mode
        self.recoveries = 0
        self.degraded = False
        self._degraded_since_s: float | None = None
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._reconnect_task: asyncio.Task[None] | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"RedisCoordinator({self.safe_url!r}, replica_id={self.replica_id!r}, degraded={self.degraded})"

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Connect (never raises: an unreachable Redis means local mode + retries)."""
        if self._client is not None:
            return
        self._stopped = False
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # One immediate client-side retry: a pooled connection left broken by
        # a Redis restart fails once, the retry reconnects.  Our own timeout
        # still bounds the whole call; the background probe does the real retrying.
        self._client = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.op_timeout_s,
            socket_connect_timeout=self.connect_timeout_s,
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
            health_check_interval=0,
        )
        try:
            await self._probe()
        except Exception as exc:
            self._failed("connect", exc)
        else:
            log.info("HA: replica %s using Redis %s for alert episodes", self.replica_id, self.safe_url)

    async def stop(self) -> None:
        self._stopped = True
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        client, self._client = self._client, None
        self._scripts.clear()
        if client is not None:
            try:
                await client.aclose()
            except Exception as exc:  # closing a dead connection
                log.debug("closing Redis client: %s", type(exc).__name__)

    async def __aenter__(self) -> RedisCoordinator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- shared Redis access (also used by LeaseManager) ---------------------------

    @property
    def available(self) -> bool:
        return self._client is not None and not self.degraded

    def script(self, lua: str) -> Any:
        """A registered Lua script for the current client (EVALSHA, loaded on demand)."""
        s = self._scripts.get(lua)
        if s is None:
            s = self._client.register_script(lua)
            self._scripts[lua] = s
        return s

    async def call(self, what: str, fn: Callable[[Any], Awaitable[T]]) -> tuple[bool, T | None]:
        """Run `fn(client)` under the op timeout.

        Returns (True, result), or (False, None) when Redis is down (local
        mode) or the call failed - which switches to local mode.  Never raises.
        """
        if not self.available:
            return False, None
        try:
            async with asyncio.timeout(self.op_timeout_s):
                return True, await fn(self._client)
        except Exception as exc:  # ConnectionError, TimeoutError, ResponseError (READONLY ...)
            self._failed(what, exc)
            return False, None

    def _failed(self, what: str, exc: BaseException) -> None:
        self.redis_errors += 1
        if self.degraded:
            log.debug("HA: Redis %s failed again (%s)", what, type(exc).__name__)
            return
        self.degraded = True
        self.outages += 1
        self._degraded_since_s = self._clock_s()
        # Type name only: redis error texts can echo the command or the URL.
        log.warning(
            "HA: Redis %s unreachable (%s during %s): using local cooldowns; replicas may send "
            "duplicate alerts until it is back. Retrying every %.1f s.",
            self.safe_url, type(exc).__name__, what, self.retry_interval_s,
        )
        if not self._stopped and self._client is not None:
            self._reconnect_task = asyncio.get_running_loop().create_task(
                self._reconnect_loop(), name="sentrycoin-redis-reconnect")

    async def _probe(self) -> None:
        """A write (not just PING): a read-only replica after a failover must count as down."""
        async with asyncio.timeout(self.op_timeout_s + self.connect_timeout_s):
            await self._client.set(f"{self.key_prefix}:probe:{self.replica_id}", "1", px=10_000)

    async def _reconnect_loop(self) -> None:
        while not self._stopped and self.degraded:
            await asyncio.sleep(self.retry_interval_s)
            try:
                await self._probe()
                await self._push_local()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("HA: Redis probe failed (%s)", type(exc).__name__)
                continue
            down_s = self._clock_s() - (self._degraded_since_s or self._clock_s())
            self.degraded = False
            self.recoveries += 1
            log.info("HA: Redis %s reachable again after %.1f s: alert episodes are shared across "
                     "replicas again", self.safe_url, down_s)
        self._reconnect_task = None

    async def _push_local(self) -> None:
        """Copy claims made (or seen) while Redis was away, so other replicas see them."""
        entries = self.local.live()
        if not entries:
            return
        async with asyncio.timeout(self.op_timeout_s * 4):
            pipe = self._client.pipeline(transaction=False)
            for key, token, remaining_ms in entries:
                pipe.set(key, token, nx=True, px=remaining_ms)
            await pipe.execute()

    # -- episodes --------------------------------------------------------------

    def episode_key(self, exchange: str, symbol: str, severity: str) -> str:
        return f"{self.key_prefix}:episode:{{{exchange}:{symbol}}}:{severity}"

    def episode_keys(self, exchange: str, symbol: str, severity: str) -> list[str]:
        """The claimed severity's key first, then those of every higher severity."""
        rank = SEVERITY_RANK.get(severity)
        names = [severity] if rank is None else list(_BY_RANK[rank - 1:])
        return [self.episode_key(exchange, symbol, s) for s in names]

    def delivery_keys(self, episode_id: str, channel: str) -> list[str]:
        """[lease key, done key] of one channel of one episode."""
        base = f"{self.key_prefix}:delivery:{{{episode_id}}}:{channel}"
        return [f"{base}:lease", f"{base}:done"]

    async def join_episode(self, exchange: str, symbol: str, severity: str, episode_id: str,
                           cooldown_ms: int) -> EpisodeJoin:
        """Join (or start) the episode of an alert; see the module docstring.  Never raises:
        on an unexpected error the alert is its own episode (a duplicate beats a loss)."""
        keys = self.episode_keys(exchange, symbol, severity)
        window_ms = max(int(cooldown_ms), self.min_window_ms)
        try:
            if self.available:
                script = self.script(_JOIN_LUA)
                ok, res = await self.call("join", lambda r: script(keys=keys, args=[episode_id, window_ms]))
                if ok and res:
                    join = EpisodeJoin(int(res[0]), str(res[1]))
                    # Mirror locally so an outage in mid-cooldown still joins/covers here.
                    if join.status == NEW:
                        self.local.set(keys[0], episode_id, window_ms)
                    return join
            self.local_claims += 1
            return self.local.join(keys, episode_id, window_ms)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HA: joining the episode of %s %s %s failed; treating it as new", exchange, symbol,
                          severity)
            return EpisodeJoin(NEW, episode_id)

    async def claim_channel(self, episode_id: str, channel: str, lease_ms: int) -> ChannelClaim:
        """SEND (the lease is ours now), HELD (another replica's live lease) or DONE.  Never raises:
        Redis down or an unexpected error answers SEND unless this replica delivered it already."""
        keys = self.delivery_keys(episode_id, channel)
        claim: ChannelClaim | None = None
        try:
            if self.available:
                script = self.script(_CLAIM_CHANNEL_LUA)
                ok, res = await self.call("claim", lambda r: script(keys=keys, args=[self.replica_id, lease_ms]))
                if ok and res:
                    code = int(res[0])
                    if code == 1:
                        claim = ChannelClaim(SEND, self.replica_id)
                    elif code == 2:
                        claim = ChannelClaim(HELD, str(res[1]), max(0, int(res[2])))
                    else:
                        claim = ChannelClaim(DONE, str(res[1]))
                        self.local.set(keys[1], str(res[1]), DONE_TTL_MS)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HA: claiming %s for %s failed; sending", channel, episode_id)
        if claim is None:
            self.local_claims += 1
            done_by = self.local.get(keys[1])
            claim = ChannelClaim(DONE, done_by) if done_by else ChannelClaim(SEND, self.replica_id)
        if claim.status == SEND:
            self.claims_won += 1
        elif claim.status == DONE:
            self.claims_lost += 1
        return claim

    async def renew_channels(self, held: list[tuple[str, str]], lease_ms: int) -> list[bool]:
        """Extend our leases; False where another replica has taken one (or Redis is down)."""
        if not held or not self.available:
            return [False] * len(held)
        script = self.script(_RENEW_CHANNEL_LUA)

        async def run(r):
            pipe = r.pipeline(transaction=False)
            for episode_id, channel in held:
                await script(keys=self.delivery_keys(episode_id, channel)[:1], args=[self.replica_id, lease_ms],
                             client=pipe)
            return await pipe.execute()

        ok, res = await self.call("renew", run)
        if not ok or res is None:
            return [False] * len(held)
        return [int(x) == 1 for x in res]

    async def finish_channel(self, episode_id: str, channel: str, *, delivered: bool) -> None:
        """Delivered: mark the channel done (by us) and drop the lease.  Not delivered
        (a permanent failure here): release the lease so another replica sends."""
        keys = self.delivery_keys(episode_id, channel)
        if delivered:
            self.local.set(keys[1], self.replica_id, DONE_TTL_MS)
        if not self.available:
            return
        script = self.script(_FINISH_CHANNEL_LUA)
        await self.call("finish", lambda r: script(
            keys=keys, args=[self.replica_id, "1" if delivered else "0", DONE_TTL_MS]))

    # -- /metrics ----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {
            "replica_id": self.replica_id,
            "degraded": self.degraded,
            "claims_won": self.claims_won,
            "claims_lost": self.claims_lost,
            "local_claims": self.local_claims,
            "redis_errors": self.redis_errors,
            "outages": self.outages,
            "recoveries": self.recoveries,
        }
