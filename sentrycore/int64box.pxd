# cython: language_level=3
# The one rule for a sequence number held for the C hot path: an exact `int`
# (not bool, not a subclass) within int64 is kept as a C int64, which the C
# path compares without converting or allocating; anything else (None, a
# larger int, a str, ...) stays the object, and the C path declines while it
# does, leaving the frame to the reference path.  Used by
# parse.ChainState.last_u and coinbase.SequenceState.last_seq:
#
#     from sentrycore.int64box cimport hold_int64
#     self._last_ok = hold_int64(value, &self._last)
#     self._last_other = None if self._last_ok else value

from libc.stdint cimport int64_t


cdef inline bint hold_int64(object value, int64_t* out) except -1:
    # True with value in *out when it is an int within int64; False (*out untouched) otherwise.
    if type(value) is int and -(1 << 63) <= value < (1 << 63):
        out[0] = value
        return True
    return False
