"""Venue emulator core: an aiohttp server on 127.0.0.1 driven by true books.

Each venue module subclasses `VenueEmulator` (routes, REST answers) and
`Session` (one client WebSocket: subscriptions, update encoding).  A tick
loop steps every symbol's `TrueBook` and hands the changes to every
subscribed session, which encodes them in the venue's real wire format.

Faults are injected per connection (`inject`) and consumed by the next book
message of that connection (optionally: of one symbol):

* DROP, DUPLICATE, REORDER (held until the next book message), GAP (the
  venue's sequence field skips; data intact), BAD_CHECKSUM (venues with a
  checksum), GARBAGE (a malformed frame before the message), STALL (socket
  stays open, nothing is sent, pings go unanswered), CLOSE (abrupt TCP abort);
* STALE_SNAPSHOT (REST venues): the next snapshot request for the symbol is
  answered with an old state, older than what the stream already delivered;
* snapshot faults, venue-wide, consumed by the next subscribe (WebSocket
  venues) or REST snapshot request (Binance) of the symbol: BAD_SNAPSHOT (cut
  in half: undecodable), NO_SNAPSHOT (never answered: no ack, no snapshot;
  REST: the request hangs), REFUSE_SUBSCRIBE (the venue's error answer);
* message faults, consumed by the next update of the symbol on a connection:
  CROSSED (a bid at the best ask), HUGE_QTY (two bids of ~1e308), CLOCK_AHEAD /
  CLOCK_BEHIND (stamped one day off).  CROSSED and HUGE_QTY exist in that
  connection's message only, never in the truth.

`dump(symbol)` / `restore(symbol)` make a real sell wall (and take it away)
through the normal update path: a flash crash the client must alert on.

The emulator keeps every recent true top-of-book (`TrueBook.seen`) so tests
can assert that a book a client calls valid was really the venue's book.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from enum import StrEnum
from typing import ClassVar

from aiohttp import WSMsgType, web

from sentrycoin.emulator.truebook import ASK, BID, Change, TrueBook

log = logging.getLogger("sentrycoin.emulator")


class Fault(StrEnum):
    DROP = "drop"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    GAP = "gap"
    BAD_CHECKSUM = "bad_checksum"
    STALL = "stall"
    CLOSE = "close"
    GARBAGE = "garbage"
    STALE_SNAPSHOT = "stale_snapshot"
    BAD_SNAPSHOT = "bad_snapshot"
    NO_SNAPSHOT = "no_snapshot"
    REFUSE_SUBSCRIBE = "refuse_subscribe"
    CROSSED = "crossed"
    HUGE_QTY = "huge_qty"
    CLOCK_AHEAD = "clock_ahead"
    CLOCK_BEHIND = "clock_behind"


#: Faults the generic delivery path applies; the others need the venue's encoder.
DELIVERY_FAULTS = frozenset({Fault.DROP, Fault.DUPLICATE, Fault.REORDER, Fault.STALL, Fault.CLOSE, Fault.GARBAGE})
#: Venue-wide faults met by the next (re)subscribe or snapshot request of a symbol.
SNAPSHOT_FAULTS = frozenset({Fault.BAD_SNAPSHOT, Fault.NO_SNAPSHOT, Fault.REFUSE_SUBSCRIBE})
#: Faults carried by the next update of a symbol (every venue encoder applies them).
MESSAGE_FAULTS = frozenset({Fault.CROSSED, Fault.HUGE_QTY, Fault.CLOCK_AHEAD, Fault.CLOCK_BEHIND})
#: What every venue emulator can express.
COMMON_FAULTS = DELIVERY_FAULTS | SNAPSHOT_FAULTS | MESSAGE_FAULTS
DAY_MS = 86_400_000
#: HUGE_QTY levels: large enough that two of them overflow a float sum.
HUGE_QTY = 1e308
GARBAGE_FRAMES = ('{"oops": tru', "\x00\x01not json at all", '[1,2,', '{"data": NaN}')


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Session:
    """One client WebSocket on the emulator."""

    #: Does the venue answer WebSocket protocol PINGs?  (OKX answers only its text `ping`.)
    answers_protocol_ping: ClassVar[bool] = True

    def __init__(self, emulator: VenueEmulator, ws: web.WebSocketResponse, request: web.Request,
                 index: int) -> None:
        self.emulator = emulator
        self.ws = ws
        self.request = request
        self.index = index
        self.subscribed: set[str] = set()  # normal-form symbols with book data flowing
        self.faults: list[tuple[Fault, str | None]] = []
        self.faults_applied: list[tuple[Fault, str]] = []
        self.received: list[str] = []  # client text frames, for assertions
        self.received_at: list[float] = []  # monotonic arrival time of each of them
        self.opened_at = time.monotonic()
        self.stalled = False
        self.closed = False
        self._held: dict[str, str] = {}  # symbol -> message held back by REORDER
        self._queue: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.last_pong_monotonic = time.monotonic()
        self.pings_sent = 0
        self.pongs_received = 0
        self.protocol_pings = 0  # WebSocket PINGs the client sent

    # -- overridden by venues ------------------------------------------------

    async def on_open(self) -> None:
        """Right after the upgrade (URL-based subscriptions, greetings)."""

    async def on_text(self, text: str) -> None:
        """A text frame from the client."""

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        """The true book of `symbol` changed: send the update if subscribed."""

    # -- sending ---------------------------------------------------------------

    def send(self, payload: str | bytes) -> None:
        """Queue a frame (control/ack traffic: never subject to faults)."""
        if not self.closed and not self.stalled:
            self._queue.put_nowait(payload)

    def take_fault(self, symbol: str, kinds: frozenset[Fault] | set[Fault]) -> Fault | None:
        """Consume the first pending fault of `kinds` that targets `symbol` (or any symbol)."""
        for i, (fault, target) in enumerate(self.faults):
            if fault in kinds and (target is None or target == symbol):
                del self.faults[i]
                self.faults_applied.append((fault, symbol))
                return fault
        return None

    def message_faults(self, symbol: str, book: TrueBook) -> tuple[list[Change], int]:
        """For the next update of `symbol`: extra levels (in ticks/lots) and a clock shift in ms."""
        fault = self.take_fault(symbol, MESSAGE_FAULTS)
        if fault is Fault.CROSSED and book.asks and book.bids:
            return [(BID, min(book.asks), max(1, book.bids[max(book.bids)]))], 0
        if fault is Fault.HUGE_QTY and book.bids:
            best = max(book.bids)
            lots = 10 ** (308 + book.qty_decimals)  # reads as 1e308 (HUGE_QTY)
            return [(BID, best - 1, lots), (BID, best - 2, lots)], 0
        if fault is Fault.CLOCK_AHEAD:
            return [], DAY_MS
        if fault is Fault.CLOCK_BEHIND:
            return [], -DAY_MS
        return [], 0

    def emit_snapshot(self, symbol: str, payload: str) -> None:
        """Send a snapshot, cut in half when BAD_SNAPSHOT was armed for it (the caller
        handled NO_SNAPSHOT / REFUSE_SUBSCRIBE, which change what the venue answers)."""
        if self.emulator.take_snapshot_fault(symbol, {Fault.BAD_SNAPSHOT}) is Fault.BAD_SNAPSHOT:
            payload = payload[: len(payload) // 2]
        self.send(payload)

    def emit_book(self, symbol: str, payload: str) -> None:
        """Deliver one book message through the fault path."""
        if self.closed or self.stalled:
            return
        fault = self.take_fault(symbol, DELIVERY_FAULTS)
        if fault is Fault.DROP:
            return
        if fault is Fault.CLOSE:
            self.abort()
            return
        if fault is Fault.STALL:
            self.stall()
            return
        if fault is Fault.REORDER:
            self._held[symbol] = payload
            return
        if fault is Fault.GARBAGE:
            self.send(self.emulator.rng.choice(GARBAGE_FRAMES))
        self.send(payload)
        if fault is Fault.DUPLICATE:
            self.send(payload)
        held = self._held.pop(symbol, None)
        if held is not None:
            self.send(held)

    def stall(self) -> None:
        """Keep the socket open but go silent: no data, no pongs, no reading."""
        self.stalled = True
        self.faults.clear()  # nothing will ever be delivered on this socket again
        transport = self.request.transport
        if transport is not None:
            try:
                transport.pause_reading()
            except Exception:  # already closing
                pass
        loop = asyncio.get_running_loop()
        loop.call_later(self.emulator.stall_s, self.abort)

    def abort(self) -> None:
        """Abrupt close: TCP reset, no close frame."""
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self._queue.put_nowait(None)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)
            await self.ws.close()

    # -- plumbing ----------------------------------------------------------------

    def spawn(self, coro) -> None:  # noqa: ANN001 - any coroutine
        self._tasks.append(asyncio.get_running_loop().create_task(coro))

    async def _write_loop(self) -> None:
        ws = self.ws
        while True:
            item = await self._queue.get()
            if item is None or self.closed:
                return
            if self.stalled:
                continue
            try:
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                else:
                    await ws.send_str(item)
            except Exception:  # peer went away
                self.closed = True
                return

    async def _ping_loop(self, interval_s: float, timeout_s: float) -> None:
        """Server-initiated WebSocket PINGs; drop clients that do not PONG (Binance)."""
        while not self.closed:
            await asyncio.sleep(interval_s)
            if self.closed or self.stalled:
                continue
            if time.monotonic() - self.last_pong_monotonic > timeout_s:
                log.info("session %d: no pong for %.1fs, closing", self.index, timeout_s)
                await self.close()
                return
            try:
                await self.ws.ping(b"emulator")
                self.pings_sent += 1
            except Exception:
                return

    async def serve(self) -> None:
        ws = self.ws
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        emu = self.emulator
        if emu.server_ping_s:
            self.spawn(self._ping_loop(emu.server_ping_s, emu.pong_timeout_s))
        try:
            await self.on_open()
            async for msg in ws:
                if self.stalled:
                    continue
                if msg.type == WSMsgType.TEXT:
                    self.received.append(msg.data)
                    self.received_at.append(time.monotonic())
                    await self.on_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.received.append(msg.data.decode("utf-8", "replace"))
                    self.received_at.append(time.monotonic())
                    await self.on_text(msg.data.decode("utf-8", "replace"))
                elif msg.type == WSMsgType.PING:
                    self.protocol_pings += 1
                    if self.answers_protocol_ping:
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    self.pongs_received += 1
                    self.last_pong_monotonic = time.monotonic()
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True
            self._queue.put_nowait(None)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(self._writer, *self._tasks, return_exceptions=True)


class VenueEmulator:
    """Base class: one venue's WebSocket + REST endpoints on 127.0.0.1."""

    venue: str = ""  # a class default; okx, bybit and binance set theirs per instance (spot or derivatives)
    session_class: ClassVar[type[Session]] = Session
    #: Faults this venue's protocol can express.
    supported_faults: ClassVar[frozenset[Fault]] = DELIVERY_FAULTS

    def __init__(
        self,
        symbols: list[str],
        *,
        seed: int = 1,
        tick_s: float = 0.02,
        warmup_steps: int = 300,
        server_ping_s: float | None = None,
        pong_timeout_s: float = 60.0,
        stall_s: float = 60.0,
        book_kwargs: dict | None = None,
    ) -> None:
        self.symbols = list(symbols)
        self.rng = random.Random(seed)
        self.tick_s = tick_s
        self.server_ping_s = server_ping_s
        self.pong_timeout_s = pong_timeout_s
        self.stall_s = stall_s
        kwargs = dict(book_kwargs or {})
        self.books: dict[str, TrueBook] = {}
        for i, symbol in enumerate(self.symbols):
            per_symbol = {**kwargs, **self.book_kwargs_for(i, symbol)}
            per_symbol.setdefault("mid_ticks", 5_000_000 - 1_000_000 * (i % 4))
            self.books[symbol] = TrueBook(random.Random(seed * 1000 + i), **per_symbol)
        self.sessions: list[Session] = []
        self.rest_faults: list[tuple[Fault, str]] = []
        self.snapshot_faults: list[tuple[Fault, str]] = []
        self.snapshot_faults_applied: list[tuple[Fault, str]] = []
        self.rest_requests: list[str] = []  # request paths + queries, for assertions
        self.paused = False
        self.step_count = 0  # live steps since start (warm-up excluded)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.port = 0
        for _ in range(warmup_steps):
            for symbol in self.symbols:
                self.step_symbol(symbol, warmup=True)

    # -- overridden by venues ----------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def book_kwargs_for(self, index: int, symbol: str) -> dict:
        """Per-symbol TrueBook settings (precisions), on top of `book_kwargs`."""
        return {}

    def on_symbol_step(self, symbol: str, changes: list[Change]) -> None:
        """Venue-wide bookkeeping per step (update ids, REST history)."""

    @property
    def ws_url(self) -> str:
        raise NotImplementedError

    @property
    def rest_url(self) -> str | None:
        return None

    # -- control ---------------------------------------------------------------

    def inject(self, fault: Fault, *, symbol: str | None = None, conn: int | None = None) -> list[Session]:
        """Arm `fault` for the next book message (of `symbol`) on connection `conn` (None: all open)."""
        if fault not in self.supported_faults:
            raise ValueError(f"{self.venue} emulator cannot express {fault.value}")
        if fault is Fault.STALE_SNAPSHOT:
            if symbol is None:
                raise ValueError("stale_snapshot needs a symbol")
            self.rest_faults.append((fault, symbol))
            return []
        if fault in SNAPSHOT_FAULTS:
            if symbol is None:
                raise ValueError(f"{fault.value} needs a symbol")
            self.snapshot_faults.append((fault, symbol))
            return []
        targets = [s for s in self.sessions if not (s.closed or s.stalled) and (conn is None or s.index == conn)]
        for session in targets:
            session.faults.append((fault, symbol))
        return targets

    def pending_faults(self) -> int:
        return len(self.rest_faults) + len(self.snapshot_faults) + sum(
            len(s.faults) for s in self.sessions if not (s.closed or s.stalled))

    def take_snapshot_fault(self, symbol: str, kinds: frozenset[Fault] | set[Fault] = SNAPSHOT_FAULTS) -> Fault | None:
        for i, (fault, target) in enumerate(self.snapshot_faults):
            if target == symbol and fault in kinds:
                del self.snapshot_faults[i]
                self.snapshot_faults_applied.append((fault, symbol))
                return fault
        return None

    def dump(self, symbol: str, lots: int = 5_000_000, levels: int = 10) -> None:
        """A sell wall: the best `levels` asks become `lots` each, sent as a normal update."""
        book = self.books[symbol]
        changes = [(ASK, price, lots) for price, _ in book.top(ASK, levels)]
        self.apply_changes(symbol, changes)

    def restore(self, symbol: str, levels: int = 10) -> None:
        """Take the wall away: those asks get ordinary sizes again."""
        book = self.books[symbol]
        changes = [(ASK, price, self.rng.randint(1, 50_000)) for price, _ in book.top(ASK, levels)]
        self.apply_changes(symbol, changes)

    def apply_changes(self, symbol: str, changes: list[Change]) -> None:
        """Change the truth by hand and publish it like a step."""
        book = self.books[symbol]
        for side, price, qty in changes:
            levels = book.bids if side == BID else book.asks
            if qty:
                levels[price] = qty
            else:
                levels.pop(price, None)
        book.remember()
        self._publish(symbol, changes)

    def open_sessions(self) -> list[Session]:
        return [s for s in self.sessions if not (s.closed or s.stalled)]

    def pause(self) -> None:
        """Freeze the true books (sessions keep answering requests)."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def step_symbol(self, symbol: str, *, warmup: bool = False) -> list[Change]:
        changes = self.books[symbol].step()
        self._publish(symbol, changes, to_sessions=not warmup)
        return changes

    def _publish(self, symbol: str, changes: list[Change], *, to_sessions: bool = True) -> None:
        """Venue bookkeeping for a change of the truth, then every subscribed session's update."""
        self.on_symbol_step(symbol, changes)
        if to_sessions:
            for session in self.sessions:
                if not session.closed and symbol in session.subscribed:
                    session.on_step(symbol, changes)

    def step(self) -> None:
        self.step_count += 1
        for symbol in self.symbols:
            self.step_symbol(symbol)

    # -- server lifecycle ---------------------------------------------------------

    async def start(self) -> VenueEmulator:
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
        return self

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        for session in self.sessions:
            if not session.closed:
                session.abort()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> VenueEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            if not self.paused:
                self.step()

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = self.session_class(self, ws, request, len(self.sessions))
        self.sessions.append(session)
        await session.serve()
        return ws

    def take_rest_fault(self, symbol: str) -> Fault | None:
        for i, (fault, target) in enumerate(self.rest_faults):
            if target == symbol:
                del self.rest_faults[i]
                return fault
        return None
