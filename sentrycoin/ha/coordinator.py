"""Cross-replica alert episodes on Redis, with a local fallback.

Several replicas may watch the same market (for uptime); each one's detector
fires on the same crash, a few hundred ms apart.  Before a replica delivers an
alert it *claims the episode* in Redis; only the winner sends it.

Key design.  One key per (exchange, symbol, severity)::

    <prefix>:episode:{<exchange>:<symbol>}:<severity>     value: claim token, PX = window

A claim for severity S is lost when the key of S *or of any higher severity*
is live, and otherwise sets S's key with a TTL of the detector cooldown
(at least `min_window_ms`).  So:

* the first replica to fire wins; a replica firing later on the same crash
  finds the key and loses, whatever its own event time says (event times of
  two replicas' books differ, so they are not part of the key);
* an escalation (warning -> critical, which the detector re-alerts on inside
  its cooldown) takes a new, higher key and is delivered once; a replica that
  still reports the lower severity afterwards loses;
* the key lives as long as the cooldown, in Redis, so a restarted replica
  (a fresh detector with no memory) does not re-send the same episode.

The check and the set run in one Lua script (atomic).  The `{...}` hash tag
puts every key of one market in the same Redis Cluster slot.

The claim token is ``<replica_id>|<claim_id or event_ms>``: a claim repeated
with the same token (an outbox retry after a crash, with a stable
REPLICA_ID) is won again instead of being suppressed.

Failure handling.  Every Redis call has a short timeout.  On the first error
the coordinator logs ONE warning, switches to local cooldowns (same
semantics, this process only: replicas may then both deliver - we prefer a
duplicate to a lost alert), and probes Redis in the background with a small
write.  When the probe succeeds it copies its live local claims into Redis
(SET NX, remaining TTL), logs once and goes back to Redis.  Claims made while
Redis is healthy are mirrored locally, so an outage in mid-cooldown keeps
suppressing repeats on this replica.  Nothing here ever raises into callers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import urlsplit

log = logging.getLogger("sentrycoin.ha")

T = TypeVar("T")

#: Order of severities (names from sentrycore.SEVERITY_NAMES).
SEVERITY_RANK: dict[str, int] = {"warning": 1, "critical": 2, "extreme": 3}
_BY_RANK = ("warning", "critical", "extreme")

_CLAIM_LUA = """
-- KEYS[1]: key of the claimed severity; KEYS[2..n]: keys of the higher severities.
-- ARGV[1]: claim token; ARGV[2]: window (ms).
-- Returns {1} won, {2} already ours (same token), {0, pttl, holder, index} lost.
for i = 1, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder then
    if i == 1 and holder == ARGV[1] then
      return {2}
    end
    return {0, redis.call('PTTL', KEYS[i]), holder, i}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1}
"""

WON, ALREADY_OURS, LOST = 1, 2, 0


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

    def claim(self, keys: list[str], token: str, window_ms: int) -> int:
        now_s = self._clock_s()
        for i, key in enumerate(keys):
            entry = self._live(key, now_s)
            if entry is not None:
                return ALREADY_OURS if i == 0 and entry[1] == token else LOST
        self.set(keys[0], token, window_ms)
        return WON

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

    async def __aenter__(self) -> "RedisCoordinator":
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

    def claim_token(self, event_ms: int, claim_id: object = None) -> str:
        return f"{self.replica_id}|{claim_id if claim_id is not None else event_ms}"

    async def claim_episode(
        self,
        exchange: str,
        symbol: str,
        severity: str,
        event_ms: int,
        cooldown_ms: int,
        *,
        claim_id: object = None,
    ) -> bool:
        """True: this replica delivers the alert.  False: another replica has it.

        `claim_id` (e.g. the outbox row id) makes a retried claim of the same
        alert idempotent; without it the event time is used.  Never raises:
        on an unexpected error the answer is True (a duplicate beats a loss).
        """
        try:
            won = await self._claim(exchange, symbol, severity, int(event_ms), int(cooldown_ms), claim_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HA: claim for %s %s %s failed unexpectedly; delivering", exchange, symbol, severity)
            return True
        if won:
            self.claims_won += 1
        else:
            self.claims_lost += 1
        return won

    async def _claim(self, exchange: str, symbol: str, severity: str, event_ms: int, cooldown_ms: int,
                     claim_id: object) -> bool:
        keys = self.episode_keys(exchange, symbol, severity)
        window_ms = max(cooldown_ms, self.min_window_ms)
        token = self.claim_token(event_ms, claim_id)
        if self.available:
            script = self.script(_CLAIM_LUA)
            ok, res = await self.call("claim", lambda r: script(keys=keys, args=[token, window_ms]))
            if ok and res:
                code = int(res[0])
                if code in (WON, ALREADY_OURS):
                    self.local.set(keys[0], token, window_ms)  # mirror for an outage mid-cooldown
                    return True
                pttl, holder, index = int(res[1]), str(res[2]), int(res[3])
                self.local.set(keys[index - 1], holder, pttl if pttl > 0 else window_ms)
                log.debug("HA: %s %s %s claimed by %s", exchange, symbol, severity, holder.split("|")[0])
                return False
        self.local_claims += 1
        return self.local.claim(keys, token, window_ms) != LOST

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
