# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""L2 order book with incrementally maintained top-N volume sums.

Storage: per side, two float64 buffers, keys and quantities, sorted
ascending by key = sign * price, so the best level sits at the end and the
frequent changes near the top of the book move only a handful of elements.
Keys live apart from quantities so that a search reads eight keys per cache
line instead of four.

Capacity: a side starts with `capacity` slots and grows on demand up to
`max_capacity`.  A venue that publishes a bounded book (Bybit 50, OKX 400)
gets an initial capacity that already holds everything it can send, so its
books never grow; a Binance book (full-depth diffs beyond a 1,000-level
snapshot) starts near the snapshot and doubles when an insert finds the side
full: a realloc of both buffers, O(levels) once per doubling, so amortised
O(1) per insert and never taken by an update of an existing level or an
insert into free slots.  The buffers are malloc'd, not numpy arrays, because
growth happens inside the nogil C methods (the Cython parsers apply whole
messages without the GIL) and allocating a numpy array needs the GIL; no
reader needs the buffers as arrays (bids()/asks() copy, sentrycore.band
walks the pointers).  A failed realloc counts as reaching max_capacity.  At
max_capacity an insert drops the side's deepest level (or the new level when
it would be the deepest) and sets `truncated`.  Below max_capacity a full
side grows even when it holds holes: squeezing them out instead (tried)
made the real BTCUSDT replay ~15 % slower, because holes are what absorb
the shifts of deep inserts; holes never outnumber levels (see Holes), so a
side holds at most 4x its levels' slots.  load_snapshot
refits each side to the snapshot (never below what it holds, nor below
`capacity`), so a resync returns the memory a long-running book grew into.
tests/core/test_book_growth.py checks growth against a dict reference.

Top-N sums: every insert, delete or size change adjusts the running sum of
the best `depth` quantities in O(1).  The sum is Neumaier-compensated and is
recomputed exactly every RENORM_EVERY adjustments, which bounds floating-point
drift (see tests/test_book_drift.py); a side with no levels has volume 0.0
exactly.

Holes: a level deleted below the top-N window is not memmoved out; its slot
keeps the key with quantity 0.  A later insert within HOLE_SCAN slots of a
hole shifts only the levels in between, and re-adding that price just
refills the slot.  Deletes and inserts are equally frequent and cluster at
the same prices, so most of them then move a few levels instead of every
level above them (real books see much of their traffic hundreds of levels
deep, where that is kilobytes).  Holes never sit inside the top-N window (one
that would enter it is removed first), so the sums and the best price never
see them; they are squeezed out when the buffer is full at max_capacity or
when they outnumber the levels.

Search (_lower_bound): an index is guessed -- from the top levels' price
density, or, for a side whose levels a message lists best first, from the
previous level's neighbourhood -- then checked by counting the keys below the
target in a small window around the guess; only a miss gallops and bisects.

Value bounds: a price must be in (0, MAX_PRICE] = (0, 1e15] and a quantity in
[0, MAX_QTY] = [0, 1e18]; anything else (NaN, inf, negative, or beyond a
bound) is rejected with the book unchanged -- a message is validated whole
before any level is applied.  The bounds are what keeps every sum finite:
the running top-`depth` sums, and every intermediate value of their
incremental, compensated updates, are sums of at most `depth` + 1 terms of
magnitude <= MAX_QTY (plus a relative rounding error near 1e-16), and
`depth` is a Py_ssize_t, so they stay below 2**63 * 1e18 ~ 9.2e36, far from
the double range (1.8e308); a best bid plus best ask (the mid price) stays
below 2e15.  Without them two levels of
quantity 1e308 overflow the sum to inf and a later removal turns it into
NaN.  The limits are far beyond real markets: 1e15 in any quote currency,
1e18 units (more than the supply of nearly any token) in one level.

Band notional (`band_bps` > 0): per side, the sum of price x qty over the
levels within `band_bps` of the mid -- bids priced >= mid x (1 - bps/1e4),
asks <= mid x (1 + bps/1e4) -- the `band` signal's input, kept without a
per-message walk of the band.  Each side stores the key floor its sum was
taken at (band_floor); a level whose quantity changes adjusts the sum when
its key is >= that floor, a comparison on keys, so inserts, deletes, holes
and shifted slots need nothing else.  After each whole message the floors
move with the mid: only the levels between the old and the new floor are
added or removed (a move of the touch by a few ticks passes a few levels);
when that range holds more levels than the band itself, the band is summed
afresh instead.  The sums are Neumaier-compensated and recomputed exactly
every BAND_RENORM_EVERY adjustments; an empty side, or the band off, leaves
the floor at +inf and both sums at exactly 0.0.  Terms are < 1e15 x 1e18 and
at most `max_capacity` of them are summed, so the sums stay finite.
tests/core/test_band_incremental.py checks them against the walk in
sentrycore.band after arbitrary message sequences.
"""

import numpy as np
cimport numpy as cnp
from libc.math cimport isfinite, fabs, NAN, INFINITY
from libc.string cimport memmove
from libc.stdlib cimport malloc, realloc, free

cnp.import_array()

# Exact recomputation period: one O(depth) pass every this many adjustments
# costs depth/RENORM_EVERY (~0.05 for depth 50) additions per update.
cdef enum:
    RENORM_EVERY = 1024
    # How far an insert looks, each way, for a hole to absorb its shift.
    HOLE_SCAN = 8
    # Search window around the density guess (see _lower_bound).
    GUESS_WINDOW = 8
    # Slots below the previous level whose density guesses the next one.
    FINGER_SPAN = 16
    # Exact recomputation period of the band sums, in level adjustments: a
    # pass over the band (~1,400 levels at 25 bps on BTCUSDT) every this many
    # keeps it well under one addition per adjustment.
    BAND_RENORM_EVERY = 4096


#: Upper bounds on accepted prices and quantities (see "Value bounds" above).
MAX_PRICE = SENTRY_MAX_PRICE
MAX_QTY = SENTRY_MAX_QTY


cdef inline void _acc(BookSide* s, double x) noexcept nogil:
    # Neumaier's compensated addition: vol_comp collects the rounding error.
    cdef double t = s.vol + x
    if fabs(s.vol) >= fabs(x):
        s.vol_comp += (s.vol - t) + x
    else:
        s.vol_comp += (x - t) + s.vol
    s.vol = t


cdef inline void _renorm(BookSide* s, Py_ssize_t depth) noexcept nogil:
    cdef Py_ssize_t start = s.n - depth
    cdef Py_ssize_t i
    if start < 0:
        start = 0
    s.vol = 0.0
    s.vol_comp = 0.0
    for i in range(start, s.n):
        _acc(s, s.qtys[i])
    s.adjustments = 0


cdef inline void _adjusted(BookSide* s, Py_ssize_t depth) noexcept nogil:
    s.adjustments += 1
    if s.n == 0:
        # An empty side must read exactly zero, not a rounding residue.
        s.vol = 0.0
        s.vol_comp = 0.0
        s.adjustments = 0
    elif s.adjustments >= RENORM_EVERY:
        _renorm(s, depth)


cdef inline void _band_acc(BookSide* s, double x) noexcept nogil:
    # Neumaier's compensated addition into the band sum (see _acc).
    cdef double t = s.band + x
    if fabs(s.band) >= fabs(x):
        s.band_comp += (s.band - t) + x
    else:
        s.band_comp += (x - t) + s.band
    s.band = t


cdef inline void _band_change(BookSide* s, double key, double old_qty, double new_qty) noexcept nogil:
    # A level's quantity went from old_qty to new_qty (0 = absent): adjust the
    # band sum when the level is inside the band.  With the band off the
    # floor is +inf, so this is one comparison that never matches.
    cdef double price
    if key >= s.band_floor:
        price = s.sign * key
        # Two compensated additions, as for the top-N sums (see _side_update).
        _band_acc(s, price * new_qty)
        _band_acc(s, -(price * old_qty))
        s.band_adjustments += 1


cdef inline void _band_sum_from(BookSide* s, Py_ssize_t lo) noexcept nogil:
    # The band sum afresh: slots [lo, n) (holes add 0).
    cdef Py_ssize_t i
    s.band = 0.0
    s.band_comp = 0.0
    for i in range(lo, s.n):
        _band_acc(s, (s.sign * s.keys[i]) * s.qtys[i])
    s.band_adjustments = 0


cdef inline void _band_move(BookSide* s, double floor, bint renorm) noexcept nogil:
    # Bring the band sum from s.band_floor to `floor` (+inf: no band).
    cdef Py_ssize_t lo_new, lo_old, i
    if floor == s.band_floor and not renorm:
        return
    if s.n == 0 or not floor < INFINITY:
        s.band = 0.0
        s.band_comp = 0.0
        s.band_adjustments = 0
        s.band_floor = floor
        return
    lo_new = _lower_bound(s.keys, s.n, floor, _density(s), -1)
    if renorm:
        _band_sum_from(s, lo_new)
    else:
        lo_old = s.n
        if s.band_floor < INFINITY:
            lo_old = _lower_bound(s.keys, s.n, s.band_floor, _density(s), -1)
        if lo_new < lo_old:
            # The band widened on this side: add the levels it now reaches.
            if lo_old - lo_new > s.n - lo_old:
                _band_sum_from(s, lo_new)
            else:
                for i in range(lo_new, lo_old):
                    _band_acc(s, (s.sign * s.keys[i]) * s.qtys[i])
                s.band_adjustments += 1
        elif lo_new > lo_old:
            # It narrowed: remove the levels it left.
            if lo_new - lo_old > s.n - lo_new:
                _band_sum_from(s, lo_new)
            else:
                for i in range(lo_old, lo_new):
                    _band_acc(s, -((s.sign * s.keys[i]) * s.qtys[i]))
                s.band_adjustments += 1
    s.band_floor = floor


cdef inline void _move(BookSide* s, Py_ssize_t dst, Py_ssize_t src, Py_ssize_t count) noexcept nogil:
    # Shift `count` levels from slot src to slot dst (overlapping: memmove).
    memmove(&s.keys[dst], &s.keys[src], <size_t>count * sizeof(double))
    memmove(&s.qtys[dst], &s.qtys[src], <size_t>count * sizeof(double))


cdef inline Py_ssize_t _bisect(const double* keys, Py_ssize_t lo, Py_ssize_t hi, double key) noexcept nogil:
    # Lower bound within [lo, hi], knowing keys[lo - 1] < key <= keys[hi]
    # (out-of-range ends count as -inf / +inf).  Branch-free: the comparison
    # is used as a number, so there is no data-dependent jump to mispredict.
    cdef Py_ssize_t n = hi - lo
    cdef Py_ssize_t half
    if n <= 0:
        return lo
    while n > 1:
        half = n >> 1
        lo += half * <Py_ssize_t>(keys[lo + half - 1] < key)
        n -= half
    return lo + <Py_ssize_t>(keys[lo] < key)


cdef inline double _density(const BookSide* s) noexcept nogil:
    # Levels per unit of key over (up to) the best 64 levels: what
    # _lower_bound uses to guess an index.  Computed once per message, not per
    # level (a division is the slowest step of the search); a stale value only
    # makes a guess worse, never the answer wrong.
    cdef Py_ssize_t top = s.n - 1
    cdef Py_ssize_t w = top if top < 64 else 64
    if w <= 0:
        return 0.0
    return w / (s.keys[top] - s.keys[top - w])


cdef inline Py_ssize_t _gallop(const double* keys, Py_ssize_t top, Py_ssize_t guess, double key) noexcept nogil:
    # Lower bound of `key` in [0, top] (keys[top] > key), searching outward
    # from `guess`: gallop to bracket the answer, then bisect the bracket.
    cdef Py_ssize_t step, lo, hi
    if keys[guess] >= key:
        # Answer is at or below guess: gallop down until a key < `key`.
        hi = guess
        step = 1
        while hi - step >= 0 and keys[hi - step] >= key:
            hi -= step
            step <<= 1
        lo = hi - step + 1 if hi - step >= 0 else 0
        return _bisect(keys, lo, hi, key)
    # Answer is above guess (and <= top, since keys[top] > key).
    lo = guess + 1
    step = 1
    while lo + step - 1 < top and keys[lo + step - 1] < key:
        lo += step
        step <<= 1
    hi = lo + step - 1 if lo + step - 1 < top else top
    return _bisect(keys, lo, hi, key)


cdef inline Py_ssize_t _search_near(const double* keys, Py_ssize_t n, double key, Py_ssize_t guess) noexcept nogil:
    # Lower bound of `key` (keys[n - 1] > key, n >= GUESS_WINDOW) near `guess`:
    # count the keys below `key` in the GUESS_WINDOW slots around it --
    # independent loads and no data-dependent branch, where a binary search is
    # a chain of ~11 dependent probes with mispredicted jumps -- and gallop
    # from the window's edge only when the answer is outside it.
    cdef Py_ssize_t top = n - 1
    cdef Py_ssize_t lo, k, below
    lo = guess - GUESS_WINDOW // 2
    if lo < 0:
        lo = 0
    elif lo > n - GUESS_WINDOW:
        lo = n - GUESS_WINDOW
    below = 0
    for k in range(GUESS_WINDOW):
        below += <Py_ssize_t>(keys[lo + k] < key)
    if below == 0:
        # Every key in the window is >= `key`: the answer is at or below lo.
        return _gallop(keys, top, lo, key) if lo > 0 else 0
    if below == GUESS_WINDOW:
        # Every key in the window is < `key`: the answer is above it.
        return _gallop(keys, top, lo + GUESS_WINDOW - 1, key)
    return lo + below


cdef inline Py_ssize_t _lower_bound(const double* keys, Py_ssize_t n, double key, double density,
                                    Py_ssize_t finger) noexcept nogil:
    # First index whose key (keys[index]) is >= `key`.
    #
    # The guess comes from one of two places.  Venues list a message's levels
    # best first (Binance: every frame), so each level usually lies a little
    # deeper than the one before: with `finger` (the previous level's index,
    # -1 for none) above `key`, the guess extrapolates the density of the
    # FINGER_SPAN slots just below the finger.  Otherwise books are dense near
    # the top: the guess is the key's distance to the best key times the
    # density of the top levels (_density).  Deep in a real book the top
    # density misses by hundreds of slots, where the finger's local one is
    # mostly within the window.
    cdef Py_ssize_t top = n - 1
    cdef Py_ssize_t guess, lo
    cdef double top_key, levels_away, span_keys
    if n == 0:
        return 0
    top_key = keys[top]
    if key >= top_key:
        return top + <Py_ssize_t>(key > top_key)
    if n < GUESS_WINDOW:
        return _gallop(keys, top, top, key)
    if 0 < finger <= top and key < keys[finger]:
        lo = finger - FINGER_SPAN if finger > FINGER_SPAN else 0
        span_keys = keys[finger] - keys[lo]
        levels_away = (keys[finger] - key) * (finger - lo) / span_keys
        guess = finger - <Py_ssize_t>levels_away if levels_away < finger else 0
    else:
        levels_away = (top_key - key) * density
        guess = top - <Py_ssize_t>levels_away if levels_away < top else 0
    return _search_near(keys, n, key, guess)


cdef inline void _squeeze(BookSide* s) noexcept nogil:
    # Drop every hole in one pass (order kept).  O(n), and only run when the
    # buffer is full or holes outnumber levels, so amortised over many deletes.
    cdef Py_ssize_t r, w = 0
    cdef double* keys = s.keys
    cdef double* qtys = s.qtys
    for r in range(s.n):
        if qtys[r] != 0.0:
            if w != r:
                keys[w] = keys[r]
                qtys[w] = qtys[r]
            w += 1
    s.n = w
    s.holes = 0


cdef inline void _remove_at(BookSide* s, Py_ssize_t i, Py_ssize_t depth) noexcept nogil:
    cdef Py_ssize_t top_start = s.n - depth
    if i >= top_start:
        # The slot just below the window moves into it, so it must be a
        # level: holes waiting there are removed first (each moves the
        # window's `depth` levels, once per hole).
        while top_start > 0 and s.qtys[top_start - 1] == 0.0:
            _move(s, top_start - 1, top_start, s.n - top_start)
            s.n -= 1
            s.holes -= 1
            top_start -= 1
            i -= 1
        _acc(s, -s.qtys[i])
        # The level just below the top-N window moves into it.
        if top_start > 0:
            _acc(s, s.qtys[top_start - 1])
    if i < s.n - 1:
        _move(s, i, i + 1, s.n - 1 - i)
    s.n -= 1
    _adjusted(s, depth)


cdef inline void _insert_at(BookSide* s, Py_ssize_t i, double key, double qty, Py_ssize_t depth) noexcept nogil:
    cdef Py_ssize_t n = s.n
    # After the insert the top-N window is [n + 1 - depth, n + 1).
    if i >= n + 1 - depth:
        _acc(s, qty)
        # The old bottom of the window (index n - depth) falls out of it.
        if n - depth >= 0:
            _acc(s, -s.qtys[n - depth])
    if i < n:
        _move(s, i + 1, i, n - i)
    s.keys[i] = key
    s.qtys[i] = qty
    s.n = n + 1
    _adjusted(s, depth)


cdef inline bint _insert_into_hole(BookSide* s, Py_ssize_t i, double key, double qty,
                                   Py_ssize_t window_start) noexcept nogil:
    # Insert before slot i (< window_start) by shifting only the levels
    # between i and the nearest hole within HOLE_SCAN slots; False if none.
    # The window and the slot count do not change, so the sums do not either.
    cdef double* keys = s.keys
    cdef double* qtys = s.qtys
    cdef Py_ssize_t d, j
    for d in range(HOLE_SCAN):
        j = i + d
        if j < window_start and qtys[j] == 0.0:
            if j > i:
                _move(s, i + 1, i, j - i)
            keys[i] = key
            qtys[i] = qty
            s.holes -= 1
            return True
        j = i - 1 - d
        if j >= 0 and qtys[j] == 0.0:
            if j < i - 1:
                _move(s, j, j + 1, i - 1 - j)
            keys[i - 1] = key
            qtys[i - 1] = qty
            s.holes -= 1
            return True
    return False


cdef bint _resize(BookSide* s, Py_ssize_t cap) noexcept nogil:
    # Reallocate both buffers to `cap` slots (>= s.n), keeping the levels.
    # False, with the side still whole at its old capacity, when the
    # allocator refuses.
    cdef size_t size = <size_t>cap * sizeof(double)
    cdef double* keys = <double*>realloc(s.keys, size)
    if keys == NULL:
        return False
    s.keys = keys
    cdef double* qtys = <double*>realloc(s.qtys, size)
    if qtys == NULL:
        # keys already has the new size: cap must count the smaller buffer.
        if cap < s.cap:
            s.cap = cap
        return False
    s.qtys = qtys
    s.cap = cap
    return True


cdef inline Py_ssize_t _fit_capacity(Py_ssize_t needed, Py_ssize_t initial, Py_ssize_t max_capacity) noexcept nogil:
    # Slots for `needed` levels: `initial` doubled until it holds them, at
    # most max_capacity (the growth sequence a side would have gone through).
    cdef Py_ssize_t cap = initial
    while cap < needed and cap < max_capacity:
        cap = cap * 2 if cap < max_capacity // 2 else max_capacity
    return cap


cdef bint _grow(BookSide* s, Py_ssize_t max_capacity) noexcept nogil:
    # The side is full: double its slots (at most max_capacity), holes and
    # all (see "Capacity").  Out of the hot path's common case: only an
    # insert into a full side gets here.
    if s.cap >= max_capacity:
        return False
    cdef Py_ssize_t cap = s.cap * 2 if s.cap < max_capacity // 2 else max_capacity
    return _resize(s, cap)


cdef inline Py_ssize_t _side_update(BookSide* s, double price, double qty, Py_ssize_t depth,
                                    Py_ssize_t max_capacity, bint* truncated, double density,
                                    Py_ssize_t finger) noexcept nogil:
    # Returns the level's index (the next level's finger, see _lower_bound).
    cdef double key = s.sign * price
    cdef double old_qty
    cdef Py_ssize_t i = _lower_bound(s.keys, s.n, key, density, finger)
    if i < s.n and s.keys[i] == key:
        old_qty = s.qtys[i]
        if qty != old_qty:
            _band_change(s, key, old_qty, qty)
        if old_qty == 0.0:
            # A hole (always below the window): refill it, or nothing to delete.
            if qty != 0.0:
                s.qtys[i] = qty
                s.holes -= 1
        elif qty == 0.0:
            if i < s.n - depth:
                s.qtys[i] = 0.0
                s.holes += 1
                if s.holes > s.n - s.holes:
                    _squeeze(s)
            else:
                _remove_at(s, i, depth)
        elif qty != old_qty:
            s.qtys[i] = qty
            if i >= s.n - depth:
                # Two compensated additions, not one of (qty - old): the
                # difference itself would round before compensation sees it.
                _acc(s, qty)
                _acc(s, -old_qty)
                _adjusted(s, depth)
        return i
    if qty == 0.0:
        # Deleting a level we do not hold is not an error.
        return i
    if s.holes > 0 and i < s.n - depth and _insert_into_hole(s, i, key, qty, s.n - depth):
        _band_change(s, key, 0.0, qty)
        return i
    if s.n == s.cap and not _grow(s, max_capacity):
        if s.holes > 0:
            _squeeze(s)
            i = _lower_bound(s.keys, s.n, key, density, -1)
        else:
            # Full at max_capacity: the worst level (index 0) makes room,
            # unless the new level would itself be the worst, in which case
            # it is the one dropped.
            truncated[0] = True
            if i == 0:
                return i
            _band_change(s, s.keys[0], s.qtys[0], 0.0)
            _remove_at(s, 0, depth)
            i -= 1
    _insert_at(s, i, key, qty, depth)
    _band_change(s, key, 0.0, qty)
    return i


cdef inline bint _all_valid(const double* prices, const double* qtys, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        if not (valid_price(prices[j]) and valid_qty(qtys[j])):
            return False
    return True


cdef inline bint _best_first(const double* prices, Py_ssize_t n, double sign) noexcept nogil:
    # True when the levels come best first (keys strictly decreasing), as
    # venues send them.
    cdef Py_ssize_t j
    cdef bint ordered = True
    for j in range(1, n):
        ordered &= sign * prices[j] < sign * prices[j - 1]
    return ordered


cdef inline int _side_apply(BookSide* s, const double* prices, const double* qtys, Py_ssize_t n,
                            Py_ssize_t depth, Py_ssize_t max_capacity, bint* truncated) noexcept nogil:
    cdef Py_ssize_t j
    # Validate the whole message first so a rejected one leaves no trace.
    if not _all_valid(prices, qtys, n):
        return BOOK_BAD_VALUE
    cdef double density = _density(s)
    cdef Py_ssize_t finger = -1
    if _best_first(prices, n, s.sign):
        # Each level lies below the one before: guess from there (see _lower_bound).
        for j in range(n):
            finger = _side_update(s, prices[j], qtys[j], depth, max_capacity, truncated, density, finger)
    else:
        # A loop of its own: with the finger a constant -1 the compiler drops
        # the finger guess from the inlined search (one shared loop measured
        # ~5 % slower on unordered messages, bench_feed synthetic).
        for j in range(n):
            _side_update(s, prices[j], qtys[j], depth, max_capacity, truncated, density, -1)
    return BOOK_OK


cdef class OrderBook:
    """Growable L2 book; see sentrycore/book.pyi for the Python API."""

    def __cinit__(self, Py_ssize_t depth=50, Py_ssize_t capacity=5000, double band_bps=0.0,
                  max_capacity=None):
        cdef Py_ssize_t bound = capacity if max_capacity is None else max_capacity
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if capacity < depth:
            raise ValueError(f"capacity ({capacity}) must be >= depth ({depth})")
        if bound < capacity:
            raise ValueError(f"max_capacity ({bound}) must be >= capacity ({capacity})")
        if not (band_bps == 0.0 or 0.0 < band_bps < 1e4):
            raise ValueError(f"band_bps must be 0 (off) or in (0, 10000), got {band_bps!r}")
        self.band_bps = band_bps
        self.depth = depth
        self.capacity = capacity
        self.max_capacity = bound
        self._truncated = False
        self._bids.sign = 1.0
        self._asks.sign = -1.0
        if not (_resize(&self._bids, capacity) and _resize(&self._asks, capacity)):
            raise MemoryError(f"cannot allocate an order book of {capacity} levels per side")
        self.c_clear()

    def __dealloc__(self):
        free(self._bids.keys)
        free(self._bids.qtys)
        free(self._asks.keys)
        free(self._asks.qtys)

    # ---- C level ---------------------------------------------------------

    cdef int c_update_bid(self, double price, double qty) noexcept nogil:
        if not (valid_price(price) and valid_qty(qty)):
            return BOOK_BAD_VALUE
        _side_update(&self._bids, price, qty, self.depth, self.max_capacity, &self._truncated,
                     _density(&self._bids), -1)
        if self.band_bps > 0.0:
            self._band_recentre()
        return BOOK_OK

    cdef int c_update_ask(self, double price, double qty) noexcept nogil:
        if not (valid_price(price) and valid_qty(qty)):
            return BOOK_BAD_VALUE
        _side_update(&self._asks, price, qty, self.depth, self.max_capacity, &self._truncated,
                     _density(&self._asks), -1)
        if self.band_bps > 0.0:
            self._band_recentre()
        return BOOK_OK

    cdef int c_apply_bids(self, const double* prices, const double* qtys, Py_ssize_t n) noexcept nogil:
        cdef int rc = _side_apply(&self._bids, prices, qtys, n, self.depth, self.max_capacity, &self._truncated)
        if self.band_bps > 0.0:
            self._band_recentre()
        return rc

    cdef int c_apply_asks(self, const double* prices, const double* qtys, Py_ssize_t n) noexcept nogil:
        cdef int rc = _side_apply(&self._asks, prices, qtys, n, self.depth, self.max_capacity, &self._truncated)
        if self.band_bps > 0.0:
            self._band_recentre()
        return rc

    cdef int c_apply(self, const double* bid_prices, const double* bid_qtys, Py_ssize_t n_bids,
                     const double* ask_prices, const double* ask_qtys, Py_ssize_t n_asks) noexcept nogil:
        if not (_all_valid(bid_prices, bid_qtys, n_bids) and _all_valid(ask_prices, ask_qtys, n_asks)):
            return BOOK_BAD_VALUE
        _side_apply(&self._bids, bid_prices, bid_qtys, n_bids, self.depth, self.max_capacity, &self._truncated)
        _side_apply(&self._asks, ask_prices, ask_qtys, n_asks, self.depth, self.max_capacity, &self._truncated)
        if self.band_bps > 0.0:
            self._band_recentre()
        return BOOK_OK

    cdef void c_clear(self) noexcept nogil:
        self._bids.n = 0
        self._bids.holes = 0
        self._bids.vol = 0.0
        self._bids.vol_comp = 0.0
        self._bids.adjustments = 0
        self._asks.n = 0
        self._asks.holes = 0
        self._asks.vol = 0.0
        self._asks.vol_comp = 0.0
        self._asks.adjustments = 0
        _band_move(&self._bids, INFINITY, False)
        _band_move(&self._asks, INFINITY, False)
        self._truncated = False

    cdef void _band_recentre(self) noexcept nogil:
        cdef double bid_floor = INFINITY
        cdef double ask_floor = INFINITY
        if self._bids.n > 0 and self._asks.n > 0:
            band_floors(self.c_best_bid(), self.c_best_ask(), self.band_bps, &bid_floor, &ask_floor)
        _band_move(&self._bids, bid_floor, self._bids.band_adjustments >= BAND_RENORM_EVERY)
        _band_move(&self._asks, ask_floor, self._asks.band_adjustments >= BAND_RENORM_EVERY)

    cdef double c_band_bid_notional(self) noexcept nogil:
        return self._bids.band + self._bids.band_comp

    cdef double c_band_ask_notional(self) noexcept nogil:
        return self._asks.band + self._asks.band_comp

    cdef double c_bid_volume(self) noexcept nogil:
        return self._bids.vol + self._bids.vol_comp

    cdef double c_ask_volume(self) noexcept nogil:
        return self._asks.vol + self._asks.vol_comp

    cdef double c_ratio(self) noexcept nogil:
        cdef double bid_volume = self.c_bid_volume()
        cdef double ask_volume = self.c_ask_volume()
        if bid_volume > 0.0:
            return ask_volume / bid_volume
        if ask_volume > 0.0:
            return INFINITY
        return NAN

    cdef double c_best_bid(self) noexcept nogil:
        if self._bids.n == 0:
            return NAN
        return self._bids.keys[self._bids.n - 1]

    cdef double c_best_ask(self) noexcept nogil:
        if self._asks.n == 0:
            return NAN
        return -self._asks.keys[self._asks.n - 1]

    cdef Py_ssize_t c_bid_levels(self) noexcept nogil:
        return self._bids.n - self._bids.holes

    cdef Py_ssize_t c_ask_levels(self) noexcept nogil:
        return self._asks.n - self._asks.holes

    # ---- Python level ----------------------------------------------------

    def update_bid(self, double price, double qty):
        if self.c_update_bid(price, qty) != BOOK_OK:
            _raise_bad(price, qty)

    def update_ask(self, double price, double qty):
        if self.c_update_ask(price, qty) != BOOK_OK:
            _raise_bad(price, qty)

    def apply_bids(self, prices, qtys):
        _apply_arrays(self, &self._bids, prices, qtys)

    def apply_asks(self, prices, qtys):
        _apply_arrays(self, &self._asks, prices, qtys)

    def apply(self, bid_prices, bid_qtys, ask_prices, ask_qtys):
        """Both sides of one message in one call; validated together (all or nothing)."""
        if not (_is_f64_vector(bid_prices) and _is_f64_vector(bid_qtys)
                and _is_f64_vector(ask_prices) and _is_f64_vector(ask_qtys)):
            bid_prices, bid_qtys = _f64_vector(bid_prices), _f64_vector(bid_qtys)
            ask_prices, ask_qtys = _f64_vector(ask_prices), _f64_vector(ask_qtys)
        cdef Py_ssize_t nb = _pair_length(bid_prices, bid_qtys)
        cdef Py_ssize_t na = _pair_length(ask_prices, ask_qtys)
        cdef const double* bp = <const double*>cnp.PyArray_DATA(bid_prices)
        cdef const double* bq = <const double*>cnp.PyArray_DATA(bid_qtys)
        cdef const double* ap = <const double*>cnp.PyArray_DATA(ask_prices)
        cdef const double* aq = <const double*>cnp.PyArray_DATA(ask_qtys)
        if self.c_apply(bp, bq, nb, ap, aq, na) != BOOK_OK:
            if not _all_valid(bp, bq, nb):
                _raise_first_bad(bp, bq, nb)
            _raise_first_bad(ap, aq, na)

    @property
    def band_bid_notional(self):
        return self.c_band_bid_notional()

    @property
    def band_ask_notional(self):
        return self.c_band_ask_notional()

    @property
    def volumes(self):
        """(bid_volume, ask_volume) in one read."""
        return (self.c_bid_volume(), self.c_ask_volume())

    def load_snapshot(self, bids, asks):
        bid_keys, bid_qtys, bid_cut = _prepare_side(bids, 1.0, self.max_capacity)
        ask_keys, ask_qtys, ask_cut = _prepare_side(asks, -1.0, self.max_capacity)
        # Grow first (a failure leaves the book as it was), clear, then shrink.
        cdef Py_ssize_t bid_cap = _fit_capacity(bid_keys.shape[0], self.capacity, self.max_capacity)
        cdef Py_ssize_t ask_cap = _fit_capacity(ask_keys.shape[0], self.capacity, self.max_capacity)
        if ((bid_cap > self._bids.cap and not _resize(&self._bids, bid_cap))
                or (ask_cap > self._asks.cap and not _resize(&self._asks, ask_cap))):
            raise MemoryError(f"cannot allocate {max(bid_cap, ask_cap)} order book levels per side")
        self.c_clear()
        _shrink(&self._bids, bid_cap)
        _shrink(&self._asks, ask_cap)
        _fill(&self._bids, bid_keys, bid_qtys, self.depth)
        _fill(&self._asks, ask_keys, ask_qtys, self.depth)
        if self.band_bps > 0.0:
            self._band_recentre()
        self._truncated = bid_cut or ask_cut

    def clear(self):
        self.c_clear()

    @property
    def best_bid(self):
        return self.c_best_bid()

    @property
    def best_ask(self):
        return self.c_best_ask()

    @property
    def bid_volume(self):
        return self.c_bid_volume()

    @property
    def ask_volume(self):
        return self.c_ask_volume()

    @property
    def ratio(self):
        return self.c_ratio()

    @property
    def bid_levels(self):
        return self.c_bid_levels()

    @property
    def ask_levels(self):
        return self.c_ask_levels()

    @property
    def truncated(self):
        return bool(self._truncated)

    @property
    def allocated_slots(self):
        """(bid slots, ask slots) allocated now, each in [capacity, max_capacity]."""
        return (self._bids.cap, self._asks.cap)

    @property
    def allocated_bytes(self):
        """Bytes of level storage allocated now (16 per slot: key + quantity)."""
        return <Py_ssize_t>(2 * sizeof(double)) * (self._bids.cap + self._asks.cap)

    def _storage(self):
        """(bid slots, bid holes, ask slots, ask holes): the internal layout, for tests."""
        return (self._bids.n, self._bids.holes, self._asks.n, self._asks.holes)

    def bids(self, Py_ssize_t n=-1):
        return _side_levels(&self._bids, n)

    def asks(self, Py_ssize_t n=-1):
        return _side_levels(&self._asks, n)

    def __len__(self):
        return self.c_bid_levels() + self.c_ask_levels()

    def __repr__(self):
        return (f"OrderBook(depth={self.depth}, capacity={self.capacity}, max_capacity={self.max_capacity}, "
                f"band_bps={self.band_bps:g}, "
                f"bid_levels={self.c_bid_levels()}, ask_levels={self.c_ask_levels()}, "
                f"best_bid={self.c_best_bid()}, best_ask={self.c_best_ask()}, "
                f"ratio={self.c_ratio():.4f})")


cdef int _apply_arrays(OrderBook book, BookSide* side, object prices, object qtys) except -1:
    # Fast path: contiguous float64 ndarrays are read in place; anything else
    # is converted once (and rejected if it is not a 1-D float vector).
    if not (_is_f64_vector(prices) and _is_f64_vector(qtys)):
        prices = _f64_vector(prices)
        qtys = _f64_vector(qtys)
    cdef Py_ssize_t n = _pair_length(prices, qtys)
    cdef const double* p = <const double*>cnp.PyArray_DATA(prices)
    cdef const double* q = <const double*>cnp.PyArray_DATA(qtys)
    if _side_apply(side, p, q, n, book.depth, book.max_capacity, &book._truncated) != BOOK_OK:
        _raise_first_bad(p, q, n)
    if book.band_bps > 0.0:
        book._band_recentre()
    return 0


cdef inline bint _is_f64_vector(object arr):
    return (cnp.PyArray_Check(arr)
            and cnp.PyArray_TYPE(<cnp.ndarray>arr) == cnp.NPY_DOUBLE
            and cnp.PyArray_NDIM(<cnp.ndarray>arr) == 1
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr))


cdef object _f64_vector(object values):
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array of float64, got shape {arr.shape}")
    return arr


cdef Py_ssize_t _pair_length(object prices, object qtys) except -1:
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>prices, 0)
    if n != cnp.PyArray_DIM(<cnp.ndarray>qtys, 0):
        raise ValueError(f"prices and qtys differ in length: {n} != {cnp.PyArray_DIM(<cnp.ndarray>qtys, 0)}")
    return n


cdef void _raise_bad(double price, double qty) except *:
    if not valid_price(price):
        raise ValueError(f"invalid price {price!r}: must be > 0 and <= {SENTRY_MAX_PRICE:g}")
    raise ValueError(f"invalid quantity {qty!r} at price {price!r}: must be >= 0 and <= {SENTRY_MAX_QTY:g}")


cdef void _raise_first_bad(const double* prices, const double* qtys, Py_ssize_t n) except *:
    cdef Py_ssize_t j
    for j in range(n):
        if not (valid_price(prices[j]) and valid_qty(qtys[j])):
            _raise_bad(prices[j], qtys[j])
    raise ValueError("invalid level in batch")


cdef tuple _prepare_side(levels, double sign, Py_ssize_t capacity):
    arr = np.asarray(levels, dtype=np.float64)
    if arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"snapshot side must be an (n, 2) array of (price, qty), got shape {arr.shape}")
    prices = np.ascontiguousarray(arr[:, 0])
    qtys = np.ascontiguousarray(arr[:, 1])
    if prices.shape[0]:
        bad = ~((prices > 0) & (prices <= SENTRY_MAX_PRICE) & (qtys >= 0) & (qtys <= SENTRY_MAX_QTY))
        if bad.any():
            j = int(np.argmax(bad))
            _raise_bad(prices[j], qtys[j])
    keys = prices * sign
    # Stable sort keeps repeated prices in message order; the last one
    # wins, exactly as if the levels had been applied one by one.
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    qtys = qtys[order]
    if keys.shape[0]:
        last_of_run = np.ones(keys.shape[0], dtype=bool)
        last_of_run[:-1] = keys[1:] != keys[:-1]
        keep = last_of_run & (qtys > 0)
        keys = keys[keep]
        qtys = qtys[keep]
    cut = keys.shape[0] > capacity
    if cut:
        keys = keys[keys.shape[0] - capacity:]
        qtys = qtys[qtys.shape[0] - capacity:]
    return np.ascontiguousarray(keys), np.ascontiguousarray(qtys), cut

cdef inline void _shrink(BookSide* s, Py_ssize_t cap) noexcept nogil:
    # Give an emptied side's memory back when it had grown to over twice
    # `cap` (what the coming snapshot needs: a resync after a long run).  A
    # refused realloc keeps the larger buffers, which is only less thrifty.
    if 2 * cap < s.cap and s.n <= cap:
        _resize(s, cap)


cdef void _fill(BookSide* s, const double[::1] keys, const double[::1] qtys, Py_ssize_t depth):
    cdef Py_ssize_t i
    cdef Py_ssize_t n = keys.shape[0]
    for i in range(n):
        s.keys[i] = keys[i]
        s.qtys[i] = qtys[i]
    s.n = n
    s.holes = 0
    _renorm(s, depth)


cdef object _side_levels(BookSide* s, Py_ssize_t n):
    cdef Py_ssize_t live = s.n - s.holes
    if n < 0 or n > live:
        n = live
    out = np.empty((n, 2), dtype=np.float64)
    cdef double[:, ::1] view = out
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t slot = s.n - 1
    while i < n:
        if s.qtys[slot] != 0.0:  # skip holes
            view[i, 0] = s.sign * s.keys[slot]
            view[i, 1] = s.qtys[slot]
            i += 1
        slot -= 1
    return out

