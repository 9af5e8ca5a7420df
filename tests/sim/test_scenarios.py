"""Scenarios through the real Binance spot handler and the default detector."""

from __future__ import annotations

import numpy as np
import pytest

from sentrycoin.market import DetectorSettings
from sentrycoin.sim.scenarios import (
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
    scenario_to_toml,
)
from tests.sim.conftest import run_scenario

ROTATE = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "DOGE-USDT"]


def test_builtin_scenarios_are_listed_and_documented():
    names = builtin_scenarios()
    for name in ("normal", "flash_crash", "whale_dump", "spoof", "recovery", "mixed"):
        assert name in names
        spec = load_scenario(name)
        assert spec.name == name and spec.description


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_normal_hour_is_silent_and_ratio_wanders_in_band(seed):
    symbols = ["BTC-USDT", ROTATE[1 + seed % 4]]
    run = run_scenario("normal", seed, symbols)
    assert run.alerts == []
    for s in symbols:
        t, ratio, _ = run.arrays(s)
        assert t[-1] - t[0] >= 3590_000  # an hour of simulated time
        in_band = np.mean((ratio >= 0.8) & (ratio <= 2.4))
        assert in_band >= 0.98
        # It wanders: not stuck at one value.
        assert np.percentile(ratio, 95) / np.percentile(ratio, 5) > 1.3


def _mid_before(t, mid, at_ms):
    return mid[t < at_ms][-1]


@pytest.mark.parametrize("scenario", ["flash_crash", "whale_dump"])
def test_crash_alerts_before_bottom_across_20_seeds(scenario):
    for seed in range(20):
        sym = ROTATE[seed % len(ROTATE)]
        run = run_scenario(scenario, seed, [sym])
        (w,) = run.windows(sym)
        alerts = run.alerts_for(sym)
        assert alerts, f"seed {seed}: no alert"
        first = alerts[0]
        assert w.start_ms <= first.event_ms < w.bottom_ms, f"seed {seed}: alert at {first.event_ms}, {w}"
        assert first.source == "simulated"
        # Alerts only inside the labelled window (none in the calm before it).
        assert all(w.start_ms <= a.event_ms <= w.end_ms for a in alerts)
        t, ratio, mid = run.arrays(sym)
        before = _mid_before(t, mid, w.fall_ms)
        in_fall = (t >= w.fall_ms) & (t <= w.end_ms)
        assert mid[in_fall].min() <= before * 0.97, f"seed {seed}: fell less than 3 %"


def test_flash_crash_ratio_exceeds_10_then_price_falls():
    for seed in range(5):
        sym = ROTATE[seed]
        run = run_scenario("flash_crash", seed, [sym])
        (w,) = run.windows(sym)
        t, ratio, mid = run.arrays(sym)
        pre = (t >= w.start_ms) & (t < w.fall_ms)
        assert ratio[pre].max() > 10
        assert ratio[t < w.start_ms].max() < 2.5
        before = _mid_before(t, mid, w.fall_ms)
        fall = (t >= w.fall_ms) & (t <= w.bottom_ms + 2000)
        assert mid[fall].min() <= before * 0.97
        # The fall takes seconds, not minutes.
        assert (w.bottom_ms - w.fall_ms) <= 10_000


def test_whale_dump_is_one_wall_near_the_touch():
    run = run_scenario("whale_dump", 4, ["ETH-USDT"])
    (w,) = run.windows("ETH-USDT")
    t, ratio, _ = run.arrays("ETH-USDT")
    i = np.searchsorted(t, w.start_ms)
    assert ratio[i - 1] < 2.5 and ratio[i] > 5  # the wall lands in one frame


def test_spoof_with_persistence_raises_at_most_one_alert():
    symbols = ["BTC-USDT", "ETH-USDT"]
    quiet = run_scenario("spoof", 8, symbols, DetectorSettings(min_persistence_ms=3000), record=False)
    for s in symbols:
        assert len(quiet.alerts_for(s)) <= 1
        assert quiet.windows(s) == []  # spoofs are not crashes
    # Without persistence the same walls do fire: the filter is what keeps it quiet.
    noisy = run_scenario("spoof", 8, symbols, record=False)
    assert len(noisy.alerts) >= 1


def test_recovery_ratio_falls_back_and_detector_rearms():
    run = run_scenario("recovery", 5, ["SOL-USDT"])
    (w,) = run.windows("SOL-USDT")
    t, ratio, _ = run.arrays("SOL-USDT")
    assert run.alerts and w.start_ms <= run.alerts[0].event_ms < w.bottom_ms
    assert ratio[(t > w.end_ms)].max() < 2.25  # below the re-arm level once recovered
    market = run.source.markets[0]
    assert market.detector.armed


def test_mixed_alerts_within_seconds_and_keeps_going():
    run = run_scenario("mixed", 1, ["BTC-USDT", "ETH-USDT"], seconds=600, record=False)
    start = run.source.generator.start_ms
    assert run.alerts and run.alerts[0].event_ms - start <= 10_000
    assert len(run.source.generator.windows("BTC-USDT")) >= 3
    kinds = {w.kind for w in run.source.generator.windows()}
    assert kinds == {"flash_crash", "whale_dump"}


# -- user TOML files ------------------------------------------------------------------

USER_TOML = """
name = "my_crash"
description = "two crashes on BTC"
duration_s = 200
levels = 200

[normal]
update_rate_hz = 40
trade_rate_hz = 2

[[events]]
kind = "flash_crash"
at_s = 10
withdraw_s = 15
fall_pct = 5
fall_s = 4
recover_s = 30
symbols = ["BTC-USDT"]

[[events]]
kind = "whale_dump"
at_s = [120, 130]
"""


def test_user_toml_round_trip_and_runs(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text(USER_TOML)
    spec = load_scenario(str(path))
    assert spec.name == "my_crash" and spec.levels == 200 and spec.normal.update_rate_hz == 40
    again = tmp_path / "again.toml"
    again.write_text(scenario_to_toml(spec))
    assert load_scenario(again) == spec
    for name in builtin_scenarios():
        p = tmp_path / f"{name}.toml"
        p.write_text(scenario_to_toml(load_scenario(name)))
        assert load_scenario(p) == load_scenario(name)
    run = run_scenario(spec, 3, ["BTC-USDT", "ETH-USDT"], record=False)
    start = run.source.generator.start_ms
    btc = run.windows("BTC-USDT")
    assert [w.kind for w in btc] == ["flash_crash", "whale_dump"]
    assert btc[0].start_ms == start + 10_000 and btc[0].fall_ms == start + 25_000
    assert [w.kind for w in run.windows("ETH-USDT")] == ["whale_dump"]
    assert {a.symbol for a in run.alerts} == {"BTC-USDT", "ETH-USDT"}


@pytest.mark.parametrize("text, needle", [
    ('name = "x"\nduration_s = 10\nfoo = 1\n', "foo"),
    ('name = "x"\n[normal]\nratio_centre = 1.2\n', "ratio_centre"),
    ('name = "x"\n[[events]]\nkind = "flash_crash"\nat_s = 5\nfall_pct = "lots"\n', "events[0].fall_pct"),
    ('name = "x"\n[[events]]\nkind = "flash_crash"\nat_s = 5\nfall_pct = 120\n', "events[0].fall_pct"),
    ('name = "x"\n[[events]]\nkind = "flash_crash"\nat_s = 5\nbid_scale = [0.5, 0.1]\n', "events[0].bid_scale"),
    ('name = "x"\n[[events]]\nkind = "meteor"\nat_s = 5\n', "events[0].kind"),
    ('name = "x"\n[[events]]\nkind = "spoof"\n', "at_s"),
    ('name = "x"\nduration_s = -5\n', "duration_s"),
    ('name = "x"\n[repeat]\nkinds = ["flash_crash", "tsunami"]\n', "repeat.kinds"),
    ('description = "no name"\n', "name"),
    ('name = "x"\nduration_s = \n', "not valid TOML"),
])
def test_invalid_toml_names_the_key(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(str(path))
    assert needle in str(exc.value)
    assert "bad.toml" in str(exc.value)


def test_unknown_name_and_missing_file():
    with pytest.raises(ScenarioError, match="flash_crash"):
        load_scenario("flash_crsh")
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario("/nonexistent/x.toml")
    with pytest.raises(ScenarioError, match="name"):
        parse_scenario({"name": " "})
