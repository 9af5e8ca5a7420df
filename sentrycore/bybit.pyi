"""Type stubs for sentrycore.bybit (the Cython path of Bybit v5 orderbook deltas)."""

from collections.abc import Callable
from typing import TypeVar

from sentrycore.counters import FeedCounters
from sentrycore.parse import ChainState

_State = TypeVar("_State", bound=ChainState)

class BybitFramePath:
    """A Bybit handler's `on_frame`, in C, for the synced hot path.

    `on_frame(conn_id, data, recv_ms)` counts the frame in `counters`; a
    `delta` message on topic `orderbook.<depth>.<s>` whose `s` maps in
    `routes` to a synced `ChainState` and whose `u == last_u + 1` (and
    `u != 1`: that is a restart snapshot) is applied to `state.book`,
    `state.last_u = u`, and `state.market.after_message(ts)` runs.  Anything
    else -- not parsed, snapshots, unknown symbols, gaps, bad values -- goes
    untouched to `fallback(conn_id, data, recv_ms)`, the handler's reference path.

    The parser accepts a strict subset of what msgspec accepts: keys in any
    order, JSON whitespace, unknown keys with plain values, levels
    `[price, qty]` as decimal strings or bare numbers (converted exactly as
    float() does).  Escapes, non-ASCII, nested unknown values, duplicate keys,
    missing fields and trailing bytes are declined.
    """

    ts: int
    u: int
    taken: int
    """Frames applied in C since construction."""

    def __init__(self, depth: int, routes: dict[str, _State], counters: FeedCounters,
                 fallback: Callable[[int, bytes, int], None]) -> None: ...
    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None: ...
    def parse(self, data: bytes | bytearray | memoryview) -> int:
        """1 when `data` is a delta message of this path's topic shape (fields
        readable below), else 0.  Never raises."""
    @property
    def symbol(self) -> str | None: ...
    @property
    def bids(self) -> list[tuple[float, float]]: ...
    @property
    def asks(self) -> list[tuple[float, float]]: ...
