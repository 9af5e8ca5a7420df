"""HA settings from the environment, and the pieces a Monitor plugs in.

Environment:
    REDIS_URL          redis://[:password@]host:port/db (or rediss://, unix://).
                       Unset: no HA (single replica, local cooldowns only).
    SHARD_COUNT        replicas' shards (default 1: every replica watches every market)
    SHARD_INDEX        this replica's shard, 0 .. SHARD_COUNT-1 (default 0)
    REPLICA_ID         stable name of this replica (pod name); default host-pid-random.
                       Stable ids let a restarted replica finish its own claimed alerts.
    REDIS_KEY_PREFIX   prefix of every Redis key (default "sentrycoin")
    LEASE_TTL_S        market lease TTL in seconds (default 10; SHARD_COUNT > 1 only).
                       A dead replica's markets are taken over within ~4/3 of it.
    DELIVERY_LEASE_TTL_S  delivery lease TTL in seconds (default 10, >= 0.3): a replica
                       that dies while sending or retrying an alert is taken over by another
                       replica holding the same alert within about this long (gate.py).

Sharding needs no Redis (crc32, see sharding.py).  With REDIS_URL and
SHARD_COUNT > 1 the shard is only a preference: market leases (leases.py)
decide which replica watches a market, so survivors take over a dead
replica's markets (see README.md "Takeover in the monitor").  Run two replicas per
SHARD_INDEX for uptime: both watch the shard, claims make one of them send.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sentrycoin.config import ConfigError
from sentrycoin.ha.coordinator import RedisCoordinator, safe_redis_url
from sentrycoin.ha.gate import DEFAULT_DELIVERY_LEASE_TTL_S, CooldownOf, DeliveryGate
from sentrycoin.ha.sharding import MarketKey, check_shard, shard_markets

DEFAULT_LEASE_TTL_S = 10.0
#: Below this a lease would expire between renewals on a busy event loop.
MIN_LEASE_TTL_S = 0.3

#: Notifiers that stay per replica (a local log line is not a duplicate message).
LOCAL_NOTIFIERS = ("console",)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number of seconds, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True, slots=True)
class HASettings:
    redis_url: str | None = None
    shard_count: int = 1
    shard_index: int = 0
    replica_id: str | None = None
    key_prefix: str = "sentrycoin"
    #: Market lease TTL (LEASE_TTL_S): renewals every third of it; takeover within ~4/3 of it.
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    #: Lease changes are collected this long before feed handlers are rebuilt
    #: (a takeover reports many markets in one round; rebuild each venue once).
    lease_debounce_s: float = 0.5
    #: Delivery lease TTL (DELIVERY_LEASE_TTL_S): renewed every third of it while a replica
    #: sends or retries; another replica takes a dead sender's alert over after it.
    delivery_lease_ttl_s: float = DEFAULT_DELIVERY_LEASE_TTL_S

    @property
    def leasing(self) -> bool:
        """Lease-driven market ownership: Redis to hold leases and more than one shard to share."""
        return self.redis_url is not None and self.shard_count > 1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HASettings:
        url = env.get("REDIS_URL", "").strip() or None
        count = _int(env, "SHARD_COUNT", 1)
        index = _int(env, "SHARD_INDEX", 0)
        try:
            check_shard(count, index)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        ttl_s = _float(env, "LEASE_TTL_S", DEFAULT_LEASE_TTL_S)
        if ttl_s < MIN_LEASE_TTL_S:
            raise ConfigError(f"LEASE_TTL_S must be >= {MIN_LEASE_TTL_S} s, got {ttl_s:g}")
        delivery_ttl_s = _float(env, "DELIVERY_LEASE_TTL_S", DEFAULT_DELIVERY_LEASE_TTL_S)
        if delivery_ttl_s < MIN_LEASE_TTL_S:
            raise ConfigError(f"DELIVERY_LEASE_TTL_S must be >= {MIN_LEASE_TTL_S} s, got {delivery_ttl_s:g}")
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix:// (got {safe_redis_url(url)!r})")
        return cls(
            redis_url=url,
            shard_count=count,
            shard_index=index,
            replica_id=env.get("REPLICA_ID", "").strip() or None,
            key_prefix=env.get("REDIS_KEY_PREFIX", "").strip() or "sentrycoin",
            lease_ttl_s=ttl_s,
            delivery_lease_ttl_s=delivery_ttl_s,
        )

    def my_markets(self, keys: Iterable[MarketKey]) -> list[MarketKey]:
        return shard_markets(keys, self.shard_count, self.shard_index)

    def redacted(self) -> dict[str, Any]:
        return {
            "redis_url": safe_redis_url(self.redis_url) if self.redis_url else None,
            "shard_count": self.shard_count,
            "shard_index": self.shard_index,
            "replica_id": self.replica_id,
            "key_prefix": self.key_prefix,
            "lease_ttl_s": self.lease_ttl_s,
            "delivery_lease_ttl_s": self.delivery_lease_ttl_s,
            "leasing": self.leasing,
        }


class HARuntime:
    """Coordinator + delivery gate for one Monitor (only built when REDIS_URL is set)."""

    def __init__(self, settings: HASettings, cooldown_ms_of: CooldownOf) -> None:
        if settings.redis_url is None:
            raise ValueError("HARuntime needs REDIS_URL")
        self.settings = settings
        self.coordinator = RedisCoordinator(settings.redis_url, key_prefix=settings.key_prefix,
                                            replica_id=settings.replica_id)
        self.gate = DeliveryGate(self.coordinator, cooldown_ms_of, lease_ttl_s=settings.delivery_lease_ttl_s)

    @staticmethod
    def gated_names(notifiers: Sequence[Any], local: Sequence[str] = LOCAL_NOTIFIERS) -> list[str]:
        """The notifiers the gate applies to (`AlertManager(gated=...)`): every one
        that reaches users; local ones (console) stay per replica."""
        return [n.name for n in notifiers if n.name not in local]

    async def start(self) -> None:
        await self.coordinator.start()

    async def stop(self) -> None:
        await self.gate.stop()
        await self.coordinator.stop()

    def stats(self) -> dict[str, Any]:
        return {**self.coordinator.stats(), **{f"gate_{k}": v for k, v in self.gate.stats().items()},
                "shard_count": self.settings.shard_count, "shard_index": self.settings.shard_index}
