"""Replicas (real Markets, AlertManagers, DeliveryGates) on a real redis-server.

Each episode must be delivered by *some* healthy replica: once, with the same
episode id everywhere; a replica with a revoked Telegram token or one killed
mid-retry must not silence the others.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from sentrycoin.alerts.base import DeliveryError, Notifier, RetryPolicy
from sentrycoin.alerts.manager import AlertManager
from sentrycoin.alerts.telegram import TelegramNotifier
from sentrycoin.ha.coordinator import RedisCoordinator
from sentrycoin.ha.gate import DeliveryGate, cooldown_lookup
from sentrycoin.market import DetectorSettings, Market
from sentrycoin.store import AlertRecord, AlertStore
from tests.ha.conftest import RedisServer, wait_until
from tests.service.fake_telegram import FakeTelegram, Ok, Status

T0_MS = 1_790_000_000_000
REPO_ROOT = Path(__file__).resolve().parents[2]


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
    """What one SentryCoin replica runs for its markets, alert side only."""

    def __init__(self, name: str, url: str, db: Path, notifiers: list[Notifier], *,
                 symbols: tuple[str, ...] = ("BTC-USDT",), lease_ttl_s: float = 2.0,
                 settings: DetectorSettings | None = None) -> None:
        self.name = name
        self.coord = RedisCoordinator(url, replica_id=name, key_prefix="t")
        self.store = AlertStore(db)
        self.markets = {s: Market("binance", s, settings=settings or DetectorSettings(cooldown_s=300),
                                  source="simulated") for s in symbols}
        self.gate = DeliveryGate(self.coord, cooldown_lookup(self.markets.values()), lease_ttl_s=lease_ttl_s)
        self.notifiers = notifiers
        self.manager = AlertManager(self.store, notifiers, gate=self.gate, gated=[n.name for n in notifiers])
        for m in self.markets.values():
            m.on_alert = self.manager.submit

    @property
    def market(self) -> Market:
        return next(iter(self.markets.values()))

    async def start(self) -> ReplicaUnderTest:
        await self.coord.start()
        await self.manager.start()
        return self

    async def stop(self) -> None:
        await self.manager.stop()
        await self.gate.stop()
        await self.coord.stop()
        self.store.close()

    def feed_book(self, bid_qty: float, ask_qty: float, event_ms: int, symbol: str | None = None) -> None:
        """What a feed handler does per message: apply it, then after_message."""
        market = self.markets[symbol] if symbol else self.market
        bids = [(100.0 - 0.5 - i * 0.5, bid_qty) for i in range(20)]
        asks = [(100.0 + 0.5 + i * 0.5, ask_qty) for i in range(20)]
        market.book.load_snapshot(bids, asks)
        market.mark_valid()
        market.after_message(event_ms)


async def settled(*replicas: ReplicaUnderTest, timeout_s: float = 5.0) -> None:
    """Every alert final on every replica and written to its database."""
    assert await wait_until(lambda: all(r.manager.in_flight() == 0 for r in replicas), timeout_s)
    for r in replicas:
        await r.manager.store.flush()


def recorders(sent: list, replica: str, names: tuple[str, ...] = ("telegram",), fail_first: int = 0) -> list[Notifier]:
    return [Recorder(n, sent, replica, fail_first=fail_first) for n in names]


def telegram(tg: FakeTelegram, token: str | None = None) -> TelegramNotifier:
    return TelegramNotifier(token or tg.token, "-100", api_url=tg.url, min_interval_s=0.0,
                            request_timeout_s=2.0, retry=RetryPolicy(base_s=0.05, max_s=0.2))


async def test_two_replicas_one_crash_one_message_same_episode_id(redis_server: RedisServer, tmp_path: Path) -> None:
    sent: list[tuple[str, str, AlertRecord]] = []
    a = await ReplicaUnderTest("a", redis_server.url, tmp_path / "a.db", recorders(sent, "a")).start()
    b = await ReplicaUnderTest("b", redis_server.url, tmp_path / "b.db", recorders(sent, "b")).start()
    try:
        for r in (a, b):
            r.feed_book(10.0, 10.0, T0_MS)  # calm book: ratio 1
        # The crash: asks pile up; replica B's feed is 300 ms behind.
        a.feed_book(10.0, 30.0, T0_MS + 1_000)
        b.feed_book(10.0, 30.0, T0_MS + 1_300)
        assert a.manager.stats.submitted == b.manager.stats.submitted == 1  # both detectors fired
        await settled(a, b)
        assert len(sent) == 1
        winner, loser = (a, b) if sent[0][0] == "a" else (b, a)
        assert loser.manager.stats.suppressed["telegram"] == 1
        assert loser.store.pending_count() == 0
        lrow = loser.store.recent()[0]
        wrow = winner.store.recent()[0]
        assert lrow["deliveries"]["telegram"]["state"] == "suppressed"
        assert lrow["deliveries"]["telegram"]["delivered_by"] == winner.name  # who delivered
        assert wrow["deliveries"]["telegram"]["delivered_by"] == winner.name
        # One episode id on both replicas (the first claimer's), and it is what was sent.
        assert lrow["episode_id"] == wrow["episode_id"] == sent[0][2].episode_id
        assert sent[0][2].episode_id in {f"binance:BTC-USDT:warning:{T0_MS + ms}" for ms in (1_000, 1_300)}

        # The crash deepens: both re-alert at critical (escalation) -> one more message.
        a.feed_book(10.0, 60.0, T0_MS + 2_000)
        b.feed_book(10.0, 60.0, T0_MS + 2_200)
        await asyncio.gather(a.manager.drain(), b.manager.drain())
        await wait_until(lambda: len(sent) == 2 and a.manager.in_flight() == b.manager.in_flight() == 0)
        assert [s[2].severity for s in sent] == ["warning", "critical"]
    finally:
        await a.stop()
        await b.stop()


async def test_bad_token_replica_does_not_silence_the_fleet(redis_server: RedisServer, tmp_path: Path) -> None:
    """A replica whose Telegram token was revoked (401) fails its claims permanently and
    releases them; the good replica delivers every episode, each exactly once."""
    symbols = tuple(f"S{i}-USDT" for i in range(9))
    async with FakeTelegram() as tg:
        bad = await ReplicaUnderTest("bad", redis_server.url, tmp_path / "bad.db",
                                     [telegram(tg, token="999:revoked-token-revoked-token-xx")],
                                     symbols=symbols, lease_ttl_s=1.0).start()
        good = await ReplicaUnderTest("good", redis_server.url, tmp_path / "good.db", [telegram(tg)],
                                      symbols=symbols, lease_ttl_s=1.0).start()
        try:
            for i, s in enumerate(symbols):  # the bad replica sees every crash first and claims it
                bad.feed_book(10.0, 10.0, T0_MS, symbol=s)
                bad.feed_book(10.0, 30.0, T0_MS + 1_000 + i, symbol=s)
            assert await wait_until(lambda: bad.gate.sent >= 1, 5)
            for i, s in enumerate(symbols):
                good.feed_book(10.0, 10.0, T0_MS, symbol=s)
                good.feed_book(10.0, 30.0, T0_MS + 1_100 + i, symbol=s)
            def delivered() -> list[str]:  # Telegram batches alerts that queued up: count symbols
                return sorted(s for s in symbols for m in tg.messages for _ in range(m["text"].count(f"{s}</b>")))

            assert await wait_until(lambda: len(delivered()) >= len(symbols), timeout_s=15), delivered()
            await settled(bad, good, timeout_s=10)
            await asyncio.sleep(0.3)  # nothing more arrives
            assert delivered() == sorted(symbols)  # every episode, each exactly once
            assert bad.manager.stats.failed["telegram"] >= 1 and bad.gate.released >= 1
            rows = {r["symbol"]: r for r in good.store.recent()}
            assert all(rows[s]["deliveries"]["telegram"]["state"] == "delivered" for s in symbols)
            assert all(rows[s]["deliveries"]["telegram"]["delivered_by"] == "good" for s in symbols)
        finally:
            await bad.stop()
            await good.stop()


def _spawn_claimer(redis_url: str, api_url: str, token: str, db: Path, ttl_s: float) -> asyncio.Future:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    return asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.ha._claimer_child", "--redis", redis_url, "--api-url", api_url,
        "--token", token, "--db", str(db), "--ttl", str(ttl_s), "--event-ms", str(T0_MS + 1_000),
        cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def test_claimer_killed_mid_retry_is_taken_over_within_one_lease_ttl(
        redis_server: RedisServer, tmp_path: Path) -> None:
    ttl_s = 1.5
    async with FakeTelegram() as tg:
        tg.default = Status(500)  # Telegram is failing: the claimer keeps retrying
        proc = await _spawn_claimer(redis_server.url, tg.url, tg.token, tmp_path / "a.db", ttl_s)
        b = None
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line.strip() == b"SUBMITTED", (line, await proc.stderr.read() if proc.stderr else b"")
            await tg.wait_for_requests(2, timeout_s=10)  # claimed, sent, failed, retried
            b = await ReplicaUnderTest("b", redis_server.url, tmp_path / "b.db", [telegram(tg)],
                                       lease_ttl_s=ttl_s).start()
            b.feed_book(10.0, 10.0, T0_MS)
            b.feed_book(10.0, 30.0, T0_MS + 1_200)  # same crash, seen 200 ms later
            assert await wait_until(lambda: b.gate.waited >= 1, 5)  # the claimer holds the lease
            assert len(tg.messages) == 0
            proc.send_signal(signal.SIGKILL)  # kill -9 mid-retry
            await proc.wait()
            killed_at = time.monotonic()
            tg.default = Ok()  # Telegram recovers
            await tg.wait_for_messages(1, timeout_s=ttl_s * 3)
            took_s = time.monotonic() - killed_at
            # The lease was renewed at most TTL/3 before the kill, so it expires within one TTL;
            # B asks again at least every TTL/4.
            assert took_s <= ttl_s * 1.25 + 0.3, took_s
            await settled(b)
            row = b.store.recent()[0]
            assert row["deliveries"]["telegram"]["state"] == "delivered"
            assert row["deliveries"]["telegram"]["delivered_by"] == "b"
            assert row["episode_id"] == f"binance:BTC-USDT:warning:{T0_MS + 1_000}"  # the claimer's episode
            await asyncio.sleep(0.3)
            assert len(tg.messages) == 1
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if b is not None:
                await b.stop()


async def test_restarted_replica_does_not_resend_the_episode(redis_server: RedisServer, tmp_path: Path) -> None:
    sent: list[tuple[str, str, AlertRecord]] = []
    a = await ReplicaUnderTest("a", redis_server.url, tmp_path / "a.db", recorders(sent, "a")).start()
    a.feed_book(10.0, 10.0, T0_MS)
    a.feed_book(10.0, 30.0, T0_MS + 100)
    await a.manager.drain()
    await a.stop()
    # New process, new detector (no memory), same crash still on the book.
    a2 = await ReplicaUnderTest("a2", redis_server.url, tmp_path / "a2.db", recorders(sent, "a2")).start()
    try:
        a2.feed_book(10.0, 30.0, T0_MS + 5_000)
        assert a2.manager.stats.submitted == 1
        await settled(a2)
        assert len(sent) == 1
        assert a2.store.recent()[0]["deliveries"]["telegram"]["delivered_by"] == "a"
    finally:
        await a2.stop()


async def test_channels_are_leased_separately(redis_server: RedisServer, tmp_path: Path) -> None:
    """A replica whose Telegram is broken still owns (and delivers) the webhook."""
    sent: list[tuple[str, str, AlertRecord]] = []

    class Broken(Recorder):
        async def send(self, alert: AlertRecord) -> None:
            raise DeliveryError("configuration error (HTTP 401)", config_error=True)

    a = await ReplicaUnderTest("a", redis_server.url, tmp_path / "a.db",
                               [Broken("telegram", sent, "a"), Recorder("webhook", sent, "a")]).start()
    b = ReplicaUnderTest("b", redis_server.url, tmp_path / "b.db", recorders(sent, "b", ("telegram", "webhook")))
    try:
        a.feed_book(10.0, 10.0, T0_MS)
        a.feed_book(10.0, 30.0, T0_MS + 100)
        await a.manager.drain()
        await wait_until(lambda: a.manager.in_flight() == 0)
        assert [(r, n) for r, n, _ in sent] == [("a", "webhook")]
        await b.start()
        b.feed_book(10.0, 10.0, T0_MS)
        b.feed_book(10.0, 30.0, T0_MS + 300)
        await wait_until(lambda: len(sent) == 2 and b.manager.in_flight() == 0)
        assert sorted((r, n) for r, n, _ in sent) == [("a", "webhook"), ("b", "telegram")]
        assert b.manager.stats.suppressed == {"telegram": 0, "webhook": 1}
    finally:
        await a.stop()
        await b.stop()


async def test_one_join_per_alert_across_notifiers_and_retries(redis_server: RedisServer, tmp_path: Path) -> None:
    sent: list[tuple[str, str, AlertRecord]] = []
    a = await ReplicaUnderTest("a", redis_server.url, tmp_path / "a.db",
                               recorders(sent, "a", ("telegram", "webhook"), fail_first=2)).start()
    try:
        a.feed_book(10.0, 10.0, T0_MS)
        a.feed_book(10.0, 30.0, T0_MS + 500)
        await a.manager.drain()
        assert sorted(n for _, n, _ in sent) == ["telegram", "webhook"]
        assert len(a.gate._joins) == 1  # both notifiers, all retries: one episode join
        assert a.gate.held_leases == 0  # finished: nothing left to renew
    finally:
        await a.stop()


@pytest.mark.parametrize("cooldown_s", [0.0, 300.0])
def test_cooldown_lookup_reads_the_detector_settings(cooldown_s: float) -> None:
    m = Market("kraken", "BTC-USD", settings=DetectorSettings(cooldown_s=cooldown_s))
    of = cooldown_lookup([m])
    assert of("kraken", "BTC-USD") == int(cooldown_s * 1000)
    assert of("kraken", "ETH-USD") == 300_000


async def test_redis_down_every_replica_still_delivers(redis_server: RedisServer, tmp_path: Path) -> None:
    """No Redis: duplicates are accepted, losses are not; and no exception anywhere."""
    sent: list[tuple[str, str, AlertRecord]] = []
    a = await ReplicaUnderTest("a", redis_server.url, tmp_path / "a.db", recorders(sent, "a")).start()
    b = await ReplicaUnderTest("b", redis_server.url, tmp_path / "b.db", recorders(sent, "b")).start()
    try:
        redis_server.kill()
        for r in (a, b):
            r.feed_book(10.0, 10.0, T0_MS)
            r.feed_book(10.0, 30.0, T0_MS + 500)
            r.feed_book(10.0, 10.0, T0_MS + 600)  # re-arms the detector
            r.feed_book(10.0, 30.0, T0_MS + 700)  # inside its cooldown: no alert
        await settled(a, b)
        assert sorted(rep for rep, _, _ in sent) == ["a", "b"]
        assert a.coord.degraded and b.coord.degraded
        assert a.store.pending_count() == b.store.pending_count() == 0
    finally:
        await a.stop()
        await b.stop()


async def test_covered_alert_stands_in_when_the_higher_severity_cannot_be_delivered(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """Only the bad-token replica saw the crash at `extreme`; the good one saw `critical`,
    which the extreme episode covers.  Nobody can deliver the extreme alert, so the good
    replica's critical alert is delivered in its place (under the episode's id)."""
    async with FakeTelegram() as tg:
        bad = await ReplicaUnderTest("bad", redis_server.url, tmp_path / "bad.db",
                                     [telegram(tg, token="999:revoked-token-revoked-token-xx")],
                                     lease_ttl_s=1.0).start()
        good = await ReplicaUnderTest("good", redis_server.url, tmp_path / "good.db", [telegram(tg)],
                                      lease_ttl_s=1.0).start()
        try:
            bad.feed_book(10.0, 10.0, T0_MS)
            bad.feed_book(10.0, 150.0, T0_MS + 1_000)
            assert bad.market.last_alert is not None and bad.market.last_alert.severity == "extreme"
            assert await wait_until(lambda: bad.gate.sent >= 1, 5)
            good.feed_book(10.0, 10.0, T0_MS)
            good.feed_book(10.0, 60.0, T0_MS + 1_200)
            assert good.market.last_alert is not None and good.market.last_alert.severity == "critical"
            assert await wait_until(lambda: len(tg.messages) == 1, 10)
            await settled(bad, good)
            assert "CRITICAL" in tg.messages[0]["text"]
            row = good.store.recent()[0]
            assert row["deliveries"]["telegram"]["state"] == "delivered"
            assert row["episode_id"] == f"binance:BTC-USDT:extreme:{T0_MS + 1_000}"
            await asyncio.sleep(0.3)
            assert len(tg.messages) == 1
        finally:
            await bad.stop()
            await good.stop()


async def test_covered_alert_is_suppressed_once_the_higher_severity_is_delivered(
        redis_server: RedisServer, tmp_path: Path) -> None:
    sent: list[tuple[str, str, AlertRecord]] = []
    a = await ReplicaUnderTest("a", redis_server.url, tmp_path / "a.db", recorders(sent, "a")).start()
    b = await ReplicaUnderTest("b", redis_server.url, tmp_path / "b.db", recorders(sent, "b")).start()
    try:
        a.feed_book(10.0, 10.0, T0_MS)
        a.feed_book(10.0, 150.0, T0_MS + 1_000)  # extreme
        await settled(a)
        b.feed_book(10.0, 10.0, T0_MS)
        b.feed_book(10.0, 60.0, T0_MS + 1_200)  # critical: covered
        await settled(a, b)
        assert [(r, s.severity) for r, _, s in sent] == [("a", "extreme")]
        d = b.store.recent()[0]["deliveries"]["telegram"]
        assert d["state"] == "suppressed" and d["delivered_by"] == "a" and "higher-severity" in d["error"]
    finally:
        await a.stop()
        await b.stop()


async def test_escalation_batched_with_the_alert_it_covers_is_one_line(
        redis_server: RedisServer, tmp_path: Path) -> None:
    """The soak's case: a replica raises critical, then extreme 300 ms later; the extreme
    episode is joined first (by another replica), so the critical stands in for it, and both
    sit in one Telegram batch: the message carries the extreme alert only."""
    async with FakeTelegram() as tg:
        other = await ReplicaUnderTest("other", redis_server.url, tmp_path / "o.db",
                                       [telegram(tg, token="999:revoked-token-revoked-token-xx")]).start()
        me = await ReplicaUnderTest("me", redis_server.url, tmp_path / "m.db", [telegram(tg)]).start()
        try:
            other.feed_book(10.0, 10.0, T0_MS)
            other.feed_book(10.0, 150.0, T0_MS + 1_000)  # extreme, joined first
            assert await wait_until(lambda: other.gate.sent >= 1, 5)
            me.manager.notifiers[0].min_interval_s = 0.5  # both of mine queue up into one batch
            me.feed_book(10.0, 10.0, T0_MS)
            me.feed_book(10.0, 60.0, T0_MS + 1_000)   # critical: covered, stands in
            me.feed_book(10.0, 150.0, T0_MS + 1_300)  # extreme: the episode's own alert
            assert await wait_until(lambda: len(tg.messages) >= 1, 10)
            await settled(other, me)
            await asyncio.sleep(0.3)
            text = "\n".join(m["text"] for m in tg.messages)
            assert text.count("EXTREME") == 1 and "CRITICAL" not in text
            states = {r["severity"]: r["deliveries"]["telegram"]["state"] for r in me.store.recent()}
            assert states == {"critical": "suppressed", "extreme": "delivered"}
        finally:
            await other.stop()
            await me.stop()
