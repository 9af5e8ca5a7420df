"""Live WebSocket transport: one picows client connection per `ConnectionSpec`.

A `Connection` owns the whole lifecycle of one venue socket:

* connect (TLS with the default SSL context for ``wss://``), tell the handler
  (`on_connected`) and let the runner execute the subscribe frames it queued;
* answer server PINGs (picows auto-pong, explicitly enabled) and send the
  venue's application-level ping every ``spec.ping_interval_s``;
* a stale watchdog: no frame at all for ``stale_after_s`` means the socket is
  dead even if TCP has not noticed, so it is closed and reopened.  After half
  that silence a probe is sent -- the venue's own application ping when the
  spec has one (OKX answers only its text `ping`, never a protocol PING),
  else a WebSocket PING -- so a quiet-but-healthy connection (an illiquid
  symbol) produces an answer and is not torn down;
* reconnect with jittered exponential backoff (capped, reset once a
  connection has stayed up for ``healthy_after_s``), or immediately for the
  planned reconnect before the venue's forced disconnect (``max_lifetime_s``);
* a make-before-break switch-over (`switch_over`, for Binance's
  ``serverShutdown``): the replacement socket opens beside the old one, the
  handler's ``on_switched`` subscribes it, both deliver for
  ``switchover_overlap_s`` (the handler skips what it already applied), then
  the old one closes -- the markets never see a disconnect;
* venue send budgets through a `sentrycoin.ratelimit.TokenBucket`: the
  connection's own (``max_sends_per_s``) or one shared by every connection to
  a venue (Coinbase counts per IP); and new connections paced by a shared
  bucket (OKX: 3 per second per IP);
* per-connection counters, and the markets' ``connected``/``reconnects``:
  a failed connection attempt counts as a reconnect of every market it
  carries and becomes their ``last_error`` in a short human form
  (`describe_connect_error`: "DNS failure", "connection refused", ...), so
  /status and /metrics show a venue that cannot be reached.

Frames are handed to ``handler.on_frame`` synchronously inside the picows
callback: no task per frame, no queue, so a frame is applied to the book
before the next one is parsed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

from picows import WSCloseCode, WSError, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

# Re-exported: the live runner and tests take Backoff from here too.
from sentrycoin.backoff import Backoff as Backoff
from sentrycoin.feeds.base import ConnectionSpec, FeedHandler
from sentrycoin.ratelimit import TokenBucket

log = logging.getLogger("sentrycoin.transport")

#: Called after every handler callback so queued actions run right away.
ActionDrain = Callable[[FeedHandler], None]

_HTTP_STATUS_RE = re.compile(r"\b([1-5]\d\d)\b")


@dataclass(slots=True)
class TransportSettings:
    """Every timing of the transport; tests shrink them."""

    stale_after_s: float = 10.0
    # Send a WebSocket PING after stale_after_s * idle_ping_fraction of silence
    # (None/0 disables): a live server answers with a PONG, which counts as a frame.
    idle_ping_fraction: float | None = 0.5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.5  # delay is drawn from [base * (1 - jitter), base]
    healthy_after_s: float = 60.0  # a connection up this long resets the backoff
    # ...and so does one that streamed data for this long: a venue that keeps
    # dropping working connections is not down, and an early-warning monitor
    # must not sit out 30 s backoffs after each drop (seen in the soak test).
    productive_after_s: float = 5.0
    connect_timeout_s: float = 15.0  # TCP + TLS + HTTP upgrade
    max_frame_size: int = 32 * 1024 * 1024  # big REST-sized snapshots do come over WS (OKX, Kraken 1000)
    ssl_context: ssl.SSLContext | None = None  # None: default context for wss://
    max_sends_per_s: float | None = None  # client frames per rolling second (None: unlimited)
    # Make-before-break: how long both sockets deliver before the old one closes.
    switchover_overlap_s: float = 2.0

    def __post_init__(self) -> None:
        if self.stale_after_s <= 0:
            raise ValueError("stale_after_s must be > 0")
        if self.backoff_initial_s < 0 or self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("need 0 <= backoff_initial_s <= backoff_max_s")
        if self.backoff_factor < 1:
            raise ValueError("backoff_factor must be >= 1")
        if not 0 <= self.backoff_jitter <= 1:
            raise ValueError("backoff_jitter must be within [0, 1]")


def describe_connect_error(exc: BaseException) -> str:
    """A failed connection attempt in a few words for people ("DNS failure", ...).

    The full exception text stays in `Connection.last_error` and the log;
    this short form is what a market's `last_error` (/status, dashboard) shows.
    """
    if isinstance(exc, socket.gaierror):
        return "DNS failure"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "connect timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS certificate rejected"
    if isinstance(exc, ssl.SSLError):
        return "TLS error"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "network unreachable"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"connect failed ({errno.errorcode.get(exc.errno, exc.errno)})"
    if isinstance(exc, WSError):  # e.g. the HTTP upgrade answered 404, 403, 5xx
        # picows: "expected ... status 101 Switching Protocols, but received 404": the last code.
        codes = _HTTP_STATUS_RE.findall(str(exc))
        return f"handshake rejected (HTTP {codes[-1]})" if codes else "handshake rejected"
    return f"connect failed ({type(exc).__name__})"


@dataclass(slots=True)
class ConnectionCounters:
    connects: int = 0  # successful WebSocket handshakes
    connect_failures: int = 0
    disconnects: int = 0
    reconnects: int = 0  # connects after the first one
    stale_reconnects: int = 0
    planned_reconnects: int = 0
    requested_reconnects: int = 0  # Reconnect actions from the handler
    frames: int = 0  # data frames (text/binary) handed to the handler
    bytes: int = 0
    control_frames: int = 0  # ping/pong seen by the listener
    decode_errors: int = 0  # frames the handler raised on, or broken fragments
    app_pings_sent: int = 0
    ws_pings_sent: int = 0
    sends: int = 0
    sends_delayed: int = 0  # held back by the send budget
    send_failures: int = 0
    switchovers: int = 0  # make-before-break replacements completed
    switchover_failures: int = 0  # replacement sockets that could not open (the old one stays)
    connects_delayed: int = 0  # connect attempts held back by the connect budget


class _Listener(WSListener):
    """picows callbacks, forwarded to the owning Connection."""

    __slots__ = ("conn", "_fragments", "_fragment_type", "_replacement")

    def __init__(self, conn: Connection, replacement: bool = False) -> None:
        super().__init__()
        self.conn = conn
        self._fragments: list[bytes] | None = None
        self._fragment_type: WSMsgType | None = None
        self._replacement = replacement

    def on_ws_connected(self, transport: WSTransport) -> None:
        if self._replacement:
            self.conn._replacement_connected(transport)
        else:
            self.conn._connected(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.TEXT or msg_type is WSMsgType.BINARY:
            if frame.fin:
                self.conn._data(frame.get_payload_as_bytes())
            else:
                # Venues practically never fragment, but RFC 6455 allows it.
                self._fragments = [frame.get_payload_as_bytes()]
                self._fragment_type = msg_type
        elif msg_type is WSMsgType.CONTINUATION:
            if self._fragments is None:
                self.conn._broken_frame("continuation without a first fragment")
                return
            self._fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = None
                self.conn._data(data)
        elif msg_type is WSMsgType.CLOSE:
            self.conn._control()
            log.info("%s: server closed the connection (%s %s)", self.conn.name,
                     frame.get_close_code(), frame.get_close_reason())
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        else:  # PING (already auto-ponged by picows) or PONG
            self.conn._control()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.conn._disconnected(transport)


class Connection:
    """One venue WebSocket, kept open until `stop()`."""

    def __init__(
        self,
        spec: ConnectionSpec,
        handler: FeedHandler,
        *,
        settings: TransportSettings | None = None,
        drain: ActionDrain | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        rng: random.Random | None = None,
        send_bucket: TokenBucket | None = None,
        connect_bucket: TokenBucket | None = None,
    ) -> None:
        self.spec = spec
        self.handler = handler
        self._on_frame: Callable[[int, bytes, int], None] = handler.on_frame  # see _frame_target
        self.settings = settings or TransportSettings()
        self.drain = drain
        self.clock = clock
        self.wall_ms = wall_ms
        s = self.settings
        self.backoff = Backoff(s.backoff_initial_s, s.backoff_max_s, s.backoff_factor, s.backoff_jitter, rng)
        self.counters = ConnectionCounters()
        self.name = f"{handler.venue or type(handler).__name__}#{spec.conn_id}"
        self.state = "idle"  # idle | connecting | open | waiting | stopped
        self.last_frame_at: float | None = None
        self.connected_at: float | None = None
        self._frames_at_connect = 0
        self.last_error: str | None = None
        self._transport: WSTransport | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        if send_bucket is None and self.settings.max_sends_per_s:
            send_bucket = TokenBucket.at_most(self.settings.max_sends_per_s, 1.0, clock=clock)
        self.send_bucket = send_bucket
        self.connect_bucket = connect_bucket
        self._backlog: deque[bytes | str] = deque()
        self._retiring: WSTransport | None = None  # the old socket during a switch-over
        self._switch_task: asyncio.Task[None] | None = None
        self._pinged_since_frame = False
        self._planned = False
        self._closing = False  # a reconnect was asked for: frames still buffered are not applied
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- public ------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    def start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name=f"ws {self.name}")
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._drop_retiring()
        if self._switch_task is not None:
            self._switch_task.cancel()
        transport = self._transport
        if transport is not None:
            self._closing = True
            transport.send_close(WSCloseCode.GOING_AWAY)
            transport.disconnect()
        elif self.state == "connecting" and self._task is not None:
            self._task.cancel()  # do not wait out a connect timeout
        if self._task is not None and self._task is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5.0)
            except TimeoutError:
                self._task.cancel()
            except (asyncio.CancelledError, Exception):  # cancelled above, or failed (logged by the task)
                if asyncio.current_task() is not None and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
        self.state = "stopped"

    def send(self, payload: bytes | str) -> bool:
        """Send one frame (queued if over the send rate); False and a counter when not open."""
        transport = self._transport
        if transport is None:
            self.counters.send_failures += 1
            log.warning("%s: cannot send, not connected (%.60r)", self.name, payload)
            return False
        bucket = self.send_bucket
        if bucket is not None:
            if self._backlog or not bucket.try_take():
                # Venues drop clients that talk too fast (Binance: 5 messages/s): wait for a token.
                self._backlog.append(payload)
                self.counters.sends_delayed += 1
                self._schedule_flush()
                return True
        self._write(transport, payload)
        return True

    def _write(self, transport: WSTransport, payload: bytes | str) -> None:
        transport.send(WSMsgType.TEXT, payload.encode() if isinstance(payload, str) else payload)
        self.counters.sends += 1

    def _schedule_flush(self) -> None:
        if "flush" in self._timers or self.send_bucket is None:
            return
        wait_s = max(0.001, self.send_bucket.wait_s())
        self._timers["flush"] = asyncio.get_running_loop().call_later(wait_s, self._flush)

    def _flush(self) -> None:
        self._timers.pop("flush", None)
        transport = self._transport
        bucket = self.send_bucket
        if transport is None or bucket is None:
            return
        while self._backlog and bucket.try_take():
            self._write(transport, self._backlog.popleft())
        if self._backlog:
            self._schedule_flush()

    def reconnect(self, reason: str, *, planned: bool = False) -> None:
        """Close the socket; `run()` opens a new one (after backoff unless planned)."""
        transport = self._transport
        if transport is None:
            return
        log.info("%s: reconnecting (%s)", self.name, reason)
        self._closing = True
        self._planned = planned
        if planned:
            self.counters.planned_reconnects += 1
        transport.send_close(WSCloseCode.GOING_AWAY)
        # Not graceful: a stalled peer would otherwise keep us waiting on TCP.
        transport.disconnect(graceful=False)

    def switch_over(self, reason: str) -> None:
        """Make before break: open a replacement socket, move to it, then close this one.

        For a venue that announces it will drop the connection (Binance
        `serverShutdown`).  The handler's `on_switched(conn_id)` subscribes the
        new socket; both sockets deliver for `switchover_overlap_s` (the
        handler skips events it already applied), so the books see no gap.
        If the replacement cannot open, the old socket stays and the usual
        reconnect follows when the venue closes it.
        """
        if self._transport is None or self._stopping or self._switch_task is not None:
            return
        log.info("%s: switching to a new connection (%s)", self.name, reason)
        self._switch_task = asyncio.get_running_loop().create_task(
            self._open_replacement(), name=f"ws {self.name} replacement")

    async def _open_replacement(self) -> None:
        s = self.settings
        try:
            await self._connect_turn()
            await asyncio.wait_for(self._ws_connect(replacement=True), timeout=s.connect_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.counters.switchover_failures += 1
            log.warning("%s: replacement connection failed (%s: %s); keeping the old one",
                        self.name, type(exc).__name__, exc)
        finally:
            self._switch_task = None

    def _replacement_connected(self, transport: WSTransport) -> None:
        old = self._transport
        if old is None or self._stopping or self._closing:
            # The old socket went first (the usual reconnect is under way) or we are stopping.
            transport.disconnect(graceful=False)
            return
        self._transport = transport
        self._retiring = old
        self.counters.switchovers += 1
        self.connected_at = self.clock()
        self.last_frame_at = self.connected_at
        self._pinged_since_frame = False
        self._backlog.clear()  # not yet sent on the old socket: the new one is subscribed afresh
        log.info("%s: replacement connected; closing the old one in %.1fs", self.name,
                 self.settings.switchover_overlap_s)
        # Re-arm the timers on the new socket (the lifetime counts from now).
        self._cancel_timers()
        self._schedule_timers()
        self._timers["retire"] = asyncio.get_running_loop().call_later(
            self.settings.switchover_overlap_s, self._retire, old)
        on_switched = getattr(self.handler, "on_switched", None)
        if on_switched is not None:
            self._call_handler(on_switched, self.spec.conn_id)

    def _drop_retiring(self) -> None:
        old, self._retiring = self._retiring, None
        if old is not None:
            old.disconnect(graceful=False)

    def _retire(self, old: WSTransport) -> None:
        self._timers.pop("retire", None)
        if self._retiring is old:
            old.send_close(WSCloseCode.GOING_AWAY)
            old.disconnect()

    def stats(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self.counters)
        out.update(conn_id=self.spec.conn_id, url=self.spec.url, state=self.state,
                   symbols=list(self.spec.symbols), last_error=self.last_error)
        return out

    # -- lifecycle loop ----------------------------------------------------

    async def _connect_turn(self) -> None:
        """Wait for the venue's connection budget (OKX: 3 new connections per second per IP)."""
        bucket = self.connect_bucket
        if bucket is not None:
            wait_s = bucket.reserve()
            if wait_s > 0:
                self.counters.connects_delayed += 1
                await asyncio.sleep(wait_s)

    async def _ws_connect(self, replacement: bool = False) -> WSTransport:
        s = self.settings
        transport, _ = await ws_connect(
            lambda: _Listener(self, replacement),
            self.spec.url,
            ssl_context=s.ssl_context,
            websocket_handshake_timeout=s.connect_timeout_s,
            enable_auto_pong=True,  # venues drop clients that ignore PINGs
            disconnect_on_exception=False,  # our callbacks catch their own errors
            max_frame_size=s.max_frame_size,
            logger_name=f"sentrycoin.{self.name}",
        )
        return transport

    async def run(self) -> None:
        s = self.settings
        while not self._stopping:
            self.state = "connecting"
            self._planned = False
            try:
                await self._connect_turn()
                transport = await asyncio.wait_for(self._ws_connect(), timeout=s.connect_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, DNS, TLS, HTTP upgrade rejected, timeout
                self.counters.connect_failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._connect_failed(describe_connect_error(exc))
                delay = self.backoff.next_delay()
                log.warning("%s: connect to %s failed (%s); retry in %.2fs",
                            self.name, self.spec.url, self.last_error, delay)
                await self._sleep(delay)
                continue
            if self._stopping:
                transport.disconnect()
            try:
                # A switch-over hands the connection to a new socket: follow it.
                while True:
                    await transport.wait_disconnected()
                    current = self._transport
                    if current is None or current is transport:
                        break
                    transport = current
            except asyncio.CancelledError:
                transport.disconnect(graceful=False)
                raise
            except Exception as exc:  # picows re-raises local protocol failures here
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: connection failed: %s", self.name, self.last_error)
            if self._stopping:
                break
            delay = self._delay_after_disconnect()
            if delay > 0:
                log.info("%s: reconnect in %.2fs", self.name, delay)
                await self._sleep(delay)
        self.state = "stopped"

    def _delay_after_disconnect(self) -> float:
        if self._planned:
            self.backoff.reset()
            return 0.0
        up_s = self.clock() - self.connected_at if self.connected_at is not None else 0.0
        streamed = self.counters.frames > self._frames_at_connect
        if up_s >= self.settings.healthy_after_s or (streamed and up_s >= self.settings.productive_after_s):
            self.backoff.reset()
        return self.backoff.next_delay()

    def _connect_failed(self, why: str) -> None:
        """Every market this connection carries: one more reconnect, and why it failed."""
        markets = self.handler.markets
        for symbol in self.spec.symbols:
            market = markets.get(symbol)
            if market is not None:
                market.reconnects += 1
                market.connected = False
                # No connection means no book to trust: the reason it is invalid is now this.
                market.invalidate(why)

    async def _sleep(self, delay_s: float) -> None:
        self.state = "waiting"
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=delay_s)
        except TimeoutError:
            pass

    # -- picows callbacks (via _Listener) ------------------------------------

    def _connected(self, transport: WSTransport) -> None:
        c = self.counters
        if c.connects:
            c.reconnects += 1
        c.connects += 1
        self._transport = transport
        self.state = "open"
        now = self.clock()
        self.connected_at = now
        self._frames_at_connect = c.frames
        self.last_frame_at = now
        self._pinged_since_frame = False
        self._closing = False
        self.last_error = None
        reconnect = c.connects > 1
        markets = self.handler.markets
        for symbol in self.spec.symbols:
            market = markets.get(symbol)
            if market is not None:
                market.connected = True
                if reconnect:
                    market.reconnects += 1
        self._on_frame = self._frame_target()
        log.info("%s: connected to %s (%d symbols)", self.name, self.spec.url, len(self.spec.symbols))
        self._schedule_timers()
        self._call_handler(self.handler.on_connected, self.spec.conn_id)

    def _frame_target(self) -> Callable[[int, bytes, int], None]:
        """Where this connection's frames go, resolved at each connect.

        A handler may give each connection its own frame path (Binance: so a
        serverShutdown names its connection, at no per-frame cost); else the
        handler's `on_frame` as it is now (a recorder may have wrapped it).
        """
        sink = getattr(self.handler, "frame_sink", None)
        return sink(self.spec.conn_id) if sink is not None else self.handler.on_frame

    def _data(self, data: bytes) -> None:
        if self._closing:
            return  # after a Reconnect the rest of this socket's buffer is stale
        c = self.counters
        c.frames += 1
        c.bytes += len(data)
        self.last_frame_at = self.clock()
        self._pinged_since_frame = False
        try:
            self._on_frame(self.spec.conn_id, data, self.wall_ms())
        except Exception:
            # The contract says handlers never raise; if one does, the frame may
            # have been half applied, so these books cannot be trusted any more.
            c.decode_errors += 1
            log.exception("%s: handler failed on a frame (%.80r); resyncing", self.name, data)
            for symbol in self.spec.symbols:
                market = self.handler.markets.get(symbol)
                if market is not None:
                    market.invalidate("handler error")
            self.reconnect("handler error")
        if self.handler.actions and self.drain is not None:
            self.drain(self.handler)

    def _control(self) -> None:
        self.counters.control_frames += 1
        self.last_frame_at = self.clock()
        self._pinged_since_frame = False

    def _broken_frame(self, why: str) -> None:
        self.counters.decode_errors += 1
        log.warning("%s: dropped a broken frame: %s", self.name, why)

    def _disconnected(self, transport: WSTransport) -> None:
        if self._transport is not transport:
            if self._retiring is transport:
                self._retiring = None  # the old socket of a switch-over: nothing was lost
                log.info("%s: old connection closed after the switch-over", self.name)
            return
        self._transport = None
        self._cancel_timers()
        self._drop_retiring()  # the replacement died during the overlap: start over cleanly
        # Subscriptions are re-sent by on_connected on the next socket; stale ones must not follow.
        self._backlog.clear()
        self.counters.disconnects += 1
        if not self._stopping:
            log.warning("%s: disconnected", self.name)
        self._call_handler(self.handler.on_disconnected, self.spec.conn_id)
        for symbol in self.spec.symbols:
            market = self.handler.markets.get(symbol)
            if market is not None:
                market.connected = False
        self._wake.set()

    def _call_handler(self, method: Callable[[int], None], conn_id: int) -> None:
        try:
            method(conn_id)
        except Exception:
            log.exception("%s: handler %s failed", self.name, getattr(method, "__name__", method))
        if self.handler.actions and self.drain is not None:
            self.drain(self.handler)

    # -- timers -----------------------------------------------------------

    def _schedule_timers(self) -> None:
        loop = asyncio.get_running_loop()
        spec = self.spec
        self._timers = {"watchdog": loop.call_later(self._watchdog_tick_s(), self._watchdog)}
        if spec.ping_payload is not None and spec.ping_interval_s:
            self._timers["ping"] = loop.call_later(spec.ping_interval_s, self._app_ping)
        if spec.max_lifetime_s:
            self._timers["lifetime"] = loop.call_later(spec.max_lifetime_s, self._lifetime_over)

    def _cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers = {}

    def _watchdog_tick_s(self) -> float:
        return max(0.01, self.settings.stale_after_s / 8.0)

    def _watchdog(self) -> None:
        transport = self._transport
        if transport is None:
            return
        s = self.settings
        idle_s = self.clock() - (self.last_frame_at or 0.0)
        if idle_s >= s.stale_after_s:
            self.counters.stale_reconnects += 1
            self.reconnect(f"stale: no frame for {idle_s:.1f}s")
            return
        if s.idle_ping_fraction and not self._pinged_since_frame and idle_s >= s.stale_after_s * s.idle_ping_fraction:
            payload = self.spec.ping_payload
            if payload is not None:
                # The venue's own ping: OKX answers only its text `ping` (never a
                # protocol PING), and every venue with an app ping answers it.
                if self.send(payload):
                    self.counters.app_pings_sent += 1
            else:
                transport.send_ping(b"sentrycoin")
                self.counters.ws_pings_sent += 1
            self._pinged_since_frame = True
        self._timers["watchdog"] = asyncio.get_running_loop().call_later(self._watchdog_tick_s(), self._watchdog)

    def _app_ping(self) -> None:
        spec = self.spec
        if self._transport is None or spec.ping_payload is None or not spec.ping_interval_s:
            return
        if self.send(spec.ping_payload):
            self.counters.app_pings_sent += 1
        self._timers["ping"] = asyncio.get_running_loop().call_later(spec.ping_interval_s, self._app_ping)

    def _lifetime_over(self) -> None:
        self.reconnect(f"planned: max lifetime {self.spec.max_lifetime_s}s reached", planned=True)
