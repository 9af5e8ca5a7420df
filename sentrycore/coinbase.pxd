# cython: language_level=3
# C-level interface of sentrycore.coinbase (the Coinbase level2 native path).
#
#     from sentrycore.coinbase cimport CoinbaseParser, ProductState, SequenceState
#
# CoinbaseParser.c_parse reads one `l2_data` frame holding exactly one
# `update` event: 1 when parsed (fields and levels below), 0 when the frame
# has any other shape (the handler's msgspec path decides).

from libc.stdint cimport int64_t
from sentrycore.counters cimport FeedCounters
from sentrycore.names cimport NAME_MAX, NameCache
from sentrycore.levels cimport LevelBuffer


cdef class SequenceState:
    # One connection's `sequence_num` follower: the last number seen, held
    # as a C int64 when it is an int in range (else the object itself, and
    # the C path declines: sentrycore/int64box.pxd); None until the first
    # numbered message.
    cdef int64_t _last
    cdef bint _last_ok
    cdef object _last_other


cdef class ProductState:
    # One served product (BTC-USD also feeds BTC-USDC): its markets, fed
    # the same levels, and whether a snapshot must come first.
    cdef public bint awaiting
    cdef public list markets


cdef class CoinbaseParser:
    cdef readonly int64_t sequence_num
    cdef readonly int64_t event_ms
    cdef LevelBuffer bids
    cdef LevelBuffer asks
    cdef char _product[NAME_MAX]
    cdef Py_ssize_t _product_len
    cdef NameCache _name_cache
    cdef object _cached_product
    cdef int _parsed

    cdef Py_ssize_t _level_compact(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept
    cdef Py_ssize_t _updates(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept
    cdef Py_ssize_t _level(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept
    cdef Py_ssize_t _event(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept
    cdef int _parse_compact(self, const unsigned char* s, Py_ssize_t n) noexcept
    cdef int _parse_general(self, const unsigned char* s, Py_ssize_t n) noexcept
    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept
    cdef int _parse_object(self, object data) noexcept
    cdef object _product_str(self)
    # The whole hot path (see coinbase.pyi `take`); raises only what after_message raises.
    cdef bint c_take(self, object data, SequenceState seq, dict products) except -1


cdef class CoinbaseFramePath:
    cdef CoinbaseParser parser
    cdef dict sequences
    cdef dict products
    cdef FeedCounters counters
    cdef object fallback
    cdef object internal_error
