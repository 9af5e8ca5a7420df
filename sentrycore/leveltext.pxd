# cython: language_level=3
# C-level interface of sentrycore.leveltext.LevelTexts for other Cython code.
#
#     from sentrycore.leveltext cimport LevelTexts, TextSlot, slot_px, slot_qty
#     texts.c_set(price, px, px_len, qty, qty_len)    # the level's text as the venue sent it
#     slot = texts.c_find(price)                       # NULL when the level has no text
#
# c_set returns 0, or -1 when memory ran out (the store is unchanged then).
# texts_find / texts_set / texts_pop below are the same operations inline,
# for hot loops (no method call per level); the methods call them.

from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

cdef enum:
    # Bytes of text (price then quantity) kept inside the slot, which is then
    # exactly 32 bytes: "61737.63" + "0.00012345" fits.  A longer text goes
    # to a heap block of its own, whose pointer the slot keeps instead.
    TEXT_INLINE = 24
    # Every text may be read TEXT_READ_SLACK bytes at a time past its end
    # (fixed-size copies compile to one vector move): the slot array has a
    # spare slot at its end and heap blocks this much padding.
    TEXT_READ_SLACK = 16


# The text of one level; its price is the same index of LevelTexts._keys.
cdef struct TextSlot:
    uint32_t px_len
    uint32_t qty_len
    char text[TEXT_INLINE]   # the text, or a char* to it when px_len + qty_len > TEXT_INLINE


cdef inline char* slot_heap(TextSlot* slot) noexcept nogil:
    cdef char* heap
    memcpy(&heap, slot.text, sizeof(char*))
    return heap


cdef inline const char* slot_px(TextSlot* slot) noexcept nogil:
    if slot.px_len + slot.qty_len <= TEXT_INLINE:
        return slot.text
    return slot_heap(slot)


cdef inline const char* slot_qty(TextSlot* slot) noexcept nogil:
    return slot_px(slot) + slot.px_len


cdef class LevelTexts:
    # Open addressing over two parallel arrays: the prices (0.0 = empty: a
    # level's price is always > 0), compact so a probe stays in L1, and the texts.
    cdef double* _keys
    cdef TextSlot* _slots
    cdef Py_ssize_t _cap      # a power of two
    cdef int _shift           # 64 - log2(_cap): the hash's top bits pick the home slot
    cdef readonly Py_ssize_t count

    cdef int _grow(self) noexcept nogil
    cdef _set(self, double price, bytes px, bytes qty)
    cdef TextSlot* c_find(self, double price) noexcept nogil
    cdef int c_set(self, double price, const char* px, Py_ssize_t px_len,
                   const char* qty, Py_ssize_t qty_len) noexcept nogil
    cdef void c_pop(self, double price) noexcept nogil
    cdef void c_clear(self) noexcept nogil


# The hash of a price and its home slot: the top bits of a multiplicative hash.
cdef inline Py_ssize_t texts_home(double price, int shift) noexcept nogil:
    cdef uint64_t bits
    memcpy(&bits, &price, 8)
    bits ^= bits >> 29  # prices differ mostly in their low mantissa bits
    return <Py_ssize_t>((bits * 0x9E3779B97F4A7C15ULL) >> shift)


# LevelTexts.c_find, inline for C callers (no method call per lookup).
cdef inline TextSlot* texts_find(LevelTexts texts, double price) noexcept nogil:
    cdef Py_ssize_t mask = texts._cap - 1
    cdef Py_ssize_t i = texts_home(price, texts._shift)
    cdef double key = texts._keys[i]
    while key != 0.0:
        if key == price:
            return &texts._slots[i]
        i = (i + 1) & mask
        key = texts._keys[i]
    return NULL


cdef inline void texts_release(TextSlot* slot) noexcept nogil:
    if slot.px_len + slot.qty_len > TEXT_INLINE:
        free(slot_heap(slot))
    slot.px_len = 0
    slot.qty_len = 0


# LevelTexts.c_set, inline: 0, or -1 when memory ran out (the store is unchanged then).
cdef inline int texts_set(LevelTexts texts, double price, const char* px, Py_ssize_t px_len,
                          const char* qty, Py_ssize_t qty_len, bint src_slack=False) noexcept nogil:
    # price > 0 (the caller's book accepted it).  `src_slack`: px and qty may
    # each be read TEXT_READ_SLACK bytes from their start whatever their
    # length (a frame's text, followed by more of the frame), so a short
    # text is copied with fixed-size moves instead of a memcpy call.
    cdef char staged[2 * TEXT_READ_SLACK]
    cdef TextSlot* slot = texts_find(texts, price)
    cdef Py_ssize_t mask, i
    cdef Py_ssize_t total = px_len + qty_len
    cdef char* heap = NULL
    cdef char* dst
    if total > TEXT_INLINE:
        heap = <char*>malloc(total + TEXT_READ_SLACK)
        if heap == NULL:
            return -1
    if slot == NULL:
        if 2 * (texts.count + 1) > texts._cap and texts._grow() != 0:
            free(heap)
            return -1
        mask = texts._cap - 1
        i = texts_home(price, texts._shift)
        while texts._keys[i] != 0.0:
            i = (i + 1) & mask
        texts._keys[i] = price
        slot = &texts._slots[i]
        texts.count += 1
    else:
        texts_release(slot)
    slot.px_len = <uint32_t>px_len
    slot.qty_len = <uint32_t>qty_len
    if heap != NULL:
        memcpy(slot.text, &heap, sizeof(char*))
        dst = heap
    elif src_slack and px_len <= TEXT_READ_SLACK and qty_len <= TEXT_READ_SLACK:
        # total <= TEXT_INLINE here: stage both texts, then one 24-byte move.
        memcpy(staged, px, TEXT_READ_SLACK)
        memcpy(staged + px_len, qty, TEXT_READ_SLACK)
        memcpy(slot.text, staged, TEXT_INLINE)
        return 0
    else:
        dst = slot.text
    memcpy(dst, px, px_len)
    memcpy(dst + px_len, qty, qty_len)
    return 0


# LevelTexts.c_pop, inline: forgets the level's text (nothing when it has none).
cdef inline void texts_pop(LevelTexts texts, double price) noexcept nogil:
    cdef TextSlot* slot = texts_find(texts, price)
    cdef Py_ssize_t mask = texts._cap - 1
    cdef Py_ssize_t hole, j, home
    if slot == NULL:
        return
    texts_release(slot)
    texts.count -= 1
    # Backward-shift deletion: pull later members of the probe run into
    # the hole when their home slot is not cyclically inside (hole, j].
    hole = slot - texts._slots
    j = hole
    while True:
        j = (j + 1) & mask
        if texts._keys[j] == 0.0:
            break
        home = texts_home(texts._keys[j], texts._shift)
        if (hole < j and hole < home <= j) or (hole > j and (home > hole or home <= j)):
            continue
        texts._keys[hole] = texts._keys[j]
        texts._slots[hole] = texts._slots[j]  # a heap pointer moves; the vacated copy is never read
        hole = j
    texts._keys[hole] = 0.0
