"""Type stubs for sentrycore.okx (the Cython path of OKX `books` updates)."""

from collections.abc import Callable
from typing import Any, TypeVar

from sentrycore.counters import FeedCounters
from sentrycore.leveltext import LevelTexts
from sentrycore.parse import ChainState

class OkxBookState(ChainState):
    """Per-instrument sync state shared by the OKX handler's two paths
    (`synced`, `market`, `book` from ChainState)."""

    last_seq: int
    """seqId of the last applied message (ChainState.last_u under OKX's name)."""
    bid_text: LevelTexts
    """price -> (px, sz) text as OKX sent it, for every bid level the book holds."""
    ask_text: LevelTexts

    def __init__(self, market: Any = None) -> None: ...
    def prune_texts(self) -> None:
        """Drop the texts of levels the book no longer holds."""
    def checksum(self) -> int | None:
        """OKX's signed CRC32 of the book's best 25 levels per side from the
        stored texts, computed in C; None when one of those levels has no text."""

_State = TypeVar("_State", bound=OkxBookState)


class OkxFramePath:
    """An OKX handler's `on_frame`, in C, for the synced hot path.

    `on_frame(conn_id, data, recv_ms)` counts the frame in `counters`; an
    `update` of the `books` channel with exactly one `data` entry, whose
    `instId` maps in `routes` to a synced `OkxBookState` and whose
    `prevSeqId` equals its `last_seq`, is applied to `state.book`, the level
    texts stored (deletes drop them), `last_seq = seqId`, the texts pruned
    when they pass `prune_levels`, and then: checksum 0 -> counted in
    `counters.checksum_skipped`; else compared with the C CRC32, a mismatch
    calling `on_mismatch(state, actual_or_None, expected)` and ending the
    message there; otherwise `state.market.after_message(ts)`.  Anything
    else goes untouched to `fallback(conn_id, data, recv_ms)`, the handler's
    reference path.

    Accepted: keys in any order, JSON whitespace, unknown keys with plain
    values, levels of exactly four JSON strings (`[px, sz, "0", orders]`)
    whose px/sz are plain decimals (`123`, `0.10`, converted exactly as
    float() does), `ts` as a digit string or integer, an optional integer
    `checksum`.  Escapes, non-ASCII, nested unknown values, duplicate keys,
    missing fields, trailing bytes are declined.
    """

    ts: int
    seq_id: int
    prev_seq_id: int
    checksum: int
    prune_levels: int
    taken: int
    """Frames applied in C since construction (checksum mismatches included)."""

    def __init__(
        self,
        routes: dict[str, _State],
        counters: FeedCounters,
        fallback: Callable[[int, bytes, int], None],
        on_mismatch: Callable[[Any, int | None, int], None],
        prune_levels: int,
    ) -> None: ...
    def on_frame(self, conn_id: int, data: bytes, recv_ms: int) -> None: ...
    def parse(self, data: bytes | bytearray | memoryview) -> int:
        """1 when `data` is a single-entry `books` update (fields readable here), else 0.  Never raises."""
    @property
    def symbol(self) -> str: ...
    @property
    def bids(self) -> list[tuple[float, float]]: ...
    @property
    def asks(self) -> list[tuple[float, float]]: ...

def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """zlib.crc32(data, value), computed by sentrycore/crc32.pxd."""
