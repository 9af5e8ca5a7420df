# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Bybit v5 `orderbook.{depth}.{symbol}` deltas on the native path.

The layout-specific piece of the shared C path (sentrycore/levels.pxd): it
reads `{"topic":..,"type":"delta","ts":..,"data":{"s":..,"b":[[p,q]..],
"a":[[p,q]..],"u":..,"seq":..},"cts":..}` straight from the frame bytes and,
for the hot case only -- a synced book's delta whose `u` is the previous
`u + 1` -- applies both sides to the book and finishes the message on its
market, all in C.  Everything else (snapshots, `u == 1` restarts, gaps,
unknown symbols, odd frames, bad values) goes untouched to the handler's
reference path (sentrycoin/feeds/bybit.py), which stays the definition of
the protocol and the oracle of the tests (tests/feeds/test_native_bybit.py).

The per-symbol state is `sentrycore.parse.ChainState` (`synced`, `last_u`,
`market`, `book`), the same object the reference path reads and writes.
The handler keys states by symbol and derives each topic from it as
`orderbook.<depth>.<symbol>`, so the C path checks the topic against the
symbol in the frame instead of reading the state's topic.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.stdint cimport int64_t
from libc.string cimport memcmp, memcpy

from sentrycore.counters cimport FeedCounters
from sentrycore.names cimport cached_name, name_cache_init
from sentrycore.jsonscan cimport skip_ws, scan_string, scan_int, skip_value, scan_key, end_member
from sentrycore.levels cimport levels_list, levels_init, levels_free, read_level_array, apply_levels, finish_message
from sentrycore.parse cimport ChainState


cdef enum:
    F_TOPIC = 1
    F_TYPE = 2
    F_TS = 4
    F_DATA = 8
    F_TOP = F_TOPIC | F_TYPE | F_TS | F_DATA
    D_S = 1
    D_B = 2
    D_A = 4
    D_U = 8
    D_ALL = D_S | D_B | D_A | D_U
    INITIAL_LEVELS = 64
    MAX_SYMBOL = 47


cdef class BybitFramePath:
    """See sentrycore/bybit.pyi."""

    def __cinit__(self, *args, **kwargs):
        if not (levels_init(&self.bids, INITIAL_LEVELS) and levels_init(&self.asks, INITIAL_LEVELS)):
            raise MemoryError()
        name_cache_init(&self._name_cache)

    def __init__(self, int depth, dict routes not None, FeedCounters counters not None, fallback):
        prefix = f"orderbook.{depth}.".encode()
        if len(prefix) >= 32:
            raise ValueError(f"depth {depth} too large")
        memcpy(self._prefix, PyBytes_AS_STRING(prefix), len(prefix))
        self._prefix_len = len(prefix)
        self.routes = routes
        self.counters = counters
        self.fallback = fallback

    def __dealloc__(self):
        levels_free(&self.bids)
        levels_free(&self.asks)

    cdef Py_ssize_t _data(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n, int* fields) noexcept:
        cdef Py_ssize_t k, klen, start
        cdef int bit
        cdef bint done = False
        cdef int64_t iv
        if i >= n or s[i] != 123:  # '{'
            return -1
        i = skip_ws(s, i + 1, n)
        if i < n and s[i] == 125:
            return i + 1
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return -1
            bit = 0
            if klen == 1 and s[k] == 115:  # s
                bit = D_S
                i = scan_string(s, i, n, &start)
                if i >= 0:
                    if i - 1 - start > MAX_SYMBOL:
                        return -1
                    self._sym_n = i - 1 - start
                    memcpy(self._sym, s + start, self._sym_n)
            elif klen == 1 and s[k] == 98:  # b
                bit = D_B
                i = read_level_array(s, i, n, &self.bids, 0)
            elif klen == 1 and s[k] == 97:  # a
                bit = D_A
                i = read_level_array(s, i, n, &self.asks, 0)
            elif klen == 1 and s[k] == 117:  # u
                bit = D_U
                i = scan_int(s, i, n, &iv)
                self.u = iv
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, fields, &done)
            if i < 0:
                return -1
            if done:
                return i

    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept:
        cdef int top = 0
        cdef int data = 0
        cdef int bit
        cdef bint done = False
        cdef Py_ssize_t i, k, klen, start
        cdef int64_t iv
        self._delta = False
        self._topic_ok = False
        i = skip_ws(s, 0, n)
        if i >= n or s[i] != 123:
            return 0
        i = skip_ws(s, i + 1, n)
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return 0
            bit = 0
            if klen == 5 and memcmp(s + k, b"topic", 5) == 0:
                bit = F_TOPIC
                i = scan_string(s, i, n, &start)
                self._topic_start = start
                self._topic_len = i - 1 - start
            elif klen == 4 and memcmp(s + k, b"type", 4) == 0:
                bit = F_TYPE
                i = scan_string(s, i, n, &start)
                self._delta = i - 1 - start == 5 and memcmp(s + start, b"delta", 5) == 0
            elif klen == 2 and s[k] == 116 and s[k + 1] == 115:  # ts
                bit = F_TS
                i = scan_int(s, i, n, &iv)
                self.ts = iv
            elif klen == 4 and memcmp(s + k, b"data", 4) == 0:
                bit = F_DATA
                i = self._data(s, i, n, &data)
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, &top, &done)
            if i < 0:
                return 0
            if done:
                break
        if skip_ws(s, i, n) != n or top != F_TOP or data != D_ALL or not self._delta:
            return 0
        # The handler's topic for symbol s: "orderbook.<depth>.<s>".
        self._topic_ok = (self._topic_len == self._prefix_len + self._sym_n and
                          memcmp(s + self._topic_start, self._prefix, self._prefix_len) == 0 and
                          memcmp(s + self._topic_start + self._prefix_len, self._sym, self._sym_n) == 0)
        return 1 if self._topic_ok else 0

    cpdef int parse(self, object data) noexcept:
        cdef Py_buffer view
        cdef int kind
        if type(data) is bytes:
            return self.c_parse(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except Exception:
            return 0
        kind = self.c_parse(<const unsigned char*>view.buf, view.len)
        PyBuffer_Release(&view)
        return kind

    cdef object _symbol(self):
        # Interned per path: the common case (same symbol as last time) allocates nothing.
        self._cached_symbol = cached_name(&self._name_cache, self._cached_symbol, self._sym, self._sym_n)
        return self._cached_symbol

    cdef bint c_take(self, object data) except -1:
        cdef object obj
        cdef ChainState state
        if self.parse(data) != 1 or self.u == 1:
            return False  # u == 1: Bybit restarted, the message is a snapshot
        obj = self.routes.get(self._symbol())
        if obj is None or not isinstance(obj, ChainState):
            return False
        state = <ChainState>obj
        # u - 1 == last_u is u == last_u + 1 without overflow (u >= 0).
        if not state.synced or not state._last_u_ok or self.u - 1 != state._last_u or state.book is None:
            return False
        if apply_levels(state.book, &self.bids, &self.asks) == 0:
            return False  # a bad value: the book is untouched, the reference path resyncs
        state._last_u = self.u
        self.taken += 1
        finish_message(state.market, self.ts)
        return True

    def on_frame(self, conn_id, data, recv_ms):
        self.counters.frames += 1
        self.counters.bytes += len(data)
        if not self.c_take(data):
            self.fallback(conn_id, data, recv_ms)

    @property
    def symbol(self):
        return self._symbol() if self._topic_ok else None

    @property
    def bids(self):
        return levels_list(&self.bids)

    @property
    def asks(self):
        return levels_list(&self.asks)
