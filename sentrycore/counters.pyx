# cython: language_level=3
"""Per-venue feed counters (frames, bytes, decode errors, ...).

Plain counters, but with C fields: `sentrycore.parse.FramePath` counts every
frame of the Binance hot path without a Python attribute write, and Python
code still does `counters.frames += 1`.
"""

_FIELDS = ("frames", "bytes", "decode_errors", "ignored", "checksum_skipped")


cdef class FeedCounters:
    """See sentrycore/counters.pyi."""

    def __init__(self, long long frames=0, long long bytes=0, long long decode_errors=0,
                 long long ignored=0, long long checksum_skipped=0):
        self.frames = frames
        self.bytes = bytes
        self.decode_errors = decode_errors
        self.ignored = ignored
        self.checksum_skipped = checksum_skipped

    def astuple(self):
        """The counters in field order: frames, bytes, decode_errors, ignored, checksum_skipped."""
        return (self.frames, self.bytes, self.decode_errors, self.ignored, self.checksum_skipped)

    def asdict(self):
        return dict(zip(_FIELDS, self.astuple()))

    def __eq__(self, other):
        if not isinstance(other, FeedCounters):
            return NotImplemented
        return self.astuple() == (<FeedCounters>other).astuple()

    __hash__ = None

    def __repr__(self):
        return "FeedCounters(" + ", ".join(f"{k}={v}" for k, v in zip(_FIELDS, self.astuple())) + ")"
