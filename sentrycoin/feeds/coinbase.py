"""Coinbase Advanced Trade `level2` feed handler (sans-I/O).

Protocol (../shared/EXCHANGES.md, checked against realdata/COINBASE.jsonl.zst):
- one WebSocket carries many products; subscribe `level2` and `heartbeats`,
  one channel per subscribe message (heartbeats keep a quiet connection open);
- `l2_data` messages carry events of type `snapshot` (replaces the book) or
  `update` (absolute sizes, 0 deletes) with `side` = bid | offer;
- `sequence_num` counts *every* message on the connection across channels
  (heartbeats, tickers, subscription acks too).  A gap, or a number going
  backwards, means a message was lost and we cannot tell which book it
  belonged to: every book on that connection is invalidated and level2 is
  resubscribed (unsubscribe + subscribe), which brings fresh snapshots;
- `-USDC` products are served as the matching `-USD` book: subscribe to
  `BTC-USDC` and the events say `"product_id":"BTC-USD"`.  So we subscribe
  the served product (`served_product`) once, and every configured market
  of that book -- `BTC-USD`, `BTC-USDC` or both -- is fed from that one
  stream: one subscription, two markets with identical books (each with its
  own detector, alerts and /status entry);
- unauthenticated clients may send 8 messages per second per IP: the live
  runner paces every Coinbase connection on one shared token bucket.

Hot path: `on_frame` is bound to `sentrycore.coinbase.CoinbaseFramePath.on_frame`,
which counts the frame and, for the common message -- one `update` event of
a synced product, next in its connection's sequence -- reads the bytes
straight into the shared level buffers, applies them to every market of
that product and runs `after_message`, all in C.  The per-connection
sequence (`SequenceState`) and per-product sync flag (`ProductState`) are
Cython objects both paths read and write, so the C path and the reference
path below are one state machine.  Any other frame goes, untouched, to the
reference path: the envelope is decoded once with `events` left as
`msgspec.Raw` (so ticker/trade/candle payloads are skipped, not built), and
only `l2_data` events are decoded further, straight into Structs whose
numeric strings become floats inside msgspec (`strict=False`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from sentrycoin.feeds.base import ConnectionSpec, FeedHandler, LogThrottle, Send, apply_levels, load_levels
from sentrycoin.market import Market
from sentrycore.coinbase import CoinbaseFramePath, CoinbaseParser, ProductState, SequenceState

log = logging.getLogger("sentrycoin.feeds.coinbase")

DEFAULT_WS_URL = "wss://advanced-trade-ws.coinbase.com"
#: Products per connection.  One connection serves many products; very long
#: lists are split so one resubscribe (after a gap) does not refetch everything.
DEFAULT_PRODUCTS_PER_CONNECTION = 100


# -- wire shapes ---------------------------------------------------------------


class _Envelope(msgspec.Struct):
    """Every frame on the connection: enough to follow the sequence."""

    channel: str = ""
    sequence_num: int | None = None
    # Kept as text: parsed only for l2_data, and a format change there must
    # not make every frame (and so the sequence) unreadable.
    timestamp: str = ""
    events: msgspec.Raw = msgspec.Raw(b"[]")
    type: str = ""  # {"type": "error", "message": ...} frames have no channel
    message: str = ""


class _Level(msgspec.Struct):
    side: str
    price_level: float
    new_quantity: float


class _L2Event(msgspec.Struct):
    type: str
    product_id: str
    updates: list[_Level] = []


#: (bids, asks) of one event as (price, size) pairs.
_Split = tuple[list[tuple[float, float]], list[tuple[float, float]]]

_ENVELOPE = msgspec.json.Decoder(_Envelope)
# strict=False: the venue sends "65083.66"; msgspec parses it to float in C.
_L2_EVENTS = msgspec.json.Decoder(list[_L2Event], strict=False)
_ENCODE = msgspec.json.Encoder()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def _event_ms(timestamp: str, recv_ms: int) -> int:
    """The message's RFC 3339 time in Unix ms (nanoseconds truncated); recv_ms if unusable."""
    try:
        when = datetime.fromisoformat(timestamp)  # 3.11+: 'Z' and 9 fraction digits
    except ValueError:
        return recv_ms
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # Integer arithmetic: a float timestamp * 1000 can land a hair under the ms.
    return (when - _EPOCH) // _ONE_MS


def served_product(symbol: str) -> str:
    """The product whose book Coinbase serves for `symbol`: 'BTC-USDC' -> 'BTC-USD'."""
    if symbol.endswith("-USDC"):
        return symbol[: -len("-USDC")] + "-USD"
    return symbol


class CoinbaseHandler(FeedHandler):
    venue = "coinbase"

    def __init__(
        self,
        markets: list[Market],
        ws_url: str = DEFAULT_WS_URL,
        rest_url: str | None = None,
        *,
        depth: int = 50,
        products_per_connection: int = DEFAULT_PRODUCTS_PER_CONNECTION,
    ) -> None:
        super().__init__(markets, ws_url, rest_url)
        # level2 is always full depth; `depth` only matters to the books.
        self.depth = depth
        # Served product -> the markets it feeds (BTC-USD feeds BTC-USD and BTC-USDC).
        self._markets_of: dict[str, list[Market]] = {}
        for market in self.markets.values():
            self._markets_of.setdefault(served_product(market.symbol), []).append(market)
        products = list(self._markets_of)
        step = max(1, products_per_connection)
        self._products_of: dict[int, list[str]] = {}
        for i, start in enumerate(range(0, len(products), step)):
            group = products[start:start + step]
            self._products_of[i] = group
            self._specs.append(ConnectionSpec(
                conn_id=i, url=ws_url,
                symbols=[m.symbol for product in group for m in self._markets_of[product]]))
        # Each connection's sequence follower and each served product's sync
        # state: Cython objects the C frame path reads and advances too.
        self._sequences: dict[int, SequenceState] = {conn_id: SequenceState() for conn_id in self._products_of}
        # A product starts awaiting: updates mean nothing before its snapshot.
        self._products: dict[str, ProductState] = {
            product: ProductState(markets) for product, markets in self._markets_of.items()}
        self._ever_connected: set[int] = set()
        self.gaps = 0  # sequence gaps seen (also logged)
        self.internal_errors = 0  # bugs of ours caught at the frame boundary (tests assert 0)
        self._trouble = LogThrottle()
        # The hot path in C (see the module docstring); this instance
        # attribute stands in for the class's on_frame, the reference.
        self._frame_path = CoinbaseFramePath(CoinbaseParser(), self._sequences, self._products, self.counters,
                                             self._reference_frame, self._internal_error)
        self.on_frame = self._frame_path.on_frame  # type: ignore[method-assign]

    # -- what the source asks ---------------------------------------------------

    # -- what the source tells --------------------------------------------------

    def on_connected(self, conn_id: int) -> None:
        products = self._products_of.get(conn_id)
        if products is None:
            log.warning("coinbase: on_connected for unknown connection %s", conn_id)
            return
        # A new connection numbers its messages afresh.
        self._sequence(conn_id).last_seq = None
        again = conn_id in self._ever_connected
        self._ever_connected.add(conn_id)
        for symbol in self.mark_connected(conn_id):
            if again:
                self.markets[symbol].reconnects += 1
        self._await(products)
        self.actions.append(Send(conn_id, self._subscription("subscribe", "level2", products)))
        self.actions.append(Send(conn_id, self._subscription("subscribe", "heartbeats", products)))

    def on_disconnected(self, conn_id: int) -> None:
        self._sequence(conn_id).last_seq = None
        self._await(self._products_of.get(conn_id, ()))
        super().on_disconnected(conn_id)

    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        """The reference path: count the frame, then `_reference_frame`.

        Each instance binds `on_frame` to `CoinbaseFramePath.on_frame`, which
        counts the same way and takes the hot update message in C; this
        method is what a caller of the class attribute gets (tests use it as
        the oracle of the C path)."""
        counters = self.counters
        counters.frames += 1
        counters.bytes += len(data)
        self._reference_frame(conn_id, data, recv_ms)

    def _reference_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        try:
            self._on_frame(conn_id, data, recv_ms)
        except Exception:
            self._internal_error(conn_id, data)

    def _internal_error(self, conn_id: int, data: bytes) -> None:
        """Called inside an except block: a bug of ours must not kill the
        connection's reader, nor leave a book that may be half-updated looking valid."""
        self.counters.decode_errors += 1
        self.internal_errors += 1
        log.exception("coinbase conn %s: internal error on frame %r", conn_id, bytes(data[:80]))
        self._resync_connection(conn_id, "internal error")

    def _on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        counters = self.counters
        try:
            env = _ENVELOPE.decode(data)
        except ValueError as exc:
            # msgspec.DecodeError / ValidationError, and UnicodeDecodeError for
            # invalid UTF-8 inside a string: all ValueErrors.
            self.decode_error("frame", data, exc)
            return
        seq = env.sequence_num
        if seq is not None:
            follower = self._sequence(conn_id)
            last = follower.last_seq
            follower.last_seq = seq
            if last is not None and seq != last + 1:
                self.gaps += 1
                self._resync_connection(conn_id, f"sequence gap: {last} -> {seq}")
        if env.channel == "l2_data":
            self._on_l2(conn_id, env, recv_ms)
        elif env.type == "error":
            counters.ignored += 1
            self._warn("venue error", "coinbase conn %s: venue error: %s", conn_id, env.message[:200])
        else:
            counters.ignored += 1

    # -- level2 -----------------------------------------------------------------

    def _on_l2(self, conn_id: int, env: _Envelope, recv_ms: int) -> None:
        try:
            events = _L2_EVENTS.decode(env.events)
        except ValueError as exc:
            # The sequence number was spent on a message we cannot read, so some
            # book on this connection missed it: same as a gap.
            self.decode_error("l2_data events", bytes(env.events)[:160], exc)
            self._resync_connection(conn_id, "unreadable l2_data message")
            return
        event_ms = _event_ms(env.timestamp, recv_ms)
        for event in events:
            product = event.product_id
            markets = self._markets_of.get(product)
            if markets is None:
                self.counters.ignored += 1
                continue
            if event.type == "snapshot":
                self._snapshot(conn_id, product, markets, self._split(event.updates), event_ms)
            elif event.type == "update":
                if self._products[product].awaiting:
                    self.counters.ignored += 1  # old subscription's tail; a snapshot follows
                    continue
                self._update(conn_id, product, markets, self._split(event.updates), event_ms)
            else:
                self.counters.ignored += 1

    @staticmethod
    def _split(levels: list[_Level]) -> _Split | None:
        bids = [(u.price_level, u.new_quantity) for u in levels if u.side == "bid"]
        asks = [(u.price_level, u.new_quantity) for u in levels if u.side == "offer"]
        if len(bids) + len(asks) != len(levels):
            return None  # an unknown side: we cannot place every level
        return bids, asks

    def _snapshot(self, conn_id: int, product: str, markets: list[Market], split: _Split | None,
                  event_ms: int) -> None:
        try:
            if split is None:
                raise ValueError("unknown side")
            # load_snapshot validates everything before it replaces the book, so
            # the first market refuses exactly when every one would.
            for market in markets:
                load_levels(market.book, split[0], split[1])
        except ValueError as exc:
            self._reject(conn_id, product, f"bad snapshot: {exc}")
            return
        self._products[product].awaiting = False
        for market in markets:
            market.mark_valid()
            market.after_message(event_ms)

    def _update(self, conn_id: int, product: str, markets: list[Market], split: _Split | None,
                event_ms: int) -> None:
        try:
            if split is None:
                raise ValueError("unknown side")
            # One OrderBook.apply call per market; all-or-nothing across both
            # sides, and the same levels on each market's identical book.
            for market in markets:
                apply_levels(market.book, split[0], split[1])
        except ValueError as exc:
            self._reject(conn_id, product, f"bad update: {exc}")
            return
        for market in markets:
            market.after_message(event_ms)

    # -- resync -------------------------------------------------------------------

    def _reject(self, conn_id: int, product: str, reason: str) -> None:
        """A message we refused leaves that product's books out of sync: resubscribe it.

        Every market fed by the product got the same message: each is failed
        (recovery: at once, or after a backoff when it keeps happening), and one
        resubscribe brings all of them a snapshot.
        """
        self._warn(f"reject:{product}", "coinbase %s: %s; resyncing", product, reason)
        self._await((product,))
        self.fail_books([m.symbol for m in self._markets_of.get(product, ())], reason)

    def _resync_connection(self, conn_id: int, reason: str) -> None:
        products = self._products_of.get(conn_id, [])
        self._warn(f"resync:{conn_id}", "coinbase conn %s: %s; resubscribing %d books",
                   conn_id, reason, len(products))
        for product in products:
            for market in self._markets_of[product]:
                market.invalidate(reason)
        self._await(products)
        if products:
            self._resubscribe(conn_id, products)

    def request_books(self, conn_id: int, symbols: list[str]) -> None:
        products = list(dict.fromkeys(served_product(s) for s in symbols))
        self._await(products)
        self._resubscribe(conn_id, products)

    def _await(self, products: Iterable[str]) -> None:
        """These products' updates mean nothing until their next snapshot."""
        states = self._products
        for product in products:
            state = states.get(product)
            if state is not None:
                state.awaiting = True

    def _sequence(self, conn_id: int) -> SequenceState:
        follower = self._sequences.get(conn_id)
        if follower is None:
            follower = self._sequences[conn_id] = SequenceState()
        return follower

    def _resubscribe(self, conn_id: int, symbols: list[str]) -> None:
        self.actions.append(Send(conn_id, self._subscription("unsubscribe", "level2", symbols)))
        self.actions.append(Send(conn_id, self._subscription("subscribe", "level2", symbols)))

    @staticmethod
    def _subscription(kind: str, channel: str, symbols: list[str]) -> str:
        return _ENCODE.encode({"type": kind, "product_ids": symbols, "channel": channel}).decode()

    def _warn(self, key: str, msg: str, *args: object) -> None:
        self._trouble.log(log, logging.WARNING, key, msg, *args)
