"""MOCK_FALLBACK round trip, end to end: a real Monitor watches two venue
emulators; one of them goes down (connections cut, then refused), the monitor
shows its markets on the simulator -- labelled in /status (mode and per-book
source), sentrycoin_info, /health, the dashboard's push channel and banner, and
every alert -- keeps probing the venue, and switches each market back to live
data when the venue answers again.

The "venue" goes down and comes back through a TCP forwarder on a fixed port in
front of the Binance emulator (WebSocket and REST both pass through it), so the
monitor sees exactly what an outage looks like: cut connections, then refused
connects, then a venue that answers on the same address again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentrycoin.config import load_settings
from sentrycoin.emulator import create_emulator
from sentrycoin.monitor import Monitor
from sentrycoin.transport import TransportSettings

try:
    from playwright.async_api import expect
except ImportError:  # the browser part of the test is skipped then (see _open_dashboard)
    expect = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


class SwitchableForwarder:
    """127.0.0.1:port -> target port.  `down()` cuts every connection and stops
    listening (connects are refused); `up()` listens on the same port again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}


async def _wait(predicate: Any, timeout_s: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)


def _metric(text: str, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name == name}


async def test_venue_down_simulated_then_back_live(tmp_path: Path) -> None:
    binance_emu = await create_emulator("binance", ["BTC-USDT", "ETH-USDT"], seed=11).start()
    okx_emu = await create_emulator("okx", ["BTC-USDT"], seed=12).start()
    forwarder = SwitchableForwarder(binance_emu.port)
    await forwarder.up()
    via = f"127.0.0.1:{forwarder.port}"
    env = {
        "SENTRY_DB": str(tmp_path / "alerts.db"), "HOST": "127.0.0.1", "PORT": "0",
        "MOCK_FALLBACK": "true", "MOCK_FALLBACK_AFTER_S": "1", "STALE_AFTER_S": "2",
        "SIM_SCENARIO": "normal", "SIM_SEED": "4", "SIM_SPEED": "5",
        "BINANCE_WS_URL": binance_emu.ws_url.replace(f"127.0.0.1:{binance_emu.port}", via),
        "BINANCE_REST_URL": binance_emu.rest_url.replace(f"127.0.0.1:{binance_emu.port}", via),
        "OKX_WS_URL": okx_emu.ws_url,
    }
    # Binance alerts as soon as a book is valid (ratio > 0.01 always), so each phase shows how
    # its alerts are labelled (a new simulated twin alerts at once); OKX never alerts.
    toml = tmp_path / "markets.toml"
    toml.write_text('[[markets]]\nexchange = "binance"\nsymbols = ["BTC-USDT", "ETH-USDT"]\n'
                    'danger_ratio = 0.01\ncooldown_minutes = 0\n'
                    '[[markets]]\nexchange = "okx"\nsymbols = ["BTC-USDT"]\ndanger_ratio = 1000.0\n')
    settings = load_settings(toml, env=env)
    fast = TransportSettings(stale_after_s=2.0, backoff_initial_s=0.05, backoff_max_s=0.3, connect_timeout_s=2.0)
    monitor = Monitor(settings, env=env, console=False, transport=fast, probe_backoff_max_s=0.5)
    stop = asyncio.Event()
    run = asyncio.create_task(monitor.run(stop))
    try:
        await _wait(lambda: _ready(monitor), 20, "the HTTP server")
        base = f"http://127.0.0.1:{monitor.http_port}"
        async with aiohttp.ClientSession() as http, contextlib.AsyncExitStack() as stack:
            async def get(path: str) -> tuple[int, Any]:
                async with http.get(base + path) as resp:
                    body = await (resp.text() if path == "/metrics" else resp.json())
                    return resp.status, body

            async def status() -> dict[str, Any]:
                return (await get("/status"))[1]

            def books(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
                return {(b["exchange"], b["symbol"]): b for b in doc["books"]}

            # -- 1. everything live --------------------------------------------------
            async def all_live() -> Any:
                doc = await status()
                ok = doc["mode"] == "live" and all(b["source"] == "live" and b["book_valid"] for b in doc["books"])
                return doc if ok else None
            doc = await _wait(all_live, 30, "every book live and in sync")
            assert len(doc["books"]) == 3 and doc["fallback"] == []
            await _wait(lambda: _alerts(get, "binance", "live"), 15, "a live Binance alert")

            # -- 2. the venue goes down: simulated, labelled everywhere -----------------
            await forwarder.down()

            async def mixed() -> Any:
                doc = await status()
                b = books(doc)
                ok = (doc["mode"] == "mixed" and b[("binance", "BTC-USDT")]["source"] == "simulated"
                      and b[("binance", "ETH-USDT")]["source"] == "simulated"
                      and all(x["book_valid"] for x in doc["books"]))
                return doc if ok else None
            doc = await _wait(mixed, 30, "Binance on the simulator, OKX live")
            assert books(doc)[("okx", "BTC-USDT")]["source"] == "live"
            (fb,) = doc["fallback"]
            assert fb["venue"] == "binance" and fb["simulated_symbols"] == ["BTC-USDT", "ETH-USDT"]
            assert fb["last_error"] == "connection refused", fb
            _, metrics = await get("/metrics")
            info = _metric(metrics, "sentrycoin_info")
            assert [dict(k)["mode"] for k in info] == ["mixed"]
            assert _metric(metrics, "sentrycoin_venues_simulated") == {(): 1.0}
            code, health = await get("/health")
            assert code == 200 and health["status"] == "degraded" and health["mode"] == "mixed"
            assert [(p["kind"], p["venue"]) for p in health["problems"]] == [("venue_simulated", "binance")]
            assert (await get("/health?strict=1"))[0] == 503
            snapshot = await _live_snapshot(http, base)
            assert snapshot["mode"] == "mixed" and [f["venue"] for f in snapshot["fallback"]] == ["binance"]
            # Alerts raised from the simulated books say so.
            await _wait(lambda: _alerts(get, "binance", "simulated"), 15, "a simulated Binance alert")
            # ...and the venue is still being probed (failed attempts counted).
            await _wait(lambda: _probes_at_least(status, 3), 15, "probe attempts")
            page = await _open_dashboard(stack, base) if os.path.exists(CHROMIUM) else None
            if page is not None:  # the banner names the venue on simulated data; the badge says MIXED
                banner = page.locator("#sim-banner")
                await expect(banner).to_be_visible(timeout=10_000)
                await expect(banner).to_contain_text("binance BTC-USDT, ETH-USDT unreachable", timeout=10_000)
                await expect(banner).to_contain_text("connection refused")
                await expect(page.locator("#mode-badge")).to_have_text("MIXED", timeout=10_000)
                await expect(page.locator(".card[data-key='binance|BTC-USDT'] .badge")).to_have_text("SIMULATED")
                await expect(page.locator(".card[data-key='okx|BTC-USDT'] .badge")).to_have_text("live")

            # -- 3. the venue answers again: back to live -------------------------------
            await forwarder.up()
            doc = await _wait(all_live, 30, "every book back on live data")
            assert doc["fallback"] == []
            b = books(doc)
            # The live books counted every failed connect while they were hidden.
            assert b[("binance", "BTC-USDT")]["reconnects"] >= 3
            assert b[("binance", "BTC-USDT")]["last_error"] is not None
            _, metrics = await get("/metrics")
            assert [dict(k)["mode"] for k in _metric(metrics, "sentrycoin_info")] == ["live"]
            assert _metric(metrics, "sentrycoin_venues_simulated") == {(): 0.0}
            code, health = await get("/health?strict=1")
            assert code == 200 and health["status"] == "ok" and health["problems"] == []
            assert monitor.fallback is not None and monitor.fallback.returns == 1 and not monitor.fallback.active
            if page is not None:  # the open page follows without a reload: no banner, live again
                await expect(page.locator("#sim-banner")).to_be_hidden(timeout=10_000)
                await expect(page.locator("#mode-badge")).to_have_text("live", timeout=10_000)
                await expect(page.locator(".card[data-key='binance|BTC-USDT'] .badge")).to_have_text("live")
            # No simulated alert ever carried another venue's name, nor a live label.
            _, alerts = await get("/alerts?limit=1000")
            assert {a["exchange"] for a in alerts["alerts"] if a["source"] == "simulated"} == {"binance"}
    finally:
        stop.set()
        await asyncio.wait_for(run, 15)
        await forwarder.down() if forwarder._server is not None else None
        await binance_emu.stop()
        await okx_emu.stop()


async def _ready(monitor: Monitor) -> bool:
    return monitor.http_port is not None


async def _alerts(get: Any, exchange: str, source: str) -> list[dict[str, Any]]:
    _, body = await get("/alerts?limit=1000")
    return [a for a in body["alerts"] if a["exchange"] == exchange and a["source"] == source]


async def _probes_at_least(status: Any, n: int) -> bool:
    fallback = (await status())["fallback"]
    return bool(fallback) and fallback[0]["probe_reconnects"] >= n


async def _live_snapshot(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    import json

    async with http.get(base + "/live") as resp:
        event = None
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "snapshot":
                return json.loads(line[6:])
    raise AssertionError("no snapshot event on /live")


async def _open_dashboard(stack: contextlib.AsyncExitStack, base: str) -> Any:
    """A headless Chromium page on the dashboard (closed with `stack`); None without playwright."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        return None
    pw = await stack.enter_async_context(async_playwright())
    browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    stack.push_async_callback(browser.close)
    page = await browser.new_page()
    await page.goto(base + "/")
    return page
