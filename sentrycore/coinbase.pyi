"""Type stubs for sentrycore.coinbase (the Coinbase level2 native path)."""

from collections.abc import Callable
from typing import Any

from sentrycore.counters import FeedCounters

class SequenceState:
    """One connection's `sequence_num` follower, read and advanced by both
    the handler's reference path and `CoinbaseParser.take`."""

    last_seq: int | None
    """The last `sequence_num` seen on the connection; None before the first."""

    def __init__(self) -> None: ...

class ProductState:
    """One served product: the markets its book feeds (BTC-USD feeds BTC-USD
    and BTC-USDC) and whether a snapshot must land before updates apply."""

    awaiting: bool
    markets: list[Any]

    def __init__(self, markets: list[Any]) -> None: ...

class CoinbaseParser:
    """Reusable, allocation-free reader of the hot `l2_data` frame: one
    `update` event, levels with side bid/offer, price_level and new_quantity
    as decimal strings or bare numbers (converted exactly as float() does),
    keys in any order, JSON whitespace, unknown keys with plain values.
    Anything else (snapshots, other channels, several events, an unknown
    side, escapes, non-ASCII, nested unknown values, duplicate keys, a
    `timestamp` of another shape, trailing bytes) parses to False."""

    sequence_num: int
    event_ms: int
    """`timestamp` in Unix ms, exactly as `datetime.fromisoformat` reads it, floored to the ms."""

    def __init__(self) -> None: ...
    def parse(self, data: bytes | bytearray | memoryview) -> bool: ...
    @property
    def product_id(self) -> str | None: ...
    @property
    def bids(self) -> list[tuple[float, float]]:
        """A copy of the parsed bid levels, in message order (tests and tools)."""
    @property
    def asks(self) -> list[tuple[float, float]]: ...
    def take(self, data: bytes | bytearray | memoryview, seq: SequenceState | None,
             products: dict[str, ProductState]) -> bool:
        """The synced hot path: when `data` parses, its `sequence_num` is
        `seq.last_seq + 1`, its product maps in `products` to a ProductState
        that is not awaiting a snapshot and every level passes the book's
        checks: set `seq.last_seq`, apply the levels to every market's book
        and run `after_message(event_ms)` on each, returning True.  Otherwise
        False with nothing touched.  Raises only what `after_message` raises."""

class CoinbaseFramePath:
    """The Coinbase handler's `on_frame` in C: counts the frame in `counters`,
    runs `parser.take(data, sequences.get(conn_id), products)` and calls
    `fallback(conn_id, data, recv_ms)` when that declines; when
    `after_message` raises, `internal_error(conn_id, data)` is called from
    inside the except block (the handler logs, counts and resyncs)."""

    def __init__(
        self,
        parser: CoinbaseParser,
        sequences: dict[int, SequenceState],
        products: dict[str, ProductState],
        counters: FeedCounters,
        fallback: Callable[[int, bytes, int], None],
        internal_error: Callable[[int, bytes], None],
    ) -> None: ...
    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None: ...
