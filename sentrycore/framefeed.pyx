# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The replay's hot loop: frame records of a SentryCoin recording, read and fed in C.

A recording line is JSON with the frame's text embedded as a JSON string, so
reading one through msgspec means decoding a Struct and unescaping ~500
bytes full of `\\"` (most of a replay's time); then the str goes back to
bytes for the handler.  `FrameFeeder.feed` reads the exact layout our
`RecordingWriter` writes (msgspec's encoding of `FrameRecord`):

    {"t":"frame","venue":"<name>","conn":<int>,"ms":<int>,"data":"<escaped text>"}

unescapes `data` straight into the bytes the handler takes, sets the
replay's `SourceClock` to the recorded receive time and calls the handler.
It stops at the first line of any other shape -- another record kind, keys
in another order, a `\\u` escape, a control or non-ASCII byte, anything odd -- and
returns its index: the caller decodes that line with msgspec (the reference
and the definition of the format) and calls `feed` again after it.  So the
fast path only ever handles lines whose meaning is unambiguous, and a line
msgspec would reject is always left to msgspec to reject.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcmp, memchr

from sentrycore.jsonscan cimport scan_int, scan_string
from sentrycore.marketcore cimport SourceClock


cdef enum:
    INITIAL_BUFFER = 4096


cdef const char* FRAME_HEAD = b'{"t":"frame","venue":'
cdef Py_ssize_t FRAME_HEAD_LEN = 21


cdef inline Py_ssize_t _key(const unsigned char* s, Py_ssize_t i, Py_ssize_t n,
                            const char* key, Py_ssize_t key_len) noexcept nogil:
    # `,"<key>":` at s[i]: the index after it, or -1.
    if n - i < key_len + 4 or s[i] != 44 or s[i + 1] != 34:
        return -1
    if memcmp(s + i + 2, key, key_len) != 0 or s[i + 2 + key_len] != 34 or s[i + 3 + key_len] != 58:
        return -1
    return i + key_len + 4


cdef class FrameFeeder:
    """Feeds the frame records of a batch of recording lines to a handler; see the module doc."""

    cdef SourceClock clock
    # The last unescaped frame text: _len bytes of _buf (_cap allocated).
    cdef char* _buf
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _len
    # Frame records fed, non-blank lines consumed, and the receive times of
    # the first and last frame fed (first_ms is -1 until one is).
    cdef public long long frames
    cdef public long long lines
    cdef public int64_t first_ms
    cdef public int64_t last_ms

    def __cinit__(self, SourceClock clock not None):
        self.clock = clock
        self._cap = INITIAL_BUFFER
        self._buf = <char*>malloc(self._cap)
        if self._buf == NULL:
            raise MemoryError()
        self.frames = 0
        self.lines = 0
        self.first_ms = -1
        self.last_ms = -1

    def __dealloc__(self):
        free(self._buf)

    cdef Py_ssize_t _unescape(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
        # The JSON string body starting at s[i] (after its opening quote) into
        # _buf; returns the index after the closing quote, -1 on anything but
        # the plain escapes of ASCII text.  The length goes to
        # self._len.
        cdef Py_ssize_t out = 0
        cdef unsigned char c
        cdef char* grown
        if self._cap < n - i:
            # The unescaped text is never longer than its escaped form.
            grown = <char*>realloc(self._buf, n - i)
            if grown == NULL:
                return -1
            self._buf = grown
            self._cap = n - i
        while i < n:
            c = s[i]
            if c == 34:  # '"': the end
                self._len = out
                return i + 1
            if c == 92:  # '\\'
                i += 1
                if i >= n:
                    return -1
                c = s[i]
                if c == 34 or c == 92 or c == 47:
                    pass
                elif c == 110:
                    c = 10
                elif c == 116:
                    c = 9
                elif c == 114:
                    c = 13
                elif c == 98:
                    c = 8
                elif c == 102:
                    c = 12
                else:
                    return -1  # \u and anything else: msgspec decides
            elif c < 32 or c > 126:
                # A raw control byte is invalid JSON; non-ASCII bytes are left to
                # msgspec, which also checks they are valid UTF-8.
                return -1
            self._buf[out] = <char>c
            out += 1
            i += 1
        return -1

    cdef int _frame(self, bytes line, int64_t* conn, int64_t* ms) noexcept:
        # 1 when `line` is a frame record of the exact layout (data left in _buf).
        cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(line)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(line)
        cdef Py_ssize_t i, start
        if n < FRAME_HEAD_LEN or memcmp(s, FRAME_HEAD, FRAME_HEAD_LEN) != 0:
            return 0
        i = scan_string(s, FRAME_HEAD_LEN, n, &start)
        if i < 0:
            return 0
        i = _key(s, i, n, b"conn", 4)
        if i < 0:
            return 0
        i = scan_int(s, i, n, conn)
        if i < 0:
            return 0
        i = _key(s, i, n, b"ms", 2)
        if i < 0:
            return 0
        i = scan_int(s, i, n, ms)
        if i < 0:
            return 0
        i = _key(s, i, n, b"data", 4)
        if i < 0 or i >= n or s[i] != 34:
            return 0
        i = self._unescape(s, i + 1, n)
        if i < 0 or i != n - 1 or s[i] != 125:  # exactly '}' ends the line
            return 0
        return 1

    def feed(self, list batch not None, Py_ssize_t start, on_frame, list actions, observe):
        """Feed batch[start:]'s frame records to `on_frame(conn, data, ms)` until a
        line of another shape; returns that line's index (len(batch) when none).

        Blank lines are skipped.  After each frame, `actions` (the handler's
        action list) is cleared -- the recording already holds the venue's
        answers -- and `observe(...)` is called when not None."""
        cdef Py_ssize_t i = start
        cdef Py_ssize_t size = PyList_GET_SIZE(batch)
        cdef object item
        cdef bytes line, data
        cdef int64_t conn = 0, ms = 0
        while i < size:
            item = <object>PyList_GET_ITEM(batch, i)
            if type(item) is not bytes:
                return i
            line = <bytes>item
            if PyBytes_GET_SIZE(line) == 0:
                i += 1
                continue
            if not self._frame(line, &conn, &ms):
                return i
            data = PyBytes_FromStringAndSize(self._buf, self._len)
            self.lines += 1
            self.frames += 1
            if self.first_ms < 0:
                self.first_ms = ms
            self.last_ms = ms
            self.clock.now_ms = ms
            on_frame(conn, data, ms)
            if observe is not None:
                observe()
            if actions:
                del actions[:]
            i += 1
        return size
