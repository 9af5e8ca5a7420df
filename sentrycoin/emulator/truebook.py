"""The emulator's ground truth: a seeded, randomly evolving L2 book.

Prices are integer ticks and sizes integer lots, so the truth is exact; each
venue formats them into its own wire text.  Every `step()` returns the
absolute changes it made (qty 0 = level deleted), which the venue
protocols turn into their update messages.
"""

from __future__ import annotations

import random
from collections import deque
from decimal import Decimal

BID = "bid"
ASK = "ask"

Change = tuple[str, int, int]  # (side, price_ticks, qty_lots); qty 0 deletes
TopKey = tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]


def fixed_text(units: int, decimals: int) -> str:
    """Exact decimal text of units * 10**-decimals with exactly `decimals` digits."""
    if decimals <= 0:
        return str(units)
    digits = str(units).rjust(decimals + 1, "0")
    return f"{digits[:-decimals]}.{digits[-decimals:]}"


class TrueBook:
    """One symbol's book.  Bids and asks never cross."""

    def __init__(
        self,
        rng: random.Random,
        *,
        mid_ticks: int = 5_000_000,
        price_decimals: int = 2,
        qty_decimals: int = 4,
        min_levels: int = 12,
        max_levels: int = 30,
        max_changes: int = 4,
        audit_depth: int = 10,
        history: int = 4000,
    ) -> None:
        self.rng = rng
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals
        self.min_levels = min_levels
        self.max_levels = max_levels
        self.max_changes = max_changes
        self.audit_depth = audit_depth
        self._price_scale = Decimal(1).scaleb(-price_decimals)
        self._qty_scale = Decimal(1).scaleb(-qty_decimals)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        spread = 2
        for i in range((min_levels + max_levels) // 2):
            self.bids[mid_ticks - spread - i * rng.randint(1, 3) - i] = self._lots()
            self.asks[mid_ticks + spread + i * rng.randint(1, 3) + i] = self._lots()
        self.steps = 0
        # Top-of-book keys of every recent state: a valid client book must equal one of them.
        self.history: deque[TopKey] = deque(maxlen=history)
        self._history_set: dict[TopKey, int] = {}
        self.remember()

    # -- formatting ----------------------------------------------------------

    def price_text(self, ticks: int) -> str:
        return fixed_text(ticks, self.price_decimals)

    def qty_text(self, lots: int) -> str:
        return fixed_text(lots, self.qty_decimals)

    def price_decimal(self, ticks: int) -> Decimal:
        return Decimal(ticks) * self._price_scale

    def qty_decimal(self, lots: int) -> Decimal:
        return Decimal(lots) * self._qty_scale

    def price_float(self, ticks: int) -> float:
        return float(self.price_text(ticks))

    def qty_float(self, lots: int) -> float:
        return float(self.qty_text(lots))

    # -- views ---------------------------------------------------------------

    def top(self, side: str, n: int | None = None) -> list[tuple[int, int]]:
        """Best `n` levels (all when None), best first, as (ticks, lots)."""
        levels = self.bids if side == BID else self.asks
        prices = sorted(levels, reverse=(side == BID))
        if n is not None:
            prices = prices[:n]
        return [(p, levels[p]) for p in prices]

    def top_key(self, n: int | None = None) -> TopKey:
        n = self.audit_depth if n is None else n
        return (
            tuple((self.price_float(p), self.qty_float(q)) for p, q in self.top(BID, n)),
            tuple((self.price_float(p), self.qty_float(q)) for p, q in self.top(ASK, n)),
        )

    def copy_state(self) -> tuple[dict[int, int], dict[int, int]]:
        return dict(self.bids), dict(self.asks)

    def seen(self, key: TopKey) -> bool:
        """Was this top-of-book ever the true one (within the kept history)?"""
        return key in self._history_set

    # -- evolution -----------------------------------------------------------

    def _lots(self) -> int:
        return self.rng.randint(1, 50_000)

    def step(self) -> list[Change]:
        """Apply 1..max_changes random changes; returns them (final value per level)."""
        rng = self.rng
        changes: dict[tuple[str, int], int] = {}
        n_ops = rng.randint(1, self.max_changes)
        attempts = 0
        # Every step changes something: venues do not publish empty diffs (OKX's keep-alive aside).
        while (attempts < n_ops or not changes) and attempts < 50:
            attempts += 1
            side = BID if rng.random() < 0.5 else ASK
            levels = self.bids if side == BID else self.asks
            op = rng.random()
            if (op < 0.35 and len(levels) > self.min_levels) or len(levels) > self.max_levels:
                price = rng.choice(list(levels))
                del levels[price]
                changes[(side, price)] = 0
            elif op < 0.7 or len(levels) < self.min_levels:
                new_price = self._new_price(side)
                if new_price is None:
                    continue
                price = new_price
                qty = self._lots()
                levels[price] = qty
                changes[(side, price)] = qty
            else:
                # Resize, biased toward the top where real books churn most.
                tops = sorted(levels, reverse=(side == BID))[:8]
                price = rng.choice(tops)
                qty = self._lots()
                levels[price] = qty
                changes[(side, price)] = qty
        self.steps += 1
        self.remember()
        return [(side, price, qty) for (side, price), qty in changes.items()]

    def _new_price(self, side: str) -> int | None:
        best_bid = max(self.bids) if self.bids else None
        best_ask = min(self.asks) if self.asks else None
        rng = self.rng
        if side == BID:
            anchor = best_bid if best_bid is not None else (best_ask or 2) - 1
            price = anchor + rng.randint(-20, 4)
            if best_ask is not None and price >= best_ask:
                price = best_ask - 1
            if price <= 0 or price in self.bids:
                return None
        else:
            anchor = best_ask if best_ask is not None else (best_bid or 0) + 1
            price = anchor + rng.randint(-4, 20)
            if best_bid is not None and price <= best_bid:
                price = best_bid + 1
            if price in self.asks:
                return None
        return price

    def remember(self) -> None:
        key = self.top_key()
        if len(self.history) == self.history.maxlen:
            old = self.history[0]
            count = self._history_set.get(old, 0) - 1
            if count <= 0:
                self._history_set.pop(old, None)
            else:
                self._history_set[old] = count
        self.history.append(key)
        self._history_set[key] = self._history_set.get(key, 0) + 1
