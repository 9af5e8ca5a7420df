# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Allocation-free parser for Binance diff-depth (`depthUpdate`) JSON frames.

The generic path (msgspec into Structs, then numpy arrays) builds ~2 Python
objects per price level; this parser reads the frame bytes once and writes
prices and quantities straight into reusable float64 buffers, which an
`OrderBook` then takes through its C API.

It accepts a deliberately narrow subset of JSON: the two frame shapes Binance
sends (combined stream `{"stream":..,"data":{..}}` and the raw event), keys in
any order, any JSON whitespace, unknown keys whose values are plain strings,
numbers or literals.  Anything else -- escapes, non-ASCII, nested unknown
values, signs, leading zeros, duplicate keys, missing fields, trailing bytes,
numbers over 96 characters or beyond the double range -- answers "not
parsed" and the caller falls back to msgspec, which is the reference: on
every frame this parser accepts it must produce exactly what msgspec gives
(tests/core/test_parse.py).  The parser never raises.

Two readers, tried in turn.  Binance writes every depthUpdate the same
way, so `_binance_layout` reads exactly those bytes (no whitespace, its key
order, `"I.FFFFFFFF"` numbers, a whole level after one length check) and
declines at the first byte that differs; the key-order-agnostic `_object`
reader then parses the frame from the start and stays the definition.  The
first accepts a subset of what the second accepts and gives bit-identical
results (tests/core/test_parse_layout.py).  benches/bench_parse_floor.py
times it against a parser hand-written for that one layout.

Decimal strings are converted as Python's float() does: when the digits
form an integer m <= 2**53 and the decimal exponent e is within +-22,
`m * 10**e` / `m / 10**-e` is one correctly rounded IEEE operation on two
exact operands (Clinger's fast path); everything else goes through
PyOS_string_to_double, the routine float() itself uses.  The common Binance
shape (`61737.63000000`: <= 7 integer digits, <= 8 decimals) is read with
two 64-bit loads (SWAR digit checks and conversion) instead of a loop.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp, memcpy

from sentrycore.book cimport OrderBook
from sentrycore.counters cimport FeedCounters
from sentrycore.names cimport cached_name, name_cache_init
from sentrycore.int64box cimport hold_int64
from sentrycore.jsonscan cimport (skip_ws, scan_string, scan_int, skip_value, scan_level_number, digit_run, scan_key,
                                  eight_value_w, not_digits, end_member, next_element_compact)
from sentrycore.levels cimport (levels_list, LevelBuffer, levels_init, levels_free, levels_push, levels_valid,
                                read_level_array, apply_levels, finish_message)


cdef enum:
    F_E = 1
    F_S = 2
    F_UU = 4      # "U"
    F_LU = 8      # "u"
    F_B = 16
    F_A = 32
    F_PU = 64
    F_REQUIRED = F_E | F_S | F_UU | F_LU | F_B | F_A
    F_STREAM = 128
    F_DATA = 256
    INITIAL_LEVELS = 64


# -- Binance's own layout, read first ----------------------------------------------------
#
# Binance writes every depthUpdate the same way: no whitespace, keys in the
# order of its docs (futures add "T" after "E" and "pu" after "u"), prices
# and quantities as `I.FFFFFFFF` strings.  `_binance_layout` reads exactly
# that, byte for byte, and answers -1 at the first byte that differs; the
# key-order-agnostic reader (`_object`) then parses the frame from the start
# and stays the definition.  What the layout reader accepts is a subset of
# what `_object` accepts (the same primitives for integers and strings, no
# whitespace, no unknown or repeated keys) and gives the same values: its
# one number shape is read exactly as scan_short_number reads it (m / 1e8, m
# exact), any other number goes through scan_level_number itself.
# tests/core/test_parse.py runs both readers on the same frames.

cdef extern from *:
    """
    /* The low k bytes of a word, k = 1..7 (k = 0: all of it, which never
       passes the digit test below, since a "." must follow the digits). */
    static const uint64_t SENTRY_LOW_BYTES[8] = {0xFFFFFFFFFFFFFFFFULL, 0xFFULL, 0xFFFFULL, 0xFFFFFFULL,
                                                 0xFFFFFFFFULL, 0xFFFFFFFFFFULL, 0xFFFFFFFFFFFFULL,
                                                 0xFFFFFFFFFFFFFFULL};
    """
    const uint64_t SENTRY_LOW_BYTES[8]


cdef inline Py_ssize_t binance_decimal(const unsigned char* s, Py_ssize_t i, double* out,
                                       int* width) noexcept:
    # `I.FFFFFFFF"` at s[i] (1-7 integer digits, no leading zero, exactly 8
    # decimals; 18 bytes readable): the index of the closing '"', or -1 for
    # any other text.  *width: the integer digit count of the column's
    # previous number, tried first so that finding the next number does not
    # wait on this one's bytes (the checks become well-predicted branches).
    # The value is scan_short_number's for this shape: m / 1e8, m exact.
    cdef uint64_t w, w2
    cdef int k = width[0]
    memcpy(&w, s + i, 8)
    if (not_digits(w) & SENTRY_LOW_BYTES[k]) != 0 or s[i + k] != 46:
        k = digit_run(w)
        if k == 0 or k == 8 or s[i + k] != 46:
            return -1
        width[0] = k
    if k > 1 and s[i] == 48:
        return -1  # a leading zero: not JSON
    memcpy(&w2, s + i + 1 + k, 8)
    if not_digits(w2) != 0 or s[i + 9 + k] != 34:
        return -1
    out[0] = (<double>(eight_value_w((w - 0x3030303030303030ULL) << (8 * (8 - k))) * 100000000ULL
                       + eight_value_w(w2 - 0x3030303030303030ULL))) / 1e8
    return i + 9 + k


cdef inline Py_ssize_t binance_number(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                                      double* out, int* width) noexcept:
    # One price or quantity at s[i]: the index after it (and its closing
    # quote, and, off the common shape, any whitespace), or -1.
    cdef Py_ssize_t j
    if n - i >= 18 and s[i] == 34:
        j = binance_decimal(s, i + 1, out, width)
        if j >= 0:
            return j + 1
    return scan_level_number(s, i, n, out)


cdef inline Py_ssize_t binance_levels(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                                      LevelBuffer* out) noexcept:
    # `[["p","q"],...]` without whitespace: the index after the closing ']' or -1.
    cdef double price, qty
    cdef int price_width = 5, qty_width = 1  # BTCUSDT's; each column learns its own
    cdef Py_ssize_t j
    cdef bint done = False
    out.n = 0
    if i >= n or s[i] != 91:  # '['
        return -1
    i += 1
    if i < n and s[i] == 93:  # ']'
        return i + 1
    while True:
        # The longest common-shape level, `["1234567.12345678","1234567.12345678"]`,
        # and the byte after it fit in 40: one length check for the whole level.
        j = -1
        if n - i >= 40 and s[i] == 91 and s[i + 1] == 34:  # ["
            j = binance_decimal(s, i + 2, &price, &price_width)
            if j >= 0 and s[j + 1] == 44 and s[j + 2] == 34:  # ","
                j = binance_decimal(s, j + 3, &qty, &qty_width)
                if j >= 0 and s[j + 1] != 93:  # ]
                    j = -1
            else:
                j = -1
        if j >= 0:
            i = j + 1
        else:  # another shape, or the frame's last bytes: number by number
            if i >= n or s[i] != 91:
                return -1
            i = binance_number(s, i + 1, n, &price, &price_width)
            if i < 0 or i >= n or s[i] != 44:  # ','
                return -1
            i = binance_number(s, i + 1, n, &qty, &qty_width)
            if i < 0 or n - i < 2 or s[i] != 93:
                return -1
        if not levels_push(out, price, qty):
            return -1
        i = next_element_compact(s, i + 1, &done)  # s[i + 1] is inside: checked above
        if i < 0 or done:
            return i


cdef extern from *:
    """
    /* The first `size` bytes of `lit` at s[i] (i < 0: no).  Compared in
       8-byte words (little-endian, like jsonscan's SWAR), the last one
       masked; both sides must have the size rounded up to 8 readable, so the
       literals are padded to 32 bytes and a frame must have that many left
       (each key here is followed by more than that in any frame).  Forced
       inline so that `lit` and `size` are constants: a few immediate
       compares instead of a memcmp call. */
    static inline __attribute__((always_inline)) int sentry_has_text(
            const unsigned char* s, Py_ssize_t i, Py_ssize_t n, const char* lit, int size) {
        uint64_t a, b, diff = 0;
        int k;
        if (i < 0 || n - i < ((size + 7) & ~7)) return 0;
        for (k = 0; k + 8 <= size; k += 8) {
            memcpy(&a, s + i + k, 8); memcpy(&b, lit + k, 8); diff |= a ^ b;
        }
        if (k < size) {
            memcpy(&a, s + i + k, 8); memcpy(&b, lit + k, 8);
            diff |= (a ^ b) & ((1ULL << (8 * (size - k))) - 1);
        }
        return diff == 0;
    }
    static const char SENTRY_BINANCE_HEAD[32] = "{\\"stream\\":";
    static const char SENTRY_BINANCE_DATA[32] = ",\\"data\\":{\\"e\\":\\"depthUpdate\\",\\"E\\":";
    static const char SENTRY_BINANCE_T[32] = ",\\"T\\":";
    static const char SENTRY_BINANCE_S[32] = ",\\"s\\":";
    static const char SENTRY_BINANCE_UU[32] = ",\\"U\\":";
    static const char SENTRY_BINANCE_LU[32] = ",\\"u\\":";
    static const char SENTRY_BINANCE_PU[32] = ",\\"pu\\":";
    static const char SENTRY_BINANCE_B[32] = ",\\"b\\":";
    static const char SENTRY_BINANCE_A[32] = ",\\"a\\":";
    """
    bint has_text "sentry_has_text"(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, const char* lit,
                                    int size) noexcept nogil
    const char* HEAD "SENTRY_BINANCE_HEAD"  # {"stream":
    const char* DATA "SENTRY_BINANCE_DATA"  # ,"data":{"e":"depthUpdate","E":
    const char* KEY_T "SENTRY_BINANCE_T"
    const char* KEY_S "SENTRY_BINANCE_S"
    const char* KEY_UU "SENTRY_BINANCE_UU"
    const char* KEY_LU "SENTRY_BINANCE_LU"
    const char* KEY_PU "SENTRY_BINANCE_PU"
    const char* KEY_B "SENTRY_BINANCE_B"
    const char* KEY_A "SENTRY_BINANCE_A"


cdef class DepthParser:
    """Reusable parser; see sentrycore/parse.pyi for the Python API."""

    def __cinit__(self):
        if not (levels_init(&self.bids, INITIAL_LEVELS) and levels_init(&self.asks, INITIAL_LEVELS)):
            raise MemoryError()
        self.kind = 0
        self._sym_len = 0
        name_cache_init(&self._name_cache)
        self._cached_symbol = None

    def __dealloc__(self):
        levels_free(&self.bids)
        levels_free(&self.asks)

    cdef Py_ssize_t _object(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                            bint top, int* fields) noexcept:
        """One JSON object; at the top level "stream" and "data" are also known."""
        cdef Py_ssize_t k, klen, sym_start
        cdef int bit
        cdef bint done = False
        cdef int64_t iv
        if i >= n or s[i] != 123:  # '{'
            return -1
        i = skip_ws(s, i + 1, n)
        if i < n and s[i] == 125:  # '}'
            return i + 1
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return -1
            bit = 0
            if klen == 1:
                if s[k] == 69:  # E
                    bit = F_E
                    i = scan_int(s, i, n, &iv)
                    self.E = iv
                elif s[k] == 115:  # s
                    bit = F_S
                    i = scan_string(s, i, n, &sym_start)
                    if i >= 0:
                        if i - 1 - sym_start > 47:
                            return -1
                        self._sym_len = i - 1 - sym_start
                        memcpy(self._sym, s + sym_start, self._sym_len)
                elif s[k] == 85:  # U
                    bit = F_UU
                    i = scan_int(s, i, n, &iv)
                    self.U = iv
                elif s[k] == 117:  # u
                    bit = F_LU
                    i = scan_int(s, i, n, &iv)
                    self.u = iv
                elif s[k] == 98:  # b
                    bit = F_B
                    i = read_level_array(s, i, n, &self.bids, 0)
                elif s[k] == 97:  # a
                    bit = F_A
                    i = read_level_array(s, i, n, &self.asks, 0)
                else:
                    i = skip_value(s, i, n)
            elif klen == 2 and s[k] == 112 and s[k + 1] == 117:  # pu
                bit = F_PU
                i = scan_int(s, i, n, &iv)
                self.pu = iv
            elif top and klen == 6 and memcmp(s + k, b"stream", 6) == 0:
                bit = F_STREAM
                i = scan_string(s, i, n, &sym_start)
            elif top and klen == 4 and memcmp(s + k, b"data", 4) == 0:
                bit = F_DATA
                if fields[0] & F_DATA:
                    return -1
                fields[0] |= F_DATA
                i = self._object(s, i, n, False, &fields[1])
                bit = 0
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, fields, &done)
            if i < 0:
                return -1
            if done:
                return i

    cdef int _binance_layout(self, const unsigned char* s, Py_ssize_t n) noexcept:
        """A combined-stream frame exactly as Binance writes it: 1, or 0 at the first surprise."""
        cdef Py_ssize_t i, start
        cdef int64_t iv
        if not has_text(s, 0, n, HEAD, 10):
            return 0
        i = scan_string(s, 10, n, &start)
        if not has_text(s, i, n, DATA, 31):
            return 0
        i = scan_int(s, i + 31, n, &iv)
        if i < 0:
            return 0
        self.E = iv
        if has_text(s, i, n, KEY_T, 5):  # futures: the transaction time, not used
            i = scan_int(s, i + 5, n, &iv)
        if not has_text(s, i, n, KEY_S, 5):
            return 0
        i = scan_string(s, i + 5, n, &start)
        if i < 0 or i - 1 - start > 47:
            return 0
        self._sym_len = i - 1 - start
        if self._sym_len <= 16 and n - start >= 16:  # one constant-size copy
            memcpy(self._sym, s + start, 16)
        else:
            memcpy(self._sym, s + start, self._sym_len)
        if not has_text(s, i, n, KEY_UU, 5):
            return 0
        i = scan_int(s, i + 5, n, &iv)
        if not has_text(s, i, n, KEY_LU, 5):
            return 0
        self.U = iv
        i = scan_int(s, i + 5, n, &iv)
        if i < 0:
            return 0
        self.u = iv
        if has_text(s, i, n, KEY_PU, 6):
            i = scan_int(s, i + 6, n, &iv)
            if i < 0:
                return 0
            self.pu = iv
            self.has_pu = True
        if not has_text(s, i, n, KEY_B, 5):
            return 0
        i = binance_levels(s, i + 5, n, &self.bids)
        if not has_text(s, i, n, KEY_A, 5):
            return 0
        i = binance_levels(s, i + 5, n, &self.asks)
        if i < 0 or i != n - 2 or s[i] != 125 or s[i + 1] != 125:  # "}}" and the end
            return 0
        self.kind = 1
        return 1

    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept:
        self.kind = 0
        self.has_pu = False
        if self._binance_layout(s, n):
            return 1
        return self._any_layout(s, n)

    cdef int _any_layout(self, const unsigned char* s, Py_ssize_t n) noexcept:
        """Any frame of the accepted subset, keys in any order (the definition)."""
        # fields[0]: keys seen at the top level; fields[1]: inside "data".
        cdef int fields[2]
        cdef Py_ssize_t i
        fields[0] = 0
        fields[1] = 0
        self.kind = 0
        self.bids.n = 0
        self.asks.n = 0
        self.has_pu = False
        i = self._object(s, skip_ws(s, 0, n), n, True, fields)
        if i < 0 or skip_ws(s, i, n) != n:
            return 0
        if fields[0] & (F_DATA | F_STREAM):
            if (fields[0] & (F_DATA | F_STREAM)) != (F_DATA | F_STREAM):
                return 0
            if fields[0] & ~(F_DATA | F_STREAM):
                return 0  # depth keys beside "data": ambiguous, not ours
            if (fields[1] & F_REQUIRED) != F_REQUIRED:
                return 0
            self.has_pu = (fields[1] & F_PU) != 0
            self.kind = 1
        else:
            if (fields[0] & F_REQUIRED) != F_REQUIRED:
                return 0
            self.has_pu = (fields[0] & F_PU) != 0
            self.kind = 2
        return self.kind

    cpdef int parse(self, object data) noexcept:
        """Parse one frame; returns 1 (combined stream), 2 (raw event) or 0 (not parsed)."""
        if type(data) is bytes:
            return self.c_parse(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        return self._parse_buffer(data, 0)

    cdef int _parse_buffer(self, object data, int reader) noexcept:
        # reader 0: c_parse; 1: _binance_layout only; 2: _any_layout only.
        cdef Py_buffer view
        cdef int kind
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except Exception:
            self.kind = 0
            return 0
        if reader == 1:
            self.kind = 0
            self.has_pu = False
            kind = self._binance_layout(<const unsigned char*>view.buf, view.len)
        elif reader == 2:
            kind = self._any_layout(<const unsigned char*>view.buf, view.len)
        else:
            kind = self.c_parse(<const unsigned char*>view.buf, view.len)
        PyBuffer_Release(&view)
        return kind

    def parse_binance_layout(self, data):
        """`parse` with only the reader of Binance's exact layout (0 where it is unsure)."""
        return self._parse_buffer(data, 1)

    def parse_any_layout(self, data):
        """`parse` with only the key-order-agnostic reader, the definition."""
        return self._parse_buffer(data, 2)

    cdef bint c_valid(self) noexcept nogil:
        return levels_valid(&self.bids) and levels_valid(&self.asks)

    cdef int c_apply_to(self, OrderBook book) noexcept nogil:
        # One call for both sides: the book validates all levels of the
        # message before touching either side, so a rejected one leaves no trace.
        return apply_levels(book, &self.bids, &self.asks)

    cpdef bint apply_to(self, OrderBook book) noexcept:
        """Apply the last parsed levels; False (book untouched) on a bad value."""
        if self.kind == 0 or book is None:
            return False
        return self.c_apply_to(book) == 1

    cpdef bint apply_next(self, OrderBook book, int64_t last_u, bint pu_chain) noexcept:
        """`apply_to`, only when the event continues the chain ending at last_u:
        U == last_u + 1 (spot), or pu == last_u when pu_chain (futures)."""
        if self.kind == 0 or book is None:
            return False
        if pu_chain:
            if not self.has_pu or self.pu != last_u:
                return False
        elif self.U != last_u + 1:
            return False
        return self.c_apply_to(book) == 1

    @property
    def valid(self):
        return self.kind != 0 and self.c_valid()

    cdef object _symbol(self):
        # Interned per parser: the common case (same symbol as last time)
        # allocates nothing.
        if self.kind == 0:
            return None
        self._cached_symbol = cached_name(&self._name_cache, self._cached_symbol, self._sym, self._sym_len)
        return self._cached_symbol

    @property
    def symbol(self):
        return self._symbol()

    def take(self, data, dict routes, bint pu_chain):
        """The whole synced hot path of a sequenced diff-depth stream, in C.

        Parse `data`; when it is a combined-stream event whose symbol maps in
        `routes` to a synced `ChainState` and continues its chain (see
        `apply_next`), apply it to `state.book`, set `state.last_u`
        and finish the message on `state.market` (`after_message(E)`, in C
        for a `MarketCore`); returns True.  Otherwise
        returns False having touched nothing: the caller runs its reference
        path on the same frame.
        """
        return self.c_take(data, routes, pu_chain)

    cdef bint c_take(self, object data, dict routes, bint pu_chain) except -1:
        cdef object obj, market
        cdef ChainState state
        if self.parse(data) != 1:
            return False
        obj = routes.get(self._symbol())
        if type(obj) is not ChainState and not isinstance(obj, ChainState):
            return False
        state = <ChainState>obj
        if not state.synced:
            return False
        if not state._last_u_ok:
            return False  # not an int64: leave it to the reference path
        if state.book is None or not self.apply_next(state.book, state._last_u, pu_chain):
            return False
        state._last_u = self.u
        finish_message(state.market, self.E)
        return True

    @property
    def n_bids(self):
        return self.bids.n

    @property
    def n_asks(self):
        return self.asks.n

    @property
    def bids(self):
        return levels_list(&self.bids)

    @property
    def asks(self):
        return levels_list(&self.asks)


cdef class ChainState:
    """Per-symbol sync state that `DepthParser.take` reads and advances.

    Feed handlers subclass it (adding their own slots) so the hot path can
    read `synced` and `last_u` without a Python attribute lookup.
    """

    def __init__(self, market=None):
        self.market = market
        # A Market's book is created with it and never replaced: keep a typed
        # reference so the hot path skips one attribute lookup.
        self.book = getattr(market, "book", None)
        self.synced = False
        self.last_u = 0

    @property
    def last_u(self):
        """The last applied event's final update id."""
        return self._last_u if self._last_u_ok else self._last_u_other

    @last_u.setter
    def last_u(self, value):
        # Kept as a C int64 when it is one, so the hot path neither converts
        # nor allocates; anything else (kept as is) sends frames to the
        # reference path, which decides.
        self._last_u_ok = hold_int64(value, &self._last_u)
        self._last_u_other = None if self._last_u_ok else value


cdef class FramePath:
    """A Binance-style handler's `on_frame`, in C.

    `on_frame(conn_id, data, recv_ms)` counts the frame in `counters`, runs
    `parser.take(data, routes, pu_chain)` and, when that declines, calls
    `fallback(data, recv_ms)` (the handler's reference path).  A handler
    binds its `on_frame` to this object's, so a frame of a synced book costs
    no Python call at all.
    """

    def __init__(self, DepthParser parser not None, dict routes not None, bint pu_chain,
                 FeedCounters counters not None, fallback):
        self.parser = parser
        self.routes = routes
        self.pu_chain = pu_chain
        self.counters = counters
        self.fallback = fallback

    def on_frame(self, conn_id, data, recv_ms):
        self.counters.frames += 1
        self.counters.bytes += len(data)
        if not self.parser.c_take(data, self.routes, self.pu_chain):
            self.fallback(data, recv_ms)
