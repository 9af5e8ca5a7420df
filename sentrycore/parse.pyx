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
from cpython.exc cimport PyErr_Occurred, PyErr_Clear
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.math cimport INFINITY
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcmp, memcpy

cdef extern from *:
    int __builtin_ctzll(unsigned long long x) nogil

from sentrycore.book cimport OrderBook, BOOK_OK, valid_price, valid_qty
from sentrycore.marketcore cimport MarketCore
from sentrycore.counters cimport FeedCounters

cdef extern from "Python.h":
    # Declared without an exception clause: errors are checked by hand so the
    # parser never raises (a bad number just means "not parsed").
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception)


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
    MAX_SLOW_NUMBER = 96  # longer numbers are left to msgspec
    MAX_INT_DIGITS = 18   # < 2**63 always

# 2**53: integers up to this are exact doubles.
cdef uint64_t MAX_EXACT = 9007199254740992ULL

cdef uint64_t POW10_INT[9]
POW10_INT[:] = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000]

cdef double POW10[23]
POW10[:] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
            1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]


cdef inline bint _is_ws(unsigned char c) noexcept nogil:
    return c == 32 or c == 10 or c == 13 or c == 9


cdef inline bint _is_digit(unsigned char c) noexcept nogil:
    return <unsigned char>(c - 48) < 10  # the unsigned wrap makes bytes below "0" large


cdef inline Py_ssize_t _ws(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and _is_ws(s[i]):
        i += 1
    return i


cdef inline uint64_t _zero_bytes(uint64_t v) noexcept nogil:
    """High bit set in (at least the lowest of) the bytes of v that are zero."""
    return (v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL


cdef Py_ssize_t _string(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                        Py_ssize_t* start) noexcept nogil:
    """s[i] must be '"'.  Plain printable ASCII only (no escapes): returns the
    index after the closing quote, the content starting at *start; -1 if not."""
    cdef unsigned char c
    cdef uint64_t w, special
    if i >= n or s[i] != 34:
        return -1
    i += 1
    start[0] = i
    # Eight bytes at a time: flag '"', '\\', bytes < 0x20 and bytes >= 0x7F.
    # Each flag test is exact for its lowest flagged byte (borrows only run
    # upwards), so the lowest flag overall is the first special byte.
    while n - i >= 8:
        memcpy(&w, s + i, 8)
        special = (_zero_bytes(w ^ 0x2222222222222222ULL) | _zero_bytes(w ^ 0x5C5C5C5C5C5C5C5CULL) |
                   _zero_bytes(w ^ 0x7F7F7F7F7F7F7F7FULL) |
                   ((w - 0x2020202020202020ULL) & ~w & 0x8080808080808080ULL) |
                   (w & 0x8080808080808080ULL))
        if special:
            i += __builtin_ctzll(special) >> 3
            return i + 1 if s[i] == 34 else -1
        i += 8
    while i < n:
        c = s[i]
        if c == 34:
            return i + 1
        if c < 32 or c > 126 or c == 92:
            return -1
        i += 1
    return -1


cdef Py_ssize_t _int(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, int64_t* out) noexcept nogil:
    """Non-negative JSON integer of at most MAX_INT_DIGITS digits."""
    cdef int64_t v = 0
    cdef Py_ssize_t start = i
    if i >= n or not _is_digit(s[i]):
        return -1
    if s[i] == 48:  # '0' may not be followed by digits
        i += 1
    else:
        # Update ids have 11+ digits: take eight at a time while they fit.
        while n - i >= 8 and i - start <= MAX_INT_DIGITS - 8 and _eight_digits(s + i):
            v = v * 100000000 + <int64_t>_eight_value(s + i)
            i += 8
        while i < n and _is_digit(s[i]):
            if i - start >= MAX_INT_DIGITS:
                return -1
            v = v * 10 + (s[i] - 48)
            i += 1
    if i >= n:
        return -1  # a document cannot end inside an object
    if s[i] == 46 or s[i] == 101 or s[i] == 69 or _is_digit(s[i]):  # . e E, or 0 followed by digits
        return -1
    out[0] = v
    return i


cdef inline bint _eight_digits(const unsigned char* p) noexcept nogil:
    """True when p[0:8] are all ASCII digits (SWAR: one 64-bit load)."""
    cdef uint64_t v
    memcpy(&v, p, 8)
    # Each byte must be 0x30..0x39: high nibble 3, and adding 6 must not carry
    # into the high nibble.
    return ((v & 0xF0F0F0F0F0F0F0F0ULL) |
            (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) == 0x3333333333333333ULL


cdef inline uint64_t _eight_value(const unsigned char* p) noexcept nogil:
    """The value of 8 ASCII digits (little-endian SWAR: pairs, quads, then all eight)."""
    cdef uint64_t v
    memcpy(&v, p, 8)
    v -= 0x3030303030303030ULL
    v = (v * 10) + (v >> 8)  # each even byte: 2-digit value
    v = (((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
         (((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32
    return v


cdef inline int _digit_run(uint64_t w) noexcept nogil:
    """How many of the 8 bytes in w (first byte lowest) are digits before the first non-digit."""
    cdef uint64_t t = ((w & 0xF0F0F0F0F0F0F0F0ULL) |
                       (((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) ^ 0x3333333333333333ULL
    # A carry out of a byte >= 0xFA only reaches later bytes, past the first non-digit.
    if t == 0:
        return 8
    return __builtin_ctzll(t) >> 3


cdef inline uint64_t _run_value(uint64_t w, int k) noexcept nogil:
    """The value of the first k (1..8) digit bytes of w: shifted up so the
    bytes after them become leading zeros."""
    return _eight_value_w((w - 0x3030303030303030ULL) << (8 * (8 - k)))


cdef inline uint64_t _eight_value_w(uint64_t v) noexcept nogil:
    """8 digit values (0..9 per byte, most significant in the lowest byte) -> integer."""
    v = (v * 10) + (v >> 8)
    return (((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
            (((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32


cdef inline Py_ssize_t _short_number(const unsigned char* s, Py_ssize_t i, bint allow_exp,
                                     double* out) noexcept nogil:
    """The common shape `I[.F]` (1-7 integer digits, 1-8 decimals), read with two 64-bit
    loads; the caller guarantees 17 readable bytes.  Returns -2 when the
    number has another shape (the general reader decides), -1 if invalid."""
    cdef uint64_t w, w2, m
    cdef int k, f
    cdef unsigned char c
    memcpy(&w, s + i, 8)
    k = _digit_run(w)
    if k == 0:
        return -1
    if k == 8 or (k > 1 and s[i] == 48):
        return -2  # long integer part, or a leading zero: not the common shape
    m = _run_value(w, k)
    i += k
    c = s[i]
    f = 0
    if c == 46:  # '.'
        memcpy(&w2, s + i + 1, 8)
        f = _digit_run(w2)
        if f == 0:
            return -1
        i += 1 + f
        c = s[i]  # k <= 7, f <= 8: at most s[16], within the guaranteed bytes
        if f == 8 and _is_digit(c):
            return -2  # more than 8 decimals
        m = m * POW10_INT[f] + _run_value(w2, f)
    if allow_exp and (c == 101 or c == 69):
        return -2
    if m > MAX_EXACT:
        return -2
    if f == 0 or m == 0:
        out[0] = <double>m  # also "0.00000000", a deletion: no division needed
    else:
        out[0] = <double>m / POW10[f]
    return i


cdef Py_ssize_t _number(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                        bint allow_exp, double* out) noexcept:
    """Unsigned decimal: '0' | [1-9][0-9]* then optional '.[0-9]+' then (if
    allow_exp) optional [eE][+-]?[0-9]+.  Returns the index after it or -1."""
    cdef Py_ssize_t start = i
    cdef uint64_t m = 0
    cdef int digits = 0        # digits folded into m (< 10**19 always fits)
    cdef bint dropped = False  # a nonzero digit did not fit in m
    cdef int64_t e10 = 0
    cdef int64_t ex = 0
    cdef bint ex_neg = False
    cdef Py_ssize_t k
    cdef unsigned char c
    cdef char buf[MAX_SLOW_NUMBER + 1]
    cdef char* endp
    cdef double v
    if i >= n:
        return -1
    c = s[i]
    if c == 48:
        i += 1
        if i < n and _is_digit(s[i]):
            return -1  # leading zero
    elif _is_digit(c):
        while i < n and _is_digit(s[i]):
            if digits < 19:
                m = m * 10 + (s[i] - 48)
                digits += 1
            else:
                e10 += 1
                if s[i] != 48:
                    dropped = True
            i += 1
    else:
        return -1
    if i < n and s[i] == 46:  # '.'
        i += 1
        if i >= n or not _is_digit(s[i]):
            return -1
        while True:
            # Binance sends 8 decimals: take them in one step when they fit.
            if digits <= 11 and n - i >= 8 and _eight_digits(s + i):
                m = m * 100000000ULL + _eight_value(s + i)
                digits += 8
                e10 -= 8
                i += 8
            elif i < n and _is_digit(s[i]):
                if digits < 19:
                    m = m * 10 + (s[i] - 48)
                    digits += 1
                    e10 -= 1
                elif s[i] != 48:
                    dropped = True
                i += 1
            else:
                break
    if allow_exp and i < n and (s[i] == 101 or s[i] == 69):
        i += 1
        if i < n and (s[i] == 43 or s[i] == 45):
            ex_neg = s[i] == 45
            i += 1
        if i >= n or not _is_digit(s[i]):
            return -1
        while i < n and _is_digit(s[i]):
            if ex < 100000:
                ex = ex * 10 + (s[i] - 48)
            i += 1
        e10 += -ex if ex_neg else ex
    if m == 0 and not dropped:
        out[0] = 0.0
        return i
    if not dropped and m <= MAX_EXACT and -22 <= e10 <= 22:
        # Clinger: both operands exact, one rounding.
        if e10 >= 0:
            out[0] = <double>m * POW10[e10]
        else:
            out[0] = <double>m / POW10[-e10]
        return i
    # Exact fallback: the same conversion float() uses.
    if i - start > MAX_SLOW_NUMBER:
        return -1
    for k in range(i - start):
        buf[k] = <char>s[start + k]
    buf[i - start] = 0
    v = PyOS_string_to_double(buf, &endp, NULL)
    if PyErr_Occurred() != NULL:
        PyErr_Clear()
        return -1
    if endp != buf + (i - start):
        return -1
    if v == INFINITY:
        return -1  # msgspec rejects a number out of range; float() would give inf
    out[0] = v
    return i


cdef Py_ssize_t _skip_value(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Skip the value of an unknown key: plain string, number or literal."""
    cdef Py_ssize_t start
    cdef double dummy
    if i >= n:
        return -1
    cdef unsigned char c = s[i]
    if c == 34:
        return _string(s, i, n, &start)
    if c == 45:  # '-': a negative number is valid JSON
        i += 1
        if i >= n or not _is_digit(s[i]):
            return -1
        return _number(s, i, n, True, &dummy)
    if _is_digit(c):
        return _number(s, i, n, True, &dummy)
    if n - i >= 4 and memcmp(s + i, b"true", 4) == 0:
        return i + 4
    if n - i >= 5 and memcmp(s + i, b"false", 5) == 0:
        return i + 5
    if n - i >= 4 and memcmp(s + i, b"null", 4) == 0:
        return i + 4
    return -1


cdef inline Py_ssize_t _level_number(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                                     double* out) noexcept:
    # One price or quantity of a [p, q] level: a quoted decimal string (what
    # Binance sends) or a bare JSON number; returns the index after it and
    # any following whitespace, or -1.
    cdef bint quoted = i < n and s[i] == 34  # '"'
    cdef Py_ssize_t j
    if quoted:
        i += 1
    # The unrolled short path needs 17 readable bytes; otherwise the general one.
    j = _short_number(s, i, not quoted, out) if n - i >= 17 else -2
    i = _number(s, i, n, not quoted, out) if j == -2 else j
    if i < 0:
        return -1
    if quoted:
        if i >= n or s[i] != 34:
            return -1
        i += 1
    return _ws(s, i, n)


cdef class DepthParser:
    """Reusable parser; see sentrycore/parse.pyi for the Python API."""

    def __cinit__(self):
        self._cap_b = INITIAL_LEVELS
        self._cap_a = INITIAL_LEVELS
        self._bp = <double*>malloc(self._cap_b * sizeof(double))
        self._bq = <double*>malloc(self._cap_b * sizeof(double))
        self._ap = <double*>malloc(self._cap_a * sizeof(double))
        self._aq = <double*>malloc(self._cap_a * sizeof(double))
        if self._bp == NULL or self._bq == NULL or self._ap == NULL or self._aq == NULL:
            raise MemoryError()
        self.kind = 0
        self._sym_len = 0
        self._cached_len = -1
        self._cached_symbol = None

    def __dealloc__(self):
        free(self._bp)
        free(self._bq)
        free(self._ap)
        free(self._aq)

    cdef bint _grow(self, bint bids) noexcept:
        cdef Py_ssize_t cap = (self._cap_b if bids else self._cap_a) * 2
        cdef double* p
        cdef double* q
        if bids:
            p = <double*>realloc(self._bp, cap * sizeof(double))
            if p == NULL:
                return False
            self._bp = p
            q = <double*>realloc(self._bq, cap * sizeof(double))
            if q == NULL:
                return False
            self._bq = q
            self._cap_b = cap
        else:
            p = <double*>realloc(self._ap, cap * sizeof(double))
            if p == NULL:
                return False
            self._ap = p
            q = <double*>realloc(self._aq, cap * sizeof(double))
            if q == NULL:
                return False
            self._aq = q
            self._cap_a = cap
        return True

    cdef Py_ssize_t _levels(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                            bint bids) noexcept:
        """[[p, q], ...] with p and q quoted or bare decimals, into the side's buffers."""
        cdef Py_ssize_t count = 0
        cdef double price, qty
        if i >= n or s[i] != 91:  # '['
            return -1
        i = _ws(s, i + 1, n)
        if i < n and s[i] == 93:  # ']'
            if bids:
                self.nb = 0
            else:
                self.na = 0
            return i + 1
        while True:
            if i >= n or s[i] != 91:
                return -1
            i = _ws(s, i + 1, n)
            i = _level_number(s, i, n, &price)
            if i < 0:
                return -1
            if i >= n or s[i] != 44:  # ','
                return -1
            i = _ws(s, i + 1, n)
            i = _level_number(s, i, n, &qty)
            if i < 0:
                return -1
            if i >= n or s[i] != 93:
                return -1
            if bids:
                if count == self._cap_b and not self._grow(True):
                    return -1
                self._bp[count] = price
                self._bq[count] = qty
            else:
                if count == self._cap_a and not self._grow(False):
                    return -1
                self._ap[count] = price
                self._aq[count] = qty
            count += 1
            i = _ws(s, i + 1, n)
            if i >= n:
                return -1
            if s[i] == 44:
                i = _ws(s, i + 1, n)
                continue
            if s[i] == 93:
                break
            return -1
        if bids:
            self.nb = count
        else:
            self.na = count
        return i + 1

    cdef Py_ssize_t _object(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                            bint top, int* fields) noexcept:
        """One JSON object; at the top level "stream" and "data" are also known."""
        cdef Py_ssize_t k, klen, sym_start
        cdef int bit
        cdef int64_t iv
        if i >= n or s[i] != 123:  # '{'
            return -1
        i = _ws(s, i + 1, n)
        if i < n and s[i] == 125:  # '}'
            return i + 1
        while True:
            i = _string(s, i, n, &k)
            if i < 0:
                return -1
            klen = i - 1 - k
            i = _ws(s, i, n)
            if i >= n or s[i] != 58:  # ':'
                return -1
            i = _ws(s, i + 1, n)
            bit = 0
            if klen == 1:
                if s[k] == 69:  # E
                    bit = F_E
                    i = _int(s, i, n, &iv)
                    self.E = iv
                elif s[k] == 115:  # s
                    bit = F_S
                    i = _string(s, i, n, &sym_start)
                    if i >= 0:
                        if i - 1 - sym_start > 47:
                            return -1
                        self._sym_len = i - 1 - sym_start
                        memcpy(self._sym, s + sym_start, self._sym_len)
                elif s[k] == 85:  # U
                    bit = F_UU
                    i = _int(s, i, n, &iv)
                    self.U = iv
                elif s[k] == 117:  # u
                    bit = F_LU
                    i = _int(s, i, n, &iv)
                    self.u = iv
                elif s[k] == 98:  # b
                    bit = F_B
                    i = self._levels(s, i, n, True)
                elif s[k] == 97:  # a
                    bit = F_A
                    i = self._levels(s, i, n, False)
                else:
                    i = _skip_value(s, i, n)
            elif klen == 2 and s[k] == 112 and s[k + 1] == 117:  # pu
                bit = F_PU
                i = _int(s, i, n, &iv)
                self.pu = iv
            elif top and klen == 6 and memcmp(s + k, b"stream", 6) == 0:
                bit = F_STREAM
                i = _string(s, i, n, &sym_start)
            elif top and klen == 4 and memcmp(s + k, b"data", 4) == 0:
                bit = F_DATA
                if fields[0] & F_DATA:
                    return -1
                fields[0] |= F_DATA
                i = self._object(s, i, n, False, &fields[1])
                bit = 0
            else:
                i = _skip_value(s, i, n)
            if i < 0:
                return -1
            if bit:
                if fields[0] & bit:
                    return -1  # duplicate key: leave it to the reference decoder
                fields[0] |= bit
            i = _ws(s, i, n)
            if i >= n:
                return -1
            if s[i] == 44:  # ','
                i = _ws(s, i + 1, n)
                continue
            if s[i] == 125:
                return i + 1
            return -1

    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept:
        # fields[0]: keys seen at the top level; fields[1]: inside "data".
        cdef int fields[2]
        cdef Py_ssize_t i
        fields[0] = 0
        fields[1] = 0
        self.kind = 0
        self.nb = 0
        self.na = 0
        self.has_pu = False
        i = self._object(s, _ws(s, 0, n), n, True, fields)
        if i < 0 or _ws(s, i, n) != n:
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
        cdef Py_buffer view
        cdef int kind
        if type(data) is bytes:
            return self.c_parse(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except Exception:
            self.kind = 0
            return 0
        kind = self.c_parse(<const unsigned char*>view.buf, view.len)
        PyBuffer_Release(&view)
        return kind

    cdef bint c_valid(self) noexcept nogil:
        cdef Py_ssize_t j
        # The checks OrderBook.c_apply makes (for the `valid` property).
        for j in range(self.nb):
            if not (valid_price(self._bp[j]) and valid_qty(self._bq[j])):
                return False
        for j in range(self.na):
            if not (valid_price(self._ap[j]) and valid_qty(self._aq[j])):
                return False
        return True

    cdef int c_apply_to(self, OrderBook book) noexcept nogil:
        # One call for both sides: the book validates all levels of the
        # message before touching either side, so a rejected one leaves no trace.
        if book.c_apply(self._bp, self._bq, self.nb, self._ap, self._aq, self.na) != BOOK_OK:
            return 0
        return 1

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
        if self._cached_len != self._sym_len or memcmp(self._cached, self._sym, self._sym_len) != 0:
            self._cached_symbol = PyUnicode_DecodeASCII(self._sym, self._sym_len, NULL)
            memcpy(self._cached, self._sym, self._sym_len)
            self._cached_len = self._sym_len
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
        market = state.market
        if isinstance(market, MarketCore):
            # A C call (cpdef), unless a Python subclass overrides it; only
            # a firing detector goes back to Python, to raise the alert.
            (<MarketCore>market).after_message(self.E)
        else:
            market.after_message(self.E)
        return True

    @property
    def n_bids(self):
        return self.nb

    @property
    def n_asks(self):
        return self.na

    @property
    def bids(self):
        return [(self._bp[j], self._bq[j]) for j in range(self.nb)]

    @property
    def asks(self):
        return [(self._ap[j], self._aq[j]) for j in range(self.na)]


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
        if type(value) is int and -(1 << 63) <= value < (1 << 63):
            self._last_u = value
            self._last_u_ok = True
            self._last_u_other = None
        else:
            self._last_u_ok = False
            self._last_u_other = value


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
