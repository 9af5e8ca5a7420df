"""Alert test doubles (`make_event`, `RecordingNotifier`) and the crash-test child process.

`python -m tests.service.alert_doubles detect ...` runs a tiny monitor: a Market
whose book triggers the detector, wired to an AlertManager that sends to
Telegram at --api-url.  It prints `SUBMITTED <row id>` once the alert is in
the outbox and then waits (to be SIGKILLed).  `deliver` mode restarts on
the same database, prints `PENDING <n>`, lets the outbox sweep run and
prints `DELIVERED` once nothing is pending, then exits cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from sentrycoin.market import AlertEvent


def make_event(**overrides: Any) -> AlertEvent:
    fields: dict[str, Any] = dict(
        exchange="binance",
        symbol="BTC-USDT",
        source="live",
        severity="critical",
        ratio=5.25,
        danger_ratio=2.5,
        bid_volume=12.5,
        ask_volume=65.625,
        best_bid=97123.4,
        best_ask=97123.5,
        depth=50,
        event_ms=1_764_145_310_123,  # 2025-11-26T08:21:50.123Z
    )
    fields.update(overrides)
    return AlertEvent(**fields)


async def _child_main(a: argparse.Namespace) -> None:
    from sentrycoin.alerts import AlertManager, RetryPolicy, TelegramNotifier
    from sentrycoin.market import DetectorSettings, Market
    from sentrycoin.store import AlertStore

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    store = AlertStore(a.db)
    tg = TelegramNotifier(a.token, a.chat, api_url=a.api_url, request_timeout_s=30.0, min_interval_s=0.0,
                          retry=RetryPolicy(base_s=0.05, max_s=0.2))
    manager = AlertManager(store, [tg])
    if a.mode == "detect":
        await manager.start()
        market = Market("binance", "ETH-USDT", on_alert=manager.submit, settings=DetectorSettings(danger_ratio=2.5))
        market.book.load_snapshot([[3000.0, 2.0]], [[3000.5, 9.0]])
        market.mark_valid()
        market.after_message(1_764_145_310_123)
        await manager.store.flush()  # the writer thread committed the outbox row
        ids = [r["id"] for r in store.recent(limit=5)]
        print(f"SUBMITTED {ids[0] if ids else 'none'}", flush=True)
        await asyncio.Event().wait()  # the parent kills us here
    else:
        print(f"PENDING {store.pending_count()}", flush=True)
        await manager.start()
        while store.pending_count() or manager.store.queued:
            await asyncio.sleep(0.01)
        print("DELIVERED", flush=True)
        await manager.stop()
        store.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["detect", "deliver"])
    ap.add_argument("--db", required=True)
    ap.add_argument("--api-url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--chat", default="-1001234")
    asyncio.run(_child_main(ap.parse_args(argv)))



# -- test doubles (kept below main() so the child stays importable alone) ----

from sentrycoin.alerts.base import DeliveryError, Notifier, RetryPolicy  # noqa: E402
from sentrycoin.store import AlertRecord  # noqa: E402


class RecordingNotifier(Notifier):
    """Records what it was asked to send; can be gated (slow) or scripted to fail."""

    def __init__(self, name: str = "rec", *, gate: asyncio.Event | None = None,
                 failures: list[DeliveryError | None] | None = None, retry: RetryPolicy | None = None,
                 max_batch: int = 1) -> None:
        self.name = name
        self.max_batch = max_batch
        self.batches: list[list[str]] = []
        self.gate = gate
        self.failures = list(failures or [])
        self.retry = retry or RetryPolicy(base_s=0.01, max_s=0.02)
        self.sent: list[AlertRecord] = []
        self.attempts = 0

    async def send(self, alert: AlertRecord) -> None:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:  # None in the script means "this attempt succeeds"
            failure = self.failures.pop(0)
            if failure is not None:
                raise failure
        self.sent.append(alert)
        self.batches.append([alert.alert_key])

    async def send_batch(self, alerts: list[AlertRecord]) -> None:
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:  # None in the script means "this attempt succeeds"
            failure = self.failures.pop(0)
            if failure is not None:
                raise failure
        self.sent.extend(alerts)
        self.batches.append([a.alert_key for a in alerts])


if __name__ == "__main__":
    main()
