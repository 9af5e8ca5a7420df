"""Clocks: the venue's event time is data; cooldown, persistence and re-arm run on the local clock.

Before, the detector ran on event times: one event stamped a day ahead fired
an alert and then held the market in cooldown for 24 hours, and a venue clock
set a day back did the same after any alert.  Now the local clock decides
(monotonic live, the recorded / simulated receive time in replay and
simulation) and an event time more than CLOCK_SKEW_S from its receive time
is counted in `clock_skew`.
"""

from __future__ import annotations

import time

import msgspec
import pytest

from sentrycoin.config import ConfigError, load_settings
from sentrycoin.market import AlertEvent, DetectorSettings, Market
from sentrycoin.research.recording import Header, RecordingWriter
from sentrycoin.research.replay import replay_files
from sentrycore import ImbalanceDetector, OrderBook
from sentrycore.marketcore import DEFAULT_CLOCK_SKEW_MS, MarketCore, SourceClock
from sentrycore.parse import ChainState, DepthParser

DAY_MS = 86_400_000
CALM = ([(100.0, 10.0)], [(101.0, 10.0)])    # ratio 1
CRASH = ([(100.0, 1.0)], [(101.0, 30.0)])    # ratio 30: extreme at danger 2.5


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def market(cooldown_s: float = 300.0, clock: SourceClock | None = None, **settings) -> tuple[Market, list[AlertEvent]]:
    alerts: list[AlertEvent] = []
    m = Market("binance", "BTC-USDT", depth=5, settings=DetectorSettings(cooldown_s=cooldown_s, **settings),
               on_alert=alerts.append)
    m.clock = clock
    m.valid = True
    return m, alerts


def message(m: Market, book: tuple, event_ms: int) -> None:
    m.book.load_snapshot(*book)
    m.after_message(event_ms)


# -- live: the monotonic clock -------------------------------------------------------------

@pytest.mark.parametrize("step_ms", [DAY_MS, -DAY_MS])
def test_live_event_a_day_off_fires_and_then_a_crash_is_still_alerted(step_ms: int) -> None:
    cooldown_s = 0.2
    m, alerts = market(cooldown_s)
    message(m, CRASH, wall_ms() + step_ms)  # one badly stamped event
    message(m, CALM, wall_ms())            # re-armed
    time.sleep(cooldown_s + 0.05)          # the cooldown passes on the local clock
    message(m, CRASH, wall_ms())
    assert [a.severity for a in alerts] == ["extreme", "extreme"]
    assert alerts[0].event_ms - alerts[1].event_ms == pytest.approx(step_ms, abs=60_000)  # kept for display
    assert m.clock_skew == 1


def test_live_venue_clock_a_day_behind_after_an_alert_does_not_silence_the_market() -> None:
    # The venue's clock steps back a day after an alert: every later event
    # is stamped in "the past".  On event time that was 24 h of cooldown.
    cooldown_s = 0.2
    m, alerts = market(cooldown_s)
    message(m, CRASH, wall_ms())
    message(m, CALM, wall_ms() - DAY_MS)
    time.sleep(cooldown_s + 0.05)
    message(m, CRASH, wall_ms() - DAY_MS)
    assert len(alerts) == 2 and m.clock_skew == 2


def test_live_persistence_runs_on_the_local_clock_not_on_stamps() -> None:
    # An event stamped a day back cannot count as a day of persistence.
    m, alerts = market(min_persistence_ms=500)
    message(m, CRASH, wall_ms() - DAY_MS)
    message(m, CRASH, wall_ms())
    assert alerts == []
    time.sleep(0.55)
    message(m, CRASH, wall_ms())
    assert len(alerts) == 1


def test_live_state_and_clock_are_monotonic_ms() -> None:
    m, _ = market(cooldown_s=1.0)  # long enough to read "cooldown" even on a loaded machine
    before = time.monotonic() * 1000
    now = m.clock_ms()
    assert before - 1 <= now <= time.monotonic() * 1000 + 1
    message(m, CRASH, wall_ms() + DAY_MS)
    assert m.state() == "alerting"
    message(m, CALM, wall_ms())
    assert m.state() == "cooldown"
    assert abs(m.detector.last_alert_ms - m.clock_ms()) < 60_000  # local, not the stamp a day ahead
    time.sleep(1.05)
    assert m.state() == "armed"


def test_live_clock_skew_counts_against_the_wall_clock() -> None:
    m, _ = market()
    assert m.clock_skew_ms == DEFAULT_CLOCK_SKEW_MS == 5_000
    for offset_ms in (0, 3_000, -3_000, 4_000, -4_000):
        message(m, CALM, wall_ms() + offset_ms)
    assert m.clock_skew == 0
    for offset_ms in (7_000, -7_000, DAY_MS, -DAY_MS):
        message(m, CALM, wall_ms() + offset_ms)
    assert m.clock_skew == 4 and m.messages == 9
    tight, _ = market(clock_skew_s=1.0)
    assert tight.clock_skew_ms == 1_000
    message(tight, CALM, wall_ms() + 3_000)
    assert tight.clock_skew == 1


def test_a_run_of_skewed_events_is_logged_once_and_counted_in_full(caplog) -> None:
    m, _ = market()
    with caplog.at_level("WARNING", logger="sentrycoin.market"):
        for _ in range(3):
            message(m, CALM, wall_ms() + DAY_MS)       # a venue clock a day ahead: one run
        message(m, CALM, wall_ms())
        message(m, CALM, wall_ms() - DAY_MS)           # a new run, within a minute: counted, not logged
    warnings = [r.getMessage() for r in caplog.records if r.name == "sentrycoin.market"]
    assert len(warnings) == 1 and m.clock_skew == 4
    assert "binance BTC-USDT: event time +86" in warnings[0] and "counted in clock_skew" in warnings[0]


def test_only_the_first_skewed_event_of_a_run_leaves_c() -> None:
    class Counting(MarketCore):
        __slots__ = ("runs",)

        def _on_clock_skew(self, event_ms: int, recv_ms: int) -> None:
            self.runs.append(event_ms - recv_ms)

    m = Counting(OrderBook(depth=5), ImbalanceDetector(), clock=SourceClock(0))
    m.runs = []
    for event_ms in (DAY_MS, DAY_MS, DAY_MS, 0, -6_000, -6_000, 5_000):
        m.after_message(event_ms)
    assert m.runs == [DAY_MS, -6_000] and m.clock_skew == 5


# -- the Cython Binance path -----------------------------------------------------------------

def depth_frame(U: int, u: int, E: int, asks_qty: str) -> bytes:
    return (b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":%d,"s":"BTCUSDT","U":%d,"u":%d,'
            b'"b":[],"a":[["101.0","%s"]]}}' % (E, U, u, asks_qty.encode()))


def test_cython_take_path_counts_skew_and_decides_on_the_local_clock() -> None:
    cooldown_s = 0.2
    m, alerts = market(cooldown_s)
    m.book.load_snapshot(*CALM)
    st = ChainState(m)
    st.synced, st.last_u = True, 0
    routes = {"BTCUSDT": st}
    p = DepthParser()
    assert p.take(depth_frame(1, 1, wall_ms() + DAY_MS, "30"), routes, False)  # crash, stamped +1 day
    assert p.take(depth_frame(2, 2, wall_ms(), "10"), routes, False)           # calm
    time.sleep(cooldown_s + 0.05)
    assert p.take(depth_frame(3, 3, wall_ms(), "30"), routes, False)           # crash again
    assert [a.severity for a in alerts] == ["warning", "warning"] and m.messages == 3  # ratio 30 / 10
    assert m.clock_skew == 1


# -- a source's clock: replay and simulation ---------------------------------------------------

def test_source_clock_decides_and_skew_is_measured_against_it() -> None:
    clock = SourceClock(1_000_000)
    m, alerts = market(300.0, clock=clock)
    assert m.clock_ms() == 1_000_000
    message(m, CRASH, 1_000_000 + DAY_MS)          # stamped a day ahead: alert, skew
    clock.now_ms += 1_000
    message(m, CALM, 1_001_000 + 5_000)            # exactly at the bound: not skew
    clock.now_ms += 298_999
    assert m.state() == "cooldown"
    message(m, CRASH, clock.now_ms - 5_001)         # 1 ms short of the cooldown (local time): silent
    assert len(alerts) == 1 and m.state() == "cooldown"
    clock.now_ms += 1
    assert m.state() == "armed"
    message(m, CRASH, clock.now_ms)                # 300 s after the first, on the source clock
    assert len(alerts) == 2 and m.state() == "alerting"
    assert m.clock_skew == 2


T0 = 1_700_000_000_000


def skewed_recording(tmp_path) -> list:
    """A recording whose event times jump a day ahead, then a day back."""
    enc = msgspec.json.encode

    def frame(U: int, E: int, bids: list, asks: list) -> bytes:
        return enc({"stream": "btcusdt@depth@100ms", "data": {
            "e": "depthUpdate", "E": E, "s": "BTCUSDT", "U": U, "u": U,
            "b": [[str(p), str(q)] for p, q in bids], "a": [[str(p), str(q)] for p, q in asks]}})

    t0 = T0
    header = Header(venue="binance", symbols=["BTC-USDT"], depth=5)
    with RecordingWriter(tmp_path, header, prefix="skew") as w:
        w.snapshot("binance", "BTC-USDT", t0, enc({"lastUpdateId": 9, "bids": [["100.0", "10"]], "asks": [["101.0", "10"]]}))
        w.frame("binance", 0, t0 + 100, frame(10, t0 + 100 + DAY_MS, [(100.0, 1)], [(101.0, 30)]))  # +1 day: alert
        w.frame("binance", 0, t0 + 200, frame(11, t0 + 200, [(100.0, 10)], [(101.0, 10)]))          # calm
        w.frame("binance", 0, t0 + 300, frame(12, t0 + 300 - DAY_MS, [(100.0, 1)], []))              # -1 day, in cooldown
        w.frame("binance", 0, t0 + 400, frame(13, t0 + 400, [(100.0, 10)], []))
        w.frame("binance", 0, t0 + 300_100, frame(14, t0 + 300_100, [(100.0, 1)], []))              # cooldown over
    return w.files


def test_replay_decides_on_recorded_receive_time_and_counts_skew(tmp_path) -> None:
    t0 = T0
    summary = replay_files(skewed_recording(tmp_path), detector=DetectorSettings(cooldown_s=300))
    (m,) = summary.markets
    assert m.clock is not None and m.clock.now_ms == t0 + 300_100
    assert [(a.event_ms - t0, a.severity) for a in summary.alerts] == [(100 + DAY_MS, "extreme"), (300_100, "extreme")]
    assert m.clock_skew == 2 and m.messages == 5


def test_backtest_of_a_recording_decides_as_its_replay(tmp_path) -> None:
    # The backtest re-runs the detector over the recorded series: on the
    # clock the replay decided on, so its alerts are the replay's.
    from sentrycoin.research.backtest import detect, record_replay

    files = skewed_recording(tmp_path)
    settings = DetectorSettings(cooldown_s=300)
    replayed = replay_files(files, detector=settings).alerts
    series = record_replay(files)[0]["BTC-USDT"]
    assert series.clock_ms is not None and series.clock_ms[-1] == T0 + 300_100
    assert detect(series, settings) == [(a.event_ms, 3) for a in replayed] and len(replayed) == 2


def test_tardis_replay_runs_on_local_timestamp(tmp_path) -> None:
    # Venue timestamps a day ahead of the local receive times: decisions and
    # skew follow local_timestamp.
    t = 1_700_000_000_000_000  # microseconds
    ahead = DAY_MS * 1000
    rows = ["exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"]
    rows += [f"binance,BTCUSDT,{t + ahead},{t},true,bid,100,10", f"binance,BTCUSDT,{t + ahead},{t},true,ask,101,10"]
    # Crash at +1 s, calm at +2 s, crash again at +301 s (the cooldown over, in local time).
    for local, bid, ask in ((t + 1_000_000, 1, 30), (t + 2_000_000, 10, 10), (t + 301_000_000, 1, 30)):
        rows += [f"binance,BTCUSDT,{local + ahead},{local},false,bid,100,{bid}",
                 f"binance,BTCUSDT,{local + ahead},{local},false,ask,101,{ask}"]
    path = tmp_path / "binance_incremental_book_L2_BTCUSDT.csv"
    path.write_text("\n".join(rows) + "\n")
    summary = replay_files([path], depth=3, detector=DetectorSettings(cooldown_s=300))
    (m,) = summary.markets
    assert [(a.event_ms - t // 1000) for a in summary.alerts] == [DAY_MS + 1_000, DAY_MS + 301_000]
    assert m.clock_skew == 4  # every message, snapshot included


def test_simulated_markets_run_on_simulated_time() -> None:
    from sentrycoin.sim.source import simulated_source

    src = simulated_source(["BTC-USDT", "ETH-USDT"], scenario="flash_crash", seed=1, realtime=False)
    assert all(m.clock is src.clock for m in src.markets)
    src.run_until(src.generator.start_ms + 5_000)
    assert src.clock.now_ms >= src.generator.start_ms + 4_000
    assert all(m.clock_ms() == src.clock.now_ms for m in src.markets)
    assert all(m.clock_skew == 0 and m.messages > 0 for m in src.markets)


# -- the setting ------------------------------------------------------------------------------

def test_clock_skew_s_setting_reaches_every_market() -> None:
    s = load_settings(env={"CLOCK_SKEW_S": "2.5", "EXCHANGE": "binance", "SYMBOLS": "BTC-USDT"})
    assert s.detector.clock_skew_s == 2.5 and s.redacted()["detector"]["clock_skew_s"] == 2.5
    (mc,) = s.markets
    assert Market(mc.exchange, mc.symbol, settings=mc.detector).clock_skew_ms == 2_500
    assert load_settings(env={}).detector.clock_skew_s == 5.0
    for bad in ("0", "-1", "inf", "soon"):
        with pytest.raises(ConfigError, match="(CLOCK_SKEW_S|clock_skew_s)"):
            load_settings(env={"CLOCK_SKEW_S": bad})
