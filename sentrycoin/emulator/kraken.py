"""Kraken WebSocket v2: ``book`` snapshot/update with CRC32, ``instrument``, ping/pong.

From the public docs: on connect the server sends a ``status`` message.
``{"method":"subscribe","params":{"channel":"book","symbol":[…],"depth":D}}`` is
acknowledged per symbol (``{"method":"subscribe","result":{…},"success":true}``),
then a snapshot of the top D levels.  Prices and quantities are JSON *numbers*
(sent here in their shortest form, e.g. ``0.0005`` or ``61000``, so a client must
format them with the instrument's precisions, as the docs require).  Updates
maintain the client's D-level view: levels leaving the view by being pushed
out get no delete (the client truncates), levels entering it are sent.  Every
message carries ``checksum``: CRC32 (unsigned) of the top 10 asks (low to high)
then top 10 bids (high to low), each price then qty written with the
instrument's precision, ``.`` removed and leading zeros stripped.  The
``instrument`` channel gives ``price_precision``/``qty_precision`` per pair.
``{"method":"ping"}`` gets ``{"method":"pong"}``; a ``heartbeat`` ticks while subscribed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zlib

import msgspec
from aiohttp import web

from sentrycoin.emulator.core import COMMON_FAULTS, Fault, Session, VenueEmulator
from sentrycoin.emulator.truebook import ASK, BID, Change, TrueBook

_json = msgspec.json.Encoder()
DEPTHS = (10, 25, 100, 500, 1000)
# (price_precision, qty_precision) per emulated pair, by symbol index.
PRECISIONS = ((1, 8), (2, 8), (5, 8), (4, 2))


def pair(symbol: str) -> str:
    return symbol.replace("-", "/")


def rfc3339(shift_ms: int = 0) -> str:
    now = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=shift_ms)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_number(fixed: str) -> str:
    """Shortest JSON number text of a fixed-point decimal string (no exponent)."""
    if "." in fixed:
        fixed = fixed.rstrip("0").rstrip(".")
    return fixed or "0"


def checksum_of_text(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """CRC32 over the top 10 asks (best first) then top 10 bids, given as precision-formatted text."""
    parts: list[str] = []
    for levels in (asks[:10], bids[:10]):
        for price, qty in levels:
            parts.append(price.replace(".", "").lstrip("0"))
            parts.append(qty.replace(".", "").lstrip("0"))
    return zlib.crc32("".join(parts).encode())


def kraken_checksum(book: TrueBook, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> int:
    return checksum_of_text([(book.price_text(p), book.qty_text(q)) for p, q in asks[:10]],
                            [(book.price_text(p), book.qty_text(q)) for p, q in bids[:10]])


class KrakenSession(Session):
    emulator: KrakenEmulator

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.depth: dict[str, int] = {}
        # symbol -> the client's view (top `depth` levels per side) after our last message
        self.view: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        self.instrument = False

    async def on_open(self) -> None:
        self.send(_json.encode({"channel": "status", "type": "update", "data": [{
            "version": "2.0.10", "system": "online", "api_version": "v2",
            "connection_id": 1_000_000 + self.index}]}).decode())
        if self.emulator.heartbeat_s:
            self.spawn(self._heartbeats())

    async def _heartbeats(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.emulator.heartbeat_s)
            if self.subscribed or self.instrument:
                self.send('{"channel":"heartbeat"}')

    def _ack(self, method: str, req_id: object, result: dict | None = None, error: str | None = None,
             symbol: str | None = None) -> None:
        msg: dict[str, object] = {"method": method}
        if error is None:
            msg["result"] = result or {}
            msg["success"] = True
        else:
            msg["error"] = error
            msg["success"] = False
            if symbol is not None:
                msg["symbol"] = symbol
        now = rfc3339()
        msg["time_in"] = now
        msg["time_out"] = now
        if req_id is not None:
            msg["req_id"] = req_id
        self.send(_json.encode(msg).decode())

    async def on_text(self, text: str) -> None:
        emu = self.emulator
        try:
            req = msgspec.json.decode(text)
            method = req["method"]
        except Exception:
            self.send(_json.encode({"error": "Malformed request", "success": False}).decode())
            return
        req_id = req.get("req_id")
        params = req.get("params") or {}
        if method == "ping":
            msg = {"method": "pong", "time_in": rfc3339(), "time_out": rfc3339()}
            if req_id is not None:
                msg["req_id"] = req_id
            self.send(_json.encode(msg).decode())
            return
        if method not in ("subscribe", "unsubscribe"):
            self._ack(str(method), req_id, error=f"Method not found: {method}")
            return
        channel = params.get("channel")
        if channel == "instrument":
            self.instrument = method == "subscribe"
            self._ack(method, req_id, {"channel": "instrument", "snapshot": True})
            if self.instrument:
                self.send(emu.instrument_snapshot())
            return
        if channel == "heartbeat":
            self._ack(method, req_id, {"channel": "heartbeat"})
            return
        if channel != "book":
            self._ack(method, req_id, error=f"Channel not supported: {channel}")
            return
        symbols = params.get("symbol")
        if not isinstance(symbols, list):
            self._ack(method, req_id, error="Symbol field must be an array")
            return
        depth = params.get("depth", 10)
        if depth not in DEPTHS:
            self._ack(method, req_id, error=f"Invalid depth {depth}")
            return
        for native in symbols:
            symbol = emu.pair_symbols.get(native)
            if symbol is None:
                self._ack(method, req_id, error=f"Currency pair not supported {native}", symbol=native)
                continue
            if method == "subscribe":
                if symbol in self.subscribed and emu.reject_duplicate_subscribe:
                    self._ack(method, req_id, error="Already subscribed", symbol=native)
                    continue
                fault = emu.take_snapshot_fault(symbol, {Fault.REFUSE_SUBSCRIBE, Fault.NO_SNAPSHOT})
                if fault is Fault.REFUSE_SUBSCRIBE:
                    self._ack(method, req_id, error="Subscription rejected, try again later", symbol=native)
                    continue
                if fault is Fault.NO_SNAPSHOT:
                    continue  # never answered: no ack, no snapshot, no updates (no view)
                self._ack(method, req_id, {"channel": "book", "depth": depth, "snapshot": True, "symbol": native})
                self.depth[symbol] = depth
                self.subscribed.add(symbol)
                self.emit_snapshot(symbol, self._snapshot(symbol))
            else:
                self._ack(method, req_id, {"channel": "book", "depth": depth, "symbol": native})
                self.subscribed.discard(symbol)
                self.view.pop(symbol, None)

    def _levels_json(self, book: TrueBook, levels: list[tuple[int, int]]) -> str:
        return "[" + ",".join(
            f'{{"price":{json_number(book.price_text(p))},"qty":{json_number(book.qty_text(q))}}}'
            for p, q in levels) + "]"

    def _message(self, kind: str, symbol: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]],
                 checksum: int, shift_ms: int = 0) -> str:
        book = self.emulator.books[symbol]
        stamp = f',"timestamp":"{rfc3339(shift_ms)}"' if kind == "update" else ""
        return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{pair(symbol)}",'
                f'"bids":{self._levels_json(book, bids)},"asks":{self._levels_json(book, asks)},'
                f'"checksum":{checksum}{stamp}}}]}}')

    def _snapshot(self, symbol: str) -> str:
        book = self.emulator.books[symbol]
        depth = self.depth[symbol]
        bids, asks = book.top(BID, depth), book.top(ASK, depth)
        self.view[symbol] = (dict(bids), dict(asks))
        return self._message("snapshot", symbol, bids, asks, kraken_checksum(book, bids, asks))

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        if symbol not in self.view:
            return
        book = self.emulator.books[symbol]
        depth = self.depth[symbol]
        old_bids, old_asks = self.view[symbol]
        new_bids, new_asks = book.top(BID, depth), book.top(ASK, depth)
        sent: list[list[tuple[int, int]]] = []
        truth = (book.bids, book.asks)
        for old, new, levels in ((old_bids, new_bids, truth[0]), (old_asks, new_asks, truth[1])):
            new_map = dict(new)
            out = [(p, q) for p, q in new if old.get(p) != q]
            # Deleted from the book -> explicit qty 0; merely pushed out of the view -> nothing.
            out += [(p, 0) for p in old if p not in new_map and p not in levels]
            sent.append(out)
        self.view[symbol] = (dict(new_bids), dict(new_asks))
        if not sent[0] and not sent[1]:
            return  # nothing changed inside this client's view
        rng = self.emulator.rng
        for out in sent:
            if out and rng.random() < self.emulator.intermediate_p:
                # The same level twice in one message: only the last entry counts (docs: apply in order).
                price, _ = out[-1]
                out.insert(len(out) - 1, (price, rng.randint(1, 50_000)))
        checksum = kraken_checksum(book, new_bids, new_asks)
        if self.take_fault(symbol, {Fault.BAD_CHECKSUM}) is Fault.BAD_CHECKSUM:
            checksum ^= 0x1234
        extra, shift_ms = self.message_faults(symbol, book)
        sent[0] += [(p, q) for side, p, q in extra if side == BID]
        sent[1] += [(p, q) for side, p, q in extra if side == ASK]
        self.emit_book(symbol, self._message("update", symbol, sent[0], sent[1], checksum, shift_ms))


class KrakenEmulator(VenueEmulator):
    venue = "kraken"
    session_class = KrakenSession
    supported_faults = COMMON_FAULTS | {Fault.BAD_CHECKSUM}

    def __init__(self, symbols: list[str], *, heartbeat_s: float = 1.0, reject_duplicate_subscribe: bool = False,
                 intermediate_p: float = 0.2, **kwargs) -> None:  # noqa: ANN003
        self.heartbeat_s = heartbeat_s
        self.intermediate_p = intermediate_p
        self.reject_duplicate_subscribe = reject_duplicate_subscribe
        self.pair_symbols = {pair(s): s for s in symbols}
        super().__init__(symbols, **kwargs)

    def book_kwargs_for(self, index: int, symbol: str) -> dict:
        price_precision, qty_precision = PRECISIONS[index % len(PRECISIONS)]
        return {"price_decimals": price_precision, "qty_decimals": qty_precision,
                "mid_ticks": 600_000 + 37_000 * index}

    def instrument_snapshot(self) -> str:
        pairs = []
        for symbol, book in self.books.items():
            base, _, quote = symbol.partition("-")
            pairs.append({
                "symbol": pair(symbol), "base": base, "quote": quote, "status": "online",
                "qty_precision": book.qty_decimals, "qty_increment": float(book.qty_text(1)),
                "price_precision": book.price_decimals, "price_increment": float(book.price_text(1)),
                "cost_precision": 5, "cost_min": 0.5, "qty_min": float(book.qty_text(1)),
                "marginable": False, "has_index": True, "tick_size": float(book.price_text(1)),
            })
        assets = sorted({a for s in self.symbols for a in s.split("-")})
        return _json.encode({"channel": "instrument", "type": "snapshot", "data": {
            "assets": [{"id": a, "status": "enabled", "precision": 8, "precision_display": 5,
                        "borrowable": False, "collateral_value": 1.0, "margin_rate": 0.0} for a in assets],
            "pairs": pairs}}).decode()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v2", self.websocket)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2"
