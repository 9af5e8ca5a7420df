# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The per-message part of a market: book, detector, validity and counters.

`sentrycoin.market.Market` subclasses `MarketCore` and adds everything that is
not per message (names, settings, alert events, logging).  Keeping the
bookkeeping that runs after every applied message in C lets a Cython feed
path (sentrycore.parse) finish a message without a Python call, and makes
`after_message` itself a C method for Python callers.
"""

import time

from libc.math cimport NAN, isnan
from libc.stdint cimport int64_t
from sentrycore.book cimport OrderBook
from sentrycore.detector cimport ImbalanceDetector

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec* tp)
    int CLOCK_MONOTONIC


cdef double _c_monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef object _py_monotonic = time.monotonic
# time.monotonic() is CLOCK_MONOTONIC on Linux (and other POSIX systems);
# /status compares stamps with it, so the C clock is used only where both
# agree, checked once at import.
cdef bint _use_c_clock = abs(_c_monotonic() - _py_monotonic()) < 0.01


cdef inline double _monotonic() noexcept:
    if _use_c_clock:
        return _c_monotonic()
    return _py_monotonic()


cdef class MarketCore:
    """Book + detector + per-message counters; see sentrycore/marketcore.pyi."""

    def __init__(self, OrderBook book not None, ImbalanceDetector detector not None):
        self.book = book
        self.detector = detector
        self.valid = False
        self.messages = 0
        self.crossed = 0
        self._has_event = False
        self._last_event_ms = 0
        self._last_update_monotonic = NAN

    cdef int c_after_message(self, int64_t event_ms) noexcept:
        self.messages += 1
        self._last_event_ms = event_ms
        self._has_event = True
        self._last_update_monotonic = _monotonic()
        if not self.valid:
            return 0
        if self.book.c_best_bid() >= self.book.c_best_ask():  # False when a side is empty (NaN)
            # No venue publishes a crossed book: ours lost a message.  Invalid now;
            # the handler sees `valid` drop without a reason and resyncs it.
            self.valid = False
            self.crossed += 1
            return 0
        return self.detector.c_evaluate(self.book.c_bid_volume(), self.book.c_ask_volume(), event_ms)

    cpdef after_message(self, int64_t event_ms):
        """Call once per applied message.  Runs the detector on a valid book
        and hands a firing severity to `self._emit(severity, event_ms)`.

        cpdef: a Cython caller gets a C call, yet a Python subclass that
        overrides this method (tests audit every message that way) is
        still the one called."""
        cdef int severity = self.c_after_message(event_ms)
        if severity:
            self._emit(severity, event_ms)

    def _emit(self, int severity, int64_t event_ms):
        raise NotImplementedError("a MarketCore subclass raises the alert")

    @property
    def last_event_ms(self):
        """Event time (Unix ms) of the last applied message; None before the first."""
        return self._last_event_ms if self._has_event else None

    @last_event_ms.setter
    def last_event_ms(self, value):
        if value is None:
            self._has_event = False
        else:
            self._last_event_ms = value
            self._has_event = True

    @property
    def last_update_monotonic(self):
        """time.monotonic() when the last message was applied; None before the first."""
        return None if isnan(self._last_update_monotonic) else self._last_update_monotonic

    @last_update_monotonic.setter
    def last_update_monotonic(self, value):
        self._last_update_monotonic = NAN if value is None else value
