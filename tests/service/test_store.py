"""AlertStore: outbox rows, delivery bookkeeping, history queries, outcomes."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import msgspec
import pytest

from sentrycoin.store import AlertStore, default_db_path, iso_utc
from tests.service.alert_doubles import make_event


@pytest.fixture
def store(tmp_path: Path):
    s = AlertStore(tmp_path / "sub" / "alerts.db")
    yield s
    s.close()


def test_insert_creates_alert_and_pending_delivery_per_notifier(store: AlertStore) -> None:
    rec = store.insert_alert(make_event(), ["console", "telegram"], created_ms=1000)
    assert rec.id == 1 and rec.symbol == "BTC-USDT" and rec.created_ms == 1000
    assert store.delivery_state(rec.id, "console") == "pending"
    assert store.delivery_state(rec.id, "telegram") == "pending"
    assert store.delivery_state(rec.id, "webhook") is None
    assert [r.id for r in store.pending("telegram")] == [1]
    assert store.pending_count() == 2


def test_wal_mode_and_parent_dir_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "alerts.db"
    s = AlertStore(path)
    try:
        assert path.exists()
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        s.close()


def test_recent_shape_newest_first_and_json_ready(store: AlertStore) -> None:
    a = store.insert_alert(make_event(event_ms=1_000), ["console", "telegram"])
    b = store.insert_alert(make_event(event_ms=3_000, symbol="ETH-USDT", severity="warning"), ["console", "telegram"])
    store.mark_delivered(a.id, "console", now_ms=5_000)
    store.record_attempt(a.id, "telegram", error="HTTP 500", state="pending")
    store.mark_failed(b.id, "telegram", "configuration error")
    rows = store.recent()
    assert [r["id"] for r in rows] == [b.id, a.id]
    first = rows[1]
    assert set(first) >= {
        "id", "exchange", "symbol", "source", "severity", "ratio", "danger_ratio", "bid_volume", "ask_volume",
        "best_bid", "best_ask", "depth", "event_ms", "time", "deliveries", "outcome",
    }
    assert first["time"] == "1970-01-01T00:00:01.000Z"
    assert first["deliveries"]["console"] == {"state": "delivered", "attempts": 1, "error": None, "delivered_ms": 5000,
                                              "delivered_by": None}
    assert first["deliveries"]["telegram"] == {"state": "pending", "attempts": 1, "error": "HTTP 500",
                                               "delivered_ms": None, "delivered_by": None}
    assert first["episode_id"] == first["alert_key"] == "binance:BTC-USDT:critical:1000"
    assert rows[0]["deliveries"]["telegram"]["state"] == "failed"
    assert first["outcome"] is None
    msgspec.json.encode(rows)  # must be encodable as-is


def test_recent_filters(store: AlertStore) -> None:
    for i, sym in enumerate(["BTC-USDT", "ETH-USDT", "BTC-USDT", "SOL-USDT"]):
        store.insert_alert(make_event(symbol=sym, event_ms=1000 * (i + 1)), ["console"])
    assert [r["event_ms"] for r in store.recent(symbol="BTC-USDT")] == [3000, 1000]
    assert [r["event_ms"] for r in store.recent(since_ms=2500)] == [4000, 3000]
    assert [r["event_ms"] for r in store.recent(limit=2)] == [4000, 3000]
    assert store.recent(symbol="DOGE-USDT") == []


def test_non_finite_numbers_become_null(store: AlertStore) -> None:
    store.insert_alert(make_event(ratio=math.inf, best_bid=math.nan), ["console"])
    row = store.recent()[0]
    assert row["ratio"] is None and row["best_bid"] is None
    rec = store.pending("console")[0]
    assert math.isnan(rec.best_bid) and math.isinf(rec.ratio)


def test_delivered_is_never_downgraded(store: AlertStore) -> None:
    rec = store.insert_alert(make_event(), ["telegram"])
    store.mark_delivered(rec.id, "telegram")
    store.mark_failed(rec.id, "telegram", "late failure")
    assert store.delivery_state(rec.id, "telegram") == "delivered"
    assert store.pending("telegram") == []


def test_pending_is_oldest_first_and_paged(store: AlertStore) -> None:
    ids = [store.insert_alert(make_event(event_ms=i), ["t"]).id for i in range(5)]
    store.mark_delivered(ids[1], "t")
    assert [r.id for r in store.pending("t", limit=2)] == [ids[0], ids[2]]
    assert [r.id for r in store.pending("t", after_id=ids[2])] == [ids[3], ids[4]]


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    s = AlertStore(path)
    rec = s.insert_alert(make_event(), ["telegram"])
    s.close()
    s2 = AlertStore(path)
    try:
        assert [r.id for r in s2.pending("telegram")] == [rec.id]
        assert s2.get_alert(rec.id) == rec
    finally:
        s2.close()


def test_bad_state_rejected(store: AlertStore) -> None:
    rec = store.insert_alert(make_event(), ["t"])
    with pytest.raises(ValueError):
        store.record_attempt(rec.id, "t", error=None, state="sent")


def test_outcome_roundtrip_and_summary(store: AlertStore) -> None:
    drops = [0.5, 1.5, 2.5, None]  # None: 5 min not yet observed
    for i, drop in enumerate(drops):
        rec = store.insert_alert(make_event(event_ms=i), ["t"])
        store.save_outcome(rec.id, {
            "complete": drop is not None, "start_ms": 0, "ref_mid": 100.0,
            "max_drop_5m_pct": drop, "lead_to_low_5m_s": (10.0 * (i + 1)) if drop is not None else None,
            "lead_to_low_s": 100.0 * (i + 1) if drop is not None else None, "samples": 3,
        })
    s = store.outcome_summary()
    assert s["alerts_total"] == 4 and s["alerts_counted"] == 3
    assert s["drop_1pct_share"] == pytest.approx(2 / 3)
    assert s["drop_2pct_share"] == pytest.approx(1 / 3)
    assert s["median_lead_to_low_s"] == pytest.approx(20.0)
    assert s["median_lead_to_low_15m_s"] == pytest.approx(200.0)
    out = store.recent(limit=10)[-1]["outcome"]
    assert out["complete"] is True and out["max_drop_5m_pct"] == 0.5 and out["samples"] == 3


def test_summary_empty(store: AlertStore) -> None:
    s = store.outcome_summary()
    assert s["alerts_counted"] == 0 and s["drop_1pct_share"] is None and s["median_lead_to_low_s"] is None


def test_prune_cascades_and_keeps_pending_alerts(store: AlertStore) -> None:
    old = store.insert_alert(make_event(event_ms=1), ["t"], created_ms=1)
    old_pending = store.insert_alert(make_event(event_ms=2), ["t"], created_ms=2)
    store.insert_alert(make_event(event_ms=10), ["t"], created_ms=10)
    store.mark_delivered(old.id, "t")
    store.save_outcome(old.id, {"complete": True, "samples": 1})
    assert store.prune(5) == 1  # the old pending one stays until delivered
    assert store.get_alert(old.id) is None and store.get_outcome(old.id) is None
    assert store.get_alert(old_pending.id) is not None and store.pending_count() == 2
    assert store._db.execute("SELECT COUNT(*) FROM deliveries WHERE alert_id = ?", (old.id,)).fetchone()[0] == 0


def test_default_db_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "sentrycoin" / "alerts.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_db_path() == tmp_path / "home" / ".local" / "share" / "sentrycoin" / "alerts.db"


def test_iso_utc() -> None:
    assert iso_utc(1_764_145_310_123) == "2025-11-26T08:21:50.123Z"


def test_other_connection_sees_committed_outbox(tmp_path: Path) -> None:
    """Rows are committed at insert time, not at close (what a crash would lose)."""
    path = tmp_path / "alerts.db"
    s = AlertStore(path)
    try:
        s.insert_alert(make_event(), ["telegram"])
        other = sqlite3.connect(path)
        assert other.execute("SELECT COUNT(*) FROM deliveries WHERE state='pending'").fetchone()[0] == 1
        other.close()
    finally:
        s.close()


def test_mark_suppressed_only_settles_pending_rows(store: AlertStore) -> None:
    rec = store.insert_alert(make_event(), ["telegram", "webhook"], created_ms=1000)
    store.mark_delivered(rec.id, "webhook", now_ms=1500)
    store.mark_suppressed(rec.id, "telegram", "sent by another replica", now_ms=2000)
    store.mark_suppressed(rec.id, "webhook", "sent by another replica", now_ms=2000)  # already delivered
    assert store.delivery_state(rec.id, "telegram") == "suppressed"
    assert store.delivery_state(rec.id, "webhook") == "delivered"
    assert store.pending("telegram") == [] and store.pending_count() == 0
    store.mark_delivered(rec.id, "telegram", now_ms=3000)  # a send that did happen still wins
    assert store.delivery_state(rec.id, "telegram") == "delivered"


_V1_DELIVERIES = """
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, exchange TEXT NOT NULL, symbol TEXT NOT NULL,
    source TEXT NOT NULL, severity TEXT NOT NULL, ratio REAL, danger_ratio REAL, bid_volume REAL,
    ask_volume REAL, best_bid REAL, best_ask REAL, depth INTEGER NOT NULL, event_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL);
CREATE TABLE deliveries (
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    notifier TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, delivered_ms INTEGER, updated_ms INTEGER,
    PRIMARY KEY (alert_id, notifier)) WITHOUT ROWID;
CREATE INDEX deliveries_pending ON deliveries (notifier, alert_id) WHERE state = 'pending';
INSERT INTO alerts VALUES (1, 'binance', 'BTC-USDT', 'live', 'warning', 3.0, 2.5, 1.0, 3.0, 100.0,
                           100.5, 50, 1000, 1001);
INSERT INTO deliveries VALUES (1, 'telegram', 'delivered', 1, NULL, 1100, 1100);
INSERT INTO deliveries VALUES (1, 'webhook', 'pending', 2, 'HTTP 502', NULL, 1200);
PRAGMA user_version = 1;
"""


def test_schema_v1_database_is_upgraded_in_place_keeping_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(_V1_DELIVERIES)
    db.close()
    s = AlertStore(path)
    try:
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == 3
        assert s.delivery_state(1, "telegram") == "delivered"
        assert s.recent()[0]["episode_id"] == "row-1"  # never sent with an episode id
        assert [r.id for r in s.pending("webhook")] == [1]  # the pending index still serves the outbox
        s.mark_suppressed(1, "webhook", "sent by another replica")
        assert s.recent()[0]["deliveries"]["webhook"]["state"] == "suppressed"
        tables = {r[0] for r in s._db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
        assert "deliveries_v1" not in tables and "deliveries_pending" in tables
    finally:
        s.close()
    s = AlertStore(path)  # opening a v3 database again changes nothing
    try:
        assert s.delivery_state(1, "webhook") == "suppressed"
    finally:
        s.close()


# -- v3: alert keys, snapshots, paging, corrupt files ------------------------------------

from sentrycoin.store import (  # noqa: E402
    AlertRecord,
    DeliveryRow,
    StoreUnwritable,
    check_writable,
    episode_id_of,
    store_problem_text,
)


def test_episode_id_is_stable_and_distinct() -> None:
    a = AlertRecord.from_event(make_event(), id=None, created_ms=1)
    again = AlertRecord.from_event(make_event(), id=None, created_ms=99)  # a retry / restart
    other = AlertRecord.from_event(make_event(event_ms=1_764_145_310_124), id=None, created_ms=1)
    eth = AlertRecord.from_event(make_event(symbol="ETH-USDT"), id=None, created_ms=1)
    assert a.episode_id == again.episode_id == a.alert_key == episode_id_of("binance", "BTC-USDT", "critical",
                                                                           1_764_145_310_123)
    assert len({a.episode_id, other.episode_id, eth.episode_id}) == 3


def test_save_alert_is_an_idempotent_snapshot_that_never_downgrades(store: AlertStore) -> None:
    rec = AlertRecord.from_event(make_event(), id=None, created_ms=1000)
    first = store.save_alert(rec, {"t": DeliveryRow(updated_ms=1000), "w": DeliveryRow(updated_ms=1000)})
    delivered = DeliveryRow(state="delivered", attempts=2, delivered_ms=2000, updated_ms=2000, delivered_by="r1")
    assert store.save_alert(rec, {"t": delivered}) == first  # same alert_key: same row
    assert store.save_alert(rec, {"t": DeliveryRow(state="pending", attempts=1, updated_ms=1500)}) == first
    d = store.recent()[0]["deliveries"]
    assert d["t"] == {"state": "delivered", "attempts": 2, "error": None, "delivered_ms": 2000, "delivered_by": "r1"}
    assert d["w"]["state"] == "pending" and store.count() == 1
    canonical = AlertRecord.from_event(make_event(), id=None, created_ms=1000)
    canonical = msgspec.structs.replace(canonical, episode_id="binance:BTC-USDT:critical:999")
    store.save_alert(canonical, {})
    assert store.recent()[0]["episode_id"] == "binance:BTC-USDT:critical:999"
    (back, rows), = store.pending_alerts()
    assert back.id == first and back.alert_key == rec.alert_key and set(rows) == {"t", "w"}
    assert rows["t"].state == "delivered" and rows["w"].state == "pending"


def test_recent_page_walks_every_row_once_with_a_cursor(store: AlertStore) -> None:
    for i in range(7):
        store.insert_alert(make_event(event_ms=1000 + (i // 2), symbol=f"S{i}-USDT"), ["t"])  # equal times too
    seen, cursor = [], None
    while True:
        rows, cursor = store.recent_page(limit=3, before=cursor)
        seen += [r["id"] for r in rows]
        if cursor is None:
            break
    assert sorted(seen) == list(range(1, 8)) and len(seen) == 7
    assert [r["id"] for r in store.recent(limit=7)] == seen  # same order as one big page


def test_recent_uses_the_indexes(store: AlertStore) -> None:
    plans = []
    for where in ("symbol = 'X-Y' AND event_ms >= 1", "event_ms >= 1"):
        plan = store._db.execute(f"EXPLAIN QUERY PLAN SELECT id FROM alerts WHERE {where} "
                                 "ORDER BY event_ms DESC, id DESC LIMIT 10").fetchall()
        plans.append(" ".join(str(r[-1]) for r in plan))
    assert "alerts_symbol_event" in plans[0] and "alerts_event" in plans[1]
    assert all("SCAN alerts" not in p or "USING INDEX" in p for p in plans)


def test_corrupt_file_is_moved_aside_and_a_fresh_store_starts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "alerts.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    s = AlertStore(path)
    try:
        assert s.moved_aside is not None and Path(s.moved_aside).name.startswith("alerts.db.corrupt-")
        assert Path(s.moved_aside).read_bytes().startswith(b"this is not sqlite")  # kept, never deleted
        assert s.count() == 0 and s.insert_alert(make_event(), ["t"]).id == 1
        assert "corrupt" in caplog.text and "FRESH" in caplog.text
    finally:
        s.close()


def test_unwritable_path_is_one_clear_line(tmp_path: Path) -> None:
    import os
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "alerts.db").write_bytes(b"")
    os.chmod(ro / "alerts.db", 0o444)
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that ignores file permissions (root)")
        with pytest.raises(StoreUnwritable) as info:
            check_writable(ro / "alerts.db")
        assert str(ro / "alerts.db") in str(info.value) and "\n" not in str(info.value)
    finally:
        os.chmod(ro, 0o755)

def test_unwritable_path_errors_name_what_the_user_wrote(tmp_path: Path) -> None:
    with pytest.raises(StoreUnwritable, match="is a directory"):
        check_writable(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnwritable, match=f"SENTRY_DB={blocker}/alerts.db: cannot create directory"):
        check_writable(blocker / "alerts.db")


def test_store_problem_names_disk_full_and_locked() -> None:
    import errno
    assert store_problem_text(sqlite3.OperationalError("database or disk is full")) == "alert store: disk is full"
    assert store_problem_text(OSError(errno.ENOSPC, "No space left on device")) == "alert store: disk is full"
    assert store_problem_text(sqlite3.OperationalError("database is locked")) == "alert store: database is locked"
    assert store_problem_text(sqlite3.OperationalError("attempt to write a readonly database")) == \
        "alert store: database is read-only"
