"""Pre-generated simulated traffic for the scale benchmark, and its paced replay.

`pregenerate()` runs the simulated market (sentrycoin.sim.generator, the same
Binance spot diff-depth frames `sentrycoin run` shows with no venue) once and
writes every frame to a cache file, with each symbol's depth snapshot taken
before its first frame.  `ReplaySource` then feeds that file to the real
Binance feed handler at a fixed aggregate rate, reading it in chunks so the
frames never sit in the measured process's memory and the generator's cost
is not measured (it is timed separately while generating).

File layout (little endian): b"SCR1", u32 n_symbols, then per symbol
u32 len + name + u32 len + snapshot body; then frames: u32 symbol index,
u32 len, data.  Frames carry the simulated event time in `E`.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
from pathlib import Path
from time import perf_counter_ns

from sentrycoin.feeds.base import FeedHandler, FetchSnapshot, Reconnect, Send
from sentrycoin.sim.generator import MarketGenerator

MAGIC = b"SCR1"
_U32 = struct.Struct("<I")
_REC = struct.Struct("<II")
CHUNK = 4 << 20
#: Histogram resolution: 2**SHIFT ns (256 ns) buckets, 2**16 of them (~16.8 ms); slower calls share the last one.
SHIFT = 8
N_BUCKETS = 1 << 16
MAX_BATCH = 500
MIN_SLEEP_S = 0.001
CACHE_DIR = Path(os.environ.get("SCALE_CACHE_DIR", "/tmp/sentrycoin-scale-cache"))


def market_symbols(n: int) -> list[str]:
    return [f"M{i:04d}-USDT" for i in range(n)]


#: "<scenario>-heavy": the scenario with 12x the level-change rate, ~36 levels per frame like real
#: BTCUSDT @100ms traffic (the built-in scenarios average ~7 levels per frame).
HEAVY_SUFFIX = "-heavy"
HEAVY_UPDATE_FACTOR = 12.0


def scenario_spec(name: str):  # noqa: ANN201 - ScenarioSpec
    import msgspec

    from sentrycoin.sim.scenarios import load_scenario

    if name.endswith(HEAVY_SUFFIX):
        spec = load_scenario(name[: -len(HEAVY_SUFFIX)])
        normal = msgspec.structs.replace(spec.normal, update_rate_hz=spec.normal.update_rate_hz * HEAVY_UPDATE_FACTOR)
        return msgspec.structs.replace(spec, normal=normal, name=name)
    return load_scenario(name)


def pregenerate(n_markets: int, n_frames: int, *, scenario: str = "mixed", seed: int = 11) -> tuple[Path, dict]:
    """Write (or reuse) a cache file with at least n_frames frames; returns (path, generation stats)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"{scenario}-m{n_markets}-s{seed}-f{n_frames}.bin"
    stats_path = path.with_suffix(".stats")
    if path.exists() and stats_path.exists():
        return path, eval(stats_path.read_text())  # noqa: S307 - our own repr of a dict of numbers
    symbols = market_symbols(n_markets)
    t0 = time.perf_counter()
    gen = MarketGenerator(symbols, scenario_spec(scenario), seed)
    build_s = time.perf_counter() - t0
    index = {s: i for i, s in enumerate(symbols)}
    tmp = path.with_suffix(".tmp")
    nbytes = 0
    levels = 0
    with open(tmp, "wb", buffering=CHUNK) as fh:
        fh.write(MAGIC + _U32.pack(n_markets))
        for s in symbols:
            name, body = s.encode(), gen.snapshot_body(s, 1000)
            fh.write(_U32.pack(len(name)) + name + _U32.pack(len(body)) + body)
        t1 = time.perf_counter()
        n = 0
        pack = _REC.pack
        while n < n_frames:
            f = gen.next_frame()
            if f is None:
                raise ValueError(f"scenario {scenario!r} ended after {n} frames; need an endless one")
            fh.write(pack(index[f.symbol], len(f.data)))
            fh.write(f.data)
            nbytes += len(f.data)
            levels += f.data.count(b'],["') + f.data.count(b'[["')  # one per level pair in "b"/"a"
            n += 1
        gen_s = time.perf_counter() - t1
    stats = {
        "frames": n, "generate_s": round(gen_s, 2), "build_s": round(build_s, 2),
        "generator_frames_per_s": round(n / gen_s), "mean_frame_bytes": round(nbytes / n, 1),
        "mean_levels_per_frame": round(levels / n, 1),
        "simulated_s": (gen.now_ms - gen.start_ms) / 1000.0,
    }
    tmp.rename(path)
    stats_path.write_text(repr(stats))
    return path, stats


class LatencyHistogram:
    """Per-call times in 256 ns buckets (exact enough for p50/p99 at the µs scale)."""

    def __init__(self) -> None:
        self.counts = [0] * (N_BUCKETS + 1)
        self.n = 0
        self.sum_ns = 0
        self.max_ns = 0

    def quantile_us(self, q: float) -> float:
        if self.n == 0:
            return float("nan")
        target = q * self.n
        running = 0
        for i, c in enumerate(self.counts):
            running += c
            if running >= target:
                return ((i << SHIFT) + (1 << (SHIFT - 1))) / 1000.0  # bucket centre
        return self.max_ns / 1000.0

    def summary(self) -> dict:
        return {
            "n": self.n,
            "p50_us": round(self.quantile_us(0.50), 2),
            "p90_us": round(self.quantile_us(0.90), 2),
            "p99_us": round(self.quantile_us(0.99), 2),
            "p999_us": round(self.quantile_us(0.999), 2),
            "mean_us": round(self.sum_ns / max(1, self.n) / 1000.0, 2),
            "max_us": round(self.max_ns / 1000.0, 1),
        }


def _as_bytes(payload: bytes | str) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


class ReplaySource:
    """A frame source for `Monitor`: connects the handler, answers its snapshot
    requests from the file, then delivers frames at `rate_per_s` (None: as fast
    as possible), timing every `on_frame` call."""

    def __init__(self, handler: FeedHandler, path: Path, rate_per_s: float | None) -> None:
        self.handler = handler
        self.path = path
        self.rate_per_s = rate_per_s
        self.hist = LatencyHistogram()
        self.frames = 0
        self.late_snapshot_requests = 0
        self.reconnects = 0
        self.exhausted = False
        self._fh = open(path, "rb")
        if self._fh.read(4) != MAGIC:
            raise ValueError(f"{path} is not a scale replay file")
        (n,) = _U32.unpack(self._fh.read(4))
        self.symbols: list[str] = []
        self.snapshots: dict[str, bytes] = {}
        for _ in range(n):
            (ln,) = _U32.unpack(self._fh.read(4))
            name = self._fh.read(ln).decode()
            (lb,) = _U32.unpack(self._fh.read(4))
            self.snapshots[name] = self._fh.read(lb)
            self.symbols.append(name)
        conn_of = {}
        for spec in handler.connections():
            for s in spec.symbols:
                conn_of[s] = spec.conn_id
        self.conn_by_index = [conn_of[s] for s in self.symbols]
        self._buf = b""
        self._pos = 0

    def close(self) -> None:
        self._fh.close()

    def _drain(self, now_ms: int, started: bool) -> None:
        handler = self.handler
        while handler.actions:
            for action in handler.take_actions():
                if isinstance(action, Send) and b'"SUBSCRIBE"' in _as_bytes(action.payload):
                    # Binance answers a SUBSCRIBE; its reply is what asks for the snapshots.
                    request_id = json.loads(action.payload)["id"]
                    handler.on_frame(action.conn_id, b'{"result":null,"id":%d}' % request_id, now_ms)
                elif isinstance(action, FetchSnapshot):
                    if started:
                        # The file holds only the initial snapshots: a resync cannot be answered
                        # (the run reports it; with clean traffic it never happens).
                        self.late_snapshot_requests += 1
                        continue
                    body = self.snapshots.pop(action.symbol)
                    handler.on_snapshot(action.symbol, body, now_ms)
                elif isinstance(action, Reconnect):
                    self.reconnects += 1

    async def run(self, stop_event: asyncio.Event, speed: float = 1.0) -> None:  # noqa: ARG002 - Monitor API
        handler = self.handler
        loop = asyncio.get_running_loop()
        now_ms = time.time_ns() // 1_000_000
        for spec in handler.connections():
            handler.on_connected(spec.conn_id)
        self._drain(now_ms, started=False)
        self.snapshots.clear()
        rate = self.rate_per_s
        fh = self._fh
        conn_by_index = self.conn_by_index
        unpack_from = _REC.unpack_from
        t0 = loop.time()
        i = 0
        buf, pos = self._buf, self._pos
        try:
            while not stop_event.is_set():
                due = (loop.time() - t0) * rate if rate else i + MAX_BATCH
                hist = self.hist  # may be swapped for a fresh one between batches
                counts = hist.counts
                on_frame = handler.on_frame
                now_ms = time.time_ns() // 1_000_000
                n = 0
                spent = 0
                worst = hist.max_ns
                while i < due and n < MAX_BATCH:
                    if pos + 8 > len(buf):
                        buf = buf[pos:] + fh.read(CHUNK)
                        pos = 0
                        if len(buf) < 8:
                            self.exhausted = True
                            return
                    idx, ln = unpack_from(buf, pos)
                    end = pos + 8 + ln
                    if end > len(buf):
                        buf = buf[pos:] + fh.read(CHUNK)
                        pos = 0
                        end = 8 + ln
                        if end > len(buf):
                            self.exhausted = True
                            return
                    data = buf[pos + 8:end]
                    pos = end
                    t = perf_counter_ns()
                    on_frame(conn_by_index[idx], data, now_ms)
                    dt = perf_counter_ns() - t
                    b = dt >> SHIFT
                    counts[b if b < N_BUCKETS else N_BUCKETS] += 1
                    spent += dt
                    if dt > worst:
                        worst = dt
                    if handler.actions:
                        self._drain(now_ms, started=True)
                    i += 1
                    n += 1
                hist.n += n
                hist.sum_ns += spent
                hist.max_ns = worst
                self.frames = i
                if rate:
                    delay_s = i / rate - (loop.time() - t0)
                    if delay_s > 0:
                        # At least 1 ms: frames arrive in small bursts, as socket reads deliver
                        # them, rather than one loop wake-up per 50 µs frame.
                        await asyncio.sleep(max(delay_s, MIN_SLEEP_S))
                        continue
                await asyncio.sleep(0)  # behind the clock (or unpaced): let the server and alerts run
        finally:
            self._buf, self._pos = buf, pos
            self.frames = i
