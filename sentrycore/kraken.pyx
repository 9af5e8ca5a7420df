# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Kraken `book` updates (v2, and v1) on the native path: bytes -> book -> checksum -> MarketCore.

The layout-specific piece of the shared native path (sentrycore/levels.pxd)
for the hot v2 message

    {"channel":"book","type":"update","data":[{"symbol":"BTC/USD",
      "bids":[{"price":65000.1,"qty":0.5},..],"asks":[..],"checksum":123,
      "timestamp":"2026-01-02T03:04:05.678901Z"}]}

(keys in any order, JSON whitespace, unknown keys with plain values).  Prices
and sizes are JSON numbers; each is read exactly as float() reads its text,
and the number of decimals it was written with is kept: the checksum needs
the venue's text, and a number written with at most the instrument's places
and below 2**52 once scaled is given back exactly from its double
(sentrycore/decimaltext.pxd).  So the checksum is computed from the book
itself -- the top 10 asks then the top 10 bids, walked in the book's arrays,
written into a CRC32 (sentrycore/crc32.pxd) without a Python object per
level -- by `c_book_checksum`, the one definition both this path and the
handler's reference path use.  Levels whose text cannot be given back (v2
numbers with more decimals than the precision, v1 strings not written with
the snapshot's places, numbers too long for a double) keep a token in the
state's dicts, which the same function reads (and the C path keeps up to
date; it declines only messages that would add one).

v1 (`[channelID, {"a":[["p","q","ts"(,"r")],..]}, ({"b":..,"c":".."},)
"book-<depth>", "PAIR"]`, what the real recording holds) takes the same
path: its strings are the checksum text, and every string of a pair is
written with the pair's decimals, learned from the snapshot
(`KrakenBookState.text_places`); the message time is the newest level time
read as the reference reads it (int(Decimal(text) * 1000)).

`KrakenParser.take` applies a synced book's update, truncates each side to
the subscribed depth as Kraken does, checks the checksum -- a mismatch
calls the handler's `mismatch` (count, invalidate, resync through recovery),
exactly the reference path's reaction -- and finishes the message on its
market.  Everything else (snapshots, v1 arrays, other channels, a book
awaiting its snapshot or precision, a message without checksum or
timestamp, several books, exponents, v1 strings with other decimals than
the snapshot's, any JSON this reader does not take)
leaves every state untouched and goes to the reference path
(tests/feeds/test_kraken_native.py compares both on the same frames).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memcmp, memcpy

from sentrycore.book cimport OrderBook, BookSide
from sentrycore.counters cimport FeedCounters
from sentrycore.names cimport cached_name, name_cache_init
from sentrycore.marketcore cimport MarketCore
from sentrycore.crc32 cimport crc32_update
from sentrycore.decimaltext cimport fixed_digits, fixed_exact, FIXED_DIGITS_MAX
from sentrycore.jsonscan cimport (skip_ws, scan_string, scan_int, scan_number, scan_short_number, skip_value,
                                  is_digit, key_is, scan_key, next_member, end_member,
                                  next_element)
from sentrycore.levels cimport (levels_list, LevelBuffer, levels_init, levels_free, levels_push, levels_valid,
                                apply_levels, finish_message)
from sentrycore.texttime cimport iso8601_ms

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL


cdef enum:
    INITIAL_LEVELS = 64
    MAX_SYMBOL = 47
    #: Levels per side the checksum covers.
    CHECKSUM_LEVELS = 10
    # msgspec rounds fraction digits beyond 6 (fromisoformat truncates):
    # longer fractions take the reference path.
    MAX_FRACTION_DIGITS = 6
    F_CHANNEL = 1
    F_TYPE = 2
    F_DATA = 4
    F_TOP = F_CHANNEL | F_TYPE | F_DATA
    B_SYMBOL = 1
    B_BIDS = 2
    B_ASKS = 4
    B_CHECKSUM = 8
    B_TIMESTAMP = 16
    B_REQUIRED = B_SYMBOL | B_CHECKSUM | B_TIMESTAMP
    V_PRICE = 1
    V_QTY = 2
    # No kept level seen yet (the fewest decimals so far).
    NO_LEVELS = 1000

# v1 level times outside (2001, 2286) are not the message's time (the reference's bounds).
cdef double MIN_TIME_S = 1e9
cdef double MAX_TIME_S = 1e10


cdef class ChecksumCounts:
    """Checksums verified (`ok`) and mismatched (`failed`), counted by both paths."""


cdef class KrakenBookState:
    """Checksum text and sync state of one Kraken book, shared by both paths."""

    def __init__(self, Py_ssize_t depth, market=None):
        self.market = market
        self.depth = depth
        self.awaiting = True
        self.needs_precision = False
        self._price_places = -1
        self._qty_places = -1
        self._v1_price_places = -1
        self._v1_qty_places = -1
        self.bid_tokens = {}
        self.ask_tokens = {}
        self._last_ok = False

    @property
    def price_places(self):
        """v2 instrument price precision (None until the instrument channel says)."""
        return _places_or_none(self._price_places)

    @price_places.setter
    def price_places(self, value):
        self._price_places = _places(value)

    @property
    def qty_places(self):
        return _places_or_none(self._qty_places)

    @qty_places.setter
    def qty_places(self, value):
        self._qty_places = _places(value)

    @property
    def v1_price_places(self):
        """v1: the decimals of the last snapshot's price strings (None before one)."""
        return _places_or_none(self._v1_price_places)

    @v1_price_places.setter
    def v1_price_places(self, value):
        self._v1_price_places = _places(value)

    @property
    def v1_qty_places(self):
        return _places_or_none(self._v1_qty_places)

    @v1_qty_places.setter
    def v1_qty_places(self, value):
        self._v1_qty_places = _places(value)

    @property
    def text_places(self):
        """(price, qty) places the checksum writes a level with when it has no
        token: the instrument's (v2) when known, else v1's; None if neither."""
        cdef int pp, qp
        if not c_text_places(self, &pp, &qp):
            return None
        return (pp, qp)

    def checksum(self, market):
        """CRC32 of `market.book`'s top levels, or None if a level's text is missing."""
        cdef long long crc = c_book_checksum(market.book, self)
        return None if crc < 0 else crc


# A places property's two directions: None <-> -1 (unknown), else the int.
cdef int _places(object value) except -2:
    if value is None:
        return -1
    if type(value) is not int or value < 0:
        raise ValueError(f"precision must be a non-negative int or None, got {value!r}")
    # Beyond 22 places a power of ten is not an exact double: no level of such
    # a book is written back from its double (fixed_exact says no).
    return value if value <= 1000 else 1000


cdef inline object _places_or_none(int places):
    return None if places < 0 else places


cdef enum:
    # 20 levels x (price + qty) x FIXED_DIGITS_MAX bytes at most.
    CHECKSUM_TEXT_MAX = 2 * CHECKSUM_LEVELS * 2 * FIXED_DIGITS_MAX


cdef inline long long _side_text(BookSide* side, dict tokens, int pp, int qp, char* text, Py_ssize_t* pos,
                                 long long crc) except -2:
    # Appends the side's top levels to text[pos:]; a level with a token
    # flushes the text into the CRC first, then adds its token.  Returns the
    # CRC of everything flushed so far, or -1 when a level has no text.
    cdef Py_ssize_t slot = side.n - 1
    cdef int taken = 0
    cdef double price, qty
    cdef Py_ssize_t k
    cdef const char* token_text
    cdef object token
    while slot >= 0 and taken < CHECKSUM_LEVELS:
        qty = side.qtys[slot]
        if qty != 0.0:  # holes are not levels
            price = side.sign * side.keys[slot]
            token = tokens.get(price) if tokens else None
            if token is not None:
                crc = crc32_update(<uint32_t>crc, <const unsigned char*>text, pos[0])
                pos[0] = 0
                token_text = PyUnicode_AsUTF8AndSize(token, &k)
                crc = crc32_update(<uint32_t>crc, <const unsigned char*>token_text, k)
            else:
                k = fixed_digits(price, pp, text + pos[0])
                if k < 0:
                    return -1
                pos[0] += k
                k = fixed_digits(qty, qp, text + pos[0])
                if k < 0:
                    return -1
                pos[0] += k
            taken += 1
        slot -= 1
    return crc


cdef bint c_text_places(KrakenBookState state, int* pp, int* qp) noexcept:
    if state._price_places >= 0 and state._qty_places >= 0:
        pp[0] = state._price_places
        qp[0] = state._qty_places
        return True
    pp[0] = state._v1_price_places
    qp[0] = state._v1_qty_places
    return pp[0] >= 0 and qp[0] >= 0


cdef inline int _top_levels(BookSide* side, double* prices, double* qtys) noexcept nogil:
    # The side's best CHECKSUM_LEVELS levels, best first (holes skipped).
    cdef Py_ssize_t slot = side.n - 1
    cdef int taken = 0
    while slot >= 0 and taken < CHECKSUM_LEVELS:
        if side.qtys[slot] != 0.0:
            prices[taken] = side.sign * side.keys[slot]
            qtys[taken] = side.qtys[slot]
            taken += 1
        slot -= 1
    return taken


cdef inline Py_ssize_t _plain_text(KrakenBookState state, const double* prices, const double* qtys, int first,
                                   int count, int last_first, int last_count, bint ascending, bint reuse,
                                   int pp, int qp, char* text, Py_ssize_t pos, short* at,
                                   short* mid) noexcept nogil:
    # Appends levels first..first+count-1 (one side, best first) to text[pos:]
    # and records where each level's text starts (at) and its quantity starts
    # (mid); returns the end, or -1 when a level has no text.  With `reuse`,
    # the last checksum's text (same places) of a level with the same price
    # (and size) is copied instead of written again: a message changes few
    # of the top levels, and both lists are sorted the same way, so one
    # forward walk over the last list finds them.  Levels that were adjacent
    # last time are copied together, as one run (text[run_to:pos] is owed
    # from _last_text[run_from:]).
    cdef int m = last_first
    cdef int m_end = last_first + last_count
    cdef int j
    cdef Py_ssize_t k, a, b, c
    cdef Py_ssize_t run_from = 0
    cdef Py_ssize_t run_to = pos
    cdef double price
    for j in range(first, first + count):
        at[j] = <short>pos
        price = prices[j]
        if reuse:
            if ascending:
                while m < m_end and state._last_prices[m] < price:
                    m += 1
            else:
                while m < m_end and state._last_prices[m] > price:
                    m += 1
        if reuse and m < m_end and state._last_prices[m] == price:
            a = state._last_at[m]
            b = state._last_mid[m]
            mid[j] = <short>(pos + b - a)
            if state._last_qtys[m] == qtys[j]:
                c = state._last_at[m + 1]
                if run_from + (pos - run_to) != a:  # not where the run ends: a new run
                    memcpy(text + run_to, state._last_text + run_from, pos - run_to)
                    run_from = a
                    run_to = pos
                pos += c - a
                continue
            memcpy(text + run_to, state._last_text + run_from, pos - run_to)
            memcpy(text + pos, state._last_text + a, b - a)
            pos += b - a
        else:
            memcpy(text + run_to, state._last_text + run_from, pos - run_to)
            k = fixed_digits(price, pp, text + pos)
            if k < 0:
                return -1
            pos += k
            mid[j] = <short>pos
        k = fixed_digits(qtys[j], qp, text + pos)
        if k < 0:
            return -1
        pos += k
        run_to = pos
        run_from = 0
    memcpy(text + run_to, state._last_text + run_from, pos - run_to)
    return pos


cdef long long c_book_checksum(OrderBook book, KrakenBookState state) except -2:
    # The text of the top levels goes into one buffer and one CRC pass.
    cdef char text[CHECKSUM_TEXT_MAX]
    cdef Py_ssize_t pos = 0
    cdef int pp, qp, n_asks, n_bids, j
    cdef long long crc
    cdef double prices[2 * CHECKSUM_LEVELS]
    cdef double qtys[2 * CHECKSUM_LEVELS]
    cdef short at[2 * CHECKSUM_LEVELS + 1]
    cdef short mid[2 * CHECKSUM_LEVELS]
    cdef bint reuse
    c_text_places(state, &pp, &qp)  # -1 places: fixed_digits answers -1 (no text)
    if state.ask_tokens or state.bid_tokens:
        crc = _side_text(&book._asks, state.ask_tokens, pp, qp, text, &pos, 0)
        if crc >= 0:
            crc = _side_text(&book._bids, state.bid_tokens, pp, qp, text, &pos, crc)
        if crc < 0:
            return -1
        return crc32_update(<uint32_t>crc, <const unsigned char*>text, pos)
    # Without tokens the checksum is a function of the top levels and the places alone.
    n_asks = _top_levels(&book._asks, prices, qtys)
    n_bids = _top_levels(&book._bids, prices + n_asks, qtys + n_asks)
    reuse = state._last_ok and state._last_pp == pp and state._last_qp == qp
    if reuse and state._last_n_asks == n_asks and state._last_n_bids == n_bids:
        for j in range(n_asks + n_bids):
            if prices[j] != state._last_prices[j] or qtys[j] != state._last_qtys[j]:
                break
        else:
            return state._last_crc
    pos = _plain_text(state, prices, qtys, 0, n_asks, 0, state._last_n_asks, True, reuse, pp, qp, text, 0,
                      at, mid)
    if pos >= 0:
        pos = _plain_text(state, prices, qtys, n_asks, n_bids, state._last_n_asks, state._last_n_bids, False,
                          reuse, pp, qp, text, pos, at, mid)
    if pos < 0:
        state._last_ok = False
        return -1
    at[n_asks + n_bids] = <short>pos
    crc = crc32_update(0, <const unsigned char*>text, pos)
    state._last_ok = True
    state._last_crc = crc
    state._last_pp = pp
    state._last_qp = qp
    state._last_n_asks = n_asks
    state._last_n_bids = n_bids
    memcpy(state._last_prices, prices, (n_asks + n_bids) * sizeof(double))
    memcpy(state._last_qtys, qtys, (n_asks + n_bids) * sizeof(double))
    memcpy(state._last_text, text, pos)
    memcpy(state._last_at, at, (n_asks + n_bids + 1) * sizeof(short))
    memcpy(state._last_mid, mid, (n_asks + n_bids) * sizeof(short))
    return crc


def book_checksum(OrderBook book not None, KrakenBookState state not None):
    """Kraken's CRC32 of `book`'s top 10 asks then top 10 bids (see the module docstring), or None."""
    cdef long long crc = c_book_checksum(book, state)
    return None if crc < 0 else crc


def level_text(double value, int places):
    """`value` written with `places` decimals, point removed, leading zeros
    stripped -- or None when the double cannot give that text back exactly."""
    cdef char digits[FIXED_DIGITS_MAX]
    cdef Py_ssize_t k = fixed_digits(value, places, digits)
    if k < 0:
        return None
    return PyUnicode_DecodeASCII(digits, k, NULL)


def exact_text(double value, int places):
    """True when a number written with at most `places` decimals is given
    back exactly from its double `value` (value * 10**places < 2**52)."""
    return fixed_exact(value, places)


def crc32(data, unsigned int start=0):
    """zlib.crc32 computed by sentrycore/crc32.pxd (for tests of the shared table)."""
    cdef const unsigned char[::1] view = data
    if view.shape[0] == 0:
        return start
    return crc32_update(start, &view[0], view.shape[0])


cdef inline int _truncate_side(OrderBook book, BookSide* side, bint bids, Py_ssize_t extra,
                               LevelBuffer* cut, dict tokens) except -1:
    # Delete the `extra` worst levels, best first, as the reference path's
    # `book.apply_bids(book.bids()[depth:, 0], zeros)` does.  They are the
    # first live slots from the bottom: collected there (a deep book is not
    # walked from the top), then reversed into best-first order.
    cdef Py_ssize_t slot = 0
    cdef Py_ssize_t j
    cdef double t
    cut.n = 0
    while slot < side.n and cut.n < extra:
        if side.qtys[slot] != 0.0:
            if not levels_push(cut, side.sign * side.keys[slot], 0.0):
                raise MemoryError()
        slot += 1
    if cut.n == 0:
        return 0
    for j in range(cut.n // 2):
        t = cut.prices[j]
        cut.prices[j] = cut.prices[cut.n - 1 - j]
        cut.prices[cut.n - 1 - j] = t
    if bids:
        book.c_apply_bids(cut.prices, cut.qtys, cut.n)
    else:
        book.c_apply_asks(cut.prices, cut.qtys, cut.n)
    if tokens:
        _drop_tokens(tokens, cut)
    return 0


cdef inline int _drop_tokens(dict tokens, const LevelBuffer* levels) except -1:
    # Levels written (or deleted) by a message the C path takes are its own
    # texts: a token kept for the same price is gone, as in the reference's _merge.
    cdef Py_ssize_t j
    for j in range(levels.n):
        tokens.pop(levels.prices[j], None)
    return 0


cdef inline Py_ssize_t _quoted_decimal(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, double* out,
                                       int* frac) noexcept:
    # "digits[.digits]" (a v1 string): the value exactly as float() reads it,
    # and its number of decimals; the index after the closing quote and any
    # whitespace, or -1.
    cdef Py_ssize_t start, j
    if i >= n or s[i] != 34:
        return -1
    start = i + 1
    i = scan_number(s, start, n, False, out)
    if i < 0 or i >= n or s[i] != 34:
        return -1
    frac[0] = 0
    for j in range(start, i):
        if s[j] == 46:
            frac[0] = <int>(i - j - 1)
            break
    return skip_ws(s, i + 1, n)


cdef inline int64_t _unix_text_ms(const unsigned char* s, Py_ssize_t i) noexcept:
    # s[i:] is a checked "digits[.digits]" of at most 6 decimals (seconds):
    # int(Decimal(text) * 1000), the reference's reading, by integer arithmetic.
    cdef int64_t whole = 0
    cdef int64_t ms = 0
    cdef int k = 0
    while is_digit(s[i]):
        whole = whole * 10 + (s[i] - 48)
        i += 1
    if s[i] == 46:
        i += 1
        while is_digit(s[i]) and k < 3:
            ms = ms * 10 + (s[i] - 48)
            k += 1
            i += 1
    while k < 3:
        ms *= 10
        k += 1
    return whole * 1000 + ms


cdef inline int _fraction_digits(const unsigned char* s, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    # The decimals of the number s[start:end] (0 without a point).
    cdef Py_ssize_t j
    for j in range(start, end):
        if s[j] == 46:
            return <int>(end - j - 1)
    return 0


cdef inline Py_ssize_t _level_members(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, double* price,
                                      double* qty, int* price_frac, int* qty_frac) noexcept:
    # One level object {"price":<number>,"qty":<number>(,other members)} in
    # any key order and JSON whitespace; the index after its '}', or -1.
    cdef Py_ssize_t k, klen, start
    cdef int seen = 0
    cdef int bit
    cdef bint done = False
    cdef double v
    i = skip_ws(s, i + 1, n)
    while True:
        i = scan_key(s, i, n, &k, &klen)
        if i < 0:
            return -1
        bit = 0
        if key_is(s, k, klen, b"price", 5):
            bit = V_PRICE
        elif key_is(s, k, klen, b"qty", 3):
            bit = V_QTY
        if bit:
            if seen & bit or i >= n or not is_digit(s[i]):
                return -1
            start = i
            i = scan_number(s, i, n, False, &v)
            if i < 0 or (i < n and (s[i] == 101 or s[i] == 69)):  # an exponent: the reference decides
                return -1
            seen |= bit
            if bit == V_PRICE:
                price[0] = v
                price_frac[0] = _fraction_digits(s, start, i)
            else:
                qty[0] = v
                qty_frac[0] = _fraction_digits(s, start, i)
        else:
            i = skip_value(s, i, n)
            if i < 0:
                return -1
        i = next_member(s, i, n, &done)
        if i < 0:
            return -1
        if done:
            break
    if seen != (V_PRICE | V_QTY):
        return -1
    return i


cdef inline Py_ssize_t _compact_level(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, double* price,
                                      double* qty, int* price_frac, int* qty_frac) noexcept nogil:
    # s[i:] starts exactly {"price":N,"qty":N} with both numbers in the
    # common short shape (jsonscan's scan_short_number): the index after the
    # '}' with the same values _level_members reads, else -1 (not this
    # layout: the caller walks the members, which decides).
    cdef Py_ssize_t start
    # 9 + 17 (price, with ',') + 6 + 17 (qty) + '}': the short reader's guaranteed bytes.
    if n - i < 50 or memcmp(s + i, b'{"price":', 9) != 0:
        return -1
    start = i + 9
    i = scan_short_number(s, start, False, price)
    if i < 0 or s[i] != 44 or memcmp(s + i + 1, b'"qty":', 6) != 0:
        return -1
    price_frac[0] = _fraction_digits(s, start, i)
    start = i + 7
    i = scan_short_number(s, start, False, qty)
    if i < 0 or s[i] != 125:
        return -1
    qty_frac[0] = _fraction_digits(s, start, i)
    return i + 1


cdef class KrakenParser:
    """Reusable reader of the hot v2 book update; see kraken.pyi."""

    def __cinit__(self):
        if not (levels_init(&self.bids, INITIAL_LEVELS) and levels_init(&self.asks, INITIAL_LEVELS)
                and levels_init(&self._cut, INITIAL_LEVELS)):
            raise MemoryError()
        self._parsed = 0
        self._symbol_len = 0
        name_cache_init(&self._name_cache)
        self._cached_symbol = None

    def __dealloc__(self):
        levels_free(&self.bids)
        levels_free(&self.asks)
        levels_free(&self._cut)

    cdef Py_ssize_t _levels(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n, LevelBuffer* out) noexcept:
        # [{"price":<number>,"qty":<number>}, ...]: bare JSON numbers without exponent.
        cdef Py_ssize_t j
        cdef bint done = False
        cdef int price_frac, qty_frac
        cdef double price, qty
        out.n = 0
        if i >= n or s[i] != 91:
            return -1
        i = skip_ws(s, i + 1, n)
        if i < n and s[i] == 93:
            return i + 1
        while True:
            if i >= n or s[i] != 123:
                return -1
            # The layout Kraken sends, {"price":N,"qty":N}, is read without the
            # member walk; any other (whitespace, key order, other keys, other
            # number shapes) is read again from the brace by the walk.
            j = _compact_level(s, i, n, &price, &qty, &price_frac, &qty_frac)
            if j < 0:
                j = _level_members(s, i, n, &price, &qty, &price_frac, &qty_frac)
                if j < 0:
                    return -1
            if qty != 0.0:
                # Deletes need no text: only levels that stay are checksummed.
                if price_frac > self._price_frac:
                    self._price_frac = price_frac
                if qty_frac > self._qty_frac:
                    self._qty_frac = qty_frac
            if not levels_push(out, price, qty):
                return -1
            i = next_element(s, j, n, &done)
            if i < 0 or done:
                return i

    cdef Py_ssize_t _book(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
        cdef Py_ssize_t k, klen, vs
        cdef Py_ssize_t ts_start = 0
        cdef Py_ssize_t ts_len = 0
        cdef int seen = 0
        cdef int bit
        cdef bint done = False
        cdef int64_t iv = 0
        if i >= n or s[i] != 123:
            return -1
        i = skip_ws(s, i + 1, n)
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return -1
            bit = 0
            if key_is(s, k, klen, b"symbol", 6):
                bit = B_SYMBOL
                i = scan_string(s, i, n, &vs)
                if i < 0 or i - 1 - vs > MAX_SYMBOL:
                    return -1
                self._symbol_len = i - 1 - vs
                memcpy(self._symbol, s + vs, self._symbol_len)
            elif key_is(s, k, klen, b"bids", 4):
                bit = B_BIDS
                if seen & B_BIDS:
                    return -1
                i = self._levels(s, i, n, &self.bids)
            elif key_is(s, k, klen, b"asks", 4):
                bit = B_ASKS
                if seen & B_ASKS:
                    return -1
                i = self._levels(s, i, n, &self.asks)
            elif key_is(s, k, klen, b"checksum", 8):
                bit = B_CHECKSUM
                i = scan_int(s, i, n, &iv)
                self.checksum = iv
            elif key_is(s, k, klen, b"timestamp", 9):
                bit = B_TIMESTAMP
                i = scan_string(s, i, n, &ts_start)
                if i >= 0:
                    ts_len = i - 1 - ts_start
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, &seen, &done)
            if i < 0:
                return -1
            if done:
                break
        if (seen & B_REQUIRED) != B_REQUIRED:
            return -1
        if not iso8601_ms(s + ts_start, ts_len, MAX_FRACTION_DIGITS, &self.event_ms):
            return -1
        return i

    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept:
        cdef Py_ssize_t i, k, klen, vs
        cdef int seen = 0
        cdef int bit
        cdef bint done = False
        self._parsed = 0
        self.bids.n = 0
        self.asks.n = 0
        self._price_frac = 0
        self._qty_frac = 0
        self._price_frac_lo = NO_LEVELS
        self._qty_frac_lo = NO_LEVELS
        self._has_time = False
        self._has_checksum = False
        self._newest_s = 0.0
        i = skip_ws(s, 0, n)
        self._v1 = i < n and s[i] == 91
        if self._v1:
            return self.c_parse_v1(s, n)
        if i >= n or s[i] != 123:
            return 0
        i = skip_ws(s, i + 1, n)
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return 0
            bit = 0
            if key_is(s, k, klen, b"channel", 7):
                bit = F_CHANNEL
                i = scan_string(s, i, n, &vs)
                if i < 0 or not key_is(s, vs, i - 1 - vs, b"book", 4):
                    return 0
            elif key_is(s, k, klen, b"type", 4):
                bit = F_TYPE
                i = scan_string(s, i, n, &vs)
                if i < 0 or not key_is(s, vs, i - 1 - vs, b"update", 6):
                    return 0  # snapshots take the reference path
            elif key_is(s, k, klen, b"data", 4):
                bit = F_DATA
                if seen & F_DATA or i >= n or s[i] != 91:
                    return 0
                # Exactly one book: several take the reference path.
                i = self._book(s, skip_ws(s, i + 1, n), n)
                if i < 0:
                    return 0
                i = skip_ws(s, i, n)
                if i >= n or s[i] != 93:
                    return 0
                i += 1
            elif (key_is(s, k, klen, b"event", 5) or key_is(s, k, klen, b"status", 6) or key_is(s, k, klen, b"pair", 4)
                  or key_is(s, k, klen, b"subscription", 12) or key_is(s, k, klen, b"errorMessage", 12)
                  or key_is(s, k, klen, b"method", 6) or key_is(s, k, klen, b"success", 7)
                  or key_is(s, k, klen, b"error", 5) or key_is(s, k, klen, b"symbol", 6) or key_is(s, k, klen, b"result", 6)):
                return 0  # typed fields of the reference's envelope: it checks them
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, &seen, &done)
            if i < 0:
                return 0
            if done:
                break
        if skip_ws(s, i, n) != n or seen != F_TOP:
            return 0
        self._parsed = 1
        return 1

    def parse(self, data):
        """Parse one frame: True when it is a hot v2 or v1 update, else False."""
        return self._parse_object(data)

    cdef bint _parse_object(self, object data) noexcept:
        # bytes are read in place; any other buffer through the buffer protocol.
        cdef Py_buffer view
        cdef int ok
        if type(data) is bytes:
            return self.c_parse(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)) == 1
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except Exception:
            self._parsed = 0
            return False
        ok = self.c_parse(<const unsigned char*>view.buf, view.len)
        PyBuffer_Release(&view)
        return ok == 1

    cdef object _symbol_str(self):
        self._cached_symbol = cached_name(&self._name_cache, self._cached_symbol, self._symbol, self._symbol_len)
        return self._cached_symbol

    @property
    def symbol(self):
        return self._symbol_str() if self._parsed else None

    @property
    def price_decimals(self):
        """The most decimals a kept (non-zero size) level's price was written with."""
        return self._price_frac

    @property
    def qty_decimals(self):
        return self._qty_frac

    @property
    def bids(self):
        return levels_list(&self.bids)

    @property
    def asks(self):
        return levels_list(&self.asks)

    def take(self, data, dict routes not None, ChecksumCounts counts not None, mismatch):
        """The synced hot path in C; see kraken.pyi."""
        return self.c_take(data, routes, counts, mismatch)

    cdef bint c_take(self, object data, dict routes, ChecksumCounts counts, object mismatch) except -1:
        cdef object obj
        cdef KrakenBookState state
        cdef int pp, qp
        if not self._parse_object(data):  # a C call, not the Python method
            return False
        obj = routes.get(self._symbol_str())
        if type(obj) is not KrakenBookState:
            return False
        state = <KrakenBookState>obj
        if state.awaiting or not c_text_places(state, &pp, &qp):
            return False
        if self._v1:
            # v1 strings are the checksum text: each kept one must have exactly the places.
            if self._price_frac_lo != NO_LEVELS and not (self._price_frac_lo == self._price_frac == pp
                                                         and self._qty_frac_lo == self._qty_frac == qp):
                return False
        elif state._price_places < 0 or self._price_frac > pp or self._qty_frac > qp:
            return False  # v2 needs the instrument's precisions
        return self._apply_checked(state, counts, mismatch)

    cdef bint _apply_checked(self, KrakenBookState state, ChecksumCounts counts, object mismatch) except -1:
        # The tail both protocols share: checks, book, truncation, checksum, finish.
        cdef object market = state.market
        cdef OrderBook book
        cdef Py_ssize_t j
        cdef long long crc
        cdef int pp, qp
        c_text_places(state, &pp, &qp)
        if not isinstance(market, MarketCore) or type((<MarketCore>market).book) is not OrderBook:
            return False
        if not (levels_valid(&self.bids) and levels_valid(&self.asks)):
            return False
        for j in range(self.bids.n):
            if self.bids.qtys[j] != 0.0 and not (fixed_exact(self.bids.prices[j], pp)
                                                  and fixed_exact(self.bids.qtys[j], qp)):
                return False
        for j in range(self.asks.n):
            if self.asks.qtys[j] != 0.0 and not (fixed_exact(self.asks.prices[j], pp)
                                                  and fixed_exact(self.asks.qtys[j], qp)):
                return False
        book = (<MarketCore>market).book
        apply_levels(book, &self.bids, &self.asks)
        # Tokens (rare: levels whose text only the reference could write)
        # follow the book exactly as the reference keeps them.
        if state.bid_tokens:
            _drop_tokens(state.bid_tokens, &self.bids)
        if state.ask_tokens:
            _drop_tokens(state.ask_tokens, &self.asks)
        # Kraken sends no deletes for levels pushed out of the subscribed depth.
        if book.c_bid_levels() > state.depth:
            _truncate_side(book, &book._bids, True, book.c_bid_levels() - state.depth, &self._cut, state.bid_tokens)
        if book.c_ask_levels() > state.depth:
            _truncate_side(book, &book._asks, False, book.c_ask_levels() - state.depth, &self._cut,
                           state.ask_tokens)
        crc = c_book_checksum(book, state)
        if crc < 0 or crc != self.checksum:
            mismatch(state, None if crc < 0 else crc, self.checksum)
            return True
        counts.ok += 1
        finish_message(market, self.event_ms)
        return True

    # -- v1: [channelID, {"a":[..]}, ({"b":[..],"c":".."},) "book-<depth>", "XBT/USD"] --------

    cdef Py_ssize_t _v1_levels(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n, LevelBuffer* out,
                               bint asks) noexcept:
        # [["p","q","ts"(,"<string>")*], ...] appended to out; tracks decimals and the newest time.
        cdef Py_ssize_t start, j, vs
        cdef double price, qty, ts
        cdef int price_frac, qty_frac, ts_frac
        cdef Py_ssize_t ts_start
        cdef bint done = False
        if i >= n or s[i] != 91:
            return -1
        i = skip_ws(s, i + 1, n)
        if i < n and s[i] == 93:
            return i + 1
        while True:
            if i >= n or s[i] != 91:
                return -1
            i = skip_ws(s, i + 1, n)
            i = _quoted_decimal(s, i, n, &price, &price_frac)
            if i < 0 or i >= n or s[i] != 44:
                return -1
            i = _quoted_decimal(s, skip_ws(s, i + 1, n), n, &qty, &qty_frac)
            if i < 0 or i >= n or s[i] != 44:
                return -1
            ts_start = skip_ws(s, i + 1, n) + 1
            i = _quoted_decimal(s, ts_start - 1, n, &ts, &ts_frac)
            if i < 0 or ts_frac > 6:
                return -1  # more than 6 decimals: the ms from the float's max is not unique
            while i < n and s[i] == 44:  # further strings ("r": republished): plain strings only
                i = scan_string(s, skip_ws(s, i + 1, n), n, &vs)
                if i < 0:
                    return -1
                i = skip_ws(s, i, n)
            if i >= n or s[i] != 93:
                return -1
            if qty != 0.0:
                if price_frac > self._price_frac:
                    self._price_frac = price_frac
                if price_frac < self._price_frac_lo:
                    self._price_frac_lo = price_frac
                if qty_frac > self._qty_frac:
                    self._qty_frac = qty_frac
                if qty_frac < self._qty_frac_lo:
                    self._qty_frac_lo = qty_frac
            # The reference keeps the first strictly newest time within 2001..2286.
            if self._newest_s < ts < MAX_TIME_S and ts > MIN_TIME_S:
                self._newest_s = ts
                self._has_time = True
                self.event_ms = _unix_text_ms(s, ts_start)
            if not levels_push(out, price, qty):
                return -1
            i = next_element(s, i + 1, n, &done)
            if i < 0 or done:
                return i

    cdef Py_ssize_t _v1_object(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
        cdef Py_ssize_t k, klen, vs, j
        cdef int seen = 0
        cdef int bit
        cdef bint done = False
        cdef int64_t c
        if i >= n or s[i] != 123:
            return -1
        i = skip_ws(s, i + 1, n)
        if i < n and s[i] == 125:
            return i + 1
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return -1
            bit = 0
            if klen == 1 and s[k] == 97:  # a
                bit = B_ASKS
                i = self._v1_levels(s, i, n, &self.asks, True)
            elif klen == 1 and s[k] == 98:  # b
                bit = B_BIDS
                i = self._v1_levels(s, i, n, &self.bids, False)
            elif klen == 1 and s[k] == 99:  # c
                bit = B_CHECKSUM
                i = scan_string(s, i, n, &vs)
                if i < 0 or i - 1 - vs < 1 or i - 1 - vs > 18:
                    return -1
                c = 0
                for j in range(vs, i - 1):
                    if not is_digit(s[j]):
                        return -1
                    c = c * 10 + (s[j] - 48)
                self.checksum = c  # the last object's "c" wins, as in the reference
                self._has_checksum = True
            elif klen == 2 and (s[k] == 97 or s[k] == 98) and s[k + 1] == 115:  # as / bs
                return -1  # a snapshot: the reference path
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, &seen, &done)
            if i < 0:
                return -1
            if done:
                return i

    cdef int c_parse_v1(self, const unsigned char* s, Py_ssize_t n) noexcept:
        cdef Py_ssize_t i, vs
        cdef int64_t channel_id
        cdef int objects = 0
        i = skip_ws(s, 0, n)
        if i >= n or s[i] != 91:
            return 0
        i = scan_int(s, skip_ws(s, i + 1, n), n, &channel_id)
        if i < 0:
            return 0
        while True:
            i = skip_ws(s, i, n)
            if i >= n or s[i] != 44:
                return 0
            i = skip_ws(s, i + 1, n)
            if i < n and s[i] == 123:
                objects += 1
                if objects > 2:
                    return 0
                i = self._v1_object(s, i, n)
                if i < 0:
                    return 0
                continue
            break
        # "book-<depth>", then the pair, then the end.
        i = scan_string(s, i, n, &vs)
        if objects == 0 or i < 0 or i - 1 - vs < 4 or memcmp(s + vs, b"book", 4) != 0:
            return 0
        i = skip_ws(s, i, n)
        if i >= n or s[i] != 44:
            return 0
        i = scan_string(s, skip_ws(s, i + 1, n), n, &vs)
        if i < 0 or i - 1 - vs > MAX_SYMBOL:
            return 0
        self._symbol_len = i - 1 - vs
        memcpy(self._symbol, s + vs, self._symbol_len)
        i = skip_ws(s, i, n)
        if i >= n or s[i] != 93 or skip_ws(s, i + 1, n) != n:
            return 0
        if not (self._has_checksum and self._has_time):
            return 0  # no checksum (counted as skipped) or no level time: the reference decides
        self._parsed = 1
        return 1


cdef class KrakenFramePath:
    """The Kraken handler's `on_frame`, in C (see kraken.pyi)."""

    def __init__(self, KrakenParser parser not None, dict routes not None, ChecksumCounts counts not None,
                 FeedCounters counters not None, fallback, mismatch, internal_error):
        self.parser = parser
        self.routes = routes
        self.counts = counts
        self.counters = counters
        self.fallback = fallback
        self.mismatch = mismatch
        self.internal_error = internal_error

    def on_frame(self, conn_id, data, recv_ms):
        cdef bint taken
        self.counters.frames += 1
        self.counters.bytes += len(data)
        try:
            taken = self.parser.c_take(data, self.routes, self.counts, self.mismatch)
        except Exception:
            # after_message (or the mismatch reaction) raised: the reference
            # path's internal-error handling, called inside this except.
            self.internal_error(conn_id, data)
            return
        if not taken:
            self.fallback(conn_id, data, recv_ms)
