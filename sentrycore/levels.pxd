# cython: language_level=3
# The shared native path of every venue: price levels parsed from frame bytes
# into reusable buffers, then into the book and MarketCore in one step.
#
#     from sentrycore.levels cimport LevelBuffer, levels_init, read_level_array, apply_and_finish
#
# A venue's parser is only the layout-specific piece (which keys, which
# sequence rule); reading `[[price, qty, ...], ...]`, growing the buffers,
# applying both sides all-or-nothing and finishing the message live here once.

from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, realloc, free
from sentrycore.book cimport OrderBook, BOOK_OK, valid_price, valid_qty
from sentrycore.marketcore cimport MarketCore
from sentrycore.jsonscan cimport skip_ws, skip_value, scan_level_number


# One side's levels of one message: prices[j], qtys[j] for j < n; cap slots
# allocated (grown by doubling, never shrunk, so a parser allocates only
# while its messages keep getting bigger).
cdef struct LevelBuffer:
    double* prices
    double* qtys
    Py_ssize_t n
    Py_ssize_t cap


cdef inline bint levels_init(LevelBuffer* b, Py_ssize_t cap) noexcept nogil:
    b.n = 0
    b.cap = cap
    b.prices = <double*>malloc(cap * sizeof(double))
    b.qtys = <double*>malloc(cap * sizeof(double))
    return b.prices != NULL and b.qtys != NULL


cdef inline void levels_free(LevelBuffer* b) noexcept nogil:
    free(b.prices)
    free(b.qtys)
    b.prices = NULL
    b.qtys = NULL
    b.n = 0
    b.cap = 0


cdef inline bint levels_grow(LevelBuffer* b) noexcept nogil:
    cdef Py_ssize_t cap = b.cap * 2 if b.cap > 0 else 16
    cdef double* p = <double*>realloc(b.prices, cap * sizeof(double))
    if p == NULL:
        return False
    b.prices = p
    p = <double*>realloc(b.qtys, cap * sizeof(double))
    if p == NULL:
        return False
    b.qtys = p
    b.cap = cap
    return True


cdef inline bint levels_push(LevelBuffer* b, double price, double qty) noexcept nogil:
    if b.n == b.cap and not levels_grow(b):
        return False
    b.prices[b.n] = price
    b.qtys[b.n] = qty
    b.n += 1
    return True


# The checks OrderBook.c_apply makes, for parsers that report validity.
cdef inline bint levels_valid(const LevelBuffer* b) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(b.n):
        if not (valid_price(b.prices[j]) and valid_qty(b.qtys[j])):
            return False
    return True


# `[[p, q], ...]` with p and q quoted decimal strings or bare JSON numbers,
# each level followed by `extra` more plain values that are skipped (OKX's
# deprecated "0" and order count).  Replaces out's levels; returns the index
# after the closing ']' or -1 when the array has another shape.
cdef inline Py_ssize_t read_level_array(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                                        LevelBuffer* out, int extra) noexcept:
    cdef double price, qty
    cdef int k
    out.n = 0
    if i >= n or s[i] != 91:  # '['
        return -1
    i = skip_ws(s, i + 1, n)
    if i < n and s[i] == 93:  # ']'
        return i + 1
    while True:
        if i >= n or s[i] != 91:
            return -1
        i = skip_ws(s, i + 1, n)
        i = scan_level_number(s, i, n, &price)
        if i < 0 or i >= n or s[i] != 44:  # ','
            return -1
        i = skip_ws(s, i + 1, n)
        i = scan_level_number(s, i, n, &qty)
        if i < 0:
            return -1
        for k in range(extra):
            if i >= n or s[i] != 44:
                return -1
            i = skip_value(s, skip_ws(s, i + 1, n), n)
            if i < 0:
                return -1
            i = skip_ws(s, i, n)
        if i >= n or s[i] != 93:
            return -1
        if not levels_push(out, price, qty):
            return -1
        i = skip_ws(s, i + 1, n)
        if i >= n:
            return -1
        if s[i] == 44:
            i = skip_ws(s, i + 1, n)
            continue
        if s[i] == 93:
            return i + 1
        return -1


# Both sides into the book, validated together first (all or nothing): 1
# when applied, 0 with the book untouched on any bad value.
cdef inline int apply_levels(OrderBook book, const LevelBuffer* bids, const LevelBuffer* asks) noexcept nogil:
    if book.c_apply(bids.prices, bids.qtys, bids.n, asks.prices, asks.qtys, asks.n) != BOOK_OK:
        return 0
    return 1


# The message's finish on its market once its levels are in the book:
# count, stamp, detect; a firing detector goes back to Python to raise the
# alert.  A MarketCore is finished in C unless a Python subclass overrides it.
cdef inline int finish_message(object market, int64_t event_ms) except -1:
    if isinstance(market, MarketCore):
        (<MarketCore>market).after_message(event_ms)
    else:
        market.after_message(event_ms)
    return 0


# apply_levels, then finish_message: 1 when applied, 0 (book untouched,
# market not finished) on a bad value.
cdef inline int apply_and_finish(object market, OrderBook book, const LevelBuffer* bids,
                                 const LevelBuffer* asks, int64_t event_ms) except -1:
    if apply_levels(book, bids, asks) == 0:
        return 0
    finish_message(market, event_ms)
    return 1
