"""Replay: recorded frames through the same feed -> book -> detector path as live.

Recordings (sentrycoin/recording.py) are replayed record by record into the
venue's real feed handler: frames to `on_frame`, REST snapshots to
`on_snapshot`, connects/disconnects as they happened.  Detector time is the
recorded receive time: every replayed market shares one `SourceClock`, set to
each record's `ms` before the handler sees it, so cooldowns and persistence
run on the clock the live run decided on (its local clock, not the venue's
event times), however fast the replay goes, and a replay of a simulated run
raises exactly the alerts that run raised.  Event times more than the
settings' clock_skew_s from the recorded receive time are counted in each
market's `clock_skew`, as live.

Tardis-style `incremental_book_L2` CSV files (columns exchange, symbol,
timestamp, local_timestamp, is_snapshot, side, price, amount) are replayed
into the same Market/book/detector objects: rows sharing a local timestamp
form one message, and `local_timestamp` is the clock.
"""

from __future__ import annotations

import csv
import gzip
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from sentrycore.marketcore import SourceClock
from sentrycoin.feeds.base import FeedHandler
from sentrycoin.market import AlertEvent, DetectorSettings, Market
from sentrycoin.recording import (
    ConnectRecord,
    DisconnectRecord,
    FrameRecord,
    Header,
    SnapshotRecord,
    file_kind,
    read_records,
)

log = logging.getLogger("sentrycoin.replay")


@dataclass
class ReplaySummary:
    files: int = 0
    records: int = 0
    frames: int = 0
    snapshots: int = 0
    alerts: list[AlertEvent] = field(default_factory=list)
    markets: list[Market] = field(default_factory=list)
    first_ms: int | None = None
    last_ms: int | None = None
    wall_s: float = 0.0

    @property
    def messages(self) -> int:
        return sum(m.messages for m in self.markets)

    @property
    def span_s(self) -> float:
        if self.first_ms is None or self.last_ms is None:
            return 0.0
        return (self.last_ms - self.first_ms) / 1000.0

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else 0.0


class Replayer:
    """Holds one handler per venue and one Market per (venue, symbol) across files."""

    def __init__(self, detector: DetectorSettings | None = None, depth: int | None = None,
                 on_alert: Callable[[AlertEvent], None] | None = None,
                 capacity: int = 5000, observer: Callable[[Market], None] | None = None) -> None:
        self.detector = detector or DetectorSettings()
        self.depth = depth
        self.capacity = capacity
        self.summary = ReplaySummary()
        self._user_on_alert = on_alert
        # observer(market) after every message applied to it (backtests record series here).
        self.observer = observer
        self._seen: dict[tuple[str, str], int] = {}
        self._handlers: dict[str, FeedHandler] = {}
        self._markets: dict[tuple[str, str], Market] = {}
        # The recorded receive time: every replayed market's local clock.
        self.clock = SourceClock()

    # -- alerts -------------------------------------------------------------

    def _on_alert(self, event: AlertEvent) -> None:
        self.summary.alerts.append(event)
        if self._user_on_alert is not None:
            self._user_on_alert(event)

    def _market(self, venue: str, symbol: str, depth: int) -> Market:
        key = (venue, symbol)
        market = self._markets.get(key)
        if market is None:
            market = Market(venue, symbol, depth=depth, capacity=self.capacity, settings=self.detector,
                            on_alert=self._on_alert, source="replay")
            market.clock = self.clock
            self._markets[key] = market
            self.summary.markets.append(market)
        return market

    # -- recordings ---------------------------------------------------------

    def _handler_for(self, header: Header) -> tuple[FeedHandler, bool]:
        from sentrycoin.feeds.registry import make_handler

        handler = self._handlers.get(header.venue)
        depth = self.depth or header.depth
        markets = [self._market(header.venue, s, depth) for s in header.symbols]
        if handler is not None and set(handler.markets) >= set(header.symbols):
            return handler, False  # a rotated file continuing the same stream
        # No I/O happens in replay: the handler's URLs are never used.
        handler = make_handler(header.venue, markets, depth=depth, env={})
        self._handlers[header.venue] = handler
        return handler, True

    def replay_recording(self, path: str | Path, progress: Callable[[int], None] | None = None) -> None:
        handler: FeedHandler | None = None
        handlers = self._handlers
        clock = self.clock
        s = self.summary
        s.files += 1
        for n, record in enumerate(read_records(path), 1):
            s.records += 1
            if progress is not None and n % 4096 == 0:
                progress(4096)
            if type(record) is FrameRecord:
                handler = handlers.get(record.venue)
                if handler is None:
                    continue
                clock.now_ms = record.ms
                handler.on_frame(record.conn, record.data.encode(), record.ms)
                if self.observer is not None:
                    self._observe(handler)
                s.frames += 1
                if s.first_ms is None:
                    s.first_ms = record.ms
                s.last_ms = record.ms
            elif type(record) is SnapshotRecord:
                handler = handlers.get(record.venue)
                if handler is None:
                    continue
                clock.now_ms = record.ms
                handler.on_snapshot(record.symbol, record.body.encode(), record.ms)
                s.snapshots += 1
            elif type(record) is Header:
                handler, is_new = self._handler_for(record)
                if is_new:
                    # A new stream: its connections open as the recording begins.
                    # (A rotated file's header continues the stream: nothing reopens.)
                    for spec in handler.connections():
                        handler.on_connected(spec.conn_id)
            elif type(record) is ConnectRecord:
                handler = handlers.get(record.venue)
                if handler is not None:
                    handler.on_connected(record.conn)
            elif type(record) is DisconnectRecord:
                handler = handlers.get(record.venue)
                if handler is not None:
                    handler.on_disconnected(record.conn)
            if handler is not None and handler.actions:
                # Sends, snapshot requests and reconnects were answered by the
                # venue in the recording itself: what follows is their result.
                handler.actions.clear()

    def _observe(self, handler: FeedHandler) -> None:
        seen = self._seen
        for market in handler.markets.values():
            if seen.get(market.key) != market.messages:
                seen[market.key] = market.messages
                self.observer(market)  # type: ignore[misc]

    # -- Tardis CSV ---------------------------------------------------------

    def replay_tardis_csv(self, path: str | Path, progress: Callable[[int], None] | None = None) -> None:
        s = self.summary
        s.files += 1
        for market, event_ms, local_ms, is_snapshot, bids, asks in _tardis_messages(path, self):
            self.clock.now_ms = local_ms
            s.records += 1
            if progress is not None and s.records % 4096 == 0:
                progress(4096)
            if s.first_ms is None:
                s.first_ms = event_ms
            s.last_ms = event_ms
            try:
                if is_snapshot:
                    market.book.load_snapshot(bids, asks)
                    market.mark_valid()
                else:
                    market.book.apply_bids(bids[:, 0].copy(), bids[:, 1].copy())
                    market.book.apply_asks(asks[:, 0].copy(), asks[:, 1].copy())
            except ValueError as exc:
                market.rejected += 1
                market.invalidate(f"bad values in CSV: {exc}")
                continue
            market.after_message(event_ms)
            if self.observer is not None:
                self.observer(market)


_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "EUR", "GBP", "BTC", "ETH", "BNB", "TRY", "JPY")


def tardis_symbol(raw: str) -> str:
    """Tardis symbols (BTCUSDT, BTC-USD, XBT/USD, BTC-USDT-SWAP) -> BASE-QUOTE."""
    sym = raw.upper().replace("/", "-").replace("_", "-")
    for suffix in ("-SWAP", "-PERP"):
        sym = sym.removesuffix(suffix)
    if "-" in sym:
        base, _, quote = sym.partition("-")
        return f"{'BTC' if base == 'XBT' else base}-{quote.split('-')[0]}"
    for quote in _QUOTES:
        if sym.endswith(quote) and len(sym) > len(quote):
            return f"{sym[: -len(quote)]}-{quote}"
    return sym


def _open_text(path: str | Path):
    return gzip.open(path, "rt", newline="") if str(path).endswith(".gz") else open(path, newline="")


def _tardis_messages(path: str | Path, replayer: Replayer) -> Iterator[tuple[Market, int, int, bool, np.ndarray, np.ndarray]]:
    """(market, event ms, local receive ms, is_snapshot, bids, asks) per message."""
    depth = replayer.depth or 50
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        required = {"exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount"}
        missing = required - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: not a Tardis incremental_book_L2 CSV, missing columns {sorted(missing)}")
        key = None
        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        event_ms = 0
        local_ms = 0
        snap = False
        market: Market | None = None
        in_snapshot: dict[tuple[str, str], bool] = {}
        for row in reader:
            mkey = (row["exchange"], tardis_symbol(row["symbol"]))
            row_key = (mkey, row["local_timestamp"])
            is_snap = row["is_snapshot"].strip().lower() == "true"
            if row_key != key or is_snap != snap:
                if market is not None:
                    yield market, event_ms, local_ms, snap, _levels(bids), _levels(asks)
                market = replayer._market(mkey[0], mkey[1], depth)
                key, snap, bids, asks = row_key, is_snap, [], []
                event_ms = int(row["timestamp"]) // 1000
                local_ms = int(row["local_timestamp"]) // 1000
                # A snapshot block following updates replaces the book
                # (Tardis marks reconnects this way); consecutive snapshot rows
                # sharing a timestamp belong to one snapshot.
                in_snapshot[mkey] = is_snap
            try:
                level = (float(row["price"]), float(row["amount"]))
            except ValueError:
                level = (float("nan"), float("nan"))
            (bids if row["side"].strip().lower() == "bid" else asks).append(level)
        if market is not None:
            yield market, event_ms, local_ms, snap, _levels(bids), _levels(asks)


def _levels(levels: list[tuple[float, float]]) -> np.ndarray:
    if not levels:
        return np.empty((0, 2), dtype=np.float64)
    return np.asarray(levels, dtype=np.float64)


def replay_files(paths: Iterable[str | Path], *, detector: DetectorSettings | None = None,
                 depth: int | None = None, on_alert: Callable[[AlertEvent], None] | None = None,
                 show_progress: bool = False, observer: Callable[[Market], None] | None = None) -> ReplaySummary:
    """Replay recordings and/or Tardis CSVs in the order given; returns the summary."""
    replayer = Replayer(detector=detector, depth=depth, on_alert=on_alert, observer=observer)
    paths = [Path(p) for p in paths]
    started = time.perf_counter()
    progress_ctx = _progress(paths) if show_progress else None
    try:
        for path in paths:
            advance = None
            if progress_ctx is not None:
                bar, task = progress_ctx
                bar.update(task, description=path.name)
                advance = lambda n, bar=bar, task=task: bar.advance(task, n)  # noqa: E731
            if file_kind(path) == "tardis":
                replayer.replay_tardis_csv(path, advance)
            else:
                replayer.replay_recording(path, advance)
    finally:
        if progress_ctx is not None:
            progress_ctx[0].stop()
    replayer.summary.wall_s = time.perf_counter() - started
    return replayer.summary


def _progress(paths: list[Path]):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("records"), TimeElapsedColumn(), transient=True)
    bar.start()
    task = bar.add_task("replay", total=None)
    return bar, task
