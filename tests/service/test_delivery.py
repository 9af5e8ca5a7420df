"""Delivery that survives an unavailable store, stops that cut sends, and the HA gate protocol.

The store tests lock the database from *another process* (`BEGIN EXCLUSIVE`,
as the issue reproduced) or fill it (`PRAGMA max_page_count`: SQLite's own
"database or disk is full"), and check that alerts are still delivered from
memory, that the event loop never waits for SQLite, that /health names the
problem, and that every alert is written once the store is back.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sentrycoin.alerts import AlertManager, DeliveryError, RetryPolicy
from sentrycoin.alerts.manager import OUTCOME_UNKNOWN
from sentrycoin.alerts.outbox import StoreWorker
from sentrycoin.ha.gate import GateDecision
from sentrycoin.server.status import alert_problems
from sentrycoin.store import AlertStore
from tests.service.alert_doubles import RecordingNotifier, make_event


class LoopLag:
    """Measures the longest time the event loop did not run a 5 ms ticker."""

    def __init__(self) -> None:
        self.max_lag_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.005)
            self.max_lag_s = max(self.max_lag_s, loop.time() - t - 0.005)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def _lock_in_other_process(path: Path) -> subprocess.Popen[str]:
    """Another process holding BEGIN EXCLUSIVE on the database until its stdin closes."""
    code = (
        "import sqlite3, sys\n"
        f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('LOCKED', flush=True)\n"
        "sys.stdin.read()\n"
        "db.execute('ROLLBACK')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "LOCKED"
    return proc


async def _until(cond: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_locked_store_alerts_delivered_from_memory_loop_never_blocks_then_written(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    AlertStore(path).close()  # exists, schema in place
    worker = StoreWorker(path, busy_timeout_s=0.5, retry_s=0.1)
    rec = RecordingNotifier("rec")
    manager = AlertManager(worker, [rec], flush_interval_s=0.1)
    await manager.start()
    locker = _lock_in_other_process(path)
    try:
        with LoopLag() as lag:
            keys = [manager.submit(make_event(event_ms=i)) for i in range(5)]
            await _until(lambda: len(rec.sent) == 5)  # delivered while the store is locked
            await _until(lambda: manager.store_problem() is not None)
            await asyncio.sleep(0.6)  # several 0.5 s busy waits in the writer thread meanwhile
        assert lag.max_lag_s < 0.2, lag.max_lag_s  # the loop never waited for SQLite
        assert manager.store_problem() == "alert store: database is locked"
        assert manager.delivery_problem() is None
        assert manager.stats.store_errors >= 1
        assert alert_problems(manager) == [{"kind": "alert_store", "message": "alert store: database is locked"}]
    finally:
        assert locker.stdin is not None
        locker.stdin.close()
        locker.wait(10)
    await _until(lambda: manager.store_problem() is None and not manager._dirty and manager.store.queued == 0)
    await manager.stop()
    store = AlertStore(path)
    try:
        rows = store.recent()
        assert sorted(r["alert_key"] for r in rows) == sorted(keys)
        assert all(r["deliveries"]["rec"]["state"] == "delivered" for r in rows)
        assert store.pending_count() == 0
    finally:
        store.close()


async def test_full_store_is_named_disk_full_and_delivery_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    store = AlertStore(path)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite answers SQLITE_FULL from now on
    rec = RecordingNotifier("rec")
    manager = AlertManager(store, [rec], flush_interval_s=0.05)
    async with manager:
        for i in range(40):  # enough rows to need a new page
            manager.submit(make_event(event_ms=i, symbol=f"S{i}-USDT"))
        await _until(lambda: len(rec.sent) == 40)
        await _until(lambda: manager.store_problem() is not None)
        assert manager.store_problem() == "alert store: disk is full"
        store._db.execute("PRAGMA max_page_count = 1073741823")  # space again
        await _until(lambda: manager.store_problem() is None and not manager._dirty)
    assert store.count() == 40 and store.pending_count() == 0
    store.close()


async def test_memory_full_with_the_store_down_makes_delivery_impossible(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    gate = asyncio.Event()
    rec = RecordingNotifier("rec", gate=gate)
    async with AlertManager(store, [rec], max_in_memory=3) as manager:
        store.close()  # nothing can be written: nothing can be let go
        keys = [manager.submit(make_event(event_ms=i)) for i in range(4)]
        await _until(lambda: manager.store_problem() is not None)
        assert keys[3] is None and manager.stats.lost == 1
        problem = manager.delivery_problem()
        assert problem is not None and "dropped" in problem
        assert {"kind": "alert_delivery", "message": problem, "fatal": True} in alert_problems(manager)
        gate.set()
        manager.send_grace_s = 1.0


async def test_alert_over_memory_limit_lets_a_written_one_go_and_reloads_it(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    gate = asyncio.Event()
    rec = RecordingNotifier("rec", gate=gate)
    async with AlertManager(store, [rec], max_in_memory=3, queue_size=1, flush_interval_s=0.05) as manager:
        keys = []
        for i in range(5):  # 0: in the (blocked) send, 1: queued, 2..4: overflow, written, let go in turn
            keys.append(manager.submit(make_event(event_ms=i)))
            await manager.store.flush()
            await asyncio.sleep(0.02)
        assert None not in keys and manager.stats.lost == 0
        assert manager.stats.in_memory <= 3
        gate.set()
        await _until(lambda: store.pending_count() == 0 and len(rec.sent) >= 4)
    assert sorted(r.alert_key for r in rec.sent) == sorted(keys)  # every alert, once
    store.close()


async def test_stop_waits_for_a_send_in_flight_instead_of_cutting_it(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    gate = asyncio.Event()
    rec = RecordingNotifier("rec", gate=gate)
    manager = AlertManager(store, [rec], send_grace_s=5.0)
    await manager.start()
    manager.submit(make_event())
    await _until(lambda: rec.attempts == 1)
    asyncio.get_running_loop().call_later(0.3, gate.set)  # the far end answers after the drain timeout
    await manager.stop(drain_timeout_s=0.05)
    assert len(rec.sent) == 1
    assert store.recent()[0]["deliveries"]["rec"]["state"] == "delivered"
    store.close()


async def test_send_cut_off_at_stop_is_unknown_and_resent_flagged(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = AlertStore(path)
    rec = RecordingNotifier("rec", gate=asyncio.Event())  # never answers
    manager = AlertManager(store, [rec], send_grace_s=0.05)
    await manager.start()
    manager.submit(make_event())
    await _until(lambda: rec.attempts == 1)
    await manager.stop(drain_timeout_s=0.05)
    row = store.recent()[0]["deliveries"]["rec"]
    assert row["state"] == "pending" and row["error"].startswith(OUTCOME_UNKNOWN)
    again = RecordingNotifier("rec")
    async with AlertManager(store, [again]) as restarted:
        await restarted.drain()
    assert len(again.sent) == 1 and again.sent[0].possible_duplicate is True
    assert again.sent[0].episode_id == rec.sent[0].episode_id if rec.sent else True
    store.close()


# -- the HA gate protocol, with a scripted gate --------------------------------------------


class ScriptedGate:
    """Answers `claim` from a per-channel script; records finish() calls."""

    replica_id = "replica-a"

    def __init__(self, script: dict[str, list[GateDecision]]) -> None:
        self.script = script
        self.claims: list[tuple[str, str]] = []
        self.finished: list[tuple[str, str, bool]] = []

    async def claim(self, rec: Any, channel: str) -> GateDecision:
        self.claims.append((rec.alert_key, channel))
        todo = self.script.get(channel)
        return todo.pop(0) if todo else GateDecision("send", "fleet-episode-1")

    async def finish(self, episode_id: str, channel: str, *, delivered: bool) -> None:
        self.finished.append((episode_id, channel, delivered))


async def test_gate_held_then_send_takes_over_with_the_fleet_episode_id(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    gate = ScriptedGate({"telegram": [GateDecision("held", "fleet-episode-1", "replica-b", retry_in_s=0.05),
                                      GateDecision("held", "fleet-episode-1", "replica-b", retry_in_s=0.05)]})
    tg, console = RecordingNotifier("telegram"), RecordingNotifier("console")
    async with AlertManager(store, [console, tg], gate=gate, gated=["telegram"]) as manager:
        manager.submit(make_event())
        await _until(lambda: len(tg.sent) == 1)
        await manager.drain()
    assert len(gate.claims) == 3  # asked again while another replica held the lease
    assert tg.sent[0].episode_id == "fleet-episode-1"  # what a receiver de-duplicates on
    assert gate.finished == [("fleet-episode-1", "telegram", True)]
    row = store.recent()[0]
    assert row["episode_id"] == "fleet-episode-1"
    assert row["deliveries"]["telegram"]["delivered_by"] == "replica-a"
    assert len(console.sent) == 1  # not gated
    store.close()


async def test_gate_done_is_suppressed_with_who_delivered(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    gate = ScriptedGate({"telegram": [GateDecision("done", "fleet-episode-1", "replica-b")]})
    tg = RecordingNotifier("telegram")
    async with AlertManager(store, [tg], gate=gate, gated=["telegram"]) as manager:
        manager.submit(make_event())
        await manager.drain()
        assert manager.stats.suppressed["telegram"] == 1
    d = store.recent()[0]["deliveries"]["telegram"]
    assert tg.sent == [] and d["state"] == "suppressed" and d["delivered_by"] == "replica-b"
    assert d["error"] == "sent by another replica" and store.pending_count() == 0
    store.close()


async def test_permanent_failure_releases_the_channel_per_channel(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    gate = ScriptedGate({})
    bad_tg = RecordingNotifier("telegram", failures=[DeliveryError("HTTP 401", config_error=True)])
    hook = RecordingNotifier("webhook", failures=[DeliveryError("HTTP 502"), None],
                             retry=RetryPolicy(base_s=0.01, max_s=0.01))
    async with AlertManager(store, [bad_tg, hook], gate=gate, gated=["telegram", "webhook"]) as manager:
        manager.submit(make_event())
        await manager.drain()
    # telegram released (another replica sends it); the webhook still delivered here, claimed before each attempt
    assert sorted(gate.finished) == [("fleet-episode-1", "telegram", False), ("fleet-episode-1", "webhook", True)]
    assert [c for c in gate.claims if c[1] == "webhook"].__len__() == 2
    assert len(hook.sent) == 1 and bad_tg.sent == []
    store.close()


# -- retention -------------------------------------------------------------------------------


def test_alert_retention_days_setting() -> None:
    from sentrycoin.config import ConfigError, load_settings

    assert load_settings(env={}).alert_retention_days == 90.0
    assert load_settings(env={"ALERT_RETENTION_DAYS": "7"}).alert_retention_days == 7.0
    assert load_settings(env={"ALERT_RETENTION_DAYS": "0"}).alert_retention_days == 0.0  # keep everything
    with pytest.raises(ConfigError, match="ALERT_RETENTION_DAYS"):
        load_settings(env={"ALERT_RETENTION_DAYS": "-1"})
    assert load_settings(env={"ACCESS_LOG": "true"}).access_log is True


async def test_store_worker_prunes_by_retention_in_its_thread(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = AlertStore(path)
    day_ms = 86_400_000
    now_ms = 1_800_000_000_000
    old = store.insert_alert(make_event(event_ms=1), ["t"], created_ms=now_ms - 10 * day_ms)
    store.mark_delivered(old.id, "t")
    old_pending = store.insert_alert(make_event(event_ms=2), ["t"], created_ms=now_ms - 10 * day_ms)
    recent = store.insert_alert(make_event(event_ms=3), ["t"], created_ms=now_ms - 1 * day_ms)
    store.mark_delivered(recent.id, "t")
    store.close()
    worker = StoreWorker(path, retention_days=7, prune_every_s=0.05, retry_s=0.05, clock_ms=lambda: now_ms)
    worker._next_prune_s = 0.0
    worker.start()
    try:
        await _until(lambda: worker.pruned_total == 1, 5)
        rows = await worker.read(lambda s: s.recent())
        assert sorted(r["id"] for r in rows) == [old_pending.id, recent.id]  # pending alerts are kept
    finally:
        await worker.close()


async def test_reads_wait_for_the_writer_to_prepare_a_fresh_database(tmp_path: Path) -> None:
    """At start the outcome tracker and the outbox reload read at once: on a new file
    they must see the schema, not 'no such table'."""
    worker = StoreWorker(tmp_path / "fresh.db")
    worker.start()
    try:
        assert await worker.read(lambda s: s.unfinished_outcomes(since_ms=0)) == []
        assert await worker.read(lambda s: s.pending_alerts()) == []
        assert worker.errors_total == 0
    finally:
        await worker.close()


async def test_persistent_known_failures_release_the_lease_while_waiting(tmp_path: Path) -> None:
    """This replica cannot reach the channel (nothing arrives): after RELEASE_AFTER_FAILURES
    attempts it gives the lease back while it waits, so another replica may send; it claims
    again before its next attempt.  After an unknown outcome it keeps the lease."""
    from sentrycoin.alerts.manager import RELEASE_AFTER_FAILURES

    store = AlertStore(tmp_path / "a.db")
    gate = ScriptedGate({})
    failures = [DeliveryError("connection refused")] * RELEASE_AFTER_FAILURES + [None]
    tg = RecordingNotifier("telegram", failures=failures, retry=RetryPolicy(base_s=0.01, max_s=0.01))
    async with AlertManager(store, [tg], gate=gate, gated=["telegram"]) as manager:
        manager.submit(make_event())
        await manager.drain()
    assert gate.finished == [("fleet-episode-1", "telegram", False), ("fleet-episode-1", "telegram", True)]
    assert len(gate.claims) == RELEASE_AFTER_FAILURES + 1  # claimed again before every attempt

    gate2 = ScriptedGate({})
    unknown = [DeliveryError("timeout", outcome_unknown=True)] * RELEASE_AFTER_FAILURES + [None]
    tg2 = RecordingNotifier("telegram", failures=unknown, retry=RetryPolicy(base_s=0.01, max_s=0.01))
    async with AlertManager(store, [tg2], gate=gate2, gated=["telegram"]) as manager:
        manager.submit(make_event(event_ms=99))
        await manager.drain(5.0)
    assert gate2.finished == [("fleet-episode-1", "telegram", True)]  # never released
    store.close()
