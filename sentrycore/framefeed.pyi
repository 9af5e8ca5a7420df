"""Type stubs for sentrycore.framefeed (the replay's frame-record reader)."""

from collections.abc import Callable
from typing import Any

from sentrycore.marketcore import SourceClock

class FrameFeeder:
    """Reads the frame records of SentryCoin recording lines in C and feeds them
    to a handler; stops at any line of another shape (see the module doc)."""

    frames: int
    """Frame records fed."""
    lines: int
    """Non-blank lines consumed (all of them frame records)."""
    first_ms: int
    """Receive time of the first frame fed; -1 before one."""
    last_ms: int
    """Receive time of the last frame fed; -1 before one."""

    def __init__(self, clock: SourceClock) -> None: ...
    def feed(self, batch: list[bytes], start: int, on_frame: Callable[[int, bytes, int], object],
             actions: list[Any], observe: Callable[[], object] | None) -> int:
        """Feed batch[start:]'s frame records to `on_frame(conn, data, ms)`, setting
        the clock to each frame's receive time first and clearing `actions`
        after each; returns the index of the first line of another shape
        (len(batch) when none), which the caller decodes with msgspec."""
