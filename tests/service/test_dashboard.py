"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright; Playwright's own browser downloads are never used).

The test drives real `Market` objects the way a feed does (load a book, call
`after_message`); the page must follow through the server's SSE push, and a
crash-like book must reach the alert log by the same path as in production
(detector -> Market.last_alert -> live hub -> page).

Screenshots go to test-artifacts/; set SENTRYCOIN_UPDATE_SCREENSHOT=1 to also
refresh docs/dashboard.png for the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import time
from pathlib import Path

import numpy as np
import pytest

from sentrycoin.market import Market
from tests.service.conftest import SrvMonitor

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "dash-board-token"

# Chromium as root in a container: no sandbox; nothing that phones home.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium) - no browser to test the dashboard",
                allow_module_level=True)
_pw = pytest.importorskip("playwright.async_api", reason="pip package 'playwright' is not installed")
async_playwright, expect = _pw.async_playwright, _pw.expect


def _shape_book(market: Market, mid: float, step: float, bid_total: float, ask_total: float,
                rng: random.Random, levels: int = 25) -> None:
    """A plausible book: `levels` levels per side whose sizes sum to the totals."""
    def side(total: float, sign: float) -> np.ndarray:
        w = np.array([0.6 + rng.random() + 0.04 * i for i in range(levels)])
        qty = total * w / w.sum()
        px = mid + sign * (step / 2 + step * np.arange(levels))
        return np.column_stack([px, qty])

    market.book.load_snapshot(side(bid_total, -1.0), side(ask_total, 1.0))
    market.connected = True
    market.mark_valid()
    market.after_message(int(time.time() * 1000))


async def _drive(books: dict[str, tuple[Market, float, float]], targets: dict[str, float],
                 stop: asyncio.Event) -> None:
    """Random-walk each book's ratio around its target, 10 messages a second."""
    rng = random.Random(7)
    ratios = dict(targets)
    while not stop.is_set():
        for key, (market, mid, step) in books.items():
            r = ratios[key] + rng.gauss(0, 0.06) + 0.15 * (targets[key] - ratios[key])
            ratios[key] = min(max(r, 0.3), 2.3)
            bid_total = 40.0 + rng.random() * 4
            mid = mid * (1 + rng.gauss(0, 0.0002))
            books[key] = (market, mid, step)
            _shape_book(market, mid, step, bid_total, bid_total * ratios[key], rng)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def test_dashboard_live_in_chromium(srv_serve, srv_make_market, srv_alert_manager):
    manager = srv_alert_manager
    btc = srv_make_market("binance", "BTC-USDT", on_alert=manager.submit)
    eth = srv_make_market("coinbase", "ETH-USD", on_alert=manager.submit)
    sol = srv_make_market("okx", "SOL-USDT", on_alert=manager.submit)
    xbt = srv_make_market("kraken", "XBT-USD", on_alert=manager.submit)  # never gets a snapshot
    monitor = SrvMonitor([btc, eth, sol, xbt], mode="simulated", alert_manager=manager)
    books = {"btc": (btc, 97_250.0, 0.5), "eth": (eth, 3_412.0, 0.05), "sol": (sol, 187.3, 0.01)}
    targets = {"btc": 1.1, "eth": 0.8, "sol": 1.6}
    rng = random.Random(1)
    for market, mid, step in books.values():
        _shape_book(market, mid, step, 40.0, 44.0, rng)
    base = await srv_serve(monitor, token=TOKEN, tick_s=0.2, history_s=12.0)

    stop = asyncio.Event()
    driver = asyncio.get_running_loop().create_task(_drive(books, targets, stop))
    errors: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1360, "height": 900})
                page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}")
                        if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))

                # Someone with the token opens /?token=...; the server swaps it for a cookie.
                await page.goto(f"{base}/?token={TOKEN}")
                assert page.url == f"{base}/"
                await expect(page.locator(".card")).to_have_count(4, timeout=10_000)
                keys = await page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.key)")
                assert sorted(keys) == ["binance|BTC-USDT", "coinbase|ETH-USD", "kraken|XBT-USD", "okx|SOL-USDT"]
                # A book without a snapshot renders its nulls as dashes and says why it is paused.
                xbt_card = ".card[data-key='kraken|XBT-USD']"
                assert await page.inner_text(f"{xbt_card} .ratio") == "—"
                assert "invalid" in (await page.get_attribute(xbt_card, "class") or "")
                assert "waiting for snapshot" in await page.inner_text(f"{xbt_card} .invalid-note")
                assert await page.inner_text("#mode-badge") == "SIMULATED"
                assert await page.is_visible("#sim-banner")
                assert await page.inner_text(".card[data-key='okx|SOL-USDT'] .badge") == "SIMULATED"

                # The ratio on the page follows the book.
                stop.set()
                await driver
                _shape_book(btc, 97_250.0, 0.5, 50.0, 90.0, rng)  # ratio 1.80
                ratio_sel = ".card[data-key='binance|BTC-USDT'] .ratio"
                await expect(page.locator(ratio_sel)).to_have_text("1.80", timeout=5_000)
                _shape_book(btc, 97_250.0, 0.5, 50.0, 60.0, rng)  # ratio 1.20
                await expect(page.locator(ratio_sel)).to_have_text("1.20", timeout=5_000)
                updates_before = await page.evaluate("window.sentrycoin.updates")

                # Let the sparklines fill a few seconds, then crash BTC's book: asks pile up.
                stop.clear()
                driver = asyncio.get_running_loop().create_task(_drive(books, targets, stop))
                await asyncio.sleep(7.0)
                targets["btc"] = 2.0
                await asyncio.sleep(1.5)
                stop.set()
                await driver
                assert await page.locator("li.alert").count() == 0
                _shape_book(btc, 97_150.0, 0.5, 30.0, 102.0, rng)  # ratio 3.4 >= 2.5
                assert manager.stats.submitted == 1 and manager.stats.by_severity == {"warning": 1}
                alert = page.locator("li.alert[data-key='binance|BTC-USDT']")
                await alert.wait_for(timeout=5_000)
                text = await alert.inner_text()
                assert "BTC-USDT" in text and "warning" in text.lower() and "3.40" in text
                await expect(page.locator(".card[data-key='binance|BTC-USDT'] .pill.state")).to_have_text(
                    "alerting", timeout=5_000)
                assert "level-danger" in (await page.get_attribute(
                    ".card[data-key='binance|BTC-USDT']", "class") or "")
                # Pushes are aggregated per tick, not per message: ~5/s at tick_s=0.2.
                updates = await page.evaluate("window.sentrycoin.updates") - updates_before
                assert 0 < updates < 100

                await page.wait_for_timeout(400)
                shot = await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
                if os.environ.get("SENTRYCOIN_UPDATE_SCREENSHOT") == "1":
                    (ROOT / "docs").mkdir(exist_ok=True)
                    (ROOT / "docs" / "dashboard.png").write_bytes(shot)
                await page.emulate_media(color_scheme="dark")
                await page.wait_for_timeout(400)
                await page.screenshot(path=str(ARTIFACTS / "dashboard-dark.png"), full_page=True)

                # What the price did afterwards (filled in by the outcome tracker over 15 min):
                # shown on the alert and summarised above the log.
                await manager.store.flush()
                (row,) = await manager.store.read(lambda s: s.recent(limit=1))
                ref = 97_150.0
                await manager.store.run_write(lambda s: s.save_outcome(row["id"], {
                    "complete": True, "start_ms": row["event_ms"], "ref_mid": ref, "samples": 900,
                    "mid_60s": ref * 0.99, "mid_300s": ref * 0.975, "max_drop_5m_pct": 2.5,
                    "lead_to_low_5m_s": 240.0, "max_drop_pct": 3.1, "lead_to_low_s": 420.0,
                }))
                # A reload keeps the alert (from the store via /alerts, and the live snapshot), once.
                await page.reload()
                await expect(page.locator(".card")).to_have_count(4, timeout=10_000)
                await alert.wait_for(timeout=5_000)
                await page.wait_for_timeout(500)
                assert await page.locator("li.alert").count() == 1
                await expect(alert.locator(".alert-outcome")).to_have_text(
                    "after: 1m −1.00% · 5m −2.50% · low −3.10% after 7m 0s", timeout=5_000)
                summary = await page.inner_text("#outcome-summary")
                assert "After 1 alerts" in summary and "100% saw a ≥1% drop" in summary, summary
            finally:
                await browser.close()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await driver
    assert not errors, errors


async def test_dashboard_without_token_asks_for_it(srv_serve, srv_make_market):
    base = await srv_serve(SrvMonitor([srv_make_market()]), token=TOKEN)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            resp = await page.goto(f"{base}/")
            assert resp is not None and resp.status == 401
            await page.fill("input[name=token]", TOKEN)
            await page.click("button[type=submit]")
            await page.wait_for_selector(".card[data-key='binance|BTC-USDT']", timeout=10_000)
            assert page.url == f"{base}/"
        finally:
            await browser.close()


class _FallbackMonitor(SrvMonitor):
    """A monitor with one venue on the simulator (what MOCK_FALLBACK reports)."""

    def __init__(self, markets: list[Market], fallback: list[dict], **kw) -> None:  # noqa: ANN003
        super().__init__(markets, **kw)
        self.fallback = fallback

    def fallback_status(self) -> list[dict]:
        return self.fallback


async def test_dashboard_shows_why_a_book_is_blind_and_which_venues_are_simulated(srv_serve, srv_make_market):
    from tests.service.conftest import srv_load_book

    ok = srv_make_market("kraken", "XBT-USD", source="live")
    blind = srv_make_market("okx", "ETH-USDT", source="live")
    twin = srv_make_market("binance", "BTC-USDT", source="simulated")
    for m in (ok, blind, twin):
        srv_load_book(m, 1.0, 1.0)
    blind.invalidate("snapshot timeout")
    blind.connected = False
    assert blind.invalid_since_monotonic is not None
    blind.invalid_since_monotonic -= 95.0  # invalid for 1m 35s
    fallback = [{"venue": "binance", "since": "2026-12-07T02:00:05.000Z", "simulated_symbols": ["BTC-USDT"],
                 "live_symbols": [], "last_error": "DNS failure", "probe_reconnects": 12}]
    monitor = _FallbackMonitor([ok, blind, twin], fallback, mode="mixed")
    base = await srv_serve(monitor, tick_s=0.2)
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1360, "height": 900})
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            await page.goto(f"{base}/")
            await expect(page.locator(".card")).to_have_count(3, timeout=10_000)

            # The banner names the venue on generated data, why, and since when.
            banner = page.locator("#sim-banner")
            await expect(banner).to_be_visible()
            await expect(banner).to_contain_text("binance BTC-USDT unreachable since 02:00:05 UTC (DNS failure)")
            await expect(page.locator("#mode-badge")).to_have_text("MIXED")

            # The blind book: reason and duration on the card, nothing green on it.
            card = ".card[data-key='okx|ETH-USDT']"
            await expect(page.locator(f"{card} .invalid-note")).to_have_text(
                re.compile(r"^Not in sync for 1m 3\ds: snapshot timeout — alerts paused$"))
            await expect(page.locator(f"{card} .pill.state")).to_have_text("paused")
            assert "state-armed" not in (await page.get_attribute(f"{card} .pill.state", "class") or "")
            assert "down" in (await page.get_attribute(f"{card} .badge", "class") or "")
            await expect(page.locator(f"{card} .pill.sync")).to_have_text("disconnected")
            green = await page.evaluate("getComputedStyle(document.querySelector('.card[data-key=\"kraken|XBT-USD\"] "
                                        ".pill.state')).color")
            for sel in (f"{card} .badge", f"{card} .pill.state"):
                color = await page.evaluate(f"getComputedStyle(document.querySelector(\"{sel}\")).color")
                assert color != green, f"{sel} is green ({color}) on a blind book"
            # The healthy live book next to it is armed and live (green).
            await expect(page.locator(".card[data-key='kraken|XBT-USD'] .pill.state")).to_have_text("armed")
            assert "down" not in (await page.get_attribute(".card[data-key='kraken|XBT-USD'] .badge", "class") or "")

            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-blind.png"), full_page=True)

            # The book heals and the venue comes back: the page follows without a reload.
            srv_load_book(blind, 1.0, 1.0)
            monitor.fallback = []
            monitor.mode = "live"
            monitor.markets[2] = srv_make_market("binance", "BTC-USDT", source="live")
            srv_load_book(monitor.markets[2], 1.0, 1.0)
            await expect(page.locator(f"{card} .invalid-note")).to_have_text("", timeout=5_000)
            await expect(page.locator(f"{card} .pill.state")).to_have_text("armed")
            await expect(banner).to_be_hidden(timeout=5_000)
            await expect(page.locator("#mode-badge")).to_have_text("live")
            await expect(page.locator(".card[data-key='binance|BTC-USDT'] .badge")).to_have_text("live")
        finally:
            await browser.close()
    assert not errors, errors
