"""OKX v5 public `books` channel (400 levels, 100 ms): spot ("okx") and perpetual swaps ("okx-swap").

Protocol (../shared/EXCHANGES.md and OKX's v5 docs): subscribe
`{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}, ...]}`;
OKX answers with a `snapshot` (`prevSeqId == -1`) and then `update`s.

* Sequence: every update's `prevSeqId` equals the `seqId` of the message
  before it.  An update with no changes repeats the same `seqId`, steps are
  not +1, and after maintenance `seqId` may even fall: only the link is
  checked.  A broken link resubscribes that instrument alone.
* Checksum: CRC32, read as a signed 32-bit integer, of
  `bid1px:bid1sz:ask1px:ask1sz:bid2px:...` over the best 25 levels of each
  side (when one side runs out the other continues alone), using the exact
  strings OKX sent.  OKX has deprecated the field: live traffic now carries
  0.  A non-zero checksum is verified after applying the message; a zero one
  is skipped and counted (`counters.checksum_skipped`).  A mismatch
  invalidates the book and resubscribes the instrument.

Because the checksum is computed on OKX's text, the handler keeps, beside
the float book, the text of every level it holds (price -> (px, sz) as OKX
wrote it) in the state's `LevelTexts` (sentrycore/leveltext.pyx), a C hash
table with a dict-like API; the float book still gets one call per message.

Hot path: `on_frame` is bound to `sentrycore.okx.OkxFramePath.on_frame`,
which counts the frame and takes a synced book's single chaining update
entirely in C: parse, apply, store the level texts, checksum (skipped and
counted when 0, else a CRC32 from the stored bytes) and
`MarketCore.after_message`; a mismatch calls `_checksum_mismatch`, the same
method the reference path uses.  The per-instrument state is a
`sentrycore.okx.OkxBookState` subclass, shared by both paths.  Any frame the
C path does not take in full goes unchanged through `_decode_frame`
(msgspec), the reference path, where every rule here lives
(tests/feeds/test_native_okx.py compares them).

Snapshot: OKX has announced that `books` will stop pushing the initial
snapshot.  Both behaviours are handled.  A WebSocket snapshot is taken
whenever one comes.  When an update arrives after OKX acknowledged our
subscribe and no snapshot came first, the venue is not sending one: the
handler buffers the updates (a contiguous prevSeqId/seqId run) and fetches
`GET <rest_url>?instId=...&sz=400` (`OKX_REST_URL`, `OKX_SWAP_REST_URL`).  The
REST answer carries its own `seqId` S: buffered updates with `seqId <= S` are
already in it, the first applied update must have `prevSeqId <= S < seqId`
(the bridge), and the chain continues as usual from there.  An answer older
than the buffer (the first kept update has `prevSeqId > S`) is fetched again.

Budgets: OKX allows 480 subscribe/unsubscribe requests per hour per
connection.  Each connection has a `TokenBucket` (at most 480 in any hour);
a resubscribe that would overspend it reconnects that connection instead
(a new connection starts a new budget and resubscribes every instrument in
one request).  New connections are paced by the live runner (3 per second
per IP).

Keepalive: the text `ping` every 25 s (OKX drops a connection silent for
30 s) answered by `pong`.  OKX does not answer WebSocket protocol pings, so
the transport's idle probe sends this same text `ping` (see
`sentrycoin.transport`).  An OKX `notice` event (service upgrade) asks us
to reconnect: we queue a `Reconnect` for that connection.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from typing import ClassVar

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
from sentrycoin.feeds.symbols import to_venue
from sentrycoin.market import Market
from sentrycoin.ratelimit import TokenBucket
from sentrycore.okx import OkxBookState, OkxFramePath

log = logging.getLogger("sentrycoin.feeds.okx")

CHANNEL = "books"
#: Levels the `books` channel publishes per side.
CHANNEL_DEPTH = 400
#: Levels per side covered by the checksum.
CHECKSUM_LEVELS = 25
#: Instruments per connection (OKX counts subscribe requests per connection per hour).
SYMBOLS_PER_CONNECTION = 100
#: Args per subscribe request (OKX caps a request's total size at 64 KB).
ARGS_PER_MESSAGE = 100
#: Text-map size that triggers a prune against the book's own levels.
_TEXT_PRUNE_LEVELS = 20_000
PING_PAYLOAD = "ping"
PING_INTERVAL_S = 25.0
#: Subscribe/unsubscribe requests OKX allows per connection per hour.
SUBSCRIBE_REQUESTS_PER_HOUR = 480
#: Updates kept while a REST snapshot is on its way (100 ms pushes: ~3 minutes).
MAX_BUFFERED_UPDATES = 2000


class Arg(msgspec.Struct):
    channel: str = ""
    instId: str = ""


class BookData(msgspec.Struct):
    # Levels are [px, sz, "0", orders] strings; kept as text for the checksum.
    asks: list[list[str]]
    bids: list[list[str]]
    ts: int
    seqId: int
    prevSeqId: int
    checksum: int = 0


class BookMessage(msgspec.Struct):
    arg: Arg
    action: str
    data: list[BookData]


class RestBook(msgspec.Struct):
    """One entry of `GET /api/v5/market/books`; `seqId` ties it to the WebSocket chain."""

    asks: list[list[str]]
    bids: list[list[str]]
    seqId: int
    ts: int = 0


class RestBooks(msgspec.Struct):
    code: str = ""
    msg: str = ""
    data: list[RestBook] = []


class EventMessage(msgspec.Struct):
    """Subscribe acks, errors, notices, and the fallback shape for anything else."""

    event: str = ""
    code: str = ""
    msg: str = ""
    arg: Arg | None = None


def okx_checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """OKX's book checksum from (px, sz) text pairs, bids best first, asks best first.

    Interleaves bid_i then ask_i for i < 25, continuing with whichever side is
    longer, joins with ':' and returns zlib's CRC32 as a signed 32-bit int.
    """
    parts: list[str] = []
    nb = min(len(bids), CHECKSUM_LEVELS)
    na = min(len(asks), CHECKSUM_LEVELS)
    for i in range(max(nb, na)):
        if i < nb:
            parts.append(bids[i][0])
            parts.append(bids[i][1])
        if i < na:
            parts.append(asks[i][0])
            parts.append(asks[i][1])
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= (1 << 31) else crc


class _SymbolState(OkxBookState):
    """`market`, `synced`, `last_seq` and the level texts (`bid_text`,
    `ask_text`: price -> (px, sz) as OKX wrote them, for every level the book
    holds) live in the Cython base class, shared with the C path."""

    __slots__ = ("symbol", "inst_id", "conn_id", "acked", "buffer", "fetching", "bridge_seq")

    def __init__(self, symbol: str, inst_id: str, market: Market, conn_id: int) -> None:
        super().__init__(market)
        self.symbol = symbol
        self.inst_id = inst_id
        self.conn_id = conn_id
        self.synced = False
        self.last_seq = 0
        # REST bridge (no WebSocket snapshot): subscribe acknowledged, updates
        # kept for the bridge, a request in flight, a REST snapshot loaded and
        # waiting for the update that bridges it (its seqId).
        self.acked = False
        self.buffer: list[BookData] = []
        self.fetching = False
        self.bridge_seq: int | None = None

    def unsync(self) -> None:
        """Forget the chain and any bridge in progress (a new subscription starts over)."""
        self.synced = False
        self.acked = False
        self.buffer = []
        self.fetching = False
        self.bridge_seq = None


def _parse_side(levels: list[list[str]]) -> tuple[list[tuple[float, float]], list[tuple[float, str, str]]]:
    """Text levels -> float pairs for the book and (price, px, sz) for the text map.

    Raises ValueError / IndexError on malformed levels (caller rejects the message).
    """
    pairs: list[tuple[float, float]] = []
    texts: list[tuple[float, str, str]] = []
    for level in levels:
        px = level[0]
        sz = level[1]
        price = float(px)
        pairs.append((price, float(sz)))
        texts.append((price, px, sz))
    return pairs, texts


class _OkxHandler(FeedHandler):
    venue: ClassVar[str] = ""

    @classmethod
    def book_levels(cls, depth: int) -> int:
        return CHANNEL_DEPTH

    def __init__(
        self,
        markets: list[Market],
        ws_url: str,
        rest_url: str | None = None,
        *,
        depth: int = 50,
        symbols_per_connection: int = SYMBOLS_PER_CONNECTION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(markets, ws_url, rest_url)
        self._clock = clock
        # conn_id -> its subscribe budget (replaced on every new connection).
        self._sub_budget: dict[int, TokenBucket] = {}
        self._budget_reconnect: set[int] = set()  # a Reconnect queued for a spent budget
        self.subscribe_requests = 0
        self.depth = depth
        if depth > CHANNEL_DEPTH:
            log.warning("%s: depth %d exceeds the %s channel's %d levels", self.venue, depth, CHANNEL, CHANNEL_DEPTH)
        log.info("%s: subscribing %s (%d levels) for depth %d", self.venue, CHANNEL, CHANNEL_DEPTH, depth)
        self._decoder = msgspec.json.Decoder(BookMessage, strict=False)
        self._event_decoder = msgspec.json.Decoder(EventMessage)
        self._rest_decoder = msgspec.json.Decoder(RestBooks, strict=False)
        self._states: dict[str, _SymbolState] = {}
        self._by_inst: dict[str, _SymbolState] = {}
        for conn_id, group in enumerate(chunked(list(self.markets), symbols_per_connection)):
            self._specs.append(ConnectionSpec(
                conn_id=conn_id, url=ws_url, symbols=list(group),
                ping_payload=PING_PAYLOAD, ping_interval_s=PING_INTERVAL_S,
            ))
            for symbol in group:
                inst_id = to_venue(self.venue, symbol)
                st = _SymbolState(symbol, inst_id, self.markets[symbol], conn_id)
                self._states[symbol] = st
                self._by_inst[inst_id] = st
        # Read once, so a test may lower it before building the handler.
        self._text_prune_levels = _TEXT_PRUNE_LEVELS
        # The hot path in C: a synced book's chaining update never enters
        # Python (see on_frame below, which this instance attribute stands in for).
        self._frame_path = OkxFramePath(self._by_inst, self.counters, self._decode_frame,
                                        self._checksum_mismatch, self._text_prune_levels)
        self.on_frame = self._frame_path.on_frame  # type: ignore[method-assign]

    def on_connected(self, conn_id: int) -> None:
        # A new connection: a new subscribe budget (at most 480 in any hour, half of it as a burst).
        self._sub_budget[conn_id] = TokenBucket(
            SUBSCRIBE_REQUESTS_PER_HOUR / 2 / 3600.0, SUBSCRIBE_REQUESTS_PER_HOUR / 2, self._clock)
        self._budget_reconnect.discard(conn_id)
        args = []
        for symbol in self.mark_connected(conn_id):
            st = self._states[symbol]
            st.unsync()
            args.append({"channel": CHANNEL, "instId": st.inst_id})
        for chunk in chunked(args, ARGS_PER_MESSAGE):
            self._request(conn_id, "subscribe", chunk)

    def on_disconnected(self, conn_id: int) -> None:
        super().on_disconnected(conn_id)
        for st in self._states.values():
            if st.conn_id == conn_id:
                st.unsync()

    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        """Count the frame; a single update for a synced book whose prevSeqId
        is the last seqId is applied, its texts stored, its checksum checked
        and the detector run, all in C (`OkxFramePath`); anything else comes
        back untouched (a bad value included) for the reference path,
        `_decode_frame`.  Each instance binds `on_frame` to the C object's;
        this method is what a caller of the class attribute gets."""
        self._frame_path.on_frame(conn_id, data, recv_ms)

    def _decode_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        """The reference path: msgspec decode, then the sequence and checksum rules."""
        counters = self.counters
        if data == b"pong" or data == "pong":
            counters.ignored += 1
            return
        try:
            msg = self._decoder.decode(data)
        except ValueError as exc:  # msgspec errors and invalid UTF-8 (UnicodeDecodeError)
            self._other_frame(conn_id, data, exc)
            return
        st = self._by_inst.get(msg.arg.instId)
        if st is None or msg.arg.channel != CHANNEL:
            counters.ignored += 1
            return
        action = msg.action
        for d in msg.data:
            if action == "snapshot":
                if not self._snapshot(st, d):
                    return
            elif action == "update":
                if not st.synced:
                    if not self._unsynced_update(st, d):
                        return
                    continue
                if d.prevSeqId != st.last_seq:
                    self._resubscribe(st, f"sequence break: prevSeqId={d.prevSeqId} after seqId={st.last_seq}")
                    return
                if not self._update(st, d):
                    return
            else:
                self.decode_error("action", data, action)
                self._resubscribe(st, f"unknown action {action!r}")
                return
            st.market.after_message(d.ts)

    def on_snapshot(self, symbol: str, body: bytes, recv_ms: int) -> None:
        """A REST `market/books` answer: bridge it into the buffered updates."""
        st = self._states.get(symbol)
        if st is None or not st.fetching or st.synced:
            self.counters.ignored += 1  # late, or a WebSocket snapshot came meanwhile
            return
        st.fetching = False
        try:
            answer = self._rest_decoder.decode(body)
            if answer.code not in ("0", "") or len(answer.data) != 1:
                raise ValueError(f"code {answer.code!r} {answer.msg[:120]!r}, {len(answer.data)} books")
            book = answer.data[0]
            bids, bid_texts = _parse_side(book.bids)
            asks, ask_texts = _parse_side(book.asks)
        except (ValueError, IndexError) as exc:
            self.decode_error("REST snapshot", body, exc)
            st.market.invalidate(f"bad REST snapshot: {exc}")
            self._fetch(st)
            return
        seq = book.seqId
        buffer = [d for d in st.buffer if d.seqId > seq]  # the rest is inside the snapshot
        if buffer and buffer[0].prevSeqId > seq:
            log.info("%s %s: REST snapshot seqId=%d older than buffered prevSeqId=%d, fetching again",
                     self.venue, symbol, seq, buffer[0].prevSeqId)
            self._fetch(st)
            return
        try:
            load_levels(st.market.book, bids, asks)
        except ValueError as exc:
            self.reject(st.market, f"bad REST snapshot: {exc}")
            self._fetch(st)
            return
        st.bid_text.load(bid_texts)
        st.ask_text.load(ask_texts)
        st.bridge_seq = seq
        st.buffer = []
        for d in buffer:
            if not st.synced:
                if not self._unsynced_update(st, d):
                    return
                continue
            if d.prevSeqId != st.last_seq:
                self._resubscribe(st, f"buffered sequence break: prevSeqId={d.prevSeqId} after seqId={st.last_seq}")
                return
            if not self._update(st, d):
                return
            st.market.after_message(d.ts)

    # -- internals ------------------------------------------------------------

    def _unsynced_update(self, st: _SymbolState, d: BookData) -> bool:
        """An update for a book without a synced chain.  False: stop this message (resync started)."""
        bridge = st.bridge_seq
        if bridge is not None:
            # A REST snapshot is loaded: skip what it holds, apply the bridging update.
            if d.seqId <= bridge:
                self.counters.ignored += 1
                return True
            if d.prevSeqId > bridge:
                log.info("%s %s: REST snapshot seqId=%d does not bridge to prevSeqId=%d, fetching again",
                         self.venue, st.symbol, bridge, d.prevSeqId)
                st.bridge_seq = None
                st.buffer = [d]
                self._fetch(st)
                return True
            st.synced = True
            st.bridge_seq = None
            if not self._update(st, d):
                return False
            st.market.mark_valid()
            st.market.after_message(d.ts)
            return True
        if not st.acked or self.rest_url is None:
            self.counters.ignored += 1  # in flight before the (re)subscribe's snapshot
            return True
        # Subscribed, and OKX sent an update without a snapshot: bridge from REST.
        buffer = st.buffer
        if buffer and d.prevSeqId != buffer[-1].seqId:
            buffer.clear()  # the older run cannot be bridged past this hole
        buffer.append(d)
        if len(buffer) > MAX_BUFFERED_UPDATES:
            del buffer[0]
        if not st.fetching:
            self._fetch(st)
        return True

    def _fetch(self, st: _SymbolState) -> None:
        st.fetching = True
        self.actions.append(FetchSnapshot(st.symbol, f"{self.rest_url}?instId={st.inst_id}&sz={CHANNEL_DEPTH}"))

    def _snapshot(self, st: _SymbolState, d: BookData) -> bool:
        try:
            bids, bid_texts = _parse_side(d.bids)
            asks, ask_texts = _parse_side(d.asks)
            load_levels(st.market.book, bids, asks)
        except (ValueError, IndexError) as exc:
            self._resubscribe(st, f"bad snapshot seqId={d.seqId}: {exc}")
            return False
        st.bid_text.load(bid_texts)
        st.ask_text.load(ask_texts)
        st.last_seq = d.seqId
        st.synced = True
        # The WebSocket snapshot wins over a REST bridge in progress.
        st.buffer = []
        st.bridge_seq = None
        if not self._checksum_ok(st, d.checksum):
            return False
        st.market.mark_valid()
        return True

    def _update(self, st: _SymbolState, d: BookData) -> bool:
        try:
            bids, bid_texts = _parse_side(d.bids)
            asks, ask_texts = _parse_side(d.asks)
            apply_levels(st.market.book, bids, asks)
        except (ValueError, IndexError) as exc:
            self._resubscribe(st, f"bad level in update seqId={d.seqId}: {exc}")
            return False
        for texts, side in ((bid_texts, st.bid_text), (ask_texts, st.ask_text)):
            for price, px, sz in texts:
                if float(sz) == 0.0:
                    side.pop(price, None)
                else:
                    side[price] = (px, sz)
        st.last_seq = d.seqId
        if len(st.bid_text) + len(st.ask_text) > self._text_prune_levels:
            st.prune_texts()  # the book may have dropped its worst levels
        return self._checksum_ok(st, d.checksum)

    def _checksum_ok(self, st: _SymbolState, expected: int) -> bool:
        if expected == 0:
            self.counters.checksum_skipped += 1
            return True
        book = st.market.book
        try:
            bids = [st.bid_text[p] for p in book.bids(CHECKSUM_LEVELS)[:, 0].tolist()]
            asks = [st.ask_text[p] for p in book.asks(CHECKSUM_LEVELS)[:, 0].tolist()]
        except KeyError:
            actual = None  # a level without its text: cannot match
        else:
            actual = okx_checksum(bids, asks)
        if actual != expected:
            self._checksum_mismatch(st, actual, expected)
            return False
        return True

    def _checksum_mismatch(self, st: _SymbolState, actual: int | None, expected: int) -> None:
        """The book disagrees with OKX's checksum (`actual` None: a level without
        its text): count it and resubscribe.  The C path calls this too."""
        st.market.checksum_mismatches += 1
        self._resubscribe(st, f"checksum mismatch: got {actual}, OKX says {expected}")

    def _resubscribe(self, st: _SymbolState, reason: str) -> None:
        """Invalidate one instrument; recovery asks OKX for a fresh snapshot of it alone."""
        log.info("%s %s: resyncing (%s)", self.venue, st.symbol, reason)
        st.unsync()
        self.fail_book(st.symbol, reason)

    def request_books(self, conn_id: int, symbols: list[str]) -> None:
        """Unsubscribe + subscribe these instruments, within the connection's hourly budget."""
        args = []
        for symbol in symbols:
            st = self._states[symbol]
            st.unsync()
            args.append({"channel": CHANNEL, "instId": st.inst_id})
        if conn_id in self._budget_reconnect:
            return  # the connection is being replaced: its new subscribe covers these instruments
        chunks = chunked(args, ARGS_PER_MESSAGE)
        budget = self._sub_budget.get(conn_id)
        if budget is not None and not budget.try_take(2 * len(chunks)):
            log.warning("%s conn %d: subscribe budget (%d/hour) spent; reconnecting to resubscribe %s",
                        self.venue, conn_id, SUBSCRIBE_REQUESTS_PER_HOUR, ", ".join(symbols))
            self._budget_reconnect.add(conn_id)
            self.actions.append(Reconnect(conn_id, "OKX subscribe budget spent"))
            return
        for op in ("unsubscribe", "subscribe"):
            for chunk in chunks:
                self._request(conn_id, op, chunk, charged=True)

    def _request(self, conn_id: int, op: str, args: list[dict[str, str]], *, charged: bool = False) -> None:
        """Queue one subscribe/unsubscribe request (`charged`: its budget token was already taken)."""
        if not charged:
            budget = self._sub_budget.get(conn_id)
            if budget is not None:
                budget.try_take(1)  # the first subscribe of a connection always fits
        self.subscribe_requests += 1
        self.actions.append(Send(conn_id, msgspec.json.encode({"op": op, "args": args}).decode()))

    def _other_frame(self, conn_id: int, data: bytes, exc: Exception) -> None:
        try:
            ev = self._event_decoder.decode(data)
        except ValueError:  # msgspec errors and invalid UTF-8
            self.decode_error("frame", data, exc)
            return
        st = self._by_inst.get(ev.arg.instId) if ev.arg is not None else None
        if not ev.event:
            # Looks like a book message we cannot read: that instrument lost an update.
            # (or the snapshot it waits for): either way it needs a new one.
            self.decode_error("book message", data, exc)
            if st is not None:
                self._resubscribe(st, "undecodable book message")
            return
        self.counters.ignored += 1
        if ev.event == "subscribe" and st is not None and ev.arg is not None and ev.arg.channel == CHANNEL:
            st.acked = True  # from here on, an update without a snapshot means "fetch it over REST"
        if ev.event == "error":
            self._log_throttle.log(log, logging.WARNING, "okx-error", "%s: error %s: %s",
                                   self.venue, ev.code, ev.msg[:200])
            # "Wrong URL or channel:books,instId:FOO-USDT doesn't exist": say so in /status.
            _, found, rest = ev.msg.partition("instId:")
            named = self._by_inst.get(rest.split(" ")[0].rstrip(",")) if found else None
            if named is not None and not named.synced:
                self._resubscribe(named, f"subscribe failed: {ev.code} {ev.msg[:120]}")
        elif ev.event == "notice":
            log.warning("%s: notice %s: %s; reconnecting", self.venue, ev.code, ev.msg[:200])
            self.actions.append(Reconnect(conn_id, f"OKX notice {ev.code}"))


class OkxSpotHandler(_OkxHandler):
    venue: ClassVar[str] = "okx"


class OkxSwapHandler(_OkxHandler):
    venue: ClassVar[str] = "okx-swap"
