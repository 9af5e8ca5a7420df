"""The contract between frame sources and venue protocol handlers.

A `FeedHandler` is sans-I/O: it never opens a socket.  It is told what
arrived (`on_frame`, `on_snapshot`, `on_connected`, `on_disconnected`) and
answers by mutating its markets' books and by queueing `Action`s (send a
frame, fetch a REST snapshot, reconnect) that the frame source carries out.
The same handler therefore runs unchanged behind the live transport
(`sentrycoin.transport`), the simulated market (`sentrycoin.sim`) and replay
(`sentrycoin.replay`): only the source of frames differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Union

from sentrycoin.market import Market


@dataclass(slots=True)
class ConnectionSpec:
    """One WebSocket connection the handler wants open."""

    conn_id: int
    url: str
    symbols: list[str]  # normal form BASE-QUOTE
    # Application-level keepalive: payload to send every ping_interval_s (None: none needed).
    ping_payload: bytes | str | None = None
    ping_interval_s: float | None = None
    # Planned reconnect before the venue's forced disconnect (None: never).
    max_lifetime_s: float | None = None


@dataclass(slots=True, frozen=True)
class Send:
    conn_id: int
    payload: bytes | str


@dataclass(slots=True, frozen=True)
class FetchSnapshot:
    """GET `url`; hand the body to `on_snapshot(symbol, body, recv_ms)`."""

    symbol: str
    url: str


@dataclass(slots=True, frozen=True)
class Reconnect:
    conn_id: int
    reason: str


Action = Union[Send, FetchSnapshot, Reconnect]


@dataclass(slots=True)
class FeedCounters:
    frames: int = 0
    bytes: int = 0
    decode_errors: int = 0
    ignored: int = 0  # well-formed frames that carry no book data (acks, heartbeats, tickers)
    checksum_skipped: int = 0


class FeedHandler:
    """Base class; one subclass per venue in sentrycoin/feeds/<venue>.py."""

    #: Venue name as used on the command line, in config and in /status.
    venue: ClassVar[str] = ""

    def __init__(self, markets: list[Market], ws_url: str, rest_url: str | None = None) -> None:
        self.markets: dict[str, Market] = {m.symbol: m for m in markets}
        self.ws_url = ws_url
        self.rest_url = rest_url
        self.counters = FeedCounters()
        self.actions: list[Action] = []

    # -- what the source asks ---------------------------------------------

    def connections(self) -> list[ConnectionSpec]:
        raise NotImplementedError

    def take_actions(self) -> list[Action]:
        actions, self.actions = self.actions, []
        return actions

    # -- what the source tells --------------------------------------------

    def on_connected(self, conn_id: int) -> None:
        """The connection is open: queue the subscribe frames."""
        raise NotImplementedError

    def on_disconnected(self, conn_id: int) -> None:
        """The connection dropped: its books can no longer be trusted."""
        for spec in self.connections():
            if spec.conn_id == conn_id:
                for symbol in spec.symbols:
                    market = self.markets[symbol]
                    market.connected = False
                    market.invalidate("disconnected")

    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        raise NotImplementedError

    def on_snapshot(self, symbol: str, body: bytes, recv_ms: int) -> None:
        raise NotImplementedError(f"{self.venue} takes no REST snapshots")
