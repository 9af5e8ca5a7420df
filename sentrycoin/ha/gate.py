"""The delivery gate: which replica sends an alert on which channel, as leases.

The `AlertManager` asks `claim(alert, channel)` before *every* send attempt
of a gated notifier (every one but the console).  The answer (`GateDecision`):

* ``send``: this replica holds the channel's lease for the alert's episode;
  the gate renews it every TTL/3 until `finish()` (so while the manager
  retries, waits out a 429 or a request hangs, nobody else sends);
* ``held``: another replica holds a live lease; the manager keeps the alert
  pending and asks again after `retry_in_s` (if that replica dies, its lease
  expires within one TTL and this replica takes over; if it gives up, it
  releases the lease and this replica takes over on its next question);
* ``done``: some replica delivered it (`delivered_by`): the row becomes
  `suppressed` here;
* ``covered``: a higher severity of the same market's episode was delivered on
  this channel (the alert stands in for that episode until then: ``held``
  while another replica sends it, ``send`` under its id if nobody can).

`finish(alert, channel, delivered=True)` marks the channel done; with
``delivered=False`` (permanent failure on this replica, e.g. a revoked
Telegram token) it releases the lease at once.  Every decision carries the
fleet-wide `episode_id` (the first replica's), which the manager puts in the
record it sends (Idempotency-Key) and stores.

Joining the episode happens once per alert per replica (memoised by
`alert_key`, shared by all notifiers); channel claims are per notifier.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from sentrycoin.ha.coordinator import DONE, HELD, SEND, EpisodeJoin, RedisCoordinator

log = logging.getLogger("sentrycoin.ha")

#: The detector's default cooldown, used for markets `cooldown_ms_of` does not know.
DEFAULT_COOLDOWN_MS = 300_000
#: Delivery lease TTL unless DELIVERY_LEASE_TTL_S says otherwise.
DEFAULT_DELIVERY_LEASE_TTL_S = 10.0

CooldownOf = Callable[[str, str], int]

COVERED = "covered"


def cooldown_lookup(markets: Iterable[Any], default_ms: int = DEFAULT_COOLDOWN_MS) -> CooldownOf:
    """`cooldown_ms_of` for a set of `Market` objects (their detector cooldown)."""
    table = {m.key: int(m.settings.cooldown_s * 1000) for m in markets}

    def cooldown_ms_of(exchange: str, symbol: str) -> int:
        return table.get((exchange, symbol), default_ms)

    return cooldown_ms_of


class GateDecision:
    """What the manager does with one alert on one channel now."""

    __slots__ = ("status", "episode_id", "delivered_by", "retry_in_s", "stand_in")

    def __init__(self, status: str, episode_id: str, delivered_by: str | None = None,
                 retry_in_s: float = 0.0, stand_in: bool = False) -> None:
        self.status = status
        self.episode_id = episode_id
        self.delivered_by = delivered_by
        self.retry_in_s = retry_in_s
        #: The alert is covered by `episode_id` (a higher severity) and stands in for it.
        self.stand_in = stand_in

    def __repr__(self) -> str:
        return (f"GateDecision({self.status}, {self.episode_id!r}, delivered_by={self.delivered_by!r}, "
                f"retry_in_s={self.retry_in_s:g})")


class DeliveryGate:
    def __init__(
        self,
        coordinator: RedisCoordinator,
        cooldown_ms_of: CooldownOf,
        *,
        lease_ttl_s: float = DEFAULT_DELIVERY_LEASE_TTL_S,
        memo_size: int = 10_000,
    ) -> None:
        if lease_ttl_s <= 0:
            raise ValueError("lease_ttl_s must be > 0")
        self.coordinator = coordinator
        self.cooldown_ms_of = cooldown_ms_of
        self.lease_ms = max(30, int(lease_ttl_s * 1000))
        self.memo_size = memo_size
        self._joins: OrderedDict[str, asyncio.Future[EpisodeJoin]] = OrderedDict()
        self._held: set[tuple[str, str]] = set()  # (episode id, channel) leases we renew
        self._renew_task: asyncio.Task[None] | None = None
        self.sent = 0  # decisions `send`
        self.suppressed = 0  # decisions `done` / `covered`
        self.waited = 0  # decisions `held`
        self.released = 0  # leases given back after a permanent failure
        self.leases_lost = 0  # renewals that found another replica holding the lease

    @property
    def replica_id(self) -> str:
        return self.coordinator.replica_id

    @property
    def lease_ttl_s(self) -> float:
        return self.lease_ms / 1000.0

    @property
    def held_leases(self) -> int:
        return len(self._held)

    # -- the manager's questions ------------------------------------------------------

    async def claim(self, rec: Any, channel: str) -> GateDecision:
        """May this replica send `rec` on `channel` now?  Never raises."""
        try:
            join = await self._join(rec)
            # Covered by a higher severity: this alert stands in for that episode.  It is
            # suppressed once that episode is delivered on this channel, waits while
            # another replica holds its lease, and is sent (under that episode's id) if
            # nobody does - e.g. the only replica that saw the higher severity cannot
            # deliver (revoked token): a lower severity beats no message.
            claim = await self.coordinator.claim_channel(join.episode_id, channel, self.lease_ms)
        except asyncio.CancelledError:
            raise
        except Exception:  # the coordinator does not raise; a bug here must not lose an alert
            log.exception("HA: delivery gate failed; sending %s on %s", rec.alert_key, channel)
            return GateDecision(SEND, rec.episode_id)
        if claim.status == SEND:
            self.sent += 1
            self._hold(join.episode_id, channel)
            return GateDecision(SEND, join.episode_id, stand_in=join.covered)
        if claim.status == DONE:
            self.suppressed += 1
            return GateDecision(COVERED if join.covered else DONE, join.episode_id, delivered_by=claim.holder)
        self.waited += 1
        # Ask again soon after the holder's lease would expire, and at least every TTL/4:
        # a holder that gives up releases early.
        wait_s = min(claim.pttl_ms / 1000.0 + 0.05, self.lease_ttl_s / 4.0)
        return GateDecision(HELD, join.episode_id, delivered_by=claim.holder, retry_in_s=max(0.05, wait_s))

    async def finish(self, episode_id: str, channel: str, *, delivered: bool) -> None:
        """After the last attempt: done (delivered) or released (permanent failure)."""
        self._held.discard((episode_id, channel))
        if not delivered:
            self.released += 1
        try:
            await self.coordinator.finish_channel(episode_id, channel, delivered=delivered)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HA: finishing %s on %s failed (the lease expires by itself)", episode_id, channel)

    # -- episode joins (memoised per alert) ------------------------------------------------

    async def _join(self, rec: Any) -> EpisodeJoin:
        key = rec.alert_key
        fut = self._joins.get(key)
        if fut is None or (fut.done() and fut.exception() is not None):
            fut = asyncio.ensure_future(self._do_join(rec))
            self._joins[key] = fut
            while len(self._joins) > self.memo_size:
                self._joins.popitem(last=False)
        # Shielded: one notifier worker being cancelled must not cancel the
        # join the others are waiting for.
        return await asyncio.shield(fut)

    async def _do_join(self, rec: Any) -> EpisodeJoin:
        try:
            cooldown_ms = int(self.cooldown_ms_of(rec.exchange, rec.symbol))
        except Exception:
            cooldown_ms = DEFAULT_COOLDOWN_MS
        return await self.coordinator.join_episode(rec.exchange, rec.symbol, rec.severity,
                                                   rec.episode_id or rec.alert_key, cooldown_ms)

    # -- lease renewal ---------------------------------------------------------------------

    def _hold(self, episode_id: str, channel: str) -> None:
        self._held.add((episode_id, channel))
        if self._renew_task is None or self._renew_task.done():
            self._renew_task = asyncio.get_running_loop().create_task(self._renew_loop(),
                                                                      name="sentrycoin-delivery-leases")

    async def _renew_loop(self) -> None:
        while self._held:
            await asyncio.sleep(self.lease_ttl_s / 3.0)
            held = sorted(self._held)
            try:
                kept = await self.coordinator.renew_channels(held, self.lease_ms)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("HA: renewing delivery leases failed")
                continue
            if not self.coordinator.available:
                continue  # local mode: nothing to renew; the next claim decides
            for lease, ok in zip(held, kept, strict=True):
                if not ok and lease in self._held:
                    # We stalled past the TTL and another replica took over: stop
                    # renewing; the next claim before a send answers `held`/`done`.
                    self._held.discard(lease)
                    self.leases_lost += 1
                    log.warning("HA: delivery lease %s/%s taken over by another replica", *lease)

    async def stop(self) -> None:
        """Stop renewing (held leases then expire within one TTL, as on a crash;
        the manager finishes or releases what it can before this)."""
        task, self._renew_task = self._renew_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "suppressed": self.suppressed, "waited": self.waited,
                "released": self.released, "leases_lost": self.leases_lost, "leases_held": len(self._held)}
