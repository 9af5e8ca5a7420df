"""Bybit v5 public orderbook: ``orderbook.{depth}.{symbol}`` snapshot + delta.

From the public docs and observed behaviour: the client sends
``{"op":"subscribe","args":[topics…]}`` (spot takes at most 10 args per
request) and gets ``{"success":true,"ret_msg":"subscribe",…,"op":"subscribe"}``;
subscribing to a topic already subscribed is refused with
``"error:already subscribed,topic:…"`` (so a resync must unsubscribe first).
``{"op":"ping"}`` is answered with a pong (spot: ``ret_msg":"pong"``,
derivatives: ``"op":"pong"``).  Data: ``{"topic","type":"snapshot"|"delta","ts",
"data":{"s","b","a","u","seq"},"cts"}``, deltas carry ``u == previous u + 1``;
``u == 1`` (a service restart) comes as a fresh snapshot.
"""

from __future__ import annotations

import uuid

import msgspec
from aiohttp import web

from sentrycoin.emulator.core import COMMON_FAULTS, Fault, Session, VenueEmulator, now_ms
from sentrycoin.emulator.truebook import ASK, BID, Change

_json = msgspec.json.Encoder()
DEPTHS = {"spot": (1, 50, 200, 1000), "linear": (1, 50, 200, 500, 1000), "inverse": (1, 50, 200, 500, 1000)}


def native(symbol: str) -> str:
    return symbol.replace("-", "")


class BybitSession(Session):
    emulator: BybitEmulator

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.conn_id = uuid.uuid4().hex[:20]
        self.topics: dict[str, tuple[str, int]] = {}  # topic -> (symbol, depth)

    def _reply(self, success: bool, ret_msg: str, op: str, req_id: str, **extra: object) -> None:
        msg: dict[str, object] = {"success": success, "ret_msg": ret_msg, "conn_id": self.conn_id,
                                  "req_id": req_id, "op": op}
        msg.update(extra)
        self.send(_json.encode(msg).decode())

    async def on_text(self, text: str) -> None:
        emu = self.emulator
        try:
            req = msgspec.json.decode(text)
            op = req["op"]
        except Exception:
            self._reply(False, "error:invalid request", "", "")
            return
        req_id = str(req.get("req_id", ""))
        args = req.get("args") or []
        if op == "ping":
            if emu.category == "spot":
                self._reply(True, "pong", "ping", req_id)
            else:
                self.send(_json.encode({"req_id": req_id, "op": "pong", "args": [str(now_ms())],
                                        "conn_id": self.conn_id}).decode())
        elif op == "subscribe":
            if emu.category == "spot" and len(args) > 10:
                self._reply(False, "args size >10", "subscribe", req_id)
                return
            parsed = []
            for topic in args:
                target = emu.parse_topic(topic)
                if target is None:
                    self._reply(False, f"error:handler not found,topic:{topic}", "subscribe", req_id)
                    return
                if topic in self.topics:
                    self._reply(False, f"error:already subscribed,topic:{topic}", "subscribe", req_id)
                    return
                parsed.append((topic, target))
            refused = [t for t, (symbol, _) in parsed if emu.take_snapshot_fault(symbol, {Fault.REFUSE_SUBSCRIBE})]
            if refused:
                self._reply(False, f"error:subscription refused,topic:{refused[0]}", "subscribe", req_id)
                return
            self._reply(True, "subscribe" if emu.category == "spot" else "", "subscribe", req_id)
            for topic, (symbol, depth) in parsed:
                self.topics[topic] = (symbol, depth)
                self.subscribed.add(symbol)
                if emu.take_snapshot_fault(symbol, {Fault.NO_SNAPSHOT}) is None:
                    self.send_snapshot(topic, symbol, depth)
        elif op == "unsubscribe":
            for topic in args:
                target = self.topics.pop(topic, None)
                if target is not None and not any(t[0] == target[0] for t in self.topics.values()):
                    self.subscribed.discard(target[0])
            self._reply(True, "", "unsubscribe", req_id)
        else:
            self._reply(False, f"error:unknown op {op}", str(op), req_id)

    def send_snapshot(self, topic: str, symbol: str, depth: int) -> None:
        self.emit_snapshot(symbol, self._snapshot_text(topic, symbol, depth, self.emulator.update_id[symbol]))

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        emu = self.emulator
        book = emu.books[symbol]
        for topic, (sym, depth) in list(self.topics.items()):
            if sym != symbol:
                continue
            if emu.restart_now:
                # Service restart: the venue starts over at u == 1 with a full snapshot.
                self.emit_book(symbol, self._snapshot_text(topic, symbol, depth, 1))
                continue
            if emu.snapshot_now:
                self.emit_book(symbol, self._snapshot_text(topic, symbol, depth, emu.update_id[symbol]))
                continue
            u = emu.update_id[symbol]
            if self.take_fault(symbol, {Fault.GAP}) is Fault.GAP:
                u += 1
            extra, shift_ms = self.message_faults(symbol, book)
            sent = changes + extra
            data = {
                "s": native(symbol),
                # Deletes carry the size "0".
                "b": [[book.price_text(p), book.qty_text(q) if q else "0"] for side, p, q in sent if side == BID],
                "a": [[book.price_text(p), book.qty_text(q) if q else "0"] for side, p, q in sent if side == ASK],
                "u": u,
                "seq": emu.cross_seq[symbol],
            }
            ts = now_ms() + shift_ms
            self.emit_book(symbol, _json.encode(
                {"topic": topic, "type": "delta", "ts": ts, "data": data, "cts": ts - 1}).decode())

    def _snapshot_text(self, topic: str, symbol: str, depth: int, u: int) -> str:
        book = self.emulator.books[symbol]
        data = {
            "s": native(symbol),
            "b": [[book.price_text(p), book.qty_text(q)] for p, q in book.top(BID, depth)],
            "a": [[book.price_text(p), book.qty_text(q)] for p, q in book.top(ASK, depth)],
            "u": u,
            "seq": self.emulator.cross_seq[symbol],
        }
        ts = now_ms()
        return _json.encode({"topic": topic, "type": "snapshot", "ts": ts, "data": data, "cts": ts - 1}).decode()


class BybitEmulator(VenueEmulator):
    venue = "bybit"
    session_class = BybitSession
    supported_faults = COMMON_FAULTS | {Fault.GAP}

    def __init__(self, symbols: list[str], *, category: str = "spot", snapshot_every: int = 0,
                 restart_every: int = 0, **kwargs) -> None:  # noqa: ANN003
        if category not in DEPTHS:
            raise ValueError(f"unknown bybit category {category!r}")
        self.category = category
        self.venue = "bybit" if category == "spot" else f"bybit-{category}"
        self.snapshot_every = snapshot_every  # push an unsolicited snapshot every N steps (0: never)
        self.restart_every = restart_every  # simulate a service restart (u -> 1) every N steps
        self.natives = {native(s): s for s in symbols}
        self.update_id = {s: 80_000_000 + 1000 * i for i, s in enumerate(symbols)}
        self.cross_seq = {s: 7_961_000_000 + 10_000 * i for i, s in enumerate(symbols)}
        self.snapshot_now = False
        self.restart_now = False
        self._steps = 0
        super().__init__(symbols, **kwargs)

    def parse_topic(self, topic: str) -> tuple[str, int] | None:
        parts = topic.split(".")
        if len(parts) != 3 or parts[0] != "orderbook":
            return None
        try:
            depth = int(parts[1])
        except ValueError:
            return None
        symbol = self.natives.get(parts[2])
        if symbol is None or depth not in DEPTHS[self.category]:
            return None
        return symbol, depth

    def on_symbol_step(self, symbol: str, changes: list[Change]) -> None:
        self._steps += 1
        self.restart_now = bool(self.restart_every) and self._steps % self.restart_every == 0
        self.snapshot_now = bool(self.snapshot_every) and self._steps % self.snapshot_every == 0
        if self.restart_now:
            self.update_id[symbol] = 1
        else:
            self.update_id[symbol] += 1
        self.cross_seq[symbol] += self.rng.randint(1, 50)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(f"/v5/public/{self.category}", self.websocket)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v5/public/{self.category}"
