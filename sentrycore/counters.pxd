# cython: language_level=3
# Per-venue feed counters with C fields, so a Cython frame path counts
# without Python attribute writes.

cdef class FeedCounters:
    cdef public long long frames
    cdef public long long bytes
    cdef public long long decode_errors
    # Well-formed frames that carry no book data (acks, heartbeats, tickers).
    cdef public long long ignored
    cdef public long long checksum_skipped
