"""/metrics: Prometheus text that prometheus_client's own parser accepts, with
values read from the markets, feed counters and alert manager at scrape time."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentrycoin.server.metrics import ProcessingTimeHistogram
from tests.service.conftest import SrvMonitor, srv_load_book


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _types(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


async def test_metrics_parse_and_reflect_state(srv_http, srv_make_market, srv_alert_manager):
    serve, session = srv_http
    manager = srv_alert_manager
    btc = srv_make_market("binance", "BTC-USDT", on_alert=manager.submit)
    eth = srv_make_market("okx", "ETH-USDT")  # never loaded: ratio undefined
    srv_load_book(btc, 1.0, 1.0)
    srv_load_book(btc, 2.0, 3.0)
    btc.invalidate("gap")
    btc.reconnects = 2
    srv_load_book(btc, 1.0, 4.0)  # ratio 4 >= 2.5: warning (critical needs 5)
    monitor = SrvMonitor([btc, eth], alert_manager=manager)
    monitor.counters["binance"].frames = 120
    monitor.counters["binance"].bytes = 45_000
    monitor.counters["binance"].decode_errors = 3
    await manager.drain(5.0)  # console delivers, "broken" fails permanently
    hist = monitor.processing_time
    for ns in (800, 3_000, 3_000, 40_000, 10**9):
        hist.observe_ns(ns)
    base = await serve(monitor)

    async with session.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    s = _samples(text)
    types = _types(text)
    btc_l = (("exchange", "binance"), ("symbol", "BTC-USDT"))
    eth_l = (("exchange", "okx"), ("symbol", "ETH-USDT"))

    assert s[("sentrycoin_feed_frames_total", (("venue", "binance"),))] == 120
    assert s[("sentrycoin_feed_bytes_total", (("venue", "binance"),))] == 45_000
    assert s[("sentrycoin_feed_decode_errors_total", (("venue", "binance"),))] == 3
    assert s[("sentrycoin_feed_frames_total", (("venue", "okx"),))] == 0
    assert types["sentrycoin_feed_frames"] == "counter"

    assert s[("sentrycoin_book_messages_total", btc_l)] == 3
    assert s[("sentrycoin_book_resyncs_total", btc_l)] == 1
    assert s[("sentrycoin_book_reconnects_total", btc_l)] == 2
    assert s[("sentrycoin_detector_alerts_total", btc_l)] == 1
    assert s[("sentrycoin_book_ratio", btc_l)] == 4.0
    assert math.isnan(s[("sentrycoin_book_ratio", eth_l)])
    assert s[("sentrycoin_book_danger_ratio", btc_l)] == 2.5
    assert s[("sentrycoin_book_valid", btc_l)] == 1 and s[("sentrycoin_book_valid", eth_l)] == 0
    assert s[("sentrycoin_book_bid_volume", btc_l)] == 10.0
    assert types["sentrycoin_book_ratio"] == "gauge"

    assert s[("sentrycoin_alerts_submitted_total", ())] == 1
    assert s[("sentrycoin_alerts_total", (("severity", "warning"),))] == 1
    assert s[("sentrycoin_alerts_queue_dropped_total", ())] == 0
    assert s[("sentrycoin_notifier_failures_total", (("notifier", "broken"),))] == 1
    assert s[("sentrycoin_notifier_failures_total", (("notifier", "console"),))] == 0
    assert s[("sentrycoin_notifier_delivered_total", (("notifier", "console"),))] == 1
    assert s[("sentrycoin_notifier_delivered_total", (("notifier", "broken"),))] == 0
    assert s[("sentrycoin_alert_queue_depth", ())] == 0

    assert types["sentrycoin_message_processing_seconds"] == "histogram"
    assert s[("sentrycoin_message_processing_seconds_count", ())] == 5
    assert s[("sentrycoin_message_processing_seconds_bucket", (("le", "1e-06"),))] == 1
    assert s[("sentrycoin_message_processing_seconds_bucket", (("le", "5e-06"),))] == 3
    assert s[("sentrycoin_message_processing_seconds_bucket", (("le", "5e-05"),))] == 4
    assert s[("sentrycoin_message_processing_seconds_bucket", (("le", "+Inf"),))] == 5
    assert s[("sentrycoin_message_processing_seconds_sum", ())] == pytest.approx(1.0000468)

    assert s[("sentrycoin_info", (("mode", "simulated"), ("version", "0.1.0-test")))] == 1
    assert s[("sentrycoin_uptime_seconds", ())] >= 0

    # Read at scrape time: a later change shows up in the next scrape.
    srv_load_book(eth, 1.0, 2.0)
    monitor.counters["okx"].frames = 7
    async with session.get(f"{base}/metrics") as resp:
        s = _samples(await resp.text())
    assert s[("sentrycoin_book_ratio", eth_l)] == 2.0
    assert s[("sentrycoin_feed_frames_total", (("venue", "okx"),))] == 7


async def test_metrics_without_alert_manager_or_histogram(srv_http, srv_make_market):
    serve, session = srv_http
    monitor = SrvMonitor([srv_make_market()], alert_manager=None)
    del monitor.processing_time
    base = await serve(monitor)
    async with session.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    types = _types(text)  # parses; the families exist but carry no samples
    assert types["sentrycoin_alerts_submitted"] == "counter"
    assert ("sentrycoin_alerts_submitted_total", ()) not in _samples(text)
    assert ("sentrycoin_message_processing_seconds_count", ()) not in _samples(text)


def test_collector_reads_dict_shaped_stats():
    """Stats given as a plain dict (e.g. AlertStats.as_dict()) work too."""
    from sentrycoin.server.metrics import MonitorCollector

    class Manager:
        store = None
        stats = {"submitted": 9, "queue_dropped": 5, "queue_depth": 4, "by_severity": {"extreme": 2},
                 "delivered": {"telegram": 3}, "failed": {"telegram": 6}, "suppressed": {"telegram": 7}}

    monitor = SrvMonitor([], alert_manager=Manager())
    got = {(s.name, tuple(s.labels.items())): s.value
           for fam in MonitorCollector(monitor).collect() for s in fam.samples}
    assert got[("sentrycoin_alerts_queue_dropped_total", ())] == 5
    assert got[("sentrycoin_alert_queue_depth", ())] == 4
    assert got[("sentrycoin_alerts_total", (("severity", "extreme"),))] == 2
    assert got[("sentrycoin_notifier_failures_total", (("notifier", "telegram"),))] == 6
    assert got[("sentrycoin_notifier_suppressed_total", (("notifier", "telegram"),))] == 7
    assert not any(name.startswith("sentrycoin_ha_") for name, _ in got)  # no REDIS_URL: no HA families


def test_ha_metrics_when_replicas_share_redis():
    from sentrycoin.server.metrics import MonitorCollector

    monitor = SrvMonitor([], alert_manager=None)
    monitor.ha_stats = lambda: {"replica_id": "r1", "degraded": True, "claims_won": 4, "claims_lost": 3,
                                "local_claims": 2, "redis_errors": 5, "outages": 1, "recoveries": 0,
                                "gate_allowed": 4, "gate_suppressed": 3, "leases_held": 12}
    got = {(s.name, tuple(s.labels.items())): s.value
           for fam in MonitorCollector(monitor).collect() for s in fam.samples}
    assert got[("sentrycoin_ha_redis_degraded", ())] == 1
    assert got[("sentrycoin_ha_claims_total", (("result", "won"),))] == 4
    assert got[("sentrycoin_ha_claims_total", (("result", "lost"),))] == 3
    assert got[("sentrycoin_ha_claims_total", (("result", "local"),))] == 2
    assert got[("sentrycoin_ha_redis_errors_total", ())] == 5
    assert got[("sentrycoin_ha_redis_outages_total", ())] == 1
    assert got[("sentrycoin_ha_leases_held", ())] == 12


def test_histogram_buckets_are_le_and_cumulative():
    hist = ProcessingTimeHistogram((1e-6, 1e-5))
    for ns in (0, 1000, 1001, 10_000, 10_001):
        hist.observe_ns(ns)
    assert hist.cumulative() == [("1e-06", 2.0), ("1e-05", 4.0), ("+Inf", 5.0)]
    assert hist.count == 5 and hist.sum_ns == 22_002
    with pytest.raises(ValueError):
        ProcessingTimeHistogram((1e-5, 1e-6))


def test_delivery_metrics_store_errors_unknown_outcomes_and_lost():
    from sentrycoin.server.metrics import MonitorCollector

    class Manager:
        store = None
        stats = {"submitted": 1, "store_errors": 3, "outcome_unknown": {"webhook": 2}, "lost": 4}

    got = {(s.name, tuple(s.labels.items())): s.value
           for fam in MonitorCollector(SrvMonitor([], alert_manager=Manager())).collect() for s in fam.samples}
    assert got[("sentrycoin_store_errors_total", ())] == 3
    assert got[("sentrycoin_notifier_outcome_unknown_total", (("notifier", "webhook"),))] == 2
    assert got[("sentrycoin_alerts_lost_total", ())] == 4
