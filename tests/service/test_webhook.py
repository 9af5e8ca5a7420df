"""WebhookNotifier against a local aiohttp receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from sentrycoin.alerts import AlertManager, DeliveryError, RetryPolicy, WebhookNotifier
from sentrycoin.alerts.webhook import WebhookPayload
from sentrycoin.store import AlertStore
from tests.service.alert_doubles import make_event

SECRET_PATH = "/hooks/T000/B000/SuperSecretHookPath"


class Receiver:
    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]] | str] = []
        self.hits: list[tuple[float, bytes, dict[str, str]]] = []
        self.ok: list[bytes] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.hits.append((asyncio.get_running_loop().time(), body, dict(request.headers)))
        step = self.script.pop(0) if self.script else (200, {})
        if step == "hang":
            await asyncio.sleep(2)
            return web.Response(status=500)
        status, headers = step  # type: ignore[misc]
        if 200 <= status < 300:
            self.ok.append(body)
        return web.Response(status=status, headers=headers)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post(SECRET_PATH, self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}{SECRET_PATH}?token=abc"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
def store(tmp_path: Path):
    s = AlertStore(tmp_path / "alerts.db")
    yield s
    s.close()


def hook(url: str, **kw) -> WebhookNotifier:
    kw.setdefault("retry", RetryPolicy(base_s=0.02, max_s=0.05))
    return WebhookNotifier(url, **kw)


async def test_posts_alert_as_json(store: AlertStore) -> None:
    async with Receiver() as rx:
        async with AlertManager(store, [hook(rx.url, public_url="http://mon:8080", headers={"X-Key": "k"})]) as m:
            m.submit(make_event(source="replay"))
            await m.drain()
    assert len(rx.ok) == 1
    payload = msgspec.json.decode(rx.ok[0], type=WebhookPayload)
    assert payload.episode_id == "binance:BTC-USDT:critical:1764145310123" and payload.possible_duplicate is False
    assert payload.symbol == "BTC-USDT" and payload.exchange == "binance"
    assert payload.severity == "critical" and payload.ratio == 5.25 and payload.danger_ratio == 2.5
    assert payload.bid_volume == 12.5 and payload.ask_volume == 65.625 and payload.depth == 50
    assert payload.time == "2025-11-26T08:21:50.123Z" and payload.simulated is True and payload.source == "replay"
    assert payload.status_url == "http://mon:8080/status"
    headers = rx.hits[0][2]
    assert headers["Content-Type"] == "application/json" and headers["X-Key"] == "k"
    assert headers["Idempotency-Key"] == payload.episode_id  # stable: not the local row id


async def test_idempotency_key_differs_per_alert_and_is_stable_across_retries(store: AlertStore) -> None:
    async with Receiver() as rx:
        rx.script = [(503, {}), (200, {}), (200, {})]
        async with AlertManager(store, [hook(rx.url)]) as m:
            m.submit(make_event())
            for _ in range(300):
                if rx.ok:
                    break
                await asyncio.sleep(0.01)
            m.submit(make_event(event_ms=1_764_145_310_999))
            await m.drain()
    keys = [h[2]["Idempotency-Key"] for h in rx.hits]
    assert keys[0] == keys[1] != keys[2]  # the retry reuses the key; another alert has its own
    bodies = [msgspec.json.decode(h[1], type=WebhookPayload) for h in rx.hits]
    assert [b.episode_id for b in bodies] == keys
    assert {r["episode_id"] for r in store.recent()} == set(keys)  # /alerts shows the same ids


async def test_429_then_5xx_then_success_once(store: AlertStore) -> None:
    async with Receiver() as rx:
        rx.script = [(429, {"Retry-After": "0.3"}), (503, {}), (200, {})]
        async with AlertManager(store, [hook(rx.url)]) as m:
            m.submit(make_event())
            for _ in range(200):
                if rx.ok:
                    break
                await asyncio.sleep(0.01)
            await m.drain()
    assert len(rx.ok) == 1 and len(rx.hits) == 3
    assert rx.hits[1][0] - rx.hits[0][0] >= 0.3
    assert store.recent()[0]["deliveries"]["webhook"]["attempts"] == 3


async def test_timeout_is_an_unknown_outcome_retried_after_a_timeout_and_flagged(store: AlertStore) -> None:
    async with Receiver() as rx:
        rx.script = ["hang"]
        async with AlertManager(store, [hook(rx.url, request_timeout_s=0.3)]) as m:
            m.submit(make_event())
            for _ in range(300):
                if rx.ok:
                    break
                await asyncio.sleep(0.01)
            await m.drain()
            assert m.stats.outcome_unknown["webhook"] == 1
    assert len(rx.ok) == 1 and len(rx.hits) == 2
    first, second = (msgspec.json.decode(h[1], type=WebhookPayload) for h in rx.hits)
    assert first.possible_duplicate is False and second.possible_duplicate is True
    assert rx.hits[0][2]["Idempotency-Key"] == rx.hits[1][2]["Idempotency-Key"]
    # not retried at once: at least the request timeout after the unanswered request timed out
    assert rx.hits[1][0] - rx.hits[0][0] >= 0.3 + 0.3 - 0.05
    row = store.recent()[0]["deliveries"]["webhook"]
    assert row["state"] == "delivered" and row["attempts"] == 2


async def test_4xx_is_permanent_and_url_secret_kept_out(
    store: AlertStore, caplog: pytest.LogCaptureFixture
) -> None:
    async with Receiver() as rx:
        rx.script = [(404, {})]
        n = hook(rx.url)
        with caplog.at_level(logging.DEBUG):
            async with AlertManager(store, [n]) as m:
                m.submit(make_event())
                await m.drain()
                assert m.stats.failed["webhook"] == 1
        row = store.recent()[0]["deliveries"]["webhook"]
        assert row["state"] == "failed" and "HTTP 404" in row["error"]
        assert "SuperSecretHookPath" not in caplog.text and "SuperSecretHookPath" not in row["error"]
        assert "SuperSecretHookPath" not in repr(n)
        port = rx.url.split(":")[2].split("/")[0]
    with pytest.raises(DeliveryError) as info:  # receiver gone: network error, still no path
        await n.send(store.get_alert(1))  # type: ignore[arg-type]
    assert "SuperSecretHookPath" not in str(info.value) and port in str(info.value)
    await n.close()


def test_rejects_non_http_url() -> None:
    with pytest.raises(ValueError):
        WebhookNotifier("ftp://x/y")
