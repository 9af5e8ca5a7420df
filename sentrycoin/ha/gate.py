"""The delivery gate: one claim per alert, before any notifier sends it.

`DeliveryGate.should_deliver(alert_record)` claims the alert's episode through
the `RedisCoordinator` and answers True (this replica sends it) or False
(another replica already did: suppress, do not fail).  Every notifier of a
replica asks about the same alert; the first question starts the claim and
the others await the same answer, so an alert is claimed once per replica
no matter how many notifiers, retries or outbox sweeps see it.

The `AlertManager` calls it (`gate=` / `gated=`) once per alert and notifier
before the first send; a suppressed alert is recorded `suppressed` in the
outbox, not `delivered`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Callable, Iterable

from sentrycoin.ha.coordinator import RedisCoordinator

log = logging.getLogger("sentrycoin.ha")

#: The detector's default cooldown, used for markets `cooldown_ms_of` does not know.
DEFAULT_COOLDOWN_MS = 300_000

CooldownOf = Callable[[str, str], int]


def cooldown_lookup(markets: Iterable[Any], default_ms: int = DEFAULT_COOLDOWN_MS) -> CooldownOf:
    """`cooldown_ms_of` for a set of `Market` objects (their detector cooldown)."""
    table = {m.key: int(m.settings.cooldown_s * 1000) for m in markets}

    def cooldown_ms_of(exchange: str, symbol: str) -> int:
        return table.get((exchange, symbol), default_ms)

    return cooldown_ms_of


class DeliveryGate:
    def __init__(self, coordinator: RedisCoordinator, cooldown_ms_of: CooldownOf, *, memo_size: int = 10_000) -> None:
        self.coordinator = coordinator
        self.cooldown_ms_of = cooldown_ms_of
        self.memo_size = memo_size
        self._memo: OrderedDict[tuple, asyncio.Future[bool]] = OrderedDict()
        self.allowed = 0
        self.suppressed = 0

    @staticmethod
    def _identity(rec: Any) -> tuple:
        rid = getattr(rec, "id", None)
        if rid is not None:
            return ("id", rid)
        # No outbox row (database failure): the alert itself is the identity.
        return ("event", rec.exchange, rec.symbol, rec.severity, rec.event_ms)

    async def should_deliver(self, alert_record: Any) -> bool:
        """True: send it from this replica.  Never raises."""
        key = self._identity(alert_record)
        fut = self._memo.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._claim(alert_record))
            self._memo[key] = fut
            while len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)
        # Shielded: one notifier worker being cancelled must not cancel the
        # claim the others are waiting for.
        return await asyncio.shield(fut)

    __call__ = should_deliver

    async def _claim(self, rec: Any) -> bool:
        try:
            try:
                cooldown_ms = int(self.cooldown_ms_of(rec.exchange, rec.symbol))
            except Exception:
                cooldown_ms = DEFAULT_COOLDOWN_MS
            won = await self.coordinator.claim_episode(
                rec.exchange, rec.symbol, rec.severity, rec.event_ms, cooldown_ms,
                claim_id=getattr(rec, "id", None),
            )
        except Exception:  # claim_episode does not raise; a bug here must not lose an alert
            log.exception("HA: delivery gate failed; delivering")
            won = True
        if won:
            self.allowed += 1
        else:
            self.suppressed += 1
            log.info("HA: alert #%s %s %s %s already sent by another replica: suppressed here",
                     getattr(rec, "id", None), rec.exchange, rec.symbol, rec.severity)
        return won

    def stats(self) -> dict[str, int]:
        return {"allowed": self.allowed, "suppressed": self.suppressed}
