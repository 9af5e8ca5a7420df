"""Book recovery: an invalid book always has its next recovery step scheduled.

A book goes invalid for many reasons (a gap, a checksum mismatch, a refused
subscribe, a snapshot that never came, a crossed book).  The venue handler
resets its sync state at once; *when* the book is asked for again is decided
here, the same way for every venue:

* the first failure after a healthy spell re-requests the book at once;
  failures that follow within `healthy_after_s` wait a jittered, growing
  delay (a pair whose checksums keep failing is retried, never in a tight loop);
* a request that produced no valid book within `snapshot_timeout_s` counts as
  failed ("snapshot timeout") and is retried after the backoff;
* after `reconnect_after` failed requests in a row the whole connection is
  reopened (a venue that silently dropped our subscriptions answers a new
  socket), and the cycle starts again on the new connection;
* while a connection is down the transport's reconnect loop (with its own
  backoff) is the scheduled recovery: the subscribe on connect re-requests the
  books, and the snapshot clock starts when the connection is up.

Sans-I/O like the handlers: `FeedHandler.tick(now)` is driven by the frame
source's clock and answers with the handler's usual actions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sentrycoin.backoff import Backoff


@dataclass(slots=True, frozen=True)
class RecoveryPolicy:
    """Timings of book recovery; `SNAPSHOT_TIMEOUT_S` sets the first."""

    snapshot_timeout_s: float = 15.0
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0
    retry_factor: float = 2.0
    retry_jitter: float = 0.5
    # Failed requests in a row before the connection itself is reopened.
    reconnect_after: int = 3
    # A book that had no failure for this long starts afresh (immediate first retry).
    healthy_after_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.snapshot_timeout_s > 0:
            raise ValueError(f"snapshot_timeout_s must be > 0, got {self.snapshot_timeout_s}")
        if not 0 <= self.retry_initial_s <= self.retry_max_s:
            raise ValueError("need 0 <= retry_initial_s <= retry_max_s")
        if self.reconnect_after < 1:
            raise ValueError(f"reconnect_after must be >= 1, got {self.reconnect_after}")


class BookRecovery:
    """Where one book's recovery stands (monotonic seconds)."""

    __slots__ = ("backoff", "retry_at", "deadline", "failed_requests", "last_failure_at")

    def __init__(self, policy: RecoveryPolicy, rng: random.Random) -> None:
        self.backoff = Backoff(policy.retry_initial_s, policy.retry_max_s, policy.retry_factor,
                               policy.retry_jitter, rng)
        self.retry_at: float | None = None  # a re-request is due then
        self.deadline: float | None = None  # the book must be valid by then, else it failed
        self.failed_requests = 0  # in a row, since the last reconnect
        self.last_failure_at: float | None = None

    def failure_delay(self, policy: RecoveryPolicy, now: float) -> float:
        """Delay before re-requesting after a failure at `now` (0: at once)."""
        last = self.last_failure_at
        self.last_failure_at = now
        if last is None or now - last >= policy.healthy_after_s:
            self.backoff.reset()
            self.backoff.attempts = 1  # the next failure soon after waits the initial delay
            return 0.0
        return self.backoff.next_delay()
