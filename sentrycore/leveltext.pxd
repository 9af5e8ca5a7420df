# cython: language_level=3
# C-level interface of sentrycore.leveltext.LevelTexts for other Cython code.
#
#     from sentrycore.leveltext cimport LevelTexts, TextSlot, slot_px, slot_qty
#     texts.c_set(price, px, px_len, qty, qty_len)    # the level's text as the venue sent it
#     slot = texts.c_find(price)                       # NULL when the level has no text
#
# c_set returns 0, or -1 when memory ran out (the store is unchanged then).

from libc.stdint cimport uint32_t

cdef enum:
    # Bytes of text (price then quantity) kept inside the slot; longer texts
    # go to a heap block of their own.  48 makes a slot exactly 64 bytes.
    TEXT_INLINE = 48


# The text of one level; its price is the same index of LevelTexts._keys.
cdef struct TextSlot:
    char* heap          # NULL: the text is in inline_text
    uint32_t px_len
    uint32_t qty_len
    char inline_text[TEXT_INLINE]


cdef inline const char* slot_px(TextSlot* slot) noexcept nogil:
    return slot.heap if slot.heap != NULL else slot.inline_text


cdef inline const char* slot_qty(TextSlot* slot) noexcept nogil:
    return (slot.heap if slot.heap != NULL else slot.inline_text) + slot.px_len


cdef class LevelTexts:
    # Open addressing over two parallel arrays: the prices (0.0 = empty: a
    # level's price is always > 0), compact so a probe stays in L1, and the texts.
    cdef double* _keys
    cdef TextSlot* _slots
    cdef Py_ssize_t _cap      # a power of two
    cdef int _shift           # 64 - log2(_cap): the hash's top bits pick the home slot
    cdef readonly Py_ssize_t count

    cdef Py_ssize_t _home(self, double price) noexcept nogil
    cdef int _grow(self) noexcept nogil
    cdef _set(self, double price, bytes px, bytes qty)
    cdef TextSlot* c_find(self, double price) noexcept nogil
    cdef int c_set(self, double price, const char* px, Py_ssize_t px_len,
                   const char* qty, Py_ssize_t qty_len) noexcept nogil
    cdef void c_pop(self, double price) noexcept nogil
    cdef void c_clear(self) noexcept nogil
