"""Type stubs for sentrycore.detector (the Cython ImbalanceDetector)."""

from typing import Literal

from sentrycore.book import OrderBook

SEVERITY_NAMES: tuple[str, str, str, str]

class ImbalanceDetector:
    """Turns (bid volume, ask volume, time) into alerts.  O(1) per
    evaluation, no allocation unless it fires.  Severity codes: 0 none,
    1 warning, 2 critical, 3 extreme (names in SEVERITY_NAMES).

    Every `now_ms` is on the caller's local clock (MarketCore: monotonic ms
    live, the recorded or simulated receive time in replay and simulation),
    never the venue's event time: cooldown, persistence and re-arm run on it.
    With `realert_on_escalation`, a reading of a higher severity tier than
    the last alert's alerts even inside the cooldown (disarmed or re-armed),
    once per tier; see detector.pyx for all the rules."""

    danger_ratio: float
    rearm_ratio: float
    min_persistence_ms: int
    cooldown_s: float
    critical_multiple: float
    extreme_multiple: float
    realert_on_escalation: bool
    min_volume: float
    alerts: int

    def __init__(
        self,
        danger_ratio: float = 2.5,
        rearm_ratio: float | None = None,
        min_persistence_ms: int = 0,
        cooldown_s: float = 300.0,
        critical_multiple: float = 2.0,
        extreme_multiple: float = 4.0,
        realert_on_escalation: bool = True,
        min_volume: float = 0.0,
    ) -> None: ...
    def evaluate(self, book: OrderBook, now_ms: int) -> int:
        """Evaluate the book at now_ms (local clock); the severity code, 0 = no alert."""
    def evaluate_volumes(self, bid_volume: float, ask_volume: float, now_ms: int) -> int: ...
    def severity_of(self, ratio: float) -> int: ...
    def reset_signal(self) -> None:
        """Forget persistence timers (not alert history): call when the book may be wrong."""
    def reset(self) -> None: ...
    def state(self, now_ms: int) -> Literal["armed", "alerting", "cooldown"]:
        """At now_ms on the same clock as evaluate's."""
    @property
    def armed(self) -> bool: ...
    @property
    def last_alert_ms(self) -> int | None:
        """Local-clock time of the last alert (not a venue time); None before one."""
    @property
    def last_severity(self) -> int: ...
    @property
    def last_ratio(self) -> float: ...
