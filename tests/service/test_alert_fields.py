"""One definition of an alert's fields (sentrycoin/alert_fields.py), and every place
users see them: the webhook body, /status's last_alert, the alerts table and /alerts.

The names are contracts, pinned here as literals: a field added to, renamed in or
dropped from AlertFields, or a surface that stops deriving from it, fails a test.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import msgspec

from sentrycoin.alert_fields import ALERT_FIELDS, BOOK_NUMBER_FIELDS, AlertFields, alert_fields_of
from sentrycoin.alerts.webhook import WebhookPayload, payload_of
from sentrycoin.market import AlertEvent
from sentrycoin.server.status import alert_json
from sentrycoin.store import AlertRecord, AlertStore
from tests.service.alert_doubles import make_event

#: What every alert carries, in order (webhook receivers, /status readers and the
#: database all depend on these names).
CONTRACT = ("exchange", "symbol", "source", "severity", "ratio", "danger_ratio", "bid_volume", "ask_volume",
            "best_bid", "best_ask", "depth", "event_ms")
WEBHOOK_OWN = ("episode_id", "mid_price", "time", "simulated", "status_url", "possible_duplicate")
TABLE_COLUMNS = ("id", *CONTRACT, "created_ms", "alert_key", "episode_id")


def test_the_shared_fields_are_the_contract() -> None:
    assert ALERT_FIELDS == CONTRACT
    assert BOOK_NUMBER_FIELDS == ("ratio", "danger_ratio", "bid_volume", "ask_volume", "best_bid", "best_ask")
    for kind in (AlertEvent, AlertRecord, WebhookPayload):
        assert issubclass(kind, AlertFields)
        assert kind.__struct_fields__[:len(CONTRACT)] == CONTRACT, kind


def test_webhook_body_is_the_fields_and_its_own(tmp_path: Path) -> None:
    record = AlertRecord.from_event(make_event(source="simulated"), id=7, created_ms=1)
    body = msgspec.json.decode(msgspec.json.encode(payload_of(record, "https://x.example/")))
    assert set(body) == set(CONTRACT) | set(WEBHOOK_OWN)
    assert {name: body[name] for name in CONTRACT} == alert_fields_of(make_event(source="simulated"))
    assert body["simulated"] is True and body["status_url"] == "https://x.example/status"


def test_status_alert_object_is_every_event_field() -> None:
    event = make_event(bid_volume=0.0, ratio=math.inf)
    shown = alert_json(event)
    assert shown is not None and tuple(shown) == (*CONTRACT, "size_unit")
    assert shown["ratio"] is None and shown["bid_volume"] == 0.0 and shown["size_unit"] == "coins"
    assert shown["event_ms"] == event.event_ms and shown["depth"] == event.depth


def test_alerts_table_and_history_hold_the_fields(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    store = AlertStore(db)
    try:
        event = make_event(best_bid=math.nan)  # NaN in, NULL stored, NaN back
        rec = store.insert_alert(event, ["console"], created_ms=1000)
        assert rec.id is not None
        back = store.get_alert(rec.id)
        assert back is not None
        got, want = alert_fields_of(back), alert_fields_of(event)
        assert math.isnan(got.pop("best_bid")) and math.isnan(want.pop("best_bid"))
        assert got == want
        (row,) = store.recent(limit=5)  # /alerts: the columns, then time, deliveries, outcome
        assert tuple(row)[:len(TABLE_COLUMNS)] == TABLE_COLUMNS
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        columns = tuple(r[1] for r in conn.execute("PRAGMA table_info(alerts)"))
    assert columns == TABLE_COLUMNS
