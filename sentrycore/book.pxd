# cython: language_level=3
# C-level interface of sentrycore.OrderBook for other Cython code.
#
#     from sentrycore.book cimport OrderBook, BOOK_OK, BOOK_BAD_VALUE
#
# Every method here is `nogil` and touches no Python object, so a caller may
# run it inside `with nogil:`.  Errors are reported by return code instead of
# exceptions: BOOK_BAD_VALUE means the input was rejected and the book is
# unchanged.

cdef enum:
    BOOK_OK = 0
    BOOK_BAD_VALUE = -1

# Largest price and quantity a book accepts (see "Value bounds" in book.pyx):
# with these, no sum the book or its readers form can overflow.
cdef extern from *:
    """
    #define SENTRY_MAX_PRICE 1e15
    #define SENTRY_MAX_QTY 1e18
    """
    const double SENTRY_MAX_PRICE
    const double SENTRY_MAX_QTY


# The value checks every write to a book makes, shared with the parser so
# both agree by construction.  The comparisons are False for NaN.
cdef inline bint valid_price(double price) noexcept nogil:
    return price > 0.0 and price <= SENTRY_MAX_PRICE


cdef inline bint valid_qty(double qty) noexcept nogil:
    return qty >= 0.0 and qty <= SENTRY_MAX_QTY

# One side of the book: n slots, keys[i] and qtys[i], where key = sign * price
# in ascending order, so the best level is always the last one (bids: sign
# +1, asks: sign -1).  Updates near the top therefore move only a few slots.
cdef struct BookSide:
    double* keys
    double* qtys
    Py_ssize_t n
    # Slots allocated behind keys and qtys (malloc'd, grown by doubling up to
    # the book's max_capacity; see "Capacity" in book.pyx).  n <= cap.
    Py_ssize_t cap
    # Running sum of the best `depth` quantities, Neumaier-compensated:
    # the value is vol + vol_comp.
    double vol
    double vol_comp
    # Number of incremental adjustments since the last exact recomputation.
    Py_ssize_t adjustments
    double sign
    # Slots among the n that are holes: a deleted deep level whose slot keeps
    # its key with qty 0 (see book.pyx).  Levels held = n - holes.
    Py_ssize_t holes
    # Band signal (see "Band notional" in book.pyx): sum of price x qty over
    # the levels whose key is >= band_floor, Neumaier-compensated (value =
    # band + band_comp).  band_floor is +inf while the band is off or the mid
    # is undefined, so the per-level check never matches then.
    double band
    double band_comp
    double band_floor
    Py_ssize_t band_adjustments


# The band's key floors for a mid of (best_bid + best_ask) / 2: a bid counts
# when price >= bid_floor, an ask when -price >= ask_floor (its key).  One
# definition, shared by the incremental sums and the reference walk
# (sentrycore.band), so both select exactly the same levels.
cdef inline void band_floors(double best_bid, double best_ask, double bps,
                             double* bid_floor, double* ask_floor) noexcept nogil:
    cdef double mid = 0.5 * (best_bid + best_ask)
    cdef double half = mid * bps * 1e-4
    bid_floor[0] = mid - half
    ask_floor[0] = -(mid + half)


cdef class OrderBook:
    cdef BookSide _bids
    cdef BookSide _asks
    cdef readonly Py_ssize_t depth
    # Slots per side allocated up front, and the bound growth stops at (then
    # the deepest level is dropped and the book is truncated).
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t max_capacity
    cdef bint _truncated
    # Half-width of the band in basis points of the mid; 0.0 = band off.
    cdef readonly double band_bps

    cdef int c_update_bid(self, double price, double qty) noexcept nogil
    cdef int c_update_ask(self, double price, double qty) noexcept nogil
    cdef int c_apply_bids(self, const double* prices, const double* qtys, Py_ssize_t n) noexcept nogil
    cdef int c_apply_asks(self, const double* prices, const double* qtys, Py_ssize_t n) noexcept nogil
    # Both sides of one message, validated together first: all or nothing.
    cdef int c_apply(self, const double* bid_prices, const double* bid_qtys, Py_ssize_t n_bids,
                     const double* ask_prices, const double* ask_qtys, Py_ssize_t n_asks) noexcept nogil
    cdef void c_clear(self) noexcept nogil
    cdef double c_bid_volume(self) noexcept nogil
    cdef double c_ask_volume(self) noexcept nogil
    cdef double c_ratio(self) noexcept nogil
    cdef double c_best_bid(self) noexcept nogil
    cdef double c_best_ask(self) noexcept nogil
    cdef Py_ssize_t c_bid_levels(self) noexcept nogil
    cdef Py_ssize_t c_ask_levels(self) noexcept nogil
    # Notional (sum of price x qty) of the bid / ask levels within band_bps of
    # the mid; 0.0 when the band is off or a side is empty.
    cdef double c_band_bid_notional(self) noexcept nogil
    cdef double c_band_ask_notional(self) noexcept nogil
    # Move the band with the mid (after a whole message); called by every
    # writing method, exposed for writers that bypass them.
    cdef void _band_recentre(self) noexcept nogil
