# cython: language_level=3
# C-level interface of sentrycore.okx for other Cython code.

from libc.stdint cimport int64_t
from sentrycore.counters cimport FeedCounters
from sentrycore.names cimport NAME_MAX, NameCache
from sentrycore.leveltext cimport LevelTexts
from sentrycore.levels cimport LevelBuffer, TextSpans
from sentrycore.parse cimport ChainState


cdef enum:
    TOP_LEVELS = 25      # OKX's checksum covers the best 25 levels per side
    TOP_TEXT = 48        # "px:sz" of a level kept in a TopEntry (longer: looked up every time)
    TOP_COPY = 32        # entries this long or shorter are copied as one fixed-size block


# One level of the last verified checksum text: its price and "px:sz".
cdef struct TopEntry:
    double price
    Py_ssize_t len       # of text; -1 when longer than TOP_TEXT (not kept)
    char text[TOP_TEXT]  # TOP_COPY bytes are read whatever len (64-byte entries)


# The best 25 levels per side behind the last checksum that matched, twice
# (entries[buf][side][i], flat: (buf * 2 + side) * TOP_LEVELS + i; side 0 = bids):
# `cur` is the one in force, the other is filled by the next checksum.
cdef struct TopCache:
    TopEntry entries[4 * TOP_LEVELS]
    Py_ssize_t n[4]
    int cur


cdef class OkxBookState(ChainState):
    # The text of every level the book holds, as OKX sent it (the checksum's input).
    cdef readonly LevelTexts bid_text
    cdef readonly LevelTexts ask_text
    # The C path's checksum text of the top levels, valid only while
    # _top_valid and _last_u == _top_seq (see okx.pyx, "Checksum").
    cdef TopCache* _top
    cdef bint _top_valid
    cdef int64_t _top_seq
    cpdef prune_texts(self)


# OKX's checksum of `state`'s book from its texts: the signed CRC32 in
# *out, 1; or 0 when one of the best 25 levels has no text (cannot match).
cdef int okx_book_checksum(OkxBookState state, LevelBuffer* top, int64_t* out) noexcept


cdef class OkxFramePath:
    # Fields of the last parsed message (meaningless when parse returned 0).
    cdef readonly int64_t ts
    cdef readonly int64_t seq_id
    cdef readonly int64_t prev_seq_id
    cdef readonly int64_t checksum
    cdef LevelBuffer bids
    cdef LevelBuffer asks
    cdef TextSpans bid_spans
    cdef TextSpans ask_spans
    cdef LevelBuffer _top       # the book's best 25 of one side, for the checksum
    cdef char _inst[NAME_MAX]
    cdef Py_ssize_t _inst_n
    cdef NameCache _name_cache
    cdef object _cached_symbol
    cdef dict routes
    cdef FeedCounters counters
    cdef object fallback
    cdef object on_mismatch
    cdef readonly Py_ssize_t prune_levels
    cdef readonly long long taken

    cdef Py_ssize_t _arg(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept
    cdef Py_ssize_t _entry(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept
    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept
    cpdef int parse(self, object data) noexcept
    cdef object _symbol(self)
    cdef bint c_take(self, object data) except -1
