# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The venue's own text of every level of one book side, keyed by price.

Some venues checksum their book over the prices and sizes *as they wrote
them* (OKX: "61737.6", "0.0012"; a float cannot say whether "0.10" had a
trailing zero).  A feed handler therefore keeps, beside the float book, the
text of every level it holds.  `LevelTexts` is that store: an open-addressing
hash table (linear probing, backward-shift deletion, at most half full) over
two parallel arrays: the prices as doubles (compact, so a probe reads only
them; 0.0 marks an empty slot, a level's price is always > 0) and 32-byte
text slots, each holding the price and size text inline (24 bytes between
them, the common case by far) or a pointer to a heap block of its own (any
length: the text is kept exactly).

Both of a handler's paths use the same store: its Python reference path
through the mapping API below (`texts[price] = (px, sz)`, `pop`, `load`),
its C path through `c_set` / `c_pop` / `c_find` (sentrycore/leveltext.pxd)
with the bytes of the frame, so the C checksum reads exactly what the
Python one reads.  Text is stored as UTF-8 (what the checksum hashes).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free

cdef enum:
    INITIAL_SLOTS = 64


cdef class LevelTexts:
    """price -> (price text, size text); see the module docstring and leveltext.pyi."""

    def __cinit__(self):
        self._keys = <double*>calloc(INITIAL_SLOTS, sizeof(double))
        self._slots = <TextSlot*>calloc(INITIAL_SLOTS + 1, sizeof(TextSlot))  # + 1: see TEXT_READ_SLACK
        if self._keys == NULL or self._slots == NULL:
            raise MemoryError()
        self._cap = INITIAL_SLOTS
        self._shift = 64 - 6
        self.count = 0

    def __dealloc__(self):
        if self._slots != NULL:
            self.c_clear()
        free(self._slots)
        free(self._keys)
        self._slots = NULL
        self._keys = NULL

    cdef TextSlot* c_find(self, double price) noexcept nogil:
        return texts_find(self, price)

    cdef int _grow(self) noexcept nogil:
        cdef Py_ssize_t old_cap = self._cap
        cdef double* old_keys = self._keys
        cdef TextSlot* old = self._slots
        cdef double* keys = <double*>calloc(old_cap * 2, sizeof(double))
        cdef TextSlot* slots = <TextSlot*>calloc(old_cap * 2 + 1, sizeof(TextSlot))
        cdef Py_ssize_t j, i, mask
        if keys == NULL or slots == NULL:
            free(keys)
            free(slots)
            return -1
        self._keys = keys
        self._slots = slots
        self._cap = old_cap * 2
        self._shift -= 1
        mask = self._cap - 1
        for j in range(old_cap):
            if old_keys[j] != 0.0:
                i = texts_home(old_keys[j], self._shift)
                while keys[i] != 0.0:
                    i = (i + 1) & mask
                keys[i] = old_keys[j]
                slots[i] = old[j]  # a heap block's pointer moves with it
        free(old_keys)
        free(old)
        return 0

    cdef int c_set(self, double price, const char* px, Py_ssize_t px_len,
                   const char* qty, Py_ssize_t qty_len) noexcept nogil:
        return texts_set(self, price, px, px_len, qty, qty_len)

    cdef void c_pop(self, double price) noexcept nogil:
        texts_pop(self, price)

    cdef void c_clear(self) noexcept nogil:
        cdef Py_ssize_t j
        for j in range(self._cap):
            if self._keys[j] != 0.0:
                texts_release(&self._slots[j])
                self._keys[j] = 0.0
        self.count = 0

    # -- the Python mapping API (the reference path, tools and tests) -----------

    def __len__(self):
        return self.count

    def __contains__(self, price):
        return _valid_key(price) and self.c_find(price) != NULL

    def __getitem__(self, price):
        cdef TextSlot* slot = self.c_find(price) if _valid_key(price) else NULL
        if slot == NULL:
            raise KeyError(price)
        return _pair(slot)

    def __setitem__(self, price, pair):
        px, qty = pair
        self._set(price, px.encode(), qty.encode())

    cdef _set(self, double price, bytes px, bytes qty):
        if not price > 0.0:
            raise ValueError(f"LevelTexts: a price must be > 0, got {price!r}")
        if self.c_set(price, PyBytes_AS_STRING(px), PyBytes_GET_SIZE(px),
                      PyBytes_AS_STRING(qty), PyBytes_GET_SIZE(qty)) != 0:
            raise MemoryError()

    def __delitem__(self, price):
        if not _valid_key(price) or self.c_find(price) == NULL:
            raise KeyError(price)
        self.c_pop(price)

    def pop(self, price, default=None):
        cdef TextSlot* slot = self.c_find(price) if _valid_key(price) else NULL
        if slot == NULL:
            return default
        pair = _pair(slot)
        self.c_pop(price)
        return pair

    def load(self, levels):
        """Replace everything with `levels`, an iterable of (price, px, sz)."""
        self.c_clear()
        for price, px, qty in levels:
            self._set(price, px.encode(), qty.encode())

    def clear(self):
        self.c_clear()

    def __iter__(self):
        return iter(self.prices())

    def prices(self):
        """The prices held, in no particular order (a list: the store may change meanwhile)."""
        cdef Py_ssize_t j
        return [self._keys[j] for j in range(self._cap) if self._keys[j] != 0.0]

    def items(self):
        cdef Py_ssize_t j
        return [(self._keys[j], _pair(&self._slots[j])) for j in range(self._cap) if self._keys[j] != 0.0]

    def __repr__(self):
        return f"LevelTexts({len(self)} levels)"


cdef inline bint _valid_key(double price) noexcept:
    return price > 0.0  # 0.0 marks an empty slot; no level has a price <= 0 (or NaN)


cdef tuple _pair(TextSlot* slot):
    return (PyUnicode_DecodeUTF8(slot_px(slot), slot.px_len, NULL),
            PyUnicode_DecodeUTF8(slot_qty(slot), slot.qty_len, NULL))
