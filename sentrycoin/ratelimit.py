"""Venue rate budgets: one token bucket, and the REST weight budget Binance reports.

Venues cap what a client may send: Binance 5 messages/s per connection,
Coinbase 8 messages/s per IP, OKX 3 new connections/s per IP and 480
(un)subscribe requests per hour per connection.  Each of those is a
`TokenBucket` (capacity = the burst the venue allows, refilled at the venue's
rate); the transport, the runner and the handlers share this one class.

Binance also meters REST requests by *weight* in fixed one-minute windows and
reports the IP's use so far in every response (`X-MBX-USED-WEIGHT-1M`); other
clients behind the same IP count too.  `WeightBudget` keeps our estimate of
the current window's use (the larger of what the venue reported and what we
sent) and says how long to wait before a request of a given weight fits
under the limit less a margin; `block_until` holds every request to that
host after a 429 (`Retry-After`) or a 418 (IP ban).

Both are sans-I/O: they take `now` from an injected monotonic clock and
answer with delays; callers sleep.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """`capacity` tokens, refilled at `rate_per_s`; a take that does not fit waits.

    `reserve(n)` takes `n` tokens now (going into debt if needed) and returns
    how long the caller must wait before acting, so concurrent callers queue
    in order without a lock.  `try_take(n)` takes only when the tokens are
    there.
    """

    __slots__ = ("rate_per_s", "capacity", "_tokens", "_at", "_clock")

    def __init__(self, rate_per_s: float, capacity: float, clock: Clock = time.monotonic) -> None:
        if not rate_per_s > 0 or not capacity > 0:
            raise ValueError("a token bucket needs rate_per_s > 0 and capacity > 0")
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self._clock = clock
        self._tokens = float(capacity)
        self._at = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        return now

    @classmethod
    def at_most(cls, n: float, per_s: float, burst: float | None = None,
                clock: Clock = time.monotonic) -> TokenBucket:
        """A bucket that never lets more than `n` through in any window of `per_s` seconds.

        In any window of length T a bucket passes at most capacity + rate * T,
        so capacity = `burst` (default half of `n`) and rate = (n - burst) / per_s.
        """
        capacity = burst if burst is not None else max(1.0, n / 2.0)
        if not 0 < capacity < n:
            raise ValueError(f"burst must be within (0, {n}), got {capacity}")
        return cls((n - capacity) / per_s, capacity, clock)

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def try_take(self, n: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def wait_s(self, n: float = 1.0) -> float:
        """Seconds until `n` tokens are there (0.0: now); takes nothing."""
        self._refill()
        missing = n - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate_per_s

    def reserve(self, n: float = 1.0) -> float:
        """Take `n` tokens now; return the seconds to wait before using them."""
        self._refill()
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s


class WeightBudget:
    """A venue's REST weight limit per fixed window, paced on the weight it reports.

    Binance counts weight per IP in windows aligned to the wall-clock minute
    (`window_s`, 60 s; tests use shorter windows).  `wait_s(weight)` is 0
    when a request of `weight` fits under `limit * (1 - margin)` in the
    current window by our estimate, else the time to the next window (or to
    the end of a block).  `spend` records a request we send, `observe` the
    venue's `X-MBX-USED-WEIGHT-1M` from a response.
    """

    __slots__ = ("limit", "window_s", "margin", "blocked_until", "_window", "_reported", "_sent",
                 "_wall", "_clock")

    def __init__(
        self,
        limit: int,
        window_s: float = 60.0,
        margin: float = 0.2,
        *,
        wall: Clock = time.time,
        clock: Clock = time.monotonic,
    ) -> None:
        if limit <= 0 or not window_s > 0 or not 0 <= margin < 1:
            raise ValueError("a weight budget needs limit > 0, window_s > 0 and 0 <= margin < 1")
        self.limit = limit
        self.window_s = window_s
        self.margin = margin
        self.blocked_until = 0.0  # monotonic; no request before this (429 Retry-After, 418 ban)
        self._wall = wall
        self._clock = clock
        self._window = -1
        self._reported = 0
        self._sent = 0

    @property
    def allowed(self) -> float:
        """Weight we let ourselves use per window (the rest is the margin)."""
        return self.limit * (1.0 - self.margin)

    def _current(self) -> int:
        window = int(self._wall() // self.window_s)
        if window != self._window:
            self._window = window
            self._reported = 0
            self._sent = 0
        return window

    @property
    def used(self) -> int:
        """Our estimate of the weight used in the current window."""
        self._current()
        return max(self._reported, self._sent)

    def wait_s(self, weight: int) -> float:
        blocked_s = self.blocked_until - self._clock()
        if blocked_s > 0:
            return blocked_s
        window = self._current()
        if max(self._reported, self._sent) + weight <= self.allowed or weight > self.allowed and self.used == 0:
            return 0.0
        # Full: the venue's counter starts again with the next window.
        return max(0.001, (window + 1) * self.window_s - self._wall())

    def spend(self, weight: int) -> None:
        self._current()
        self._sent += weight

    def observe(self, used_weight: int) -> None:
        """The venue's count for the current window (includes other clients on our IP)."""
        self._current()
        self._reported = max(self._reported, used_weight)

    def block_for(self, seconds: float) -> float:
        """No request until `seconds` from now (kept if already blocked longer); returns the monotonic end."""
        until = self._clock() + max(0.0, seconds)
        if until > self.blocked_until:
            self.blocked_until = until
        return self.blocked_until


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (the venues send delta-seconds); None when absent or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
