"""Recording format: raw venue frames and REST snapshots, zstd-compressed JSON lines.

One record per line (msgspec-encoded):
    {"t":"header","version":1,"venue":..,"symbols":[..],"depth":..,"source":..,"started_ms":..}
    {"t":"frame","venue":..,"conn":..,"ms":recv_ms,"data":"<frame text>"}
    {"t":"snapshot","venue":..,"symbol":..,"ms":recv_ms,"body":"<response text>"}
    {"t":"connect"|"disconnect","venue":..,"conn":..,"ms":..}

Files rotate once their compressed size passes `max_bytes`; each file starts with
a header, so any file replays on its own (its first books wait for a snapshot).
Frames are kept exactly as received: replay runs them through the same feed
handler code as live, so it makes the same decisions.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import zstandard

FORMAT_VERSION = 1


class Header(msgspec.Struct, tag="header", tag_field="t"):
    venue: str
    symbols: list[str]
    depth: int
    source: str = "live"
    started_ms: int = 0
    version: int = FORMAT_VERSION


class FrameRecord(msgspec.Struct, tag="frame", tag_field="t"):
    venue: str
    conn: int
    ms: int
    data: str


class SnapshotRecord(msgspec.Struct, tag="snapshot", tag_field="t"):
    venue: str
    symbol: str
    ms: int
    body: str


class ConnectRecord(msgspec.Struct, tag="connect", tag_field="t"):
    venue: str
    conn: int
    ms: int


class DisconnectRecord(msgspec.Struct, tag="disconnect", tag_field="t"):
    venue: str
    conn: int
    ms: int


Record = Header | FrameRecord | SnapshotRecord | ConnectRecord | DisconnectRecord
decode_record = msgspec.json.Decoder(Record).decode
_encode = msgspec.json.Encoder().encode


def _text(data: bytes | str) -> str:
    # Venue frames are UTF-8 JSON; keep undecodable bytes visible rather than lose the frame.
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


class RecordingWriter:
    """Appends records to DIR/<prefix>-<n>.jsonl.zst, rotating by compressed size."""

    def __init__(self, out_dir: str | Path, header: Header, *, max_bytes: int = 64 * 1024 * 1024,
                 prefix: str | None = None, level: int = 3, flush_every: int = 2_000) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.header = header
        self.max_bytes = max_bytes
        # Flushing a block every so many records bounds what a crash can lose
        # and makes the on-disk size (which rotation watches) keep up.
        self.flush_every = flush_every
        self._since_flush = 0
        self.prefix = prefix or f"{header.venue}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        self._cctx = zstandard.ZstdCompressor(level=level)
        self._raw: io.BufferedWriter | None = None
        self._zst: zstandard.ZstdCompressionWriter | None = None
        self.files: list[Path] = []
        self.records = 0
        # Market data written (headers and connects are not): `record` fails without any.
        self.frames = 0
        self.snapshots = 0
        self._open_next()

    def _open_next(self) -> None:
        self._close_current()
        path = self.out_dir / f"{self.prefix}-{len(self.files):04d}.jsonl.zst"
        self._raw = open(path, "wb")
        self._zst = self._cctx.stream_writer(self._raw, closefd=False)
        self.files.append(path)
        self._write(self.header)

    def _write(self, record: Record) -> None:
        assert self._zst is not None
        self._zst.write(_encode(record))
        self._zst.write(b"\n")
        self.records += 1

    def _maybe_rotate(self) -> None:
        assert self._raw is not None and self._zst is not None
        self._since_flush += 1
        if self._since_flush >= self.flush_every:
            self._zst.flush(zstandard.FLUSH_BLOCK)
            self._since_flush = 0
        if self._raw.tell() >= self.max_bytes:
            self._open_next()

    def frame(self, venue: str, conn_id: int, recv_ms: int, data: bytes | str) -> None:
        self._write(FrameRecord(venue, conn_id, recv_ms, _text(data)))
        self.frames += 1
        self._maybe_rotate()

    def snapshot(self, venue: str, symbol: str, recv_ms: int, body: bytes | str) -> None:
        self._write(SnapshotRecord(venue, symbol, recv_ms, _text(body)))
        self.snapshots += 1
        # Flush so a snapshot is never stranded in the compressor on a crash.
        assert self._zst is not None
        self._zst.flush(zstandard.FLUSH_BLOCK)
        self._maybe_rotate()

    def connected(self, venue: str, conn_id: int, ms: int) -> None:
        self._write(ConnectRecord(venue, conn_id, ms))

    def disconnected(self, venue: str, conn_id: int, ms: int) -> None:
        self._write(DisconnectRecord(venue, conn_id, ms))

    def flush(self) -> None:
        if self._zst is not None:
            self._zst.flush(zstandard.FLUSH_BLOCK)

    def _close_current(self) -> None:
        if self._zst is not None:
            self._zst.flush(zstandard.FLUSH_FRAME)
            self._zst.close()
            self._zst = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def close(self) -> None:
        self._close_current()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_records(path: str | Path, *, allow_truncated: bool = False) -> Iterator[Record]:
    """Yield the records of one recording file.

    A file cut short (the writer died mid-block, a torn last line) raises
    `TruncatedInput` after its last whole record, or just stops there with
    `allow_truncated`."""
    from sentrycoin.research.readers import Cut, TruncatedInput, json_complete, lines

    good = 0
    try:
        for line in lines(Path(path), json_complete):
            try:
                record = decode_record(line)
            except msgspec.DecodeError:
                raise Cut(f"line {good + 1} is not a recording record") from None
            good += 1
            yield record
    except Cut as cut:
        if not allow_truncated:
            raise TruncatedInput(f"{path}: truncated ({cut.reason}) after {good:,} records") from None
