"""Never silently blind, end to end: every venue heals from every way a book can break.

Real handlers + LiveRunner + transport against the venue emulator.  For each of
the 8 venue names and each fault the issue lists (undecodable snapshot, refused
subscribe, snapshot never sent, crossed book, 1e308 quantities, an event a day
ahead or behind, checksum flapping), the book ends valid and equal to the
emulator's truth, no alert fires while it is invalid, and a sell wall put up
afterwards (a flash crash through the normal update path) is alerted.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from sentrycoin.emulator import Fault
from sentrycoin.feeds.recovery import RecoveryPolicy
from sentrycoin.market import DetectorSettings
from tests.transport.conftest import wait_for
from tests.transport.test_e2e_faults import FAULTS, Harness, _available, start, stop

VENUES = list(FAULTS)
# Short enough for a test, the same mechanism as the 15 s default.
QUICK_RECOVERY = RecoveryPolicy(snapshot_timeout_s=1.0, retry_initial_s=0.1, retry_max_s=0.4,
                                reconnect_after=3, healthy_after_s=30.0)
# Quiet on the emulator's ordinary books (ratio ~0.3-3), loud on a sell wall (ratio > 50).
CRASH_DETECTOR = DetectorSettings(danger_ratio=8.0, rearm_ratio=4.0, cooldown_s=1.0)
SNAPSHOT_FAULTS = [Fault.BAD_SNAPSHOT, Fault.NO_SNAPSHOT, Fault.REFUSE_SUBSCRIBE]
MESSAGE_FAULTS = [Fault.CROSSED, Fault.HUGE_QTY]
CHECKSUMMED = ["kraken", "okx", "okx-swap"]


def alerts_for(h: Harness, symbol: str) -> list:
    return [event for _, event in h.alerts if event.symbol == symbol]


async def crash_is_alerted(h: Harness, symbol: str) -> None:
    """Put up a sell wall and expect an alert for it, then take the wall away again."""
    before = len(alerts_for(h, symbol))
    h.emu.dump(symbol)
    await wait_for(lambda: len(alerts_for(h, symbol)) > before, 5.0, what=f"an alert on the {symbol} sell wall")
    h.emu.restore(symbol)
    market = next(m for m in h.markets if m.symbol == symbol)
    await wait_for(lambda: market.book.ratio < CRASH_DETECTOR.rearm_ratio, 5.0, what="the wall to go")


def assert_never_alerted_blind(h: Harness) -> None:
    assert not h.problems, h.problems[:3]
    assert all(valid for valid, _ in h.alerts), "alert raised while the book was invalid"


CASES = [(v, f) for v in VENUES for f in SNAPSHOT_FAULTS + MESSAGE_FAULTS]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("venue,fault", CASES, ids=[f"{v}-{f.value}" for v, f in CASES])
async def test_book_heals_from(venue: str, fault: Fault) -> None:
    reason = _available(venue)
    if reason:
        pytest.skip(reason)
    kwargs = {"rest_hang_s": 3.0} if venue.startswith("binance") else {}
    h = await start(venue, seed=7, settings=CRASH_DETECTOR, recovery=QUICK_RECOVERY, **kwargs)
    try:
        await h.converge()
        target = h.markets[0]
        resyncs0, rejected0 = target.resyncs, target.rejected
        if fault in SNAPSHOT_FAULTS:
            # Armed for the next request of the book; a dropped connection makes one.
            h.emu.inject(fault, symbol=target.symbol)
            assert h.emu.inject(Fault.CLOSE, symbol=target.symbol), "no open session"
            await wait_for(lambda: not target.valid, 5.0, what="the drop to invalidate the book")
        else:
            assert h.emu.inject(fault, symbol=target.symbol), "no open session"
            await wait_for(lambda: target.resyncs > resyncs0, 10.0,
                           what=lambda: f"{fault.value} to be refused ({h.describe()})")
            assert target.rejected > rejected0
            if fault is Fault.CROSSED and target.last_error == "crossed book":
                assert target.crossed >= 1
        await wait_for(lambda: h.emu.pending_faults() == 0, 10.0, what=f"{fault.value} to be delivered")
        # Valid and equal to the venue's truth within 30 s, whatever the fault.
        await h.converge(timeout_s=30.0)
        if fault is Fault.NO_SNAPSHOT and not venue.startswith("binance"):
            # Nothing came back: only the snapshot timeout could have asked again.
            assert h.handler.snapshot_timeouts >= 1
        assert target.last_error is not None
        await crash_is_alerted(h, target.symbol)
        assert_never_alerted_blind(h)
        for m in h.markets:
            bid, ask = m.book.bid_volume, m.book.ask_volume
            assert bid == bid and ask == ask and bid < float("inf") and ask < float("inf")
    finally:
        await stop(h)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("venue,fault", [(v, f) for v in VENUES for f in (Fault.CLOCK_AHEAD, Fault.CLOCK_BEHIND)],
                         ids=[f"{v}-{f.value}" for v in VENUES for f in (Fault.CLOCK_AHEAD, Fault.CLOCK_BEHIND)])
async def test_a_venue_clock_a_day_off_silences_nothing(venue: str, fault: Fault) -> None:
    reason = _available(venue)
    if reason:
        pytest.skip(reason)
    h = await start(venue, seed=9, settings=CRASH_DETECTOR, recovery=QUICK_RECOVERY)
    try:
        await h.converge()
        target = h.markets[0]
        # The crash itself arrives stamped a day off: it alerts...
        assert h.emu.inject(fault, symbol=target.symbol)
        await crash_is_alerted(h, target.symbol)
        assert target.valid, "a venue clock is data, not a reason to resync"
        assert getattr(target, "clock_skew", 0) >= 1, "the skewed event was not counted"
        # ...and the next crash after the (local, 1 s) cooldown alerts too: no 24 h silence.
        await asyncio.sleep(CRASH_DETECTOR.cooldown_s + 0.2)
        await crash_is_alerted(h, target.symbol)
        assert_never_alerted_blind(h)
    finally:
        await stop(h)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("venue", CHECKSUMMED)
async def test_checksum_flapping_is_retried_with_backoff_not_in_a_loop(venue: str) -> None:
    reason = _available(venue)
    if reason:
        pytest.skip(reason)
    h = await start(venue, seed=13, settings=CRASH_DETECTOR, recovery=QUICK_RECOVERY)
    requests: list[float] = []
    real_request = h.handler.request_books

    def timed_request(conn_id: int, symbols: list[str]) -> None:
        requests.append(time.monotonic())
        real_request(conn_id, symbols)

    h.handler.request_books = timed_request  # type: ignore[method-assign]
    try:
        await h.converge()
        target = h.markets[0]
        flaps = 5
        for i in range(flaps):
            # Each mismatch hits the book as soon as it is valid again: a pair that keeps failing.
            await wait_for(lambda: target.valid, 10.0, what=f"resync {i}")
            assert h.emu.inject(Fault.BAD_CHECKSUM, symbol=target.symbol)
            await wait_for(lambda n=i: target.checksum_mismatches > n, 10.0, what=f"mismatch {i + 1}")
        assert target.checksum_mismatches == flaps
        await h.converge(timeout_s=30.0)
        # One request per mismatch at most, and after the first they wait a growing backoff.
        assert len(requests) <= flaps + 1
        gaps = [b - a for a, b in zip(requests, requests[1:], strict=False)]
        assert gaps and min(gaps) >= QUICK_RECOVERY.retry_initial_s * (1 - QUICK_RECOVERY.retry_jitter) * 0.9, gaps
        await crash_is_alerted(h, target.symbol)
        assert_never_alerted_blind(h)
    finally:
        await stop(h)
