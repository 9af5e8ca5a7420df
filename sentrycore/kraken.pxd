# cython: language_level=3
# C-level interface of sentrycore.kraken (the Kraken v2 book native path).
#
#     from sentrycore.kraken cimport KrakenBookState, c_book_checksum
#
# c_book_checksum: CRC32 of the book's top 10 asks then top 10 bids, each
# level's price and quantity written with the instrument's places (or taken
# from the state's token dicts when the level is there), -1 when a level's
# text cannot be given (no token and no precision, or not exact).

from libc.stdint cimport int64_t
from sentrycore.book cimport OrderBook
from sentrycore.counters cimport FeedCounters
from sentrycore.names cimport NAME_MAX, NameCache
from sentrycore.levels cimport LevelBuffer


cdef class ChecksumCounts:
    cdef public long long ok
    cdef public long long failed


cdef class KrakenBookState:
    # The market this book belongs to (its `book` is read each message).
    cdef public object market
    # Truncation depth: what the venue acknowledged.
    cdef public Py_ssize_t depth
    # Updates mean nothing until a snapshot lands.
    cdef public bint awaiting
    # A v2 book message arrived before the instrument precisions.
    cdef public bint needs_precision
    # v2 instrument precisions; -1 while unknown (None in Python).
    cdef int _price_places
    cdef int _qty_places
    # v1: the places the venue's strings were written with, learned from
    # the last snapshot (-1 unknown).  The checksum writes levels with the
    # instrument's places when known, else with these (`text_places`).
    cdef int _v1_price_places
    cdef int _v1_qty_places
    # price -> checksum token of the levels whose text the book's double
    # cannot give back: v1 strings not written with the learned places, and
    # v2 numbers with more decimals than the precision or too many digits.
    # Empty on the v2 C path (it declines otherwise).
    cdef public dict bid_tokens
    cdef public dict ask_tokens
    # The last checksum computed without tokens, and the top levels it was
    # computed from (asks then bids, at most 10 each): a message that leaves
    # them as they were (most touch deeper levels) reuses it.
    cdef bint _last_ok
    cdef long long _last_crc
    cdef int _last_pp
    cdef int _last_qp
    cdef int _last_n_asks
    cdef int _last_n_bids
    cdef double _last_prices[20]
    cdef double _last_qtys[20]
    # ... and its text (each level's price digits then size digits): level
    # j's is _last_text[_last_at[j]:_last_at[j + 1]], its size from
    # _last_mid[j].  A level still in the top with the same price (and size)
    # is copied from here instead of written again.
    cdef char _last_text[800]
    cdef short _last_at[21]
    cdef short _last_mid[20]


cdef long long c_book_checksum(OrderBook book, KrakenBookState state) except -2
# The places levels are written with: the instrument's (v2), else v1's learned ones; False if unknown.
cdef bint c_text_places(KrakenBookState state, int* pp, int* qp) noexcept


cdef class KrakenParser:
    cdef readonly int64_t checksum
    cdef readonly int64_t event_ms
    cdef LevelBuffer bids
    cdef LevelBuffer asks
    cdef LevelBuffer _cut
    # The most decimals any non-delete level's price / quantity was written with.
    cdef int _price_frac
    cdef int _qty_frac
    # v1: the fewest (its strings must all have exactly the places).
    cdef int _price_frac_lo
    cdef int _qty_frac_lo
    cdef char _symbol[NAME_MAX]
    cdef Py_ssize_t _symbol_len
    cdef NameCache _name_cache
    cdef object _cached_symbol
    cdef int _parsed
    # v1: the newest level time (Unix ms) and whether one was found.
    cdef bint _has_time
    cdef double _newest_s
    cdef bint _has_checksum
    # The last parse was a v1 array.
    cdef bint _v1

    cdef Py_ssize_t _levels(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n, LevelBuffer* out) noexcept
    cdef Py_ssize_t _book(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept
    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept
    cdef bint _parse_object(self, object data) noexcept
    cdef Py_ssize_t _v1_levels(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n, LevelBuffer* out, bint asks) noexcept
    cdef Py_ssize_t _v1_object(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept
    cdef int c_parse_v1(self, const unsigned char* s, Py_ssize_t n) noexcept
    cdef bint _apply_checked(self, KrakenBookState state, ChecksumCounts counts, object mismatch) except -1
    cdef object _symbol_str(self)
    cdef bint c_take(self, object data, dict routes, ChecksumCounts counts, object mismatch) except -1


cdef class KrakenFramePath:
    cdef KrakenParser parser
    cdef dict routes
    cdef ChecksumCounts counts
    cdef FeedCounters counters
    cdef object fallback
    cdef object mismatch
    cdef object internal_error
