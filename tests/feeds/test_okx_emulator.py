"""End to end: registry + live runner + okx handlers against the local venue emulator on 127.0.0.1.

Each injected fault must make the affected book resync (and only that book),
after which it is valid again and equal to the emulator's true book.
"""

from __future__ import annotations

import pytest

from tests.feeds._b1util import emulator_round_trip


@pytest.mark.timeout(90)
@pytest.mark.parametrize("venue", ["okx", "okx-swap"])
async def test_faults_resync_and_book_matches_truth(venue):
    faults = ["gap", "drop", "reorder", "bad_checksum"]
    out = await emulator_round_trip(venue, faults)
    assert out["initial"]
    assert out["resynced"] == {f: (True, True) for f in faults}
    assert out["other_resyncs"] == [0]
    assert out["mine"] == out["truth"]
