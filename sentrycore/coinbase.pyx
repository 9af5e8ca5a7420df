# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Coinbase Advanced Trade `level2` on the native path: `l2_data` bytes -> book -> MarketCore.

The layout-specific piece of the shared native path (sentrycore/levels.pxd):
it reads the hot frame shape

    {"channel":"l2_data","timestamp":"<RFC 3339>","sequence_num":n,
     "events":[{"type":"update","product_id":"BTC-USD",
                "updates":[{"side":"bid"|"offer","event_time":..,"price_level":"p","new_quantity":"q"},..]}]}

(keys in any order, JSON whitespace, unknown keys with plain values) into
the shared level buffers, and `take` applies it when it is the next message
of its connection (`sequence_num == last + 1`, the rule
sentrycoin.feeds.coinbase applies to every message across channels) for a
product whose books are synced.  The message time is read from `timestamp`
in C exactly as the handler's `datetime.fromisoformat` reading gives it.

The members in the order and compact form Coinbase sends them are matched
with memcmp first; only a frame (or a level) of another layout pays the
general key-by-key reader, which accepts a superset of that form.

Everything else -- snapshots, other channels (ticker, heartbeats, ...), a
sequence gap, several events, an unknown side, a bad value, any JSON this
reader does not take -- leaves every state untouched and goes to the
handler's msgspec path, the reference (tests/feeds/test_coinbase_native.py
drives both with the same frames and compares books, states and counters).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.stdint cimport int64_t, INT64_MAX
from libc.string cimport memcmp, memcpy

from sentrycore.book cimport OrderBook
from sentrycore.counters cimport FeedCounters
from sentrycore.names cimport cached_name, name_cache_init
from sentrycore.int64box cimport hold_int64
from sentrycore.marketcore cimport MarketCore
from sentrycore.jsonscan cimport (skip_ws, scan_string, scan_int, skip_value, scan_level_number, key_is, scan_key,
                                  end_member, next_element)
from sentrycore.levels cimport (levels_list, LevelBuffer, levels_init, levels_free, levels_push, levels_valid,
                                apply_levels, finish_message)
from sentrycore.texttime cimport iso8601_ms


cdef enum:
    INITIAL_LEVELS = 64
    MAX_PRODUCT = 47
    # Top-level keys.
    F_CHANNEL = 1
    F_TIMESTAMP = 2
    F_SEQ = 4
    F_EVENTS = 8
    F_TOP = F_CHANNEL | F_TIMESTAMP | F_SEQ | F_EVENTS
    # Event keys.
    E_TYPE = 1
    E_PRODUCT = 2
    E_UPDATES = 4
    E_ALL = E_TYPE | E_PRODUCT | E_UPDATES
    # Level keys.
    L_SIDE = 1
    L_PRICE = 2
    L_QTY = 4
    L_ALL = L_SIDE | L_PRICE | L_QTY
    # fromisoformat keeps 6 fraction digits and ignores the rest; Coinbase sends 9.
    MAX_FRACTION_DIGITS = 12


cdef class SequenceState:
    """One connection's `sequence_num` follower, shared by both paths."""

    def __init__(self):
        self.last_seq = None

    @property
    def last_seq(self):
        """The last `sequence_num` seen on the connection (None: none yet)."""
        return self._last if self._last_ok else self._last_other

    @last_seq.setter
    def last_seq(self, value):
        # None, or an int beyond int64: the C path declines, Python decides.
        self._last_ok = hold_int64(value, &self._last)
        self._last_other = None if self._last_ok else value


cdef class ProductState:
    """One served product's sync flag and the markets its book feeds."""

    def __init__(self, markets):
        self.markets = list(markets)
        self.awaiting = True


cdef class CoinbaseParser:
    """Reusable parser of the hot `l2_data` update frame; see coinbase.pyi."""

    def __cinit__(self):
        if not (levels_init(&self.bids, INITIAL_LEVELS) and levels_init(&self.asks, INITIAL_LEVELS)):
            raise MemoryError()
        self._parsed = 0
        self._product_len = 0
        name_cache_init(&self._name_cache)
        self._cached_product = None

    def __dealloc__(self):
        levels_free(&self.bids)
        levels_free(&self.asks)

    cdef Py_ssize_t _level_compact(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
        # The level exactly as Coinbase sends it -- {"side":"bid"|"offer",
        # "event_time":"..","price_level":..,"new_quantity":..}, no whitespace
        # between members -- matched with a few memcmp instead of a key scan
        # per member.  -1 when it has any other shape (nothing pushed): _level
        # then reads it, so this only ever accepts what _level accepts.
        cdef Py_ssize_t vs
        cdef int side
        cdef double price = 0.0
        cdef double qty = 0.0
        if n - i >= 29 and memcmp(s + i, b'{"side":"bid","event_time":', 27) == 0:
            side = 1
            i += 27
        elif n - i >= 31 and memcmp(s + i, b'{"side":"offer","event_time":', 29) == 0:
            side = 2
            i += 29
        else:
            return -1
        i = scan_string(s, i, n, &vs)
        if i < 0 or n - i < 15 or memcmp(s + i, b',"price_level":', 15) != 0:
            return -1
        i = scan_level_number(s, i + 15, n, &price)
        if i < 0 or n - i < 16 or memcmp(s + i, b',"new_quantity":', 16) != 0:
            return -1
        i = scan_level_number(s, i + 16, n, &qty)
        if i < 0 or i >= n or s[i] != 125:  # '}'
            return -1
        if not levels_push(&self.bids if side == 1 else &self.asks, price, qty):
            return -1
        return i + 1

    cdef Py_ssize_t _updates(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
        # The `updates` array from its '[': index after its ']', or -1.
        cdef Py_ssize_t j
        cdef bint done = False
        if i >= n or s[i] != 91:  # '['
            return -1
        i = skip_ws(s, i + 1, n)
        if i < n and s[i] == 93:  # ']'
            return i + 1
        while True:
            j = self._level_compact(s, i, n)
            i = self._level(s, i, n) if j < 0 else j
            if i < 0:
                return -1
            i = next_element(s, i, n, &done)
            if i < 0 or done:
                return i

    cdef Py_ssize_t _level(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
        # {"side":..,"price_level":..,"new_quantity":..}: pushed to its side.
        cdef Py_ssize_t k, klen, vs
        cdef int seen = 0
        cdef int bit
        cdef bint done = False
        cdef int side = 0  # 1 bid, 2 offer
        cdef double price = 0.0
        cdef double qty = 0.0
        if i >= n or s[i] != 123:  # '{'
            return -1
        i = skip_ws(s, i + 1, n)
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return -1
            bit = 0
            if key_is(s, k, klen, b"side", 4):
                bit = L_SIDE
                i = scan_string(s, i, n, &vs)
                if i < 0:
                    return -1
                if key_is(s, vs, i - 1 - vs, b"bid", 3):
                    side = 1
                elif key_is(s, vs, i - 1 - vs, b"offer", 5):
                    side = 2
                else:
                    return -1  # unknown side: the reference path rejects the message
            elif key_is(s, k, klen, b"price_level", 11):
                bit = L_PRICE
                i = scan_level_number(s, i, n, &price)
            elif key_is(s, k, klen, b"new_quantity", 12):
                bit = L_QTY
                i = scan_level_number(s, i, n, &qty)
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, &seen, &done)
            if i < 0:
                return -1
            if done:
                break
        if seen != L_ALL:
            return -1
        if not levels_push(&self.bids if side == 1 else &self.asks, price, qty):
            return -1
        return i

    cdef Py_ssize_t _event(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
        cdef Py_ssize_t k, klen, vs
        cdef int seen = 0
        cdef int bit
        cdef bint done = False
        if i >= n or s[i] != 123:
            return -1
        i = skip_ws(s, i + 1, n)
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return -1
            bit = 0
            if key_is(s, k, klen, b"type", 4):
                bit = E_TYPE
                i = scan_string(s, i, n, &vs)
                if i < 0 or not key_is(s, vs, i - 1 - vs, b"update", 6):
                    return -1  # snapshots (and anything else) take the reference path
            elif key_is(s, k, klen, b"product_id", 10):
                bit = E_PRODUCT
                i = scan_string(s, i, n, &vs)
                if i < 0 or i - 1 - vs > MAX_PRODUCT:
                    return -1
                self._product_len = i - 1 - vs
                memcpy(self._product, s + vs, self._product_len)
            elif key_is(s, k, klen, b"updates", 7):
                bit = E_UPDATES
                if seen & E_UPDATES:
                    return -1
                i = self._updates(s, i, n)
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, &seen, &done)
            if i < 0:
                return -1
            if done:
                break
        if seen != E_ALL:
            return -1
        return i

    cdef int _parse_compact(self, const unsigned char* s, Py_ssize_t n) noexcept:
        # The frame exactly as Coinbase sends it (members in this order, no
        # whitespace outside the levels):
        #   {"channel":"l2_data","timestamp":"..","sequence_num":n,"events":[
        #    {"type":"update","product_id":"..","updates":[..]}]}
        # matched with memcmp instead of a key scan per member.  0 when it has
        # any other shape (c_parse then runs the general reader), so this
        # only ever accepts what that reader accepts.
        cdef Py_ssize_t i, vs, ts_start
        cdef Py_ssize_t ts_len
        cdef int64_t iv = 0
        if n < 35 or memcmp(s, b'{"channel":"l2_data","timestamp":', 33) != 0:
            return 0
        i = scan_string(s, 33, n, &ts_start)
        if i < 0:
            return 0
        ts_len = i - 1 - ts_start
        if n - i < 16 or memcmp(s + i, b',"sequence_num":', 16) != 0:
            return 0
        i = scan_int(s, i + 16, n, &iv)
        if i < 0 or n - i < 43 or memcmp(s + i, b',"events":[{"type":"update","product_id":', 41) != 0:
            return 0
        i = scan_string(s, i + 41, n, &vs)
        if i < 0 or i - 1 - vs > MAX_PRODUCT or n - i < 12 or memcmp(s + i, b',"updates":', 11) != 0:
            return 0
        self._product_len = i - 1 - vs
        memcpy(self._product, s + vs, self._product_len)
        i = self._updates(s, i + 11, n)
        if i < 0 or n - i < 3 or memcmp(s + i, b'}]}', 3) != 0 or skip_ws(s, i + 3, n) != n:
            return 0
        if not iso8601_ms(s + ts_start, ts_len, MAX_FRACTION_DIGITS, &self.event_ms):
            return 0
        self.sequence_num = iv
        self._parsed = 1
        return 1

    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept:
        self._parsed = 0
        self.bids.n = 0
        self.asks.n = 0
        if self._parse_compact(s, n):
            return 1
        self.bids.n = 0
        self.asks.n = 0
        return self._parse_general(s, n)

    cdef int _parse_general(self, const unsigned char* s, Py_ssize_t n) noexcept:
        cdef Py_ssize_t i, k, klen, vs
        cdef Py_ssize_t ts_start = 0
        cdef Py_ssize_t ts_len = 0
        cdef int seen = 0
        cdef int bit
        cdef bint done = False
        cdef int64_t iv = 0
        i = skip_ws(s, 0, n)
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
                if i < 0 or not key_is(s, vs, i - 1 - vs, b"l2_data", 7):
                    return 0
            elif key_is(s, k, klen, b"timestamp", 9):
                bit = F_TIMESTAMP
                i = scan_string(s, i, n, &ts_start)
                if i >= 0:
                    ts_len = i - 1 - ts_start
            elif key_is(s, k, klen, b"sequence_num", 12):
                bit = F_SEQ
                i = scan_int(s, i, n, &iv)
                self.sequence_num = iv
            elif key_is(s, k, klen, b"events", 6):
                bit = F_EVENTS
                if seen & F_EVENTS or i >= n or s[i] != 91:
                    return 0
                # Exactly one event: several take the reference path.
                i = self._event(s, skip_ws(s, i + 1, n), n)
                if i < 0:
                    return 0
                i = skip_ws(s, i, n)
                if i >= n or s[i] != 93:
                    return 0
                i += 1
            elif key_is(s, k, klen, b"type", 4) or key_is(s, k, klen, b"message", 7):
                return 0  # typed str fields of the envelope: the reference checks them
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, &seen, &done)
            if i < 0:
                return 0
            if done:
                break
        if skip_ws(s, i, n) != n or seen != F_TOP:
            return 0
        if not iso8601_ms(s + ts_start, ts_len, MAX_FRACTION_DIGITS, &self.event_ms):
            return 0
        self._parsed = 1
        return 1

    def parse(self, data):
        """Parse one frame: True when it is the hot shape (fields below), else False."""
        return self._parse_object(data) == 1

    cdef int _parse_object(self, object data) noexcept:
        cdef Py_buffer view
        cdef int ok
        if type(data) is bytes:
            return self.c_parse(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except Exception:
            self._parsed = 0
            return 0
        ok = self.c_parse(<const unsigned char*>view.buf, view.len)
        PyBuffer_Release(&view)
        return ok

    cdef object _product_str(self):
        self._cached_product = cached_name(&self._name_cache, self._cached_product, self._product,
                                           self._product_len)
        return self._cached_product

    @property
    def product_id(self):
        return self._product_str() if self._parsed else None

    @property
    def bids(self):
        return levels_list(&self.bids)

    @property
    def asks(self):
        return levels_list(&self.asks)

    def take(self, data, SequenceState seq, dict products not None):
        """The synced hot path in C; see coinbase.pyi."""
        return self.c_take(data, seq, products)

    cdef bint c_take(self, object data, SequenceState seq, dict products) except -1:
        cdef object obj, market
        cdef ProductState product
        cdef OrderBook book
        if seq is None or not seq._last_ok:
            return False
        if self._parse_object(data) != 1:
            return False
        if seq._last == INT64_MAX or self.sequence_num != seq._last + 1:
            return False  # a gap: the reference path resyncs the connection
        obj = products.get(self._product_str())
        if type(obj) is not ProductState:
            return False
        product = <ProductState>obj
        if product.awaiting or not product.markets:
            return False
        if not (levels_valid(&self.bids) and levels_valid(&self.asks)):
            return False  # the reference path rejects it (count, invalidate, resubscribe)
        for market in product.markets:
            # The book is read from its market each time (a test may swap it);
            # a Python subclass of OrderBook takes the reference path, whose
            # `apply` it may override.
            if not isinstance(market, MarketCore) or type((<MarketCore>market).book) is not OrderBook:
                return False
        seq._last = self.sequence_num
        # The reference path applies nothing for an empty update, then finishes.
        if self.bids.n + self.asks.n > 0:
            for market in product.markets:
                apply_levels((<MarketCore>market).book, &self.bids, &self.asks)
        for market in product.markets:
            finish_message(market, self.event_ms)
        return True


cdef class CoinbaseFramePath:
    """The Coinbase handler's `on_frame`, in C (see coinbase.pyi)."""

    def __init__(self, CoinbaseParser parser not None, dict sequences not None, dict products not None,
                 FeedCounters counters not None, fallback, internal_error):
        self.parser = parser
        self.sequences = sequences
        self.products = products
        self.counters = counters
        self.fallback = fallback
        self.internal_error = internal_error

    def on_frame(self, conn_id, data, recv_ms):
        cdef object seq
        cdef bint taken
        self.counters.frames += 1
        self.counters.bytes += len(data)
        seq = self.sequences.get(conn_id)
        if type(seq) is not SequenceState:
            self.fallback(conn_id, data, recv_ms)
            return
        try:
            taken = self.parser.c_take(data, <SequenceState>seq, self.products)
        except Exception:
            # after_message raised (an alert sink's bug): what the reference
            # path does with an internal error, called inside this except.
            self.internal_error(conn_id, data)
            return
        if not taken:
            self.fallback(conn_id, data, recv_ms)
