"""Recording: tee every frame and snapshot a feed handler receives into a recording.

The tee wraps the handler's entry points, so it records exactly what the
handler was given, whatever the source (live transport or simulated market).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sentrycoin.config import Settings
from sentrycoin.feeds.base import FeedHandler
from sentrycoin.feeds.registry import book_capacity
from sentrycoin.market import Market
from sentrycoin.research.recording import Header, RecordingWriter

log = logging.getLogger("sentrycoin.research.record")


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def tee_handler(handler: FeedHandler, writer: RecordingWriter) -> None:
    """Record every frame/snapshot/connect/disconnect `handler` sees, then pass it on."""
    venue = handler.venue
    on_frame, on_snapshot = handler.on_frame, handler.on_snapshot
    on_connected, on_disconnected = handler.on_connected, handler.on_disconnected

    def frame(conn_id: int, data: bytes, recv_ms: int) -> None:
        writer.frame(venue, conn_id, recv_ms, data)
        on_frame(conn_id, data, recv_ms)

    def snapshot(symbol: str, body: bytes, recv_ms: int) -> None:
        writer.snapshot(venue, symbol, recv_ms, body)
        on_snapshot(symbol, body, recv_ms)

    def connected(conn_id: int) -> None:
        writer.connected(venue, conn_id, _wall_ms())
        on_connected(conn_id)

    def disconnected(conn_id: int) -> None:
        writer.disconnected(venue, conn_id, _wall_ms())
        on_disconnected(conn_id)

    handler.on_frame = frame  # type: ignore[method-assign]
    handler.on_snapshot = snapshot  # type: ignore[method-assign]
    handler.on_connected = connected  # type: ignore[method-assign]
    handler.on_disconnected = disconnected  # type: ignore[method-assign]


@dataclass(slots=True)
class RecordResult:
    files: list[Path]
    venues: list[str]
    frames: int
    snapshots: int
    elapsed_s: float

    @property
    def market_data(self) -> bool:
        """False when only headers (and connects) were written: nothing to replay."""
        return self.frames + self.snapshots > 0


def open_writers(handlers: list[FeedHandler], out_dir: str | Path, *, depth: int, source: str,
                 max_bytes: int = 64 * 1024 * 1024) -> list[RecordingWriter]:
    """One RecordingWriter per handler, teed in: from now on all it is told is recorded."""
    writers = []
    for handler in handlers:
        writer = RecordingWriter(
            out_dir,
            Header(venue=handler.venue, symbols=list(handler.markets), depth=depth, source=source,
                   started_ms=_wall_ms()),
            max_bytes=max_bytes,
        )
        tee_handler(handler, writer)
        writers.append(writer)
    return writers


def close_writers(writers: list[RecordingWriter], started_monotonic: float) -> RecordResult:
    for writer in writers:
        writer.close()
    return RecordResult(
        files=[f for w in writers for f in w.files],
        venues=[w.header.venue for w in writers],
        frames=sum(w.frames for w in writers),
        snapshots=sum(w.snapshots for w in writers),
        elapsed_s=time.monotonic() - started_monotonic,
    )


async def record_live(settings: Settings, out_dir: str | Path, stop: asyncio.Event,
                      max_bytes: int = 64 * 1024 * 1024) -> RecordResult:
    """Record the configured live markets into `out_dir` until `stop` is set."""
    from collections import defaultdict

    from sentrycoin.feeds.registry import make_handler
    from sentrycoin.live import LiveRunner

    if not settings.markets:
        raise ValueError("record needs live markets: give --exchange and --symbols (or a config file)")
    by_venue: dict[str, list[Market]] = defaultdict(list)
    for mc in settings.markets:
        by_venue[mc.exchange].append(Market(mc.exchange, mc.symbol, depth=settings.depth, settings=mc.detector,
                                                      capacity=book_capacity(mc.exchange, settings.depth)))
    started = time.monotonic()
    handlers = [make_handler(venue, markets, depth=settings.depth) for venue, markets in by_venue.items()]
    writers = open_writers(handlers, out_dir, depth=settings.depth, source="live", max_bytes=max_bytes)
    runner = LiveRunner(handlers)
    run_task = asyncio.create_task(runner.run())
    log.info("recording %s into %s (Ctrl-C to stop)",
             ", ".join(f"{v}:{m.symbol}" for v, ms in by_venue.items() for m in ms), out_dir)
    try:
        await stop.wait()
    finally:
        await runner.stop()
        await asyncio.gather(run_task, return_exceptions=True)
        result = close_writers(writers, started)
    log.info("recorded %d frames and %d snapshots into %d files", result.frames, result.snapshots, len(result.files))
    return result
