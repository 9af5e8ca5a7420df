"""Jittered exponential backoff, shared by connections, snapshot requests and book recovery."""

from __future__ import annotations

import random


class Backoff:
    """Jittered exponential backoff: initial * factor**n, capped, then jittered down.

    Jitter only ever shortens the delay, so the cap is a hard upper bound,
    and many connections that dropped together do not reconnect in lockstep.
    """

    __slots__ = ("initial_s", "max_s", "factor", "jitter", "attempts", "_rng")

    def __init__(
        self,
        initial_s: float = 1.0,
        max_s: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        self.attempts = 0
        self._rng = rng or random.Random()

    def base_delay(self, attempts: int) -> float:
        # Cap the exponent too, so a long outage cannot overflow the float.
        return min(self.max_s, self.initial_s * self.factor ** min(attempts, 64))

    def next_delay(self) -> float:
        base = self.base_delay(self.attempts)
        self.attempts += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempts = 0
