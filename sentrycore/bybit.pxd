# cython: language_level=3
# C-level interface of sentrycore.bybit for other Cython code.

from libc.stdint cimport int64_t
from sentrycore.counters cimport FeedCounters
from sentrycore.names cimport NAME_MAX, NameCache
from sentrycore.levels cimport LevelBuffer


cdef class BybitFramePath:
    # Fields of the last parsed message (meaningless when parse returned 0).
    cdef readonly int64_t ts
    cdef readonly int64_t u
    cdef LevelBuffer bids
    cdef LevelBuffer asks
    cdef bint _delta            # "type":"delta"
    cdef bint _topic_ok         # "topic" == "orderbook.<depth>.<s>"
    cdef Py_ssize_t _topic_start, _topic_len, _sym_start, _sym_len
    cdef char _prefix[32]       # "orderbook.<depth>."
    cdef Py_ssize_t _prefix_len
    cdef char _sym[NAME_MAX]
    cdef Py_ssize_t _sym_n
    # The str last handed out for the symbol, reused while it repeats.
    cdef NameCache _name_cache
    cdef object _cached_symbol
    cdef dict routes
    cdef FeedCounters counters
    cdef object fallback
    # Frames applied in C (the rest went to `fallback`).
    cdef readonly long long taken

    cdef Py_ssize_t _data(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n, int* fields) noexcept
    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept
    cpdef int parse(self, object data) noexcept
    cdef object _symbol(self)
    cdef bint c_take(self, object data) except -1
