"""Signals a backtest can score: what the detector's ask/bid ratio is computed from.

* ``levels:N``: ask volume / bid volume over the best N levels (the live
  detector's signal, N = the book depth, kept incrementally by the book);
* ``band:BPS``: ask notional / bid notional (price x quantity) within BPS
  basis points of the mid.

`signal_values(book, signal)` reads a live `OrderBook`; backtests call it
after every applied message (sentrycoin.research.backtest.SeriesRecorder).  The band
is the core's own walk (sentrycore.band), the code a live detector would run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sentrycore.band import band_notional


@dataclass(frozen=True, slots=True)
class Signal:
    """What the detector's ratio is computed from: `levels:N` or `band:BPS`."""

    kind: str  # "levels" | "band"
    size: float  # levels: N; band: basis points

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.size:g}"

    def describe(self) -> str:
        if self.kind == "levels":
            return f"levels:{self.size:g} = ask volume / bid volume over the best {self.size:g} levels"
        return f"band:{self.size:g} = ask notional / bid notional within {self.size:g} bps of the mid"


def parse_signals(text: str) -> list[Signal]:
    """'levels:50,levels:10,band:25' -> signals; ValueError naming the bad part."""
    out: list[Signal] = []
    for part in (p.strip() for p in text.split(",")):
        kind, sep, size = part.partition(":")
        try:
            value = float(size)
        except ValueError:
            value = math.nan
        if kind not in ("levels", "band") or not sep or not value > 0 or not math.isfinite(value) or (
                kind == "levels" and value != int(value)) or (kind == "band" and value >= 10_000):
            raise ValueError(f"--signals {part!r}: expected levels:N (N levels, an integer) or band:BPS "
                             "(0 < BPS < 10000)")
        sig = Signal(kind, value)
        if sig not in out:
            out.append(sig)
    if not out:
        raise ValueError("--signals: give at least one signal, e.g. levels:50,band:25")
    return out


def signal_values(book, signal: Signal) -> tuple[float, float]:
    """(bid value, ask value) of `signal` on `book` (an OrderBook)."""
    if signal.kind == "levels":
        n = int(signal.size)
        if n == book.depth:
            return book.bid_volume, book.ask_volume  # the book keeps these incrementally
        return float(book.bids(n)[:, 1].sum()), float(book.asks(n)[:, 1].sum())
    return band_notional(book, signal.size)
