"""Failed connection attempts are visible on the markets they carry: counted as
reconnects (/status `reconnects`, sentrycoin_book_reconnects_total) and named
in `last_error` in a short human form."""

from __future__ import annotations

import socket
import ssl

from aiohttp import web
from picows import WSMsgType
from picows.common import WSInvalidStatusError

from sentrycoin.transport import Connection, TransportSettings, describe_connect_error
from tests.transport.conftest import LocalWSServer, RecordingHandler, wait_for

FAST = dict(stale_after_s=5.0, backoff_initial_s=0.01, backoff_max_s=0.05, connect_timeout_s=2.0)


def _dead_port() -> int:
    with socket.socket() as s:  # bound then closed: nobody listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_errors_have_short_human_names() -> None:
    assert describe_connect_error(socket.gaierror(-2, "Name or service not known")) == "DNS failure"
    assert describe_connect_error(ConnectionRefusedError(111, "Connect call failed")) == "connection refused"
    assert describe_connect_error(TimeoutError()) == "connect timeout"
    assert describe_connect_error(TimeoutError()) == "connect timeout"
    assert describe_connect_error(ssl.SSLCertVerificationError(1, "certificate verify failed")) \
        == "TLS certificate rejected"
    assert describe_connect_error(ssl.SSLError(1, "wrong version number")) == "TLS error"
    assert describe_connect_error(ConnectionResetError(104, "reset")) == "connection reset"
    assert describe_connect_error(OSError(101, "Network is unreachable")) == "network unreachable"
    assert describe_connect_error(OSError(113, "No route to host")) == "network unreachable"
    assert describe_connect_error(OSError(98, "Address in use")) == "connect failed (EADDRINUSE)"
    # picows' message names 101 first, then what the server really answered.
    exc = WSInvalidStatusError("expected upgrade response with status 101 Switching Protocols, but received 404")
    assert describe_connect_error(exc) == "handshake rejected (HTTP 404)"
    assert describe_connect_error(RuntimeError("odd")) == "connect failed (RuntimeError)"


async def test_refused_connects_count_as_reconnects_and_name_the_error() -> None:
    handler = RecordingHandler(f"ws://127.0.0.1:{_dead_port()}/ws", ["BTC-USDT", "ETH-USDT"])
    conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST))
    conn.start()
    try:
        await wait_for(lambda: conn.counters.connect_failures >= 4, what="connect retries")
    finally:
        await conn.stop()
    failures = conn.counters.connect_failures
    assert conn.counters.connects == 0
    for market in handler.markets.values():
        # Every failed attempt is one reconnect of every market the connection carries.
        assert market.reconnects == failures
        assert market.last_error == "connection refused"
        assert market.invalid_reason == "connection refused"
        assert not market.valid and not market.connected
        assert market.invalid_since_ms is not None
    # The detailed text stays on the connection (and in the log).
    assert "ConnectionRefusedError" in (conn.last_error or "")


async def test_a_rejected_upgrade_is_named_with_its_http_status() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=403, text="geo-blocked")

    app = web.Application()
    app.router.add_get("/ws", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    handler = RecordingHandler(f"ws://127.0.0.1:{port}/ws")
    conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST))
    conn.start()
    try:
        await wait_for(lambda: conn.counters.connect_failures >= 2, what="rejected handshakes")
    finally:
        await conn.stop()
        await runner.cleanup()
    market = handler.markets["BTC-USDT"]
    assert market.last_error == "handshake rejected (HTTP 403)"
    assert market.reconnects == conn.counters.connect_failures


async def test_failed_attempts_then_a_connection_keep_counting_and_the_last_error() -> None:
    port = _dead_port()
    handler = RecordingHandler(f"ws://127.0.0.1:{port}/ws")
    conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST))
    conn.start()
    market = handler.markets["BTC-USDT"]
    try:
        await wait_for(lambda: conn.counters.connect_failures >= 2, what="connect retries")
        srv = LocalWSServer(on_connect=lambda c: c.transport.send(WSMsgType.TEXT, b"hello"))

        async def bind_same_port() -> LocalWSServer:
            from picows import ws_create_server

            from tests.transport.conftest import _ServerListener
            srv._server = await ws_create_server(lambda request: _ServerListener(srv), "127.0.0.1", port)
            srv.port = port
            return srv

        await bind_same_port()
        try:
            await wait_for(lambda: handler.frames == [b"hello"], what="the venue answering")
            failures = conn.counters.connect_failures
            assert market.connected
            # The failures stay counted; the connection itself is not a "reconnect" (first success).
            assert market.reconnects == failures
            market.mark_valid()  # what a feed does once its snapshot lands
            assert market.last_error == "connection refused"  # kept after healing: what happened
            assert market.invalid_reason is None and market.invalid_since_ms is None
        finally:
            await srv.__aexit__(None, None, None)
    finally:
        await conn.stop()
