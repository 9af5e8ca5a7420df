"""Type stubs for sentrycore.book (the Cython OrderBook)."""


import numpy as np
import numpy.typing as npt

MAX_PRICE: float
"""1e15: the largest accepted price."""
MAX_QTY: float
"""1e18: the largest accepted quantity."""

class OrderBook:
    """L2 order book in growable buffers, best price at the end of each side,
    with the best-`depth` bid and ask volumes kept incrementally.

    Capacity: each side starts with `capacity` slots (16 bytes each) and,
    when an insert finds it full, doubles (clamped to `max_capacity`; a
    reallocation of the side, amortised O(1) per insert, never taken by an
    update of a held level or an insert into a free slot).  When a side is
    full at `max_capacity`, inserting a level drops that side's worst level
    (or the new level itself when it would be the worst) and sets
    `truncated`.  `load_snapshot` refits each side to the snapshot: grown to
    hold it (up to max_capacity), shrunk when the side had grown to more
    than twice what it needs, never below `capacity`.  Feed handlers size
    their venue's books with `FeedHandler.book_capacity(depth)`.

    Value bounds: every write accepts a price in (0, MAX_PRICE] and a
    quantity in [0, MAX_QTY]; anything else (NaN, inf, negative, beyond a
    bound) raises ValueError with the book unchanged (a message is validated
    whole first).  With these bounds the volumes, their running sums and
    best_bid + best_ask are always finite: at most depth + 1 quantities of
    <= 1e18 are ever summed (< 1e37), far from the double range.
    """

    depth: int
    capacity: int
    """Slots per side allocated up front (the constructor's `capacity`)."""
    max_capacity: int
    """Slots per side a side may grow to; beyond it the worst level is dropped."""
    band_bps: float
    """Half-width of the band around the mid, in basis points; 0.0 = off."""

    def __init__(self, depth: int = 50, capacity: int = 5000, band_bps: float = 0.0,
                 max_capacity: int | None = None) -> None:
        """`max_capacity` None means `capacity` (a fixed-size book, as before growth
        existed).  ValueError unless 1 <= depth <= capacity <= max_capacity and
        band_bps is 0 or in (0, 10000); MemoryError if the slots cannot be allocated."""
    def load_snapshot(self, bids: npt.ArrayLike, asks: npt.ArrayLike) -> None:
        """Replace the book.  Each side is an (n, 2) array-like of (price, qty)
        in any order; zero quantities are skipped, a repeated price keeps its
        last quantity; beyond max_capacity levels a side keeps its best ones
        (and `truncated` is set).  Raises ValueError (book unchanged) on a bad
        value (outside the bounds above)."""
    def update_bid(self, price: float, qty: float) -> None:
        """Set one bid level; qty == 0 deletes it.  ValueError (book unchanged)
        unless 0 < price <= MAX_PRICE and 0 <= qty <= MAX_QTY (NaN fails both)."""
    def update_ask(self, price: float, qty: float) -> None: ...
    def apply_bids(self, prices: npt.NDArray[np.float64], qtys: npt.NDArray[np.float64]) -> None:
        """Apply one message's bid levels (contiguous float64 arrays).  The
        whole batch is validated before any level is applied."""
    def apply_asks(self, prices: npt.NDArray[np.float64], qtys: npt.NDArray[np.float64]) -> None: ...
    def apply(
        self,
        bid_prices: npt.NDArray[np.float64],
        bid_qtys: npt.NDArray[np.float64],
        ask_prices: npt.NDArray[np.float64],
        ask_qtys: npt.NDArray[np.float64],
    ) -> None:
        """Both sides of one message in one call, validated together: a bad
        level on either side raises ValueError and changes nothing."""
    def clear(self) -> None: ...
    @property
    def best_bid(self) -> float:
        """Highest bid price; NaN when there are no bids."""
    @property
    def best_ask(self) -> float:
        """Lowest ask price; NaN when there are no asks."""
    @property
    def bid_volume(self) -> float:
        """Sum of quantities over the best `depth` bid levels (0.0 when empty)."""
    @property
    def ask_volume(self) -> float: ...
    @property
    def band_bid_notional(self) -> float:
        """Sum of price x qty over the bids priced >= mid x (1 - band_bps/1e4),
        kept incrementally (no walk per message); equal to
        sentrycore.band.band_notional(book, band_bps)[0] up to rounding
        (relative 1e-9, tests/core/test_band_incremental.py).  0.0 when the
        band is off or either side is empty."""
    @property
    def band_ask_notional(self) -> float:
        """Same for the asks priced <= mid x (1 + band_bps/1e4)."""
    @property
    def volumes(self) -> tuple[float, float]:
        """(bid_volume, ask_volume) in one read."""
    @property
    def ratio(self) -> float:
        """ask_volume / bid_volume; inf when only asks exist, NaN when empty."""
    @property
    def bid_levels(self) -> int: ...
    @property
    def ask_levels(self) -> int: ...
    @property
    def truncated(self) -> bool:
        """True once a level was dropped for max_capacity (reset by clear/load_snapshot)."""
    def bids(self, n: int = -1) -> npt.NDArray[np.float64]:
        """(n, 2) array of (price, qty), best first; n < 0 means all levels."""
    def asks(self, n: int = -1) -> npt.NDArray[np.float64]: ...
    def __len__(self) -> int: ...
    @property
    def allocated_slots(self) -> tuple[int, int]:
        """(bid slots, ask slots) allocated now, each within [capacity, max_capacity]
        and >= the levels (and holes) the side holds."""
    @property
    def allocated_bytes(self) -> int:
        """Bytes of level storage allocated now: 16 x (bid slots + ask slots)."""
    def _storage(self) -> tuple[int, int, int, int]:
        """(bid slots, bid holes, ask slots, ask holes): internal layout, for tests."""
