"""Coinbase Advanced Trade market data: ``level2`` (``l2_data``) + ``heartbeats``.

From the public docs and the real recording: one channel per subscribe message
``{"type":"subscribe","product_ids":[…],"channel":"level2"}``; after each
(un)subscribe the server sends a ``subscriptions`` message listing everything
subscribed.  ``level2`` answers with one ``l2_data`` snapshot per product, then
``update`` events (``side`` ``bid``/``offer``, ``price_level``, ``new_quantity``
strings, 0 deletes).  ``sequence_num`` counts every message on the connection,
across channels (heartbeats and subscription notices included).  A connection
with no subscription is closed after a few seconds.  ``-USDC`` products are
served as the matching ``-USD`` book: a subscription to ``BTC-USDC`` is answered
with events that say ``"product_id":"BTC-USD"`` (the book is streamed once per
connection however many of its names were subscribed).
"""

from __future__ import annotations

import asyncio
import datetime as dt

import msgspec
from aiohttp import web

from sentrycoin.emulator.core import COMMON_FAULTS, Fault, Session, VenueEmulator
from sentrycoin.emulator.truebook import ASK, BID, Change, TrueBook

_json = msgspec.json.Encoder()
CHANNELS = ("level2", "heartbeats", "ticker", "market_trades", "candles", "status", "ticker_batch")


def stamp(shift_ms: int = 0) -> str:
    now = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=shift_ms)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # Coinbase prints nanoseconds


class CoinbaseSession(Session):
    emulator: CoinbaseEmulator

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.sequence_num = 0
        self.channels: dict[str, set[str]] = {}  # channel -> product ids
        self.heartbeat_counter = 0

    async def on_open(self) -> None:
        self.spawn(self._idle_close())
        if self.emulator.heartbeat_s:
            self.spawn(self._heartbeats())

    async def _idle_close(self) -> None:
        await asyncio.sleep(self.emulator.idle_close_s)
        if not any(self.channels.values()):
            await self.close()

    async def _heartbeats(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.emulator.heartbeat_s)
            if self.channels.get("heartbeats"):
                self.heartbeat_counter += 1
                self.send(self._envelope("heartbeats", [{
                    "current_time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC"),
                    "heartbeat_counter": self.heartbeat_counter}]))

    def _envelope(self, channel: str, events: list, *, skip: int = 0, shift_ms: int = 0) -> str:
        """Frame one message; every message on the connection takes the next sequence_num."""
        self.sequence_num += skip
        seq = self.sequence_num
        self.sequence_num += 1
        return _json.encode({"channel": channel, "client_id": "", "timestamp": stamp(shift_ms),
                             "sequence_num": seq, "events": events}).decode()

    def _subscriptions(self) -> str:
        subs = {ch: sorted(ids) for ch, ids in self.channels.items() if ids}
        return self._envelope("subscriptions", [{"subscriptions": subs}])

    async def on_text(self, text: str) -> None:
        emu = self.emulator
        try:
            req = msgspec.json.decode(text)
            kind = req["type"]
            channel = req["channel"]
            products = req.get("product_ids") or []
        except Exception:
            self.send(_json.encode({"type": "error", "message": "Failed to parse request"}).decode())
            return
        if kind not in ("subscribe", "unsubscribe") or channel not in CHANNELS:
            self.send(_json.encode({"type": "error", "message": f"Failed to subscribe: {channel}"}).decode())
            return
        products = [emu.served(p) for p in products]
        unknown = [p for p in products if p not in emu.books]
        if kind == "subscribe" and channel == "level2" and not unknown:
            unknown = [p for p in products if emu.take_snapshot_fault(p, {Fault.REFUSE_SUBSCRIBE})]
        if unknown:
            self.send(_json.encode({"type": "error", "message": f"Failed to subscribe: product {unknown[0]} not found"}).decode())
            return
        current = self.channels.setdefault(channel, set())
        if kind == "subscribe":
            current.update(products if channel != "heartbeats" else ["heartbeats"])
            self.send(self._subscriptions())
            if channel == "level2":
                for product in products:
                    self.subscribed.add(product)
                    if emu.take_snapshot_fault(product, {Fault.NO_SNAPSHOT}) is None:
                        self.emit_snapshot(product, self._snapshot(product))
        else:
            current.difference_update(products if channel != "heartbeats" else ["heartbeats"])
            if channel == "level2":
                for product in products:
                    self.subscribed.discard(product)
            self.send(self._subscriptions())

    def _updates(self, book: TrueBook, levels: list[tuple[str, int, int]], when: str) -> list[dict]:
        return [{"side": "bid" if side == BID else "offer", "event_time": when,
                 "price_level": book.price_text(p), "new_quantity": book.qty_text(q) if q else "0"}
                for side, p, q in levels]

    def _snapshot(self, product: str) -> str:
        book = self.emulator.books[product]
        levels = [(BID, p, q) for p, q in book.top(BID)] + [(ASK, p, q) for p, q in book.top(ASK)]
        when = stamp()
        return self._envelope("l2_data", [{"type": "snapshot", "product_id": product,
                                           "updates": self._updates(book, levels, when)}])

    def on_step(self, symbol: str, changes: list[Change]) -> None:
        book = self.emulator.books[symbol]
        rng = self.emulator.rng
        if changes and rng.random() < self.emulator.intermediate_p:
            # One level changing twice within the message: the later entry is the current size.
            side, price, _ = changes[-1]
            changes = changes[:-1] + [(side, price, rng.randint(1, 50_000))] + changes[-1:]
        skip = 1 if self.take_fault(symbol, {Fault.GAP}) is Fault.GAP else 0
        extra, shift_ms = self.message_faults(symbol, book)
        text = self._envelope("l2_data", [{"type": "update", "product_id": symbol,
                                           "updates": self._updates(book, changes + extra, stamp(shift_ms))}],
                              skip=skip, shift_ms=shift_ms)
        self.emit_book(symbol, text)


class CoinbaseEmulator(VenueEmulator):
    venue = "coinbase"
    session_class = CoinbaseSession
    supported_faults = COMMON_FAULTS | {Fault.GAP}

    def __init__(self, symbols: list[str], *, heartbeat_s: float = 1.0, idle_close_s: float = 5.0,
                 intermediate_p: float = 0.2, **kwargs) -> None:  # noqa: ANN003
        self.heartbeat_s = heartbeat_s
        self.idle_close_s = idle_close_s
        self.intermediate_p = intermediate_p
        book_kwargs = dict(kwargs.pop("book_kwargs", None) or {})
        book_kwargs.setdefault("qty_decimals", 8)
        super().__init__(symbols, book_kwargs=book_kwargs, **kwargs)

    @staticmethod
    def served(product: str) -> str:
        """The book Coinbase serves for a product name: BTC-USDC -> BTC-USD."""
        return product[: -len("-USDC")] + "-USD" if product.endswith("-USDC") else product

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.websocket)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"
