"""LiveRunner: action execution (Send, FetchSnapshot, Reconnect) and clean stop."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

from aiohttp import web

from sentrycoin.feeds.base import FetchSnapshot, Reconnect, Send
from sentrycoin.live import LiveRunner
from sentrycoin.transport import TransportSettings
from tests.transport.conftest import LocalWSServer, RecordingHandler, wait_for

FAST = TransportSettings(stale_after_s=5.0, backoff_initial_s=0.01, backoff_max_s=0.05, connect_timeout_s=2.0)


class RestServer:
    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.hits: list[tuple[float, str]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def depth(self, request: web.Request) -> web.Response:
        self.hits.append((time.monotonic(), request.query.get("symbol", "")))
        if len(self.hits) <= self.fail_first:
            return web.Response(status=503, text="busy")
        return web.Response(body=b'{"snap":"%s"}' % request.query["symbol"].encode())

    async def __aenter__(self) -> RestServer:
        app = web.Application()
        app.router.add_get("/depth", self.depth)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


class SnapshotHandler(RecordingHandler):
    def __init__(self, url: str, rest: str, symbols: list[str]) -> None:
        super().__init__(url, symbols)
        self.rest = rest

    def on_connected(self, conn_id: int) -> None:
        super().on_connected(conn_id)
        for s in self.spec.symbols:
            fetch = FetchSnapshot(s, f"{self.rest}/depth?symbol={s}")
            self.actions.extend([fetch, fetch])  # the duplicate must be coalesced


async def test_runner_sends_fetches_with_retry_and_spacing_then_stops():
    async with LocalWSServer() as ws, RestServer(fail_first=1) as rest:
        handler = SnapshotHandler(ws.url, f"http://127.0.0.1:{rest.port}", ["BTC-USDT", "ETH-USDT"])
        runner = LiveRunner([handler], transport=FAST, snapshot_spacing_s={"test": 0.05},
                            snapshot_retry_initial_s=0.01, snapshot_retry_max_s=0.02)
        task = asyncio.create_task(runner.run())
        try:
            await wait_for(lambda: len(handler.snapshots) == 2, what="two snapshots")
            assert sorted(handler.snapshots) == [("BTC-USDT", b'{"snap":"BTC-USDT"}'),
                                                 ("ETH-USDT", b'{"snap":"ETH-USDT"}')]
            assert len(rest.hits) == 3  # one 503, retried; duplicates coalesced
            assert runner.snapshot_failures == 1 and runner.snapshots_fetched == 2
            gaps = [b[0] - a[0] for a, b in pairwise(rest.hits)]
            assert all(g >= 0.04 for g in gaps)  # per-venue spacing honoured

            handler.actions.append(Send(0, "hello"))
            runner.drain(handler)
            await wait_for(lambda: ws.conns[0].received == [b"hello"], what="Send executed")

            handler.actions.append(Reconnect(0, "test"))
            runner.drain(handler)
            await wait_for(lambda: len(ws.conns) == 2 and ws.conns[0].closed,
                           what="Reconnect executed")
            # The server sees the new socket before the client's connected callback runs.
            await wait_for(lambda: handler.markets["BTC-USDT"].reconnects == 1, what="the client reconnected")
            stats = runner.stats()
            conn_stats = stats["connections"][0]
            assert conn_stats["requested_reconnects"] == 1 and conn_stats["venue"] == "test"
            assert stats["feeds"]["test"]["markets"]["BTC-USDT"]["reconnects"] == 1
        finally:
            await runner.stop()
        await asyncio.wait_for(task, 2.0)
    assert all(c.state == "stopped" for c in runner.connections.values())
    assert handler.events[-1] == ("disconnected", 0)
    assert not any(m.connected for m in handler.markets.values())


async def test_send_to_unknown_connection_is_counted_not_raised():
    async with LocalWSServer() as ws:
        handler = RecordingHandler(ws.url)
        runner = LiveRunner([handler], transport=FAST)
        await runner.start()
        try:
            handler.actions.append(Send(7, "nowhere"))
            runner.drain(handler)
            assert runner.send_failures == 1
        finally:
            await runner.stop()


class RefetchHandler(RecordingHandler):
    """Asks for the snapshot again from on_snapshot (Binance: 'snapshot older than the stream')."""

    def __init__(self, url: str, rest: str) -> None:
        super().__init__(url, ["BTC-USDT"])
        self.rest = rest

    def on_connected(self, conn_id: int) -> None:
        super().on_connected(conn_id)
        self.actions.append(FetchSnapshot("BTC-USDT", f"{self.rest}/depth?symbol=BTC-USDT"))

    def on_snapshot(self, symbol: str, body: bytes, recv_ms: int) -> None:
        super().on_snapshot(symbol, body, recv_ms)
        if len(self.snapshots) < 3:
            self.actions.append(FetchSnapshot(symbol, f"{self.rest}/depth?symbol={symbol}"))


async def test_fetch_requested_from_on_snapshot_is_not_coalesced_away():
    async with LocalWSServer() as ws, RestServer() as rest:
        handler = RefetchHandler(ws.url, f"http://127.0.0.1:{rest.port}")
        runner = LiveRunner([handler], transport=FAST, snapshot_spacing_s={"test": 0.0})
        await runner.start()
        try:
            await wait_for(lambda: len(handler.snapshots) == 3, what="three snapshots")
        finally:
            await runner.stop()
    assert len(rest.hits) == 3


async def test_hanging_snapshot_times_out_and_is_retried():
    hang = asyncio.Event()

    class Hanging(RestServer):
        async def depth(self, request):  # noqa: ANN001, ANN201
            self.hits.append((time.monotonic(), request.query.get("symbol", "")))
            if len(self.hits) == 1:
                await hang.wait()  # never answers the first request
            return web.Response(body=b"{}")

    async with LocalWSServer() as ws, Hanging() as rest:
        handler = SnapshotHandler(ws.url, f"http://127.0.0.1:{rest.port}", ["BTC-USDT"])
        runner = LiveRunner([handler], transport=FAST, snapshot_timeout_s=0.2,
                            snapshot_retry_initial_s=0.01, snapshot_retry_max_s=0.02)
        await runner.start()
        try:
            await wait_for(lambda: handler.snapshots, what="retried snapshot")
        finally:
            hang.set()
            await runner.stop()
    assert runner.snapshot_failures == 1 and len(rest.hits) == 2


async def test_cancelling_run_closes_every_connection():
    async with LocalWSServer() as ws:
        handler = RecordingHandler(ws.url)
        runner = LiveRunner([handler], transport=FAST)
        task = asyncio.create_task(runner.run())
        await wait_for(lambda: handler.markets["BTC-USDT"].connected, what="connected")
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await wait_for(lambda: ws.conns[0].closed, what="server side closed")
    assert all(c.state == "stopped" for c in runner.connections.values())
    assert not handler.markets["BTC-USDT"].connected
    assert handler.events == [("connected", 0), ("disconnected", 0)]
