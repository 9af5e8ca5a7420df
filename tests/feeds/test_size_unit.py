"""size_unit: what bid_volume / ask_volume (and MIN_VOLUME) count, per venue, in /status and alerts."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sentrycoin.market import AlertEvent, DetectorSettings, Market
from sentrycoin.server.status import alert_json, book_status


@pytest.mark.parametrize("venue,unit", [
    ("okx-swap", "contracts"), ("okx", "coins"), ("binance-futures", "coins"), ("bybit-linear", "coins"),
    ("binance", "coins"), ("coinbase", "coins"), ("kraken", "coins"), ("bybit", "coins"),
])
def test_market_knows_its_venue_size_unit(venue, unit):
    market = Market(venue, "BTC-USDT")
    assert market.size_unit == unit
    assert book_status(market, None, time.monotonic())["size_unit"] == unit


def test_alert_carries_the_size_unit_into_status():
    alerts: list[AlertEvent] = []
    settings = DetectorSettings(danger_ratio=1.5, cooldown_s=0.0)
    market = Market("okx-swap", "BTC-USDT", depth=5, settings=settings, on_alert=alerts.append)
    market.book.load_snapshot(np.array([[100.0, 1.0]]), np.array([[101.0, 10.0]]))
    market.mark_valid()
    market.after_message(1_700_000_000_000)
    (alert,) = alerts
    assert alert.size_unit == "contracts" and alert.ask_volume == 10.0
    assert alert_json(alert)["size_unit"] == "contracts"


def test_size_unit_can_be_given():
    assert Market("test", "X-Y", size_unit="contracts").size_unit == "contracts"
