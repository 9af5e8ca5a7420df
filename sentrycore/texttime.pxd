# cython: language_level=3
# RFC 3339 / ISO-8601 times read straight from frame bytes, for venue event
# times: `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+HH:MM|-HH:MM]` -> Unix ms.
#
#     from sentrycore.texttime cimport iso8601_ms
#     if iso8601_ms(p, n, 9, &event_ms): ...   # p[0:n] is the string's content
#
# Exactly what the Python readers give for the shapes accepted: the
# fraction's first 6 digits are the microseconds (more digits, up to
# max_frac, are truncated as datetime.fromisoformat does; msgspec rounds
# them instead, so its callers pass max_frac=6), the instant is floored to
# the millisecond ((when - epoch) // 1 ms), and a time without a zone is UTC.
# Anything else -- other separators than 'T', lowercase 'z', out-of-range
# fields, leap seconds, comma fractions, basic format -- returns 0 and the
# caller's Python reader decides.  Never raises, allocates nothing.

from libc.stdint cimport int64_t


cdef inline int _two_digits(const unsigned char* p) noexcept nogil:
    # 0..99, or -1 when p[0:2] are not both digits.
    cdef unsigned char a = p[0] - 48
    cdef unsigned char b = p[1] - 48
    if a > 9 or b > 9:
        return -1
    return a * 10 + b


cdef inline int64_t days_from_civil(int64_t y, int m, int d) noexcept nogil:
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    cdef int64_t era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef inline int days_in_month(int y, int m) noexcept nogil:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    if m == 4 or m == 6 or m == 9 or m == 11:
        return 30
    return 31


cdef inline bint iso8601_ms(const unsigned char* p, Py_ssize_t n, int max_frac, int64_t* out_ms) noexcept nogil:
    cdef int y1, y2, mo, d, h, mi, sec, oh, om
    cdef int64_t us = 0
    cdef int64_t offset_s = 0
    cdef int64_t total_s
    cdef Py_ssize_t i, k
    cdef int digits
    if n < 19 or p[4] != 45 or p[7] != 45 or p[10] != 84 or p[13] != 58 or p[16] != 58:  # - - T : :
        return False
    y1 = _two_digits(p)
    y2 = _two_digits(p + 2)
    mo = _two_digits(p + 5)
    d = _two_digits(p + 8)
    h = _two_digits(p + 11)
    mi = _two_digits(p + 14)
    sec = _two_digits(p + 17)
    if y1 < 0 or y2 < 0 or mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59 or sec < 0 or sec > 59:
        return False
    if y1 * 100 + y2 < 1 or d > days_in_month(y1 * 100 + y2, mo):
        return False
    i = 19
    if i < n and p[i] == 46:  # '.'
        i += 1
        k = i
        digits = 0
        while i < n and <unsigned char>(p[i] - 48) < 10:
            if digits < 6:
                us = us * 10 + (p[i] - 48)
            digits += 1
            i += 1
        if digits == 0 or digits > max_frac:
            return False
        while digits < 6:
            us *= 10
            digits += 1
    if i < n:
        if p[i] == 90:  # 'Z'
            i += 1
        elif p[i] == 43 or p[i] == 45:  # + -
            if n - i < 6 or p[i + 3] != 58:
                return False
            oh = _two_digits(p + i + 1)
            om = _two_digits(p + i + 4)
            if oh < 0 or oh > 23 or om < 0 or om > 59:
                return False
            offset_s = oh * 3600 + om * 60
            if p[i] == 45:
                offset_s = -offset_s
            i += 6
        else:
            return False
    if i != n:
        return False
    total_s = days_from_civil(y1 * 100 + y2, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s
    out_ms[0] = total_s * 1000 + us // 1000
    return True
