# cython: language_level=3
# C-level interface of sentrycore.ImbalanceDetector for other Cython code.
#
#     from sentrycore.detector cimport ImbalanceDetector
#     severity = detector.c_evaluate(bid_volume, ask_volume, now_ms)   # nogil
#
# now_ms is the caller's local clock (MarketCore: monotonic live, the
# recorded receive time in a replay), never the venue's event time.
#
# Severity codes: 0 = no alert, 1 = warning, 2 = critical, 3 = extreme.

from libc.stdint cimport int64_t
from sentrycore.book cimport OrderBook

cdef enum:
    SEVERITY_NONE = 0
    SEVERITY_WARNING = 1
    SEVERITY_CRITICAL = 2
    SEVERITY_EXTREME = 3


cdef class ImbalanceDetector:
    # Settings (read-only from Python).
    cdef readonly double danger_ratio
    cdef readonly double rearm_ratio
    cdef readonly int64_t min_persistence_ms
    cdef readonly double cooldown_s
    cdef readonly double critical_multiple
    cdef readonly double extreme_multiple
    cdef readonly bint realert_on_escalation
    cdef readonly double min_volume
    cdef int64_t _cooldown_ms

    # State.
    cdef bint _armed              # False from an alert until the ratio falls below rearm_ratio
    cdef bint _above              # the ratio is currently at or above danger_ratio
    cdef int64_t _above_since_ms  # start of the current run above danger_ratio
    cdef int _pending_severity    # severity above the last alert's, seen continuously since...
    cdef int64_t _pending_since_ms
    cdef bint _has_alerted
    cdef int64_t _last_alert_ms
    cdef int _last_severity
    cdef double _last_ratio
    cdef readonly Py_ssize_t alerts

    cdef int c_severity_of(self, double ratio) noexcept nogil
    cdef int c_evaluate(self, double bid_volume, double ask_volume, int64_t now_ms) noexcept nogil
    cdef void c_reset_signal(self) noexcept nogil
    cdef int _fire(self, int severity, int64_t now_ms) noexcept nogil
    cdef bint _in_cooldown(self, int64_t now_ms) noexcept nogil
