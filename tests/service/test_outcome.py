"""Alert outcomes: the pure series function, the tracker in simulated time, the summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrycoin.alerts import AlertManager, OutcomeTracker, compute_outcome
from sentrycoin.store import AlertStore
from tests.service.alert_doubles import RecordingNotifier, make_event

T0 = 1_000_000


def series(points: dict[float, float]) -> list[tuple[int, float]]:
    return [(T0 + int(t * 1000), mid) for t, mid in sorted(points.items())]


def test_compute_outcome_horizons_and_drop() -> None:
    pts = {t: 100.0 for t in range(1, 901)}  # 1 Hz for 15 min
    pts[10] = 99.0
    pts[30] = 98.5
    pts[60] = 98.0
    pts[120] = 97.0  # the 5 min low: -3 %
    pts[300] = 99.5
    pts[600] = 96.0  # the 15 min low: -4 %
    pts[900] = 100.5
    out = compute_outcome(T0, 100.0, series(pts))
    assert out["complete"] is True
    assert (out["mid_10s"], out["mid_30s"], out["mid_60s"], out["mid_300s"], out["mid_900s"]) == (
        99.0, 98.5, 98.0, 99.5, 100.5)
    assert out["max_drop_5m_pct"] == pytest.approx(3.0)
    assert out["lead_to_low_5m_s"] == 120.0 and out["low_5m_mid"] == 97.0
    assert out["max_drop_pct"] == pytest.approx(4.0)
    assert out["low_mid"] == 96.0 and out["low_ms"] == T0 + 600_000 and out["lead_to_low_s"] == 600.0
    assert out["samples"] == 900


def test_price_rising_means_zero_drop() -> None:
    out = compute_outcome(T0, 100.0, series({t: 100.0 + t for t in range(1, 901)}))
    assert out["max_drop_pct"] == 0.0 and out["max_drop_5m_pct"] == 0.0


def test_partial_series_is_incomplete() -> None:
    out = compute_outcome(T0, 100.0, series({5: 99.0, 12: 98.0, 33: 97.0}))
    assert out["complete"] is False
    assert out["mid_10s"] == 98.0 and out["mid_30s"] == 97.0 and out["mid_60s"] is None
    assert out["max_drop_5m_pct"] is None  # 5 min not observed yet
    assert out["max_drop_pct"] == pytest.approx(3.0)
    out2 = compute_outcome(T0, 100.0, series({5: 99.0}), observed_until_ms=T0 + 900_000)
    assert out2["complete"] is True and out2["max_drop_5m_pct"] == pytest.approx(1.0)


def test_gap_at_horizon_gives_none() -> None:
    # Nothing between 8 s and 60 s: the +10 s and +30 s marks are unknown, not guessed.
    out = compute_outcome(T0, 100.0, series({8: 99.0, 60: 98.0}))
    assert out["mid_10s"] is None and out["mid_30s"] is None and out["mid_60s"] == 98.0


def test_samples_before_alert_and_bad_mids_ignored() -> None:
    pts = [(T0 - 5000, 50.0), (T0 + 1000, float("nan")), (T0 + 2000, -1.0), (T0 + 3000, 99.0)]
    out = compute_outcome(T0, None, pts)
    assert out["ref_mid"] == 99.0 and out["samples"] == 1 and out["low_mid"] == 99.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 1_200_000), st.floats(1.0, 1e6)), min_size=1, max_size=60))
def test_drop_matches_brute_force(raw: list[tuple[int, float]]) -> None:
    pts = sorted((T0 + dt, mid) for dt, mid in raw)
    out = compute_outcome(T0, 500.0, pts)
    window = [m for t, m in pts if t - T0 <= 900_000]
    if window:
        assert out["max_drop_pct"] == pytest.approx(max(0.0, (500.0 - min(window)) / 500.0 * 100))
        first_low = min((m, t) for t, m in pts if t - T0 <= 900_000)
        assert out["low_ms"] == first_low[1]
    else:
        assert out["max_drop_pct"] is None


class SimClock:
    def __init__(self, t_ms: int) -> None:
        self.t_ms = t_ms

    def __call__(self) -> int:
        return self.t_ms


async def test_tracker_in_simulated_time(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.db")
    clock = SimClock(T0)
    prices = {("binance", "BTC-USDT"): 100.0}
    calls: list[tuple[str, str]] = []

    def mid_price_of(exchange: str, symbol: str) -> float | None:
        calls.append((exchange, symbol))
        return prices.get((exchange, symbol))

    tracker = OutcomeTracker(store, mid_price_of, clock_ms=clock)
    manager = AlertManager(store, [RecordingNotifier()], outcomes=tracker, clock_ms=clock)
    manager.store.start()  # the writer thread only: the alert rows exist before outcomes are saved
    manager.submit(make_event(best_bid=99.99, best_ask=100.01))
    manager.submit(make_event(best_bid=99.99, best_ask=100.01, event_ms=1_764_145_310_124))
    manager.submit(make_event(source="replay", event_ms=1_764_145_310_125))  # replay alerts are not tracked live
    assert tracker.active == 2
    await manager.store.flush()
    a, b = (r["id"] for r in sorted(store.recent(), key=lambda r: r["event_ms"])[:2])
    for s in range(1, 1000):
        clock.t_ms = T0 + s * 1000
        prices[("binance", "BTC-USDT")] = 98.0 if s == 45 else 100.0
        if s == 200:
            prices.pop(("binance", "BTC-USDT"))  # feed gap
        tracker.tick()
        if s == 200:
            prices[("binance", "BTC-USDT")] = 100.0
        if s == 61:
            partial = store.get_outcome(a)
            assert partial is not None and partial["complete"] is False and partial["mid_60s"] == 100.0
    assert tracker.active == 0
    # one mid lookup per market per tick, however many alerts watch it
    assert len(calls) == 900
    out = store.get_outcome(a)
    assert out == store.get_outcome(b)
    assert out["complete"] and out["ref_mid"] == pytest.approx(100.0)
    assert out["max_drop_5m_pct"] == pytest.approx(2.0) and out["lead_to_low_5m_s"] == 45.0
    assert out["mid_10s"] == 100.0 and out["mid_900s"] == 100.0
    summary = store.outcome_summary()
    assert summary["alerts_total"] == 3 and summary["alerts_counted"] == 2
    assert summary["drop_1pct_share"] == 1.0 and summary["drop_2pct_share"] == 1.0
    assert summary["median_lead_to_low_s"] == 45.0
    row = next(r for r in store.recent() if r["id"] == a)
    assert row["outcome"]["max_drop_pct"] == pytest.approx(2.0)
    store.close()


async def test_tracker_survives_mid_price_errors_and_saves_on_stop(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.db")
    clock = SimClock(T0)

    def broken(exchange: str, symbol: str) -> float | None:
        raise RuntimeError("book gone")

    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        clock.t_ms += 1000
        if len(slept) > 20:
            import asyncio
            await asyncio.sleep(3600)

    tracker = OutcomeTracker(store, broken, clock_ms=clock, sleep=fake_sleep)
    rec = store.insert_alert(make_event(), [])
    tracker.track(rec)
    await tracker.start()
    import asyncio
    for _ in range(100):
        if len(slept) > 20:
            break
        await asyncio.sleep(0)
    await tracker.stop()
    out = store.get_outcome(rec.id)
    assert out is not None and out["complete"] is False and out["samples"] == 0
    assert out["ref_mid"] == pytest.approx(rec.mid_price)
    store.close()


async def test_tracking_resumes_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    clock = SimClock(T0)
    price = {"mid": 100.0}
    store = AlertStore(path)
    tracker = OutcomeTracker(store, lambda e, s: price["mid"], clock_ms=clock)
    manager = AlertManager(store, [RecordingNotifier()], outcomes=tracker, clock_ms=clock)
    manager.store.start()
    manager.submit(make_event(best_bid=99.99, best_ask=100.01))
    await manager.store.flush()
    await manager.store.close()
    alert_id = store.recent()[0]["id"]
    old = store.insert_alert(make_event(event_ms=5), [], created_ms=T0 - 2_000_000)  # too old to resume
    for s in range(1, 41):  # 40 s observed, with a low at 20 s
        clock.t_ms = T0 + s * 1000
        price["mid"] = 97.0 if s == 20 else 100.0
        tracker.tick()
    store.close()  # crash: in-memory tracking lost

    store = AlertStore(path)
    clock.t_ms = T0 + 120_000  # down for 80 s: the +60 s mark is missed
    tracker2 = OutcomeTracker(store, lambda e, s: price["mid"], clock_ms=clock)
    assert await tracker2.resume() == 1 and tracker2.active == 1
    for s in range(120, 1000):
        clock.t_ms = T0 + s * 1000
        tracker2.tick()
    out = store.get_outcome(alert_id)
    assert out is not None and out["complete"]
    assert out["mid_10s"] == 100.0 and out["mid_30s"] == 100.0 and out["mid_60s"] is None
    assert out["mid_300s"] == 100.0 and out["mid_900s"] == 100.0
    assert out["max_drop_5m_pct"] == pytest.approx(3.0) and out["lead_to_low_5m_s"] == 20.0
    assert store.get_outcome(old.id) is None
    store.close()
