# cython: language_level=3, boundscheck=False, wraparound=False
"""Example: a Cython caller driving sentrycore through its C-level API.

Everything inside `with nogil:` calls the `.pxd` methods directly: no Python
objects, no GIL, no per-call overhead.  Built and exercised by
tests/core/test_cython_embedding.py so this path cannot rot.
"""

from libc.stdint cimport int64_t
from sentrycore.book cimport OrderBook, BOOK_OK
from sentrycore.detector cimport ImbalanceDetector, SEVERITY_NONE


def replay_asks(OrderBook book, ImbalanceDetector detector, const double[::1] prices,
                const double[::1] qtys, const int64_t[::1] times_ms):
    """Apply one ask update per event, evaluate after each; return alert times."""
    cdef Py_ssize_t i, n = prices.shape[0]
    cdef int severity
    cdef int rejected = 0
    cdef list fired = []
    for i in range(n):
        with nogil:
            if book.c_update_ask(prices[i], qtys[i]) != BOOK_OK:
                rejected += 1
                severity = SEVERITY_NONE
            else:
                severity = detector.c_evaluate(book.c_bid_volume(), book.c_ask_volume(), times_ms[i])
        if severity != SEVERITY_NONE:
            fired.append((times_ms[i], severity))
    return fired, rejected


def top_volumes(OrderBook book):
    cdef double bid_volume, ask_volume, ratio
    with nogil:
        bid_volume = book.c_bid_volume()
        ask_volume = book.c_ask_volume()
        ratio = book.c_ratio()
    return bid_volume, ask_volume, ratio, book.c_bid_levels(), book.c_ask_levels()


def apply_batch(OrderBook book, const double[::1] prices, const double[::1] qtys):
    cdef int rc
    with nogil:
        rc = book.c_apply_bids(&prices[0], &qtys[0], prices.shape[0])
    return rc
