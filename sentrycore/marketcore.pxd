# cython: language_level=3
# C-level interface of sentrycore.MarketCore for other Cython code.
#
#     from sentrycore.marketcore cimport MarketCore
#     market.after_message(event_ms)   # book applied: count, stamp, detect, emit

from libc.stdint cimport int64_t
from sentrycore.book cimport OrderBook
from sentrycore.detector cimport ImbalanceDetector


cdef class SourceClock:
    # The source's "now" in Unix ms: a replay's recorded receive time, the
    # simulated market's receive time.  The source sets it before each frame.
    cdef public int64_t now_ms


cdef class MarketCore:
    cdef public OrderBook book
    cdef public ImbalanceDetector detector
    # False while the book may be out of sync: no detection then.
    cdef public bint valid
    # Book messages applied since start.
    cdef public long long messages
    # Messages after which the book was crossed (best bid >= best ask): each
    # one made the book invalid; the feed handler then resyncs it.
    cdef public long long crossed
    # Applied messages whose event time was more than clock_skew_ms away from
    # their receive time (counted, never used for timing).
    cdef public long long clock_skew
    cdef public int64_t clock_skew_ms
    # None: live (decisions on the monotonic clock, receive time from the
    # wall clock); else the source's clock for both.
    cdef public SourceClock clock
    # The detector reads the book's band notionals (book.band_bps > 0)
    # instead of its top-N volumes.  Fixed at construction.
    cdef readonly bint band_signal
    # The last message was skewed: `_on_clock_skew` is called only when a run
    # of skewed messages starts, so a venue whose clock is off stays in C.
    cdef bint _skewed
    cdef int64_t _last_event_ms
    cdef bint _has_event
    # NaN until the first message.
    cdef double _last_update_monotonic

    # Per applied message: counts it, stamps the event time and the
    # monotonic clock, counts a skewed event time, and runs the detector on
    # the local clock when the book is valid.  Returns the severity code
    # (0 = no alert); raising the alert is the caller's job (Python:
    # `after_message` calls `self._emit`).
    cdef int c_after_message(self, int64_t event_ms) noexcept
    # c_after_message, then `self._emit(severity, event_ms)` on an alert.
    cpdef after_message(self, int64_t event_ms)
    # The detector's "now" (ms): the source clock's, else monotonic ms.
    cdef int64_t c_clock_ms(self) noexcept
