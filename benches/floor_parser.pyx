# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The floor: a hand-written parser for exactly one Binance frame layout.

The rival of `sentrycore.parse.DepthParser` in benches/bench_parse_floor.py:
the fastest honest parse of a combined-stream spot `depthUpdate` frame when
everything about its layout is assumed --

    {"stream":"<s>","data":{"e":"depthUpdate","E":<int>,"s":"<sym>","U":<int>,"u":<int>,
     "b":[["<p>","<q>"],...],"a":[["<p>","<q>"],...]}}

byte for byte: no whitespace, this key order, no other keys, strings
without escapes.  Validation is only what walking the bytes needs (fixed
text compared with one memcmp, a frame of another layout answers 0 rather
than crashing); values are not checked (no range, sign or duplicate rules).

Every price and quantity becomes the double Python's float() gives: the
Binance shape `I.FFFFFFFF` (1-7 integer digits, exactly 8 decimals) is two
64-bit loads (SWAR digit test and value) and one division of two exact
doubles (m < 10**15 < 2**53 and 10**8: one correctly rounded operation);
any other decimal text goes to PyOS_string_to_double, float()'s own routine.

Built on demand by benches/floor_build.py into a temporary directory; it is
not part of the installed package and shares no code with sentrycore.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_Occurred, PyErr_Clear
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcmp, memcpy

cdef extern from *:
    int __builtin_ctzll(unsigned long long x) nogil

cdef extern from "Python.h":
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception)


cdef inline uint64_t load8(const unsigned char* p) noexcept nogil:
    cdef uint64_t w
    memcpy(&w, p, 8)
    return w


cdef inline uint64_t not_digits(uint64_t w) noexcept nogil:
    # Nonzero in every byte of w that is not an ASCII digit (and maybe
    # later ones): high nibble must be 3 and +6 must not carry out of the low one.
    return ((w & 0xF0F0F0F0F0F0F0F0ULL) |
            (((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) ^ 0x3333333333333333ULL


cdef inline uint64_t digits8(uint64_t v) noexcept nogil:
    # 8 digit values (first digit in the lowest byte) -> their integer value.
    v = (v * 10) + (v >> 8)
    return (((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
            (((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32


cdef inline const unsigned char* read_int(const unsigned char* p, const unsigned char* end,
                                          int64_t* out) noexcept nogil:
    # Unsigned decimal integer (update ids, ms times: 11-17 digits).
    cdef uint64_t w, t
    cdef int64_t v = 0
    cdef int k
    while end - p >= 8:
        w = load8(p)
        t = not_digits(w)
        if t == 0:
            v = v * 100000000 + <int64_t>digits8(w - 0x3030303030303030ULL)
            p += 8
            continue
        k = __builtin_ctzll(t) >> 3
        if k:
            v = v * <int64_t>POW10_INT[k] + <int64_t>digits8((w - 0x3030303030303030ULL) << (8 * (8 - k)))
        out[0] = v
        return p + k
    while p < end and <unsigned char>(p[0] - 48) < 10:
        v = v * 10 + (p[0] - 48)
        p += 1
    out[0] = v
    return p


cdef extern from *:
    """
    static const unsigned long long FLOOR_POW10_INT[9] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL,
                                                          100000ULL, 1000000ULL, 10000000ULL, 100000000ULL};
    /* The low k bytes of a word, k = 1..7 (0: nothing, so width 0 never matches). */
    static const unsigned long long FLOOR_LOW_BYTES[8] = {0xFFFFFFFFFFFFFFFFULL, 0xFFULL, 0xFFFFULL, 0xFFFFFFULL,
                                                          0xFFFFFFFFULL, 0xFFFFFFFFFFULL, 0xFFFFFFFFFFFFULL,
                                                          0xFFFFFFFFFFFFFFULL};
    static const double FLOOR_POW10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                           1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    """
    const unsigned long long POW10_INT "FLOOR_POW10_INT"[9]
    const double POW10 "FLOOR_POW10"[23]
    const unsigned long long LOW_BYTES "FLOOR_LOW_BYTES"[8]


cdef inline const unsigned char* fast_decimal(const unsigned char* p, double* out, int* width) noexcept:
    # `I.FFFFFFFF"` (1-7 integer digits, 8 decimals) at p, 18 bytes readable:
    # the address of the closing '"', or NULL for any other text.  *width is
    # the integer digit count the column's previous number had: it is tried
    # first, so the next number's address does not wait for this one's bytes
    # (the checks become well-predicted branches).
    cdef uint64_t w, w2, t
    cdef int k = width[0]
    w = load8(p)
    if (not_digits(w) & LOW_BYTES[k]) != 0 or p[k] != 46:
        t = not_digits(w)
        if t == 0:
            return NULL
        k = __builtin_ctzll(t) >> 3
        if k == 0 or p[k] != 46:
            return NULL
        width[0] = k
    w2 = load8(p + k + 1)
    if not_digits(w2) != 0 or p[k + 9] != 34:
        return NULL
    out[0] = (<double>(digits8((w - 0x3030303030303030ULL) << (8 * (8 - k))) * 100000000ULL
                       + digits8(w2 - 0x3030303030303030ULL))) / 1e8
    return p + k + 9


cdef inline const unsigned char* read_decimal(const unsigned char* p, const unsigned char* end,
                                              double* out, int* width) noexcept:
    # Any quoted decimal up to its closing '"' (which is not consumed).
    cdef const unsigned char* q
    if end - p >= 18:
        q = fast_decimal(p, out, width)
        if q != NULL:
            return q
    return slow_decimal(p, end, out)


cdef const unsigned char* slow_decimal(const unsigned char* p, const unsigned char* end,
                                       double* out) noexcept:
    # Any other text (kept out of line).  `digits[.digits]` with a mantissa
    # m <= 2**53 and <= 22 decimals is m / 10**f, one correctly rounded
    # operation on exact doubles (the frame's last quantity, which ends too
    # close to the end for the 8-byte loads, comes here); everything else
    # goes to float()'s own conversion.
    cdef const unsigned char* q = p
    cdef uint64_t m = 0
    cdef int f = -1
    cdef int digits = 0
    cdef char buf[64]
    cdef char* endp
    while q < end and q[0] != 34:
        if <unsigned char>(q[0] - 48) < 10:
            if digits < 19:
                m = m * 10 + (q[0] - 48)
            digits += 1
            if f >= 0:
                f += 1
        elif q[0] == 46 and f < 0:
            f = 0
        else:
            digits = 99  # anything else: not this shape
        q += 1
    if q >= end or q - p >= 63 or q == p:
        return NULL
    if 0 < digits <= 19 and f != 0 and f <= 22 and m <= 9007199254740992ULL:
        out[0] = <double>m / POW10[f if f > 0 else 0]
        return q
    memcpy(buf, p, q - p)
    buf[q - p] = 0
    out[0] = PyOS_string_to_double(buf, &endp, NULL)
    if PyErr_Occurred() != NULL:
        PyErr_Clear()
        return NULL
    if endp != buf + (q - p):
        return NULL
    return q


# One side's levels: prices[j], qtys[j] for j < n, cap allocated (doubled when full).
cdef struct Side:
    double* prices
    double* qtys
    Py_ssize_t n
    Py_ssize_t cap


cdef bint side_init(Side* side) noexcept:
    side.n = 0
    side.cap = 256
    side.prices = <double*>malloc(256 * sizeof(double))
    side.qtys = <double*>malloc(256 * sizeof(double))
    return side.prices != NULL and side.qtys != NULL


cdef bint side_grow(Side* side) noexcept:
    cdef double* a = <double*>realloc(side.prices, 2 * side.cap * sizeof(double))
    if a == NULL:
        return False
    side.prices = a
    a = <double*>realloc(side.qtys, 2 * side.cap * sizeof(double))
    if a == NULL:
        return False
    side.qtys = a
    side.cap *= 2
    return True


cdef inline const unsigned char* read_levels(const unsigned char* p, const unsigned char* end,
                                             Side* side) noexcept:
    # `[["p","q"],...]`, p at '['.
    cdef Py_ssize_t j = 0
    cdef double price, qty
    cdef int price_width = 5, qty_width = 1
    cdef const unsigned char* q
    side.n = 0
    if p[0] != 91:
        return NULL
    p += 1
    if p < end and p[0] == 93:
        return p + 1
    while True:
        # The longest common-shape level, `["1234567.12345678","1234567.12345678"]`,
        # and the byte after it fit in 40: one length check for the level.
        q = NULL
        if end - p >= 40 and p[0] == 91 and p[1] == 34:  # ["
            q = fast_decimal(p + 2, &price, &price_width)
            if q != NULL and q[1] == 44 and q[2] == 34:  # ","
                q = fast_decimal(q + 3, &qty, &qty_width)
                if q != NULL and q[1] != 93:
                    q = NULL
            else:
                q = NULL
        if q != NULL:
            p = q
        else:  # another shape, or the frame's last bytes
            if end - p < 2 or p[0] != 91 or p[1] != 34:  # ["
                return NULL
            p = read_decimal(p + 2, end, &price, &price_width)
            if p == NULL or end - p < 3 or memcmp(p, b'","', 3) != 0:
                return NULL
            p = read_decimal(p + 3, end, &qty, &qty_width)
            if p == NULL or end - p < 3 or p[1] != 93:  # "]
                return NULL
        if j == side.cap and not side_grow(side):
            return NULL
        side.prices[j] = price
        side.qtys[j] = qty
        j += 1
        p += 2
        if p[0] == 44:  # ,
            p += 1
            continue
        if p[0] != 93:
            return NULL
        side.n = j
        return p + 1


cdef class FloorParser:
    """`parse(frame) -> 1` (fields and levels below) or 0 (not this layout)."""

    cdef Side bid_side
    cdef Side ask_side
    cdef readonly int64_t E
    cdef readonly int64_t U
    cdef readonly int64_t u
    cdef char sym[32]
    cdef Py_ssize_t sym_len

    def __cinit__(self):
        if not (side_init(&self.bid_side) and side_init(&self.ask_side)):
            raise MemoryError()

    def __dealloc__(self):
        free(self.bid_side.prices)
        free(self.bid_side.qtys)
        free(self.ask_side.prices)
        free(self.ask_side.qtys)

    cpdef int parse(self, bytes data) noexcept:
        cdef const unsigned char* s
        cdef const unsigned char* end
        cdef const unsigned char* p
        cdef const unsigned char* q
        cdef uint64_t w, t
        if data is None:
            return 0
        s = <const unsigned char*>PyBytes_AS_STRING(data)
        end = s + PyBytes_GET_SIZE(data)
        p = s
        # {"stream":"<name>"
        if end - p < 64 or memcmp(p, b'{"stream":"', 11) != 0:
            return 0
        p += 11
        while True:  # the closing quote, 8 bytes at a time
            w = load8(p) ^ 0x2222222222222222ULL
            t = (w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL
            if t:
                p += __builtin_ctzll(t) >> 3
                break
            p += 8
            if end - p < 8:
                return 0
        # ","data":{"e":"depthUpdate","E":
        if end - p < 48 or memcmp(p, b'","data":{"e":"depthUpdate","E":', 32) != 0:
            return 0
        p = read_int(p + 32, end, &self.E)
        if end - p < 6 or memcmp(p, b',"s":"', 6) != 0:
            return 0
        p += 6
        q = p
        while q < end and q[0] != 34:
            q += 1
        if q - p > 31 or end - q < 8 or memcmp(q, b'","U":', 6) != 0:
            return 0
        self.sym_len = q - p
        memcpy(self.sym, p, q - p)
        p = read_int(q + 6, end, &self.U)
        if end - p < 5 or memcmp(p, b',"u":', 5) != 0:
            return 0
        p = read_int(p + 5, end, &self.u)
        if end - p < 8 or memcmp(p, b',"b":', 5) != 0:
            return 0
        p = read_levels(p + 5, end, &self.bid_side)
        if p == NULL or end - p < 8 or memcmp(p, b',"a":', 5) != 0:
            return 0
        p = read_levels(p + 5, end, &self.ask_side)
        if p == NULL or end - p != 2 or p[0] != 125 or p[1] != 125:
            return 0
        return 1

    @property
    def symbol(self):
        return self.sym[:self.sym_len].decode("ascii")

    @property
    def n_bids(self):
        return self.bid_side.n

    @property
    def n_asks(self):
        return self.ask_side.n

    @property
    def bids(self):
        return [(self.bid_side.prices[j], self.bid_side.qtys[j]) for j in range(self.bid_side.n)]

    @property
    def asks(self):
        return [(self.ask_side.prices[j], self.ask_side.qtys[j]) for j in range(self.ask_side.n)]
