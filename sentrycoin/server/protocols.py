"""What the HTTP surface reads from the running monitor, as protocols.

`sentrycoin.monitor.Monitor` provides them (mypy checks that where the monitor
hands itself to `create_app`); tests pass small fakes (tests/service/conftest.py).
They live here, not in app.py, so that status.py, live.py and metrics.py can
name them without importing the app that imports them.

Members are read-only properties: the server never assigns them, and a plain
attribute (or a narrower type, such as the real `AlertManager`) satisfies a
read-only member.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sentrycoin.market import Market


class FeedCountersLike(Protocol):
    @property
    def frames(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def decode_errors(self) -> int: ...


class AlertStoreLike(Protocol):
    """sentrycoin.alerts.outbox.StoreWorker: `read(op)` runs op(AlertStore) off the loop."""

    async def read(self, op: Callable[[Any], Any]) -> Any: ...


class AlertManagerLike(Protocol):
    # `.stats` fields read by /metrics: submitted, queue_dropped, by_severity (dict),
    # delivered / failed (dicts per notifier), queue_depth; attributes or dict keys.
    # Optional: store_problem() / delivery_problem() -> str | None, read by /health.
    @property
    def store(self) -> AlertStoreLike | None: ...
    @property
    def stats(self) -> Any: ...


class MonitorLike(Protocol):
    """The minimum the HTTP surface reads; sentrycoin.monitor.Monitor provides it.

    Optional: `processing_time` (a metrics.ProcessingTimeHistogram) feeds the
    sentrycoin_message_processing_seconds histogram; absent, it stays empty.
    `health_problems()` -> [{"kind", "message", ...}] adds the monitor's own
    problems to /health; `fallback_status()` -> [{"venue", ...}] lists the
    venues MOCK_FALLBACK shows on simulated data (/status, dashboard banner).
    """

    @property
    def mode(self) -> str: ...  # live | simulated | mixed (MOCK_FALLBACK) | replay
    @property
    def markets(self) -> list[Market]: ...
    @property
    def started_monotonic(self) -> float: ...  # time.monotonic() at start
    @property
    def stale_after_s(self) -> float: ...  # /health: a book older than this is stale
    @property
    def version(self) -> str: ...
    @property
    def alert_manager(self) -> AlertManagerLike | None: ...

    def settings_redacted(self) -> dict[str, Any]: ...

    def feed_counters(self) -> Mapping[str, FeedCountersLike]: ...
