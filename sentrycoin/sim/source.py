"""Drive a feed handler with the simulated market, in-process, no network.

`SimSource` is a frame source like the live transport: it tells the handler
a connection opened, hands it every generated frame (`on_frame`) and answers
its `FetchSnapshot` actions from the generator (`on_snapshot`, after a
simulated REST latency, with frames still arriving meanwhile: the handler
must bridge the snapshot into the stream exactly as it does live).

Two ways to run it:

* `run_until(until_ms)` / `run_all()`: as fast as possible on simulated
  time (tests, backtests, replay comparisons);
* `await run(stop_event, speed=1.0)`: paced against the event loop's clock
  (the demo, `sentrycoin run` with no venue); `speed` > 1 runs faster.

`tee(recv_ms, data)` sees every frame and `snapshot_tee(symbol, recv_ms,
body)` every snapshot delivered, for recording.  `observer(market)` is called
after each frame the handler applied to a market (backtests read the book
there).

The markets' local clock is simulated time: the source's `SourceClock` is set
to each frame's (and snapshot's) simulated receive time before the handler
sees it, so cooldown and persistence run in scenario time at any speed, and
a replay of the recording (same receive times) decides the same.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import time
from collections.abc import Callable

from sentrycoin.feeds.base import FeedHandler, FetchSnapshot, Reconnect, Send
from sentrycoin.feeds.registry import book_capacity
from sentrycoin.market import AlertSink, DetectorSettings, Market
from sentrycoin.sim.generator import DEFAULT_START_MS, MarketGenerator
from sentrycoin.sim.scenarios import ScenarioSpec, load_scenario
from sentrycore.marketcore import SourceClock

log = logging.getLogger("sentrycoin.sim")

FrameTee = Callable[[int, bytes], None]
SnapshotTee = Callable[[str, int, bytes], None]
Observer = Callable[[Market], None]

#: Placeholder endpoints: nothing is ever connected to them.
SIM_WS_URL = "sim://binance/stream"
SIM_REST_URL = "sim://binance/api/v3/depth"
#: Frames delivered between yields to the event loop in real-time mode.
MAX_FRAMES_PER_BATCH = 500


class SimSource:
    def __init__(
        self,
        handler: FeedHandler,
        generator: MarketGenerator,
        *,
        snapshot_delay_ms: int = 50,
        tee: FrameTee | None = None,
        snapshot_tee: SnapshotTee | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.handler = handler
        self.generator = generator
        self.snapshot_delay_ms = snapshot_delay_ms
        self.tee = tee
        self.snapshot_tee = snapshot_tee
        self.observer = observer
        self.seed = generator.seed
        self.conn_of: dict[str, int] = {}
        for spec in handler.connections():
            for symbol in spec.symbols:
                self.conn_of[symbol] = spec.conn_id
        missing = [s for s in generator.symbols if s not in self.conn_of]
        if missing:
            raise ValueError(f"the handler does not subscribe {missing}")
        self.markets: list[Market] = [handler.markets[s] for s in generator.symbols]
        # Simulated receive time: the local clock of every market driven here.
        self.clock = SourceClock(generator.now_ms)
        for market in self.markets:
            market.clock = self.clock
        # (deliver_ms, seq, symbol, body): snapshots in flight
        self._pending: list[tuple[int, int, str, bytes]] = []
        self._seq = 0
        self._started = False
        self.frames = 0
        self.snapshots = 0
        self.sends = 0
        self.reconnects = 0

    # -- plumbing -------------------------------------------------------------------

    def start(self) -> None:
        """Open every connection (the handler asks for its snapshots here or on the first frames)."""
        if self._started:
            return
        self._started = True
        now = self.generator.now_ms
        self.clock.now_ms = now
        for spec in self.handler.connections():
            self.handler.on_connected(spec.conn_id)
        self._drain(now)

    def _drain(self, now_ms: int) -> None:
        handler = self.handler
        while True:
            actions = handler.take_actions()
            if not actions:
                return
            for action in actions:
                if isinstance(action, FetchSnapshot):
                    # The venue takes its snapshot when the request arrives; the body
                    # reaches us a little later, with events streaming meanwhile.
                    body = self.generator.snapshot_for_url(action.symbol, action.url)
                    self._seq += 1
                    bisect.insort(self._pending, (now_ms + self.snapshot_delay_ms, self._seq, action.symbol, body))
                elif isinstance(action, Send):
                    self.sends += 1  # subscriptions are implied by the generator's symbols
                elif isinstance(action, Reconnect):
                    self.reconnects += 1
                    log.info("simulated reconnect of connection %d (%s)", action.conn_id, action.reason)
                    handler.on_disconnected(action.conn_id)
                    handler.on_connected(action.conn_id)

    def _deliver_snapshots(self, until_ms: int) -> None:
        while self._pending and self._pending[0][0] <= until_ms:
            at_ms, _, symbol, body = self._pending.pop(0)
            self.snapshots += 1
            if self.snapshot_tee is not None:
                self.snapshot_tee(symbol, at_ms, body)
            self.clock.now_ms = at_ms
            self.handler.on_snapshot(symbol, body, at_ms)
            self._drain(at_ms)

    def step(self) -> bool:
        """Deliver the next frame (and any snapshot due before it).  False at the end."""
        if not self._started:
            self.start()
        frame = self.generator.next_frame()
        if frame is None:
            return False
        self._deliver_snapshots(frame.recv_ms)
        if self.tee is not None:
            self.tee(frame.recv_ms, frame.data)
        market = self.handler.markets[frame.symbol]
        before = market.messages
        self.clock.now_ms = frame.recv_ms
        self.handler.on_frame(self.conn_of[frame.symbol], frame.data, frame.recv_ms)
        self.frames += 1
        self._drain(frame.recv_ms)
        if self.observer is not None and market.messages != before:
            self.observer(market)
        return True

    # -- fast mode ------------------------------------------------------------------

    def run_until(self, until_ms: int | None = None) -> int:
        """Run on simulated time up to until_ms (or the scenario's end); returns frames delivered."""
        n = 0
        gen = self.generator
        while until_ms is None or gen.now_ms < until_ms:
            if not self.step():
                break
            n += 1
        return n

    def run_all(self) -> int:
        if self.generator.end_ms is None:
            raise ValueError("an endless scenario needs run_until(until_ms)")
        return self.run_until(None)

    # -- real time ------------------------------------------------------------------

    async def run(self, stop_event: asyncio.Event, speed: float = 1.0) -> None:
        """Deliver frames paced to the clock until stop_event is set or the scenario ends."""
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        loop = asyncio.get_running_loop()
        self.start()
        gen = self.generator
        sim0_ms = gen.now_ms
        wall0_s = loop.time()
        while not stop_event.is_set():
            # Everything due by now (keeps up under load), in bounded batches so
            # the HTTP server and alert delivery on the same loop stay responsive.
            sim_now_ms = sim0_ms + (loop.time() - wall0_s) * 1000.0 * speed
            n = 0
            while gen.now_ms <= sim_now_ms and n < MAX_FRAMES_PER_BATCH:
                if not self.step():
                    return
                n += 1
            delay_s = (gen.now_ms - sim0_ms) / 1000.0 / speed - (loop.time() - wall0_s)
            if delay_s > 0:
                try:
                    await asyncio.wait_for(stop_event.wait(), timeout=delay_s)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)  # behind the clock: catch up, but let others run


def simulated_source(
    symbols: list[str],
    *,
    scenario: str | ScenarioSpec = "mixed",
    seed: int | None = None,
    settings: DetectorSettings | None = None,
    on_alert: AlertSink | None = None,
    depth: int = 50,
    exchange: str = "binance",
    realtime: bool = True,
    start_ms: int | None = None,
    snapshot_delay_ms: int = 50,
    tee: FrameTee | None = None,
    observer: Observer | None = None,
) -> SimSource:
    """Markets + BinanceSpotHandler + generator, wired: what `sentrycoin run` with no venue needs.

    The markets (`source.markets`) are created with source="simulated"; the
    handler is the real Binance spot handler, so the simulated market
    exercises the same code path as a live run.  `realtime` starts the
    simulated clock at the wall clock (alerts show current times); otherwise it
    starts at a fixed epoch so runs are reproducible.  `seed=None` draws one
    and logs it, so any run can be reproduced.
    """
    from sentrycoin.feeds.binance import BinanceSpotHandler

    spec = load_scenario(scenario) if isinstance(scenario, str) else scenario
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    if start_ms is None:
        start_ms = int(time.time() * 1000) if realtime else DEFAULT_START_MS
    log.info("simulated market: scenario %s, seed %d, %d symbols", spec.name, seed, len(symbols))
    capacity = book_capacity(exchange, depth)
    markets = [Market(exchange, s, depth=depth, capacity=capacity, settings=settings, on_alert=on_alert,
                      source="simulated")
               for s in symbols]
    handler = BinanceSpotHandler(markets, SIM_WS_URL, SIM_REST_URL, depth=depth)
    generator = MarketGenerator(symbols, spec, seed, start_ms=start_ms)
    return SimSource(handler, generator, snapshot_delay_ms=snapshot_delay_ms, tee=tee, observer=observer)
