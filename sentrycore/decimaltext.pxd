# cython: language_level=3
# A book's double written back as the venue's fixed-decimal text, for
# checksums computed from the book (Kraken v2 writes every price and size
# with the instrument's precision before it checksums them).
#
#     from sentrycore.decimaltext cimport fixed_digits, FIXED_DIGITS_MAX
#     cdef char buf[FIXED_DIGITS_MAX]
#     n = fixed_digits(x, places, buf)   # -1: x cannot be written back exactly
#
# fixed_digits writes the digits of x with `places` decimals, the decimal
# point removed and leading zeros stripped ("0.05000" -> "5000", 0 -> ""),
# which is exactly `format(Decimal(text), f".{places}f")` stripped the same
# way for every decimal text with at most `places` decimals whose double is
# x -- provided x * 10**places < 2**52, the condition `fixed_exact` checks
# (and the caller must check, or fixed_digits returns -1): then the decimal
# d = x * 10**places (an integer) is within d * 2**-53 < 1/2 of the exact
# product x * 10**places, so rounding that product, taken exactly as a
# double plus its fma residual, gives d back (tests/feeds/test_kraken_native.py).

from libc.math cimport fma, nearbyint
from libc.string cimport memcpy

cdef extern from *:
    """
    static const double SENTRY_TEXT_POW10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                                 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
                                                 1e20, 1e21, 1e22};
    static const char SENTRY_DIGIT_PAIRS[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
    /* 2**52: below it, x * 10**places gives its integer back exactly. */
    #define SENTRY_FIXED_EXACT_LIMIT 4503599627370496.0
    """
    const double SENTRY_TEXT_POW10[23]
    const double SENTRY_FIXED_EXACT_LIMIT
    const char SENTRY_DIGIT_PAIRS[201]

cdef enum:
    # 2**52 has 16 digits; room for them.
    FIXED_DIGITS_MAX = 20
    FIXED_PLACES_MAX = 22


cdef inline bint fixed_exact(double x, int places) noexcept nogil:
    # True when x >= 0 written with `places` decimals can be recovered from x.
    if places < 0 or places > FIXED_PLACES_MAX or not (x >= 0.0):
        return False
    return x * SENTRY_TEXT_POW10[places] < SENTRY_FIXED_EXACT_LIMIT


cdef inline Py_ssize_t fixed_digits(double x, int places, char* out) noexcept nogil:
    cdef double scale, hi, lo, n, t
    cdef unsigned long long d
    cdef char tmp[FIXED_DIGITS_MAX]
    cdef Py_ssize_t k = 0
    cdef Py_ssize_t j
    if not fixed_exact(x, places):
        return -1
    scale = SENTRY_TEXT_POW10[places]
    hi = x * scale
    lo = fma(x, scale, -hi)  # exact: x * scale == hi + lo
    n = nearbyint(hi)
    # hi - n is exact and a multiple of hi's ulp: only when it is exactly
    # +-1/2 can the residual tip the exact product to the other integer.
    t = hi - n
    if t == 0.5 and lo > 0.0:
        n += 1.0
    elif t == -0.5 and lo < 0.0:
        n -= 1.0
    d = <unsigned long long>n
    # Two digits per step, written backwards from the end of tmp.
    k = FIXED_DIGITS_MAX
    while d >= 100:
        j = <Py_ssize_t>(d % 100) * 2
        d //= 100
        k -= 2
        tmp[k] = SENTRY_DIGIT_PAIRS[j]
        tmp[k + 1] = SENTRY_DIGIT_PAIRS[j + 1]
    if d >= 10:
        j = <Py_ssize_t>d * 2
        k -= 2
        tmp[k] = SENTRY_DIGIT_PAIRS[j]
        tmp[k + 1] = SENTRY_DIGIT_PAIRS[j + 1]
    elif d > 0:
        k -= 1
        tmp[k] = <char>(48 + d)
    memcpy(out, tmp + k, FIXED_DIGITS_MAX - k)
    return FIXED_DIGITS_MAX - k
