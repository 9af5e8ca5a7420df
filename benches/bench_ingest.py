"""Loopback ingestion: WebSocket frames -> decode -> book -> detector, end to end.

A picows server in a child process (127.0.0.1, its own core) sends
Binance-shaped depthUpdate frames (benches/feed_frames.py "synthetic": ~20
level changes near the top, one U/u chain) to one client; every client
variant runs SentryCoin's BinanceSpotHandler on a synced book:

    sentrycoin     sentrycoin.transport.Connection (picows) -> handler.on_frame (the production path)
    aiohttp        aiohttp ClientSession.ws_connect(decode_text=False) loop -> handler.on_frame
    websockets     websockets.asyncio.client.connect, recv(decode=False) loop -> handler.on_frame
    picows+msgspec baseline: bare picows listener, msgspec typed decode only (no book, no detector)

Two measurements per variant, all on uvloop:

* flood: the server writes N frames (default 200,000) as fast as the socket
  takes them (pre-encoded WebSocket frames, flow-controlled); the client's
  frames/s from its first processed frame to its N-th.
* paced: the server sends at a fixed rate (default 20,000 frames/s, spin-timed)
  and puts its time.monotonic_ns() at send in each frame (`"T"`, an extra
  field both decoders skip); the client takes monotonic_ns() right after the
  frame's handler returned (the detector has decided) and reports p50/p99
  of the difference.  Same clock on both sides (one machine).

The server is pinned to CPU 0 and the client to CPU 1 (--no-pin to turn
that off).  Every variant goes through the same small per-frame hook (count, and in
paced mode read "T" after the timestamp was taken), so the hook's cost is
shared.  Variants run interleaved, --repeats times; medians are reported.

    .venv/bin/python benches/bench_ingest.py [--frames 200000] [--paced-frames 40000] [--rate 20000] [--repeats 3]

or `pytest benches/bench_ingest.py --benchmark-only` (one flood per variant,
frames/s in extra_info).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import multiprocessing as mp
import statistics
import sys
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benches.feed_frames import FIRST_ID, chained_frames  # noqa: E402

SYMBOL = "BTC-USDT"
VARIANTS = ("picows+msgspec", "sentrycoin", "aiohttp", "websockets")


# -- frames -----------------------------------------------------------------------------------

def frame_templates() -> tuple[list[bytes], bytes]:
    """Frames with `%d` slots for U, u and the send timestamp T; the snapshot body."""
    frames, snapshot = chained_frames("synthetic")
    out = []
    for f in frames[1:]:
        head, sep, rest = f.partition(b'"U":')
        assert sep
        _, _, tail = rest.partition(b',"b":')
        out.append(head.replace(b"%", b"%%") + b'"U":%d,"u":%d,"T":%d,"b":' + tail.replace(b"%", b"%%"))
    return out, snapshot


def ws_header(n: int) -> bytes:
    """Server-to-client (unmasked) TEXT frame header for a payload of n bytes."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big")
    return bytes((0x81, 127)) + n.to_bytes(8, "big")


# -- server (child process) ---------------------------------------------------------------------

def _pin(cpu: int | None) -> None:
    """Keep the server and the client on different cores (when there are two)."""
    import os

    if cpu is not None and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


def _serve(pipe, templates: list[bytes], cpu: int | None) -> None:
    import uvloop

    _pin(cpu)
    from picows import WSListener, WSMsgType, WSUpgradeRequest, ws_create_server

    class Sender(WSListener):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path
            self.resumed = asyncio.Event()
            self.resumed.set()

        def pause_writing(self) -> None:
            self.resumed.clear()

        def resume_writing(self) -> None:
            self.resumed.set()

        def on_ws_connected(self, transport) -> None:
            asyncio.get_running_loop().create_task(self.run(transport))

        async def run(self, transport) -> None:
            mode, n, rate = self.path.strip("/").split("/")
            n, rate = int(n), int(rate)
            k = len(templates)
            if mode == "flood":
                # Every WebSocket frame encoded up front, then written in
                # ~256 KiB batches: the load generator must outrun the client,
                # so no formatting and no per-frame send() while it streams.
                raw = transport.underlying_transport
                chunks: list[bytes] = []
                batch: list[bytes] = []
                size = 0
                for i in range(n):
                    payload = templates[i % k] % (FIRST_ID + 1 + i, FIRST_ID + 1 + i, 0)
                    batch.append(ws_header(len(payload)))
                    batch.append(payload)
                    size += len(payload)
                    if size >= 262_144 or i == n - 1:
                        chunks.append(b"".join(batch))
                        batch, size = [], 0
                for chunk in chunks:
                    raw.write(chunk)
                    if not self.resumed.is_set():
                        await self.resumed.wait()
            else:
                period_ns = 1_000_000_000 // rate
                clock = time.monotonic_ns
                t0 = clock() + 50_000_000
                for i in range(n):
                    target = t0 + i * period_ns
                    while clock() < target:
                        pass  # spin: sleep() cannot keep a 50 us period
                    transport.send(WSMsgType.TEXT, templates[i % k] % (FIRST_ID + 1 + i, FIRST_ID + 1 + i, clock()))
                    if i % 2000 == 1999:
                        await asyncio.sleep(0)

        def on_ws_frame(self, transport, frame) -> None:
            pass

    async def main() -> None:
        def factory(request: WSUpgradeRequest):
            return Sender(request.path.decode() if isinstance(request.path, bytes) else request.path)

        server = await ws_create_server(factory, "127.0.0.1", 0, max_frame_size=64 * 1024 * 1024)
        pipe.send(server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # until told to stop
        server.close()

    uvloop.run(main())


class Server:
    def __init__(self, pin: bool = True) -> None:
        self.pin = pin

    def __enter__(self) -> Server:
        templates, _ = frame_templates()
        ctx = mp.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, templates, 0 if self.pin else None), daemon=True)
        self.proc.start()
        self.port = self.pipe.recv()
        return self

    def url(self, mode: str, n: int, rate: int = 0) -> str:
        return f"ws://127.0.0.1:{self.port}/{mode}/{n}/{rate}"

    def __exit__(self, *exc: object) -> None:
        self.pipe.send("stop")
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()


# -- client side ------------------------------------------------------------------------------

class Sink:
    """The per-frame hook every variant calls after its processing step."""

    def __init__(self, n: int, paced: bool) -> None:
        self.n = n
        self.count = 0
        self.paced = paced
        self.lat_ns = array("q")
        self.t_first = self.t_last = 0
        self.done = asyncio.get_running_loop().create_future()

    def __call__(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.count += 1
        if self.paced:
            i = data.find(b'"T":') + 4
            self.lat_ns.append(now - int(data[i:data.find(b",", i)]))
        if self.count == 1:
            self.t_first = now
        elif self.count == self.n:
            self.t_last = now
            if not self.done.done():
                self.done.set_result(None)

    def result(self) -> dict:
        out = {"frames_per_s": (self.n - 1) / ((self.t_last - self.t_first) / 1e9)}
        if self.paced and self.lat_ns:
            lat = sorted(self.lat_ns)
            out["p50_us"] = lat[len(lat) // 2] / 1000
            out["p99_us"] = lat[int(len(lat) * 0.99)] / 1000
        return out


def synced_handler():
    from sentrycoin.feeds.binance import BinanceSpotHandler
    from sentrycoin.market import Market

    _, snapshot = frame_templates()
    market = Market("binance", SYMBOL, depth=50, capacity=5000, source="live")
    handler = BinanceSpotHandler([market], "ws://127.0.0.1:9/stream", "http://127.0.0.1:9/api/v3/depth")
    return handler, market, snapshot


def hooked(handler, sink: Sink):
    """handler.on_frame followed by the sink, as an instance attribute (what Connection calls)."""
    on_frame = handler.on_frame

    def on_frame_then_sink(conn_id: int, data: bytes, recv_ms: int) -> None:
        on_frame(conn_id, data, recv_ms)
        sink(data)

    handler.on_frame = on_frame_then_sink
    return on_frame_then_sink


def sync_now(handler, snapshot: bytes) -> None:
    handler.on_connected(0)
    handler.take_actions()
    handler.on_snapshot(SYMBOL, snapshot, 0)


async def run_sentrycoin(url: str, sink: Sink) -> None:
    from sentrycoin.feeds.base import FetchSnapshot
    from sentrycoin.transport import Connection, TransportSettings

    handler, market, snapshot = synced_handler()
    hooked(handler, sink)

    def drain(h) -> None:
        # The live runner's job, done locally: answer the snapshot request.
        for action in h.take_actions():
            if isinstance(action, FetchSnapshot):
                h.on_snapshot(action.symbol, snapshot, 0)

    spec = dataclasses.replace(handler.connections()[0], url=url)
    conn = Connection(spec, handler, settings=TransportSettings(stale_after_s=60.0), drain=drain)
    conn.start()
    await sink.done
    ok = market.valid and market.resyncs == 0 and market.messages >= sink.n
    await conn.stop()
    assert ok, "sentrycoin lost sync"


async def run_aiohttp(url: str, sink: Sink) -> None:
    import aiohttp

    handler, market, snapshot = synced_handler()
    sync_now(handler, snapshot)
    on_frame = hooked(handler, sink)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=0, decode_text=False) as ws:
            text = aiohttp.WSMsgType.TEXT
            while sink.count < sink.n:
                msg = await ws.receive()
                if msg.type is text:
                    on_frame(0, msg.data, 0)
                else:
                    break
    assert market.valid and market.resyncs == 0, "aiohttp variant lost sync"


async def run_websockets(url: str, sink: Sink) -> None:
    from websockets.asyncio.client import connect

    handler, market, snapshot = synced_handler()
    sync_now(handler, snapshot)
    on_frame = hooked(handler, sink)
    async with connect(url, max_size=None, compression=None) as ws:
        recv = ws.recv
        while sink.count < sink.n:
            on_frame(0, await recv(decode=False), 0)
    assert market.valid and market.resyncs == 0, "websockets variant lost sync"


async def run_bare_picows(url: str, sink: Sink) -> None:
    import msgspec
    from picows import WSListener, WSMsgType, ws_connect

    from sentrycoin.feeds.binance import SpotCombined

    decode = msgspec.json.Decoder(SpotCombined, strict=False).decode

    class Bare(WSListener):
        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type is WSMsgType.TEXT:
                data = frame.get_payload_as_bytes()
                decode(data)
                sink(data)

    transport, _ = await ws_connect(Bare, url, max_frame_size=64 * 1024 * 1024)
    await sink.done
    transport.disconnect()


RUNNERS = {"sentrycoin": run_sentrycoin, "aiohttp": run_aiohttp, "websockets": run_websockets,
           "picows+msgspec": run_bare_picows}


def run_variant(server: Server, variant: str, mode: str, n: int, rate: int = 0) -> dict:
    import uvloop

    async def go() -> dict:
        sink = Sink(n, paced=mode == "paced")
        await asyncio.wait_for(RUNNERS[variant](server.url(mode, n, rate), sink), timeout=300)
        return sink.result()

    return uvloop.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=200_000, help="frames per flood run")
    ap.add_argument("--paced-frames", type=int, default=40_000, help="frames per paced run")
    ap.add_argument("--rate", type=int, default=20_000, help="paced frames/s")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--no-pin", action="store_true", help="do not pin server to CPU 0 and client to CPU 1")
    ap.add_argument("--rt", action="store_true",
                    help="run the client under SCHED_FIFO (root): other load on a shared machine "
                         "cannot preempt it, so paced tails show the client, not the neighbours")
    args = ap.parse_args()
    variants = args.variants.split(",")
    # The disconnect at the end of each run invalidates the book: expected, not news.
    logging.getLogger("sentrycoin").setLevel(logging.ERROR)
    flood: dict[str, list[float]] = {v: [] for v in variants}
    p50: dict[str, list[float]] = {v: [] for v in variants}
    p99: dict[str, list[float]] = {v: [] for v in variants}
    with Server(pin=not args.no_pin) as server:
        _pin(None if args.no_pin else 1)
        if args.rt:
            import os

            # After the server started: the spinning sender must not inherit it.
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        for r in range(args.repeats):
            for v in variants:
                flood[v].append(run_variant(server, v, "flood", args.frames)["frames_per_s"])
                res = run_variant(server, v, "paced", args.paced_frames, args.rate)
                p50[v].append(res["p50_us"])
                p99[v].append(res["p99_us"])
                print(f"  round {r + 1} {v:<15} flood {flood[v][-1]:>10,.0f} frames/s   "
                      f"paced p50 {p50[v][-1]:7.1f} us  p99 {p99[v][-1]:7.1f} us", flush=True)
    base = statistics.median(p99["picows+msgspec"]) if "picows+msgspec" in p99 else None
    print(f"\n{args.frames:,} frames flood / {args.paced_frames:,} frames paced at {args.rate:,}/s; "
          f"medians of {args.repeats} runs")
    print(f"{'variant':<16}{'frames/s':>12}{'p50 us':>9}{'p99 us':>9}{'p99/bare':>10}")
    for v in variants:
        m99 = statistics.median(p99[v])
        ratio = f"{m99 / base:>10.2f}" if base else ""
        print(f"{v:<16}{statistics.median(flood[v]):>12,.0f}{statistics.median(p50[v]):>9.1f}{m99:>9.1f}{ratio}")


# -- pytest-benchmark -------------------------------------------------------------------------------

def _bench(benchmark, variant: str) -> None:
    logging.getLogger("sentrycoin").setLevel(logging.ERROR)
    with Server() as server:
        res = benchmark.pedantic(run_variant, args=(server, variant, "flood", 200_000), rounds=1, iterations=1)
        benchmark.extra_info["frames_per_s"] = round(res["frames_per_s"])


def test_ingest_sentrycoin(benchmark) -> None:
    _bench(benchmark, "sentrycoin")


def test_ingest_aiohttp(benchmark) -> None:
    _bench(benchmark, "aiohttp")


def test_ingest_websockets(benchmark) -> None:
    _bench(benchmark, "websockets")


def test_ingest_bare_picows_msgspec(benchmark) -> None:
    _bench(benchmark, "picows+msgspec")


if __name__ == "__main__":
    main()
