"""Binance spot and USD-M futures: diff-depth stream bridged to a REST snapshot.

Both markets keep a book the same way (see ../../shared/EXCHANGES.md and the
venue's "How to manage a local order book correctly"):

1. open the combined stream `<sym>@depth@100ms` and buffer its events;
2. on a symbol's first buffered event, fetch the REST depth snapshot;
3. a snapshot older than the buffer (it cannot bridge to the first buffered
   event) is fetched again; otherwise buffered events it already contains are
   dropped and the rest are applied;
4. from then on every event must chain to the previous one, or the symbol
   starts again from step 1 (the connection stays up: only that book resyncs).

The two markets differ only in the rules of steps 3 and 4:

| rule                        | spot                       | USD-M futures            |
|-----------------------------|----------------------------|--------------------------|
| event already in snapshot   | `u <= lastUpdateId`        | `u < lastUpdateId`       |
| first event bridges         | `U <= lastUpdateId+1 <= u` | `U <= lastUpdateId <= u` |
| next event chains           | `U == previous u + 1`      | `pu == previous u`       |

The sync rule of spot is the one the real recordings in shared/realdata obey
(a snapshot at `lastUpdateId` is followed by an event with
`U == lastUpdateId + 1`).  USD-M depth streams are served under the routed
path `/public` of fstream.binance.com (the venue's current routing), hence the
default WebSocket URL.

Events that repeat ids already applied (`u <=` previous `u`) are dropped
without a resync: their content is in the book already.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import ClassVar

import msgspec

from sentrycoin.feeds.base import ConnectionSpec, FeedHandler, FetchSnapshot
from sentrycoin.feeds.common import ConnectionLayout, Level, apply_levels
from sentrycoin.market import Market

log = logging.getLogger("sentrycoin.feeds.binance")


class DepthEvent(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    """One diff-depth event (`pu` only on futures)."""

    E: int
    s: str
    U: int
    u: int
    b: list[tuple[float, float]]
    a: list[tuple[float, float]]
    pu: int = -1


class _Combined(msgspec.Struct):
    stream: str
    data: DepthEvent


class DepthSnapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    E: int = 0  # futures only


# Decimal strings are coerced to floats while decoding (strict=False): no
# intermediate Python str per level.
_decode_combined = msgspec.json.Decoder(_Combined, strict=False).decode
_decode_event = msgspec.json.Decoder(DepthEvent, strict=False).decode
_decode_snapshot = msgspec.json.Decoder(DepthSnapshot, strict=False).decode
_decode_any = msgspec.json.decode


class _SymbolSync:
    """Sync state of one symbol's book."""

    __slots__ = ("market", "venue_symbol", "synced", "bridged", "last_u", "buffer",
                 "snapshot_requested_ms")

    def __init__(self, market: Market, venue_symbol: str) -> None:
        self.market = market
        self.venue_symbol = venue_symbol
        self.buffer: deque[DepthEvent] = deque()
        self.reset()

    def reset(self) -> None:
        self.synced = False  # snapshot applied and every later event chained
        self.bridged = False  # the first event after the snapshot has been applied
        self.last_u = -1
        self.buffer.clear()
        self.snapshot_requested_ms: int | None = None


class BinanceSpotFeed(FeedHandler):
    """Binance spot (`wss://stream.binance.com:9443`, `/api/v3/depth`)."""

    venue: ClassVar[str] = "binance"
    DEFAULT_WS_URL: ClassVar[str] = "wss://stream.binance.com:9443"
    DEFAULT_REST_URL: ClassVar[str] = "https://api.binance.com"
    DEPTH_PATH: ClassVar[str] = "/api/v3/depth"
    #: Snapshot depth.  1000 is ample for top-N sums and costs 50 request
    #: weight (5000 costs 250 of the 6000 per minute).
    DEFAULT_SNAPSHOT_LIMIT: ClassVar[int] = 1000
    #: The venue allows 1024 streams per connection; fewer keeps one drop small.
    DEFAULT_SYMBOLS_PER_CONNECTION: ClassVar[int] = 200
    #: Binance ends every connection after 24 h: reconnect on our own terms first.
    MAX_LIFETIME_S: ClassVar[float] = 23.5 * 3600

    def __init__(
        self,
        markets: list[Market],
        ws_url: str | None = None,
        rest_url: str | None = None,
        *,
        update_speed_ms: int = 100,
        snapshot_limit: int | None = None,
        symbols_per_connection: int | None = None,
        snapshot_timeout_ms: int = 30_000,
        max_buffer: int = 5_000,
    ) -> None:
        super().__init__(markets, (ws_url or self.DEFAULT_WS_URL).rstrip("/"),
                         (rest_url or self.DEFAULT_REST_URL).rstrip("/"))
        if update_speed_ms not in (100, 250, 500, 1000):
            raise ValueError(f"update_speed_ms must be 100, 250, 500 or 1000, got {update_speed_ms}")
        self.stream_suffix = "@depth" if update_speed_ms == self._plain_speed_ms() else f"@depth@{update_speed_ms}ms"
        self.snapshot_limit = snapshot_limit or self.DEFAULT_SNAPSHOT_LIMIT
        self.snapshot_timeout_ms = snapshot_timeout_ms
        self.max_buffer = max_buffer
        self._syncs: dict[str, _SymbolSync] = {}  # by normal symbol
        self._by_venue: dict[str, _SymbolSync] = {}  # by venue symbol, as in events
        for symbol, market in self.markets.items():
            sync = _SymbolSync(market, self.venue_symbol(symbol))
            self._syncs[symbol] = sync
            self._by_venue[sync.venue_symbol] = sync
        self.layout = ConnectionLayout(
            self.markets, symbols_per_connection or self.DEFAULT_SYMBOLS_PER_CONNECTION, self._spec)

    # -- naming -------------------------------------------------------------

    @staticmethod
    def venue_symbol(symbol: str) -> str:
        """Normal form BASE-QUOTE -> Binance's BASEQUOTE."""
        return symbol.replace("-", "").upper()

    @staticmethod
    def _plain_speed_ms() -> int:
        """Update speed of the bare `<sym>@depth` stream."""
        return 1000

    def _spec(self, conn_id: int, symbols: list[str]) -> ConnectionSpec:
        streams = "/".join(self.venue_symbol(s).lower() + self.stream_suffix for s in symbols)
        return ConnectionSpec(
            conn_id=conn_id,
            url=f"{self.ws_url}/stream?streams={streams}",
            symbols=symbols,
            max_lifetime_s=self.MAX_LIFETIME_S,
        )

    def snapshot_url(self, symbol: str) -> str:
        return f"{self.rest_url}{self.DEPTH_PATH}?symbol={self.venue_symbol(symbol)}&limit={self.snapshot_limit}"

    # -- the sync rules (futures overrides these three) ----------------------

    @staticmethod
    def _already_in_snapshot(ev: DepthEvent, last_update_id: int) -> bool:
        return ev.u <= last_update_id

    @staticmethod
    def _bridges(ev: DepthEvent, last_update_id: int) -> bool:
        return ev.U <= last_update_id + 1 <= ev.u

    @staticmethod
    def _chains(ev: DepthEvent, prev_u: int) -> bool:
        return ev.U == prev_u + 1

    # -- FeedHandler ---------------------------------------------------------

    def connections(self) -> list[ConnectionSpec]:
        return self.layout.specs

    def on_connected(self, conn_id: int) -> None:
        # The streams are named in the URL: nothing to send.  Books start
        # buffering; each asks for its snapshot on its first event.
        for symbol in self.layout.connected(conn_id):
            self._syncs[symbol].reset()

    def on_disconnected(self, conn_id: int) -> None:
        super().on_disconnected(conn_id)
        for symbol in self.layout.symbols_of(conn_id):
            self._syncs[symbol].reset()

    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        counters = self.counters
        counters.frames += 1
        counters.bytes += len(data)
        try:
            ev = _decode_combined(data).data
        except msgspec.ValidationError:
            ev = self._not_combined(data)
            if ev is None:
                return
        except msgspec.DecodeError:
            counters.decode_errors += 1
            return
        sync = self._by_venue.get(ev.s)
        if sync is None:
            counters.ignored += 1
            return
        if sync.synced:
            self._apply_event(sync, ev, recv_ms, live=True)
        else:
            self._buffer(sync, ev, recv_ms)

    def on_snapshot(self, symbol: str, body: bytes, recv_ms: int) -> None:
        sync = self._syncs.get(symbol)
        if sync is None or sync.synced or sync.snapshot_requested_ms is None:
            # Unasked for, or a late answer to a request a reconnect made moot.
            self.counters.ignored += 1
            return
        try:
            snap = _decode_snapshot(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.counters.decode_errors += 1
            log.warning("%s %s: unreadable depth snapshot (%s)", self.venue, symbol, exc)
            sync.snapshot_requested_ms = None  # the next event asks again
            return
        sync.snapshot_requested_ms = None
        market = sync.market
        buffer = sync.buffer
        if buffer and not self._bridges(buffer[0], snap.lastUpdateId) and \
                not self._already_in_snapshot(buffer[0], snap.lastUpdateId):
            # Older than everything buffered: ids are missing between the two.
            log.info("%s %s: snapshot %d older than first buffered event U=%d, fetching again",
                     self.venue, symbol, snap.lastUpdateId, buffer[0].U)
            self._request_snapshot(sync, recv_ms)
            return
        try:
            market.book.load_snapshot(snap.bids, snap.asks)
        except ValueError as exc:
            market.rejected += 1
            log.warning("%s %s: snapshot refused (%s)", self.venue, symbol, exc)
            return  # the next event asks again
        sync.synced = True
        sync.bridged = False
        sync.last_u = snap.lastUpdateId
        event_ms = snap.E or recv_ms
        pending = list(buffer)
        buffer.clear()
        for i, ev in enumerate(pending):
            self._apply_event(sync, ev, recv_ms, live=False)
            if not sync.synced:
                # A bad value or a hole inside the buffer: keep what follows.
                for later in pending[i + 1:]:
                    self._buffer(sync, later, recv_ms)
                return
            if sync.bridged:
                event_ms = ev.E
        market.mark_valid()
        market.after_message(event_ms)

    # -- internals -------------------------------------------------------------

    def _not_combined(self, data: bytes) -> DepthEvent | None:
        """Classify a frame that is not a combined depth event."""
        try:
            return _decode_event(data)  # a raw-stream (`/ws/...`) depth event
        except msgspec.ValidationError:
            pass
        except msgspec.DecodeError:
            self.counters.decode_errors += 1
            return None
        obj = _decode_any(data)
        event = obj.get("data", obj) if isinstance(obj, dict) else None
        if isinstance(event, dict) and event.get("e") == "depthUpdate":
            # A depth event we cannot read: its ids are lost, so is the chain.
            self.counters.decode_errors += 1
            sync = self._by_venue.get(str(event.get("s", "")))
            if sync is not None:
                self._resync(sync, "unreadable depth event")
            return None
        if isinstance(obj, dict) and obj.get("error"):
            log.warning("%s: venue error %s", self.venue, obj["error"])
        self.counters.ignored += 1  # e.g. {"result": null, "id": 1}, other streams
        return None

    def _request_snapshot(self, sync: _SymbolSync, recv_ms: int) -> None:
        sync.snapshot_requested_ms = recv_ms
        symbol = sync.market.symbol
        self.actions.append(FetchSnapshot(symbol, self.snapshot_url(symbol)))

    def _buffer(self, sync: _SymbolSync, ev: DepthEvent, recv_ms: int) -> None:
        buffer = sync.buffer
        if buffer:
            prev = buffer[-1]
            if ev.u <= prev.u:
                self.counters.ignored += 1  # repeats ids already buffered
                return
            if not self._chains(ev, prev.u):
                buffer.clear()  # a hole: what came before it is of no use
        buffer.append(ev)
        if len(buffer) > self.max_buffer:
            buffer.popleft()
        requested = sync.snapshot_requested_ms
        if requested is None or recv_ms - requested > self.snapshot_timeout_ms:
            self._request_snapshot(sync, recv_ms)

    def _apply_event(self, sync: _SymbolSync, ev: DepthEvent, recv_ms: int, *, live: bool) -> None:
        market = sync.market
        last = sync.last_u
        if sync.bridged:
            if ev.u <= last:
                self.counters.ignored += 1
                return
            in_order = self._chains(ev, last)
        else:
            if self._already_in_snapshot(ev, last):
                return
            in_order = self._bridges(ev, last)
        if not in_order:
            market.rejected += 1
            what = "pu" if ev.pu >= 0 else "U"
            self._resync(sync, f"sequence gap: previous u={last}, event {what}={ev.pu if ev.pu >= 0 else ev.U}")
            self._buffer(sync, ev, recv_ms)
            return
        try:
            apply_levels(market.book, ev.b, ev.a)
        except ValueError as exc:
            market.rejected += 1
            self._resync(sync, f"bad level: {exc}")
            return
        sync.last_u = ev.u
        sync.bridged = True
        if live:
            market.after_message(ev.E)

    def _resync(self, sync: _SymbolSync, reason: str) -> None:
        """This book can no longer be trusted: back to buffering for a new snapshot."""
        sync.market.invalidate(reason)
        sync.reset()


class BinanceFuturesFeed(BinanceSpotFeed):
    """Binance USD-M futures (`wss://fstream.binance.com/public`, `/fapi/v1/depth`)."""

    venue: ClassVar[str] = "binance-futures"
    DEFAULT_WS_URL: ClassVar[str] = "wss://fstream.binance.com/public"
    DEFAULT_REST_URL: ClassVar[str] = "https://fapi.binance.com"
    DEPTH_PATH: ClassVar[str] = "/fapi/v1/depth"
    #: limit 1000 costs 20 request weight on fapi.
    DEFAULT_SNAPSHOT_LIMIT: ClassVar[int] = 1000

    @staticmethod
    def venue_symbol(symbol: str) -> str:
        """BASE-QUOTE (or BASE-QUOTE-PERP) -> the perpetual's BASEQUOTE."""
        symbol = symbol.upper()
        if symbol.endswith("-PERP"):
            symbol = symbol[: -len("-PERP")]
        return symbol.replace("-", "")

    @staticmethod
    def _plain_speed_ms() -> int:
        return 250

    @staticmethod
    def _already_in_snapshot(ev: DepthEvent, last_update_id: int) -> bool:
        return ev.u < last_update_id

    @staticmethod
    def _bridges(ev: DepthEvent, last_update_id: int) -> bool:
        return ev.U <= last_update_id <= ev.u

    @staticmethod
    def _chains(ev: DepthEvent, prev_u: int) -> bool:
        return ev.pu == prev_u
