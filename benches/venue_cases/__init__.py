"""The venue cases `benches/bench_venues.py` races: one module per venue, each with `cases()`.

A case is one venue's update messages (real recordings where ../shared/realdata
has them, otherwise rewritten from the real Binance recording's levels) with
two ways to consume them: SentryCoin's handler and cryptofeed's handler for
that venue.  Both are rebuilt for every round (`start()`), synced on the
case's snapshot, so each round feeds the same frames in order into a fresh
book and every frame chains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: A consumer of one frame.  Synchronous callables are timed as they are;
#: cryptofeed's handlers are coroutine functions, awaited by the runner.
FrameSink = Callable[[bytes], object]


@dataclass(frozen=True)
class VenueCase:
    name: str
    """Row label, e.g. "bybit (16 levels)"."""
    venue: str
    """SentryCoin venue name: binance, coinbase, kraken, bybit, okx, ..."""
    source: str
    """Where the frames come from ("real COINBASE.jsonl.zst", "rewritten from the real Binance levels")."""
    levels: int
    """Median level changes per update message: the Binance row with this count is the "x Binance" base."""
    frames: Sequence[bytes]
    """The update messages, in order; each chains on the previous one."""
    start_ours: Callable[[], FrameSink]
    """A fresh SentryCoin handler synced on the case's snapshot: returns its per-frame callable."""
    start_rival: Callable[[], FrameSink] | None
    """The same for cryptofeed's handler of this venue (None: cryptofeed is not installed)."""
    rival_note: str = ""
    """How the rival is configured (e.g. "checksum off: cryptofeed's default")."""
    goals: bool = True
    """Issue 14's goals apply to this row (False: shown for information, e.g. Kraken's retired v1)."""
