# cython: language_level=3
# Scanning primitives for the venue parsers: JSON whitespace, plain strings,
# integers and decimal numbers read straight from frame bytes, allocation-free
# and never raising (-1 = "not this shape": the caller declines the frame and
# its reference decoder, msgspec, decides).  Every function is inline so each
# parser compiles them into its own loops.
#
#     from sentrycore.jsonscan cimport skip_ws, scan_string, scan_level_number
#
# Decimal strings convert exactly as Python's float() does: Clinger's fast
# path (an integer mantissa <= 2**53 and a power of ten within +-22 give one
# correctly rounded operation on exact operands), else PyOS_string_to_double,
# the routine float() itself uses.  The common exchange shape (<= 7 integer
# digits, <= 8 decimals) is read with two 64-bit loads (SWAR).

from cpython.exc cimport PyErr_Occurred, PyErr_Clear
from cpython.object cimport PyObject
from libc.math cimport INFINITY
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp, memcpy

cdef extern from *:
    int __builtin_ctzll(unsigned long long x) nogil

cdef extern from "Python.h":
    # Declared without an exception clause: errors are checked by hand so
    # scanning never raises (a bad number just means "not parsed").
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception)

cdef extern from *:
    """
    /* 2**53: integers up to this are exact doubles. */
    #define SENTRY_MAX_EXACT 9007199254740992ULL
    static const uint64_t SENTRY_POW10_INT[9] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL,
                                                 1000000ULL, 10000000ULL, 100000000ULL};
    static const double SENTRY_POW10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                            1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    """
    const uint64_t SENTRY_MAX_EXACT
    const uint64_t SENTRY_POW10_INT[9]
    const double SENTRY_POW10[23]

cdef enum:
    MAX_SLOW_NUMBER = 96  # longer numbers are left to the reference decoder
    MAX_INT_DIGITS = 18   # < 2**63 always


cdef inline bint is_ws(unsigned char c) noexcept nogil:
    return c == 32 or c == 10 or c == 13 or c == 9


cdef inline bint is_digit(unsigned char c) noexcept nogil:
    return <unsigned char>(c - 48) < 10  # the unsigned wrap makes bytes below "0" large


cdef inline Py_ssize_t skip_ws(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and is_ws(s[i]):
        i += 1
    return i


cdef inline uint64_t zero_bytes(uint64_t v) noexcept nogil:
    # High bit set in (at least the lowest of) the bytes of v that are zero.
    return (v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL


cdef inline Py_ssize_t scan_string(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                        Py_ssize_t* start) noexcept nogil:
    # s[i] must be '"'.  Plain printable ASCII only (no escapes): returns the
    # index after the closing quote, the content starting at *start; -1 if not.
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
        special = (zero_bytes(w ^ 0x2222222222222222ULL) | zero_bytes(w ^ 0x5C5C5C5C5C5C5C5CULL) |
                   zero_bytes(w ^ 0x7F7F7F7F7F7F7F7FULL) |
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


cdef inline Py_ssize_t scan_int(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, int64_t* out) noexcept nogil:
    # Non-negative JSON integer of at most MAX_INT_DIGITS digits.
    cdef int64_t v = 0
    cdef Py_ssize_t start = i
    if i >= n or not is_digit(s[i]):
        return -1
    if s[i] == 48:  # '0' may not be followed by digits
        i += 1
    else:
        # Update ids have 11+ digits: take eight at a time while they fit.
        while n - i >= 8 and i - start <= MAX_INT_DIGITS - 8 and eight_digits(s + i):
            v = v * 100000000 + <int64_t>eight_value(s + i)
            i += 8
        while i < n and is_digit(s[i]):
            if i - start >= MAX_INT_DIGITS:
                return -1
            v = v * 10 + (s[i] - 48)
            i += 1
    if i >= n:
        return -1  # a document cannot end inside an object
    if s[i] == 46 or s[i] == 101 or s[i] == 69 or is_digit(s[i]):  # . e E, or 0 followed by digits
        return -1
    out[0] = v
    return i


cdef inline bint eight_digits(const unsigned char* p) noexcept nogil:
    # True when p[0:8] are all ASCII digits (SWAR: one 64-bit load).
    cdef uint64_t v
    memcpy(&v, p, 8)
    # Each byte must be 0x30..0x39: high nibble 3, and adding 6 must not carry
    # into the high nibble.
    return ((v & 0xF0F0F0F0F0F0F0F0ULL) |
            (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) == 0x3333333333333333ULL


cdef inline uint64_t eight_value(const unsigned char* p) noexcept nogil:
    # The value of 8 ASCII digits (little-endian SWAR: pairs, quads, then all eight).
    cdef uint64_t v
    memcpy(&v, p, 8)
    v -= 0x3030303030303030ULL
    v = (v * 10) + (v >> 8)  # each even byte: 2-digit value
    v = (((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
         (((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32
    return v


cdef inline uint64_t not_digits(uint64_t w) noexcept nogil:
    # Zero in the bytes of w (first byte lowest) before its first non-digit,
    # nonzero in that byte (later bytes: either): `not_digits(w) & mask` is 0
    # exactly when the bytes under mask's leading run of 0xFF bytes are digits.
    # A carry out of a byte >= 0xFA only reaches later bytes, past the first non-digit.
    return ((w & 0xF0F0F0F0F0F0F0F0ULL) |
            (((w + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) ^ 0x3333333333333333ULL


cdef inline int digit_run(uint64_t w) noexcept nogil:
    # How many of the 8 bytes in w (first byte lowest) are digits before the first non-digit.
    cdef uint64_t t = not_digits(w)
    if t == 0:
        return 8
    return __builtin_ctzll(t) >> 3


cdef inline uint64_t run_value(uint64_t w, int k) noexcept nogil:
    # The value of the first k (1..8) digit bytes of w: shifted up so the
    # bytes after them become leading zeros.
    return eight_value_w((w - 0x3030303030303030ULL) << (8 * (8 - k)))


cdef inline uint64_t eight_value_w(uint64_t v) noexcept nogil:
    # 8 digit values (0..9 per byte, most significant in the lowest byte) -> integer.
    v = (v * 10) + (v >> 8)
    return (((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
            (((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32


cdef inline Py_ssize_t scan_short_number(const unsigned char* s, Py_ssize_t i, bint allow_exp,
                                     double* out) noexcept nogil:
    # The common shape `I[.F]` (1-7 integer digits, 1-8 decimals), read with two 64-bit
    # loads; the caller guarantees 17 readable bytes.  Returns -2 when the
    # number has another shape (the general reader decides), -1 if invalid.
    cdef uint64_t w, w2, m
    cdef int k, f
    cdef unsigned char c
    memcpy(&w, s + i, 8)
    k = digit_run(w)
    if k == 0:
        return -1
    if k == 8 or (k > 1 and s[i] == 48):
        return -2  # long integer part, or a leading zero: not the common shape
    m = run_value(w, k)
    i += k
    c = s[i]
    f = 0
    if c == 46:  # '.'
        memcpy(&w2, s + i + 1, 8)
        f = digit_run(w2)
        if f == 0:
            return -1
        i += 1 + f
        c = s[i]  # k <= 7, f <= 8: at most s[16], within the guaranteed bytes
        if f == 8 and is_digit(c):
            return -2  # more than 8 decimals
        m = m * SENTRY_POW10_INT[f] + run_value(w2, f)
    if allow_exp and (c == 101 or c == 69):
        return -2
    if m > SENTRY_MAX_EXACT:
        return -2
    if f == 0 or m == 0:
        out[0] = <double>m  # also "0.00000000", a deletion: no division needed
    else:
        out[0] = <double>m / SENTRY_POW10[f]
    return i


cdef inline Py_ssize_t scan_number(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                        bint allow_exp, double* out) noexcept:
    # Unsigned decimal: '0' | [1-9][0-9]* then optional '.[0-9]+' then (if
    # allow_exp) optional [eE][+-]?[0-9]+.  Returns the index after it or -1.
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
        if i < n and is_digit(s[i]):
            return -1  # leading zero
    elif is_digit(c):
        while i < n and is_digit(s[i]):
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
        if i >= n or not is_digit(s[i]):
            return -1
        while True:
            # Binance sends 8 decimals: take them in one step when they fit.
            if digits <= 11 and n - i >= 8 and eight_digits(s + i):
                m = m * 100000000ULL + eight_value(s + i)
                digits += 8
                e10 -= 8
                i += 8
            elif i < n and is_digit(s[i]):
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
        if i >= n or not is_digit(s[i]):
            return -1
        while i < n and is_digit(s[i]):
            if ex < 100000:
                ex = ex * 10 + (s[i] - 48)
            i += 1
        e10 += -ex if ex_neg else ex
    if m == 0 and not dropped:
        out[0] = 0.0
        return i
    if not dropped and m <= SENTRY_MAX_EXACT and -22 <= e10 <= 22:
        # Clinger: both operands exact, one rounding.
        if e10 >= 0:
            out[0] = <double>m * SENTRY_POW10[e10]
        else:
            out[0] = <double>m / SENTRY_POW10[-e10]
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


cdef inline Py_ssize_t skip_value(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
    # Skip the value of an unknown key: plain string, number or literal.
    cdef Py_ssize_t start
    cdef double dummy
    if i >= n:
        return -1
    cdef unsigned char c = s[i]
    if c == 34:
        return scan_string(s, i, n, &start)
    if c == 45:  # '-': a negative number is valid JSON
        i += 1
        if i >= n or not is_digit(s[i]):
            return -1
        return scan_number(s, i, n, True, &dummy)
    if is_digit(c):
        return scan_number(s, i, n, True, &dummy)
    if n - i >= 4 and memcmp(s + i, b"true", 4) == 0:
        return i + 4
    if n - i >= 5 and memcmp(s + i, b"false", 5) == 0:
        return i + 5
    if n - i >= 4 and memcmp(s + i, b"null", 4) == 0:
        return i + 4
    return -1


cdef inline Py_ssize_t scan_level_number(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                                     double* out) noexcept:
    # One price or quantity of a [p, q] level: a quoted decimal string (what
    # Binance sends) or a bare JSON number; returns the index after it and
    # any following whitespace, or -1.
    cdef bint quoted = i < n and s[i] == 34  # '"'
    cdef Py_ssize_t j
    if quoted:
        i += 1
    # The unrolled short path needs 17 readable bytes; otherwise the general one.
    j = scan_short_number(s, i, not quoted, out) if n - i >= 17 else -2
    i = scan_number(s, i, n, not quoted, out) if j == -2 else j
    if i < 0:
        return -1
    if quoted:
        if i >= n or s[i] != 34:
            return -1
        i += 1
    return skip_ws(s, i, n)


# -- object members -------------------------------------------------------------------------
# The walk every venue parser makes over an object's members:
#
#     i = scan_key(s, i, n, &k, &klen)       # at a key: index of its value
#     if key_is(s, k, klen, b"data", 4): ...
#     i = next_member(s, i, n, &done)        # after the value: next key, or done
#                                            # (end_member: also refuses a repeated known key)
#
# and over an array's elements: next_element (or next_element_compact where
# the layout has no whitespace).


cdef inline Py_ssize_t scan_key(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, Py_ssize_t* k,
                                Py_ssize_t* klen) noexcept nogil:
    # A member's key (a plain string: content at s[k[0]], klen[0] bytes) and
    # its ':'; returns the index of the value, or -1.
    i = scan_string(s, i, n, k)
    if i < 0:
        return -1
    klen[0] = i - 1 - k[0]
    i = skip_ws(s, i, n)
    if i >= n or s[i] != 58:  # ':'
        return -1
    return skip_ws(s, i + 1, n)


cdef inline bint key_is(const unsigned char* s, Py_ssize_t k, Py_ssize_t klen, const char* word,
                        Py_ssize_t wlen) noexcept nogil:
    return klen == wlen and memcmp(s + k, word, wlen) == 0


cdef inline Py_ssize_t next_item(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, unsigned char close,
                                 bint* done) noexcept nogil:
    # After a member's value or an element of an array closed by `close`:
    # ',' -> the next item's index (done False); `close` -> the index after
    # it (done True); -1 otherwise.
    i = skip_ws(s, i, n)
    if i >= n:
        return -1
    if s[i] == 44:  # ','
        done[0] = False
        return skip_ws(s, i + 1, n)
    if s[i] == close:
        done[0] = True
        return i + 1
    return -1


cdef inline Py_ssize_t next_member(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, bint* done) noexcept nogil:
    return next_item(s, i, n, 125, done)  # '}'


cdef inline Py_ssize_t next_element(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, bint* done) noexcept nogil:
    return next_item(s, i, n, 93, done)  # ']'


cdef inline Py_ssize_t end_member(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, int bit, int* seen,
                                  bint* done) noexcept nogil:
    # next_member for a walk that tracks its known keys: i is where reading
    # the value ended (-1: it failed); a known key's `bit` joins `seen`, and
    # a key seen twice gives -1 (which one counts is the reference decoder's
    # call, so the frame goes to it).
    if i < 0:
        return -1
    if bit:
        if seen[0] & bit:
            return -1
        seen[0] |= bit
    return next_member(s, i, n, done)


# next_element for readers of a layout without whitespace: s[i] (which the
# caller knows is inside the frame) must be the ',' or ']' itself.
cdef inline Py_ssize_t next_element_compact(const unsigned char* s, Py_ssize_t i, bint* done) noexcept nogil:
    if s[i] == 44:  # ','
        done[0] = False
        return i + 1
    if s[i] == 93:  # ']'
        done[0] = True
        return i + 1
    return -1
