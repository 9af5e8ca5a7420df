"""Episode joins and per-channel delivery leases across replicas on a real redis-server."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from sentrycoin.ha.coordinator import COVERED, DONE, HELD, JOINED, NEW, SEND, RedisCoordinator
from sentrycoin.store import episode_id_of
from tests.ha.conftest import RedisServer, free_port, wait_until

COOLDOWN_MS = 300_000
LEASE_MS = 10_000


async def claim_episode(c: RedisCoordinator, exchange: str, symbol: str, severity: str, event_ms: int,
                        cooldown_ms: int) -> bool:
    """One replica's whole decision for one alert on one channel: join the episode, lease
    the channel, send and mark it done.  True: this replica sent it."""
    join = await c.join_episode(exchange, symbol, severity, episode_id_of(exchange, symbol, severity, event_ms),
                                cooldown_ms)
    if join.covered:
        return False
    claim = await c.claim_channel(join.episode_id, "telegram", LEASE_MS)
    if claim.status != SEND:
        return False
    await c.finish_channel(join.episode_id, "telegram", delivered=True)
    return True


def coordinator(url: str, replica: str, **kw) -> RedisCoordinator:  # type: ignore[no-untyped-def]
    kw.setdefault("retry_interval_s", 0.05)
    return RedisCoordinator(url, replica_id=replica, key_prefix="t", **kw)


def ha_messages(caplog: pytest.LogCaptureFixture, level: int, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "sentrycoin.ha" and r.levelno == level and needle in r.getMessage()]


async def test_two_replicas_same_crash_exactly_one_wins(redis_server: RedisServer) -> None:
    async with coordinator(redis_server.url, "a") as a, coordinator(redis_server.url, "b") as b:
        # Both detectors fire on the same crash; their books disagree on event time.
        results = await asyncio.gather(
            claim_episode(a, "binance", "BTC-USDT", "warning", 1_000, COOLDOWN_MS),
            claim_episode(b, "binance", "BTC-USDT", "warning", 1_040, COOLDOWN_MS),
        )
        assert sorted(results) == [False, True]
        # A third look a few hundred ms later (either replica) still loses.
        assert not await claim_episode(b, "binance", "BTC-USDT", "warning", 1_400, COOLDOWN_MS)
        assert not await claim_episode(a, "binance", "BTC-USDT", "warning", 1_400, COOLDOWN_MS)
        # Another market (or venue) is another episode.
        assert await claim_episode(b, "binance", "ETH-USDT", "warning", 1_000, COOLDOWN_MS)
        assert await claim_episode(b, "okx", "BTC-USDT", "warning", 1_000, COOLDOWN_MS)
        assert a.claims_won + b.claims_won == 3
        assert a.claims_lost + b.claims_lost >= 2  # the concurrent loser saw `held`, not `done`
        assert not a.degraded and not b.degraded and a.redis_errors == b.redis_errors == 0
        assert a.local_claims == b.local_claims == 0


async def test_keys_live_in_redis_with_their_ttls(redis_server: RedisServer) -> None:
    async with coordinator(redis_server.url, "a") as a:
        assert await claim_episode(a, "kraken", "SOL-USD", "critical", 5, 60_000)
        r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            key = "t:episode:{kraken:SOL-USD}:critical"
            assert await r.get(key) == "kraken:SOL-USD:critical:5"  # the episode id
            assert 55_000 < await r.pttl(key) <= 60_000
            done = "t:delivery:{kraken:SOL-USD:critical:5}:telegram:done"
            assert await r.get(done) == "a"  # who delivered
            assert await r.get("t:delivery:{kraken:SOL-USD:critical:5}:telegram:lease") is None  # released
        finally:
            await r.aclose()


async def test_new_episode_after_cooldown(redis_server: RedisServer) -> None:
    async with coordinator(redis_server.url, "a", min_window_ms=1) as a, \
            coordinator(redis_server.url, "b", min_window_ms=1) as b:
        assert await claim_episode(a, "bybit", "BTC-USDT", "warning", 0, 300)
        assert not await claim_episode(b, "bybit", "BTC-USDT", "warning", 100, 300)
        await asyncio.sleep(0.4)
        assert await claim_episode(b, "bybit", "BTC-USDT", "warning", 400, 300)
        assert not await claim_episode(a, "bybit", "BTC-USDT", "warning", 420, 300)


async def test_min_window_dedupes_replicas_even_with_zero_cooldown(redis_server: RedisServer) -> None:
    async with coordinator(redis_server.url, "a") as a, coordinator(redis_server.url, "b") as b:
        assert await claim_episode(a, "okx", "BTC-USDT", "warning", 0, 0)
        assert not await claim_episode(b, "okx", "BTC-USDT", "warning", 300, 0)


async def test_escalation_is_a_new_claim_and_lower_severity_then_loses(redis_server: RedisServer) -> None:
    async with coordinator(redis_server.url, "a") as a, coordinator(redis_server.url, "b") as b:
        assert await claim_episode(a, "binance", "BTC-USDT", "warning", 0, COOLDOWN_MS)
        # The crash deepens: both detectors re-alert at critical; one message.
        assert await claim_episode(b, "binance", "BTC-USDT", "critical", 900, COOLDOWN_MS)
        assert not await claim_episode(a, "binance", "BTC-USDT", "critical", 950, COOLDOWN_MS)
        # A lagging replica whose first alert is only a warning: nothing new to say.
        async with coordinator(redis_server.url, "c") as c:
            assert not await claim_episode(c, "binance", "BTC-USDT", "warning", 1_200, COOLDOWN_MS)
            assert await claim_episode(c, "binance", "BTC-USDT", "extreme", 1_300, COOLDOWN_MS)
            assert not await claim_episode(c, "binance", "BTC-USDT", "critical", 1_400, COOLDOWN_MS)


async def test_restarted_replica_still_sees_the_episode(redis_server: RedisServer) -> None:
    a = coordinator(redis_server.url, "a")
    await a.start()
    assert await claim_episode(a, "coinbase", "BTC-USD", "warning", 10, COOLDOWN_MS)
    await a.stop()
    # Process restart: fresh detector fires again on the same ongoing crash.
    a2 = coordinator(redis_server.url, "a2")
    await a2.start()
    try:
        assert not await claim_episode(a2, "coinbase", "BTC-USD", "warning", 5_000, COOLDOWN_MS)
    finally:
        await a2.stop()


async def test_join_adopts_the_first_episode_id_and_covers_lower_severities(redis_server: RedisServer) -> None:
    async with coordinator(redis_server.url, "a") as a, coordinator(redis_server.url, "b") as b:
        first = await a.join_episode("okx", "ETH-USDT", "critical", "okx:ETH-USDT:critical:100", COOLDOWN_MS)
        second = await b.join_episode("okx", "ETH-USDT", "critical", "okx:ETH-USDT:critical:340", COOLDOWN_MS)
        assert (first.status, second.status) == (NEW, JOINED)
        assert first.episode_id == second.episode_id == "okx:ETH-USDT:critical:100"
        lower = await b.join_episode("okx", "ETH-USDT", "warning", "okx:ETH-USDT:warning:400", COOLDOWN_MS)
        assert lower.status == COVERED


async def test_channel_lease_held_released_expired_and_per_channel(redis_server: RedisServer) -> None:
    ep = "binance:BTC-USDT:warning:1"
    async with coordinator(redis_server.url, "a") as a, coordinator(redis_server.url, "b") as b:
        assert (await a.claim_channel(ep, "telegram", 300)).status == SEND
        held = await b.claim_channel(ep, "telegram", 300)
        assert held.status == HELD and held.holder == "a" and 0 < held.pttl_ms <= 300
        assert (await b.claim_channel(ep, "webhook", 300)).status == SEND  # another channel, another lease
        assert (await a.claim_channel(ep, "telegram", 300)).status == SEND  # ours again (a retry)
        assert await a.renew_channels([(ep, "telegram"), (ep, "webhook")], 300) == [True, False]
        # Permanent failure on A: released, B takes it at once.
        await a.finish_channel(ep, "telegram", delivered=False)
        assert (await b.claim_channel(ep, "telegram", 300)).status == SEND
        # B dies without finishing: its lease expires, A takes over.
        assert (await a.claim_channel(ep, "telegram", 300)).status == HELD
        await asyncio.sleep(0.35)
        assert (await a.claim_channel(ep, "telegram", 300)).status == SEND
        await a.finish_channel(ep, "telegram", delivered=True)
        done = await b.claim_channel(ep, "telegram", 300)
        assert done.status == DONE and done.holder == "a"
        # A replica restarted with the same REPLICA_ID finds its own live lease and sends.
        assert (await b.claim_channel(ep, "console2", 5_000)).status == SEND
    async with coordinator(redis_server.url, "b") as b2:
        assert (await b2.claim_channel(ep, "console2", 5_000)).status == SEND


async def test_redis_outage_degrades_to_local_then_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sentrycoin.ha")
    async with coordinator(redis_server.url, "a") as a, coordinator(redis_server.url, "b") as b:
        assert await claim_episode(a, "binance", "BTC-USDT", "warning", 0, COOLDOWN_MS)
        redis_server.kill()
        # Mid-run outage: no exception, local cooldowns with the same semantics.
        assert await claim_episode(a, "binance", "ETH-USDT", "warning", 10, COOLDOWN_MS)
        assert a.degraded and a.redis_errors >= 1
        assert not await claim_episode(a, "binance", "ETH-USDT", "warning", 20, COOLDOWN_MS)
        # What A won through Redis before the outage is remembered locally.
        assert not await claim_episode(a, "binance", "BTC-USDT", "warning", 30, COOLDOWN_MS)
        for i in range(5):
            await claim_episode(a, "kraken", f"C{i}-USD", "warning", 40, COOLDOWN_MS)
        assert a.local_claims == 16  # a join and a channel decision each
        assert len(ha_messages(caplog, logging.WARNING, "unreachable")) == 1  # one for A (b has not noticed)
        assert not b.degraded

        redis_server.start()  # empty: no persistence
        assert await wait_until(lambda: not a.degraded, 5.0)
        assert len(ha_messages(caplog, logging.INFO, "reachable again")) == 1
        assert a.outages == 1 and a.recoveries == 1
        # Claims go through Redis again.  B never noticed the outage (its pooled
        # connection died with the server; the one immediate retry reconnects)
        # and sees the episode A took locally during the outage (copied into
        # Redis on recovery).
        assert not await claim_episode(b, "binance", "ETH-USDT", "warning", 60, COOLDOWN_MS)
        assert not b.degraded and b.local_claims == 0
        local_before = a.local_claims
        assert await claim_episode(a, "okx", "XRP-USDT", "warning", 70, COOLDOWN_MS)
        assert not await claim_episode(b, "okx", "XRP-USDT", "warning", 80, COOLDOWN_MS)
        assert a.local_claims == local_before and not a.degraded
    assert len(ha_messages(caplog, logging.WARNING, "unreachable")) == 1


async def test_unreachable_at_start_is_local_mode_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    c = coordinator(f"redis://:s3cretpass@127.0.0.1:{port}/0", "a", retry_interval_s=10)
    await c.start()
    try:
        assert c.degraded
        assert await claim_episode(c, "binance", "BTC-USDT", "warning", 0, COOLDOWN_MS)
        assert not await claim_episode(c, "binance", "BTC-USDT", "warning", 1, COOLDOWN_MS)
        assert c.stats()["degraded"] is True and c.stats()["claims_lost"] == 1
    finally:
        await c.stop()
    text = caplog.text
    assert "unreachable" in text and "s3cretpass" not in text


async def test_hanging_redis_times_out_quickly() -> None:
    """A server that accepts and never answers must not stall delivery."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    c = coordinator(f"redis://127.0.0.1:{port}/0", "a", op_timeout_s=0.1, connect_timeout_s=0.1, retry_interval_s=10)
    try:
        async with asyncio.timeout(2.0):  # far below any retry storm; only checks it does not hang
            await c.start()
            assert await claim_episode(c, "binance", "BTC-USDT", "warning", 0, COOLDOWN_MS)
        assert c.degraded and c.redis_errors >= 1
    finally:
        await c.stop()
        server.close()


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="REDIS_URL"):
        RedisCoordinator("http://127.0.0.1:6379")
