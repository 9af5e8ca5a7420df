"""High availability across SentryCoin replicas, on Redis.

- `RedisCoordinator`: one delivered alert per episode however many replicas
  saw it (claims in Redis, local cooldown fallback when Redis is down).
- `DeliveryGate`: the claim, once per alert, before the AlertManager sends it.
- `shard_markets` / `LeaseManager`: which replica watches which market, with
  takeover of a dead replica's markets.
"""

from sentrycoin.ha.coordinator import SEVERITY_RANK, RedisCoordinator, default_replica_id
from sentrycoin.ha.gate import DeliveryGate, cooldown_lookup
from sentrycoin.ha.leases import ACQUIRED, LOST, LeaseManager
from sentrycoin.ha.sharding import market_id, shard_markets, shard_of

__all__ = [
    "ACQUIRED", "LOST", "SEVERITY_RANK", "DeliveryGate", "LeaseManager",
    "RedisCoordinator", "cooldown_lookup", "default_replica_id", "market_id", "shard_markets", "shard_of",
]
