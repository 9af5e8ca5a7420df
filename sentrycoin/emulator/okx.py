"""OKX v5 public ``books`` channel: snapshot + update with seqId/prevSeqId and checksum.

From the public docs: ``{"op":"subscribe","args":[{"channel":"books","instId":…}]}``
is acknowledged per arg with ``{"event":"subscribe","arg":{…},"connId":…}``,
unknown instruments with ``{"event":"error","code":"60018",…}``.  The text frame
``ping`` is answered ``pong``.  Levels are ``[px, sz, "0", orders]`` strings.  A
snapshot has ``prevSeqId == -1``; every update's ``prevSeqId`` is the previous
message's ``seqId`` (steps are not +1); a quiet book gets an empty update whose
``seqId == prevSeqId``.  ``checksum`` is the signed CRC32 of
``bid1px:bid1sz:ask1px:ask1sz:…`` over up to 25 levels per side (the longer side
continues alone), or 0 everywhere since OKX deprecated the field
(``checksum_mode="zero"``).

OKX has announced that ``books`` will stop pushing the initial snapshot:
``ws_snapshot=False`` emulates that (subscribe is acknowledged, updates flow,
no snapshot), and clients fetch ``GET /api/v5/market/books?instId=…&sz=…``,
which answers ``{"code":"0","msg":"","data":[{"asks","bids","ts","seqId"}]}``
(``rest_lag_steps`` answers a state that many steps old, as a venue whose REST
cache trails its stream; STALE_SNAPSHOT answers the oldest kept state).
OKX does not answer WebSocket protocol pings, only the text ``ping``.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections import deque

import msgspec
from aiohttp import web

from sentrycoin.emulator.core import COMMON_FAULTS, Fault, Session, VenueEmulator, now_ms
from sentrycoin.emulator.truebook import ASK, BID, Change, TrueBook

_json = msgspec.json.Encoder()
CHANNEL_DEPTHS = {"books": 400, "books-l2-tbt": 400, "books50-l2-tbt": 50}


def okx_checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def wire_levels(book: TrueBook, levels: list[tuple[int, int]]) -> list[list[str]]:
    """(ticks, lots) -> OKX's [px, sz, "0", orders] text; deletes read ["px", "0", "0", "0"]."""
    return [[book.price_text(p), book.qty_text(q), "0", str(1 + q % 7)] if q else [book.price_text(p), "0", "0", "0"]
            for p, q in levels]


class OkxSession(Session):
    emulator: OkxEmulator
    answers_protocol_ping = False

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.conn_id = uuid.uuid4().hex[:8]
        self.channels: dict[str, tuple[str, str]] = {}  # instId -> (symbol, channel)

    async def on_text(self, text: str) -> None:
        if text == "ping":
            self.send("pong")
            return
        emu = self.emulator
        try:
            req = msgspec.json.decode(text)
            op = req["op"]
            args = req["args"]
        except Exception:
            self._error("60012", f"Invalid request: {text[:80]}")
            return
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            inst_id = arg.get("instId") if isinstance(arg, dict) else None
            if op not in ("subscribe", "unsubscribe") or channel not in CHANNEL_DEPTHS:
                self._error("60018", f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist")
                continue
            symbol = emu.inst_symbols.get(inst_id or "")
            if symbol is None:
                self._error("60018", f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist")
                continue
            fault = emu.take_snapshot_fault(symbol) if op == "subscribe" else None
            if fault is Fault.REFUSE_SUBSCRIBE:
                self._error("60018", f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist")
                continue
            if fault is Fault.NO_SNAPSHOT:
                continue  # never answered: no ack, no snapshot, no data
            self.send(_json.encode({"event": op, "arg": {"channel": channel, "instId": inst_id},
                                    "connId": self.conn_id}).decode())
            if op == "subscribe":
                self.channels[inst_id] = (symbol, channel)  # type: ignore[index]
                self.subscribed.add(symbol)
                if emu.ws_snapshot:
                    snapshot = self._snapshot(symbol, inst_id, channel)  # type: ignore[arg-type]
                    if fault is Fault.BAD_SNAPSHOT:
                        snapshot = snapshot[: len(snapshot) // 2]
                    self.send(snapshot)
            else:
                self.channels.pop(inst_id, None)  # type: ignore[arg-type]
                self.subscribed.discard(symbol)

    def _error(self, code: str, msg: str) -> None:
        self.send(_json.encode({"event": "error", "code": code, "msg": msg, "connId": self.conn_id}).decode())

    def _levels(self, book: TrueBook, levels: list[tuple[int, int]]) -> list[list[str]]:
        return wire_levels(book, levels)

    def _checksum(self, book: TrueBook) -> int:
        if self.emulator.checksum_mode == "zero":
            return 0
        bids = [(book.price_text(p), book.qty_text(q)) for p, q in book.top(BID, 25)]
        asks = [(book.price_text(p), book.qty_text(q)) for p, q in book.top(ASK, 25)]
        return okx_checksum(bids, asks)

    def _snapshot(self, symbol: str, inst_id: str, channel: str) -> str:
        emu = self.emulator
        book = emu.books[symbol]
        depth = CHANNEL_DEPTHS[channel]
        data = {
            "asks": self._levels(book, book.top(ASK, depth)),
            "bids": self._levels(book, book.top(BID, depth)),
            "ts": str(now_ms()),
            "checksum": self._checksum(book),
            "prevSeqId": -1,
            "seqId": emu.seq_id[symbol],
        }
        return _json.encode({"arg": {"channel": channel, "instId": inst_id}, "action": "snapshot",
                             "data": [data]}).decode()

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        emu = self.emulator
        book = emu.books[symbol]
        for inst_id, (sym, channel) in list(self.channels.items()):
            if sym != symbol:
                continue
            prev = emu.prev_seq_id[symbol]
            if self.take_fault(symbol, {Fault.GAP}) is Fault.GAP:
                prev -= 1
            checksum = self._checksum(book)
            if self.take_fault(symbol, {Fault.BAD_CHECKSUM}) is Fault.BAD_CHECKSUM:
                checksum = (checksum ^ 0x5A5A) or 1
            extra, shift_ms = self.message_faults(symbol, book)
            sent = changes + extra
            data = {
                "asks": self._levels(book, [(p, q) for side, p, q in sent if side == ASK]),
                "bids": self._levels(book, [(p, q) for side, p, q in sent if side == BID]),
                "ts": str(now_ms() + shift_ms),
                "checksum": checksum,
                "prevSeqId": prev,
                "seqId": emu.seq_id[symbol],
            }
            arg = {"channel": channel, "instId": inst_id}
            self.emit_book(symbol, _json.encode({"arg": arg, "action": "update", "data": [data]}).decode())
            if emu.empty_now:
                # A keep-alive update: no levels, seqId == prevSeqId == last seqId.
                seq = emu.seq_id[symbol]
                empty = {"asks": [], "bids": [], "ts": str(now_ms()), "checksum": self._checksum(book),
                         "prevSeqId": seq, "seqId": seq}
                self.emit_book(symbol, _json.encode({"arg": arg, "action": "update", "data": [empty]}).decode())


class OkxEmulator(VenueEmulator):
    venue = "okx"
    session_class = OkxSession
    supported_faults = COMMON_FAULTS | {Fault.GAP, Fault.BAD_CHECKSUM}

    def __init__(self, symbols: list[str], *, swap: bool = False, checksum_mode: str = "real",
                 empty_every: int = 7, ws_snapshot: bool = True, rest_lag_steps: int = 0,
                 rest_delay_s: float = 0.0, **kwargs) -> None:  # noqa: ANN003
        if checksum_mode not in ("real", "zero"):
            raise ValueError("checksum_mode is 'real' or 'zero'")
        self.ws_snapshot = ws_snapshot
        self.rest_lag_steps = rest_lag_steps
        self.rest_delay_s = rest_delay_s
        # (seqId, bids, asks) after each step, for REST answers that trail the stream.
        self.states: dict[str, deque[tuple[int, dict[int, int], dict[int, int]]]] = {
            s: deque(maxlen=400) for s in symbols}
        self.swap = swap
        self.venue = "okx-swap" if swap else "okx"
        self.checksum_mode = checksum_mode
        self.empty_every = empty_every
        self.empty_now = False
        self._steps = 0
        self.inst_symbols = {(f"{s}-SWAP" if swap else s): s for s in symbols}
        self.seq_id = {s: 123_456_000 + 10_000 * i for i, s in enumerate(symbols)}
        self.prev_seq_id = dict(self.seq_id)
        if swap:
            # Swap sizes are whole contracts.
            book_kwargs = dict(kwargs.pop("book_kwargs", None) or {})
            book_kwargs.setdefault("qty_decimals", 0)
            book_kwargs.setdefault("price_decimals", 1)
            kwargs["book_kwargs"] = book_kwargs
        super().__init__(symbols, **kwargs)
        faults = COMMON_FAULTS | {Fault.GAP}
        if checksum_mode != "zero":
            faults |= {Fault.BAD_CHECKSUM}
        if not ws_snapshot:
            faults |= {Fault.STALE_SNAPSHOT}
        self.supported_faults = faults  # type: ignore[misc]

    def on_symbol_step(self, symbol: str, changes: list[Change]) -> None:
        self._steps += 1
        self.empty_now = bool(self.empty_every) and self._steps % self.empty_every == 0
        self.prev_seq_id[symbol] = self.seq_id[symbol]
        self.seq_id[symbol] += self.rng.randint(1, 20)
        bids, asks = self.books[symbol].copy_state()
        self.states[symbol].append((self.seq_id[symbol], bids, asks))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ws/v5/public", self.websocket)
        app.router.add_get("/api/v5/market/books", self.rest_books)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v5/public"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v5/market/books"

    async def rest_books(self, request: web.Request) -> web.Response:
        self.rest_requests.append(request.path_qs)
        if self.rest_delay_s:
            await asyncio.sleep(self.rest_delay_s)
        inst_id = request.query.get("instId", "")
        symbol = self.inst_symbols.get(inst_id)
        if symbol is None:
            return web.json_response({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        try:
            size = min(400, max(1, int(request.query.get("sz", "1"))))
        except ValueError:
            return web.json_response({"code": "51000", "msg": "Parameter sz error", "data": []})
        book = self.books[symbol]
        history = self.states[symbol]
        if self.take_rest_fault(symbol) is Fault.STALE_SNAPSHOT and history:
            seq, bids, asks = history[0]
        elif self.rest_lag_steps and len(history) > self.rest_lag_steps:
            seq, bids, asks = history[-1 - self.rest_lag_steps]
        else:
            seq, (bids, asks) = self.seq_id[symbol], book.copy_state()
        data = {
            "asks": wire_levels(book, [(p, asks[p]) for p in sorted(asks)[:size]]),
            "bids": wire_levels(book, [(p, bids[p]) for p in sorted(bids, reverse=True)[:size]]),
            "ts": str(now_ms()),
            "seqId": seq,
        }
        return web.Response(body=_json.encode({"code": "0", "msg": "", "data": [data]}),
                            content_type="application/json")
