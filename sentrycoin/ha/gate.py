"""The delivery gate: one claim per alert, before any notifier sends it.

`DeliveryGate.should_deliver(alert_record)` claims the alert's episode through
the `RedisCoordinator` and answers True (this replica sends it) or False
(another replica already did: suppress, do not fail).  Every notifier of a
replica asks about the same alert; the first question starts the claim and
the others await the same answer, so an alert is claimed once per replica
no matter how many notifiers, retries or outbox sweeps see it.

`GatedNotifier` wraps a notifier with the gate, for an `AlertManager` that
has no gate hook: a suppressed alert then returns from `send()` without
sending, so the manager records it as delivered (by another replica).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Callable, Iterable

from sentrycoin.alerts.base import Notifier, RetryPolicy
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


class GatedNotifier(Notifier):
    """A notifier that sends only alerts this replica won the claim for."""

    def __init__(self, inner: Notifier, gate: DeliveryGate) -> None:
        self.inner = inner
        self.gate = gate
        self.name = inner.name
        self.retry: RetryPolicy = inner.retry
        self.max_batch = inner.max_batch
        self.suppressed = 0

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def wait_ready(self) -> None:
        await self.inner.wait_ready()

    def redact(self, text: str) -> str:
        return self.inner.redact(text)

    async def send(self, alert: Any) -> None:
        if await self.gate.should_deliver(alert):
            await self.inner.send(alert)
        else:
            self.suppressed += 1

    async def send_batch(self, alerts: list[Any]) -> None:
        keep = [a for a in alerts if await self.gate.should_deliver(a)]
        self.suppressed += len(alerts) - len(keep)
        if len(keep) == 1:
            await self.inner.send(keep[0])
        elif keep:
            await self.inner.send_batch(keep)

    def __repr__(self) -> str:
        return f"GatedNotifier({self.inner!r})"
