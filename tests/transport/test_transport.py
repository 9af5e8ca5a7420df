"""Transport unit tests against small local picows servers (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import random

import pytest
from picows import WSMsgType

from sentrycoin.transport import Backoff, Connection, TransportSettings
from tests.transport.conftest import LocalWSServer, RecordingHandler, wait_for

FAST = dict(stale_after_s=5.0, backoff_initial_s=0.01, backoff_max_s=0.05, connect_timeout_s=2.0)


def drain_sends(conn_box: list[Connection]):
    """A drain that executes Send actions on the (single) connection, like LiveRunner."""
    from sentrycoin.feeds.base import Send

    def drain(handler):
        for action in handler.take_actions():
            if isinstance(action, Send):
                conn_box[0].send(action.payload)
    return drain


# -- Backoff (pure, seeded) ---------------------------------------------------

def test_backoff_grows_exponentially_until_the_cap_without_jitter():
    b = Backoff(initial_s=1.0, max_s=30.0, factor=2.0, jitter=0.0)
    assert [b.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def test_backoff_jitter_stays_within_bounds_and_varies():
    b = Backoff(initial_s=1.0, max_s=30.0, factor=2.0, jitter=0.5, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(40)]
    for n, d in enumerate(delays):
        base = min(30.0, 2.0 ** n)
        assert base * 0.5 <= d <= base
    assert max(delays) <= 30.0
    assert len({round(d, 6) for d in delays[10:]}) > 5  # jittered, not lockstep


def test_backoff_reset_starts_over():
    b = Backoff(initial_s=0.5, max_s=30.0, jitter=0.0)
    for _ in range(5):
        b.next_delay()
    b.reset()
    assert b.next_delay() == 0.5


def test_backoff_survives_huge_attempt_counts():
    b = Backoff(initial_s=1.0, max_s=30.0, jitter=0.0)
    b.attempts = 10_000
    assert b.next_delay() == 30.0


def test_settings_reject_nonsense():
    with pytest.raises(ValueError):
        TransportSettings(stale_after_s=0)
    with pytest.raises(ValueError):
        TransportSettings(backoff_initial_s=5, backoff_max_s=1)
    with pytest.raises(ValueError):
        TransportSettings(backoff_jitter=2)


async def test_backoff_resets_only_after_a_healthy_period():
    now = [100.0]
    handler = RecordingHandler("ws://127.0.0.1:1/ws")
    conn = Connection(handler.spec, handler, clock=lambda: now[0],
                      settings=TransportSettings(backoff_initial_s=1, backoff_max_s=30, backoff_jitter=0,
                                                 healthy_after_s=60))
    conn.connected_at = 100.0
    now[0] = 101.0  # short-lived connections: keep growing
    assert [conn._delay_after_disconnect() for _ in range(3)] == [1, 2, 4]
    now[0] = 161.0  # this one lived 61 s: healthy, start over
    assert conn._delay_after_disconnect() == 1
    conn._planned = True  # planned reconnects never wait
    assert conn._delay_after_disconnect() == 0.0
    assert conn.backoff.attempts == 0


async def test_backoff_resets_after_a_connection_that_streamed_data():
    # A venue that keeps dropping working connections is not down: reconnect fast.
    now = [100.0]
    handler = RecordingHandler("ws://127.0.0.1:1/ws")
    conn = Connection(handler.spec, handler, clock=lambda: now[0],
                      settings=TransportSettings(backoff_initial_s=1, backoff_max_s=30, backoff_jitter=0,
                                                 healthy_after_s=60, productive_after_s=5))
    conn.connected_at = 100.0
    now[0] = 106.0  # up 6 s but silent (e.g. subscriptions refused): keep growing
    assert [conn._delay_after_disconnect() for _ in range(4)] == [1, 2, 4, 8]
    conn.counters.frames = 40  # this connection streamed data for 6 s
    assert conn._delay_after_disconnect() == 1
    conn._frames_at_connect = 40
    now[0] = 103.0  # streamed, but only 3 s: a flapping venue still backs off
    conn.counters.frames = 45
    assert [conn._delay_after_disconnect() for _ in range(2)] == [2, 4]


# -- against a live local server ----------------------------------------------

async def test_auto_pong_and_app_ping_and_subscribe():
    async with LocalWSServer() as srv:
        handler = RecordingHandler(srv.url, subscribe='{"op":"subscribe"}',
                                   ping_payload='{"op":"ping"}', ping_interval_s=0.05)
        box: list[Connection] = []
        conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST), drain=drain_sends(box))
        box.append(conn)
        conn.start()
        try:
            await wait_for(lambda: srv.conns and len(srv.conns[0].received) >= 3, what="subscribe + pings")
            server_side = srv.conns[0]
            assert server_side.received[0] == b'{"op":"subscribe"}'
            assert server_side.received[1:3] == [b'{"op":"ping"}'] * 2
            assert conn.counters.app_pings_sent >= 2
            # The server pings: picows must answer with the same payload.
            server_side.transport.send_ping(b"hello-20s")
            await wait_for(lambda: server_side.pongs, what="pong")
            assert server_side.pongs[0] == b"hello-20s"
            assert handler.markets["BTC-USDT"].connected
        finally:
            await conn.stop()
        assert handler.events == [("connected", 0), ("disconnected", 0)]
        assert not handler.markets["BTC-USDT"].connected


async def test_frames_and_bytes_are_counted_and_delivered_in_order():
    def greet(c):
        for i in range(50):
            c.transport.send(WSMsgType.TEXT, b"msg-%d" % i)
        c.transport.send(WSMsgType.BINARY, b"\x00bin")
        # A fragmented message must arrive as one frame.
        c.transport.send(WSMsgType.TEXT, b"frag-", fin=False)
        c.transport.send(WSMsgType.CONTINUATION, b"ment", fin=True)

    async with LocalWSServer(on_connect=greet) as srv:
        handler = RecordingHandler(srv.url)
        conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST))
        conn.start()
        try:
            await wait_for(lambda: len(handler.frames) >= 52, what="frames")
        finally:
            await conn.stop()
    assert handler.frames[:50] == [b"msg-%d" % i for i in range(50)]
    assert handler.frames[50:] == [b"\x00bin", b"frag-ment"]
    assert conn.counters.frames == 52
    assert conn.counters.bytes == sum(len(f) for f in handler.frames)
    assert conn.counters.connects == 1 and conn.counters.disconnects == 1


async def test_stale_connection_is_reconnected_by_the_watchdog():
    # The server neither sends data nor answers pings: a dead peer.
    async with LocalWSServer(auto_pong=False) as srv:
        handler = RecordingHandler(srv.url)
        conn = Connection(handler.spec, handler,
                          settings=TransportSettings(**{**FAST, "stale_after_s": 0.2}))
        conn.start()
        try:
            await wait_for(lambda: len(srv.conns) >= 3, what="two watchdog reconnects")
        finally:
            await conn.stop()
    c = conn.counters
    assert c.stale_reconnects >= 2
    assert c.ws_pings_sent >= 2  # it tried a PING first
    assert c.reconnects >= 2
    market = handler.markets["BTC-USDT"]
    assert market.reconnects == c.reconnects
    assert ("disconnected", 0) in handler.events
    assert not market.valid


async def test_quiet_but_alive_connection_is_kept_by_idle_pings():
    async with LocalWSServer(auto_pong=True) as srv:
        handler = RecordingHandler(srv.url)
        conn = Connection(handler.spec, handler,
                          settings=TransportSettings(**{**FAST, "stale_after_s": 0.2}))
        conn.start()
        try:
            await wait_for(lambda: conn.counters.ws_pings_sent >= 4, what="idle pings")
        finally:
            await conn.stop()
    assert conn.counters.stale_reconnects == 0
    assert len(srv.conns) == 1
    assert conn.counters.control_frames >= 3  # the pongs


async def test_planned_reconnect_skips_backoff():
    async with LocalWSServer() as srv:
        handler = RecordingHandler(srv.url, max_lifetime_s=0.1)
        # A huge backoff proves the planned reconnect does not wait for it.
        conn = Connection(handler.spec, handler,
                          settings=TransportSettings(**{**FAST, "backoff_initial_s": 30, "backoff_max_s": 30}))
        conn.start()
        try:
            await wait_for(lambda: len(srv.conns) >= 3, what="planned reconnects")
        finally:
            await conn.stop()
    assert conn.counters.planned_reconnects >= 2
    assert handler.events[:4] == [("connected", 0), ("disconnected", 0)] * 2


async def test_server_close_and_refused_connects_back_off_and_recover():
    closes = [0]

    def close_first_two(c):
        if closes[0] < 2:
            closes[0] += 1
            c.transport.send_close()
            c.transport.disconnect()
        else:
            c.transport.send(WSMsgType.TEXT, b"welcome")

    async with LocalWSServer(on_connect=close_first_two) as srv:
        handler = RecordingHandler(srv.url)
        conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST))
        conn.start()
        try:
            await wait_for(lambda: handler.frames == [b"welcome"], what="third connection")
        finally:
            await conn.stop()
    assert conn.counters.connects == 3 and conn.counters.reconnects == 2
    assert handler.markets["BTC-USDT"].reconnects == 2

    # Nothing listens on this port: connect failures are counted and retried.
    handler = RecordingHandler(f"ws://127.0.0.1:{srv.port}/ws")
    conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST))
    conn.start()
    try:
        await wait_for(lambda: conn.counters.connect_failures >= 3, what="connect retries")
    finally:
        await conn.stop()
    assert conn.counters.connects == 0
    assert conn.last_error is not None
    assert conn.state == "stopped"


async def test_handler_exception_is_contained_invalidates_and_reconnects():
    def send_bad(c):
        c.transport.send(WSMsgType.TEXT, b"explode")
        c.transport.send(WSMsgType.TEXT, b"after")

    async with LocalWSServer(on_connect=send_bad) as srv:
        handler = RecordingHandler(srv.url, raise_on=b"explode")
        market = handler.markets["BTC-USDT"]
        market.mark_valid()
        conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST))
        conn.start()
        try:
            await wait_for(lambda: len(srv.conns) >= 2, what="reconnect after handler error")
        finally:
            await conn.stop()
    assert conn.counters.decode_errors >= 1
    assert market.resyncs >= 1 and not market.valid


async def test_send_without_connection_fails_softly():
    handler = RecordingHandler("ws://127.0.0.1:9/ws")
    conn = Connection(handler.spec, handler)
    assert conn.send("x") is False
    assert conn.counters.send_failures == 1


async def test_runs_on_uvloop():
    import uvloop
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


async def test_stop_during_a_hanging_handshake_does_not_wait_for_the_timeout():
    # A TCP server that accepts and never answers the HTTP upgrade.
    async def silent(reader, writer):  # noqa: ANN001
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        handler = RecordingHandler(f"ws://127.0.0.1:{port}/ws")
        conn = Connection(handler.spec, handler, settings=TransportSettings(connect_timeout_s=30))
        conn.start()
        await wait_for(lambda: conn.state == "connecting", what="connecting")
        await asyncio.sleep(0.05)
        await asyncio.wait_for(conn.stop(), 2.0)
        assert conn.state == "stopped" and conn.counters.connects == 0
    finally:
        server.close()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):  # noqa: ANN001, ANN201
    import shutil
    import subprocess
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


async def test_wss_uses_tls_and_verifies_certificates(self_signed):  # noqa: ANN001
    import ssl
    cert, key = self_signed
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    async with LocalWSServer(ssl_context=server_ctx,
                             on_connect=lambda c: c.transport.send(WSMsgType.TEXT, b"secure")) as srv:
        assert srv.url.startswith("wss://")
        # The default context refuses a certificate nobody vouches for.
        handler = RecordingHandler(srv.url)
        conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST))
        conn.start()
        try:
            await wait_for(lambda: conn.counters.connect_failures >= 1, what="verification failure")
        finally:
            await conn.stop()
        assert conn.counters.connects == 0 and "CERTIFICATE" in (conn.last_error or "").upper()
        # Trusting it explicitly works, over TLS.
        client_ctx = ssl.create_default_context(cafile=str(cert))
        handler = RecordingHandler(srv.url)
        conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST, ssl_context=client_ctx))
        conn.start()
        try:
            await wait_for(lambda: handler.frames == [b"secure"], what="TLS frame")
        finally:
            await conn.stop()


async def test_sends_over_the_rate_are_delayed_not_dropped():
    import time as _time
    stamps: list[float] = []

    async with LocalWSServer(on_message=lambda c, d: stamps.append(_time.monotonic())) as srv:
        handler = RecordingHandler(srv.url)
        box: list[Connection] = []
        conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST, max_sends_per_s=20),
                          drain=drain_sends(box))
        box.append(conn)
        conn.start()
        try:
            await wait_for(lambda: conn.is_open, what="open")
            for i in range(45):
                assert conn.send(f"sub-{i}")
            # A burst of half the budget goes at once; the rest waits for tokens.
            assert conn.counters.sends == 10 and conn.counters.sends_delayed == 35
            await wait_for(lambda: len(srv.conns[0].received) == 45, what="all frames")
        finally:
            await conn.stop()
    assert srv.conns[0].received == [b"sub-%d" % i for i in range(45)]  # order kept
    # Never more than 20 in any rolling second (small slack for scheduling).
    assert all(stamps[i + 20] - stamps[i] >= 0.8 for i in range(len(stamps) - 20))


# -- make before break (Binance serverShutdown) ------------------------------------

class SwitchingHandler(RecordingHandler):
    def on_switched(self, conn_id: int) -> None:
        from sentrycoin.feeds.base import Send
        self.events.append(("switched", conn_id))
        self.actions.append(Send(conn_id, "resubscribe"))


async def test_switch_over_opens_the_new_socket_before_closing_the_old():
    async with LocalWSServer() as srv:
        handler = SwitchingHandler(srv.url)
        box: list[Connection] = []
        conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST, switchover_overlap_s=0.3),
                          drain=drain_sends(box))
        box.append(conn)
        conn.start()
        try:
            await wait_for(lambda: conn.is_open and len(srv.conns) == 1, what="open")
            old = srv.conns[0]
            conn.switch_over("serverShutdown")
            await wait_for(lambda: len(srv.conns) == 2, what="replacement opened")
            new = srv.conns[1]
            await wait_for(lambda: new.received == [b"resubscribe"], what="new socket subscribed")
            assert not old.closed  # both deliver during the overlap
            old.transport.send(WSMsgType.TEXT, b"from-old")
            new.transport.send(WSMsgType.TEXT, b"from-new")
            await wait_for(lambda: {b"from-old", b"from-new"} <= set(handler.frames), what="both delivered")
            await wait_for(lambda: old.closed, what="old socket closed after the overlap")
            await asyncio.sleep(0.1)
            assert conn.is_open and not new.closed and conn.counters.switchovers == 1
            # The markets never saw a disconnect; only the switch was reported.
            assert handler.events == [("connected", 0), ("switched", 0)]
            assert handler.markets["BTC-USDT"].connected and conn.counters.disconnects == 0
            conn.send("after")
            await wait_for(lambda: new.received[-1:] == [b"after"], what="sends go to the new socket")
        finally:
            await conn.stop()
    assert handler.events[-1] == ("disconnected", 0) and conn.state == "stopped"


async def test_switch_over_that_cannot_connect_keeps_the_old_socket():
    async with LocalWSServer() as srv:
        handler = SwitchingHandler(srv.url)
        conn = Connection(handler.spec, handler, settings=TransportSettings(**FAST))
        conn.start()
        try:
            await wait_for(lambda: conn.is_open, what="open")
            srv._server.close()  # no new connections; the open one stays
            conn.switch_over("serverShutdown")
            await wait_for(lambda: conn.counters.switchover_failures == 1, what="replacement failed")
            assert conn.is_open and not srv.conns[0].closed and conn.counters.switchovers == 0
            assert ("switched", 0) not in handler.events
            srv.conns[0].transport.send(WSMsgType.TEXT, b"still here")
            await wait_for(lambda: b"still here" in handler.frames, what="old socket still delivers")
        finally:
            await conn.stop()
