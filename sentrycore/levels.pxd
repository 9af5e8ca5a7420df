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
from sentrycore.book cimport OrderBook, BookSide, BOOK_OK, valid_price, valid_qty
from sentrycore.marketcore cimport MarketCore
from sentrycore.jsonscan cimport skip_ws, skip_value, scan_level_number, next_element


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


# The buffer's levels as [(price, qty), ...] (the parsers' `bids` / `asks` for Python callers and tests).
cdef inline list levels_list(const LevelBuffer* b):
    return [(b.prices[j], b.qtys[j]) for j in range(b.n)]


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
    return read_level_array_text(s, i, n, out, extra, NULL, False)


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


# -- the venue's own text beside the values (checksums over the text as sent) --

# Where each level's price and quantity text lies in the frame: level j's
# price is s[at[4j], at[4j+1]) and its quantity s[at[4j+2], at[4j+3])
# (quotes excluded).  Filled beside a LevelBuffer (same n), grown with it.
cdef struct TextSpans:
    Py_ssize_t* at
    Py_ssize_t cap


cdef inline bint spans_init(TextSpans* t, Py_ssize_t cap) noexcept nogil:
    t.cap = cap
    t.at = <Py_ssize_t*>malloc(4 * cap * sizeof(Py_ssize_t))
    return t.at != NULL


cdef inline void spans_free(TextSpans* t) noexcept nogil:
    free(t.at)
    t.at = NULL
    t.cap = 0


cdef inline bint spans_set(TextSpans* t, Py_ssize_t j, Py_ssize_t px0, Py_ssize_t px1,
                           Py_ssize_t qty0, Py_ssize_t qty1) noexcept nogil:
    cdef Py_ssize_t cap
    cdef Py_ssize_t* p
    if j >= t.cap:
        cap = t.cap * 2 if t.cap > 0 else 16
        p = <Py_ssize_t*>realloc(t.at, 4 * cap * sizeof(Py_ssize_t))
        if p == NULL:
            return False
        t.at = p
        t.cap = cap
    t.at[4 * j] = px0
    t.at[4 * j + 1] = px1
    t.at[4 * j + 2] = qty0
    t.at[4 * j + 3] = qty1
    return True


cdef inline Py_ssize_t _number_end(const unsigned char* s, Py_ssize_t start, Py_ssize_t after,
                                   bint quoted) noexcept nogil:
    # scan_level_number returned `after` (past the number, its closing quote
    # and any whitespace): the end of the number's own text.
    while after > start and (s[after - 1] == 32 or s[after - 1] == 10 or s[after - 1] == 13
                             or s[after - 1] == 9):
        after -= 1
    return after - 1 if quoted else after


# read_level_array, also recording each level's price and quantity text in
# `spans` (when not NULL); with `strings_only`, every element of a level
# (price, quantity and the extra values) must be a JSON string, the shape a
# `list[list[str]]` decoder demands (OKX).
cdef inline Py_ssize_t read_level_array_text(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                                             LevelBuffer* out, int extra, TextSpans* spans,
                                             bint strings_only) noexcept:
    cdef double price, qty
    cdef int k
    cdef bint quoted = False
    cdef bint done = False
    cdef Py_ssize_t px0 = 0, px1 = 0, qty0 = 0, qty1 = 0
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
        if spans != NULL or strings_only:
            quoted = i < n and s[i] == 34
            if strings_only and not quoted:
                return -1
            px0 = i + 1 if quoted else i
        i = scan_level_number(s, i, n, &price)
        if i < 0 or i >= n or s[i] != 44:  # ','
            return -1
        if spans != NULL:
            px1 = _number_end(s, px0, i, quoted)
        i = skip_ws(s, i + 1, n)
        if spans != NULL or strings_only:
            quoted = i < n and s[i] == 34
            if strings_only and not quoted:
                return -1
            qty0 = i + 1 if quoted else i
        i = scan_level_number(s, i, n, &qty)
        if i < 0:
            return -1
        if spans != NULL:
            qty1 = _number_end(s, qty0, i, quoted)
        for k in range(extra):
            if i >= n or s[i] != 44:
                return -1
            i = skip_ws(s, i + 1, n)
            if strings_only and (i >= n or s[i] != 34):
                return -1
            i = skip_value(s, i, n)
            if i < 0:
                return -1
            i = skip_ws(s, i, n)
        if i >= n or s[i] != 93:
            return -1
        if spans != NULL and not spans_set(spans, out.n, px0, px1, qty0, qty1):
            return -1
        if not levels_push(out, price, qty):
            return -1
        i = next_element(s, i + 1, n, &done)
        if i < 0 or done:
            return i


# The best `k` levels of one side of `book` (bids highest first, asks lowest
# first) into `out`, as OrderBook.bids(k) / asks(k) list them: the walk over
# the side's slots from the best end, skipping holes (see book.pxd).
cdef inline void book_top(OrderBook book, bint bids, Py_ssize_t k, LevelBuffer* out) noexcept nogil:
    cdef BookSide* side = &book._bids if bids else &book._asks
    cdef Py_ssize_t slot = side.n - 1
    out.n = 0
    while slot >= 0 and out.n < k:
        if side.qtys[slot] != 0.0 and out.n < out.cap:
            out.prices[out.n] = side.sign * side.keys[slot]
            out.qtys[out.n] = side.qtys[slot]
            out.n += 1
        slot -= 1
