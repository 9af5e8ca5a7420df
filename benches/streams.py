"""Synthetic BTCUSDT-like L2 streams shared by the benchmarks.

A book of ~1,500 levels a side on a 0.01 tick around 60,000; each message
carries ~20 level changes per side drawn mostly within 100 ticks of the top:
~20 % deletes of held levels, ~20 % new levels, the rest size changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TICK = 0.01
MID = 60_000.0


@dataclass
class Stream:
    snapshot_bids: list[tuple[float, float]]
    snapshot_asks: list[tuple[float, float]]
    # Per message: (bid prices, bid qtys, ask prices, ask qtys) as float64 arrays...
    arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    # ...and the same as Python lists of (price, qty) for the pure-Python books.
    lists: list[tuple[list[tuple[float, float]], list[tuple[float, float]]]]

    @property
    def levels_per_message(self) -> float:
        return sum(len(b) + len(a) for b, a in self.lists) / len(self.lists)


def _side_changes(rng, held: dict[int, float], n: int, near_ticks: int, sign: int, best_tick: int) -> list[tuple[int, float]]:
    changes = []
    held_near = [t for t in held if abs(t - best_tick) <= near_ticks]
    for _ in range(n):
        r = rng.random()
        if r < 0.2 and held_near:
            t = held_near[int(rng.integers(len(held_near)))]
            changes.append((t, 0.0))
            held.pop(t, None)
        elif r < 0.4:
            # A new level: a free tick near the top (or just inside the spread).
            for _ in range(20):
                t = best_tick - sign * int(min(rng.exponential(25.0), near_ticks)) + sign * int(rng.random() < 0.05)
                if t not in held:
                    break
            q = float(round(rng.exponential(0.5) + 0.001, 5))
            held[t] = q
            changes.append((t, q))
        elif held_near:
            t = held_near[int(rng.integers(len(held_near)))]
            q = float(round(rng.exponential(0.5) + 0.001, 5))
            held[t] = q
            changes.append((t, q))
    return changes


def make_stream(messages: int = 2_000, levels_per_side: int = 1_500, changes_per_side: int = 10, seed: int = 42) -> Stream:
    rng = np.random.default_rng(seed)
    mid_tick = int(MID / TICK)
    bids = {mid_tick - 1 - i: float(round(rng.exponential(0.5) + 0.001, 5)) for i in range(levels_per_side)}
    asks = {mid_tick + 1 + i: float(round(rng.exponential(0.5) + 0.001, 5)) for i in range(levels_per_side)}
    snapshot_bids = [(t * TICK, q) for t, q in bids.items()]
    snapshot_asks = [(t * TICK, q) for t, q in asks.items()]
    arrays, lists = [], []
    for _ in range(messages):
        best_bid = max(bids)
        best_ask = min(asks)
        bc = _side_changes(rng, bids, changes_per_side, 100, +1, best_bid)
        ac = _side_changes(rng, asks, changes_per_side, 100, -1, best_ask)
        # Keep the book uncrossed, as a venue does (and a crossed book is rightly
        # dropped by the core): a new bid at or above the best ask, or a new ask at
        # or below the best bid, leaves both the message and the book.
        cross_b = {t for t, q in bc if q and t >= best_ask}
        for t in cross_b:
            bids.pop(t, None)
        bc = [(t, q) for t, q in bc if t not in cross_b]
        top_bid = max(bids)
        cross_a = {t for t, q in ac if q and t <= top_bid}
        for t in cross_a:
            asks.pop(t, None)
        ac = [(t, q) for t, q in ac if t not in cross_a]
        bl = [(round(t * TICK, 2), q) for t, q in bc]
        al = [(round(t * TICK, 2), q) for t, q in ac]
        lists.append((bl, al))
        arrays.append((
            np.array([p for p, _ in bl], dtype=np.float64), np.array([q for _, q in bl], dtype=np.float64),
            np.array([p for p, _ in al], dtype=np.float64), np.array([q for _, q in al], dtype=np.float64),
        ))
    return Stream(snapshot_bids, snapshot_asks, arrays, lists)
