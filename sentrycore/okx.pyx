# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""OKX v5 `books` updates on the native path, the checksum included.

The layout-specific piece of the shared C path (sentrycore/levels.pxd): it
reads `{"arg":{"channel":"books","instId":..},"action":"update","data":[{
"asks":[[px,sz,"0",n]..],"bids":[..],"ts":"..","checksum":c,"prevSeqId":p,
"seqId":q}]}` straight from the frame bytes (level arrays in OKX's own
compact layout by fixed-offset checks, any other spacing or form by the
shared general reader) and, for the hot case only -- a
synced book's single update whose `prevSeqId` is the last `seqId` -- applies
both sides to the book, records each level's text, checks the checksum and
finishes the message on its market, all in C.  Everything else (snapshots,
unsynced books and the REST bridge, broken chains, several entries in
`data`, odd frames, bad values) goes untouched to the handler's reference
path (sentrycoin/feeds/okx.py), which stays the definition of the protocol
and the oracle of the tests (tests/feeds/test_native_okx.py).

Text.  OKX's checksum is a CRC32 over the prices and sizes as OKX wrote
them, so both paths keep each held level's text in the state's
`LevelTexts` (sentrycore/leveltext.pyx): the C path copies the bytes between
the quotes, the reference path stores the decoded str -- the same bytes for
the ASCII decimals this parser accepts, so the store is the same whichever
path took a message.  No canonical form is assumed: "0.10", "8", "8.000"
and "0.00000001" are kept exactly.

Checksum.  `checksum == 0` (live OKX since mid-2026) is counted in
`counters.checksum_skipped`; any other value is compared with the signed
CRC32 of `bid1px:bid1sz:ask1px:ask1sz:...` over the book's best 25 levels
per side, computed here from the stored bytes (sentrycore/crc32.pxd) with
no Python object.  A mismatch is handed to the handler's `on_mismatch`
(count, invalidate, resubscribe: the reference path's own method) and the
message is not finished, as on the reference path.

The C path keeps, per state, the "px:sz" text of the best 25 levels per side
behind the last checksum that matched (`state._top`); the next chained C
message copies from it every level still in the top whose price it did not
touch, and looks up only the others -- the same text, with fewer random
reads.  It is used only while `_last_u` is still the seqId that checksum
followed; the reference path sets `last_seq` whenever it changes the book or
the texts, which drops it, and so does a checksum 0 message taken here (it
changes the book unverified, and with seqId == prevSeqId it does not even
move the chain's number).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcmp, memcpy

from sentrycore.book cimport OrderBook
from sentrycore.counters cimport FeedCounters
from sentrycore.names cimport cached_name, name_cache_init
from sentrycore.crc32 cimport crc32_update
from sentrycore.jsonscan cimport (skip_ws, scan_string, scan_int, skip_value, is_digit, scan_key, next_member,
                                  end_member,
                                  scan_short_number, next_element_compact)
from sentrycore.leveltext cimport (LevelTexts, TextSlot, TEXT_READ_SLACK, slot_px, slot_qty, texts_find,
                                   texts_set, texts_pop)
from sentrycore.levels cimport (levels_list, levels_init, levels_free, levels_push, spans_init, spans_free, spans_set,
                                read_level_array_text, apply_levels, finish_message, book_top)
from sentrycore.parse cimport ChainState


cdef enum:
    CHECKSUM_LEVELS = TOP_LEVELS
    TOUCHED_MAX = 32     # changed prices within the kept range compared one by one (more: no reuse)
    INITIAL_LEVELS = 64
    MAX_INST = 47
    CRC_BUF = 2048
    # Keys of the top object, of "arg", of the data entry.
    T_ARG = 1
    T_ACTION = 2
    T_DATA = 4
    T_ALL = T_ARG | T_ACTION | T_DATA
    A_CHANNEL = 1
    A_INST = 2
    A_BOOKS = 4     # the channel is "books"
    D_ASKS = 1
    D_BIDS = 2
    D_TS = 4
    D_CHECKSUM = 8
    D_SEQ = 16
    D_PREV = 32
    D_REQUIRED = D_ASKS | D_BIDS | D_TS | D_SEQ | D_PREV


cdef class OkxBookState(ChainState):
    """Per-instrument sync state shared by the OKX handler's two paths.

    `synced`, `market`, `book` come from ChainState; `last_seq` is its
    `last_u` under OKX's name (the seqId of the last applied message);
    `bid_text` / `ask_text` hold the text of every level the book holds.
    Handlers subclass it (adding their own slots).
    """

    def __cinit__(self, *args, **kwargs):
        self.bid_text = LevelTexts()
        self.ask_text = LevelTexts()
        self._top = NULL
        self._top_valid = False

    def __dealloc__(self):
        free(self._top)

    @property
    def last_seq(self):
        """seqId of the last applied message (held as ChainState.last_u)."""
        return self.last_u

    @last_seq.setter
    def last_seq(self, value):
        # The reference path sets it whenever it changes the book or the
        # texts: the C path's kept checksum text (see "Checksum") is stale then.
        self._top_valid = False
        self.last_u = value

    cpdef prune_texts(self):
        """Keep text only for the levels the book still holds (a full book drops its worst levels)."""
        book = self.book
        for texts, levels in ((self.bid_text, book.bids()), (self.ask_text, book.asks())):
            held = set(levels[:, 0].tolist())
            for price in [p for p in texts.prices() if p not in held]:
                texts.pop(price)

    def checksum(self):
        """OKX's checksum of the book from the stored texts, computed in C; None
        when one of the best 25 levels has no text.  (Tools and tests: the
        C path calls okx_book_checksum directly.)"""
        cdef LevelBuffer top
        cdef int64_t value
        cdef int ok
        if self.book is None:
            return None
        if not levels_init(&top, CHECKSUM_LEVELS):
            raise MemoryError()
        try:
            ok = okx_book_checksum(self, &top, &value)
        finally:
            levels_free(&top)
        return value if ok else None


cdef inline int64_t _signed_crc(uint32_t crc) noexcept nogil:
    # Signed, as OKX sends it.
    return <int64_t>crc - 4294967296LL if crc >= 2147483648U else <int64_t>crc


cdef struct _CrcText:
    uint32_t crc
    Py_ssize_t n
    bint first
    char buf[CRC_BUF + TOP_COPY]  # room for the fixed-size copies past the end


cdef inline void _crc_piece(_CrcText* t, const char* p, Py_ssize_t n, bint entry=False) noexcept nogil:
    # Appends ":" (except before the first piece) and p[0:n]; hashes in blocks.
    # p may be read TEXT_READ_SLACK bytes past n, TOP_COPY bytes in all when `entry`.
    if t.n + n + 1 > CRC_BUF:
        t.crc = crc32_update(t.crc, <const unsigned char*>t.buf, t.n)
        t.n = 0
    if not t.first:
        t.buf[t.n] = 58  # ':'
        t.n += 1
    t.first = False
    if n + 1 > CRC_BUF:
        t.crc = crc32_update(t.crc, <const unsigned char*>t.buf, t.n)
        t.crc = crc32_update(t.crc, <const unsigned char*>p, n)
        t.n = 0
        return
    if n <= TEXT_READ_SLACK:
        memcpy(t.buf + t.n, p, TEXT_READ_SLACK)  # one vector move (see leveltext.pxd)
    elif n <= TOP_COPY and entry:
        memcpy(t.buf + t.n, p, TOP_COPY)  # a TopEntry's text: two vector moves
    else:
        memcpy(t.buf + t.n, p, n)
    t.n += n


cdef int okx_book_checksum(OkxBookState state, LevelBuffer* top, int64_t* out) noexcept:
    cdef _CrcText t
    cdef TextSlot* slots[2 * CHECKSUM_LEVELS]  # in checksum order: bid1, ask1, bid2, ...
    cdef TextSlot* slot
    cdef Py_ssize_t nb, na, i, k
    cdef OrderBook book = state.book
    cdef LevelTexts bid_text = state.bid_text
    cdef LevelTexts ask_text = state.ask_text
    # All lookups first (independent loads the CPU overlaps), then the copies.
    book_top(book, True, CHECKSUM_LEVELS, top)
    nb = top.n
    for i in range(nb):
        slots[2 * i] = texts_find(bid_text, top.prices[i])
    book_top(book, False, CHECKSUM_LEVELS, top)
    na = top.n
    for i in range(na):
        slots[2 * i + 1] = texts_find(ask_text, top.prices[i])
    t.crc = 0
    t.n = 0
    t.first = True
    for i in range(nb if nb > na else na):
        for k in range(2):
            if (i < nb) if k == 0 else (i < na):
                slot = slots[2 * i + k]
                if slot == NULL:
                    return 0  # a level without its text: cannot match
                _crc_piece(&t, slot_px(slot), slot.px_len)
                _crc_piece(&t, slot_qty(slot), slot.qty_len)
    t.crc = crc32_update(t.crc, <const unsigned char*>t.buf, t.n)
    out[0] = _signed_crc(t.crc)
    return 1


cdef int _top_side(OkxBookState state, bint bids, const LevelBuffer* changed, bint reuse,
                   LevelBuffer* top, TextSlot** longs) noexcept:
    # Fills the spare buffer's entries of one side with the book's best 25
    # levels, each "px:sz" copied from the last verified entries when the
    # level was there and this message did not touch its price, else from
    # the text store.  0 when a level has no text; 2 when a level's text
    # was too long for its entry (it is in `longs`); 1 otherwise.
    cdef TopCache* cache = state._top
    cdef int side = 0 if bids else 1
    cdef TopEntry* old = &cache.entries[(cache.cur * 2 + side) * TOP_LEVELS]
    cdef TopEntry* new = &cache.entries[((1 - cache.cur) * 2 + side) * TOP_LEVELS]
    cdef Py_ssize_t n_old = cache.n[cache.cur * 2 + side] if reuse else 0
    cdef double touched[TOUCHED_MAX]
    cdef Py_ssize_t n_touched = 0
    cdef LevelTexts texts = state.bid_text if bids else state.ask_text
    cdef Py_ssize_t i, j, k
    cdef double p, worst
    cdef bint hit
    cdef TextSlot* slot
    cdef int result = 1
    if n_old:
        # The prices this message set or deleted within the kept levels'
        # range: kept entries at those prices are stale.  Collected without
        # a branch per price (the in-range test moves the end), and then
        # compared with every candidate entry (a short, predictable loop):
        # cheaper than a search per price, whose branches the data decide.
        worst = old[n_old - 1].price
        for j in range(changed.n):
            if n_touched == TOUCHED_MAX:
                n_old = 0  # too many to compare: reuse nothing this time
                break
            p = changed.prices[j]
            touched[n_touched] = p
            n_touched += (p >= worst) if bids else (p <= worst)
    book_top(state.book, bids, TOP_LEVELS, top)
    k = 0
    for i in range(top.n):
        p = top.prices[i]
        longs[i] = NULL
        if n_old:
            while k < n_old and ((old[k].price > p) if bids else (old[k].price < p)):
                k += 1  # a kept level the book no longer holds in its top
            if k < n_old and old[k].price == p and old[k].len >= 0:
                hit = False
                for j in range(n_touched):
                    hit |= touched[j] == p
                if not hit:
                    new[i] = old[k]
                    k += 1
                    continue
        slot = texts_find(texts, p)
        if slot == NULL:
            return 0
        new[i].price = p
        if slot.px_len <= TEXT_READ_SLACK and slot.qty_len <= TEXT_READ_SLACK:
            # Fixed-size moves (the slot's texts may be read that far): 33 bytes at most.
            memcpy(new[i].text, slot_px(slot), TEXT_READ_SLACK)
            new[i].text[slot.px_len] = 58  # ':'
            memcpy(new[i].text + slot.px_len + 1, slot_qty(slot), TEXT_READ_SLACK)
            new[i].len = slot.px_len + 1 + slot.qty_len
        elif slot.px_len + 1 + slot.qty_len <= TOP_TEXT:
            memcpy(new[i].text, slot_px(slot), slot.px_len)
            new[i].text[slot.px_len] = 58  # ':'
            memcpy(new[i].text + slot.px_len + 1, slot_qty(slot), slot.qty_len)
            new[i].len = slot.px_len + 1 + slot.qty_len
        else:
            new[i].len = -1
            longs[i] = slot  # valid until the store changes: within this checksum only
            result = 2
    cache.n[(1 - cache.cur) * 2 + side] = top.n
    return result


cdef int okx_checksum_after(OkxBookState state, const LevelBuffer* bids, const LevelBuffer* asks,
                            int64_t prev_seq, LevelBuffer* top, int64_t* out) noexcept:
    # okx_book_checksum for the C path, right after it applied `bids` / `asks`
    # on the chain's `prev_seq`: the same text, but the levels of the last
    # verified checksum that are still in the top and untouched come from
    # state._top (sequential copies) instead of the store's hash lookups.
    # The result goes to the spare buffer; okx_checksum_verified makes it
    # the one in force.  -1: no memory for the cache (use okx_book_checksum).
    cdef _CrcText t
    cdef TextSlot* longs[2 * TOP_LEVELS]
    cdef TopEntry* entry
    cdef TopEntry* nb_entries
    cdef TopEntry* na_entries
    cdef Py_ssize_t nb, na, i
    cdef bint reuse
    cdef int bid_side, ask_side
    if state._top == NULL:
        state._top = <TopCache*>malloc(sizeof(TopCache))
        if state._top == NULL:
            return -1
        state._top.cur = 0
        state._top_valid = False
    reuse = state._top_valid and state._top_seq == prev_seq
    state._top_valid = False
    bid_side = _top_side(state, True, bids, reuse, top, longs)
    if not bid_side:
        return 0
    ask_side = _top_side(state, False, asks, reuse, top, longs + TOP_LEVELS)
    if not ask_side:
        return 0
    nb_entries = &state._top.entries[((1 - state._top.cur) * 2) * TOP_LEVELS]
    na_entries = nb_entries + TOP_LEVELS
    nb = state._top.n[(1 - state._top.cur) * 2]
    na = state._top.n[(1 - state._top.cur) * 2 + 1]
    if bid_side == 1 and ask_side == 1:
        out[0] = _signed_crc(_entries_crc(nb_entries, nb, na_entries, na))
        return 1
    t.crc = 0
    t.n = 0
    t.first = True
    for i in range(nb if nb > na else na):
        if i < nb:
            entry = &nb_entries[i]
            if entry.len >= 0:
                _crc_piece(&t, entry.text, entry.len, True)
            else:
                _crc_piece(&t, slot_px(longs[i]), longs[i].px_len)
                _crc_piece(&t, slot_qty(longs[i]), longs[i].qty_len)
        if i < na:
            entry = &na_entries[i]
            if entry.len >= 0:
                _crc_piece(&t, entry.text, entry.len, True)
            else:
                _crc_piece(&t, slot_px(longs[TOP_LEVELS + i]), longs[TOP_LEVELS + i].px_len)
                _crc_piece(&t, slot_qty(longs[TOP_LEVELS + i]), longs[TOP_LEVELS + i].qty_len)
    t.crc = crc32_update(t.crc, <const unsigned char*>t.buf, t.n)
    out[0] = _signed_crc(t.crc)
    return 1


cdef inline Py_ssize_t _put_entry(char* text, Py_ssize_t m, const TopEntry* entry) noexcept nogil:
    # ":" and the entry's text at text[m]: fixed-size moves (see TopEntry).
    text[m] = 58  # ':'
    if entry.len <= TOP_COPY:
        memcpy(text + m + 1, entry.text, TOP_COPY)
    else:
        memcpy(text + m + 1, entry.text, TOP_TEXT)
    return m + 1 + entry.len


cdef uint32_t _entries_crc(const TopEntry* bid_entries, Py_ssize_t nb, const TopEntry* ask_entries,
                           Py_ssize_t na) noexcept nogil:
    # The CRC32 of "bid1:ask1:bid2:..." when every level's text is in its
    # entry: one pass of fixed-size copies into a buffer that holds them all
    # (no flushes), then one CRC over it.
    cdef char text[2 * TOP_LEVELS * (TOP_TEXT + 1) + TOP_TEXT]
    cdef Py_ssize_t m = 0
    cdef Py_ssize_t i
    for i in range(nb if nb > na else na):
        if i < nb:
            m = _put_entry(text, m, &bid_entries[i])
        if i < na:
            m = _put_entry(text, m, &ask_entries[i])
    if m == 0:
        return 0
    return crc32_update(0, <const unsigned char*>text + 1, m - 1)  # the first ':' is not hashed


cdef inline void okx_checksum_verified(OkxBookState state, int64_t seq) noexcept:
    # The checksum okx_checksum_after just computed matched OKX's, after the
    # message that ends on `seq`: its entries are the ones in force.
    if state._top == NULL:
        return  # okx_checksum_after had no memory: nothing kept
    state._top.cur = 1 - state._top.cur
    state._top_valid = True
    state._top_seq = seq


cdef inline Py_ssize_t _scan_signed(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, int64_t* out) noexcept:
    # A JSON integer that may be negative ("-0" is left to the reference decoder).
    cdef Py_ssize_t j
    if i < n and s[i] == 45:  # '-'
        if i + 1 >= n or s[i + 1] == 48:
            return -1
        j = scan_int(s, i + 1, n, out)
        out[0] = -out[0]
        return j
    return scan_int(s, i, n, out)


cdef inline Py_ssize_t _scan_ts(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, int64_t* out) noexcept:
    # OKX sends ts as a string of digits ("1597026383085"); msgspec's lax mode
    # reads it (or a bare integer) as an int.
    cdef Py_ssize_t j
    if i < n and s[i] == 34:
        if i + 1 >= n or not is_digit(s[i + 1]):
            return -1
        j = scan_int(s, i + 1, n, out)  # refuses a number followed by '.', 'e' or more digits
        if j < 0 or s[j] != 34:
            return -1
        return j + 1
    return scan_int(s, i, n, out)


cdef inline Py_ssize_t _digit_string_end(const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
    # s[i] opens a string of 1+ ASCII digits: the index after its closing quote, or -1.
    cdef Py_ssize_t start
    if i >= n or s[i] != 34:
        return -1
    i += 1
    start = i
    while i < n and is_digit(s[i]):
        i += 1
    if i == start or i >= n or s[i] != 34:
        return -1
    return i + 1


cdef Py_ssize_t _levels_compact(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, LevelBuffer* out,
                                TextSpans* spans) noexcept:
    # A level array exactly as OKX writes it -- [["px","sz","0","1"],..], no
    # whitespace, price and size in the short `I[.F]` shape, the other two
    # strings of digits -- read with fixed-offset checks instead of
    # read_level_array_text's general walk.  -1 on any other shape; the
    # caller then reads the array again with read_level_array_text, so this
    # accepts only what that accepts, and gives the same values and spans.
    cdef double price, qty
    cdef Py_ssize_t px0, px1, qty0, qty1
    cdef bint done = False
    out.n = 0
    if n - i < 2 or s[i] != 91:  # '['
        return -1
    i += 1
    if s[i] == 93:  # ']'
        return i + 1
    while True:
        # scan_short_number reads 17 bytes from the number's start.
        if n - i < 2 + 17 or s[i] != 91 or s[i + 1] != 34:  # '["'
            return -1
        px0 = i + 2
        px1 = scan_short_number(s, px0, False, &price)
        if px1 < 0 or n - px1 < 3 + 17 or s[px1] != 34 or s[px1 + 1] != 44 or s[px1 + 2] != 34:  # '","'
            return -1
        qty0 = px1 + 3
        qty1 = scan_short_number(s, qty0, False, &qty)
        if qty1 < 0 or qty1 + 2 > n or s[qty1] != 34 or s[qty1 + 1] != 44:  # '",'
            return -1
        i = _digit_string_end(s, qty1 + 2, n)
        if i < 0 or i >= n or s[i] != 44:
            return -1
        i = _digit_string_end(s, i + 1, n)
        if i < 0 or i + 1 >= n or s[i] != 93:  # ']' and one more byte
            return -1
        if not spans_set(spans, out.n, px0, px1, qty0, qty1) or not levels_push(out, price, qty):
            return -1
        i = next_element_compact(s, i + 1, &done)
        if i < 0 or done:
            return i


cdef inline Py_ssize_t _read_levels(const unsigned char* s, Py_ssize_t i, Py_ssize_t n, LevelBuffer* out,
                                    TextSpans* spans) noexcept:
    cdef Py_ssize_t j = _levels_compact(s, i, n, out, spans)
    if j >= 0:
        return j
    return read_level_array_text(s, i, n, out, 2, spans, True)


cdef inline int _store_texts(LevelTexts texts, const LevelBuffer* levels, const TextSpans* spans,
                             const char* s, Py_ssize_t n) noexcept:
    # Each level's text from the frame s[:n] into `texts`, in message order
    # (as the reference path does): set, or forgotten at size 0.  -1: no memory.
    cdef Py_ssize_t j
    cdef const Py_ssize_t* at
    for j in range(levels.n):
        at = spans.at + 4 * j
        if levels.qtys[j] == 0.0:
            texts_pop(texts, levels.prices[j])
        # The quantity comes after the price: when 16 bytes from its start
        # are inside the frame, so are the price's (fixed-size copies).
        elif texts_set(texts, levels.prices[j], s + at[0], at[1] - at[0], s + at[2], at[3] - at[2],
                       at[2] + TEXT_READ_SLACK <= n) != 0:
            return -1
    return 0


cdef class OkxFramePath:
    """An OKX handler's `on_frame` in C; see sentrycore/okx.pyi."""

    def __cinit__(self, *args, **kwargs):
        if not (levels_init(&self.bids, INITIAL_LEVELS) and levels_init(&self.asks, INITIAL_LEVELS)
                and levels_init(&self._top, CHECKSUM_LEVELS)
                and spans_init(&self.bid_spans, INITIAL_LEVELS) and spans_init(&self.ask_spans, INITIAL_LEVELS)):
            raise MemoryError()
        name_cache_init(&self._name_cache)

    def __init__(self, dict routes not None, FeedCounters counters not None, fallback, on_mismatch,
                 Py_ssize_t prune_levels):
        self.routes = routes
        self.counters = counters
        self.fallback = fallback
        self.on_mismatch = on_mismatch
        self.prune_levels = prune_levels

    def __dealloc__(self):
        levels_free(&self.bids)
        levels_free(&self.asks)
        levels_free(&self._top)
        spans_free(&self.bid_spans)
        spans_free(&self.ask_spans)

    cdef Py_ssize_t _arg(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
        # {"channel":"books","instId":"BTC-USDT"}: returns the index after it, or -1;
        # -1 too unless both keys are there and the channel is "books".
        cdef Py_ssize_t k, klen, start
        cdef int seen = 0
        cdef bint done = False
        if i >= n or s[i] != 123:
            return -1
        i = skip_ws(s, i + 1, n)
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return -1
            if klen == 7 and memcmp(s + k, b"channel", 7) == 0:
                if seen & A_CHANNEL:
                    return -1
                seen |= A_CHANNEL
                i = scan_string(s, i, n, &start)
                if i - 1 - start == 5 and memcmp(s + start, b"books", 5) == 0:
                    seen |= A_BOOKS
            elif klen == 6 and memcmp(s + k, b"instId", 6) == 0:
                if seen & A_INST:
                    return -1
                seen |= A_INST
                i = scan_string(s, i, n, &start)
                if i >= 0:
                    if i - 1 - start > MAX_INST:
                        return -1
                    self._inst_n = i - 1 - start
                    memcpy(self._inst, s + start, self._inst_n)
            else:
                i = skip_value(s, i, n)
            if i < 0:
                return -1
            i = next_member(s, i, n, &done)
            if i < 0:
                return -1
            if done:
                return i if seen == A_CHANNEL | A_INST | A_BOOKS else -1

    cdef Py_ssize_t _entry(self, const unsigned char* s, Py_ssize_t i, Py_ssize_t n) noexcept:
        # The one object of "data".
        cdef Py_ssize_t k, klen
        cdef int seen = 0
        cdef int bit
        cdef bint done = False
        cdef int64_t iv
        if i >= n or s[i] != 123:
            return -1
        self.checksum = 0  # msgspec's default when OKX leaves it out
        i = skip_ws(s, i + 1, n)
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return -1
            bit = 0
            if klen == 4 and memcmp(s + k, b"asks", 4) == 0:
                bit = D_ASKS
                i = _read_levels(s, i, n, &self.asks, &self.ask_spans)
            elif klen == 4 and memcmp(s + k, b"bids", 4) == 0:
                bit = D_BIDS
                i = _read_levels(s, i, n, &self.bids, &self.bid_spans)
            elif klen == 2 and s[k] == 116 and s[k + 1] == 115:  # ts
                bit = D_TS
                i = _scan_ts(s, i, n, &iv)
                self.ts = iv
            elif klen == 8 and memcmp(s + k, b"checksum", 8) == 0:
                bit = D_CHECKSUM
                i = _scan_signed(s, i, n, &iv)
                self.checksum = iv
            elif klen == 5 and memcmp(s + k, b"seqId", 5) == 0:
                bit = D_SEQ
                i = scan_int(s, i, n, &iv)
                self.seq_id = iv
            elif klen == 9 and memcmp(s + k, b"prevSeqId", 9) == 0:
                bit = D_PREV
                i = scan_int(s, i, n, &iv)
                self.prev_seq_id = iv
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, &seen, &done)
            if i < 0:
                return -1
            if done:
                return i if (seen & D_REQUIRED) == D_REQUIRED else -1

    cdef int c_parse(self, const unsigned char* s, Py_ssize_t n) noexcept:
        # 1: an update of the books channel with exactly one data entry; 0: not ours.
        cdef Py_ssize_t i, k, klen, start
        cdef int seen = 0
        cdef int bit
        cdef bint done = False
        cdef bint update = False
        self.bids.n = 0
        self.asks.n = 0
        i = skip_ws(s, 0, n)
        if i >= n or s[i] != 123:
            return 0
        i = skip_ws(s, i + 1, n)
        while True:
            i = scan_key(s, i, n, &k, &klen)
            if i < 0:
                return 0
            bit = 0
            if klen == 3 and memcmp(s + k, b"arg", 3) == 0:
                bit = T_ARG
                i = self._arg(s, i, n)
            elif klen == 6 and memcmp(s + k, b"action", 6) == 0:
                bit = T_ACTION
                i = scan_string(s, i, n, &start)
                update = i - 1 - start == 6 and memcmp(s + start, b"update", 6) == 0
            elif klen == 4 and memcmp(s + k, b"data", 4) == 0:
                bit = T_DATA
                if i >= n or s[i] != 91:  # '['
                    return 0
                i = self._entry(s, skip_ws(s, i + 1, n), n)
                if i < 0:
                    return 0
                i = skip_ws(s, i, n)
                if i >= n or s[i] != 93:  # exactly one entry
                    return 0
                i += 1
            else:
                i = skip_value(s, i, n)
            i = end_member(s, i, n, bit, &seen, &done)
            if i < 0:
                return 0
            if done:
                break
        if skip_ws(s, i, n) != n or seen != T_ALL or not update:
            return 0
        return 1

    cpdef int parse(self, object data) noexcept:
        if type(data) is not bytes:
            try:
                data = bytes(data)
            except Exception:
                return 0
        return self.c_parse(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    cdef object _symbol(self):
        self._cached_symbol = cached_name(&self._name_cache, self._cached_symbol, self._inst, self._inst_n)
        return self._cached_symbol

    cdef bint c_take(self, object data) except -1:
        cdef object obj
        cdef OkxBookState state
        cdef const char* s
        cdef Py_ssize_t n
        cdef int64_t actual
        cdef int ok
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                return False
            data = bytes(data)  # the spans must stay valid while the texts are stored
        s = PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
        if self.c_parse(<const unsigned char*>s, n) != 1:
            return False
        obj = self.routes.get(self._symbol())
        if obj is None or not isinstance(obj, OkxBookState):
            return False
        state = <OkxBookState>obj
        if not state.synced or not state._last_u_ok or self.prev_seq_id != state._last_u or state.book is None:
            return False
        if apply_levels(state.book, &self.bids, &self.asks) == 0:
            return False  # a bad value: the book is untouched, the reference path resyncs
        # The texts, in the reference path's order: bids then asks, each in message order.
        if (_store_texts(state.bid_text, &self.bids, &self.bid_spans, s, n) != 0
                or _store_texts(state.ask_text, &self.asks, &self.ask_spans, s, n) != 0):
            raise MemoryError()
        state._last_u = self.seq_id
        self.taken += 1
        if state.bid_text.count + state.ask_text.count > self.prune_levels:
            state.prune_texts()
        if self.checksum == 0:
            self.counters.checksum_skipped += 1
            # The book changed unverified: the kept checksum text no longer
            # follows it, even when seqId == prevSeqId keeps the chain's number.
            state._top_valid = False
        else:
            ok = okx_checksum_after(state, &self.bids, &self.asks, self.prev_seq_id, &self._top, &actual)
            if ok < 0:
                ok = okx_book_checksum(state, &self._top, &actual)
            if not ok:
                self.on_mismatch(state, None, self.checksum)
                return True
            if actual != self.checksum:
                self.on_mismatch(state, actual, self.checksum)
                return True
            okx_checksum_verified(state, self.seq_id)
        finish_message(state.market, self.ts)
        return True

    def on_frame(self, conn_id, data, recv_ms):
        self.counters.frames += 1
        self.counters.bytes += len(data)
        if not self.c_take(data):
            self.fallback(conn_id, data, recv_ms)

    @property
    def symbol(self):
        return self._symbol()

    @property
    def bids(self):
        return levels_list(&self.bids)

    @property
    def asks(self):
        return levels_list(&self.asks)


def crc32(data, uint32_t value=0):
    """zlib.crc32 computed by sentrycore/crc32.pxd (for tests of the C routine)."""
    cdef bytes b = bytes(data)
    return crc32_update(value, <const unsigned char*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
