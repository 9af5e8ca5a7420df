"""Bybit v5 `orderbook.{depth}.{symbol}`: spot ("bybit") and USDT perpetuals ("bybit-linear").

Protocol (../shared/EXCHANGES.md and Bybit's v5 docs): subscribe
`{"op":"subscribe","args":["orderbook.50.BTCUSDT", ...]}`; the first message
per topic is a `snapshot` (replaces the book), then `delta`s whose update id
`u` rises by exactly one.  `u == 1` means Bybit restarted the service: that
message is a fresh snapshot whatever its `type`.  A gap, an undecodable book
message or a bad level invalidates that symbol and resubscribes it alone
(unsubscribe + subscribe on the same connection): the next snapshot resyncs
it while the connection's other symbols carry on.  The client keeps the
connection alive with `{"op":"ping"}` every 20 s.

Depth: the smallest of Bybit's 1 / 50 / 200 / 1000 levels that covers the
detector's N.  Deltas keep the book at that size (levels leaving the window
are deleted), so the book holds exactly what Bybit publishes.

Hot path: `on_frame` is bound to `sentrycore.bybit.BybitFramePath.on_frame`,
which counts the frame and takes a synced book's chaining delta entirely in
C (parse, `u == last_u + 1`, the book's C API, `MarketCore.after_message`).
The per-symbol state is a `sentrycore.parse.ChainState` subclass, the same
object both paths read and write.  Any frame the C path does not take in
full goes unchanged through `_decode_frame` (msgspec), the reference path,
where every rule above lives (tests/feeds/test_native_bybit.py compares them).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import msgspec

from sentrycoin.feeds.base import (
    ConnectionSpec,
    FeedHandler,
    Send,
    apply_levels,
    chunked,
    load_levels,
)
from sentrycoin.feeds.symbols import to_venue
from sentrycoin.market import Market
from sentrycore.bybit import BybitFramePath
from sentrycore.parse import ChainState

log = logging.getLogger("sentrycoin.feeds.bybit")

#: Depths Bybit publishes for spot and linear (1 is snapshot-only).
DEPTHS: tuple[int, ...] = (1, 50, 200, 1000)
#: Topics per subscribe message (spot accepts at most 10 args per request).
ARGS_PER_MESSAGE = 10
#: Symbols per connection: keeps one connection's burst small and a resubscribe cheap.
SYMBOLS_PER_CONNECTION = 100
PING_PAYLOAD = '{"op":"ping"}'
PING_INTERVAL_S = 20.0

Level = tuple[float, float]


class BookData(msgspec.Struct):
    s: str
    b: list[Level]
    a: list[Level]
    u: int


class BookMessage(msgspec.Struct):
    topic: str
    type: str
    ts: int
    data: BookData


class OpMessage(msgspec.Struct):
    """Replies to subscribe/unsubscribe/ping (and anything else without book data)."""

    op: str = ""
    success: bool | None = None
    ret_msg: str = ""
    topic: str = ""


def choose_depth(depth: int) -> int:
    """Smallest published depth >= `depth` (the largest when none is)."""
    return next((d for d in DEPTHS if d >= depth), DEPTHS[-1])


class _SymbolState(ChainState):
    """`market`, `synced` and `last_u` live in the Cython base class, where
    the C path (`BybitFramePath`) reads and advances them."""

    __slots__ = ("symbol", "native", "topic", "conn_id")

    def __init__(self, symbol: str, native: str, topic: str, market: Market, conn_id: int) -> None:
        super().__init__(market)
        self.symbol = symbol
        self.native = native
        self.topic = topic
        self.conn_id = conn_id
        self.synced = False  # a snapshot arrived and every delta since chained
        self.last_u = 0


class _BybitHandler(FeedHandler):
    venue: ClassVar[str] = ""

    @classmethod
    def book_levels(cls, depth: int) -> int:
        return choose_depth(depth)  # the book holds exactly what Bybit publishes

    def __init__(
        self,
        markets: list[Market],
        ws_url: str,
        rest_url: str | None = None,
        *,
        depth: int = 50,
        symbols_per_connection: int = SYMBOLS_PER_CONNECTION,
    ) -> None:
        super().__init__(markets, ws_url, rest_url)
        self.depth = depth
        self.book_depth = choose_depth(depth)
        if self.book_depth < depth:
            log.warning("%s: depth %d exceeds Bybit's largest book (%d); using %d",
                        self.venue, depth, self.book_depth, self.book_depth)
        log.info("%s: subscribing orderbook.%d for depth %d", self.venue, self.book_depth, depth)
        self._decoder = msgspec.json.Decoder(BookMessage, strict=False)
        self._op_decoder = msgspec.json.Decoder(OpMessage)
        self._states: dict[str, _SymbolState] = {}
        self._by_native: dict[str, _SymbolState] = {}
        self._by_topic: dict[str, _SymbolState] = {}
        for conn_id, group in enumerate(chunked(list(self.markets), symbols_per_connection)):
            self._specs.append(ConnectionSpec(
                conn_id=conn_id, url=ws_url, symbols=list(group),
                ping_payload=PING_PAYLOAD, ping_interval_s=PING_INTERVAL_S,
            ))
            for symbol in group:
                native = to_venue(self.venue, symbol)
                topic = f"orderbook.{self.book_depth}.{native}"
                st = _SymbolState(symbol, native, topic, self.markets[symbol], conn_id)
                self._states[symbol] = st
                self._by_native[native] = st
                self._by_topic[topic] = st
        # The hot path in C: a synced book's chaining delta never enters
        # Python (see on_frame below, which this instance attribute stands in for).
        self._frame_path = BybitFramePath(self.book_depth, self._by_native, self.counters, self._decode_frame)
        self.on_frame = self._frame_path.on_frame  # type: ignore[method-assign]

    def on_connected(self, conn_id: int) -> None:
        topics = []
        for symbol in self.mark_connected(conn_id):
            st = self._states[symbol]
            st.synced = False
            topics.append(st.topic)
        for args in chunked(topics, ARGS_PER_MESSAGE):
            self.actions.append(Send(conn_id, msgspec.json.encode({"op": "subscribe", "args": args}).decode()))

    def on_disconnected(self, conn_id: int) -> None:
        super().on_disconnected(conn_id)
        for st in self._states.values():
            if st.conn_id == conn_id:
                st.synced = False

    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        """Count the frame; a `delta` for a synced book whose `u` follows is
        applied and the detector runs, all in C (`BybitFramePath`); anything
        else comes back untouched (a bad value included) for the reference
        path, `_decode_frame`.  Each instance binds `on_frame` to the C
        object's; this method is what a caller of the class attribute gets."""
        self._frame_path.on_frame(conn_id, data, recv_ms)

    def _decode_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        """The reference path: msgspec decode, then the snapshot/delta rules."""
        counters = self.counters
        try:
            msg = self._decoder.decode(data)
        except ValueError as exc:  # msgspec errors and invalid UTF-8 (UnicodeDecodeError)
            self._other_frame(data, exc)
            return
        d = msg.data
        st = self._by_native.get(d.s)
        if st is None or st.topic != msg.topic:
            counters.ignored += 1
            return
        market = st.market
        if msg.type == "snapshot" or d.u == 1:
            # u == 1: the service restarted and this message is the whole book.
            try:
                load_levels(market.book, d.b, d.a)
            except ValueError as exc:
                self._resubscribe(st, f"bad level in snapshot u={d.u}: {exc}")
                return
            st.synced = True
            st.last_u = d.u
            market.mark_valid()
            market.after_message(msg.ts)
            return
        if msg.type != "delta":
            self.decode_error("message type", data, msg.type)
            self._resubscribe(st, f"unknown message type {msg.type!r}")
            return
        if not st.synced:
            counters.ignored += 1  # deltas still in flight before the (re)subscribe's snapshot
            return
        if d.u != st.last_u + 1:
            self._resubscribe(st, f"sequence gap: u={d.u} after u={st.last_u}")
            return
        try:
            apply_levels(market.book, d.b, d.a)
        except ValueError as exc:
            self._resubscribe(st, f"bad level in delta u={d.u}: {exc}")
            return
        st.last_u = d.u
        market.after_message(msg.ts)

    # -- internals ------------------------------------------------------------

    def _resubscribe(self, st: _SymbolState, reason: str) -> None:
        """Invalidate one symbol; recovery asks Bybit for a fresh snapshot of it alone."""
        log.info("%s %s: resyncing (%s)", self.venue, st.symbol, reason)
        st.synced = False
        self.fail_book(st.symbol, reason)

    def request_books(self, conn_id: int, symbols: list[str]) -> None:
        """Unsubscribe + subscribe (Bybit refuses a topic already subscribed): a new snapshot."""
        topics = []
        for symbol in symbols:
            st = self._states[symbol]
            st.synced = False
            topics.append(st.topic)
        for op in ("unsubscribe", "subscribe"):
            for args in chunked(topics, ARGS_PER_MESSAGE):
                self.actions.append(Send(conn_id, msgspec.json.encode({"op": op, "args": args}).decode()))

    def _other_frame(self, data: bytes, exc: Exception) -> None:
        try:
            op = self._op_decoder.decode(data)
        except ValueError:  # msgspec errors and invalid UTF-8
            self.decode_error("frame", data, exc)
            return
        st = self._by_topic.get(op.topic)
        if st is not None:
            # A book message for one of our symbols that we cannot read: it lost an
            # update, or it was the snapshot the book is waiting for.
            self.decode_error("book message", data, exc)
            self._resubscribe(st, "undecodable book message")
            return
        if op.success is False:
            self._log_throttle.log(log, logging.WARNING, "op-failed", "%s: %s failed: %s",
                                   self.venue, op.op or "request", op.ret_msg[:200])
            # Say why a book never syncs (e.g. an unknown symbol) in /status, and ask
            # again later: a refused subscribe must not leave the book waiting forever.
            for topic, st in self._by_topic.items():
                if topic in op.ret_msg and not st.synced and op.op != "unsubscribe":
                    self._resubscribe(st, f"{op.op or 'request'} failed: {op.ret_msg[:120]}")
        self.counters.ignored += 1


class BybitSpotHandler(_BybitHandler):
    venue: ClassVar[str] = "bybit"


class BybitLinearHandler(_BybitHandler):
    venue: ClassVar[str] = "bybit-linear"
