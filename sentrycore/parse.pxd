# cython: language_level=3
# C-level interface of sentrycore.DepthParser for other Cython code.
#
#     from sentrycore.parse cimport DepthParser
#     if parser.c_parse(buf, n) and parser.c_apply_to(book): ...
#
# c_parse returns 0 (not parsed: use the reference decoder), 1 (combined
# stream frame) or 2 (raw event).  c_apply_to applies both sides with one
# OrderBook.c_apply (which validates everything first): 0 with the book
# untouched on any bad value, 1 when applied.  Rebuild this extension
# whenever sentrycore/book.pxd changes (setup.py build_ext does).

from libc.stdint cimport int64_t
from sentrycore.book cimport OrderBook
from sentrycore.counters cimport FeedCounters
from sentrycore.names cimport NAME_MAX, NameCache
from sentrycore.levels cimport LevelBuffer


cdef class DepthParser:
    # Fields of the last parsed event (meaningless when kind == 0).
    cdef readonly int kind
    cdef readonly int64_t E
    cdef readonly int64_t U
    cdef readonly int64_t u
    cdef readonly int64_t pu
    cdef readonly bint has_pu
    # The last parsed event's levels per side (buffers grown on demand).
    cdef LevelBuffer bids
    cdef LevelBuffer asks
    cdef char _sym[NAME_MAX]
    cdef Py_ssize_t _sym_len
    # The str last handed out for `symbol`, reused while the symbol repeats.
    cdef NameCache _name_cache
    cdef object _cached_symbol

    cdef Py_ssize_t _object(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n, bint top, int* fields) noexcept
    cdef object _symbol(self)
    # c_parse tries _binance_layout (Binance's exact bytes) and, when that
    # declines, _any_layout (keys in any order: the definition).
    cdef int _binance_layout(self, const unsigned char* s, Py_ssize_t n) noexcept
    cdef int _any_layout(self, const unsigned char* s, Py_ssize_t n) noexcept
    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept
    cpdef int parse(self, object data) noexcept
    cdef int _parse_buffer(self, object data, int reader) noexcept
    cdef bint c_valid(self) noexcept nogil
    cdef int c_apply_to(self, OrderBook book) noexcept nogil
    cpdef bint apply_to(self, OrderBook book) noexcept
    cpdef bint apply_next(self, OrderBook book, int64_t last_u, bint pu_chain) noexcept
    # `take` (see parse.pyi) for C callers; raises only what after_message raises.
    cdef bint c_take(self, object data, dict routes, bint pu_chain) except -1


cdef class ChainState:
    # True once a snapshot is applied and bridged: events chain from last_u.
    cdef public bint synced
    # The last applied event's final update id (the Python property
    # `last_u`): held as a C int64 when it is an int in range, otherwise as
    # the object itself, which sends every frame to the reference path
    # (sentrycore/int64box.pxd).
    cdef int64_t _last_u
    cdef bint _last_u_ok
    cdef object _last_u_other
    # The sentrycoin Market: `after_message(E)` runs after each applied event.
    cdef public object market
    # market.book (set by __init__): takes the levels.
    cdef public OrderBook book


cdef class FramePath:
    cdef DepthParser parser
    cdef dict routes
    cdef bint pu_chain
    cdef FeedCounters counters
    cdef object fallback
