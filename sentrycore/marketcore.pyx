# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The per-message part of a market: book, detector, validity and counters.

`sentrycoin.market.Market` subclasses `MarketCore` and adds everything that is
not per message (names, settings, alert events, logging).  Keeping the
bookkeeping that runs after every applied message in C lets a Cython feed
path (sentrycore.parse) finish a message without a Python call, and makes
`after_message` itself a C method for Python callers.

Clocks.  The venue's event time is data: it is stamped (`last_event_ms`) and
handed to the alert, but never decides anything, since one event stamped a
day ahead would otherwise start a day-long cooldown.  The detector runs on
the local clock, which is one of two:

* live (`clock` is None): the machine's monotonic clock, in ms;
* a `SourceClock` the frame source sets before each frame: a replay's
  recorded receive time, the simulated market's receive time.  A replay thus
  decides exactly as the run it recorded, however fast it runs.

Clock skew: an event time more than `clock_skew_ms` away from the message's
receive time (live: the wall clock when the message is finished, which is the
receive time up to processing delay; otherwise the source clock) adds one to
`clock_skew`, and the first of a run of such messages calls
`_on_clock_skew(event_ms, recv_ms)` (Market logs it).  The live wall clock is
derived from the monotonic reading with an offset re-read at most once a
second, so checking costs no clock read.

Signal.  The detector reads the book's top-N volumes (bid_volume,
ask_volume), or with `band_signal` the book's band notionals (price x qty
within `book.band_bps` of the mid, kept incrementally by the book): the same
ratio test, persistence and cooldown, on the other pair of numbers.
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
    int CLOCK_REALTIME

#: Default `clock_skew_ms` (the CLOCK_SKEW_S setting's default, 5 s).
DEFAULT_CLOCK_SKEW_MS = 5000
# How long a wall-clock offset is trusted before it is read again: a step of
# the wall clock (NTP) reaches the skew check within this.
cdef int64_t WALL_OFFSET_MAX_AGE_MS = 1000


cdef double _c_clock(int clk_id) noexcept nogil:
    cdef timespec ts
    clock_gettime(clk_id, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef object _py_monotonic = time.monotonic
cdef object _py_time = time.time
# time.monotonic() is CLOCK_MONOTONIC on Linux (and other POSIX systems);
# /status compares stamps with it, so the C clock is used only where both
# agree, checked once at import.
cdef bint _use_c_clock = abs(_c_clock(CLOCK_MONOTONIC) - _py_monotonic()) < 0.01


cdef inline double _monotonic() noexcept:
    if _use_c_clock:
        return _c_clock(CLOCK_MONOTONIC)
    return _py_monotonic()


cdef double _wall() noexcept:
    if _use_c_clock:
        return _c_clock(CLOCK_REALTIME)
    return _py_time()


# wall ms = monotonic ms + _wall_offset_ms, as read at monotonic ms _wall_offset_at_ms.
cdef int64_t _wall_offset_ms = 0
cdef int64_t _wall_offset_at_ms = -(1 << 62)


cdef inline int64_t _wall_ms(int64_t mono_ms) noexcept:
    global _wall_offset_ms, _wall_offset_at_ms
    if mono_ms - _wall_offset_at_ms >= WALL_OFFSET_MAX_AGE_MS:
        _wall_offset_ms = <int64_t>(_wall() * 1000.0) - mono_ms
        _wall_offset_at_ms = mono_ms
    return mono_ms + _wall_offset_ms


cdef class SourceClock:
    """A clock the frame source sets: `now_ms` (Unix ms), see marketcore.pyi."""

    def __init__(self, int64_t now_ms=0):
        self.now_ms = now_ms

    def __repr__(self):
        return f"SourceClock(now_ms={self.now_ms})"


cdef class MarketCore:
    """Book + detector + per-message counters; see sentrycore/marketcore.pyi."""

    def __init__(self, OrderBook book not None, ImbalanceDetector detector not None,
                 int64_t clock_skew_ms=DEFAULT_CLOCK_SKEW_MS, SourceClock clock=None,
                 bint band_signal=False):
        if clock_skew_ms <= 0:
            raise ValueError(f"clock_skew_ms must be > 0, got {clock_skew_ms}")
        if band_signal and not book.band_bps > 0.0:
            raise ValueError("band_signal needs a book built with band_bps > 0")
        self.band_signal = band_signal
        self.book = book
        self.detector = detector
        self.valid = False
        self.messages = 0
        self.crossed = 0
        self.clock_skew = 0
        self.clock_skew_ms = clock_skew_ms
        self.clock = clock
        self._skewed = False
        self._has_event = False
        self._last_event_ms = 0
        self._last_update_monotonic = NAN

    cdef int c_after_message(self, int64_t event_ms) noexcept:
        cdef double mono = _monotonic()
        cdef int64_t now_ms, recv_ms
        self.messages += 1
        self._last_event_ms = event_ms
        self._has_event = True
        self._last_update_monotonic = mono
        if self.clock is None:
            now_ms = <int64_t>(mono * 1000.0)
            recv_ms = _wall_ms(now_ms)
        else:
            now_ms = self.clock.now_ms
            recv_ms = now_ms
        # Written so that no subtraction can overflow, whatever event_ms is.
        if event_ms > recv_ms + self.clock_skew_ms or event_ms < recv_ms - self.clock_skew_ms:
            self.clock_skew += 1
            if not self._skewed:
                self._skewed = True
                self._on_clock_skew(event_ms, recv_ms)
        elif self._skewed:
            self._skewed = False
        if not self.valid:
            return 0
        if self.book.c_best_bid() >= self.book.c_best_ask():  # False when a side is empty (NaN)
            # No venue publishes a crossed book: ours lost a message.  Invalid now;
            # the handler sees `valid` drop without a reason and resyncs it.
            self.valid = False
            self.crossed += 1
            return 0
        if self.band_signal:
            return self.detector.c_evaluate(self.book.c_band_bid_notional(), self.book.c_band_ask_notional(), now_ms)
        return self.detector.c_evaluate(self.book.c_bid_volume(), self.book.c_ask_volume(), now_ms)

    cdef int64_t c_clock_ms(self) noexcept:
        if self.clock is None:
            return <int64_t>(_monotonic() * 1000.0)
        return self.clock.now_ms

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

    def _on_clock_skew(self, int64_t event_ms, int64_t recv_ms):
        """The first of a run of skewed messages (already counted); a
        subclass reports it.  Must not raise."""

    def clock_ms(self):
        """The detector's "now" in ms: `clock.now_ms`, or monotonic ms when live."""
        return self.c_clock_ms()

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
