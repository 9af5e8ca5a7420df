"""Labels from the price path (--label-drop): known answers, a brute-force property, CSV bottoms."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrycoin.research.backtest import Series, load_labels
from sentrycoin.research.labels import DropRule, label_drops, low_between, parse_drop_rule, parse_duration_ms


@pytest.mark.parametrize(("text", "ms"), [("500ms", 500), ("60s", 60_000), ("5m", 300_000), ("5min", 300_000),
                                          ("1h", 3_600_000), ("90", 90_000), ("1.5s", 1_500)])
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


def test_rules_and_their_errors() -> None:
    rule = parse_drop_rule("0.5%:5m")
    assert (rule.drop, rule.within_ms, rule.name) == (0.005, 300_000, "drop 0.5%:5m")
    assert "0.5 %" in rule.describe() and "5 min" in rule.describe()
    for bad in ("0.5:5m", "0.5%", "x%:5m", "150%:1m", "0%:1m", "1%:soon", "1%:-2s"):
        with pytest.raises(ValueError, match=f"--label-drop '{bad}'"):
            parse_drop_rule(bad)


def path(prices: list[float], step_ms: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(len(prices), dtype=np.int64) * step_ms, np.array(prices, dtype=float)


def test_one_fall_known_answer() -> None:
    # 100 flat to t=10 s, down 0.1 per second to 99 at t=20 s, back up by t=30 s, flat.
    prices = [100.0] * 11 + [100 - 0.1 * i for i in range(1, 11)] + [99 + 0.1 * i for i in range(1, 11)] + [100.0] * 20
    t, mid = path(prices)
    (w,) = label_drops("A", t, mid, DropRule(0.005, 30_000))
    assert w.symbol == "A" and w.kind.startswith("drop ")
    # Peak: the last time at 100 before the fall (10 s); low at 20 s; still >= 0.5 % down until 25 s.
    assert (w.start_ms, w.fall_ms, w.bottom_ms, w.end_ms) == (10_000, 10_000, 20_000, 25_000)
    # The same fall spread over more than the window is no 0.5 % fall "within" 3 s.
    assert label_drops("A", t, mid, DropRule(0.005, 3_000)) == []
    # A 1 % rule sees the full 1 % drop only at the bottom.
    (w1,) = label_drops("A", t, mid, DropRule(0.01, 30_000))
    assert (w1.start_ms, w1.bottom_ms, w1.end_ms) == (10_000, 20_000, 20_000)


def test_two_falls_are_two_windows_and_a_relapse_joins_its_episode() -> None:
    fall = [100.0, 99.0, 100.0]
    prices = [100.0] * 5 + fall + [100.0] * 20 + fall + [100.0] * 5
    t, mid = path(prices)
    wins = label_drops("A", t, mid, DropRule(0.005, 10_000))
    assert [(w.start_ms, w.bottom_ms, w.end_ms) for w in wins] == [(5_000, 6_000, 6_000), (28_000, 29_000, 29_000)]
    # Partial recovery then a deeper low while the old peak is still in the window: one episode.
    t, mid = path([100.0, 100.0, 99.4, 99.7, 99.2, 100.0])
    (w,) = label_drops("A", t, mid, DropRule(0.005, 10_000))
    assert (w.start_ms, w.bottom_ms, w.end_ms) == (1_000, 4_000, 4_000)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(min_value=-0.004, max_value=0.004), min_size=2, max_size=120),
       st.sampled_from([0.002, 0.005, 0.01]), st.integers(min_value=1, max_value=20))
def test_windows_cover_exactly_the_qualifying_points(steps, drop, within_steps) -> None:
    mid = 100.0 * np.cumprod(1.0 + np.array(steps))
    t = np.arange(len(mid), dtype=np.int64) * 1000
    within = within_steps * 1000
    wins = label_drops("A", t, mid, DropRule(drop, within))
    # Brute force: a point qualifies when it is `drop` below the max of the trailing window.
    qualifying = [i for i in range(len(mid))
                  if mid[i] <= (1 - drop) * mid[(t >= t[i] - within) & (t <= t[i])].max()]
    covered = {i for w in wins for i in range(len(mid)) if w.start_ms <= t[i] <= w.end_ms}
    assert set(qualifying) <= covered
    for w in wins:
        assert w.start_ms < w.bottom_ms <= w.end_ms
        b = int(w.bottom_ms // 1000)
        assert b in qualifying and int(w.end_ms // 1000) in qualifying
        assert mid[int(w.start_ms // 1000)] * (1 - drop) >= mid[b] - 1e-9
    for a, b in pairwise(wins):
        assert a.end_ms < b.start_ms  # episodes never overlap


def test_labels_csv_bottom_defaults_to_the_price_low(tmp_path) -> None:
    t, mid = path([100.0, 99.0, 98.0, 97.5, 98.5, 99.0], step_ms=60_000)
    t = t + 1_723_111_200_000  # 2024-08-08T10:00:00Z
    series = {"BTC-USDT": Series("BTC-USDT", t, np.ones(6), np.ones(6), mid)}
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("symbol,start,end\nbtc-usdt,2024-08-08T10:00:00Z,2024-08-08T10:05:00Z\n"
                        "ETH-USDT,2024-08-08T10:00:00Z,2024-08-08T10:05:00Z\n")
    btc, eth = load_labels(csv_path, series)
    assert btc.bottom_ms == 1_723_111_200_000 + 3 * 60_000  # the low, 97.5, not the window end
    assert eth.bottom_ms == eth.end_ms  # no prices for ETH-USDT: the end
    assert low_between(t, mid, t[4], t[5]) == t[4]
    assert low_between(t, mid, t[5] + 1, t[5] + 2) is None
