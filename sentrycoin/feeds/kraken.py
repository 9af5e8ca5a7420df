"""Kraken `book` feed handler (sans-I/O): WebSocket v2, and v1 for recordings.

Protocol (../shared/EXCHANGES.md; Kraken's "book checksum" guides):
- v2 (`wss://ws.kraken.com/v2`): subscribe `book` with a depth of 10, 25,
  100, 500 or 1000 (the smallest covering the configured depth) and the
  `instrument` channel, whose `price_precision` / `qty_precision` say how to
  write the JSON numbers of the book for the checksum.  Numbers are decoded
  as `decimal.Decimal` (msgspec keeps the literal's digits): a float round
  trip would break the checksum.
- v1 (`wss://ws.kraken.com`, what realdata/KRAKEN.jsonl.zst holds): channel
  messages are arrays `[channelID, {...}, ({...},) "book-<depth>", "XBT/USD"]`
  with snapshot keys `as`/`bs`, update keys `a`/`b` (bids and asks may come in
  two objects) and the checksum `c`; levels are decimal strings
  `[price, volume, timestamp(, "r")]` ("r": republished, applied like any
  other level).  v1 spells BTC as XBT and DOGE as XDG.
- Both: after a message is applied, each side is truncated to the subscribed
  depth (Kraken sends no deletes for levels that fall out of scope; the depth
  the venue acknowledges wins over the one we asked for); then the CRC32 of
  the top 10 asks + top 10 bids must equal the message's checksum.  A
  mismatch invalidates that book and resubscribes that symbol only.
- Kraken has no sequence numbers, so the checksum is the only loss detector:
  a book frame we cannot read resyncs the symbol it names at once rather
  than waiting for that symbol's next checksum.
- The protocol follows the URL (`/v2` path: v2; Kraken's hosts without it:
  v1; anything else, e.g. a local emulator: v2) unless `protocol=` is given;
  frames of either shape are understood either way.

Checksums are computed from the book (`sentrycore.kraken.book_checksum`):
a number written with the book's text places -- v2: at most the
instrument's; v1: exactly the decimals of the snapshot's strings, Kraken
writing every string of a pair alike -- is given back exactly from the
book's double, so the top 10 levels per side are written and CRC32'd in C
with no Python object per level.  The few levels whose text the double
cannot give back (more decimals than the precision, other decimals than
the snapshot's, too many digits) keep a token (price + qty text, dots and
leading zeros removed) in the state's per-side dict, float price -> token,
which the same function reads.

Hot path: `on_frame` is bound to `sentrycore.kraken.KrakenFramePath.on_frame`,
which takes a synced book's update (v2 or v1) in C -- levels into the shared
level buffers, the book, truncation to the subscribed depth, the checksum,
then `after_message` -- and gives every other frame, untouched, to the
reference path below (`_reference_frame`).  Both read and write the same
`KrakenBookState`, and a mismatch found in C calls `_checksum_mismatch`, the
reference path's own reaction.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal
from urllib.parse import urlsplit

import msgspec
import numpy as np

from sentrycoin.feeds.base import ConnectionSpec, FeedHandler, LogThrottle, Send
from sentrycoin.feeds.checksum import fixed_text, strip_number
from sentrycoin.market import Market
from sentrycore.kraken import ChecksumCounts, KrakenBookState, KrakenFramePath, KrakenParser, exact_text, level_text

log = logging.getLogger("sentrycoin.feeds.kraken")

DEFAULT_WS_URL = "wss://ws.kraken.com/v2"
#: Depths Kraken's book channel accepts (v1 and v2).
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
DEFAULT_SYMBOLS_PER_CONNECTION = 100
PING_INTERVAL_S = 20.0
#: Hosts that speak v1 at the root path (v2 lives under /v2).
_V1_HOSTS = ("ws.kraken.com", "beta-ws.kraken.com")

KrakenProtocol = Literal["v1", "v2"]

_INF = math.inf
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
#: Plausible venue times (Unix s); v1 level times outside are ignored.
_MIN_TIME_S = 1e9
_MAX_TIME_S = 1e10
_EMPTY = np.empty(0, dtype=np.float64)


# -- symbols ---------------------------------------------------------------------

#: v1 (and the REST API) spell some assets the old way.
_V1_ASSET = {"BTC": "XBT", "DOGE": "XDG"}
_FROM_V1_ASSET = {v: k for k, v in _V1_ASSET.items()}


def to_v2_symbol(symbol: str) -> str:
    """BTC-USD -> BTC/USD"""
    return symbol.replace("-", "/", 1)


def to_v1_pair(symbol: str) -> str:
    """BTC-USD -> XBT/USD"""
    base, _, quote = symbol.partition("-")
    return f"{_V1_ASSET.get(base, base)}/{_V1_ASSET.get(quote, quote)}"


def from_venue_symbol(name: str) -> str:
    """BTC/USD or XBT/USD -> BTC-USD"""
    base, _, quote = name.partition("/")
    return f"{_FROM_V1_ASSET.get(base, base)}-{_FROM_V1_ASSET.get(quote, quote)}"


def subscription_depth(depth: int) -> int:
    """The smallest book depth Kraken offers that covers `depth` (1000 at most)."""
    for d in BOOK_DEPTHS:
        if d >= depth:
            return d
    return BOOK_DEPTHS[-1]


def protocol_for_url(url: str) -> KrakenProtocol:
    """v2 for a `/v2` path; v1 for Kraken's own hosts without it; else v2."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/v2"):
        return "v2"
    if parts.hostname in _V1_HOSTS or path.endswith("/v1"):
        return "v1"
    return "v2"


# -- wire shapes -------------------------------------------------------------------


class _V1Sub(msgspec.Struct):
    name: str = ""
    depth: int = 0


class _V2Result(msgspec.Struct):
    channel: str = ""
    symbol: str = ""
    depth: int = 0


class _Object(msgspec.Struct):
    """Any JSON-object frame: v1 events, v2 channel messages and acks."""

    event: str = ""  # v1: systemStatus | subscriptionStatus | heartbeat | pong
    status: str = ""
    pair: str = ""
    subscription: _V1Sub | None = None
    errorMessage: str = ""
    channel: str = ""  # v2: book | instrument | heartbeat | status
    type: str = ""  # v2: snapshot | update
    data: msgspec.Raw = msgspec.Raw(b"null")
    method: str = ""  # v2 acks: subscribe | unsubscribe | pong
    success: bool | None = None
    error: str = ""
    symbol: str = ""  # v2 error acks name the symbol here
    result: _V2Result | None = None


class _V2Level(msgspec.Struct):
    price: Decimal
    qty: Decimal


class _V2Book(msgspec.Struct):
    symbol: str
    bids: list[_V2Level] = []
    asks: list[_V2Level] = []
    checksum: int | None = None
    timestamp: datetime | None = None


class _V2Pair(msgspec.Struct):
    symbol: str
    price_precision: int
    qty_precision: int


class _V2Instruments(msgspec.Struct):
    pairs: list[_V2Pair] = []


class _V1Book(msgspec.Struct):
    snap_asks: list[list[str]] | None = msgspec.field(default=None, name="as")
    snap_bids: list[list[str]] | None = msgspec.field(default=None, name="bs")
    a: list[list[str]] | None = None
    b: list[list[str]] | None = None
    c: str | None = None


_OBJECT = msgspec.json.Decoder(_Object)
_V2_BOOKS = msgspec.json.Decoder(list[_V2Book])
_V2_INSTRUMENTS = msgspec.json.Decoder(_V2Instruments)
_V1_MESSAGE = msgspec.json.Decoder(list[int | str | _V1Book])
_ENCODE = msgspec.json.Encoder()


class _Reject(Exception):
    """A message we will not apply (bad values); the book stays as it was."""


# -- parsed levels -------------------------------------------------------------------


@dataclass(slots=True)
class _Side:
    """One side of one message: floats for the OrderBook, tokens for the checksum."""

    prices: list[float] = field(default_factory=list)
    qtys: list[float] = field(default_factory=list)
    tokens: list[str | None] = field(default_factory=list)  # None: no token kept (deletes; levels the double gives back)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.prices:
            return _EMPTY, _EMPTY
        return np.array(self.prices, dtype=np.float64), np.array(self.qtys, dtype=np.float64)


def _decimals(text: str) -> int:
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1


def _v1_places(parts: list[_V1Book]) -> tuple[int, int] | None:
    """The places a v1 snapshot's strings are written with: those of its first level."""
    for part in parts:
        for levels in (part.snap_asks, part.snap_bids):
            if levels and len(levels[0]) >= 2:
                return _decimals(levels[0][0]), _decimals(levels[0][1])
    return None


def _v1_side(levels: list[list[str]], out: _Side, newest: list, places: tuple[int, int] | None) -> None:
    """Parse v1 string levels into `out`; `newest` holds [time_s, time_text] of the newest level.

    A level keeps a token only when `book_checksum` would not write its
    strings back from the book's doubles with `places` (None: every level)."""
    newest_s = newest[0]
    for level in levels:
        if len(level) < 3:
            raise _Reject(f"short level {level!r}")
        p_text, q_text = level[0], level[1]
        try:
            price = float(p_text)
            qty = float(q_text)
            ts_s = float(level[2])
        except ValueError:
            raise _Reject(f"non-numeric level {level!r}") from None
        if not (0.0 < price < _INF and 0.0 <= qty < _INF):
            raise _Reject(f"bad level {level!r}")
        out.prices.append(price)
        out.qtys.append(qty)
        if qty and not (places is not None and level_text(price, places[0]) == strip_number(p_text)
                        and level_text(qty, places[1]) == strip_number(q_text)):
            out.tokens.append(strip_number(p_text) + strip_number(q_text))
        else:
            out.tokens.append(None)
        # A bad time is not worth refusing a book update over; one outside
        # 2001..2286 is ignored (the receive time is used instead).
        if newest_s < ts_s < _MAX_TIME_S and ts_s > _MIN_TIME_S:
            newest_s = ts_s
            newest[0] = ts_s
            newest[1] = level[2]


def _written_back(value: Decimal, number: float, places: int) -> bool:
    """True when `book_checksum` writes `number` (the double of `value`) as
    `fixed_text(value, places)`: at most `places` decimals, and few enough
    digits that the double gives them back (sentrycore/decimaltext.pxd)."""
    if not exact_text(number, places):
        return False
    scaled = value.scaleb(places)
    return scaled == scaled.to_integral_value()


def _v2_side(levels: list[_V2Level], price_places: int, qty_places: int, out: _Side) -> None:
    """Tokens only for levels whose text the book's double cannot give back (None: none needed)."""
    for level in levels:
        p, q = level.price, level.qty
        try:
            price = float(p)
            qty = float(q)
        except ValueError:  # signalling NaN
            raise _Reject(f"bad level price={p} qty={q}") from None
        if not (0.0 < price < _INF and 0.0 <= qty < _INF):
            raise _Reject(f"bad level price={p} qty={q}")
        out.prices.append(price)
        out.qtys.append(qty)
        if qty and not (_written_back(p, price, price_places) and _written_back(q, qty, qty_places)):
            out.tokens.append(strip_number(fixed_text(p, price_places)) + strip_number(fixed_text(q, qty_places)))
        else:
            out.tokens.append(None)


# -- per-symbol state ------------------------------------------------------------------


def _merge(tokens: dict[float, str], side: _Side) -> None:
    """Message order matters: a price may appear twice, the last one wins."""
    for price, token in zip(side.prices, side.tokens, strict=True):
        if token is None:
            tokens.pop(price, None)
        else:
            tokens[price] = token


def _truncate(market: Market, state: KrakenBookState) -> None:
    """Drop levels beyond the subscribed depth (Kraken sends no delete for them)."""
    book = market.book
    depth = state.depth
    if book.bid_levels > depth:
        extra = np.ascontiguousarray(book.bids()[depth:, 0])
        book.apply_bids(extra, np.zeros(extra.shape[0]))
        pop = state.bid_tokens.pop
        for price in extra.tolist():
            pop(price, None)
    if book.ask_levels > depth:
        extra = np.ascontiguousarray(book.asks()[depth:, 0])
        book.apply_asks(extra, np.zeros(extra.shape[0]))
        pop = state.ask_tokens.pop
        for price in extra.tolist():
            pop(price, None)


# -- handler -------------------------------------------------------------------------------


class KrakenHandler(FeedHandler):
    venue = "kraken"

    @classmethod
    def book_levels(cls, depth: int) -> int:
        return subscription_depth(depth)

    def __init__(
        self,
        markets: list[Market],
        ws_url: str = DEFAULT_WS_URL,
        rest_url: str | None = None,
        *,
        depth: int = 50,
        protocol: KrakenProtocol | None = None,
        symbols_per_connection: int = DEFAULT_SYMBOLS_PER_CONNECTION,
    ) -> None:
        super().__init__(markets, ws_url, rest_url)
        self.protocol: KrakenProtocol = protocol or protocol_for_url(ws_url)
        if self.protocol not in ("v1", "v2"):
            raise ValueError(f"protocol must be 'v1' or 'v2', got {self.protocol!r}")
        self.depth = depth
        self.book_depth = subscription_depth(depth)
        if depth > self.book_depth:
            log.warning("kraken: depth %d exceeds Kraken's largest book (%d); subscribing %d",
                        depth, self.book_depth, self.book_depth)
        else:
            log.info("kraken: depth %d -> subscribing book depth %d (%s)", depth, self.book_depth, self.protocol)
        for market in self.markets.values():
            if market.book.max_capacity < self.book_depth:
                log.warning("kraken %s: book capacity %d < subscribed depth %d; deep levels will be dropped",
                            market.symbol, market.book.max_capacity, self.book_depth)
        symbols = list(self.markets)
        step = max(1, symbols_per_connection)
        ping = '{"event":"ping"}' if self.protocol == "v1" else '{"method":"ping"}'
        self._specs = [
            ConnectionSpec(conn_id=i, url=ws_url, symbols=symbols[start:start + step],
                           ping_payload=ping, ping_interval_s=PING_INTERVAL_S)
            for i, start in enumerate(range(0, len(symbols), step))
        ]
        self._conn_of = {s: spec.conn_id for spec in self._specs for s in spec.symbols}
        self._symbols_of = {spec.conn_id: spec.symbols for spec in self._specs}
        self._states = {s: KrakenBookState(self.book_depth, self.markets[s]) for s in symbols}
        # Venue names -> normal form, for both spellings.
        self._by_venue_name: dict[str, str] = {}
        for s in symbols:
            self._by_venue_name[to_v2_symbol(s)] = s
            self._by_venue_name[to_v1_pair(s)] = s
        self._ever_connected: set[int] = set()
        # Checksums verified and matching (ok) or not (failed), counted in C too.
        self._checksums = ChecksumCounts()
        self.internal_errors = 0  # bugs of ours caught at the frame boundary (tests assert 0)
        self._trouble = LogThrottle()
        # The hot path in C (see the module docstring); this instance
        # attribute stands in for the class's on_frame, the reference.
        routes = {name: self._states[symbol] for name, symbol in self._by_venue_name.items()}
        self._frame_path = KrakenFramePath(KrakenParser(), routes, self._checksums, self.counters,
                                           self._reference_frame, self._checksum_mismatch, self._internal_error)
        self.on_frame = self._frame_path.on_frame  # type: ignore[method-assign]

    @property
    def checksum_ok(self) -> int:
        """Checksums verified and matching."""
        return self._checksums.ok

    @property
    def checksum_failed(self) -> int:
        return self._checksums.failed

    # -- what the source asks ---------------------------------------------------------

    def book_state(self, symbol: str) -> KrakenBookState:
        """One book's sync state and checksum text (a `KrakenBookState`, which the C
        path shares); its `checksum(market)` is CRC32 of the top levels, None if a
        level's text is missing."""
        return self._states[symbol]

    # -- what the source tells -----------------------------------------------------------

    def on_connected(self, conn_id: int) -> None:
        symbols = self._symbols_of.get(conn_id)
        if symbols is None:
            log.warning("kraken: on_connected for unknown connection %s", conn_id)
            return
        again = conn_id in self._ever_connected
        self._ever_connected.add(conn_id)
        for symbol in self.mark_connected(conn_id):
            if again:
                self.markets[symbol].reconnects += 1
            state = self._states[symbol]
            state.awaiting = True
            state.depth = self.book_depth
        if self.protocol == "v2":
            # The instrument snapshot (precisions) is asked first so it normally
            # lands before the first book snapshot.
            self.actions.append(Send(conn_id, _ENCODE.encode(
                {"method": "subscribe", "params": {"channel": "instrument", "snapshot": True}}).decode()))
        self.actions.append(Send(conn_id, self._book_request("subscribe", symbols)))

    def on_disconnected(self, conn_id: int) -> None:
        for symbol in self._symbols_of.get(conn_id, ()):
            self._states[symbol].awaiting = True
        super().on_disconnected(conn_id)

    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        """The reference path: count the frame, then `_reference_frame`.

        Each instance binds `on_frame` to `KrakenFramePath.on_frame`, which
        counts the same way and takes a synced v2 book's update in C; this
        method is what a caller of the class attribute gets (tests use it as
        the oracle of the C path)."""
        counters = self.counters
        counters.frames += 1
        counters.bytes += len(data)
        self._reference_frame(conn_id, data, recv_ms)

    def _reference_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        try:
            if data[:1] == b"[":
                self._on_v1_array(conn_id, _V1_MESSAGE.decode(data), recv_ms)
            else:
                self._on_object(conn_id, _OBJECT.decode(data), recv_ms)
        except ValueError as exc:
            # msgspec.DecodeError / ValidationError, and UnicodeDecodeError for
            # invalid UTF-8 inside a string: all ValueErrors.
            self.decode_error("frame", data, exc)
            self._resync_suspects(conn_id, data)
        except Exception:
            self._internal_error(conn_id, data)

    def _internal_error(self, conn_id: int, data: bytes) -> None:
        """Called inside an except block: a bug of ours must not kill the
        connection's reader, nor leave a book that may be half-updated looking valid."""
        self.counters.decode_errors += 1
        self.internal_errors += 1
        log.exception("kraken conn %s: internal error on frame %r", conn_id, bytes(data[:80]))
        symbols = self._symbols_of.get(conn_id, [])
        for symbol in symbols:
            self.markets[symbol].invalidate("internal error")
            self._states[symbol].awaiting = True
        if symbols:
            self._resubscribe(conn_id, symbols)

    # -- frames -------------------------------------------------------------------------------

    def _on_object(self, conn_id: int, msg: _Object, recv_ms: int) -> None:
        if msg.channel == "book":
            books = _V2_BOOKS.decode(msg.data)
            snapshot = msg.type == "snapshot"
            if not snapshot and msg.type != "update":
                self.counters.ignored += 1
                return
            for book in books:
                self._on_v2_book(conn_id, book, snapshot, recv_ms)
        elif msg.channel == "instrument":
            self._on_instruments(conn_id, _V2_INSTRUMENTS.decode(msg.data))
        elif msg.event == "subscriptionStatus":
            self._on_v1_status(msg)
        elif msg.method in ("subscribe", "unsubscribe"):
            self._on_v2_ack(msg)
        else:
            # heartbeats, pongs, systemStatus / status: nothing for the books
            self.counters.ignored += 1

    def _on_v1_status(self, msg: _Object) -> None:
        self.counters.ignored += 1
        symbol = self._by_venue_name.get(msg.pair)
        sub = msg.subscription
        if symbol is None or sub is None or sub.name != "book":
            return
        if msg.status == "error":
            self._warn(f"sub error:{symbol}", "kraken %s: subscription error: %s", symbol, msg.errorMessage[:200])
            self._states[symbol].awaiting = True
            self.fail_book(symbol, f"subscription error: {msg.errorMessage[:200]}")
        elif msg.status == "subscribed" and sub.depth > 0:
            # The venue's word on the depth wins: it is what it truncates to.
            self._states[symbol].depth = sub.depth

    def _on_v2_ack(self, msg: _Object) -> None:
        self.counters.ignored += 1
        result = msg.result
        if msg.success is False:
            self._warn("ack error", "kraken: %s failed: %s", msg.method, msg.error[:200])
            # A failed unsubscribe (nothing to drop) is harmless; a failed
            # subscribe leaves that book without data.
            name = result.symbol if result is not None and result.symbol else msg.symbol
            symbol = self._by_venue_name.get(name)
            if msg.method == "subscribe" and symbol is not None:
                self._states[symbol].awaiting = True
                self.fail_book(symbol, f"subscribe failed: {msg.error[:200]}")
            return
        if result is not None and result.channel == "book" and msg.method == "subscribe" and result.depth > 0:
            symbol = self._by_venue_name.get(result.symbol)
            if symbol is not None:
                self._states[symbol].depth = result.depth

    def _on_instruments(self, conn_id: int, data: _V2Instruments) -> None:
        self.counters.ignored += 1
        resubscribe: list[str] = []
        for pair in data.pairs:
            symbol = self._by_venue_name.get(pair.symbol)
            if symbol is None or self._conn_of[symbol] != conn_id:
                continue
            state = self._states[symbol]
            if (state.price_places, state.qty_places) == (pair.price_precision, pair.qty_precision):
                continue
            had = state.price_places is not None
            state.price_places, state.qty_places = pair.price_precision, pair.qty_precision
            if had or state.needs_precision:
                # Book messages were dropped (no precision yet) or their tokens
                # were written with the old precision: start over from a snapshot.
                state.needs_precision = False
                self.markets[symbol].invalidate("instrument precision changed" if had else "waiting for snapshot")
                state.awaiting = True
                resubscribe.append(symbol)
        if resubscribe:
            self._resubscribe(conn_id, resubscribe)

    def _on_v2_book(self, conn_id: int, msg: _V2Book, snapshot: bool, recv_ms: int) -> None:
        symbol = self._by_venue_name.get(msg.symbol)
        if symbol is None:
            self.counters.ignored += 1
            return
        state = self._states[symbol]
        if not snapshot and state.awaiting:
            self.counters.ignored += 1
            return
        if state.price_places is None or state.qty_places is None:
            # Cannot write the checksum text yet: keep waiting; the instrument
            # snapshot will trigger a resubscribe.
            self.counters.ignored += 1
            state.needs_precision = True
            state.awaiting = True
            return
        bids, asks = _Side(), _Side()
        market = self.markets[symbol]
        try:
            _v2_side(msg.bids, state.price_places, state.qty_places, bids)
            _v2_side(msg.asks, state.price_places, state.qty_places, asks)
        except _Reject as exc:
            self._reject(conn_id, market, state, str(exc))
            return
        ts = msg.timestamp
        if ts is None:
            event_ms = recv_ms
        else:
            if ts.tzinfo is None:  # RFC 3339 says UTC; a zone-less time is read so
                ts = ts.replace(tzinfo=UTC)
            event_ms = (ts - _EPOCH) // _ONE_MS  # integer ms, no float rounding
        self._apply(conn_id, market, state, bids, asks, snapshot, msg.checksum, event_ms)

    def _on_v1_array(self, conn_id: int, msg: list[int | str | _V1Book], recv_ms: int) -> None:
        n = len(msg)
        if n < 4 or not isinstance(msg[-1], str) or not isinstance(msg[-2], str):
            raise msgspec.ValidationError("v1 channel message must end with channel name and pair")
        if not msg[-2].startswith("book"):
            self.counters.ignored += 1
            return
        parts = msg[1:-2]
        if not parts or len(parts) > 2 or not all(isinstance(p, _V1Book) for p in parts):
            raise msgspec.ValidationError("v1 book message must carry one or two book objects")
        symbol = self._by_venue_name.get(msg[-1])
        if symbol is None:
            self.counters.ignored += 1
            return
        state = self._states[symbol]
        market = self.markets[symbol]
        bids, asks = _Side(), _Side()
        snapshot = False
        checksum: int | None = None
        newest: list = [0.0, ""]  # the newest level time, as float and as sent
        snap_time: list = [0.0, ""]  # snapshots: level times are stale, not the event's
        books = [p for p in parts if isinstance(p, _V1Book)]
        learned = _v1_places(books)  # a snapshot's places become the book's (v1 has no instrument channel)
        places = state.text_places
        if any(p.snap_asks is not None or p.snap_bids is not None for p in books):
            if state.price_places is None or state.qty_places is None:
                places = learned
        try:
            for part in parts:
                assert isinstance(part, _V1Book)
                if part.snap_asks is not None or part.snap_bids is not None:
                    snapshot = True
                    _v1_side(part.snap_asks or [], asks, snap_time, places)
                    _v1_side(part.snap_bids or [], bids, snap_time, places)
                if part.a is not None:
                    _v1_side(part.a, asks, newest, places)
                if part.b is not None:
                    _v1_side(part.b, bids, newest, places)
                if part.c is not None:
                    if not (part.c.isascii() and part.c.isdigit()):
                        raise _Reject(f"checksum {part.c!r} is not a number")
                    checksum = int(part.c)
        except _Reject as exc:
            if snapshot or not state.awaiting:
                self._reject(conn_id, market, state, str(exc))
            else:
                self.counters.ignored += 1
            return
        if not snapshot and state.awaiting:
            self.counters.ignored += 1
            return
        # v1 snapshots carry no time of their own; updates carry one per level.
        # Exact decimal -> ms (a float product can land a hair under the ms).
        event_ms = int(Decimal(newest[1]) * 1000) if newest[1] else recv_ms
        self._apply(conn_id, market, state, bids, asks, snapshot, checksum, event_ms, v1_places=learned)

    # -- the shared book path ----------------------------------------------------------------

    def _apply(self, conn_id: int, market: Market, state: KrakenBookState, bids: _Side, asks: _Side,
               snapshot: bool, checksum: int | None, event_ms: int,
               v1_places: tuple[int, int] | None = None) -> None:
        book = market.book
        bid_p, bid_q = bids.arrays()
        ask_p, ask_q = asks.arrays()
        # Values were checked while parsing, so the book calls below cannot
        # refuse half a message.
        try:
            if snapshot:
                book.load_snapshot(np.column_stack((bid_p, bid_q)), np.column_stack((ask_p, ask_q)))
                state.bid_tokens.clear()
                state.ask_tokens.clear()
                state.v1_price_places, state.v1_qty_places = v1_places or (None, None)
                state.awaiting = False
            else:
                book.apply(bid_p, bid_q, ask_p, ask_q)  # one batch call, all or nothing
        except ValueError as exc:  # defensive: parsing already refused such values
            self._reject(conn_id, market, state, f"book refused values: {exc}")
            return
        _merge(state.bid_tokens, bids)
        _merge(state.ask_tokens, asks)
        _truncate(market, state)
        if checksum is None:
            if not snapshot:
                self.counters.checksum_skipped += 1
        else:
            ours = state.checksum(market)
            if ours != checksum:
                self._checksum_mismatch(state, ours, checksum)
                return
            self._checksums.ok += 1
        if snapshot:
            market.mark_valid()
        market.after_message(event_ms)

    def _checksum_mismatch(self, state: KrakenBookState, ours: int | None, theirs: int) -> None:
        """The book disagrees with the venue's checksum (either path): count, invalidate, resync."""
        market = state.market
        self._checksums.failed += 1
        market.checksum_mismatches += 1
        self._warn(f"checksum:{market.symbol}", "kraken %s: checksum mismatch (ours %s, venue %s); resyncing",
                   market.symbol, ours, theirs)
        state.awaiting = True
        # Through recovery: a pair whose checksums keep failing (on Kraken's
        # side, it happens) is retried with a growing delay, not in a loop.
        self.fail_book(market.symbol, "checksum mismatch")

    # -- resync ------------------------------------------------------------------------------

    def _resync_suspects(self, conn_id: int, data: bytes) -> None:
        """An unreadable book frame may have been an update some book needed.

        Kraken has no sequence numbers; the next checksum of that symbol would
        catch the loss, but a quiet symbol could stay wrong (and alerting) until
        then.  So when the frame looks like book data and names one of our
        symbols, that book is resynced now.  Rare (garbage), so a scan is fine.
        """
        if not isinstance(data, (bytes, bytearray)):
            data = str(data).encode("utf-8", "replace")
        if not (data[:1] == b"[" or b'"book"' in data):
            return
        suspects = [
            symbol for symbol in self._symbols_of.get(conn_id, [])
            if f'"{to_v1_pair(symbol)}"'.encode() in data or f'"{to_v2_symbol(symbol)}"'.encode() in data
        ]
        for symbol in suspects:
            # Also while awaiting: the unreadable frame may have been the snapshot.
            self._reject(conn_id, self.markets[symbol], self._states[symbol], "unreadable book frame")

    def _reject(self, conn_id: int, market: Market, state: KrakenBookState, reason: str) -> None:
        self._warn(f"reject:{market.symbol}", "kraken %s: %s; resyncing", market.symbol, reason)
        state.awaiting = True
        self.fail_book(market.symbol, reason)

    def request_books(self, conn_id: int, symbols: list[str]) -> None:
        for symbol in symbols:
            state = self._states[symbol]
            state.awaiting = True
            state.depth = self.book_depth
        if self.protocol == "v2" and any(self._states[s].price_places is None for s in symbols):
            # Without the instrument precisions no book message can be checked: ask again.
            self.actions.append(Send(conn_id, _ENCODE.encode(
                {"method": "subscribe", "params": {"channel": "instrument", "snapshot": True}}).decode()))
        self._resubscribe(conn_id, symbols)

    def _resubscribe(self, conn_id: int, symbols: list[str]) -> None:
        self.actions.append(Send(conn_id, self._book_request("unsubscribe", symbols)))
        self.actions.append(Send(conn_id, self._book_request("subscribe", symbols)))

    def _book_request(self, method: str, symbols: list[str]) -> str:
        if self.protocol == "v2":
            params: dict[str, object] = {"channel": "book", "symbol": [to_v2_symbol(s) for s in symbols],
                                         "depth": self.book_depth}
            if method == "subscribe":
                params["snapshot"] = True
            return _ENCODE.encode({"method": method, "params": params}).decode()
        return _ENCODE.encode({"event": method, "pair": [to_v1_pair(s) for s in symbols],
                               "subscription": {"name": "book", "depth": self.book_depth}}).decode()

    def _warn(self, key: str, msg: str, *args: object) -> None:
        self._trouble.log(log, logging.WARNING, key, msg, *args)
