"""Two replicas (two real Markets and AlertManagers) see one crash: one message."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sentrycoin.alerts.base import DeliveryError, Notifier, RetryPolicy
from sentrycoin.alerts.manager import AlertManager
from sentrycoin.ha.coordinator import RedisCoordinator
from sentrycoin.ha.gate import DeliveryGate, cooldown_lookup
from sentrycoin.market import DetectorSettings, Market
from sentrycoin.store import AlertRecord, AlertStore
from tests.ha.conftest import RedisServer

T0_MS = 1_790_000_000_000


class Recorder(Notifier):
    def __init__(self, name: str, log: list[tuple[str, str, AlertRecord]], replica: str,
                 fail_first: int = 0, max_batch: int = 1) -> None:
        self.name = name
        self.log = log
        self.replica = replica
        self.fail_first = fail_first
        self.max_batch = max_batch
        self.retry = RetryPolicy(base_s=0.01, max_s=0.02)

    async def send(self, alert: AlertRecord) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise DeliveryError("telegram 502 (test)")
        self.log.append((self.replica, self.name, alert))

    async def send_batch(self, alerts: list[AlertRecord]) -> None:
        for a in alerts:
            await self.send(a)


class ReplicaUnderTest:
    """What one SentryCoin replica runs for one market, alert side only."""

    def __init__(self, name: str, url: str, db: Path, sent: list, *, notifiers=("telegram",),  # type: ignore[no-untyped-def]
                 fail_first: int = 0, settings: DetectorSettings | None = None) -> None:
        self.coord = RedisCoordinator(url, replica_id=name, key_prefix="t")
        self.store = AlertStore(db)
        self.market = Market("binance", "BTC-USDT", settings=settings or DetectorSettings(cooldown_s=300),
                             source="simulated")
        self.gate = DeliveryGate(self.coord, cooldown_lookup([self.market]))
        self.notifiers = [Recorder(n, sent, name, fail_first=fail_first) for n in notifiers]
        self.manager = AlertManager(self.store, self.notifiers, gate=self.gate.should_deliver,
                                    gated=list(notifiers))
        self.market.on_alert = self.manager.submit

    async def start(self) -> "ReplicaUnderTest":
        await self.coord.start()
        await self.manager.start()
        return self

    async def stop(self) -> None:
        await self.manager.stop()
        await self.coord.stop()
        self.store.close()

    def feed_book(self, bid_qty: float, ask_qty: float, event_ms: int) -> None:
        """What a feed handler does per message: apply it, then after_message."""
        bids = [(100.0 - 0.5 - i * 0.5, bid_qty) for i in range(20)]
        asks = [(100.0 + 0.5 + i * 0.5, ask_qty) for i in range(20)]
        self.market.book.load_snapshot(bids, asks)
        self.market.mark_valid()
        self.market.after_message(event_ms)


async def test_two_replicas_one_crash_one_telegram_message(redis_server: RedisServer, tmp_path: Path) -> None:
    sent: list[tuple[str, str, AlertRecord]] = []
    a = await ReplicaUnderTest("a", redis_server.url, tmp_path / "a.db", sent).start()
    b = await ReplicaUnderTest("b", redis_server.url, tmp_path / "b.db", sent).start()
    try:
        for r in (a, b):
            r.feed_book(10.0, 10.0, T0_MS)  # calm book: ratio 1
        # The crash: asks pile up; replica B's feed is 300 ms behind.
        a.feed_book(10.0, 30.0, T0_MS + 1_000)
        b.feed_book(10.0, 30.0, T0_MS + 1_300)
        assert a.market.last_alert is not None and b.market.last_alert is not None
        assert a.manager.stats.submitted == b.manager.stats.submitted == 1  # both detectors fired
        await asyncio.gather(a.manager.drain(), b.manager.drain())
        assert len(sent) == 1
        winner = sent[0][0]
        loser = b if winner == "a" else a
        assert loser.gate.suppressed == 1 and loser.manager.stats.suppressed["telegram"] == 1
        # The loser's outbox row is settled as `suppressed` (it sent nothing): never re-sent.
        assert loser.store.pending_count() == 0
        row = loser.store.recent()[0]["deliveries"]["telegram"]
        assert row["state"] == "suppressed" and row["attempts"] == 0 and row["error"] == "sent by another replica"
        winner_rep = a if winner == "a" else b
        assert winner_rep.store.recent()[0]["deliveries"]["telegram"]["state"] == "delivered"

        # The crash deepens: both re-alert at critical (escalation) -> one more message.
        a.feed_book(10.0, 60.0, T0_MS + 2_000)
        b.feed_book(10.0, 60.0, T0_MS + 2_200)
        await asyncio.gather(a.manager.drain(), b.manager.drain())
        assert [s[2].severity for s in sent] == ["warning", "critical"]
    finally:
        await a.stop()
        await b.stop()


async def test_claim_is_once_per_alert_across_notifiers_and_retries(redis_server: RedisServer, tmp_path: Path) -> None:
    """Two notifiers per replica, the telegram one failing twice first: every
    notifier of the winning replica sends, none of the loser's, one claim each."""
    sent: list[tuple[str, str, AlertRecord]] = []
    a = await ReplicaUnderTest("a", redis_server.url, tmp_path / "a.db", sent,
                               notifiers=("telegram", "webhook"), fail_first=2).start()
    b = await ReplicaUnderTest("b", redis_server.url, tmp_path / "b.db", sent,
                               notifiers=("telegram", "webhook"), fail_first=2).start()
    try:
        for r in (a, b):
            r.feed_book(10.0, 10.0, T0_MS)
            r.feed_book(10.0, 30.0, T0_MS + 500)
        await asyncio.gather(a.manager.drain(), b.manager.drain())
        assert sorted(n for _, n, _ in sent) == ["telegram", "webhook"]
        assert len({rep for rep, _, _ in sent}) == 1  # both from the same replica
        assert a.coord.claims_won + a.coord.claims_lost == 1
        assert b.coord.claims_won + b.coord.claims_lost == 1
    finally:
        await a.stop()
        await b.stop()


async def test_restarted_replica_does_not_resend_the_episode(redis_server: RedisServer, tmp_path: Path) -> None:
    sent: list[tuple[str, str, AlertRecord]] = []
    a = await ReplicaUnderTest("a", redis_server.url, tmp_path / "a.db", sent).start()
    a.feed_book(10.0, 10.0, T0_MS)
    a.feed_book(10.0, 30.0, T0_MS + 100)
    await a.manager.drain()
    await a.stop()
    # New process, new detector (no memory), same crash still on the book.
    a2 = await ReplicaUnderTest("a2", redis_server.url, tmp_path / "a2.db", sent).start()
    try:
        a2.feed_book(10.0, 30.0, T0_MS + 5_000)
        assert a2.manager.stats.submitted == 1
        await a2.manager.drain()
        assert len(sent) == 1
    finally:
        await a2.stop()


async def test_gate_as_a_plain_function(redis_server: RedisServer) -> None:
    """The hook form the AlertManager can call: `await should_deliver(record)`."""
    def rec(id_: int | None, event_ms: int) -> AlertRecord:
        return AlertRecord(id=id_, exchange="okx", symbol="ETH-USDT", source="live", severity="warning",
                           ratio=3.0, danger_ratio=2.5, bid_volume=1.0, ask_volume=3.0, best_bid=1.0,
                           best_ask=1.1, depth=50, event_ms=event_ms, created_ms=event_ms)

    async with RedisCoordinator(redis_server.url, replica_id="a", key_prefix="t") as ca, \
            RedisCoordinator(redis_server.url, replica_id="b", key_prefix="t") as cb:
        should_a = DeliveryGate(ca, lambda ex, sym: 60_000).should_deliver
        should_b = DeliveryGate(cb, lambda ex, sym: 60_000).should_deliver
        # Concurrent questions about one alert (several notifiers) -> one claim.
        assert await asyncio.gather(*(should_a(rec(1, T0_MS)) for _ in range(5))) == [True] * 5
        assert ca.claims_won == 1
        assert not await should_b(rec(1, T0_MS + 200))
        assert not await should_b(rec(None, T0_MS + 250))  # no outbox row: identity is the event


@pytest.mark.parametrize("cooldown_s", [0.0, 300.0])
def test_cooldown_lookup_reads_the_detector_settings(cooldown_s: float) -> None:
    m = Market("kraken", "BTC-USD", settings=DetectorSettings(cooldown_s=cooldown_s))
    of = cooldown_lookup([m])
    assert of("kraken", "BTC-USD") == int(cooldown_s * 1000)
    assert of("kraken", "ETH-USD") == 300_000


async def test_redis_down_every_replica_still_delivers(redis_server: RedisServer, tmp_path: Path) -> None:
    """No Redis: duplicates are accepted, losses are not; and no exception anywhere."""
    sent: list[tuple[str, str, AlertRecord]] = []
    a = await ReplicaUnderTest("a", redis_server.url, tmp_path / "a.db", sent).start()
    b = await ReplicaUnderTest("b", redis_server.url, tmp_path / "b.db", sent).start()
    try:
        redis_server.kill()
        for r in (a, b):
            r.feed_book(10.0, 10.0, T0_MS)
            r.feed_book(10.0, 30.0, T0_MS + 500)
            r.feed_book(10.0, 10.0, T0_MS + 600)  # re-arms the detector
            r.feed_book(10.0, 30.0, T0_MS + 700)  # inside its cooldown: no alert
        await asyncio.gather(a.manager.drain(), b.manager.drain())
        assert sorted(rep for rep, _, _ in sent) == ["a", "b"]
        assert a.coord.degraded and b.coord.degraded
        assert a.store.pending_count() == b.store.pending_count() == 0
    finally:
        await a.stop()
        await b.stop()
