# cython: language_level=3
# C-level interface of sentrycore.band for other Cython code.
#
#     from sentrycore.band cimport c_band_notional
#     c_band_notional(book, 25.0, &bid_notional, &ask_notional)   # nogil
#
# Notional (price x quantity) of each side within `bps` basis points of the
# mid; both 0.0 when a side is empty.  A bounded walk from the touch over the
# book's own arrays: it reads only the levels inside the band.

from sentrycore.book cimport OrderBook


cdef void c_band_notional(OrderBook book, double bps, double* bid_notional, double* ask_notional) noexcept nogil
