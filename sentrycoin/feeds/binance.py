"""Binance spot and USD-M futures: diff-depth stream + REST snapshot.

Protocol (see ../shared/EXCHANGES.md): open the combined-stream endpoint
`<ws_url>` and subscribe with `{"method":"SUBSCRIBE","params":[...],"id":n}`
messages (at most `STREAMS_PER_SUBSCRIBE` streams each; the transport keeps
them under Binance's 5 messages/s), not with a URL naming every stream
(1024 streams make a ~20 KB URL).  Buffer the `depthUpdate` events; once
Binance acknowledges a subscribe (`{"result":null,"id":n}`), its streams
are live and a snapshot fetched now is newer than the first buffered event:
GET `<rest_url>?symbol=BTCUSDT&limit=N`, then bridge the snapshot into the
buffered stream:

    spot     drop u <= L;  first applied: U <= L+1 <= u;  then U == prev u + 1
    futures  drop u <  L;  first applied: U <= L   <= u;  then pu == prev u

(L = the snapshot's lastUpdateId).  A snapshot older than the first buffered
event cannot bridge and is fetched again.  Once synced, an event whose `u`
is not past the book's last id is already applied and is ignored, not a gap:
that is what lets two sockets carry the same streams during a switch-over.  Any later break in the chain,
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

`{"e":"serverShutdown"}` (maintenance ahead) queues a make-before-break
`Reconnect`: the transport opens the replacement socket, the handler
subscribes it (`on_switched`: no state is reset), both sockets deliver for
a short overlap -- update ids are the venue's, so the two streams chain and
duplicates are skipped -- and only then is the old socket closed.  The books
stay valid throughout.  `frame_sink(conn_id)` gives the transport a frame
path that knows its connection, so this costs the hot path nothing.

Budgets: USD-M futures keeps to 200 streams per connection, spot to 1024.
REST snapshot weight (`request_weight`) and the IP budget per window
(`rest_weight_limit`) are read by the live runner, which paces snapshot
requests on the weight Binance reports (see sentrycoin/live.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import msgspec

from sentrycoin.feeds.base import (
    ConnectionSpec,
    FeedHandler,
    FetchSnapshot,
    Reconnect,
    Send,
    apply_levels,
    chunked,
    load_levels,
)
from sentrycoin.feeds.symbols import binance_stream, to_venue
from sentrycoin.market import Market
from sentrycore.parse import ChainState, DepthParser, FramePath

log = logging.getLogger("sentrycoin.feeds.binance")

#: Binance spot allows up to 1024 streams on one connection.
MAX_STREAMS_PER_CONNECTION = 1024
#: USD-M futures: keep to 200 streams per connection (copies of the docs say 200 or 1024).
FUTURES_MAX_STREAMS_PER_CONNECTION = 200
#: Streams named in one SUBSCRIBE message (keeps each frame a few KB).
STREAMS_PER_SUBSCRIBE = 200
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
    """Fallback shape for anything that is not a depth event (acks, other streams, events)."""

    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")
    e: str = ""  # a raw (unwrapped) event: {"e":"serverShutdown",...}
    id: int | None = None  # a reply to one of our requests
    error: msgspec.Raw = msgspec.Raw(b"null")


class EventType(msgspec.Struct):
    e: str = ""


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
    max_streams_per_connection: ClassVar[int] = MAX_STREAMS_PER_CONNECTION
    #: The IP's REST weight budget per window (weight, seconds), read by the live runner.
    rest_weight_limit: ClassVar[tuple[int, float]] = (6000, 60.0)
    #: The chain rule `DepthParser.take` checks: False U == prev u + 1
    #: (spot), True pu == prev u (futures; `_follows` below is the reference).
    pu_chain: ClassVar[bool] = False

    @classmethod
    def book_levels(cls, depth: int) -> int:
        """The REST snapshot's limit: books start there, the diffs grow them."""
        return next((n for n in cls.snapshot_limits if n >= depth), cls.snapshot_limits[-1])

    def __init__(
        self,
        markets: list[Market],
        ws_url: str,
        rest_url: str | None = None,
        *,
        depth: int = 50,
        max_streams_per_connection: int | None = None,
    ) -> None:
        super().__init__(markets, ws_url, rest_url)
        if rest_url is None:
            raise ValueError(f"{self.venue} needs a REST URL for depth snapshots")
        self.depth = depth
        # The stream is full depth; the snapshot bounds what we know beyond the
        # top of book.  1000 levels (weight 50 on spot) leaves a wide margin over
        # the detector's N while keeping resyncs of many symbols affordable.
        self.snapshot_limit = self.book_levels(depth)
        log.info("%s: diff-depth %s, REST snapshot limit %d (weight %d) for depth %d",
                 self.venue, self.stream_suffix, self.snapshot_limit,
                 self.request_weight(self.snapshot_limit), depth)
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(self.combined_type, strict=False)
        self._parser = DepthParser()
        self._envelope_decoder = msgspec.json.Decoder(Envelope)
        self._event_decoder = msgspec.json.Decoder(EventType)
        self._snapshot_decoder = msgspec.json.Decoder(Snapshot, strict=False)
        self._states: dict[str, _SymbolState] = {}  # by normal symbol
        self._by_native: dict[str, _SymbolState] = {}  # by BTCUSDT
        self._by_stream: dict[str, _SymbolState] = {}  # by btcusdt@depth@100ms
        per_connection = max_streams_per_connection or self.max_streams_per_connection
        self._streams_of: dict[int, list[str]] = {}
        for conn_id, group in enumerate(chunked(list(self.markets), per_connection)):
            streams = [binance_stream(s) + self.stream_suffix for s in group]
            self._streams_of[conn_id] = streams
            self._specs.append(ConnectionSpec(
                conn_id=conn_id, url=ws_url, symbols=list(group), max_lifetime_s=MAX_LIFETIME_S))
            for symbol, stream in zip(group, streams, strict=True):
                native = to_venue(self.venue, symbol)
                st = _SymbolState(symbol, native, self.markets[symbol], conn_id)
                self._states[symbol] = st
                self._by_native[native] = st
                self._by_stream[stream] = st
        # SUBSCRIBE request id -> (conn_id, symbols) until Binance answers it.
        self._requests: dict[int, tuple[int, list[str]]] = {}
        self._next_id = 1
        self.switchovers = 0  # serverShutdown switch-overs asked for
        # The hot path in C: frames of synced books never enter Python (see
        # on_frame below, which this instance attribute stands in for).
        self._frame_path = FramePath(self._parser, self._by_native, self.pu_chain, self.counters,
                                     self._decode_frame)
        self.on_frame = self._frame_path.on_frame  # type: ignore[method-assign]
        self._default_on_frame = self.on_frame
        self._sinks: dict[int, Callable[[int, bytes, int], None]] = {}

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

    @classmethod
    def request_weight(cls, limit: int) -> int:
        """REST weight of one depth snapshot of `limit` levels (spot: 5 / 25 / 50 / 250)."""
        if limit <= 100:
            return 5
        if limit <= 500:
            return 25
        if limit <= 1000:
            return 50
        return 250

    def snapshot_weight(self, action: FetchSnapshot) -> int:
        """Weight the venue charges for `action` (every request this handler makes is a depth snapshot)."""
        return self.request_weight(self.snapshot_limit)

    def frame_sink(self, conn_id: int) -> Callable[[int, bytes, int], None]:
        """`on_frame` for one connection: the same C path, with a fallback that knows `conn_id`.

        When something wrapped `on_frame` (the recorder's tee), frames must go
        through the wrapper: it is returned instead (a serverShutdown then
        switches every connection, as on the handler-wide path).
        """
        if self.on_frame is not self._default_on_frame:
            return self.on_frame
        sink = self._sinks.get(conn_id)
        if sink is None:
            path = FramePath(self._parser, self._by_native, self.pu_chain, self.counters,
                             partial(self._decode_frame, conn_id=conn_id))
            sink = self._sinks[conn_id] = path.on_frame
        return sink

    def on_connected(self, conn_id: int) -> None:
        # Subscribe; each snapshot is asked for once its stream is live (the
        # SUBSCRIBE reply, or the first event, whichever comes first).
        for symbol in self.mark_connected(conn_id):
            st = self._states[symbol]
            st.reset()
            st.fetching = False
        self._subscribe(conn_id)

    def on_switched(self, conn_id: int) -> None:
        """A replacement socket for `conn_id` is open beside the old one: subscribe it.

        Nothing is reset: the streams carry the venue's update ids, so the
        new socket's events continue the books' chains (or are skipped as
        already applied) and the old socket can close without a gap.
        """
        self._subscribe(conn_id)

    def _subscribe(self, conn_id: int) -> None:
        streams = self._streams_of.get(conn_id, [])
        for chunk in chunked(streams, STREAMS_PER_SUBSCRIBE):
            request_id = self._next_id
            self._next_id += 1
            self._requests[request_id] = (conn_id, [self._by_stream[s].symbol for s in chunk])
            self.actions.append(Send(conn_id, msgspec.json.encode(
                {"method": "SUBSCRIBE", "params": chunk, "id": request_id}).decode()))

    def _reply(self, env: Envelope) -> None:
        """Binance answered a SUBSCRIBE: fetch the snapshots its streams now allow."""
        request = self._requests.pop(env.id, None) if env.id is not None else None
        if request is None:
            self.counters.ignored += 1
            return
        conn_id, symbols = request
        if bytes(env.error) != b"null":
            reason = f"subscribe refused: {bytes(env.error)[:160].decode('utf-8', 'replace')}"
            self._log_throttle.log(log, logging.WARNING, "subscribe-error", "%s conn %d: %s",
                                   self.venue, conn_id, reason)
            for symbol in symbols:
                self.markets[symbol].invalidate(reason)
            return
        self.counters.ignored += 1
        for symbol in symbols:
            st = self._states[symbol]
            if not st.synced and st.snap_id is None and not st.fetching:
                self._fetch(st, None)

    def _server_shutdown(self, conn_id: int | None) -> None:
        """Maintenance ahead: replace the connection(s) before the venue drops them."""
        targets = [conn_id] if conn_id is not None else [spec.conn_id for spec in self._specs]
        log.warning("%s: serverShutdown on connection(s) %s: switching to a new connection",
                    self.venue, targets)
        for target in targets:
            self.switchovers += 1
            self.actions.append(Reconnect(target, "serverShutdown", make_before_break=True))

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

    def _decode_frame(self, data: bytes, recv_ms: int, conn_id: int | None = None) -> None:
        """The reference path: msgspec decode, then the sync rules."""
        counters = self.counters
        try:
            ev = self._decoder.decode(data).data
        except _DECODE_ERRORS as exc:
            self._other_frame(data, exc, conn_id)
            return
        st = self._by_native.get(ev.s)
        if st is None:
            counters.ignored += 1
            return
        if not st.synced:
            self._unsynced_event(st, ev, recv_ms)
            return
        if ev.u <= st.last_u:
            counters.ignored += 1  # already applied (a repeat, or the other socket of a switch-over)
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

    def _other_frame(self, data: bytes, exc: Exception, conn_id: int | None = None) -> None:
        """Not a well-formed depth event: a reply, an event, another stream, or garbage."""
        try:
            env = self._envelope_decoder.decode(data)
        except _DECODE_ERRORS:
            self.decode_error("frame", data, exc)
            return
        event = env.e
        if not event and env.stream:
            try:
                event = self._event_decoder.decode(env.data).e
            except _DECODE_ERRORS:
                event = ""
        if event == "serverShutdown":
            self.counters.ignored += 1
            self._server_shutdown(conn_id)
            return
        if env.id is not None:
            self._reply(env)
            return
        st = self._by_stream.get(env.stream)
        if st is None:
            self.counters.ignored += 1  # other streams
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
    max_streams_per_connection: ClassVar[int] = FUTURES_MAX_STREAMS_PER_CONNECTION
    rest_weight_limit: ClassVar[tuple[int, float]] = (2400, 60.0)
    pu_chain: ClassVar[bool] = True

    @classmethod
    def request_weight(cls, limit: int) -> int:
        """USD-M depth weight: limit 5-50 -> 2, 100 -> 5, 500 -> 10, 1000 -> 20."""
        if limit <= 50:
            return 2
        if limit <= 100:
            return 5
        if limit <= 500:
            return 10
        return 20

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
