"""Alert delivery: alerts in memory and a SQLite outbox (on its own threads), then
Telegram, webhook and console.  Guarantee and failure handling: docs/delivery.md.

Wiring (done by the monitor)::

    store = StoreWorker(os.environ.get("SENTRY_DB") or default_db_path(), retention_days=90)
    tracker = OutcomeTracker(store, mid_price_of=monitor.mid_price_of)
    manager = AlertManager(store, build_notifiers(...), outcomes=tracker)
    await manager.start()
    market = Market(..., on_alert=manager.submit)
"""

from sentrycoin.alerts.base import DeliveryError, Notifier, RetryPolicy
from sentrycoin.alerts.console import ConsoleNotifier
from sentrycoin.alerts.factory import build_notifiers
from sentrycoin.alerts.manager import AlertManager, AlertStats
from sentrycoin.alerts.outbox import StoreWorker
from sentrycoin.alerts.outcomes import OutcomeAccumulator, OutcomeTracker, compute_outcome
from sentrycoin.alerts.telegram import TelegramNotifier
from sentrycoin.alerts.webhook import WebhookNotifier
from sentrycoin.store import AlertRecord, AlertStore, default_db_path

__all__ = [
    "AlertManager", "AlertRecord", "AlertStats", "AlertStore", "ConsoleNotifier", "DeliveryError",
    "Notifier", "OutcomeAccumulator", "OutcomeTracker", "RetryPolicy", "StoreWorker", "TelegramNotifier",
    "WebhookNotifier", "build_notifiers", "compute_outcome", "default_db_path",
]
