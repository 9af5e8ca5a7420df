"""Alert delivery: SQLite outbox first, then Telegram, webhook and console.

Wiring (done by the monitor)::

    store = AlertStore(os.environ.get("SENTRY_DB") or default_db_path())
    tracker = OutcomeTracker(store, mid_price_of=monitor.mid_price_of)
    manager = AlertManager(store, build_notifiers(...), outcomes=tracker)
    await manager.start()
    market = Market(..., on_alert=manager.submit)
"""

from sentrycoin.alerts.base import DeliveryError, Notifier, RetryPolicy
from sentrycoin.alerts.console import ConsoleNotifier
from sentrycoin.alerts.factory import build_notifiers
from sentrycoin.alerts.manager import AlertManager, AlertStats
from sentrycoin.alerts.outcomes import OutcomeAccumulator, OutcomeTracker, compute_outcome
from sentrycoin.alerts.telegram import TelegramNotifier
from sentrycoin.alerts.webhook import WebhookNotifier
from sentrycoin.store import AlertRecord, AlertStore, default_db_path

__all__ = [
    "AlertManager", "AlertRecord", "AlertStats", "AlertStore", "ConsoleNotifier", "DeliveryError",
    "Notifier", "OutcomeAccumulator", "OutcomeTracker", "RetryPolicy", "TelegramNotifier",
    "WebhookNotifier", "build_notifiers", "compute_outcome", "default_db_path",
]
