"""The escalation the cooldown used to hide, on real Binance data.

BTCUSDT 2024-08-08/09 (hftbacktest recordings, 11 minutes): a 2.59 warning,
the ratio back under the re-arm level, and 3.3 minutes later the top-50 ratio
jumps to 5.3 and then 79.6.  The detector had re-armed inside its cooldown,
and an armed detector in cooldown suppressed everything: only the warning was
sent.  Now each higher tier is sent, once.
"""

from __future__ import annotations

from sentrycoin.feeds.binance import BinanceSpotHandler
from sentrycoin.market import AlertEvent, Market
from sentrycore.marketcore import SourceClock
from tests.feeds.binance_bybit_okx_frames import read_gz_lines
from tests.realdata import realdata_path

FILES = ("BINANCE_SPOT_BTCUSDT_20240808.gz", "BINANCE_SPOT_BTCUSDT_20240809.gz")


def test_btcusdt_escalation_inside_the_cooldown_is_sent_once_per_tier() -> None:
    paths = [realdata_path(name) for name in FILES]
    alerts: list[AlertEvent] = []
    market = Market("binance", "BTC-USDT", depth=50, capacity=20000, on_alert=alerts.append, source="replay")
    clock = SourceClock()  # the recorded receive times, as a replay runs
    market.clock = clock
    h = BinanceSpotHandler([market], "wss://stream.binance.com:9443/stream", "https://api.binance.com/api/v3/depth")
    h.on_connected(0)
    h.take_actions()
    for path in paths:
        for ns, body in read_gz_lines(path):
            clock.now_ms = ns // 1_000_000
            if body.startswith(b'{"stream"'):
                h.on_frame(0, body, clock.now_ms)
            else:
                h.on_snapshot("BTC-USDT", body, clock.now_ms)
            h.take_actions()
    assert market.valid and market.resyncs == 0 and market.rejected == 0

    first, critical, extreme = alerts[:3]
    assert (first.severity, round(first.ratio, 2)) == ("warning", 2.59)
    assert (critical.severity, round(critical.ratio, 2)) == ("critical", 5.31)
    assert (extreme.severity, round(extreme.ratio, 2)) == ("extreme", 79.65)
    # Inside the default 300 s cooldown of the warning: what used to be hidden.
    assert 180_000 < extreme.event_ms - first.event_ms < 300_000
    # The ratio later reaches 97.3, still extreme: not sent again in that episode.
    episode = [a for a in alerts if a.event_ms - extreme.event_ms < 300_000]
    assert [a.severity for a in episode] == ["warning", "critical", "extreme"]
    assert market.clock_skew == 0
