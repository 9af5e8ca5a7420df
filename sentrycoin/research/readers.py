"""Input files for replay and backtest, recognised by their content, never by their name.

Formats (compression is read from the first bytes: zstd, gzip, or none):

* ``sentrycoin``: our own recordings (sentrycoin/research/recording.py), a ``header``
  record first;
* ``cryptofeed``: cryptofeed's raw captures (a ``header`` with ``exchange``,
  then ``http`` / ``connect`` / ``send`` / ``recv`` records, ``ts`` in Unix s);
* ``binance-raw``: Binance raw captures of the hftbacktest form, one frame per
  line ``<receive time, Unix ns> <frame JSON>`` (combined-stream frames, and
  REST snapshot lines without ``stream``);
* ``tardis-incremental``: Tardis ``incremental_book_L2`` CSV;
* ``tardis-snapshot``: Tardis ``book_snapshot_25`` (any ``book_snapshot_N``) CSV.

A file is read as a sequence of complete lines.  A file that stops in the
middle (a zstd or gzip stream without its end, a torn last line, a line
that is not a record of the file's format) is *cut*: everything before the
cut is usable, and the reader says where it stopped (`Cut`).  An empty or
unrecognised file is an `InputError` whose one-line message names the file.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
import zstandard

Format = Literal["sentrycoin", "cryptofeed", "binance-raw", "tardis-incremental", "tardis-snapshot"]

#: What replay and backtest read, for error messages and --help.
READABLE = ("sentrycoin recordings (.jsonl.zst), cryptofeed raw captures (.jsonl.zst), "
            "Binance raw captures '<receive ns> <frame JSON>' (hftbacktest form, gz or not), "
            "Tardis incremental_book_L2 and book_snapshot_25 CSV (gz or not)")

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
# 32 KB of compressed input (~200 KB of lines): small enough that splitting a
# decompressed chunk into lines stays in cache (measured: ~25 % less CPU than 1 MB).
_CHUNK = 1 << 15
_RAW_LINE = re.compile(rb"^\d{15,20} [\[{]")

TARDIS_INCREMENTAL_COLUMNS = frozenset(
    {"exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price", "amount"})
TARDIS_SNAPSHOT_COLUMNS = frozenset(
    {"exchange", "symbol", "timestamp", "local_timestamp", "asks[0].price", "asks[0].amount",
     "bids[0].price", "bids[0].amount"})


class InputError(ValueError):
    """A file replay cannot read; the message is one line naming the file."""


class TruncatedInput(InputError):
    """A file cut short, read without --allow-truncated."""


class Cut(Exception):
    """Raised by `lines` after the last complete line of a cut file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class CutReport:
    """Where a truncated file stopped (kept in the replay summary)."""

    path: Path
    reason: str
    lines: int  # complete lines read before the cut
    last_ms: int | None  # receive time of the last record replayed

    def describe(self) -> str:
        return (f"{self.path}: truncated ({self.reason}); replayed {self.lines:,} lines up to "
                f"{format_ms(self.last_ms)}")


def format_ms(ms: int | None) -> str:
    if ms is None:
        return "before the first record"
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


# -- bytes -> lines --------------------------------------------------------------------------


def _chunks(path: Path) -> Iterator[bytes]:
    """Decompressed chunks of `path`; raises Cut when a compressed stream stops mid-frame."""
    with open(path, "rb") as raw:
        head = raw.read(4)
        raw.seek(0)
        if len(head) < 4 and head and (_ZSTD_MAGIC.startswith(head) or _GZIP_MAGIC.startswith(head[:2])):
            raise Cut("the file stops inside its compression header")
        if head.startswith(_ZSTD_MAGIC):
            new: Callable[[], object] = zstandard.ZstdDecompressor().decompressobj
            errors: tuple[type[Exception], ...] = (zstandard.ZstdError,)
            what = "zstd"
        elif head.startswith(_GZIP_MAGIC):
            new = lambda: zlib.decompressobj(wbits=31)  # noqa: E731
            errors = (zlib.error,)
            what = "gzip"
        else:
            while block := raw.read(_CHUNK):
                yield block
            return
        obj = new()
        open_frame = False  # bytes of an unfinished frame/member were consumed
        while block := raw.read(_CHUNK):
            while block:
                try:
                    out = obj.decompress(block)  # type: ignore[attr-defined]
                except errors as exc:
                    raise Cut(f"{what} data is corrupt: {exc}") from None
                if out:
                    yield out
                if obj.eof:  # type: ignore[attr-defined]
                    # Several frames (or gzip members) follow each other.
                    block = obj.unused_data  # type: ignore[attr-defined]
                    obj = new()
                    open_frame = False
                else:
                    open_frame = True
                    block = b""
        if open_frame:
            raise Cut(f"the {what} stream ends mid-frame")


def line_batches(path: Path, complete: Callable[[bytes], bool] | None = None) -> Iterator[list[bytes]]:
    """The complete lines of `path`, a decompressed chunk's worth at a time (no newlines; blank
    lines kept: callers skip them).  Batches spare the hot replay loop a generator step per line.

    A last line without a newline is yielded only when `complete(line)` says
    it is whole; otherwise, like a compressed stream that stops early, it
    raises `Cut` after the complete lines (a partial line before a cut is dropped).
    """
    tail = b""
    for chunk in _chunks(path):
        parts = (tail + chunk).split(b"\n") if tail else chunk.split(b"\n")
        tail = parts.pop()
        yield parts
    if tail.strip():
        if complete is not None and not complete(tail):
            raise Cut("the last line is incomplete")
        yield [tail]


def lines(path: Path, complete: Callable[[bytes], bool] | None = None) -> Iterator[bytes]:
    """Every complete, non-blank line of `path` (see `line_batches`)."""
    for batch in line_batches(path, complete):
        for line in batch:
            if line.strip():
                yield line


def json_complete(line: bytes) -> bool:
    """True when the JSON value on `line` (after an optional '<number> ' prefix) parses."""
    body = line.partition(b" ")[2] if _RAW_LINE.match(line) else line
    try:
        msgspec.json.decode(body)
    except msgspec.DecodeError:
        return False
    return True


# -- sniffing ---------------------------------------------------------------------------------


def sniff(path: str | Path) -> Format:
    """The format of `path`, from its first line; InputError when empty or unrecognised."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    first = None
    try:
        for line in lines(path):
            first = line.strip()
            break
    except Cut as cut:
        raise TruncatedInput(f"{path}: truncated before its first line ({cut.reason})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc})") from None
    if first is None:
        raise InputError(f"{path}: empty (no records)")
    fmt = _format_of(first)
    if fmt is None:
        shown = first[:60].decode("utf-8", "replace")
        raise InputError(f"{path}: not a format replay reads (first line {shown!r}); it reads {READABLE}")
    return fmt


def _format_of(first: bytes) -> Format | None:
    if first.startswith(b"{"):
        try:
            obj = msgspec.json.decode(first)
        except msgspec.DecodeError:
            return None
        if isinstance(obj, dict) and obj.get("t") == "header":
            if "venue" in obj:
                return "sentrycoin"
            if "exchange" in obj:
                return "cryptofeed"
        return None
    if _RAW_LINE.match(first):
        return "binance-raw"
    columns = {c.strip() for c in first.decode("utf-8", "replace").split(",")}
    if TARDIS_INCREMENTAL_COLUMNS <= columns:
        return "tardis-incremental"
    if TARDIS_SNAPSHOT_COLUMNS <= columns:
        return "tardis-snapshot"
    return None
