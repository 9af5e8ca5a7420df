# cython: language_level=3
# A venue name (symbol, instId, product) as a str, decoded only when it changes.
#
#     cdef NameCache _name_cache          # beside `cdef object _name_str`
#     name_cache_init(&self._name_cache)
#     self._name_str = cached_name(&self._name_cache, self._name_str, text, n)
#
# A feed carries few names and the same one message after message, so the
# common case compares a few bytes and allocates nothing.

from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.string cimport memcmp, memcpy

cdef enum:
    NAME_MAX = 48   # bytes a cached name may have (parsers refuse longer names first)


cdef struct NameCache:
    char text[NAME_MAX]
    Py_ssize_t len      # -1: nothing cached yet


cdef inline void name_cache_init(NameCache* cache) noexcept nogil:
    cache.len = -1


# The str of name[:n] (ASCII, n <= NAME_MAX): `last` when name is the text
# behind it, else a new str, whose text the cache then keeps.
cdef inline object cached_name(NameCache* cache, object last, const char* name, Py_ssize_t n):
    if cache.len == n and memcmp(cache.text, name, n) == 0:
        return last
    value = PyUnicode_DecodeASCII(name, n, NULL)
    memcpy(cache.text, name, n)
    cache.len = n
    return value
