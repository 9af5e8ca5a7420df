"""The C hot path after parsing: MarketCore, FramePath, ChainState.last_u (and SequenceState.last_seq), FeedCounters."""

from __future__ import annotations

import time

import pytest

from sentrycoin.market import DetectorSettings, Market
from sentrycore import ImbalanceDetector, OrderBook
from sentrycore.coinbase import SequenceState
from sentrycore.marketcore import MarketCore
from sentrycore.parse import ChainState, DepthParser
from tests.core.test_parse import BASE


class Capturing(MarketCore):
    __slots__ = ("emitted",)

    def __init__(self, danger_ratio: float = 2.5) -> None:
        super().__init__(OrderBook(depth=5), ImbalanceDetector(danger_ratio=danger_ratio, cooldown_s=60.0))
        self.emitted: list[tuple[int, int]] = []

    def _emit(self, severity: int, event_ms: int) -> None:
        self.emitted.append((severity, event_ms))


def test_stamps_are_none_until_the_first_message() -> None:
    m = Capturing()
    assert m.messages == 0 and m.last_event_ms is None and m.last_update_monotonic is None
    before = time.monotonic()
    m.after_message(1_700_000_000_123)
    after = time.monotonic()
    assert m.messages == 1 and m.last_event_ms == 1_700_000_000_123
    # The stamp is on time.monotonic()'s clock: /status subtracts one from the other.
    assert before - 1e-3 <= m.last_update_monotonic <= after + 1e-3
    m.last_event_ms = None
    m.last_update_monotonic = None
    assert m.last_event_ms is None and m.last_update_monotonic is None


def test_detects_only_on_a_valid_book_and_emits_once_per_episode() -> None:
    m = Capturing(danger_ratio=2.0)
    m.book.load_snapshot([(100.0, 1.0)], [(101.0, 5.0)])  # ratio 5
    m.after_message(1_000)
    assert m.emitted == [] and m.messages == 1  # not valid: counted, not detected
    m.valid = True
    m.after_message(2_000)
    m.after_message(3_000)  # same episode, in cooldown
    assert [ms for _, ms in m.emitted] == [2_000] and m.emitted[0][0] >= 1
    assert m.detector.alerts == 1


def test_a_bare_core_cannot_raise_an_alert() -> None:
    m = MarketCore(OrderBook(depth=5), ImbalanceDetector(danger_ratio=2.0))
    m.book.load_snapshot([(100.0, 1.0)], [(101.0, 5.0)])
    m.valid = True
    with pytest.raises(NotImplementedError):
        m.after_message(1)


def test_market_alerts_through_the_c_path_of_depthparser_take() -> None:
    alerts = []
    market = Market("binance", "BTC-USDT", depth=5, settings=DetectorSettings(danger_ratio=1.0001),
                    on_alert=alerts.append)
    market.book.load_snapshot([(61000.0, 1.0)], [(62000.0, 50.0)])
    market.valid = True
    state = ChainState(market)
    state.synced = True
    state.last_u = 156
    assert DepthParser().take(BASE, {"BTCUSDT": state}, False) is True
    assert market.messages == 1 and market.last_event_ms == 1723161255208
    assert len(alerts) == 1 and alerts[0].symbol == "BTC-USDT" and alerts[0].event_ms == 1723161255208


def test_take_calls_a_python_override_of_after_message() -> None:
    class Audited(Market):
        __slots__ = ("seen",)

        def after_message(self, event_ms: int) -> None:
            self.seen.append(event_ms)
            super().after_message(event_ms)

    market = Audited("binance", "BTC-USDT", depth=5)
    market.seen = []
    market.book.load_snapshot([(61000.0, 1.0)], [(62000.0, 1.0)])
    state = ChainState(market)
    state.synced = True
    state.last_u = 156
    assert DepthParser().take(BASE, {"BTCUSDT": state}, False) is True
    assert market.seen == [1723161255208] and market.messages == 1


def test_framepath_counts_every_frame_and_falls_back_only_when_take_declines() -> None:
    from sentrycore.counters import FeedCounters
    from sentrycore.parse import FramePath

    market = Market("binance", "BTC-USDT", depth=5)
    market.book.load_snapshot([(61000.0, 1.0)], [(62000.0, 1.0)])
    state = ChainState(market)
    state.synced = True
    state.last_u = 156
    counters = FeedCounters()
    declined: list[tuple[bytes, int]] = []
    path = FramePath(DepthParser(), {"BTCUSDT": state}, False, counters,
                     lambda data, recv_ms: declined.append((data, recv_ms)))
    path.on_frame(0, BASE, 7)  # continues the chain: taken in C
    assert declined == [] and market.messages == 1 and state.last_u == 160
    path.on_frame(0, BASE, 8)  # U=157 does not follow 160: the reference path decides
    path.on_frame(0, b"garbage", 9)
    assert [ms for _, ms in declined] == [8, 9] and market.messages == 1
    assert counters.astuple() == (3, 2 * len(BASE) + len(b"garbage"), 0, 0, 0)


class _IntSubclass(int):
    pass


@pytest.mark.parametrize(("holder", "attr"), [(ChainState(None), "last_u"), (SequenceState(), "last_seq")])
def test_sequence_holders_keep_an_int64_in_c_and_anything_else_as_is(holder: object, attr: str) -> None:
    # Both follow sentrycore/int64box.pxd: a value held in C comes back as a
    # plain int, so a bool, an int subclass or an int beyond int64 held there
    # would come back with another type (or fail to convert).
    assert getattr(holder, attr) == (0 if attr == "last_u" else None)
    for value in (2**63 - 1, -(2**63), 12, True, _IntSubclass(12), "12", 2**63, -(2**63) - 1, 12.0, None):
        setattr(holder, attr, value)
        assert getattr(holder, attr) == value and type(getattr(holder, attr)) is type(value)


def test_feed_counters_behave_like_plain_counters() -> None:
    from sentrycore.counters import FeedCounters

    c = FeedCounters(frames=2)
    c.frames += 1
    c.bytes += 10
    assert c == FeedCounters(3, 10) and c != FeedCounters()
    assert c.asdict() == {"frames": 3, "bytes": 10, "decode_errors": 0, "ignored": 0, "checksum_skipped": 0}
    assert repr(c) == "FeedCounters(frames=3, bytes=10, decode_errors=0, ignored=0, checksum_skipped=0)"
