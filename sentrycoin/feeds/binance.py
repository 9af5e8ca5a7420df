"""Binance spot and USD-M futures: diff-depth stream + REST snapshot.

Protocol (see ../shared/EXCHANGES.md): open a combined stream
`<ws_url>?streams=btcusdt@depth@100ms/...`, buffer the `depthUpdate` events,
GET `<rest_url>?symbol=BTCUSDT&limit=N`, then bridge the snapshot into the
buffered stream:

    spot     drop u <= L;  first applied: U <= L+1 <= u;  then U == prev u + 1
    futures  drop u <  L;  first applied: U <= L   <= u;  then pu == prev u

(L = the snapshot's lastUpdateId).  A snapshot older than the first buffered
event cannot bridge and is fetched again.  Any later break in the chain,
an undecodable depth event or a bad level invalidates that symbol's book and
starts a new snapshot for that symbol only: the connection and its other
symbols carry on.

Per-symbol state is a small slotted object.  The synced path runs for every
message, so `on_frame` is bound to `sentrycore.parse.FramePath.on_frame` and
never enters Python: it counts the frame, then `DepthParser.take` (bytes
straight into float64 buffers, symbol lookup, chain check, the book's C API,
then `MarketCore.after_message`, also C).  Any
frame that path does not take in full -- not parsed, unknown symbol, book not
synced, a sequence break, a bad value -- goes through the msgspec path
below unchanged (the parser leaves the book untouched when it declines), so
the sync, logging and counting rules live in one place.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import msgspec

from sentrycoin.feeds.base import (
    ConnectionSpec,
    FeedHandler,
    FetchSnapshot,
    apply_levels,
    chunked,
    load_levels,
)
from sentrycoin.feeds.symbols import binance_stream, to_venue
from sentrycoin.market import Market
from sentrycore.parse import ChainState, DepthParser, FramePath

log = logging.getLogger("sentrycoin.feeds.binance")

#: Binance allows up to 1024 streams on one connection.
MAX_STREAMS_PER_CONNECTION = 1024
#: Connections are cut by the server after 24 h: reconnect on our terms a little earlier.
MAX_LIFETIME_S = 24 * 3600.0 - 600.0
#: Events kept while waiting for a snapshot (100 ms events: ~10 minutes).
MAX_BUFFERED_EVENTS = 6000
#: Ask again when a requested snapshot has not arrived after this long.
SNAPSHOT_RETRY_MS = 15_000

Level = tuple[float, float]

#: What a decoder raises on bad input.  msgspec reports invalid UTF-8 inside
#: a string as UnicodeDecodeError, not DecodeError.
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


class SpotDepth(msgspec.Struct, gc=False):
    """`depthUpdate` payload (spot).  Prices/sizes arrive as strings: strict=False decodes them."""

    E: int
    s: str
    U: int
    u: int
    b: list[Level]
    a: list[Level]


class FuturesDepth(msgspec.Struct, gc=False):
    """`depthUpdate` payload (USD-M futures): adds `pu`, the previous event's `u`."""

    E: int
    s: str
    U: int
    u: int
    pu: int
    b: list[Level]
    a: list[Level]


class SpotCombined(msgspec.Struct, gc=False):
    stream: str
    data: SpotDepth


class FuturesCombined(msgspec.Struct, gc=False):
    stream: str
    data: FuturesDepth


class Envelope(msgspec.Struct):
    """Fallback shape for anything that is not a depth event (acks, other streams)."""

    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class Snapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[Level]
    asks: list[Level]


class _SymbolState(ChainState):
    """`market`, `synced` and `last_u` live in the Cython base class, where
    `DepthParser.take` reads them without Python attribute lookups."""

    __slots__ = ("symbol", "native", "conn_id", "snap_id", "buffer", "fetching", "fetch_ms")

    def __init__(self, symbol: str, native: str, market: Market, conn_id: int) -> None:
        super().__init__(market)
        self.symbol = symbol
        self.native = native
        self.conn_id = conn_id
        self.synced = False  # snapshot applied and bridged: events chain from last_u
        self.last_u = 0
        self.snap_id: int | None = None  # snapshot loaded, waiting for the bridging event
        self.buffer: list = []  # contiguous events received before the snapshot
        self.fetching = False
        self.fetch_ms: int | None = None  # when the pending request was made (None: not known yet)

    def reset(self) -> None:
        self.synced = False
        self.last_u = 0
        self.snap_id = None
        self.buffer = []


class _BinanceHandler(FeedHandler):
    """Shared machinery; the two subclasses differ only in their sequence rules."""

    venue: ClassVar[str] = ""
    combined_type: ClassVar[type] = SpotCombined
    stream_suffix: ClassVar[str] = "@depth@100ms"
    snapshot_limits: ClassVar[tuple[int, ...]] = (1000, 5000)
    #: The chain rule `DepthParser.take` checks: False U == prev u + 1
    #: (spot), True pu == prev u (futures; `_follows` below is the reference).
    pu_chain: ClassVar[bool] = False

    def __init__(
        self,
        markets: list[Market],
        ws_url: str,
        rest_url: str | None = None,
        *,
        depth: int = 50,
        max_streams_per_connection: int = MAX_STREAMS_PER_CONNECTION,
    ) -> None:
        super().__init__(markets, ws_url, rest_url)
        if rest_url is None:
            raise ValueError(f"{self.venue} needs a REST URL for depth snapshots")
        self.depth = depth
        # The stream is full depth; the snapshot bounds what we know beyond the
        # top of book.  1000 levels (weight 50 on spot) leaves a wide margin over
        # the detector's N while keeping resyncs of many symbols affordable.
        self.snapshot_limit = next((n for n in self.snapshot_limits if n >= depth), self.snapshot_limits[-1])
        log.info("%s: diff-depth %s, REST snapshot limit %d for depth %d",
                 self.venue, self.stream_suffix, self.snapshot_limit, depth)
        self._decoder = msgspec.json.Decoder(self.combined_type, strict=False)
        self._parser = DepthParser()
        self._envelope_decoder = msgspec.json.Decoder(Envelope)
        self._snapshot_decoder = msgspec.json.Decoder(Snapshot, strict=False)
        self._states: dict[str, _SymbolState] = {}  # by normal symbol
        self._by_native: dict[str, _SymbolState] = {}  # by BTCUSDT
        self._by_stream: dict[str, _SymbolState] = {}  # by btcusdt@depth@100ms
        sep = "&" if "?" in ws_url else "?"
        for conn_id, group in enumerate(chunked(list(self.markets), max_streams_per_connection)):
            streams = [binance_stream(s) + self.stream_suffix for s in group]
            self._specs.append(ConnectionSpec(
                conn_id=conn_id,
                url=f"{ws_url}{sep}streams={'/'.join(streams)}",
                symbols=list(group),
                max_lifetime_s=MAX_LIFETIME_S,
            ))
            for symbol, stream in zip(group, streams):
                native = to_venue(self.venue, symbol)
                st = _SymbolState(symbol, native, self.markets[symbol], conn_id)
                self._states[symbol] = st
                self._by_native[native] = st
                self._by_stream[stream] = st
        # The hot path in C: frames of synced books never enter Python (see
        # on_frame below, which this instance attribute stands in for).
        self._frame_path = FramePath(self._parser, self._by_native, self.pu_chain, self.counters,
                                     self._decode_frame)
        self.on_frame = self._frame_path.on_frame  # type: ignore[method-assign]

    # -- sequence rules (overridden for futures) ------------------------------

    @staticmethod
    def _follows(last_u: int, ev: SpotDepth) -> bool:
        return ev.U == last_u + 1

    @staticmethod
    def _before_snapshot(snap_id: int, ev: SpotDepth) -> bool:
        return ev.u <= snap_id

    @staticmethod
    def _bridges(snap_id: int, ev: SpotDepth) -> bool:
        return ev.U <= snap_id + 1 <= ev.u

    @staticmethod
    def _snapshot_too_old(snap_id: int, first: SpotDepth) -> bool:
        return snap_id + 1 < first.U

    # -- contract -------------------------------------------------------------

    def on_connected(self, conn_id: int) -> None:
        # The streams are named in the URL: nothing to send.  Ask for the
        # snapshots now; events are buffered until each one lands.
        for symbol in self.mark_connected(conn_id):
            st = self._states[symbol]
            st.reset()
            st.fetching = False
            self._fetch(st, None)

    def on_disconnected(self, conn_id: int) -> None:
        super().on_disconnected(conn_id)
        for st in self._states.values():
            if st.conn_id == conn_id:
                st.reset()
                st.fetching = False

    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        """Count the frame; a combined-stream event for a synced book that
        continues its chain is applied and the detector runs, all in C
        (`DepthParser.take`); anything else comes back untouched (a bad value
        included) for the reference path, `_decode_frame`.

        Each instance binds `on_frame` to `FramePath.on_frame`, which does
        exactly this without a Python call; this method is what a caller of
        the class attribute gets."""
        self._frame_path.on_frame(conn_id, data, recv_ms)

    def _decode_frame(self, data: bytes, recv_ms: int) -> None:
        """The reference path: msgspec decode, then the sync rules."""
        counters = self.counters
        try:
            ev = self._decoder.decode(data).data
        except _DECODE_ERRORS as exc:
            self._other_frame(data, exc)
            return
        st = self._by_native.get(ev.s)
        if st is None:
            counters.ignored += 1
            return
        if not st.synced:
            self._unsynced_event(st, ev, recv_ms)
            return
        # Hot path: the book is in sync and this event must continue the chain.
        if not self._follows(st.last_u, ev):
            self._resync(st, f"sequence gap: U={ev.U} u={ev.u} after u={st.last_u}", ev, recv_ms)
            return
        self._apply(st, ev, recv_ms)

    def on_snapshot(self, symbol: str, body: bytes, recv_ms: int) -> None:
        st = self._states.get(symbol)
        if st is None:
            self.counters.ignored += 1
            return
        st.fetching = False
        if st.synced or st.snap_id is not None:
            # A duplicate or late answer: the book already has a snapshot.
            self.counters.ignored += 1
            return
        try:
            snap = self._snapshot_decoder.decode(body)
        except _DECODE_ERRORS as exc:
            self.decode_error("snapshot", body, exc)
            # Through recovery: a venue that keeps answering garbage is asked
            # again with a growing delay, not as fast as the pacing allows (the
            # buffered events must not start a fetch of their own meanwhile).
            st.fetching, st.fetch_ms = True, recv_ms
            self.fail_book(symbol, "undecodable snapshot")
            return
        snap_id = snap.lastUpdateId
        buffer = st.buffer
        if buffer and self._snapshot_too_old(snap_id, buffer[0]):
            log.info("%s %s: snapshot %d older than buffered events (first U=%d), fetching again",
                     self.venue, symbol, snap_id, buffer[0].U)
            self._fetch(st, recv_ms)
            return
        try:
            load_levels(st.market.book, snap.bids, snap.asks)
        except ValueError as exc:
            st.fetching, st.fetch_ms = True, recv_ms
            self.fail_book(symbol, f"bad snapshot: {exc}")
            return
        st.snap_id = snap_id
        st.buffer = []
        for i, ev in enumerate(buffer):
            if st.synced:
                if not self._follows(st.last_u, ev):
                    self._resync(st, f"buffered gap: U={ev.U} after u={st.last_u}", ev, recv_ms)
                else:
                    self._apply(st, ev, recv_ms)
            else:
                self._unsynced_event(st, ev, recv_ms)
            if not st.synced and st.snap_id is None:
                # A resync started while replaying: the rest of the run may
                # still bridge into the next snapshot, so keep it buffered.
                st.buffer.extend(buffer[i + 1:])
                return

    # -- internals ------------------------------------------------------------

    def _apply(self, st: _SymbolState, ev: SpotDepth, recv_ms: int) -> None:
        market = st.market
        try:
            apply_levels(market.book, ev.b, ev.a)
        except ValueError as exc:
            self._resync(st, f"bad level in event u={ev.u}: {exc}", None, recv_ms)
            return
        st.last_u = ev.u
        market.after_message(ev.E)

    def _unsynced_event(self, st: _SymbolState, ev: SpotDepth, recv_ms: int) -> None:
        snap_id = st.snap_id
        if snap_id is None:
            # Waiting for a snapshot: keep a contiguous run of events.
            buffer = st.buffer
            if buffer and not self._follows(buffer[-1].u, ev):
                buffer.clear()  # the older run cannot be bridged past this hole
            buffer.append(ev)
            if len(buffer) > MAX_BUFFERED_EVENTS:
                del buffer[0]
            if not st.fetching:
                self._fetch(st, recv_ms)
            elif st.fetch_ms is None:
                st.fetch_ms = recv_ms  # asked on connect: start the retry clock now
            elif recv_ms - st.fetch_ms > SNAPSHOT_RETRY_MS:
                self._fetch(st, recv_ms)  # the answer never came: ask again
            return
        if self._before_snapshot(snap_id, ev):
            return  # already contained in the snapshot
        if not self._bridges(snap_id, ev):
            self._resync(st, f"snapshot {snap_id} does not bridge to U={ev.U} u={ev.u}", ev, recv_ms)
            return
        market = st.market
        try:
            apply_levels(market.book, ev.b, ev.a)
        except ValueError as exc:
            self._resync(st, f"bad level in event u={ev.u}: {exc}", None, recv_ms)
            return
        st.synced = True
        st.snap_id = None
        st.last_u = ev.u
        market.mark_valid()
        market.after_message(ev.E)

    def _resync(self, st: _SymbolState, reason: str, keep: SpotDepth | None, recv_ms: int) -> None:
        """Invalidate one symbol and start over from a new snapshot.

        `keep` is a well-formed event that revealed the problem: it is newer
        than anything applied, so it starts the new buffer.
        """
        self.reject(st.market, reason)
        log.info("%s %s: resync (%s)", self.venue, st.symbol, reason)
        st.reset()
        if keep is not None:
            st.buffer.append(keep)
        if not st.fetching or st.fetch_ms is None or recv_ms - st.fetch_ms > SNAPSHOT_RETRY_MS:
            self._fetch(st, recv_ms)

    def request_books(self, conn_id: int, symbols: list[str]) -> None:
        """A new REST snapshot each; events keep being buffered meanwhile."""
        for symbol in symbols:
            st = self._states[symbol]
            buffer = st.buffer if not st.synced and st.snap_id is None else []
            st.reset()
            st.buffer = buffer
            self._fetch(st, None)

    def _fetch(self, st: _SymbolState, recv_ms: int | None) -> None:
        st.fetching = True
        st.fetch_ms = recv_ms
        self.actions.append(FetchSnapshot(
            st.symbol, f"{self.rest_url}?symbol={st.native}&limit={self.snapshot_limit}"))

    def _other_frame(self, data: bytes, exc: Exception) -> None:
        """Not a well-formed depth event: an ack, another stream, or garbage."""
        try:
            env = self._envelope_decoder.decode(data)
        except _DECODE_ERRORS:
            self.decode_error("frame", data, exc)
            return
        st = self._by_stream.get(env.stream)
        if st is None:
            self.counters.ignored += 1  # {"result":null,"id":1}, other streams
            return
        # A depth event for one of our books that we cannot read: that book
        # has lost an update.
        self.decode_error("depth event", data, exc)
        if st.synced or st.snap_id is not None:
            self._resync(st, "undecodable depth event", None, st.fetch_ms or 0)


class BinanceSpotHandler(_BinanceHandler):
    venue: ClassVar[str] = "binance"
    combined_type: ClassVar[type] = SpotCombined
    snapshot_limits: ClassVar[tuple[int, ...]] = (1000, 5000)


class BinanceFuturesHandler(_BinanceHandler):
    venue: ClassVar[str] = "binance-futures"
    combined_type: ClassVar[type] = FuturesCombined
    snapshot_limits: ClassVar[tuple[int, ...]] = (1000,)  # the futures maximum
    pu_chain: ClassVar[bool] = True

    @staticmethod
    def _follows(last_u: int, ev: FuturesDepth) -> bool:  # type: ignore[override]
        return ev.pu == last_u

    @staticmethod
    def _before_snapshot(snap_id: int, ev: FuturesDepth) -> bool:  # type: ignore[override]
        return ev.u < snap_id

    @staticmethod
    def _bridges(snap_id: int, ev: FuturesDepth) -> bool:  # type: ignore[override]
        return ev.U <= snap_id <= ev.u

    @staticmethod
    def _snapshot_too_old(snap_id: int, first: FuturesDepth) -> bool:  # type: ignore[override]
        return snap_id < first.U
