"""Binance spot and USD-M futures: diff-depth streams + REST depth snapshots.

Per the public docs: combined streams at ``/stream?streams=a/b`` wrap each event
as ``{"stream":…,"data":…}``; raw streams at ``/ws/<stream>``; both also take
``{"method":"SUBSCRIBE","params":[…],"id":n}`` (answered ``{"result":null,"id":n}``).
More than 5 client messages in one second gets the connection closed.  Every
event carries ``U`` (first update id) and ``u`` (final update id); spot ids are
contiguous (``U == previous u + 1``), futures ids are not and the event carries
``pu`` (previous event's ``u``) instead.  REST ``/api/v3/depth`` (spot) and
``/fapi/v1/depth`` (futures) answer ``lastUpdateId`` with the top ``limit`` levels.

REST weight (``weight_limit`` set): the IP's weight is counted in fixed windows
of ``weight_window_s`` aligned to the wall clock (Binance: the minute), every
answer carries ``X-MBX-USED-WEIGHT-1M``; a request that would pass the limit is
answered ``429`` with ``Retry-After`` (whole seconds to the window's end, or
``retry_after_s``, which may outlast the window), and
any request before that time has passed is answered ``418`` -- an IP ban of
``ban_s`` during which everything is ``418``.  ``add_weight`` spends weight as
another client behind the same IP would.  ``server_shutdown`` sends
``{"e":"serverShutdown"}`` to the open sessions and closes them after a grace.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

import msgspec
from aiohttp import web

from sentrycoin.emulator.core import COMMON_FAULTS, Fault, Session, VenueEmulator, now_ms
from sentrycoin.emulator.truebook import ASK, BID, Change

_json = msgspec.json.Encoder()

SPOT_LIMITS = range(1, 5001)
FUTURES_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def _close_soon(session: Session) -> None:
    """Start closing `session` (a call_later callback cannot await)."""
    asyncio.get_running_loop().create_task(session.close())


def native(symbol: str) -> str:
    return symbol.replace("-", "")


class BinanceSession(Session):
    emulator: BinanceEmulator

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.combined = True
        self._msg_times: deque[float] = deque()

    async def on_open(self) -> None:
        path = self.request.path.rstrip("/")
        if path.startswith("/ws"):
            self.combined = False
            stream = path[len("/ws"):].lstrip("/")
            streams = [stream] if stream else []
        elif path == "/stream":
            streams = [s for s in self.request.query.get("streams", "").split("/") if s]
        else:
            await self.ws.close(code=1008, message=b"unknown path")
            return
        if not self._subscribe(streams):
            await self.ws.close(code=1008, message=b"invalid stream")

    def _subscribe(self, streams: list[str]) -> bool:
        emu = self.emulator
        for stream in streams:
            symbol = emu.stream_symbols.get(stream)
            if symbol is None:
                return False
            self.subscribed.add(symbol)
        return True

    async def on_text(self, text: str) -> None:
        # Binance: at most 5 incoming messages per second per connection.
        now = time.monotonic()
        times = self._msg_times
        times.append(now)
        while times and now - times[0] > 1.0:
            times.popleft()
        if len(times) > self.emulator.max_client_msgs_per_s:
            self.emulator.rate_limit_closes += 1
            await self.close()
            return
        try:
            req = msgspec.json.decode(text)
            method = req["method"]
            req_id = req.get("id")
        except Exception:
            self.send(_json.encode({"error": {"code": 3, "msg": "Invalid JSON"}}).decode())
            return
        if method == "SUBSCRIBE":
            ok = self._subscribe(list(req.get("params") or []))
            self.send(_json.encode({"result": None, "id": req_id} if ok else
                                   {"error": {"code": 2, "msg": "Invalid request"}, "id": req_id}).decode())
        elif method == "UNSUBSCRIBE":
            for stream in req.get("params") or []:
                symbol = self.emulator.stream_symbols.get(stream)
                self.subscribed.discard(symbol)
            self.send(_json.encode({"result": None, "id": req_id}).decode())
        elif method == "LIST_SUBSCRIPTIONS":
            streams = [s for s, sym in self.emulator.stream_symbols.items() if sym in self.subscribed]
            self.send(_json.encode({"result": streams, "id": req_id}).decode())
        else:
            self.send(_json.encode({"error": {"code": 2, "msg": "Invalid request"}, "id": req_id}).decode())

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        if not self.emulator.event_ready.get(symbol):
            return  # the bundle is still open
        event = dict(self.emulator.last_event[symbol])
        book = self.emulator.books[symbol]
        extra, shift_ms = self.message_faults(symbol, book)
        if extra:
            event["b"] = event["b"] + [[book.price_text(p), book.qty_text(q)] for side, p, q in extra if side == BID]
            event["a"] = event["a"] + [[book.price_text(p), book.qty_text(q)] for side, p, q in extra if side == ASK]
        if shift_ms:
            event["E"] += shift_ms
            if "T" in event:
                event["T"] += shift_ms
        if self.take_fault(symbol, {Fault.GAP}) is Fault.GAP:
            # The data is intact but the ids no longer chain: a lost event, as far as the client can tell.
            if self.emulator.futures:
                event["pu"] = event["pu"] - 1
            else:
                event["U"] = event["U"] + 1
        stream = self.emulator.symbol_streams[symbol]
        payload = {"stream": stream, "data": event} if self.combined else event
        self.emit_book(symbol, _json.encode(payload).decode())


class BinanceEmulator(VenueEmulator):
    venue = "binance"
    session_class = BinanceSession
    supported_faults = COMMON_FAULTS | {Fault.GAP, Fault.STALE_SNAPSHOT}

    def __init__(self, symbols: list[str], *, futures: bool = False, speed: str = "100ms",
                 max_client_msgs_per_s: int = 5, rest_delay_s: float = 0.0, batch_steps: int = 3,
                 rest_hang_s: float = 30.0,
                 weight_limit: int | None = None, weight_window_s: float = 60.0, ban_s: float = 120.0,
                 retry_after_s: float | None = None, **kwargs) -> None:  # noqa: ANN003
        self.futures = futures
        self.retry_after_s = retry_after_s  # None: until the window ends
        self.weight_limit = weight_limit
        self.weight_window_s = weight_window_s
        self.ban_s = ban_s
        self.weight_used = 0
        self._weight_window = -1
        self.retry_after_until = 0.0  # monotonic: a request before this is banned
        self.banned_until = 0.0  # monotonic
        self.answers_429 = 0
        self.answers_418 = 0
        self.max_weight_seen = 0  # the most weight ever used in one window
        self.venue = "binance-futures" if futures else "binance"
        self.max_client_msgs_per_s = max_client_msgs_per_s
        self.rest_delay_s = rest_delay_s
        self.rest_hang_s = rest_hang_s  # how long a NO_SNAPSHOT request hangs
        self.rate_limit_closes = 0
        suffix = "@depth" if speed == "1000ms" else f"@depth@{speed}"
        self.symbol_streams = {s: native(s).lower() + suffix for s in symbols}
        # Accept every documented speed variant for subscriptions.
        self.stream_symbols: dict[str, str] = {}
        for s in symbols:
            base = native(s).lower() + "@depth"
            for variant in (base, base + "@100ms", base + "@250ms", base + "@500ms", base + "@1000ms"):
                self.stream_symbols[variant] = s
        self.natives = {native(s): s for s in symbols}
        self.update_id = {s: 1_000_000 * (i + 1) for i, s in enumerate(symbols)}
        self.last_event: dict[str, dict] = {}
        self.last_event_u: dict[str, int] = {}
        self.event_ready: dict[str, bool] = {}
        self.batch_steps = max(1, batch_steps)
        self.pending: dict[str, dict[tuple[str, int], int]] = {}
        self.pending_ids: dict[str, tuple[int, int]] = {}
        self.pending_steps: dict[str, int] = {}
        # (lastUpdateId, bids, asks) of recent states, for stale snapshots.
        self.states: dict[str, deque[tuple[int, dict[int, int], dict[int, int]]]] = {
            s: deque(maxlen=400) for s in symbols}
        super().__init__(symbols, **kwargs)

    # -- venue-wide sequence ------------------------------------------------------

    def on_symbol_step(self, symbol: str, changes: list[Change]) -> None:
        """Every change takes update ids; events bundle `batch_steps` steps (like the 100 ms push).

        The REST snapshot reports the latest id even mid-bundle, so the first event a client
        applies often straddles the snapshot (U <= lastUpdateId + 1 <= u, not U == lastUpdateId + 1).
        """
        book = self.books[symbol]
        ids = self.pending_ids.get(symbol)
        uid = self.update_id[symbol]
        step = len(changes) if not self.futures else len(changes) + self.rng.randint(0, 6)  # futures ids skip
        first = uid + 1
        uid += max(1, step)
        self.update_id[symbol] = uid
        pending = self.pending.setdefault(symbol, {})
        for side, price, qty in changes:
            pending[(side, price)] = qty
        self.pending_ids[symbol] = (ids[0] if ids else first, uid)
        self.pending_steps[symbol] = self.pending_steps.get(symbol, 0) + 1
        bid_state, ask_state = book.copy_state()
        self.states[symbol].append((uid, bid_state, ask_state))
        self.event_ready[symbol] = False
        if self.pending_steps[symbol] >= self.batch_steps:
            self._close_bundle(symbol)

    def _close_bundle(self, symbol: str) -> None:
        book = self.books[symbol]
        first, last = self.pending_ids.pop(symbol)
        merged = self.pending.pop(symbol)
        self.pending_steps[symbol] = 0
        ts = now_ms()
        bids = [[book.price_text(p), book.qty_text(q)] for (side, p), q in merged.items() if side == BID]
        asks = [[book.price_text(p), book.qty_text(q)] for (side, p), q in merged.items() if side == ASK]
        if self.futures:
            event = {"e": "depthUpdate", "E": ts, "T": ts - 1, "s": native(symbol), "U": first, "u": last,
                     "pu": self.last_event_u.get(symbol, first - 1), "b": bids, "a": asks}
        else:
            event = {"e": "depthUpdate", "E": ts, "s": native(symbol), "U": first, "u": last, "b": bids, "a": asks}
        self.last_event_u[symbol] = last
        self.last_event[symbol] = event
        self.event_ready[symbol] = True

    def pause(self) -> None:
        """Freeze the truth; open bundles are pushed at once, as the venue would at its next tick."""
        super().pause()
        for symbol in self.symbols:
            if self.pending_ids.get(symbol):
                self._close_bundle(symbol)
                for session in self.sessions:
                    if not session.closed and symbol in session.subscribed:
                        session.on_step(symbol, [])
                self.event_ready[symbol] = False

    # -- HTTP ---------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/fapi/v1/depth" if self.futures else "/api/v3/depth", self.depth)
        app.router.add_get("/stream", self.websocket)
        app.router.add_get("/ws", self.websocket)
        app.router.add_get("/ws/{stream}", self.websocket)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{'/fapi/v1/depth' if self.futures else '/api/v3/depth'}"

    # -- REST weight -----------------------------------------------------------------

    @staticmethod
    def request_weight(limit: int, futures: bool) -> int:
        """Depth weight by limit, from Binance's docs (spot / USD-M)."""
        if futures:
            return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250

    def _window_used(self) -> int:
        window = int(time.time() // self.weight_window_s)
        if window != self._weight_window:
            self._weight_window = window
            self.weight_used = 0
        return self.weight_used

    def add_weight(self, weight: int) -> None:
        """Weight spent by another client behind the same IP (the venue counts per IP)."""
        self._window_used()
        self.weight_used += weight
        self.max_weight_seen = max(self.max_weight_seen, self.weight_used)

    def ban(self, seconds: float) -> None:
        self.banned_until = time.monotonic() + seconds

    def _limited(self, weight: int) -> web.Response | None:
        """Binance's answer when the budget forbids this request, else None (weight spent)."""
        if self.weight_limit is None:
            return None
        now = time.monotonic()
        if now < self.banned_until:
            self.answers_418 += 1
            return web.json_response({"code": -1003, "msg": "Way too many requests; IP banned."},
                                     status=418, headers={"Retry-After": str(math.ceil(self.banned_until - now))})
        if now < self.retry_after_until:
            # Asked again before Retry-After passed: that is what gets an IP banned.
            self.banned_until = now + self.ban_s
            self.answers_418 += 1
            return web.json_response({"code": -1003, "msg": "Way too many requests; IP banned."},
                                     status=418, headers={"Retry-After": str(math.ceil(self.ban_s))})
        used = self._window_used()
        if used + weight > self.weight_limit:
            hold_s = self.retry_after_s or (self._weight_window + 1) * self.weight_window_s - time.time()
            self.retry_after_until = now + hold_s
            self.answers_429 += 1
            return web.json_response({"code": -1003, "msg": "Too many requests."}, status=429,
                                     headers={"Retry-After": str(max(1, math.ceil(hold_s))),
                                              "X-MBX-USED-WEIGHT-1M": str(used)})
        self.add_weight(weight)
        return None

    def server_shutdown(self, grace_s: float = 1.0) -> list[Session]:
        """Announce maintenance on every open session, then close them after `grace_s`."""
        sessions = self.open_sessions()
        event = _json.encode({"e": "serverShutdown", "E": now_ms()}).decode()
        loop = asyncio.get_running_loop()
        for session in sessions:
            session.send(event)
            loop.call_later(grace_s, _close_soon, session)
        return sessions

    async def depth(self, request: web.Request) -> web.Response:
        self.rest_requests.append(request.path_qs)
        if self.rest_delay_s:
            await asyncio.sleep(self.rest_delay_s)
        try:
            weight = self.request_weight(int(request.query.get("limit", "100")), self.futures)
        except ValueError:
            weight = 1
        refusal = self._limited(weight)
        if refusal is not None:
            return refusal
        symbol = self.natives.get(request.query.get("symbol", ""))
        if symbol is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = -1
        allowed = FUTURES_LIMITS if self.futures else SPOT_LIMITS
        if limit not in allowed:
            return web.json_response({"code": -1100, "msg": "Illegal characters found in parameter 'limit'."},
                                     status=400)
        book = self.books[symbol]
        fault = self.take_snapshot_fault(symbol)
        if fault is Fault.REFUSE_SUBSCRIBE:
            return web.json_response({"code": -1003, "msg": "Too much request weight used."}, status=429,
                                     headers={"Retry-After": "1"})
        if fault is Fault.NO_SNAPSHOT:
            await asyncio.sleep(self.rest_hang_s)  # never answered in time: the client must give up
        if self.take_rest_fault(symbol) is Fault.STALE_SNAPSHOT:
            # The oldest state we kept: older than anything a connected client has buffered.
            last_id, bids, asks = self.states[symbol][0]
        else:
            last_id, bids, asks = self.update_id[symbol], book.bids, book.asks
        body: dict = {"lastUpdateId": last_id}
        if self.futures:
            ts = now_ms()
            body.update(E=ts, T=ts - 1)
        body["bids"] = [[book.price_text(p), book.qty_text(bids[p])] for p in sorted(bids, reverse=True)[:limit]]
        body["asks"] = [[book.price_text(p), book.qty_text(asks[p])] for p in sorted(asks)[:limit]]
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._window_used())} if self.weight_limit is not None else None
        encoded = _json.encode(body)
        if fault is Fault.BAD_SNAPSHOT:
            encoded = encoded[: len(encoded) // 2]
        return web.Response(body=encoded, content_type="application/json", headers=headers)
