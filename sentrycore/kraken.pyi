"""Type stubs for sentrycore.kraken (the Kraken v2 book native path)."""

from collections.abc import Callable
from typing import Any

from sentrycore.book import OrderBook
from sentrycore.counters import FeedCounters

class ChecksumCounts:
    """Checksums verified and matching (`ok`) or not (`failed`), counted by both paths."""

    ok: int
    failed: int

class KrakenBookState:
    """One Kraken book's sync state and checksum text, read and written by
    the handler's reference path and by `KrakenParser.take`."""

    market: Any
    depth: int
    """Truncation depth: what the venue acknowledged."""
    awaiting: bool
    """Updates mean nothing until a snapshot lands."""
    needs_precision: bool
    price_places: int | None
    """v2 instrument precisions (None until the instrument channel says)."""
    qty_places: int | None
    v1_price_places: int | None
    """v1: the decimals of the last snapshot's strings (None before one)."""
    v1_qty_places: int | None
    @property
    def text_places(self) -> tuple[int, int] | None:
        """(price, qty) places the checksum writes a level without token with:
        the instrument's when known, else v1's; None if neither."""
    bid_tokens: dict[float, str]
    """price -> checksum token of levels whose text the book's double cannot
    give back (v2 numbers with more decimals than the precision, v1 strings
    not written with the snapshot's places, >= 2**52 once scaled)."""
    ask_tokens: dict[float, str]

    def __init__(self, depth: int, market: Any = None) -> None: ...
    def checksum(self, market: Any) -> int | None:
        """`book_checksum(market.book, self)`."""

def book_checksum(book: OrderBook, state: KrakenBookState) -> int | None:
    """Unsigned CRC32 of the top 10 asks (lowest first) then the top 10 bids
    (highest first), each level as its token from the state's dicts, else
    price and quantity written with the state's places, point removed and
    leading zeros stripped, with `state.text_places`.  None when a level has
    no token and its text cannot be given back (no places, or not exact)."""

def level_text(value: float, places: int) -> str | None:
    """`value` with `places` decimals, point removed, leading zeros stripped;
    None unless `exact_text(value, places)`."""

def exact_text(value: float, places: int) -> bool:
    """True when a number written with at most `places` decimals is given back
    exactly from its double (value >= 0, places <= 22, value * 10**places < 2**52)."""

def crc32(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    """zlib.crc32, computed by the shared sentrycore/crc32.pxd."""

class KrakenParser:
    """Reusable, allocation-free reader of the hot `book` update.  v2: one book
    object with symbol, checksum, timestamp (RFC 3339, at most 6 fraction
    digits) and bids/asks of `{"price": n, "qty": n}` with bare JSON numbers
    (no exponent).  v1: `[channelID, {..}, ({..},) "book-N", "PAIR"]` with
    `a`/`b` levels `["p", "q", "ts"(, strings)]` of plain decimal strings
    (times with at most 6 decimals, one of them within 2001..2286) and a
    checksum `c`.  Keys in any order, JSON whitespace, unknown keys with
    plain values.  Anything else parses to False."""

    checksum: int
    event_ms: int

    def __init__(self) -> None: ...
    def parse(self, data: bytes | bytearray | memoryview) -> bool: ...
    @property
    def symbol(self) -> str | None: ...
    @property
    def price_decimals(self) -> int: ...
    @property
    def qty_decimals(self) -> int: ...
    @property
    def bids(self) -> list[tuple[float, float]]: ...
    @property
    def asks(self) -> list[tuple[float, float]]: ...
    def take(self, data: bytes | bytearray | memoryview, routes: dict[str, KrakenBookState],
             counts: ChecksumCounts, mismatch: Callable[[KrakenBookState, int | None, int], None]) -> bool:
        """The synced hot path: when `data` parses, its symbol maps in `routes`
        to a state that is not awaiting and knows its text places, and every
        kept level is valid and written with those places (v2: at most; v1:
        exactly): apply the levels to `state.market.book`, drop the state's
        tokens at those prices, truncate each side to `state.depth`, compute
        `book_checksum`; on a match count `counts.ok` and run
        `after_message(event_ms)`, else call `mismatch(state, ours, theirs)`.
        Returns True then; otherwise False with nothing touched."""

class KrakenFramePath:
    """The Kraken handler's `on_frame` in C: counts the frame, runs
    `parser.take(...)`, calls `fallback(conn_id, data, recv_ms)` when that
    declines and `internal_error(conn_id, data)` (inside the except block)
    when it raises."""

    def __init__(
        self,
        parser: KrakenParser,
        routes: dict[str, KrakenBookState],
        counts: ChecksumCounts,
        counters: FeedCounters,
        fallback: Callable[[int, bytes, int], None],
        mismatch: Callable[[KrakenBookState, int | None, int], None],
        internal_error: Callable[[int, bytes], None],
    ) -> None: ...
    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None: ...
