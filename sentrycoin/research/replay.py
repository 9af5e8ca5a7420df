"""Replay: recorded frames through the same feed -> book -> detector path as live.

Every file is recognised by its content (sentrycoin/research/readers.py) and
driven into the venue's real feed handler: frames to `on_frame`, REST
snapshots to `on_snapshot`, each with its recorded *receive* time, exactly
as a live source would call them; the handler's own requests (subscribe,
fetch a snapshot) are dropped because the recording already holds their
answers.  Formats:

* our recordings (sentrycoin/research/recording.py): record by record;
* cryptofeed raw captures: the header's `l2_book` symbols; frames of the
  connections that carried book data, and REST depth snapshots, ordered by
  receive time (the recorder writes REST answers and frames from different
  tasks, so the file is read whole and sorted: these captures are small);
* Binance raw captures (`<receive ns> <frame JSON>`, the hftbacktest form):
  symbols from the depth streams in the first lines, a snapshot line goes to
  the first book still waiting for one;
* Tardis `incremental_book_L2` CSV (rows sharing a local timestamp form one
  message) and `book_snapshot_N` CSV (each row replaces the book): applied to
  the same Market/book/detector objects directly.

Files are replayed in the order given and chained: a file whose venue and
symbols are already being replayed continues that stream (its handler and
books carry on), so a capture split over several files replays as one; a
file of other symbols starts its own stream beside the others.

The detector's clock is the recorded receive time (Tardis: `local_timestamp`):
every replayed market shares one `SourceClock`, set before each frame or
snapshot, so cooldowns and persistence run on the clock the live run decided
on, not the venue's event times, however fast the replay goes.  Event times
further than clock_skew_s from it are counted in each market's `clock_skew`.

A file cut short stops the replay with `TruncatedInput` after what it held,
unless `allow_truncated`: then the summary says how far it got.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec
import numpy as np

from sentrycoin.feeds.base import FeedHandler
from sentrycoin.feeds.registry import book_capacity
from sentrycoin.market import AlertEvent, BookCapacity, DetectorSettings, Market
from sentrycoin.research.readers import (
    Cut,
    CutReport,
    Format,
    InputError,
    TruncatedInput,
    json_complete,
    line_batches,
    lines,
    sniff,
)
from sentrycoin.research.recording import (
    ConnectRecord,
    DisconnectRecord,
    FrameRecord,
    Header,
    SnapshotRecord,
    decode_record,
)
from sentrycore.framefeed import FrameFeeder
from sentrycore.marketcore import SourceClock

log = logging.getLogger("sentrycoin.research.replay")

#: Lines of a Binance raw capture read to find its depth streams.
RAW_SCAN_LINES = 20_000
#: cryptofeed exchange names -> our venue names (the venues we have handlers for).
CRYPTOFEED_VENUES = {"BINANCE": "binance", "BINANCE_FUTURES": "binance-futures", "COINBASE": "coinbase",
                     "KRAKEN": "kraken"}


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
    formats: dict[str, Format] = field(default_factory=dict)  # file -> format read
    truncated: list[CutReport] = field(default_factory=list)  # files replayed up to a cut

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

    def _seen(self, ms: int) -> None:
        if self.first_ms is None:
            self.first_ms = ms
        self.last_ms = ms


class _Stream:
    """One handler being fed: what every reader calls, whatever the file format.

    The recorded receive time of each frame and snapshot is the replayed
    markets' local clock (`SourceClock`), set before the handler sees it."""

    __slots__ = ("handler", "summary", "observe", "clock")

    def __init__(self, handler: FeedHandler, summary: ReplaySummary,
                 observe: Callable[[FeedHandler], None] | None, clock: SourceClock) -> None:
        self.handler = handler
        self.summary = summary
        self.observe = observe
        self.clock = clock

    def frame(self, conn_id: int, recv_ms: int, data: bytes) -> None:
        handler = self.handler
        self.clock.now_ms = recv_ms
        handler.on_frame(conn_id, data, recv_ms)
        if self.observe is not None:
            self.observe(handler)
        s = self.summary
        s.frames += 1
        if s.first_ms is None:
            s.first_ms = recv_ms
        s.last_ms = recv_ms
        if handler.actions:
            # Sends, snapshot requests and reconnects were answered by the
            # venue in the recording itself: what follows is their result.
            handler.actions.clear()

    def feed(self, feeder: FrameFeeder, batch: list[bytes], start: int) -> int:
        """`frame` for each of batch[start:]'s frame records, in C (see FrameFeeder);
        returns the index of the first line the feeder left to the caller."""
        handler = self.handler
        observe = self.observe
        before = feeder.frames
        stop = feeder.feed(batch, start, handler.on_frame, handler.actions,
                           None if observe is None else partial(observe, handler))
        if feeder.frames != before:
            s = self.summary
            s.frames += feeder.frames - before
            if s.first_ms is None:
                s.first_ms = feeder.first_ms
            s.last_ms = feeder.last_ms
        return stop

    def snapshot(self, symbol: str, recv_ms: int, body: bytes) -> None:
        self.clock.now_ms = recv_ms
        self.handler.on_snapshot(symbol, body, recv_ms)
        self.summary.snapshots += 1
        self.handler.actions.clear()

    def connected(self, conn_id: int) -> None:
        self.handler.on_connected(conn_id)
        self.handler.actions.clear()

    def disconnected(self, conn_id: int) -> None:
        self.handler.on_disconnected(conn_id)
        self.handler.actions.clear()


Progress = Callable[[int], None] | None


class Replayer:
    """Holds the handlers and one Market per (venue, symbol) across files."""

    def __init__(self, detector: DetectorSettings | None = None, depth: int | None = None,
                 on_alert: Callable[[AlertEvent], None] | None = None,
                 capacity: int | BookCapacity | None = None, observer: Callable[[Market], None] | None = None,
                 allow_truncated: bool = False) -> None:
        self.detector = detector or DetectorSettings()
        self.depth = depth
        self.capacity = capacity
        self.allow_truncated = allow_truncated
        self.summary = ReplaySummary()
        self._user_on_alert = on_alert
        # observer(market) after every message applied to it (backtests record series here).
        self.observer = observer
        self._seen: dict[tuple[str, str], int] = {}
        self._handlers: dict[str, list[FeedHandler]] = {}
        self._markets: dict[tuple[str, str], Market] = {}
        self._lines = 0  # complete lines read from the current file
        # The recorded receive time: every replayed market's local clock, so cooldowns
        # and persistence run as they did live however fast the replay goes.
        self.clock = SourceClock()

    # -- alerts and markets -----------------------------------------------------

    def _on_alert(self, event: AlertEvent) -> None:
        self.summary.alerts.append(event)
        if self._user_on_alert is not None:
            self._user_on_alert(event)

    def _market(self, venue: str, symbol: str, depth: int) -> Market:
        key = (venue, symbol)
        market = self._markets.get(key)
        if market is None:
            capacity = self.capacity if self.capacity is not None else book_capacity(venue, depth)
            market = Market(venue, symbol, depth=depth, capacity=capacity, settings=self.detector,
                            on_alert=self._on_alert, source="replay")
            market.clock = self.clock
            self._markets[key] = market
            self.summary.markets.append(market)
        return market

    def open_stream(self, venue: str, symbols: list[str], depth: int,
                    ws_url: str | None = None) -> _Stream:
        """The handler already replaying `venue` for these symbols (a file continuing
        a stream), or a new one whose connections open now."""
        from sentrycoin.feeds.registry import make_handler, venue_info

        observe = self._observe if self.observer is not None else None
        for handler in self._handlers.get(venue, ()):
            if set(handler.markets) >= set(symbols):
                return _Stream(handler, self.summary, observe, self.clock)
        try:
            info = venue_info(venue)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        markets = [self._market(venue, s, depth) for s in symbols]
        # No I/O happens in replay: URLs only select the protocol (Kraken v1 / v2).
        env = {info.ws_env: ws_url} if ws_url else {}
        handler = make_handler(venue, markets, depth=depth, env=env)
        self._handlers.setdefault(venue, []).append(handler)
        stream = _Stream(handler, self.summary, observe, self.clock)
        for spec in handler.connections():
            stream.connected(spec.conn_id)
        return stream

    def _observe(self, handler: FeedHandler) -> None:
        seen = self._seen
        for market in handler.markets.values():
            if seen.get(market.key) != market.messages:
                seen[market.key] = market.messages
                self.observer(market)  # type: ignore[misc]

    # -- files ------------------------------------------------------------------

    def replay_file(self, path: str | Path, progress: Progress = None) -> None:
        """Replay one file of any readable format; InputError when it cannot be read."""
        path = Path(path)
        fmt = sniff(path)
        self.summary.files += 1
        self.summary.formats[str(path)] = fmt
        self._lines = 0
        reader = {
            "sentrycoin": self._read_sentrycoin,
            "cryptofeed": self._read_cryptofeed,
            "binance-raw": self._read_binance_raw,
            "tardis-incremental": self._read_tardis_incremental,
            "tardis-snapshot": self._read_tardis_snapshot,
        }[fmt]
        try:
            reader(path, progress)
        except Cut as cut:
            report = CutReport(path, cut.reason, self._lines, self.summary.last_ms)
            if not self.allow_truncated:
                raise TruncatedInput(report.describe() + "; to use what it holds, pass --allow-truncated") from None
            log.warning("%s", report.describe())
            self.summary.truncated.append(report)

    def _counted(self, path: Path, progress: Progress, complete=json_complete) -> Iterator[bytes]:
        """The file's non-blank lines, counted (for cut reports, the summary and progress)."""
        n = 0
        try:
            for batch in line_batches(path, complete):
                for line in batch:
                    if line.strip():
                        n += 1
                        self._lines = n
                        yield line
                if progress is not None:
                    progress(len(batch))
        finally:
            self.summary.records += n

    # -- our recordings ------------------------------------------------------------

    def _read_sentrycoin(self, path: Path, progress: Progress) -> None:
        # The hot loop of `bench_replay.py`: runs of frame records go through
        # sentrycore's FrameFeeder in C; any other line (and a frame record the
        # feeder is not sure of) is decoded here with msgspec, the reference.
        stream: _Stream | None = None
        feeder = FrameFeeder(self.clock)
        summary = self.summary
        decode = decode_record
        n = 0  # non-blank lines decoded here (the feeder counts its own)
        try:
            for batch in line_batches(path, json_complete):
                i = 0
                size = len(batch)
                while i < size:
                    if stream is not None:
                        i = stream.feed(feeder, batch, i)
                        if i >= size:
                            break
                    line = batch[i]
                    i += 1
                    if not line:
                        continue
                    n += 1
                    try:
                        record = decode(line)
                    except msgspec.DecodeError:
                        raise Cut(f"line {n + feeder.lines} is not a recording record") from None
                    # `type(record) is X` (not a saved type): mypy narrows the record by it.
                    if type(record) is FrameRecord:
                        if stream is not None:
                            stream.frame(record.conn, record.ms, record.data.encode())
                    elif type(record) is SnapshotRecord:
                        if stream is not None:
                            stream.snapshot(record.symbol, record.ms, record.body.encode())
                    elif type(record) is Header:
                        stream = self.open_stream(record.venue, record.symbols, self.depth or record.depth)
                    elif type(record) is ConnectRecord:
                        if stream is not None:
                            stream.connected(record.conn)
                    elif type(record) is DisconnectRecord:
                        if stream is not None:
                            stream.disconnected(record.conn)
                if progress is not None:
                    progress(len(batch))
        finally:
            self._lines = n + feeder.lines
            summary.records += n + feeder.lines

    # -- cryptofeed captures ---------------------------------------------------------

    def _read_cryptofeed(self, path: Path, progress: Progress) -> None:
        records: list[_CfRecord] = []
        cut: Cut | None = None
        try:
            for n, line in enumerate(self._counted(path, progress), 1):
                try:
                    records.append(_decode_cf(line))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    raise Cut(f"line {n} is not a cryptofeed record") from None
        except Cut as exc:
            cut = exc  # replay what came before, then report the cut
        header = records[0]
        venue = CRYPTOFEED_VENUES.get(header.exchange)
        if venue is None:
            raise InputError(f"{path}: cryptofeed capture of {header.exchange}: no feed handler for it "
                             f"(replay reads {', '.join(sorted(CRYPTOFEED_VENUES))})")
        books = header.config.get("l2_book")
        symbols = [s for s in books if isinstance(s, str)] if isinstance(books, list) else []
        if not symbols:
            raise InputError(f"{path}: cryptofeed capture without an l2_book subscription: no book to replay")
        book_conns: list[str] = []
        ws_url = None
        for r in records:
            if r.conn in book_conns:
                continue
            if (r.t == "connect" and "@depth" in r.addr) or (r.t == "send" and _BOOK_SUBSCRIPTION(r.data)):
                book_conns.append(r.conn)
                ws_url = ws_url or r.addr
        if not book_conns:
            raise InputError(f"{path}: no connection in this cryptofeed capture subscribed to a book channel")
        stream = self.open_stream(venue, symbols, self.depth or 50, ws_url=ws_url)
        specs = [spec.conn_id for spec in stream.handler.connections()]
        conn_of = {c: specs[min(i, len(specs) - 1)] for i, c in enumerate(book_conns)}
        timeline = sorted((r for r in records if r.t in ("recv", "http")), key=lambda r: r.ts)
        for r in timeline:
            ms = int(r.ts * 1000)
            if r.t == "recv":
                conn = conn_of.get(r.conn)
                if conn is not None:
                    stream.frame(conn, ms, r.data.encode())
            else:
                symbol = _snapshot_symbol(venue, r.url)
                if symbol is not None:
                    stream.snapshot(symbol, ms, r.data.encode())
        if cut is not None:
            raise cut

    # -- Binance raw captures ----------------------------------------------------------

    def _read_binance_raw(self, path: Path, progress: Progress) -> None:
        venue, symbols = _raw_streams(path)
        stream = self.open_stream(venue, symbols, self.depth or 50)
        markets = [stream.handler.markets[s] for s in symbols]
        for n, line in enumerate(self._counted(path, progress), 1):
            stamp, _, body = line.partition(b" ")
            try:
                recv_ms = int(stamp) // 1_000_000
            except ValueError:
                raise Cut(f"line {n} is not '<receive ns> <frame JSON>'") from None
            if body.startswith(b'{"stream"') or b'"lastUpdateId"' not in body[:40]:
                stream.frame(0, recv_ms, body)
            else:
                # A REST snapshot line names no symbol: it answers the book still waiting.
                waiting = next((m for m in markets if not m.valid), markets[0])
                stream.snapshot(waiting.symbol, recv_ms, body)

    # -- Tardis CSV ---------------------------------------------------------------------

    def _csv_rows(self, path: Path, progress: Progress) -> Iterator[dict[str, str]]:
        text = (line.decode("utf-8", "replace") for line in self._counted(path, progress, complete=None))
        yield from csv.DictReader(text)

    def _apply_csv_message(self, market: Market, event_ms: int, local_ms: int, is_snapshot: bool,
                           bids: np.ndarray, asks: np.ndarray) -> None:
        self.clock.now_ms = local_ms
        s = self.summary
        s._seen(event_ms)
        try:
            if is_snapshot:
                market.book.load_snapshot(bids, asks)
                market.mark_valid()
            else:
                market.book.apply(bids[:, 0].copy(), bids[:, 1].copy(), asks[:, 0].copy(), asks[:, 1].copy())
        except ValueError as exc:
            market.rejected += 1
            market.invalidate(f"bad values in CSV: {exc}")
            return
        market.after_message(event_ms)
        if self.observer is not None:
            self.observer(market)

    def _read_tardis_incremental(self, path: Path, progress: Progress) -> None:
        depth = self.depth or 50
        key = None
        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        event_ms = local_ms = 0
        snap = False
        market: Market | None = None
        for row in self._csv_rows(path, progress):
            mkey = (row["exchange"], tardis_symbol(row["symbol"]))
            row_key = (mkey, row["local_timestamp"])
            is_snap = row["is_snapshot"].strip().lower() == "true"
            # Rows sharing a local timestamp form one message; a snapshot block
            # after updates replaces the book (Tardis marks reconnects this way).
            if row_key != key or is_snap != snap:
                if market is not None:
                    self._apply_csv_message(market, event_ms, local_ms, snap, _levels(bids), _levels(asks))
                market = self._market(mkey[0], mkey[1], depth)
                key, snap, bids, asks = row_key, is_snap, [], []
                event_ms = _tardis_ms(row["timestamp"])
                local_ms = _tardis_ms(row["local_timestamp"])
            (bids if row["side"].strip().lower() == "bid" else asks).append(_level(row["price"], row["amount"]))
        if market is not None:
            self._apply_csv_message(market, event_ms, local_ms, snap, _levels(bids), _levels(asks))

    def _read_tardis_snapshot(self, path: Path, progress: Progress) -> None:
        depth = self.depth or 50
        sides: tuple[list[tuple[str, str]], list[tuple[str, str]]] | None = None
        for row in self._csv_rows(path, progress):
            if sides is None:
                sides = (_snapshot_columns(row, "bids"), _snapshot_columns(row, "asks"))
            market = self._market(row["exchange"], tardis_symbol(row["symbol"]), depth)
            levels = [[_level(row[p], row[q]) for p, q in cols if row[p] and row[q]] for cols in sides]
            event_ms = _tardis_ms(row["timestamp"])
            local_ms = _tardis_ms(row["local_timestamp"]) if row.get("local_timestamp") else event_ms
            self._apply_csv_message(market, event_ms, local_ms, True, _levels(levels[0]), _levels(levels[1]))


# -- cryptofeed records ---------------------------------------------------------------------


class _CfRecord(msgspec.Struct, gc=False):
    t: str
    conn: str = ""
    ts: float = 0.0
    url: str = ""
    addr: str = ""
    data: str = ""
    exchange: str = ""
    config: dict[str, object] = {}


_decode_cf = msgspec.json.Decoder(_CfRecord).decode


def _BOOK_SUBSCRIPTION(data: str) -> bool:
    """A subscribe frame for a book channel (Coinbase level2, Kraken book, Binance/Bybit/OKX depth)."""
    return any(word in data for word in ('"level2"', '"book"', "depth", "orderbook", '"books'))


def _snapshot_symbol(venue: str, url: str) -> str | None:
    """The symbol of a REST depth snapshot request (Binance), else None (not a book snapshot)."""
    if "/depth" not in url:
        return None
    from sentrycoin.feeds.symbols import from_venue

    native = parse_qs(urlsplit(url).query).get("symbol", [None])[0]
    if native is None:
        return None
    try:
        return from_venue(venue, native)
    except ValueError:
        return None


def _raw_streams(path: Path) -> tuple[str, list[str]]:
    """(venue, symbols) of a Binance raw capture, from the depth frames in its first lines."""
    from sentrycoin.feeds.symbols import from_venue

    symbols: list[str] = []
    futures = False
    try:
        for n, line in enumerate(lines(path)):
            if n >= RAW_SCAN_LINES:
                break
            body = line.partition(b" ")[2]
            if b"@depth" not in body[:60]:
                continue
            try:
                data = msgspec.json.decode(body).get("data") or {}
            except (msgspec.DecodeError, AttributeError):
                continue
            futures = futures or "pu" in data
            native = data.get("s")
            if isinstance(native, str):
                symbol = from_venue("binance", native)
                if symbol not in symbols:
                    symbols.append(symbol)
    except Cut:
        pass  # the replay itself reports the cut
    if not symbols:
        raise InputError(f"{path}: a Binance raw capture without depth frames in its first {RAW_SCAN_LINES:,} lines")
    return ("binance-futures" if futures else "binance"), symbols


# -- Tardis helpers ---------------------------------------------------------------------------


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


def _tardis_ms(raw: str) -> int:
    return int(raw) // 1000  # Tardis times are Unix microseconds


def _level(price: str, amount: str) -> tuple[float, float]:
    try:
        return float(price), float(amount)
    except ValueError:
        return math.nan, math.nan  # the book rejects it: counted, book invalidated


def _snapshot_columns(row: dict[str, str], side: str) -> list[tuple[str, str]]:
    cols = []
    i = 0
    while f"{side}[{i}].price" in row:
        cols.append((f"{side}[{i}].price", f"{side}[{i}].amount"))
        i += 1
    return cols


def _levels(levels: list[tuple[float, float]]) -> np.ndarray:
    if not levels:
        return np.empty((0, 2), dtype=np.float64)
    return np.asarray(levels, dtype=np.float64)


# -- entry point --------------------------------------------------------------------------------


def replay_files(paths: Iterable[str | Path], *, detector: DetectorSettings | None = None,
                 depth: int | None = None, on_alert: Callable[[AlertEvent], None] | None = None,
                 show_progress: bool = False, observer: Callable[[Market], None] | None = None,
                 allow_truncated: bool = False) -> ReplaySummary:
    """Replay files of any readable format in the order given; returns the summary.

    Raises InputError (TruncatedInput for a cut file without `allow_truncated`)."""
    replayer = Replayer(detector=detector, depth=depth, on_alert=on_alert, observer=observer,
                        allow_truncated=allow_truncated)
    paths = [Path(p) for p in paths]
    for path in paths:
        sniff(path)  # an unreadable file fails before any work
    started = time.perf_counter()
    progress_ctx = _progress() if show_progress else None
    try:
        for path in paths:
            advance = None
            if progress_ctx is not None:
                bar, task = progress_ctx
                bar.update(task, description=Path(path).name)
                advance = lambda n, bar=bar, task=task: bar.advance(task, n)  # noqa: E731
            replayer.replay_file(path, advance)
    finally:
        if progress_ctx is not None:
            progress_ctx[0].stop()
    replayer.summary.wall_s = time.perf_counter() - started
    return replayer.summary


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # On stderr: stdout carries the alerts and the summary.
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("lines"), TimeElapsedColumn(), transient=True, console=Console(stderr=True))
    bar.start()
    task = bar.add_task("replay", total=None)
    return bar, task
