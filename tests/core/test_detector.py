"""ImbalanceDetector: threshold, re-arm, persistence, cooldown, severity, liquidity floor."""

from __future__ import annotations

import pytest

from sentrycore import SEVERITY_NAMES, ImbalanceDetector, OrderBook

NONE, WARNING, CRITICAL, EXTREME = range(4)


def run(detector: ImbalanceDetector, ratios_at: list[tuple[int, float]], bid_volume: float = 100.0) -> list[tuple[int, int]]:
    """Feed (time_ms, ratio) pairs; return the (time_ms, severity) of every alert."""
    fired = []
    for t, ratio in ratios_at:
        severity = detector.evaluate_volumes(bid_volume, ratio * bid_volume, t)
        if severity:
            fired.append((t, severity))
    return fired


def test_alert_at_threshold_not_below() -> None:
    d = ImbalanceDetector(danger_ratio=2.5)
    assert run(d, [(0, 2.49), (1, 2.4999)]) == []
    assert run(d, [(2, 2.5)]) == [(2, WARNING)]
    assert d.alerts == 1


def test_evaluate_reads_the_book() -> None:
    book = OrderBook(depth=2)
    book.load_snapshot([[100, 1], [99, 1]], [[101, 2], [102, 2.9]])
    d = ImbalanceDetector(danger_ratio=2.5)
    assert d.evaluate(book, 0) == NONE  # ratio 2.45
    book.update_ask(102, 3.0)  # ratio 2.5
    assert d.evaluate(book, 1) == WARNING


def test_one_crash_one_alert_until_rearmed() -> None:
    d = ImbalanceDetector(danger_ratio=2.5, rearm_ratio=2.0, cooldown_s=0)
    # Flicker around the threshold without falling below the re-arm level.
    seq = [(0, 3.0), (1, 2.4), (2, 3.0), (3, 2.1), (4, 2.6), (5, 2.3), (6, 2.7)]
    assert run(d, seq) == [(0, WARNING)]
    assert d.state(6) == "alerting"
    # Falling below 2.0 re-arms; the next rise alerts again.
    assert run(d, [(7, 1.9), (8, 2.6)]) == [(8, WARNING)]


def test_default_rearm_is_ninety_percent_of_danger() -> None:
    d = ImbalanceDetector(danger_ratio=3.0)
    assert d.rearm_ratio == pytest.approx(2.7)


def test_persistence_requires_continuous_time_above_danger() -> None:
    d = ImbalanceDetector(danger_ratio=2.5, min_persistence_ms=1000)
    assert run(d, [(0, 3.0), (500, 3.0), (999, 3.0)]) == []
    # A dip below danger restarts the clock.
    assert run(d, [(1000, 2.0), (1100, 3.0), (2099, 3.0)]) == []
    assert run(d, [(2100, 3.0)]) == [(2100, WARNING)]


def test_cooldown_blocks_a_second_alert_even_when_rearmed() -> None:
    d = ImbalanceDetector(danger_ratio=2.5, cooldown_s=300)
    assert run(d, [(0, 3.0), (1_000, 1.0)]) == [(0, WARNING)]
    assert d.state(1_000) == "cooldown"
    assert run(d, [(299_999, 3.0)]) == []
    # Still above danger when the cooldown ends, and armed: it fires.
    assert run(d, [(300_000, 3.0)]) == [(300_000, WARNING)]
    assert d.state(300_001) == "alerting"
    assert run(d, [(300_002, 1.0)]) == []
    assert d.state(600_001) == "armed"


def test_severity_levels_from_multiples() -> None:
    d = ImbalanceDetector(danger_ratio=2.0, critical_multiple=2.0, extreme_multiple=4.0)
    assert [d.severity_of(r) for r in (1.99, 2.0, 3.99, 4.0, 7.99, 8.0, float("inf"), float("nan"))] == [
        NONE, WARNING, WARNING, CRITICAL, CRITICAL, EXTREME, EXTREME, NONE,
    ]
    assert SEVERITY_NAMES[EXTREME] == "extreme"


def test_escalation_inside_cooldown_alerts_again_when_enabled() -> None:
    d = ImbalanceDetector(danger_ratio=2.5, cooldown_s=300)
    seq = [(0, 3.0), (10, 4.0), (20, 5.5), (30, 6.0), (40, 11.0), (50, 12.0)]
    assert run(d, seq) == [(0, WARNING), (20, CRITICAL), (40, EXTREME)]
    off = ImbalanceDetector(danger_ratio=2.5, cooldown_s=300, realert_on_escalation=False)
    assert run(off, seq) == [(0, WARNING)]


def test_escalation_after_rearming_inside_the_cooldown_alerts_once_per_tier() -> None:
    # The real Binance case (BTCUSDT 2024-08-08): a 2.6 warning, the ratio
    # back under the re-arm level, then 79.6 three minutes later.  The
    # detector had re-armed, and an armed detector inside its cooldown
    # suppressed everything: the extreme reading was never sent.
    d = ImbalanceDetector(danger_ratio=2.5, cooldown_s=300)
    assert run(d, [(0, 2.6), (10_000, 1.0)]) == [(0, WARNING)]
    assert d.armed and d.state(10_000) == "cooldown"
    assert run(d, [(180_000, 79.6)]) == [(180_000, EXTREME)]
    # Tier by tier, each at most once: warning and critical re-arm and rise
    # again, extreme repeats -- nothing more inside the cooldown.
    seq = [(181_000, 1.0), (182_000, 2.6), (183_000, 6.0), (184_000, 1.0), (185_000, 80.0), (186_000, 1.0), (187_000, 11.0)]
    assert run(d, seq) == []
    assert d.alerts == 2


def test_escalation_inside_the_cooldown_climbs_each_tier_once() -> None:
    d = ImbalanceDetector(danger_ratio=2.5, rearm_ratio=2.0, cooldown_s=300)
    seq = [
        (0, 3.0),                              # warning
        (1_000, 1.0), (2_000, 3.0),            # re-armed, warning again: inside the cooldown, no
        (3_000, 5.5),                          # critical: a higher tier, sent
        (4_000, 1.0), (5_000, 5.5), (6_000, 3.0), (7_000, 6.0),  # critical again (re-armed or not): no
        (8_000, 11.0),                         # extreme: sent
        (9_000, 1.0), (10_000, 12.0), (11_000, 3.0), (12_000, 20.0),  # nothing above extreme
    ]
    assert run(d, seq) == [(0, WARNING), (3_000, CRITICAL), (8_000, EXTREME)]
    # The escalation restarted the cooldown: a new episode begins 300 s after it.
    assert run(d, [(307_999, 1.0), (307_999, 3.0)]) == []
    assert run(d, [(308_000, 3.0)]) == [(308_000, WARNING)]
    off = ImbalanceDetector(danger_ratio=2.5, rearm_ratio=2.0, cooldown_s=300, realert_on_escalation=False)
    assert run(off, seq) == [(0, WARNING)]


def test_escalation_after_rearming_respects_persistence() -> None:
    d = ImbalanceDetector(danger_ratio=2.5, min_persistence_ms=100, cooldown_s=300)
    assert run(d, [(0, 3.0), (100, 3.0), (200, 1.0)]) == [(100, WARNING)]
    assert d.armed
    # A one-tick spike to critical is not persistence; a sustained one is.
    assert run(d, [(300, 6.0), (350, 1.0), (400, 6.0), (499, 6.0)]) == []
    assert run(d, [(500, 6.0)]) == [(500, CRITICAL)]


def test_a_clock_stepping_back_silences_for_at_most_one_cooldown() -> None:
    # A replay's recorded receive times can step back (a corrected wall
    # clock, files out of order): the cooldown restarts from the new time
    # instead of lasting as long as the step.
    day_ms = 86_400_000
    d = ImbalanceDetector(danger_ratio=2.5, cooldown_s=300)
    assert run(d, [(day_ms, 3.0), (day_ms + 1, 1.0)]) == [(day_ms, WARNING)]
    assert run(d, [(1_000, 3.0), (300_999, 3.0)]) == []
    assert run(d, [(301_000, 3.0)]) == [(301_000, WARNING)]
    # Persistence likewise: measured from the step, not from the future.
    p = ImbalanceDetector(danger_ratio=2.5, min_persistence_ms=1_000)
    assert run(p, [(day_ms, 3.0), (5_000, 3.0), (5_999, 3.0)]) == []
    assert run(p, [(6_000, 3.0)]) == [(6_000, WARNING)]


def test_escalation_respects_persistence() -> None:
    d = ImbalanceDetector(danger_ratio=2.5, min_persistence_ms=100, cooldown_s=300)
    seq = [(0, 3.0), (100, 3.0), (150, 6.0), (200, 3.0), (210, 6.0), (309, 6.0), (310, 6.0)]
    assert run(d, seq) == [(100, WARNING), (310, CRITICAL)]


def test_liquidity_floor_suppresses_thin_books() -> None:
    d = ImbalanceDetector(danger_ratio=2.5, min_volume=10.0)
    # Both sides at or under the floor: no signal, whatever the ratio.
    assert d.evaluate_volumes(1.0, 9.0, 0) == NONE
    assert d.evaluate_volumes(0.0, 10.0, 1) == NONE
    # One side thick enough: it counts (bids gone, asks piled up).
    assert d.evaluate_volumes(0.0, 50.0, 2) == EXTREME
    # An empty book never alerts, even with no floor.
    assert ImbalanceDetector().evaluate_volumes(0.0, 0.0, 0) == NONE


def test_reset_signal_restarts_persistence() -> None:
    d = ImbalanceDetector(danger_ratio=2.5, min_persistence_ms=100)
    assert run(d, [(0, 3.0), (90, 3.0)]) == []
    d.reset_signal()  # e.g. the book went out of sync
    assert run(d, [(100, 3.0), (189, 3.0)]) == []
    assert run(d, [(200, 3.0)]) == [(200, WARNING)]


def test_time_is_the_callers() -> None:
    # Same inputs, same decisions, whatever the wall clock: replay determinism.
    seq = [(t * 100, 1.0 + (t % 7)) for t in range(200)]
    a = run(ImbalanceDetector(cooldown_s=1), seq)
    b = run(ImbalanceDetector(cooldown_s=1), seq)
    assert a == b and a


@pytest.mark.parametrize(
    "kwargs",
    [
        {"danger_ratio": 0},
        {"danger_ratio": float("nan")},
        {"danger_ratio": 2.5, "rearm_ratio": 3.0},
        {"min_persistence_ms": -1},
        {"cooldown_s": -1},
        {"critical_multiple": 0.5},
        {"critical_multiple": 4, "extreme_multiple": 2},
        {"min_volume": -1},
    ],
)
def test_bad_settings_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ImbalanceDetector(**kwargs)
