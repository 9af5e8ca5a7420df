# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Imbalance detector: turns a stream of (bid volume, ask volume, time) into alerts.

One detector watches one book.  Each evaluation is O(1) and allocates nothing
unless it fires.  Time is always passed in by the caller, in ms on the
caller's local clock: `MarketCore` passes the machine's monotonic clock live
and the recorded (or simulated) receive time in a replay, never the venue's
event time, so one badly stamped event cannot start a day-long cooldown, and
a replay makes exactly the decisions the live run made.

Rules, in order:
  * liquidity floor: when both volumes are at or below `min_volume` there is no
    signal (an empty or illiquid book is not a crash);
  * the ratio ask/bid must be >= danger_ratio continuously for
    min_persistence_ms before an alert fires;
  * after an alert the detector is disarmed until the ratio falls below
    rearm_ratio (hysteresis: one crash gives one alert, not a flicker);
  * no alert within cooldown_s of the previous one, even when re-armed...
  * ...except an escalation (realert_on_escalation): while disarmed or
    inside the cooldown, a reading of a higher severity tier than the last
    alert's alerts again, after the same persistence; each tier at most once
    per episode, since the alert raises the tier to beat.  (Before, only a
    disarmed detector checked for escalation: one that had re-armed inside
    the cooldown suppressed everything, which hid a ratio of 79.6 three
    minutes after a 2.6 warning.)
  * a clock that steps back (a replay's recorded receive times) restarts a
    running cooldown or persistence from the new time instead of stretching
    it by the step.
"""

from libc.math cimport isnan, INFINITY, NAN

SEVERITY_NAMES = ("none", "warning", "critical", "extreme")


cdef class ImbalanceDetector:

    def __init__(self, double danger_ratio=2.5, rearm_ratio=None, int64_t min_persistence_ms=0,
                 double cooldown_s=300.0, double critical_multiple=2.0, double extreme_multiple=4.0,
                 bint realert_on_escalation=True, double min_volume=0.0):
        cdef double rearm
        if not (danger_ratio > 0.0 and danger_ratio < INFINITY):
            raise ValueError(f"danger_ratio must be finite and > 0, got {danger_ratio!r}")
        rearm = 0.9 * danger_ratio if rearm_ratio is None else float(rearm_ratio)
        if not (rearm > 0.0 and rearm <= danger_ratio):
            raise ValueError(f"rearm_ratio must be in (0, danger_ratio], got {rearm!r}")
        if min_persistence_ms < 0:
            raise ValueError(f"min_persistence_ms must be >= 0, got {min_persistence_ms}")
        if not (cooldown_s >= 0.0 and cooldown_s < INFINITY):
            raise ValueError(f"cooldown_s must be finite and >= 0, got {cooldown_s!r}")
        if not (1.0 <= critical_multiple <= extreme_multiple < INFINITY):
            raise ValueError("severity multiples must satisfy 1 <= critical_multiple <= extreme_multiple, "
                             f"got {critical_multiple!r}, {extreme_multiple!r}")
        if not (min_volume >= 0.0 and min_volume < INFINITY):
            raise ValueError(f"min_volume must be finite and >= 0, got {min_volume!r}")
        self.danger_ratio = danger_ratio
        self.rearm_ratio = rearm
        self.min_persistence_ms = min_persistence_ms
        self.cooldown_s = cooldown_s
        self._cooldown_ms = <int64_t>(cooldown_s * 1000.0)
        self.critical_multiple = critical_multiple
        self.extreme_multiple = extreme_multiple
        self.realert_on_escalation = realert_on_escalation
        self.min_volume = min_volume
        self.reset()

    # ---- C level ---------------------------------------------------------

    cdef int c_severity_of(self, double ratio) noexcept nogil:
        if not (ratio >= self.danger_ratio):  # also False for NaN
            return SEVERITY_NONE
        if ratio >= self.danger_ratio * self.extreme_multiple:
            return SEVERITY_EXTREME
        if ratio >= self.danger_ratio * self.critical_multiple:
            return SEVERITY_CRITICAL
        return SEVERITY_WARNING

    cdef void c_reset_signal(self) noexcept nogil:
        # Forget any partial evidence (persistence timers) but keep the alert
        # history: used when the book becomes unreliable.
        self._above = False
        self._pending_severity = SEVERITY_NONE

    cdef int c_evaluate(self, double bid_volume, double ask_volume, int64_t now_ms) noexcept nogil:
        cdef double ratio
        cdef int severity
        if bid_volume > 0.0:
            ratio = ask_volume / bid_volume
        elif ask_volume > 0.0:
            ratio = INFINITY
        else:
            ratio = NAN
        self._last_ratio = ratio
        if bid_volume <= self.min_volume and ask_volume <= self.min_volume:
            # Too thin to mean anything: no signal (and no evidence to re-arm).
            self.c_reset_signal()
            return SEVERITY_NONE
        severity = self.c_severity_of(ratio)
        if severity == SEVERITY_NONE:
            self._above = False
            self._pending_severity = SEVERITY_NONE
            if not self._armed and ratio < self.rearm_ratio:
                self._armed = True
            return SEVERITY_NONE
        if not self._above or now_ms < self._above_since_ms:
            self._above = True
            self._above_since_ms = now_ms
        if self._armed and not self._in_cooldown(now_ms):
            if now_ms - self._above_since_ms < self.min_persistence_ms:
                return SEVERITY_NONE
            return self._fire(severity, now_ms)
        # Disarmed, or re-armed inside the cooldown: only an escalation past
        # the last alert's tier can alert.
        if not self.realert_on_escalation or severity <= self._last_severity:
            self._pending_severity = SEVERITY_NONE
            return SEVERITY_NONE
        # _pending_severity is the lowest severity seen since the rise began:
        # the level that has actually persisted.
        if self._pending_severity == SEVERITY_NONE or now_ms < self._pending_since_ms:
            self._pending_severity = severity
            self._pending_since_ms = now_ms
        elif severity < self._pending_severity:
            self._pending_severity = severity
        if now_ms - self._pending_since_ms < self.min_persistence_ms:
            return SEVERITY_NONE
        return self._fire(self._pending_severity, now_ms)

    cdef bint _in_cooldown(self, int64_t now_ms) noexcept nogil:
        if not self._has_alerted:
            return False
        if now_ms < self._last_alert_ms:
            # The clock stepped back: the cooldown runs from now, so a step
            # can never silence the market for longer than one cooldown.
            self._last_alert_ms = now_ms
        return now_ms - self._last_alert_ms < self._cooldown_ms

    cdef int _fire(self, int severity, int64_t now_ms) noexcept nogil:
        self._armed = False
        self._has_alerted = True
        self._last_alert_ms = now_ms
        self._last_severity = severity
        self._pending_severity = SEVERITY_NONE
        self.alerts += 1
        return severity

    # ---- Python level ----------------------------------------------------

    def evaluate(self, OrderBook book not None, int64_t now_ms):
        """Evaluate `book` at `now_ms` (the caller's clock); returns a severity code (0 = no alert)."""
        return self.c_evaluate(book.c_bid_volume(), book.c_ask_volume(), now_ms)

    def evaluate_volumes(self, double bid_volume, double ask_volume, int64_t now_ms):
        """Same as evaluate() for volumes computed elsewhere."""
        return self.c_evaluate(bid_volume, ask_volume, now_ms)

    def severity_of(self, double ratio):
        return self.c_severity_of(ratio)

    def reset_signal(self):
        self.c_reset_signal()

    def reset(self):
        """Back to the initial state: armed, no alert history."""
        self._armed = True
        self._above = False
        self._above_since_ms = 0
        self._pending_severity = SEVERITY_NONE
        self._pending_since_ms = 0
        self._has_alerted = False
        self._last_alert_ms = 0
        self._last_severity = SEVERITY_NONE
        self._last_ratio = NAN
        self.alerts = 0

    def state(self, int64_t now_ms):
        """'alerting' from an alert until re-armed, then 'cooldown' until the
        cooldown has run out, else 'armed'."""
        if not self._armed:
            return "alerting"
        if self._has_alerted and now_ms - self._last_alert_ms < self._cooldown_ms:
            return "cooldown"
        return "armed"

    @property
    def armed(self):
        return bool(self._armed)

    @property
    def last_alert_ms(self):
        return self._last_alert_ms if self._has_alerted else None

    @property
    def last_severity(self):
        return self._last_severity

    @property
    def last_ratio(self):
        return self._last_ratio

    def __repr__(self):
        return (f"ImbalanceDetector(danger_ratio={self.danger_ratio}, rearm_ratio={self.rearm_ratio}, "
                f"min_persistence_ms={self.min_persistence_ms}, cooldown_s={self.cooldown_s}, "
                f"alerts={self.alerts})")
