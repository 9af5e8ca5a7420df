"""Shared helpers for transport/live/emulator tests: a scriptable local WebSocket server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from sentrycoin.feeds.base import ConnectionSpec, FeedHandler
from sentrycoin.market import Market


def pytest_asyncio_loop_factories(config, item):  # noqa: ANN001 - pytest hook
    # The live runner is meant to run on uvloop: test it there.
    return {"uvloop": uvloop.new_event_loop}


@dataclass
class ServerConn:
    transport: WSTransport
    received: list[bytes] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    closed: bool = False


class _ServerListener(WSListener):
    def __init__(self, server: LocalWSServer) -> None:
        self.server = server
        self.conn: ServerConn | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.conn = ServerConn(transport)
        self.server.conns.append(self.conn)
        if self.server.on_connect is not None:
            self.server.on_connect(self.conn)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        assert self.conn is not None
        if frame.msg_type is WSMsgType.PONG:
            self.conn.pongs.append(frame.get_payload_as_bytes())
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            data = frame.get_payload_as_bytes()
            self.conn.received.append(data)
            if self.server.on_message is not None:
                self.server.on_message(self.conn, data)
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.conn is not None:
            self.conn.closed = True


class LocalWSServer:
    """picows server on 127.0.0.1:ephemeral whose behaviour each test scripts."""

    def __init__(self, *, auto_pong: bool = True, ssl_context=None,  # noqa: ANN001
                 on_connect: Callable[[ServerConn], None] | None = None,
                 on_message: Callable[[ServerConn, bytes], None] | None = None) -> None:
        self.auto_pong = auto_pong
        self.ssl_context = ssl_context
        self.on_connect = on_connect
        self.on_message = on_message
        self.conns: list[ServerConn] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ws"

    async def __aenter__(self) -> LocalWSServer:
        def factory(request: WSUpgradeRequest) -> WSListener:
            return _ServerListener(self)

        self._server = await ws_create_server(factory, "127.0.0.1", 0, enable_auto_pong=self.auto_pong,
                                              ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        for c in self.conns:
            if not c.closed:
                c.transport.disconnect(graceful=False)
        self._server.close()
        await self._server.wait_closed()


class RecordingHandler(FeedHandler):
    """A minimal handler: records every callback, optional subscribe/ping spec."""

    venue = "test"

    def __init__(self, url: str, symbols: list[str] | None = None, *,
                 ping_payload: str | None = None, ping_interval_s: float | None = None,
                 max_lifetime_s: float | None = None, subscribe: str | None = None,
                 raise_on: bytes | None = None) -> None:
        syms = symbols or ["BTC-USDT"]
        super().__init__([Market("test", s) for s in syms], ws_url=url)
        self.spec = ConnectionSpec(0, url, syms, ping_payload=ping_payload,
                                   ping_interval_s=ping_interval_s, max_lifetime_s=max_lifetime_s)
        self.subscribe = subscribe
        self.raise_on = raise_on
        self.events: list[tuple] = []
        self.frames: list[bytes] = []
        self.snapshots: list[tuple[str, bytes]] = []

    def connections(self) -> list[ConnectionSpec]:
        return [self.spec]

    def on_connected(self, conn_id: int) -> None:
        self.events.append(("connected", conn_id))
        if self.subscribe is not None:
            from sentrycoin.feeds.base import Send
            self.actions.append(Send(conn_id, self.subscribe))

    def on_disconnected(self, conn_id: int) -> None:
        self.events.append(("disconnected", conn_id))
        super().on_disconnected(conn_id)

    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None:
        if self.raise_on is not None and data == self.raise_on:
            raise RuntimeError("boom")
        self.frames.append(data)
        self.counters.frames += 1

    def on_snapshot(self, symbol: str, body: bytes, recv_ms: int) -> None:
        self.snapshots.append((symbol, body))


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0,
                   what: str | Callable[[], str] = "condition") -> None:
    """Poll until predicate() holds; fail with `what` (a string or a callable for late detail) after timeout_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.01)
