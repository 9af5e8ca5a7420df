"""Episode claims across replicas on a real redis-server."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis

from sentrycoin.ha.coordinator import RedisCoordinator
from tests.ha.conftest import RedisServer, free_port, wait_until

COOLDOWN_MS = 300_000


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
            a.claim_episode("binance", "BTC-USDT", "warning", 1_000, COOLDOWN_MS),
            b.claim_episode("binance", "BTC-USDT", "warning", 1_040, COOLDOWN_MS),
        )
        assert sorted(results) == [False, True]
        # A third look a few hundred ms later (either replica) still loses.
        assert not await b.claim_episode("binance", "BTC-USDT", "warning", 1_400, COOLDOWN_MS)
        assert not await a.claim_episode("binance", "BTC-USDT", "warning", 1_400, COOLDOWN_MS)
        # Another market (or venue) is another episode.
        assert await b.claim_episode("binance", "ETH-USDT", "warning", 1_000, COOLDOWN_MS)
        assert await b.claim_episode("okx", "BTC-USDT", "warning", 1_000, COOLDOWN_MS)
        assert a.claims_won + b.claims_won == 3
        assert a.claims_lost + b.claims_lost == 3
        assert not a.degraded and not b.degraded and a.redis_errors == b.redis_errors == 0
        assert a.local_claims == b.local_claims == 0


async def test_claim_key_lives_in_redis_with_the_cooldown_ttl(redis_server: RedisServer) -> None:
    async with coordinator(redis_server.url, "a") as a:
        assert await a.claim_episode("kraken", "SOL-USD", "critical", 5, 60_000)
        r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            key = "t:episode:{kraken:SOL-USD}:critical"
            assert await r.get(key) == "a|5"
            assert 55_000 < await r.pttl(key) <= 60_000
        finally:
            await r.aclose()


async def test_new_episode_after_cooldown(redis_server: RedisServer) -> None:
    async with coordinator(redis_server.url, "a", min_window_ms=1) as a, \
            coordinator(redis_server.url, "b", min_window_ms=1) as b:
        assert await a.claim_episode("bybit", "BTC-USDT", "warning", 0, 300)
        assert not await b.claim_episode("bybit", "BTC-USDT", "warning", 100, 300)
        await asyncio.sleep(0.4)
        assert await b.claim_episode("bybit", "BTC-USDT", "warning", 400, 300)
        assert not await a.claim_episode("bybit", "BTC-USDT", "warning", 420, 300)


async def test_min_window_dedupes_replicas_even_with_zero_cooldown(redis_server: RedisServer) -> None:
    async with coordinator(redis_server.url, "a") as a, coordinator(redis_server.url, "b") as b:
        assert await a.claim_episode("okx", "BTC-USDT", "warning", 0, 0)
        assert not await b.claim_episode("okx", "BTC-USDT", "warning", 300, 0)


async def test_escalation_is_a_new_claim_and_lower_severity_then_loses(redis_server: RedisServer) -> None:
    async with coordinator(redis_server.url, "a") as a, coordinator(redis_server.url, "b") as b:
        assert await a.claim_episode("binance", "BTC-USDT", "warning", 0, COOLDOWN_MS)
        # The crash deepens: both detectors re-alert at critical; one message.
        assert await b.claim_episode("binance", "BTC-USDT", "critical", 900, COOLDOWN_MS)
        assert not await a.claim_episode("binance", "BTC-USDT", "critical", 950, COOLDOWN_MS)
        # A lagging replica whose first alert is only a warning: nothing new to say.
        async with coordinator(redis_server.url, "c") as c:
            assert not await c.claim_episode("binance", "BTC-USDT", "warning", 1_200, COOLDOWN_MS)
            assert await c.claim_episode("binance", "BTC-USDT", "extreme", 1_300, COOLDOWN_MS)
            assert not await c.claim_episode("binance", "BTC-USDT", "critical", 1_400, COOLDOWN_MS)


async def test_restarted_replica_still_sees_the_cooldown(redis_server: RedisServer) -> None:
    a = coordinator(redis_server.url, "a")
    await a.start()
    assert await a.claim_episode("coinbase", "BTC-USD", "warning", 10, COOLDOWN_MS, claim_id=7)
    await a.stop()
    # Process restart: fresh detector fires again on the same ongoing crash.
    a2 = coordinator(redis_server.url, "a2")
    await a2.start()
    try:
        assert not await a2.claim_episode("coinbase", "BTC-USD", "warning", 5_000, COOLDOWN_MS, claim_id=1)
    finally:
        await a2.stop()
    # Same stable replica id retrying the same outbox row (crash between claim
    # and send): the claim is ours, deliver it.
    a3 = coordinator(redis_server.url, "a")
    await a3.start()
    try:
        assert await a3.claim_episode("coinbase", "BTC-USD", "warning", 10, COOLDOWN_MS, claim_id=7)
        assert not await a3.claim_episode("coinbase", "BTC-USD", "warning", 10, COOLDOWN_MS, claim_id=8)
    finally:
        await a3.stop()


async def test_redis_outage_degrades_to_local_then_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sentrycoin.ha")
    async with coordinator(redis_server.url, "a") as a, coordinator(redis_server.url, "b") as b:
        assert await a.claim_episode("binance", "BTC-USDT", "warning", 0, COOLDOWN_MS)
        redis_server.kill()
        # Mid-run outage: no exception, local cooldowns with the same semantics.
        assert await a.claim_episode("binance", "ETH-USDT", "warning", 10, COOLDOWN_MS)
        assert a.degraded and a.redis_errors >= 1
        assert not await a.claim_episode("binance", "ETH-USDT", "warning", 20, COOLDOWN_MS)
        # What A won through Redis before the outage is remembered locally.
        assert not await a.claim_episode("binance", "BTC-USDT", "warning", 30, COOLDOWN_MS)
        for i in range(5):
            await a.claim_episode("kraken", f"C{i}-USD", "warning", 40, COOLDOWN_MS)
        assert a.local_claims == 8
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
        assert not await b.claim_episode("binance", "ETH-USDT", "warning", 60, COOLDOWN_MS)
        assert not b.degraded and b.local_claims == 0
        local_before = a.local_claims
        assert await a.claim_episode("okx", "XRP-USDT", "warning", 70, COOLDOWN_MS)
        assert not await b.claim_episode("okx", "XRP-USDT", "warning", 80, COOLDOWN_MS)
        assert a.local_claims == local_before and not a.degraded
    assert len(ha_messages(caplog, logging.WARNING, "unreachable")) == 1


async def test_unreachable_at_start_is_local_mode_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    c = coordinator(f"redis://:s3cretpass@127.0.0.1:{port}/0", "a", retry_interval_s=10)
    await c.start()
    try:
        assert c.degraded
        assert await c.claim_episode("binance", "BTC-USDT", "warning", 0, COOLDOWN_MS)
        assert not await c.claim_episode("binance", "BTC-USDT", "warning", 1, COOLDOWN_MS)
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
            assert await c.claim_episode("binance", "BTC-USDT", "warning", 0, COOLDOWN_MS)
        assert c.degraded and c.redis_errors >= 1
    finally:
        await c.stop()
        server.close()


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="REDIS_URL"):
        RedisCoordinator("http://127.0.0.1:6379")
