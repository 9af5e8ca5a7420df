# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Kraken WebSocket v2 `book` on the native path: update bytes -> book -> checksum -> MarketCore.

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
handler's reference path use.  Levels whose text cannot be given back (v1's
strings as sent, v2 numbers with more decimals than the precision) keep a
token in the state's dicts, read by the same function; the C path declines
while a book holds any.

`KrakenParser.take` applies a synced book's update, truncates each side to
the subscribed depth as Kraken does, checks the checksum -- a mismatch
calls the handler's `mismatch` (count, invalidate, resync through recovery),
exactly the reference path's reaction -- and finishes the message on its
market.  Everything else (snapshots, v1 arrays, other channels, a book
awaiting its snapshot or precision, a message without checksum or
timestamp, several books, exponents, any JSON this reader does not take)
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
from sentrycore.marketcore cimport MarketCore
from sentrycore.crc32 cimport crc32_update
from sentrycore.decimaltext cimport fixed_digits, fixed_exact, FIXED_DIGITS_MAX
from sentrycore.jsonscan cimport skip_ws, scan_string, scan_int, scan_number, skip_value, is_digit
from sentrycore.levels cimport (LevelBuffer, levels_init, levels_free, levels_push, levels_valid,
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


cdef inline bint _is(const unsigned char* s, Py_ssize_t k, Py_ssize_t klen, const char* word, Py_ssize_t wlen) noexcept nogil:
    return klen == wlen and memcmp(s + k, word, wlen) == 0


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
        self.bid_tokens = {}
        self.ask_tokens = {}

    @property
    def price_places(self):
        """v2 instrument price precision (None until the instrument channel says)."""
        return None if self._price_places < 0 else self._price_places

    @price_places.setter
    def price_places(self, value):
        self._price_places = _places(value)

    @property
    def qty_places(self):
        return None if self._qty_places < 0 else self._qty_places

    @qty_places.setter
    def qty_places(self, value):
        self._qty_places = _places(value)

    def checksum(self, market):
        """CRC32 of `market.book`'s top levels, or None if a level's text is missing."""
        cdef long long crc = c_book_checksum(market.book, self)
        return None if crc < 0 else crc


cdef int _places(object value) except -2:
    if value is None:
        return -1
    if type(value) is not int or value < 0:
        raise ValueError(f"precision must be a non-negative int or None, got {value!r}")
    # Beyond 22 places a power of ten is not an exact double: no level of such
    # a book is written back from its double (fixed_exact says no).
    return value if value <= 1000 else 1000


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


cdef long long c_book_checksum(OrderBook book, KrakenBookState state) except -2:
    # The text of the top levels goes into one buffer and one CRC pass.
    cdef char text[CHECKSUM_TEXT_MAX]
    cdef Py_ssize_t pos = 0
    cdef long long crc = _side_text(&book._asks, state.ask_tokens, state._price_places, state._qty_places,
                                    text, &pos, 0)
    if crc < 0:
        return -1
    crc = _side_text(&book._bids, state.bid_tokens, state._price_places, state._qty_places, text, &pos, crc)
    if crc < 0:
        return -1
    return crc32_update(<uint32_t>crc, <const unsigned char*>text, pos)


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


cdef inline void _truncate_side(OrderBook book, BookSide* side, bint bids, Py_ssize_t extra,
                                LevelBuffer* cut) noexcept:
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
                return
        slot += 1
    if cut.n == 0:
        return
    for j in range(cut.n // 2):
        t = cut.prices[j]
        cut.prices[j] = cut.prices[cut.n - 1 - j]
        cut.prices[cut.n - 1 - j] = t
    if bids:
        book.c_apply_bids(cut.prices, cut.qtys, cut.n)
    else:
        book.c_apply_asks(cut.prices, cut.qtys, cut.n)


cdef class KrakenParser:
    """Reusable reader of the hot v2 book update; see kraken.pyi."""

    def __cinit__(self):
        if not (levels_init(&self.bids, INITIAL_LEVELS) and levels_init(&self.asks, INITIAL_LEVELS)
                and levels_init(&self._cut, INITIAL_LEVELS)):
            raise MemoryError()
        self._parsed = 0
        self._symbol_len = 0
        self._cached_len = -1
        self._cached_symbol = None

    def __dealloc__(self):
        levels_free(&self.bids)
        levels_free(&self.asks)
        levels_free(&self._cut)

    cdef Py_ssize_t _levels(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n, LevelBuffer* out) noexcept:
        # [{"price":<number>,"qty":<number>}, ...]: bare JSON numbers without exponent.
        cdef Py_ssize_t k, klen, start, j
        cdef int seen, bit, frac, price_frac, qty_frac
        cdef double price, qty, v
        out.n = 0
        if i >= n or s[i] != 91:
            return -1
        i = skip_ws(s, i + 1, n)
        if i < n and s[i] == 93:
            return i + 1
        while True:
            if i >= n or s[i] != 123:
                return -1
            i = skip_ws(s, i + 1, n)
            seen = 0
            price_frac = 0
            qty_frac = 0
            while True:
                i = scan_string(s, i, n, &k)
                if i < 0:
                    return -1
                klen = i - 1 - k
                i = skip_ws(s, i, n)
                if i >= n or s[i] != 58:
                    return -1
                i = skip_ws(s, i + 1, n)
                bit = 0
                if _is(s, k, klen, b"price", 5):
                    bit = V_PRICE
                elif _is(s, k, klen, b"qty", 3):
                    bit = V_QTY
                if bit:
                    if seen & bit or i >= n or not is_digit(s[i]):
                        return -1
                    start = i
                    i = scan_number(s, i, n, False, &v)
                    if i < 0 or (i < n and (s[i] == 101 or s[i] == 69)):  # an exponent: the reference decides
                        return -1
                    frac = 0
                    for j in range(start, i):
                        if s[j] == 46:
                            frac = <int>(i - j - 1)
                            break
                    seen |= bit
                    if bit == V_PRICE:
                        price = v
                        price_frac = frac
                    else:
                        qty = v
                        qty_frac = frac
                else:
                    i = skip_value(s, i, n)
                    if i < 0:
                        return -1
                i = skip_ws(s, i, n)
                if i >= n:
                    return -1
                if s[i] == 44:
                    i = skip_ws(s, i + 1, n)
                    continue
                if s[i] == 125:
                    break
                return -1
            if seen != (V_PRICE | V_QTY):
                return -1
            if qty != 0.0:
                # Deletes need no text: only levels that stay are checksummed.
                if price_frac > self._price_frac:
                    self._price_frac = price_frac
                if qty_frac > self._qty_frac:
                    self._qty_frac = qty_frac
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

    cdef Py_ssize_t _book(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
        cdef Py_ssize_t k, klen, vs
        cdef Py_ssize_t ts_start = 0
        cdef Py_ssize_t ts_len = 0
        cdef int seen = 0
        cdef int bit
        cdef int64_t iv = 0
        if i >= n or s[i] != 123:
            return -1
        i = skip_ws(s, i + 1, n)
        while True:
            i = scan_string(s, i, n, &k)
            if i < 0:
                return -1
            klen = i - 1 - k
            i = skip_ws(s, i, n)
            if i >= n or s[i] != 58:
                return -1
            i = skip_ws(s, i + 1, n)
            bit = 0
            if _is(s, k, klen, b"symbol", 6):
                bit = B_SYMBOL
                i = scan_string(s, i, n, &vs)
                if i < 0 or i - 1 - vs > MAX_SYMBOL:
                    return -1
                self._symbol_len = i - 1 - vs
                memcpy(self._symbol, s + vs, self._symbol_len)
            elif _is(s, k, klen, b"bids", 4):
                bit = B_BIDS
                if seen & B_BIDS:
                    return -1
                i = self._levels(s, i, n, &self.bids)
            elif _is(s, k, klen, b"asks", 4):
                bit = B_ASKS
                if seen & B_ASKS:
                    return -1
                i = self._levels(s, i, n, &self.asks)
            elif _is(s, k, klen, b"checksum", 8):
                bit = B_CHECKSUM
                i = scan_int(s, i, n, &iv)
                self.checksum = iv
            elif _is(s, k, klen, b"timestamp", 9):
                bit = B_TIMESTAMP
                i = scan_string(s, i, n, &ts_start)
                if i >= 0:
                    ts_len = i - 1 - ts_start
            else:
                i = skip_value(s, i, n)
            if i < 0:
                return -1
            if bit:
                if seen & bit:
                    return -1
                seen |= bit
            i = skip_ws(s, i, n)
            if i >= n:
                return -1
            if s[i] == 44:
                i = skip_ws(s, i + 1, n)
                continue
            if s[i] == 125:
                break
            return -1
        if (seen & B_REQUIRED) != B_REQUIRED:
            return -1
        if not iso8601_ms(s + ts_start, ts_len, MAX_FRACTION_DIGITS, &self.event_ms):
            return -1
        return i + 1

    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept:
        cdef Py_ssize_t i, k, klen, vs
        cdef int seen = 0
        cdef int bit
        self._parsed = 0
        self.bids.n = 0
        self.asks.n = 0
        self._price_frac = 0
        self._qty_frac = 0
        i = skip_ws(s, 0, n)
        if i >= n or s[i] != 123:
            return 0
        i = skip_ws(s, i + 1, n)
        while True:
            i = scan_string(s, i, n, &k)
            if i < 0:
                return 0
            klen = i - 1 - k
            i = skip_ws(s, i, n)
            if i >= n or s[i] != 58:
                return 0
            i = skip_ws(s, i + 1, n)
            bit = 0
            if _is(s, k, klen, b"channel", 7):
                bit = F_CHANNEL
                i = scan_string(s, i, n, &vs)
                if i < 0 or not _is(s, vs, i - 1 - vs, b"book", 4):
                    return 0
            elif _is(s, k, klen, b"type", 4):
                bit = F_TYPE
                i = scan_string(s, i, n, &vs)
                if i < 0 or not _is(s, vs, i - 1 - vs, b"update", 6):
                    return 0  # snapshots take the reference path
            elif _is(s, k, klen, b"data", 4):
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
            elif (_is(s, k, klen, b"event", 5) or _is(s, k, klen, b"status", 6) or _is(s, k, klen, b"pair", 4)
                  or _is(s, k, klen, b"subscription", 12) or _is(s, k, klen, b"errorMessage", 12)
                  or _is(s, k, klen, b"method", 6) or _is(s, k, klen, b"success", 7)
                  or _is(s, k, klen, b"error", 5) or _is(s, k, klen, b"symbol", 6) or _is(s, k, klen, b"result", 6)):
                return 0  # typed fields of the reference's envelope: it checks them
            else:
                i = skip_value(s, i, n)
            if i < 0:
                return 0
            if bit:
                if seen & bit:
                    return 0
                seen |= bit
            i = skip_ws(s, i, n)
            if i >= n:
                return 0
            if s[i] == 44:
                i = skip_ws(s, i + 1, n)
                continue
            if s[i] == 125:
                break
            return 0
        if skip_ws(s, i + 1, n) != n or seen != F_TOP:
            return 0
        self._parsed = 1
        return 1

    def parse(self, data):
        """Parse one frame: True when it is the hot v2 update shape, else False."""
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
        if self._cached_len != self._symbol_len or memcmp(self._cached, self._symbol, self._symbol_len) != 0:
            self._cached_symbol = PyUnicode_DecodeASCII(self._symbol, self._symbol_len, NULL)
            memcpy(self._cached, self._symbol, self._symbol_len)
            self._cached_len = self._symbol_len
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
        return [(self.bids.prices[j], self.bids.qtys[j]) for j in range(self.bids.n)]

    @property
    def asks(self):
        return [(self.asks.prices[j], self.asks.qtys[j]) for j in range(self.asks.n)]

    def take(self, data, dict routes not None, ChecksumCounts counts not None, mismatch):
        """The synced hot path in C; see kraken.pyi."""
        return self.c_take(data, routes, counts, mismatch)

    cdef bint c_take(self, object data, dict routes, ChecksumCounts counts, object mismatch) except -1:
        cdef object obj, market
        cdef KrakenBookState state
        cdef OrderBook book
        cdef Py_ssize_t j
        cdef long long crc
        if not self.parse(data):
            return False
        obj = routes.get(self._symbol_str())
        if type(obj) is not KrakenBookState:
            return False
        state = <KrakenBookState>obj
        if state.awaiting or state._price_places < 0 or state._qty_places < 0:
            return False
        if state.bid_tokens or state.ask_tokens:
            return False  # levels whose text only Python holds: the reference path
        if self._price_frac > state._price_places or self._qty_frac > state._qty_places:
            return False
        market = state.market
        if not isinstance(market, MarketCore) or type((<MarketCore>market).book) is not OrderBook:
            return False
        if not (levels_valid(&self.bids) and levels_valid(&self.asks)):
            return False
        for j in range(self.bids.n):
            if self.bids.qtys[j] != 0.0 and not (fixed_exact(self.bids.prices[j], state._price_places)
                                                  and fixed_exact(self.bids.qtys[j], state._qty_places)):
                return False
        for j in range(self.asks.n):
            if self.asks.qtys[j] != 0.0 and not (fixed_exact(self.asks.prices[j], state._price_places)
                                                  and fixed_exact(self.asks.qtys[j], state._qty_places)):
                return False
        book = (<MarketCore>market).book
        apply_levels(book, &self.bids, &self.asks)
        # Kraken sends no deletes for levels pushed out of the subscribed depth.
        if book.c_bid_levels() > state.depth:
            _truncate_side(book, &book._bids, True, book.c_bid_levels() - state.depth, &self._cut)
        if book.c_ask_levels() > state.depth:
            _truncate_side(book, &book._asks, False, book.c_ask_levels() - state.depth, &self._cut)
        crc = c_book_checksum(book, state)
        if crc < 0 or crc != self.checksum:
            mismatch(state, None if crc < 0 else crc, self.checksum)
            return True
        counts.ok += 1
        finish_message(market, self.event_ms)
        return True


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
