"""SQLite alert history and delivery outbox.

Every alert is inserted here *before* any notifier sees it, together with one
`pending` delivery row per notifier.  Notifiers then flip their own row to
`delivered` (or `failed` on a permanent error, or `suppressed` when another
replica of an HA deployment sent the alert).  Because the outbox row is
committed first, a crash, a full in-memory queue or a notifier outage loses
nothing: on the next start (or the next sweep) pending rows are sent again.

The database is stdlib `sqlite3` in WAL mode with `synchronous=NORMAL`: a
commit is an append to the WAL (no fsync), which survives the process being
killed (`kill -9`) and costs tens of microseconds on the hot path; only a
power loss can drop the last commits.

This class is synchronous: the running monitor never calls it on the event
loop.  `sentrycoin.alerts.outbox.StoreWorker` owns one instance in a writer
thread and another (a second connection: WAL lets it read while the writer
writes) in a reader thread.  Each instance still holds a lock around its
connection so tests and tools may share one across threads.

Identity.  `alert_key` is the local identity of an alert (unique in one
database, known before the row exists, so an alert delivered from memory
while the database is unavailable is written under the same key later);
`episode_id` is what receivers see (webhook `Idempotency-Key`, JSON body,
/alerts): the same on every replica and every retry of one alert (see
`episode_id_of` and sentrycoin/ha/coordinator.py).  Nothing secret is ever
stored: delivery errors are redacted by the notifiers first.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from sentrycoin.alert_fields import ALERT_FIELDS, BOOK_NUMBER_FIELDS, AlertFields, alert_fields_of

log = logging.getLogger("sentrycoin.store")

#: `suppressed`: not sent by this replica because another replica of an HA
#: deployment claimed the alert's episode and sent it (sentrycoin/ha).
DELIVERY_STATES = ("pending", "delivered", "failed", "suppressed")

#: Horizons (seconds after the alert) at which the outcome records the mid price.
OUTCOME_HORIZONS_S: tuple[int, ...] = (10, 30, 60, 300, 900)

_SCHEMA_VERSION = 3

_SCHEMA_TEMPLATE = """
CREATE TABLE IF NOT EXISTS alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    exchange     TEXT    NOT NULL,
    symbol       TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    ratio        REAL,
    danger_ratio REAL,
    bid_volume   REAL,
    ask_volume   REAL,
    best_bid     REAL,
    best_ask     REAL,
    depth        INTEGER NOT NULL,
    event_ms     INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL,
    alert_key    TEXT,
    episode_id   TEXT
);
-- /alerts filters on symbol and event time and pages newest first
-- (event_ms DESC, id DESC: the rowid is the index's last column).
CREATE INDEX IF NOT EXISTS alerts_event ON alerts (event_ms);
CREATE INDEX IF NOT EXISTS alerts_symbol_event ON alerts (symbol, event_ms);
-- retention pruning and outcome resumption select on created_ms.
CREATE INDEX IF NOT EXISTS alerts_created ON alerts (created_ms);

{deliveries}

CREATE TABLE IF NOT EXISTS outcomes (
    alert_id         INTEGER PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    complete         INTEGER NOT NULL DEFAULT 0,
    start_ms         INTEGER,
    ref_mid          REAL,
    mid_10s          REAL,
    mid_30s          REAL,
    mid_60s          REAL,
    mid_300s         REAL,
    mid_900s         REAL,
    max_drop_5m_pct  REAL,
    low_5m_mid       REAL,
    low_5m_ms        INTEGER,
    lead_to_low_5m_s REAL,
    max_drop_pct     REAL,
    low_mid          REAL,
    low_ms           INTEGER,
    lead_to_low_s    REAL,
    samples          INTEGER NOT NULL DEFAULT 0,
    updated_ms       INTEGER
);
"""

# The deliveries table and its index, also used by the v1 -> v2 migration.
_DELIVERIES_DDL = (
    """CREATE TABLE IF NOT EXISTS deliveries (
    alert_id     INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    notifier     TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'suppressed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    delivered_ms INTEGER,
    updated_ms   INTEGER,
    delivered_by TEXT,
    PRIMARY KEY (alert_id, notifier)
) WITHOUT ROWID""",
    # The outbox scan only ever looks at pending rows of one notifier.
    """CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (notifier, alert_id)
    WHERE state = 'pending'""",
)

_SCHEMA = _SCHEMA_TEMPLATE.replace("{deliveries}", ";\n".join(_DELIVERIES_DDL) + ";")

# Created after the v2 -> v3 migration added the columns they index.
_V3_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS alerts_key ON alerts (alert_key)",
    "CREATE INDEX IF NOT EXISTS alerts_episode ON alerts (episode_id)",
)

#: Final delivery states: the row leaves the outbox.
FINAL_STATES = frozenset({"delivered", "failed", "suppressed"})

#: The alerts table's columns, in SELECT order: the row id, the shared alert fields
#: (alert_fields.py), then the record's own.  The CREATE TABLE above spells them out
#: (a schema change is a migration); test_alert_fields.py checks the two agree.
_ALERT_COLUMNS = ("id", *ALERT_FIELDS, "created_ms", "alert_key", "episode_id")
_INSERT_ALERT = (f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS[1:])}) "
                 f"VALUES ({', '.join('?' for _ in _ALERT_COLUMNS[1:])})")

_OUTCOME_COLUMNS = (
    "complete", "start_ms", "ref_mid", "mid_10s", "mid_30s", "mid_60s", "mid_300s", "mid_900s",
    "max_drop_5m_pct", "low_5m_mid", "low_5m_ms", "lead_to_low_5m_s",
    "max_drop_pct", "low_mid", "low_ms", "lead_to_low_s", "samples",
)


def episode_id_of(exchange: str, symbol: str, severity: str, event_ms: int) -> str:
    """The episode id a replica gives an alert it detected.

    Stable (derived from the alert, not from a row id: retries, restarts and
    an alert that never reached the database all get the same one) and
    distinct (one detector never alerts twice on a market and severity in one
    millisecond).  With several replicas the first one's id becomes the
    episode's for all of them (RedisCoordinator.join_episode).
    """
    return f"{exchange}:{symbol}:{severity}:{int(event_ms)}"


class AlertRecord(AlertFields, frozen=True, kw_only=True):
    """An alert as stored (and as handed to notifiers): AlertFields and its identities.

    `id` is the database row id, None while (or if) the row is not written:
    the running monitor identifies alerts by `alert_key` and hands notifiers
    the record before the database saw it.  `possible_duplicate` is set on a
    resend after an attempt whose outcome is unknown (the far end may have
    the first one): notifiers say so in the message.
    """

    id: int | None
    created_ms: int
    alert_key: str = ""
    episode_id: str = ""
    possible_duplicate: bool = False

    @property
    def mid_price(self) -> float | None:
        mid = (self.best_bid + self.best_ask) / 2.0
        return mid if math.isfinite(mid) and mid > 0 else None

    @property
    def time_iso(self) -> str:
        return iso_utc(self.event_ms)

    @classmethod
    def from_event(cls, event: AlertFields, *, id: int | None, created_ms: int) -> AlertRecord:
        """Build from a `sentrycoin.market.AlertEvent` (or any AlertFields)."""
        key = episode_id_of(event.exchange, event.symbol, event.severity, event.event_ms)
        fields = alert_fields_of(event)
        # Plain int/float whatever number types the event holds: the record is stored and encoded.
        fields.update({name: float(fields[name]) for name in BOOK_NUMBER_FIELDS})
        fields.update(depth=int(event.depth), event_ms=int(event.event_ms))
        return cls(**fields, id=id, created_ms=created_ms, alert_key=key, episode_id=key)


class DeliveryRow(msgspec.Struct, frozen=True):
    """One notifier's delivery of one alert, as the manager keeps it in memory
    and `save_alert` writes it (whole: writes are idempotent snapshots)."""

    state: str = "pending"
    attempts: int = 0
    error: str | None = None
    delivered_ms: int | None = None
    updated_ms: int | None = None
    #: Replica id of whoever sent it (this one, or the HA replica that did).
    delivered_by: str | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class StoreUnwritable(Exception):
    """SENTRY_DB cannot be created or written (a user mistake: one line, exit 2)."""


def store_problem_text(exc: BaseException) -> str:
    """What is wrong with the alert store, in words an operator acts on."""
    text = str(exc)
    low = text.lower()
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "disk is full" in low or "database or disk is full" in low:
        return "alert store: disk is full"
    if "locked" in low or "busy" in low:
        return "alert store: database is locked"
    if "readonly" in low or "read-only" in low or isinstance(exc, PermissionError):
        return "alert store: database is read-only"
    if "malformed" in low or "not a database" in low:
        return "alert store: database file is corrupt"
    if "unable to open" in low:
        return "alert store: cannot open the database file"
    return f"alert store: {type(exc).__name__}: {text}"[:200]


def check_writable(path: str | Path) -> None:
    """Raise StoreUnwritable (one clear line) unless SENTRY_DB can be created and written."""
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnwritable(f"SENTRY_DB={path}: cannot create directory {p.parent} ({exc.strerror})") from None
    if p.exists():
        if p.is_dir():
            raise StoreUnwritable(f"SENTRY_DB={path}: is a directory, not a database file")
        if not os.access(p, os.R_OK | os.W_OK):
            raise StoreUnwritable(f"SENTRY_DB={path}: file is not writable (permission denied)")
    # WAL needs to create -wal/-shm files next to the database.
    if not os.access(p.parent, os.W_OK | os.X_OK):
        raise StoreUnwritable(f"SENTRY_DB={path}: directory {p.parent} is not writable (permission denied)")


def _is_corrupt(exc: BaseException) -> bool:
    low = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and ("not a database" in low or "malformed" in low
                                                       or "file is encrypted" in low)


def iso_utc(ms: int) -> str:
    """Unix ms -> '2026-11-26T08:21:50.123Z'."""
    dt = datetime.fromtimestamp(ms / 1000.0, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_db_path(*, simulated: bool = False) -> Path:
    """Where the alert database lives unless SENTRY_DB says otherwise.

    $XDG_DATA_HOME/sentrycoin/alerts.db, falling back to
    ~/.local/share/sentrycoin/alerts.db (the XDG default).  The simulated
    market keeps its own, alerts-simulated.db beside it, so demo alerts (and
    their outcome tracking) never show up in a live session.
    """
    base = os.environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "sentrycoin" / ("alerts-simulated.db" if simulated else "alerts.db")


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: map them to None (SQLite already stores NaN as NULL)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _now_ms() -> int:
    return int(time.time() * 1000)


class AlertStore:
    """Alert history + per-notifier delivery outbox + outcomes, in one SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 2.0, read_only: bool = False) -> None:
        """Open (creating the file and schema) or, with `read_only`, attach a reader
        connection to an existing database (no DDL: the writer owns the schema).

        A file that is not a SQLite database (or whose header is malformed) is
        moved aside to `<path>.corrupt-<UTC time>` - never deleted - with a loud
        warning, and a fresh store is created in its place.
        """
        self.path = str(path)
        self.moved_aside: str | None = None
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.path = str(Path(self.path).expanduser())
        self._lock = threading.Lock()
        self._busy_timeout_s = busy_timeout_s
        if read_only:
            self._db = self._connect()
            self._closed = False
            return
        try:
            self._db = self._connect()
            self._prepare()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc) or self.path == ":memory:":
                raise
            self._db.close()
            self.moved_aside = self._move_aside(exc)
            self._db = self._connect()
            self._prepare()
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit; we open explicit transactions where
        # several statements must land together (alert + its delivery rows).
        return sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                               timeout=self._busy_timeout_s)

    def _prepare(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        elif version > _SCHEMA_VERSION:
            log.warning("alert database %s has schema v%d, newer than this program (v%d)",
                        self.path, version, _SCHEMA_VERSION)
        else:
            if version == 1:
                self._migrate_v1_to_v2()
                version = 2
            if version == 2:
                self._migrate_v2_to_v3()
        for statement in _V3_INDEXES:
            db.execute(statement)

    def _move_aside(self, exc: BaseException) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = f"{self.path}.corrupt-{stamp}"
        n = 1
        while os.path.exists(target):
            n += 1
            target = f"{self.path}.corrupt-{stamp}-{n}"
        os.replace(self.path, target)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.replace(self.path + suffix, target + suffix)
        log.warning("!!! alert database %s is corrupt (%s): moved aside to %s (kept, not deleted); "
                    "starting a FRESH alert store - alert history and undelivered alerts of the old "
                    "file are not in it !!!", self.path, exc, target)
        return target

    def _migrate_v2_to_v3(self) -> None:
        # v3 adds alert_key / episode_id (stable identities, see module doc)
        # and deliveries.delivered_by.  Old rows get keys from their row id:
        # they were never sent with an episode id.
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            cols = {r[1] for r in db.execute("PRAGMA table_info(alerts)")}
            if "alert_key" not in cols:
                db.execute("ALTER TABLE alerts ADD COLUMN alert_key TEXT")
            if "episode_id" not in cols:
                db.execute("ALTER TABLE alerts ADD COLUMN episode_id TEXT")
            dcols = {r[1] for r in db.execute("PRAGMA table_info(deliveries)")}
            if "delivered_by" not in dcols:
                db.execute("ALTER TABLE deliveries ADD COLUMN delivered_by TEXT")
            db.execute("UPDATE alerts SET alert_key = 'row-' || id WHERE alert_key IS NULL")
            db.execute("UPDATE alerts SET episode_id = alert_key WHERE episode_id IS NULL")
            db.execute("PRAGMA user_version=3")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLITE_FULL and friends already rolled back
                db.execute("ROLLBACK")
            raise
        log.info("alert database %s upgraded to schema v3 (episode ids, delivered_by)", self.path)

    def _migrate_v1_to_v2(self) -> None:
        # v2 adds the 'suppressed' delivery state.  SQLite cannot change a
        # CHECK constraint in place, so the deliveries table is rebuilt (rows
        # kept) in one transaction; a crash midway leaves v1 intact.
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("ALTER TABLE deliveries RENAME TO deliveries_v1")
            db.execute("DROP INDEX IF EXISTS deliveries_pending")
            for statement in _DELIVERIES_DDL:
                db.execute(statement)
            db.execute("INSERT INTO deliveries (alert_id, notifier, state, attempts, error, delivered_ms, "
                       "updated_ms) SELECT alert_id, notifier, state, attempts, error, "
                       "delivered_ms, updated_ms FROM deliveries_v1")
            db.execute("DROP TABLE deliveries_v1")
            db.execute("PRAGMA user_version=2")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLITE_FULL and friends already rolled back
                db.execute("ROLLBACK")
            raise
        log.info("alert database %s upgraded to schema v2 (delivery state 'suppressed')", self.path)

    def __repr__(self) -> str:
        return f"AlertStore({self.path!r})"

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # -- outbox ------------------------------------------------------------

    def insert_alert(self, event: AlertFields, notifiers: Iterable[str], *, created_ms: int | None = None) -> AlertRecord:
        """Store an alert and a pending delivery row per notifier, atomically."""
        created = _now_ms() if created_ms is None else created_ms
        rec = AlertRecord.from_event(event, id=None, created_ms=created)
        alert_id = self.save_alert(rec, {name: DeliveryRow(updated_ms=created) for name in notifiers})
        return msgspec.structs.replace(rec, id=alert_id)

    def save_alert(self, rec: AlertRecord, deliveries: Mapping[str, DeliveryRow]) -> int:
        """Write an alert and its delivery rows as they are now; returns the row id.

        Idempotent (keyed by `alert_key`): the manager writes whole snapshots,
        so a write that failed while the database was unavailable is simply
        written again, with the newer state, when it returns.  A `delivered`
        row is never downgraded (an older snapshot cannot undo a send)."""
        if not rec.alert_key:
            raise ValueError("save_alert needs an alert_key")
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT id FROM alerts WHERE alert_key = ?", (rec.alert_key,)).fetchone()
                if row is None:
                    cur = db.execute(
                        _INSERT_ALERT,
                        (*alert_fields_of(rec).values(), rec.created_ms, rec.alert_key,
                         rec.episode_id or rec.alert_key),
                    )
                    alert_id = int(cur.lastrowid)  # type: ignore[arg-type]
                else:
                    alert_id = int(row[0])
                    if rec.episode_id:
                        db.execute("UPDATE alerts SET episode_id = ? WHERE id = ?", (rec.episode_id, alert_id))
                db.executemany(
                    "INSERT INTO deliveries (alert_id, notifier, state, attempts, error, delivered_ms, updated_ms, "
                    "delivered_by) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (alert_id, notifier) DO UPDATE SET "
                    "state = excluded.state, attempts = MAX(attempts, excluded.attempts), error = excluded.error, "
                    "delivered_ms = COALESCE(excluded.delivered_ms, delivered_ms), updated_ms = excluded.updated_ms, "
                    "delivered_by = COALESCE(excluded.delivered_by, delivered_by) WHERE state != 'delivered'",
                    [(alert_id, name, d.state, d.attempts, d.error, d.delivered_ms, d.updated_ms, d.delivered_by)
                     for name, d in deliveries.items()],
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLITE_FULL and friends already rolled back
                    db.execute("ROLLBACK")
                raise
        return alert_id

    def pending_alerts(self, limit: int = 500, after_id: int = 0) -> list[tuple[AlertRecord, dict[str, DeliveryRow]]]:
        """Oldest-first alerts with at least one pending delivery, with all their rows
        (what a restarted manager takes back into memory)."""
        cols = ", ".join(_ALERT_COLUMNS)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {cols} FROM alerts WHERE id IN (SELECT DISTINCT alert_id FROM deliveries "
                "WHERE state = 'pending' AND alert_id > ? ORDER BY alert_id LIMIT ?) ORDER BY id",
                (after_id, limit),
            ).fetchall()
            if not rows:
                return []
            ids = [r[0] for r in rows]
            marks = ",".join("?" for _ in ids)
            by_alert: dict[int, dict[str, DeliveryRow]] = {i: {} for i in ids}
            for alert_id, name, state, attempts, error, delivered_ms, updated_ms, by in self._db.execute(
                "SELECT alert_id, notifier, state, attempts, error, delivered_ms, updated_ms, delivered_by "
                f"FROM deliveries WHERE alert_id IN ({marks})", ids,
            ):
                by_alert[alert_id][name] = DeliveryRow(state, attempts, error, delivered_ms, updated_ms, by)
        return [(self._record(r), by_alert[r[0]]) for r in rows]

    def get_alert(self, alert_id: int) -> AlertRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE id = ?", (alert_id,)
            ).fetchone()
        return self._record(row) if row else None

    def delivery_state(self, alert_id: int, notifier: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT state FROM deliveries WHERE alert_id = ? AND notifier = ?", (alert_id, notifier)
            ).fetchone()
        return row[0] if row else None

    def pending(self, notifier: str, limit: int = 500, after_id: int = 0) -> list[AlertRecord]:
        """Oldest-first undelivered alerts for one notifier (the outbox)."""
        cols = ", ".join(f"a.{c}" for c in _ALERT_COLUMNS)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {cols} FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
                "WHERE d.notifier = ? AND d.state = 'pending' AND d.alert_id > ? "
                "ORDER BY d.alert_id LIMIT ?",
                (notifier, after_id, limit),
            ).fetchall()
        return [self._record(r) for r in rows]

    def pending_count(self, notifier: str | None = None) -> int:
        with self._lock:
            if notifier is None:
                row = self._db.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'").fetchone()
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM deliveries WHERE state = 'pending' AND notifier = ?", (notifier,)
                ).fetchone()
        return int(row[0])

    def record_attempt(
        self,
        alert_id: int,
        notifier: str,
        *,
        error: str | None,
        state: str = "pending",
        now_ms: int | None = None,
    ) -> None:
        """Count one delivery attempt; `state` is 'delivered', 'failed' or still 'pending'."""
        if state not in DELIVERY_STATES:
            raise ValueError(f"bad delivery state {state!r}")
        now = _now_ms() if now_ms is None else now_ms
        delivered_ms = now if state == "delivered" else None
        with self._lock:
            # Never downgrade a delivered row: a late failure report for an
            # already-delivered alert must not make it look undelivered.
            self._db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, state = ?, error = ?, "
                "delivered_ms = COALESCE(?, delivered_ms), updated_ms = ? "
                "WHERE alert_id = ? AND notifier = ? AND state != 'delivered'",
                (state, error, delivered_ms, now, alert_id, notifier),
            )

    def mark_delivered(self, alert_id: int, notifier: str, *, now_ms: int | None = None) -> None:
        self.record_attempt(alert_id, notifier, error=None, state="delivered", now_ms=now_ms)

    def mark_failed(self, alert_id: int, notifier: str, error: str, *, now_ms: int | None = None) -> None:
        self.record_attempt(alert_id, notifier, error=error, state="failed", now_ms=now_ms)

    def mark_suppressed(self, alert_id: int, notifier: str, reason: str, *, now_ms: int | None = None) -> None:
        """Leave the outbox without a send: another replica delivered this alert.

        Only a pending row changes (a row this replica already delivered or
        failed keeps its state); no attempt is counted."""
        now = _now_ms() if now_ms is None else now_ms
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET state = 'suppressed', error = ?, updated_ms = ? "
                "WHERE alert_id = ? AND notifier = ? AND state = 'pending'",
                (reason, now, alert_id, notifier),
            )

    # -- outcomes ----------------------------------------------------------

    def save_outcome(self, alert_id: int, outcome: dict[str, Any], *, now_ms: int | None = None) -> None:
        """Insert or replace the (possibly partial) outcome of an alert."""
        values = [outcome.get(c) for c in _OUTCOME_COLUMNS]
        values[0] = 1 if outcome.get("complete") else 0
        values[-1] = int(outcome.get("samples") or 0)
        now = _now_ms() if now_ms is None else now_ms
        cols = ", ".join(_OUTCOME_COLUMNS)
        marks = ", ".join("?" for _ in _OUTCOME_COLUMNS)
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO outcomes (alert_id, {cols}, updated_ms) VALUES (?, {marks}, ?)",
                (alert_id, *values, now),
            )

    def save_outcome_for_key(self, alert_key: str, outcome: dict[str, Any], *, now_ms: int | None = None) -> None:
        """`save_outcome` for the alert stored under `alert_key` (no-op if it is not stored)."""
        with self._lock:
            row = self._db.execute("SELECT id FROM alerts WHERE alert_key = ?", (alert_key,)).fetchone()
        if row is not None:
            self.save_outcome(int(row[0]), outcome, now_ms=now_ms)

    def unfinished_outcomes(self, since_ms: int) -> list[tuple[AlertRecord, dict[str, Any] | None]]:
        """Alerts created at or after `since_ms` whose outcome is missing or incomplete."""
        cols = ", ".join(f"a.{c}" for c in _ALERT_COLUMNS)
        ocols = ", ".join(f"o.{c}" for c in _OUTCOME_COLUMNS)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {cols}, o.alert_id, {ocols} FROM alerts a LEFT JOIN outcomes o ON o.alert_id = a.id "
                "WHERE a.created_ms >= ? AND (o.alert_id IS NULL OR o.complete = 0) ORDER BY a.id",
                (since_ms,),
            ).fetchall()
        n = len(_ALERT_COLUMNS)
        return [
            (self._record(r[:n]), self._outcome_dict(r[n + 1:]) if r[n] is not None else None)
            for r in rows
        ]

    def get_outcome(self, alert_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(_OUTCOME_COLUMNS)} FROM outcomes WHERE alert_id = ?", (alert_id,)
            ).fetchone()
        return self._outcome_dict(row) if row else None

    def outcome_summary(
        self, *, source: str | None = None, symbol: str | None = None, window_s: int = 300
    ) -> dict[str, Any]:
        """How often alerts were followed by a real drop.

        Counts alerts whose first `window_s` (5 min) after the alert have been
        observed; reports the share followed by a >= 1 % and a >= 2 % drop of
        the mid price within that window, and the median time from the alert
        to the lowest mid price in that window (and in the full 15 min).
        """
        if window_s != 300:
            raise ValueError("only the 5 min window is stored")
        where = ["1=1"]
        args: list[Any] = []
        if source is not None:
            where.append("a.source = ?")
            args.append(source)
        if symbol is not None:
            where.append("a.symbol = ?")
            args.append(symbol)
        cond = " AND ".join(where)
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM alerts a WHERE {cond}", args).fetchone()[0]
            rows = self._db.execute(
                "SELECT o.max_drop_5m_pct, o.lead_to_low_5m_s, o.lead_to_low_s, o.complete "
                f"FROM outcomes o JOIN alerts a ON a.id = o.alert_id "
                f"WHERE {cond} AND o.max_drop_5m_pct IS NOT NULL",
                args,
            ).fetchall()
        counted = len(rows)
        drop1 = sum(1 for r in rows if r[0] >= 1.0)
        drop2 = sum(1 for r in rows if r[0] >= 2.0)
        leads_5m = [r[1] for r in rows if r[1] is not None]
        leads_15m = [r[2] for r in rows if r[3] and r[2] is not None]
        return {
            "alerts_total": int(total),
            "alerts_counted": counted,
            "window_s": window_s,
            "drop_1pct_share": (drop1 / counted) if counted else None,
            "drop_2pct_share": (drop2 / counted) if counted else None,
            "drop_1pct_count": drop1,
            "drop_2pct_count": drop2,
            "median_lead_to_low_s": statistics.median(leads_5m) if leads_5m else None,
            "median_lead_to_low_15m_s": statistics.median(leads_15m) if leads_15m else None,
        }

    # -- history for /alerts -------------------------------------------------

    def recent(self, limit: int = 100, symbol: str | None = None, since_ms: int | None = None) -> list[dict]:
        """Newest-first alerts as JSON-ready dicts, with deliveries and outcome."""
        return self.recent_page(limit, symbol, since_ms)[0]

    def recent_page(
        self,
        limit: int = 100,
        symbol: str | None = None,
        since_ms: int | None = None,
        before: tuple[int, int] | None = None,
    ) -> tuple[list[dict], tuple[int, int] | None]:
        """One page of `recent()`: rows strictly older than `before` = (event_ms, id)
        and the cursor of the next page (None on the last one).

        Keyset pagination on the (symbol,) event_ms indexes: a page costs the
        same at row 10 and at row 300,000 (no OFFSET scan)."""
        limit = max(1, min(int(limit), 5000))
        where = ["1=1"]
        args: list[Any] = []
        if symbol is not None:
            where.append("symbol = ?")
            args.append(symbol)
        if since_ms is not None:
            where.append("event_ms >= ?")
            args.append(int(since_ms))
        if before is not None:
            where.append("(event_ms < ? OR (event_ms = ? AND id < ?))")
            args.extend((int(before[0]), int(before[0]), int(before[1])))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE {' AND '.join(where)} "
                "ORDER BY event_ms DESC, id DESC LIMIT ?",
                (*args, limit + 1),
            ).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            if not rows:
                return [], None
            ids = [r[0] for r in rows]
            marks = ",".join("?" for _ in ids)
            deliveries: dict[int, dict[str, dict]] = {i: {} for i in ids}
            for alert_id, name, state, attempts, error, delivered_ms, delivered_by in self._db.execute(
                "SELECT alert_id, notifier, state, attempts, error, delivered_ms, delivered_by FROM deliveries "
                f"WHERE alert_id IN ({marks}) ORDER BY notifier",
                ids,
            ):
                deliveries[alert_id][name] = {
                    "state": state, "attempts": attempts, "error": error, "delivered_ms": delivered_ms,
                    "delivered_by": delivered_by,
                }
            outcomes = {
                r[0]: r[1:]
                for r in self._db.execute(
                    f"SELECT alert_id, {', '.join(_OUTCOME_COLUMNS)} FROM outcomes WHERE alert_id IN ({marks})",
                    ids,
                )
            }
        out = []
        for row in rows:
            d = {c: _finite(v) for c, v in zip(_ALERT_COLUMNS, row, strict=True)}
            d["time"] = iso_utc(d["event_ms"])
            d["deliveries"] = deliveries[d["id"]]
            o = outcomes.get(d["id"])
            d["outcome"] = self._outcome_dict(o) if o else None
            out.append(d)
        last = out[-1]
        return out, ((int(last["event_ms"]), int(last["id"])) if more else None)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])

    def prune(self, before_ms: int, *, batch: int = 5000) -> int:
        """Delete alerts stored before `before_ms` (created_ms) with their deliveries
        and outcomes - except alerts still pending somewhere (the outbox keeps
        them until delivered).  Deletes in batches so a writer waits at most one."""
        deleted = 0
        while True:
            with self._lock:
                cur = self._db.execute(
                    "DELETE FROM alerts WHERE id IN (SELECT a.id FROM alerts a WHERE a.created_ms < ? AND NOT "
                    "EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = a.id AND d.state = 'pending') "
                    "LIMIT ?)", (before_ms, batch))
                n = cur.rowcount
            deleted += n
            if n < batch:
                return deleted

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _record(row: tuple) -> AlertRecord:
        d = dict(zip(_ALERT_COLUMNS, row, strict=True))
        for key in BOOK_NUMBER_FIELDS:
            if d[key] is None:  # NaN went in, NULL came out
                d[key] = math.nan
        return AlertRecord(**d)

    @staticmethod
    def _outcome_dict(row: tuple) -> dict[str, Any]:
        d: dict[str, Any] = {c: _finite(v) for c, v in zip(_OUTCOME_COLUMNS, row, strict=True)}
        d["complete"] = bool(d["complete"])
        return d
