"""Type stubs for sentrycore.parse (the Cython Binance depthUpdate parser)."""

from collections.abc import Callable
from typing import Any, TypeVar

from sentrycore.book import OrderBook
from sentrycore.counters import FeedCounters

# A real dict (read in C), of ChainState or a handler's subclass of it.
_State = TypeVar("_State", bound=ChainState)

class ChainState:
    """Per-symbol sync state of a sequenced diff-depth stream, read and
    advanced in C by `DepthParser.take`.  Feed handlers subclass it."""

    synced: bool
    """A snapshot is applied and bridged: events chain from `last_u`."""
    last_u: int
    """Final update id of the last applied event."""
    market: Any
    """The sentrycoin Market: `after_message(E)` runs after each applied event."""
    book: OrderBook | None
    """`market.book`, captured by __init__ (a Market never replaces its book)."""

    def __init__(self, market: Any = None) -> None: ...

class DepthParser:
    """Reusable, allocation-free parser for Binance diff-depth frames.

    `parse(data)` reads a combined-stream frame (`{"stream": ..., "data":
    {...}}`) or a raw `depthUpdate` event (spot: E, s, U, u, b, a; futures adds
    T, pu) into preallocated float64 buffers (grown when a frame has more
    levels).  It accepts a strict subset of what msgspec accepts -- keys in any
    order, JSON whitespace, unknown keys with plain values, prices/quantities
    as decimal strings (`123.45`) or bare JSON numbers -- and converts numbers
    exactly as Python's float() does.  Anything else (escapes, non-ASCII, signs,
    leading zeros, nested unknown values, duplicate keys, missing fields,
    trailing bytes, numbers beyond the double range or over 96 characters)
    returns 0, "not parsed": decode it with msgspec instead.

    The fields below describe the last parse and are meaningless after one
    that returned 0.
    """

    kind: int
    """0 not parsed, 1 combined-stream frame, 2 raw event."""
    E: int
    U: int
    u: int
    pu: int
    """Futures' previous final update id; valid only when `has_pu`."""
    has_pu: bool

    def __init__(self) -> None: ...
    def parse(self, data: bytes | bytearray | memoryview) -> int:
        """Parse one frame; returns `kind`.  Never raises.

        Two readers: first one of Binance's exact layout (no whitespace, its
        key order, `"I.FFFFFFFF"` numbers), which declines at the first byte
        that differs; then the key-order-agnostic reader, the definition.
        Both give the same result on every frame the first accepts."""
    def parse_binance_layout(self, data: bytes | bytearray | memoryview) -> int:
        """`parse` with only the Binance-layout reader: 1, or 0 where it is
        unsure (for tests and benches: the two readers must agree)."""
    def parse_any_layout(self, data: bytes | bytearray | memoryview) -> int:
        """`parse` with only the key-order-agnostic reader (the definition)."""
    def apply_to(self, book: OrderBook) -> bool:
        """Apply the parsed bids and asks to `book` with one `OrderBook.c_apply`
        call, which validates both sides first (0 < price <= MAX_PRICE,
        0 <= quantity <= MAX_QTY, see sentrycore.book): on a bad value returns
        False and leaves the book untouched.  False too after a failed parse."""
    def apply_next(self, book: OrderBook, last_u: int, pu_chain: bool) -> bool:
        """`apply_to` only when the event continues a chain ending at `last_u`:
        `U == last_u + 1` (spot), or with `pu_chain`, `pu == last_u` (futures)."""
    def take(self, data: bytes | bytearray | memoryview, routes: dict[str, _State], pu_chain: bool) -> bool:
        """The whole synced hot path: parse; when it is a combined-stream event
        whose `s` maps in `routes` to a synced ChainState and continues its
        chain, apply it to `state.book`, set `state.last_u = u` and call
        `state.market.after_message(E)`, returning True.  Otherwise False with
        nothing touched (the caller runs its reference path).  Raises only
        what `after_message` raises."""
    @property
    def valid(self) -> bool:
        """Parsed, and every level would pass the book's checks."""
    @property
    def symbol(self) -> str | None:
        """The event's `s`; the same str object is returned while it repeats."""
    @property
    def n_bids(self) -> int: ...
    @property
    def n_asks(self) -> int: ...
    @property
    def bids(self) -> list[tuple[float, float]]:
        """A copy of the parsed bid levels (for tests and tools, not the hot path)."""
    @property
    def asks(self) -> list[tuple[float, float]]: ...


class FramePath:
    """A Binance-style handler's `on_frame` in C: counts the frame in
    `counters`, runs `parser.take(data, routes, pu_chain)`, and calls
    `fallback(data, recv_ms)` when that declines."""

    def __init__(
        self,
        parser: DepthParser,
        routes: dict[str, _State],
        pu_chain: bool,
        counters: FeedCounters,
        fallback: Callable[[bytes, int], None],
    ) -> None: ...
    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None: ...
