"""Type stubs for sentrycore.counters."""

class FeedCounters:
    """Per-venue feed counters."""

    frames: int
    bytes: int
    decode_errors: int
    ignored: int  # well-formed frames that carry no book data (acks, heartbeats, tickers)
    checksum_skipped: int

    def __init__(
        self, frames: int = 0, bytes: int = 0, decode_errors: int = 0, ignored: int = 0, checksum_skipped: int = 0
    ) -> None: ...
    def astuple(self) -> tuple[int, int, int, int, int]:
        """frames, bytes, decode_errors, ignored, checksum_skipped."""
    def asdict(self) -> dict[str, int]: ...
