"""SIGNAL=band: the detector on the book's band notionals, wired from the settings."""

from __future__ import annotations

import time

import pytest

from sentrycoin.config import ConfigError, load_settings
from sentrycoin.market import AlertEvent, DetectorSettings, Market
from sentrycore import ImbalanceDetector, OrderBook
from sentrycore.marketcore import MarketCore

# Mid 100.0: 25 bps is the band [99.75, 100.25].
BIDS = [[99.9, 10.0], [99.8, 10.0]]


def market(signal: str, **settings) -> tuple[Market, list[AlertEvent]]:
    alerts: list[AlertEvent] = []
    m = Market("binance", "BTC-USDT", depth=5, on_alert=alerts.append,
               settings=DetectorSettings(signal=signal, cooldown_s=300.0, **settings))
    m.valid = True
    return m, alerts


def message(m: Market, bids: list, asks: list) -> None:
    m.book.load_snapshot(bids, asks)
    m.after_message(time.time_ns() // 1_000_000)


def test_band_alerts_on_a_sell_wall_inside_the_band() -> None:
    # Wall at 100.2 (20 bps from the mid): band ratio ~ 10; the deep bid at
    # 99.0 (outside the band) keeps the top-5 volume ratio below 2.5.
    bids = BIDS + [[99.0, 500.0]]
    asks = [[100.1, 1.0], [100.2, 200.0]]
    band, band_alerts = market("band", band_bps=25.0)
    levels, levels_alerts = market("levels")
    for m in (band, levels):
        message(m, bids, asks)
    assert [a.severity for a in band_alerts] == ["extreme"]
    assert levels_alerts == []
    # The alert carries the ratio the band detector fired on.
    want = (100.1 + 100.2 * 200.0) / (99.9 * 10.0 + 99.8 * 10.0)
    assert band_alerts[0].ratio == pytest.approx(want, rel=1e-12)


def test_band_ignores_a_sell_wall_outside_the_band() -> None:
    # The same wall at 101.0 (~100 bps out): the top-5 ratio sees it, the band does not.
    asks = [[100.1, 1.0], [101.0, 200.0]]
    band, band_alerts = market("band", band_bps=25.0)
    levels, levels_alerts = market("levels")
    for m in (band, levels):
        message(m, BIDS, asks)
    assert band_alerts == []
    assert [a.severity for a in levels_alerts] == ["extreme"]
    # A wider band reaches it.
    wide, wide_alerts = market("band", band_bps=150.0)
    message(wide, BIDS, asks)
    assert [a.severity for a in wide_alerts] == ["extreme"]


def test_danger_ratio_applies_to_the_band_ratio() -> None:
    # Band ratio (100.1 x 30) / (99.9 x 10 + 99.8 x 10) ~ 1.5.
    asks = [[100.1, 30.0]]
    low, low_alerts = market("band", danger_ratio=1.4)
    high, high_alerts = market("band", danger_ratio=1.6)
    for m in (low, high):
        message(m, BIDS, asks)
    assert len(low_alerts) == 1 and high_alerts == []


def test_market_books_keep_a_band_only_for_the_band_signal() -> None:
    band, _ = market("band", band_bps=10.0)
    levels, _ = market("levels")
    assert (band.book.band_bps, band.band_signal) == (10.0, True)
    assert (levels.book.band_bps, levels.band_signal) == (0.0, False)


def test_marketcore_refuses_the_band_signal_without_a_band() -> None:
    with pytest.raises(ValueError, match="band_bps"):
        MarketCore(OrderBook(depth=5), ImbalanceDetector(), band_signal=True)


# -- settings --------------------------------------------------------------------------


def test_signal_defaults_to_levels() -> None:
    d = load_settings(env={}).detector
    assert (d.signal, d.band_bps) == ("levels", 25.0)


def test_signal_and_band_bps_from_the_environment() -> None:
    s = load_settings(env={"SIGNAL": "band", "BAND_BPS": "12.5", "EXCHANGE": "binance", "SYMBOLS": "BTC-USDT"})
    d = s.markets[0].detector
    assert (d.signal, d.band_bps) == ("band", 12.5)
    assert Market(s.markets[0].exchange, s.markets[0].symbol, settings=d).book.band_bps == 12.5


def test_signal_and_band_bps_from_the_file(tmp_path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[detector]\nsignal = "band"\nband_bps = 30\n'
        '[[markets]]\nexchange = "binance"\nsymbols = ["BTC-USDT"]\n'
        '[[markets]]\nexchange = "kraken"\nsymbols = ["BTC-USD"]\nsignal = "levels"\n'
    )
    markets = {m.exchange: m.detector for m in load_settings(path, env={}).markets}
    assert (markets["binance"].signal, markets["binance"].band_bps) == ("band", 30.0)
    assert markets["kraken"].signal == "levels"


@pytest.mark.parametrize(("env", "message"), [
    ({"SIGNAL": "volume"}, "SIGNAL: must be one of levels, band, got 'volume'"),
    ({"BAND_BPS": "0"}, "BAND_BPS: must be > 0 and < 10000, got '0'"),
    ({"BAND_BPS": "-5"}, "BAND_BPS: must be > 0 and < 10000, got '-5'"),
    ({"BAND_BPS": "1e4"}, "BAND_BPS: must be > 0 and < 10000, got '1e4'"),
    ({"BAND_BPS": "nan"}, "BAND_BPS:"),
    ({"BAND_BPS": "wide"}, "BAND_BPS:"),
])
def test_bad_signal_settings_name_the_variable(env: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("toml", "message"), [
    ('signal = "top"', "detector.signal: must be one of levels, band, got 'top'"),
    ("band_bps = 0", "detector.band_bps: must be > 0 and < 10000, got 0"),
])
def test_bad_signal_settings_in_the_file_name_the_key(tmp_path, toml: str, message: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f"[detector]\n{toml}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})
