"""AlertManager: outbox-first submit, independent notifier workers, overflow, restart."""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
from pathlib import Path

import pytest

from sentrycoin.alerts import AlertManager, ConsoleNotifier, DeliveryError, RetryPolicy, build_notifiers, factory
from sentrycoin.alerts.telegram import TelegramNotifier
from sentrycoin.alerts.webhook import WebhookNotifier
from sentrycoin.store import AlertStore
from tests.service.alert_doubles import RecordingNotifier, make_event


@pytest.fixture
def store(tmp_path: Path):
    s = AlertStore(tmp_path / "alerts.db")
    yield s
    s.close()


def test_submit_is_sync_never_touches_the_store_and_queues(store: AlertStore) -> None:
    rec = RecordingNotifier("rec")
    manager = AlertManager(store, [rec])
    assert not inspect.iscoroutinefunction(manager.submit)
    key = manager.submit(make_event())  # no running loop, manager not started
    assert key == "binance:BTC-USDT:critical:1764145310123"
    assert store.count() == 0  # the write waits for the writer thread: nothing on the caller's thread
    assert manager.store.queued == 1
    assert rec.attempts == 0
    assert manager.stats.submitted == 1 and manager.stats.queue_depth == 1
    assert manager.stats.by_severity == {"critical": 1}
    assert manager.submit(make_event()) == key and manager.stats.queue_depth == 1  # the same alert, kept once


async def test_delivers_to_every_notifier_and_counts(store: AlertStore) -> None:
    a, b = RecordingNotifier("a"), RecordingNotifier("b")
    async with AlertManager(store, [a, b]) as manager:
        k1 = manager.submit(make_event(severity="warning"))
        k2 = manager.submit(make_event(severity="extreme"))
        await manager.drain()
        assert [r.alert_key for r in a.sent] == [k1, k2] and [r.alert_key for r in b.sent] == [k1, k2]
        assert manager.stats.delivered == {"a": 2, "b": 2}
        assert manager.stats.failed == {"a": 0, "b": 0}
        assert manager.stats.by_severity == {"warning": 1, "extreme": 1}
        assert manager.stats.queue_depth == 0 and manager.stats.in_memory == 0
    rows = store.recent()
    assert all(d["state"] == "delivered" and d["attempts"] == 1 and d["delivered_by"] == manager.replica_id
               for r in rows for d in r["deliveries"].values())


async def test_slow_notifier_does_not_delay_others(store: AlertStore) -> None:
    gate = asyncio.Event()
    slow, fast = RecordingNotifier("slow", gate=gate), RecordingNotifier("fast")
    manager = AlertManager(store, [slow, fast])
    await manager.start()
    try:
        for i in range(3):
            manager.submit(make_event(event_ms=i))
        for _ in range(100):
            if len(fast.sent) == 3:
                break
            await asyncio.sleep(0.01)
        await manager.store.flush()
        assert len(fast.sent) == 3 and slow.sent == []
        assert store.pending_count("slow") == 3 and store.pending_count("fast") == 0
        gate.set()
        await manager.drain()
        assert len(slow.sent) == 3
    finally:
        await manager.stop()


async def test_queue_full_is_counted_logged_and_delivered_from_outbox(
    store: AlertStore, caplog: pytest.LogCaptureFixture
) -> None:
    gate = asyncio.Event()
    rec = RecordingNotifier("rec", gate=gate)
    manager = AlertManager(store, [rec], queue_size=2)
    await manager.start()
    try:
        await asyncio.sleep(0.01)  # worker picks up nothing yet (startup sweep is empty)
        with caplog.at_level(logging.WARNING, logger="sentrycoin.alerts"):
            ids = [manager.submit(make_event(event_ms=i)) for i in range(10)]
        assert manager.stats.queue_dropped > 0
        assert manager.stats.submitted == 10
        assert any("queue full" in r.getMessage() for r in caplog.records)
        # Logged once per overflow episode, not once per alert.
        assert sum("queue full" in r.getMessage() for r in caplog.records) == 1
        gate.set()
        await manager.drain()
        assert sorted(r.alert_key for r in rec.sent) == sorted(ids)  # every alert, exactly once
        assert len(rec.sent) == 10
        assert [r.event_ms for r in rec.sent] == sorted(r.event_ms for r in rec.sent)  # oldest first
        assert store.pending_count() == 0
    finally:
        await manager.stop()


async def test_restart_retries_pending_rows(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    store = AlertStore(path)
    store.insert_alert(make_event(event_ms=1), ["rec"])
    store.insert_alert(make_event(event_ms=2), ["rec"])
    store.close()  # "crash" before any notifier ran

    store2 = AlertStore(path)
    rec = RecordingNotifier("rec")
    try:
        async with AlertManager(store2, [rec]) as second:
            await second.drain()
        assert [r.event_ms for r in rec.sent] == [1, 2]
        assert store2.pending_count() == 0
        # A third start sends nothing again.
        rec3 = RecordingNotifier("rec")
        async with AlertManager(store2, [rec3]) as third:
            await third.drain()
        assert rec3.sent == []
    finally:
        store2.close()


async def test_transient_errors_retried_then_delivered_once(store: AlertStore) -> None:
    rec = RecordingNotifier("rec", failures=[DeliveryError("HTTP 500"), DeliveryError("timeout")])
    async with AlertManager(store, [rec]) as manager:
        manager.submit(make_event())
        await manager.drain()
        assert len(rec.sent) == 1 and rec.attempts == 3
        assert manager.stats.retries["rec"] == 2 and manager.stats.delivered["rec"] == 1
    d = store.recent()[0]["deliveries"]["rec"]
    assert d["state"] == "delivered" and d["attempts"] == 3 and d["error"] is None


async def test_retry_after_overrides_backoff(store: AlertStore) -> None:
    slept: list[float] = []
    rec = RecordingNotifier("rec", failures=[DeliveryError("429", retry_after_s=0.05)],
                            retry=RetryPolicy(base_s=30.0))
    async with AlertManager(store, [rec]) as manager:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        manager.submit(make_event())
        await manager.drain(timeout_s=2.0)
        slept.append(loop.time() - t0)
    assert len(rec.sent) == 1 and 0.05 <= slept[0] < 5.0


async def test_permanent_failure_marks_failed_and_continues(
    store: AlertStore, caplog: pytest.LogCaptureFixture
) -> None:
    bad = RecordingNotifier("bad", failures=[DeliveryError("configuration error (HTTP 401)", config_error=True)] * 3)
    good = RecordingNotifier("good")
    with caplog.at_level(logging.DEBUG, logger="sentrycoin.alerts"):
        async with AlertManager(store, [bad, good]) as manager:
            for i in range(3):
                manager.submit(make_event(event_ms=i))
            await manager.drain()
            assert manager.stats.failed == {"bad": 3, "good": 0}
            assert len(good.sent) == 3
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "HTTP 401" in errors[0].getMessage()
    assert all(r["deliveries"]["bad"]["state"] == "failed" for r in store.recent())


async def test_max_attempts_gives_up(store: AlertStore) -> None:
    rec = RecordingNotifier("rec", failures=[DeliveryError("boom")] * 5,
                            retry=RetryPolicy(base_s=0.001, max_s=0.001, max_attempts=2))
    async with AlertManager(store, [rec]) as manager:
        manager.submit(make_event())
        await manager.drain()
        assert manager.stats.failed["rec"] == 1 and rec.attempts == 2
    assert store.recent()[0]["deliveries"]["rec"]["state"] == "failed"


async def test_notifier_bug_is_contained(store: AlertStore) -> None:
    class Buggy(RecordingNotifier):
        async def send(self, alert):  # type: ignore[override]
            self.attempts += 1
            if self.attempts == 1:
                raise KeyError("oops")
            await super().send(alert)

    buggy = Buggy("buggy")
    async with AlertManager(store, [buggy]) as manager:
        manager.submit(make_event())
        await manager.drain()
    assert len(buggy.sent) == 1


async def test_submit_never_raises_and_delivers_when_db_broken(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "a.db")
    rec = RecordingNotifier("rec")
    async with AlertManager(store, [rec]) as manager:
        store.close()  # every write now fails
        key = manager.submit(make_event())
        assert key is not None
        await manager.drain()
        assert len(rec.sent) == 1 and rec.sent[0].alert_key == key and rec.sent[0].episode_id == key
        assert manager.stats.store_errors >= 1
        assert manager.store_problem() is not None and manager.delivery_problem() is None
        assert manager.submit(object()) is None  # garbage in: logged, not raised


async def test_stop_keeps_undelivered_in_outbox(store: AlertStore) -> None:
    rec = RecordingNotifier("rec", gate=asyncio.Event())
    manager = AlertManager(store, [rec])
    await manager.start()
    manager.submit(make_event())
    manager.send_grace_s = 0.05
    await manager.stop(drain_timeout_s=0.05)
    assert store.pending_count("rec") == 1


def test_unique_names_required(store: AlertStore) -> None:
    with pytest.raises(ValueError):
        AlertManager(store, [RecordingNotifier("x"), RecordingNotifier("x")])


async def test_console_line_not_tty(store: AlertStore) -> None:
    out = io.StringIO()
    async with AlertManager(store, [ConsoleNotifier(out)]) as manager:
        manager.submit(make_event(source="simulated"))
        await manager.drain()
    line = out.getvalue()
    assert line.count("\n") == 1 and "\x1b[" not in line
    for part in ("[SIMULATED]", "CRITICAL", "binance", "BTC-USDT", "ratio 5.25 >= 2.5", "2025-11-26T08:21:50.123Z",
                 "bid vol 12.5", "ask vol 65.62"):
        assert part in line, part


def test_build_notifiers_without_telegram_logs_once(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    monkeypatch.setattr(factory, "_warned_unconfigured", False)
    with caplog.at_level(logging.WARNING, logger="sentrycoin.alerts"):
        n1 = build_notifiers()
        n2 = build_notifiers(webhook_url="http://127.0.0.1:9/hook")
    assert [type(n) for n in n1] == [ConsoleNotifier]
    assert [type(n) for n in n2] == [ConsoleNotifier, WebhookNotifier]
    msgs = [r.getMessage() for r in caplog.records if "Telegram not configured" in r.getMessage()]
    assert msgs == ["Telegram not configured: alerts go to the console (and webhook)"]


def test_build_notifiers_with_telegram(caplog: pytest.LogCaptureFixture) -> None:
    ns = build_notifiers(telegram_token="1:abc", telegram_chat_id=42, public_url="http://x")
    assert [n.name for n in ns] == ["console", "telegram"]
    assert isinstance(ns[1], TelegramNotifier)
    with caplog.at_level(logging.WARNING, logger="sentrycoin.alerts"):
        half = build_notifiers(telegram_token="1:abcdefghijklmnopqrstuvwxyz")
    assert [n.name for n in half] == ["console"]
    assert any("chat id is missing" in r.getMessage() for r in caplog.records)
    assert "abcdefghij" not in caplog.text


async def test_batching_notifier_gets_backlog_in_chunks(store: AlertStore) -> None:
    keys = [store.insert_alert(make_event(event_ms=i), ["rec"]).alert_key for i in range(7)]
    rec = RecordingNotifier("rec", max_batch=3, failures=[DeliveryError("HTTP 500")])
    async with AlertManager(store, [rec]) as manager:  # restart: outbox sweep in chunks
        await manager.drain()
        assert manager.stats.delivered["rec"] == 7 and manager.stats.retries["rec"] == 1
    assert rec.batches == [keys[0:3], keys[3:6], keys[6:7]]
    rows = {r["id"]: r["deliveries"]["rec"] for r in store.recent()}
    assert all(d["state"] == "delivered" for d in rows.values())
    assert [rows[i]["attempts"] for i in range(1, 8)] == [2, 2, 2, 1, 1, 1, 1]


async def test_batch_failure_marks_every_alert_of_the_batch(store: AlertStore) -> None:
    gate = asyncio.Event()
    rec = RecordingNotifier("rec", max_batch=5, gate=gate)
    async with AlertManager(store, [rec]) as manager:
        await asyncio.sleep(0.01)  # startup sweep done
        first = manager.submit(make_event())
        await asyncio.sleep(0.01)  # worker is now blocked sending alert 1 alone
        for i in range(3):
            manager.submit(make_event(event_ms=i))
        rec.failures = [None, DeliveryError("HTTP 403", config_error=True)]
        gate.set()
        await manager.drain()
        # alert 1 goes alone; 2-4 queued meanwhile go as one batch, which is refused
        assert manager.stats.failed["rec"] == 3 and manager.stats.delivered["rec"] == 1
    assert rec.batches == [[first]] and rec.attempts == 2
    states = {r["id"]: r["deliveries"]["rec"] for r in store.recent()}
    assert states[1]["state"] == "delivered"
    assert all(states[i]["state"] == "failed" and states[i]["error"] == "HTTP 403" for i in (2, 3, 4))


async def test_console_colour_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    n = ConsoleNotifier(out)
    from sentrycoin.store import AlertRecord

    await n.send(AlertRecord.from_event(make_event(severity="extreme"), id=3, created_ms=0))
    text = out.getvalue()
    assert "\x1b[" in text and "EXTREME" in text and "BTC-USDT" in text
    assert "#binance:BTC-USDT:extreme:1764145310123" in text  # the alert key, as in /alerts


async def test_console_broken_stream_is_permanent_failure() -> None:
    out = io.StringIO()
    out.close()
    from sentrycoin.store import AlertRecord

    with pytest.raises(DeliveryError) as info:
        await ConsoleNotifier(out).send(AlertRecord.from_event(make_event(), id=1, created_ms=0))
    assert info.value.permanent




async def test_restart_sends_pending_alerts_only_to_the_notifiers_they_were_stored_for(store: AlertStore) -> None:
    store.insert_alert(make_event(), ["rec"])
    rec, added = RecordingNotifier("rec"), RecordingNotifier("added")
    async with AlertManager(store, [rec, added]) as manager:
        await manager.drain()
    assert len(rec.sent) == 1 and added.sent == []
    assert set(store.recent()[0]["deliveries"]) == {"rec"}
