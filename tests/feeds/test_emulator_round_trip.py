"""End to end: registry + live runner + Binance/Bybit/OKX handlers against the local venue emulator on 127.0.0.1.

Each injected fault must make the affected book resync (and only that book),
after which it is valid again and equal to the emulator's true book.
(Coinbase and Kraken have their own files: their faults and checks differ.)
"""

from __future__ import annotations

import pytest

from tests.feeds.binance_bybit_okx_frames import emulator_round_trip

SEQUENCE_FAULTS = ["gap", "drop", "duplicate", "reorder"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("venue", "faults"), [
    ("binance", SEQUENCE_FAULTS),
    ("binance-futures", SEQUENCE_FAULTS),
    ("bybit", SEQUENCE_FAULTS),
    ("bybit-linear", SEQUENCE_FAULTS),
    # OKX: its checksum is the fault that matters; duplicates may repeat a seqId legitimately.
    ("okx", ["gap", "drop", "reorder", "bad_checksum"]),
    ("okx-swap", ["gap", "drop", "reorder", "bad_checksum"]),
])
async def test_faults_resync_and_book_matches_truth(venue: str, faults: list[str]) -> None:
    out = await emulator_round_trip(venue, faults)
    assert out["initial"]
    # Binance: an event already applied (u <= the book's last id) is skipped, not a gap,
    # so a duplicate needs no resync (the book stays valid and equal to the truth).
    skipped = {"duplicate"} if venue.startswith("binance") else set()
    assert out["resynced"] == {f: (f not in skipped, True) for f in faults}
    assert out["other_resyncs"] == [0]
    assert out["mine"] == out["truth"]
