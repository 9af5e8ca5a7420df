"""Alert manager: alerts kept in memory until delivered and written, one worker per notifier.

`submit()` runs on the hot path (called from `Market.on_alert`): synchronous,
never awaits, never raises, never touches the disk.  It keeps the alert in
memory with one `pending` delivery row per notifier, queues a write of that
snapshot to the store's writer thread (`StoreWorker`), and puts the alert on
each notifier's bounded queue.  Each notifier has its own worker task, so a
slow or dead notifier delays neither the books nor the other notifiers.

Memory is the source of truth while an alert is in flight; the database is
its durable copy.  Every state change writes a whole snapshot (idempotent),
so when the store is unavailable (locked, disk full, unwritable) alerts are
still delivered from memory, the failed snapshots are marked dirty and
written again, with their current state, once the store is back (a probe
write every `flush_interval_s`).  An alert leaves memory once every notifier
is final (delivered / failed / suppressed) and that state is written.  On
start, alerts left pending by a previous run (crash, kill -9, stop with
unfinished deliveries) are read back and sent.

Nothing is lost when a queue is full: the drop is counted, the alert stays in
memory (and the outbox) and the worker sweeps memory once its queue drains.
If memory itself is full (`max_in_memory`, only reachable with the store
down for long), alerts already written are let go (re-read later); only when
none is, a new alert cannot be kept: counted in `stats.lost`, logged, and
`delivery_problem()` makes /health answer 503.

The guarantee is **at-least-once** per notifier (docs/delivery.md).  A
duplicate happens only when a send's outcome is unknown: the request timed
out or the connection dropped after the request went out (the far end may
have accepted it; window: up to the notifier's request timeout, 10 s), or the
process died between the far end's answer and recording it.  Such a send is
retried only after at least one request timeout, with the row's error saying
"outcome unknown" and the resent message flagged `possible_duplicate`; every
send carries the stable `episode_id` (webhook `Idempotency-Key`) so a
receiver can drop the repeat.  On stop (SIGTERM/SIGHUP/SIGINT) sends already
in flight are awaited, up to `STOP_SEND_GRACE_S` (8 s) after the stop began,
rather than cut off; one cut off later is recorded "outcome unknown".

High availability: with a `gate` (sentrycoin/ha/gate.py `DeliveryGate`),
every notifier named in `gated` asks `gate.claim(alert, channel)` before each
send attempt: `send` (this replica holds the channel's lease), `held` (another
replica is sending: ask again later; it takes over if that one dies or gives
up), `done`/`covered` (another replica delivered it: the row becomes
`suppressed`, with `delivered_by`).  After the last attempt the manager calls
`gate.finish`: done, or released on a permanent failure here so a healthy
replica sends it; after RELEASE_AFTER_FAILURES known failures in a row it also
releases while it waits to retry (claiming again before the next attempt).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any, Protocol

import msgspec

from sentrycoin.alerts.base import DeliveryError, Notifier
from sentrycoin.alerts.outbox import StoreWorker
from sentrycoin.store import AlertRecord, AlertStore, DeliveryRow

log = logging.getLogger("sentrycoin.alerts")

#: The `error` text of a `suppressed` delivery row.
SUPPRESSED_REASON = "sent by another replica"
COVERED_REASON = "covered by a higher-severity alert of the same episode"
SAME_EPISODE_REASON = "its episode was already delivered by this replica"
#: Prefix of the `error` of a row whose last attempt may have reached the far end.
OUTCOME_UNKNOWN = "outcome unknown"
#: How long after stop() began a send still in flight is waited for (then cut: outcome unknown).
STOP_SEND_GRACE_S = 8.0
#: HA: after this many failed attempts in a row whose outcome is known (nothing arrived), the
#: channel's lease is given back while this replica waits to retry, so a replica whose own path
#: to the channel works can send meanwhile.  Not after an unknown outcome: that would invite a duplicate.
RELEASE_AFTER_FAILURES = 3


class _OutcomeSink(Protocol):
    def track(self, alert: AlertRecord) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class GateLike(Protocol):
    """sentrycoin.ha.gate.DeliveryGate, as the manager uses it."""

    @property
    def replica_id(self) -> str: ...

    async def claim(self, rec: AlertRecord, channel: str) -> Any: ...
    async def finish(self, episode_id: str, channel: str, *, delivered: bool) -> None: ...


def _wall_ms() -> int:
    return int(time.time() * 1000)


class _Tracked:
    """One alert in memory: the record, its delivery rows and what is written."""

    __slots__ = ("rec", "rows", "version", "saved_version", "queued")

    def __init__(self, rec: AlertRecord, rows: dict[str, DeliveryRow], *, saved: bool = False) -> None:
        self.rec = rec
        self.rows = rows
        self.version = 1
        self.saved_version = 1 if saved else 0
        # Notifiers whose queue holds this alert, whose worker handles it, or
        # that wait to ask the gate again: the memory sweep leaves it to them.
        self.queued: set[str] = set()

    @property
    def final(self) -> bool:
        return all(r.final for r in self.rows.values())

    @property
    def saved(self) -> bool:
        return self.saved_version >= self.version


class AlertStats:
    """Plain counters read by /metrics (no locking: single event-loop thread)."""

    def __init__(self, notifier_names: Sequence[str], depth_of: Callable[[], int],
                 store: StoreWorker, in_memory_of: Callable[[], int]) -> None:
        self.submitted = 0
        self.queue_dropped = 0  # records that did not fit a notifier queue (still in memory)
        self.lost = 0  # alerts that could not be kept at all (memory full, store down)
        self.by_severity: dict[str, int] = {}
        self.delivered: dict[str, int] = {n: 0 for n in notifier_names}
        self.failed: dict[str, int] = {n: 0 for n in notifier_names}
        self.retries: dict[str, int] = {n: 0 for n in notifier_names}
        # Attempts whose outcome is unknown (timeout / connection lost after sending).
        self.outcome_unknown: dict[str, int] = {n: 0 for n in notifier_names}
        # Not sent here because another HA replica sent them.
        self.suppressed: dict[str, int] = {n: 0 for n in notifier_names}
        self._depth_of = depth_of
        self._store = store
        self._in_memory_of = in_memory_of

    @property
    def queue_depth(self) -> int:
        """Records waiting in all notifier queues together."""
        return self._depth_of()

    @property
    def store_errors(self) -> int:
        """Failed store operations (sentrycoin_store_errors_total)."""
        return self._store.errors_total

    @property
    def in_memory(self) -> int:
        return self._in_memory_of()

    def as_dict(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "queue_dropped": self.queue_dropped,
            "lost": self.lost,
            "store_errors": self.store_errors,
            "queue_depth": self.queue_depth,
            "in_memory": self.in_memory,
            "by_severity": dict(self.by_severity),
            "delivered": dict(self.delivered),
            "failed": dict(self.failed),
            "retries": dict(self.retries),
            "outcome_unknown": dict(self.outcome_unknown),
            "suppressed": dict(self.suppressed),
        }

    def __repr__(self) -> str:
        return f"AlertStats({self.as_dict()!r})"


class AlertManager:
    def __init__(
        self,
        store: AlertStore | StoreWorker,
        notifiers: Sequence[Notifier],
        *,
        queue_size: int = 1000,
        outcomes: _OutcomeSink | None = None,
        clock_ms: Callable[[], int] = _wall_ms,
        rng: Callable[[], float] = random.random,
        sweep_batch: int = 500,
        gate: GateLike | None = None,
        gated: Collection[str] = (),
        max_in_memory: int = 100_000,
        flush_interval_s: float = 1.0,
        send_grace_s: float | None = None,
        replica_id: str | None = None,
    ) -> None:
        names = [n.name for n in notifiers]
        if len(set(names)) != len(names):
            raise ValueError(f"notifier names must be unique, got {names}")
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if max_in_memory < 1:
            raise ValueError("max_in_memory must be >= 1")
        self.store: StoreWorker = store if isinstance(store, StoreWorker) else StoreWorker(store)
        self.notifiers: list[Notifier] = list(notifiers)
        self.outcomes = outcomes
        self._names = names
        self._queues: dict[str, asyncio.Queue[str]] = {n: asyncio.Queue(maxsize=queue_size) for n in names}
        self._alerts: dict[str, _Tracked] = {}  # alert_key -> alert (insertion order = age)
        self._dirty: set[str] = set()  # alert keys whose latest snapshot is not written
        self.stats = AlertStats(names, lambda: sum(q.qsize() for q in self._queues.values()), self.store,
                                lambda: len(self._alerts))
        self._clock_ms = clock_ms
        self._rng = rng
        self._sweep_batch = sweep_batch
        self.max_in_memory = max_in_memory
        self.flush_interval_s = flush_interval_s
        # stop() waits for sends already in flight until this long after it began:
        # below the 10 s a container runtime gives between SIGTERM and SIGKILL.
        self.send_grace_s = STOP_SEND_GRACE_S if send_grace_s is None else send_grace_s
        self._needs_sweep: dict[str, bool] = {n: False for n in names}
        self._needs_reload = True  # read alerts left pending by a previous run
        self._reload_after_id = 0
        self._busy: dict[str, bool] = {n: False for n in names}
        self._sending: dict[str, bool] = {n: False for n in names}
        self._deferred: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._config_error_logged: set[str] = set()
        self._failing_since: dict[str, int] = {}  # notifier -> attempts in the current failure streak
        self._overflowing: set[str] = set()
        self._memory_full_since: float | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False
        self._gate = gate
        self._gated = frozenset(gated) if gate is not None else frozenset()
        self.replica_id = replica_id or (gate.replica_id if gate is not None else socket.gethostname())

    def __repr__(self) -> str:
        return f"AlertManager(notifiers={self._names!r}, store={self.store!r})"

    # -- health (for /health) ------------------------------------------------------

    def store_problem(self) -> str | None:
        """What is wrong with the alert store ('alert store: database is locked', ...), or None.
        Delivery goes on from memory meanwhile."""
        return self.store.store_problem()

    def delivery_problem(self) -> str | None:
        """Why alerts cannot be delivered at all right now (None: they can)."""
        if self._started:
            dead = [t.get_name() for t in self._tasks if t.done()]
            if dead:
                return f"alert delivery stopped: {', '.join(dead)} not running"
        if self._memory_full_since is not None:
            return (f"alert delivery: {len(self._alerts)} alerts held in memory (limit {self.max_in_memory}) "
                    f"and the store is unavailable: new alerts are being dropped")
        return None

    # -- hot path -------------------------------------------------------------

    def submit(self, event: Any) -> str | None:
        """Keep an alert and queue it for every notifier.  Never blocks, never raises.

        Returns the alert's `alert_key` (None if it could not be kept)."""
        try:
            return self._submit(event)
        except Exception:  # a bug here must never take down a feed
            log.exception("alert submit failed for %r", event)
            return None

    def _submit(self, event: Any) -> str | None:
        stats = self.stats
        stats.submitted += 1
        stats.by_severity[event.severity] = stats.by_severity.get(event.severity, 0) + 1
        now_ms = self._clock_ms()
        rec = AlertRecord.from_event(event, id=None, created_ms=now_ms)
        key = rec.alert_key
        if key in self._alerts:
            log.debug("alert %s submitted twice: kept once", key)
            return key
        if len(self._alerts) >= self.max_in_memory and not self._evict_written():
            stats.lost += 1
            if self._memory_full_since is None:
                self._memory_full_since = time.monotonic()
                log.error("alert %s %s %s NOT DELIVERED: %d alerts wait in memory for the alert store (%s) "
                          "and none is written yet; dropping new alerts until it is back",
                          event.exchange, event.symbol, event.severity, len(self._alerts),
                          self.store.store_problem() or "slow")
            return None
        tracked = _Tracked(rec, {name: DeliveryRow(updated_ms=now_ms) for name in self._names})
        self._alerts[key] = tracked
        self._save(tracked)
        for name in self._names:
            self._enqueue(name, tracked)
        if self.outcomes is not None:
            self.outcomes.track(rec)
        return key

    def _enqueue(self, name: str, tracked: _Tracked) -> None:
        try:
            self._queues[name].put_nowait(tracked.rec.alert_key)
        except asyncio.QueueFull:
            self.stats.queue_dropped += 1
            self._needs_sweep[name] = True
            if name not in self._overflowing:
                self._overflowing.add(name)
                log.warning("%s queue full (%d): alert %s waits in memory and is sent when the queue "
                            "drains (dropped so far: %d)", name, self._queues[name].maxsize,
                            tracked.rec.alert_key, self.stats.queue_dropped)
        else:
            tracked.queued.add(name)

    def _evict_written(self) -> bool:
        """Memory full: let the oldest alert already written go (the outbox reload reads it
        back when there is room).  False if every alert in memory is unwritten."""
        for key, tracked in self._alerts.items():
            if tracked.saved and not tracked.queued:  # written, and no worker holds it
                del self._alerts[key]
                self._needs_reload = True
                self._reload_after_id = 0
                return True
        return False

    # -- store writes ------------------------------------------------------------

    def _save(self, tracked: _Tracked) -> None:
        """Queue a write of the alert's current snapshot (never blocks)."""
        rec, rows, version = tracked.rec, dict(tracked.rows), tracked.version
        key = rec.alert_key

        def done(row_id: Any, exc: BaseException | None) -> None:
            if exc is not None:
                self._dirty.add(key)
                return
            if version > tracked.saved_version:
                tracked.saved_version = version
                if tracked.rec.id is None and isinstance(row_id, int):
                    tracked.rec = msgspec.structs.replace(tracked.rec, id=row_id)
            if tracked.saved:
                self._dirty.discard(key)
                self._memory_full_since = None
                self._forget_if_done(tracked)

        if not self.store.write(lambda s: s.save_alert(rec, rows), done):
            self._dirty.add(key)

    def _change(self, tracked: _Tracked, name: str, **fields: Any) -> None:
        tracked.rows[name] = msgspec.structs.replace(tracked.rows[name], updated_ms=self._clock_ms(), **fields)
        tracked.version += 1
        self._save(tracked)

    def _forget_if_done(self, tracked: _Tracked) -> None:
        key = tracked.rec.alert_key
        if tracked.final and tracked.saved and not tracked.queued and self._alerts.get(key) is tracked:
            del self._alerts[key]

    async def _flush_loop(self) -> None:
        """Write again what could not be written, and read back alerts left pending."""
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                self._flush_dirty()
                if self._needs_reload and len(self._alerts) < self.max_in_memory * 0.9:
                    await self._reload()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert flush failed (retrying)")

    def _flush_dirty(self) -> None:
        if not self._dirty:
            return
        # While the store is failing, one probe write per round; all once it works.
        budget = 1 if self.store.store_problem() else self._store_queue_room()
        for key in list(self._dirty)[:max(1, budget)]:
            self._dirty.discard(key)
            tracked = self._alerts.get(key)
            if tracked is not None and not tracked.saved:
                self._save(tracked)

    def _store_queue_room(self) -> int:
        return max(1, 1000 - self.store.queued)

    async def _reload(self) -> None:
        """Take alerts left pending in the database (previous run, eviction) back into memory."""
        while len(self._alerts) < self.max_in_memory:
            after, limit = self._reload_after_id, self._sweep_batch
            try:
                batch = await self.store.read(partial(AlertStore.pending_alerts, limit=limit, after_id=after))
            except Exception as exc:
                log.debug("reading pending alerts failed (%s); retrying", type(exc).__name__)
                return
            if not batch:
                self._needs_reload = False
                self._reload_after_id = 0
                return
            taken = 0
            for rec, rows in batch:
                self._reload_after_id = max(self._reload_after_id, rec.id or 0)
                if rec.alert_key in self._alerts:
                    continue
                # Only the notifiers it was stored for (a notifier added since does not get old alerts).
                mine = {n: rows[n] for n in self._names if n in rows}
                if all(r.final for r in mine.values()):
                    continue  # pending only for a notifier this run does not have
                tracked = _Tracked(rec, mine, saved=True)
                self._alerts[rec.alert_key] = tracked
                taken += 1
                for name, row in mine.items():
                    if row.state == "pending":
                        self._enqueue(name, tracked)
            if taken:
                log.info("outbox: %d alert(s) left pending earlier taken back for delivery", taken)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._stopping = False
        self.store.start()
        for n in self.notifiers:
            try:
                await n.start()
            except Exception as exc:  # it will retry on its first send
                log.error("%s: start failed (%s); will retry on first send", n.name, type(exc).__name__)
        self._needs_reload = True
        try:
            await asyncio.wait_for(self._reload(), 5.0)
        except (TimeoutError, Exception) as exc:  # the flush loop retries
            log.warning("outbox: reading pending alerts at start failed (%s); retrying in the background",
                        type(exc).__name__)
        for n in self.notifiers:
            self._tasks.append(asyncio.create_task(self._worker(n), name=f"alerts-{n.name}"))
        self._flush_task = asyncio.create_task(self._flush_loop(), name="alerts-store-flush")
        if self.outcomes is not None:
            await self.outcomes.start()
        log.info("alert manager started: notifiers %s, store %s (%d alert(s) in flight)",
                 ", ".join(self._names) or "none", self.store.path, len(self._alerts))

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Give queued deliveries a short chance to finish, let sends in flight end
        (up to `send_grace_s`), then stop; write what is known.

        Anything still undelivered stays pending in the outbox for next start."""
        if not self._started:
            return
        loop = asyncio.get_running_loop()
        grace_until = loop.time() + self.send_grace_s
        try:
            await self.drain(min(drain_timeout_s, self.send_grace_s))
        except TimeoutError:
            log.warning("alert manager stopping with %d deliveries unfinished (kept in the outbox)",
                        self.stats.queue_depth + sum(1 for t in self._alerts.values() if not t.final))
        self._stopping = True
        # A send cut off mid-request has an unknown outcome (a duplicate on restart):
        # wait for those in flight instead.
        try:
            async with asyncio.timeout_at(grace_until):
                while any(self._sending.values()):
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.warning("alert manager stopping while a send is still in flight (its outcome is unknown; "
                        "it is resent, flagged possible_duplicate, on restart)")
        for handle in self._deferred.values():
            handle.cancel()
        self._deferred.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._flush_task is not None:
            self._flush_task.cancel()
            await asyncio.gather(self._flush_task, return_exceptions=True)
            self._flush_task = None
        if self.outcomes is not None:
            await self.outcomes.stop()
        await self._release_leases()
        self._flush_dirty()
        try:
            await self.store.flush(5.0)
        except TimeoutError:
            log.warning("alert store: %d write(s) still queued at shutdown", self.store.queued)
        await self.store.close()
        for n in self.notifiers:
            try:
                await n.close()
            except Exception as exc:
                log.warning("closing %s failed: %s", n.name, type(exc).__name__)
        self._started = False

    async def _release_leases(self) -> None:
        """Graceful stop: hand back delivery leases of alerts not sent here, so another
        replica sends them now rather than after the lease TTL.  Not those whose last
        attempt has an unknown outcome: a takeover would more likely duplicate them."""
        if self._gate is None:
            return
        try:
            async with asyncio.timeout(2.0):
                for tracked in self._alerts.values():
                    for name in self._gated:
                        row = tracked.rows.get(name)
                        # (finishing a lease this replica does not hold changes nothing)
                        if row is not None and row.state == "pending" and not (
                                row.error or "").startswith(OUTCOME_UNKNOWN):
                            await self._gate.finish(tracked.rec.episode_id, name, delivered=False)
        except TimeoutError:
            log.warning("HA: releasing delivery leases at stop timed out (they expire by themselves)")

    async def __aenter__(self) -> AlertManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def idle(self) -> bool:
        """No queued alert, no delivery in progress, no memory sweep due, nothing left to write
        (unwritten alerts do not count while the store is failing)."""
        if any(self._busy.values()) or any(self._needs_sweep.values()):
            return False
        if not all(q.empty() for q in self._queues.values()):
            return False
        if self.store.store_problem() is None and (self._dirty or self.store.queued):
            return False
        return True

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every queue is empty, no worker is busy and writes are done (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout_s):
            while not self.idle():
                if any(t.done() for t in self._tasks):
                    return
                await asyncio.sleep(0.005)

    def in_flight(self) -> int:
        """Alerts not yet final on every notifier (in memory)."""
        return sum(1 for t in self._alerts.values() if not t.final)

    # -- delivery ----------------------------------------------------------------

    async def _worker(self, n: Notifier) -> None:
        name = n.name
        queue = self._queues[name]
        while True:
            if self._needs_sweep[name] and queue.empty():
                self._busy[name] = True
                try:
                    await self._sweep(n)
                finally:
                    self._busy[name] = False
                    self._overflowing.discard(name)  # re-arm the overflow warning
                continue
            first = await queue.get()
            self._busy[name] = True
            keys = [first]
            try:
                if n.max_batch > 1:
                    # Wait out pacing / retry_after first, then take everything
                    # that queued up meanwhile: in a market-wide crash one
                    # message carries many alerts instead of each waiting 1 s.
                    await n.wait_ready()
                    while len(keys) < n.max_batch and not queue.empty():
                        keys.append(queue.get_nowait())
                batch = [t for t in (self._alerts.get(key) for key in keys) if t is not None]
                await self._deliver(n, batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s worker: unexpected error (delivery continues)", name)
            finally:
                self._busy[name] = False
                for key in keys:
                    queue.task_done()
                    tracked = self._alerts.get(key)
                    if tracked is not None:
                        self._handled(name, tracked)

    async def _sweep(self, n: Notifier) -> None:
        """Send what is pending for this notifier in memory but in no queue (after an overflow)."""
        name = n.name
        self._needs_sweep[name] = False  # cleared first: an overflow meanwhile asks for another sweep
        todo = [t for t in self._alerts.values()
                if name not in t.queued and t.rows.get(name) is not None and t.rows[name].state == "pending"]
        step = max(1, n.max_batch)
        for i in range(0, len(todo), step):
            chunk = todo[i:i + step]
            for t in chunk:
                t.queued.add(name)
            try:
                await self._deliver(n, chunk)
            finally:
                for t in chunk:
                    self._handled(name, t)
        if todo:
            log.info("%s: swept %d alert(s) that did not fit its queue", name, len(todo))

    def _handled(self, name: str, tracked: _Tracked) -> None:
        """A worker is done with the alert (unless it waits for the gate again)."""
        if (name, tracked.rec.alert_key) not in self._deferred:
            tracked.queued.discard(name)
        self._forget_if_done(tracked)

    def _outgoing(self, tracked: _Tracked, name: str) -> AlertRecord:
        """The record handed to the notifier: flagged when an earlier attempt's outcome is unknown."""
        unknown = (tracked.rows[name].error or "").startswith(OUTCOME_UNKNOWN)
        rec = tracked.rec
        return msgspec.structs.replace(rec, possible_duplicate=True) if unknown else rec

    async def _deliver(self, n: Notifier, batch: list[_Tracked]) -> None:
        """Retry alerts on one notifier until delivered, permanently failed, suppressed,
        or (HA) left to another replica that holds the channel's lease.

        `batch` holds more than one alert only for notifiers with max_batch > 1;
        it is sent as one message and succeeds or fails as a whole.
        """
        name = n.name
        attempt = 0
        while True:
            batch = [t for t in batch if t.rows[name].state == "pending"]
            if batch and name in self._gated:
                batch = await self._claimed(name, batch)
            if not batch or self._stopping:
                return
            attempt += 1
            records = [self._outgoing(t, name) for t in batch]
            self._sending[name] = True
            try:
                if len(records) == 1:
                    await n.send(records[0])
                else:
                    await n.send_batch(records)
            except asyncio.CancelledError:
                for t in batch:  # cut off mid-send: the far end may have it
                    self._change(t, name, attempts=t.rows[name].attempts + 1,
                                 error=f"{OUTCOME_UNKNOWN}: stopped during the send")
                raise
            except DeliveryError as exc:
                err = exc
            except Exception as exc:  # notifier bug: treat as transient, keep secrets out
                err = DeliveryError(f"unexpected {type(exc).__name__}: {n.redact(str(exc))}")
            else:
                await self._delivered(n, batch)
                return
            finally:
                self._sending[name] = False
            delay_s = await self._failed_attempt(n, batch, err, attempt)
            if delay_s is None:
                return
            await asyncio.sleep(delay_s)

    async def _delivered(self, n: Notifier, batch: list[_Tracked]) -> None:
        name = n.name
        now = self._clock_ms()
        for t in batch:
            self._change(t, name, state="delivered", attempts=t.rows[name].attempts + 1, error=None,
                         delivered_ms=now, delivered_by=self.replica_id)
        self.stats.delivered[name] += len(batch)
        if self._failing_since.pop(name, None) is not None or name in self._config_error_logged:
            log.info("%s: delivering again (alert %s)", name, batch[0].rec.episode_id)
        self._config_error_logged.discard(name)
        if name in self._gated:
            assert self._gate is not None
            for t in batch:
                await self._gate.finish(t.rec.episode_id, name, delivered=True)

    async def _failed_attempt(self, n: Notifier, batch: list[_Tracked], err: DeliveryError,
                              attempt: int) -> float | None:
        """Record a failed attempt; the delay before the next one, or None when it is final."""
        name = n.name
        message = n.redact(err.message)
        policy = n.retry
        ids = ", ".join(t.rec.episode_id for t in batch)
        if err.permanent or (policy.max_attempts is not None and attempt >= policy.max_attempts):
            for t in batch:
                self._change(t, name, state="failed", attempts=t.rows[name].attempts + 1, error=message)
            self.stats.failed[name] += len(batch)
            self._log_failure(n, ids, err, message, attempt)
            if name in self._gated:
                assert self._gate is not None
                for t in batch:  # another replica may succeed where this one cannot
                    await self._gate.finish(t.rec.episode_id, name, delivered=False)
            return None
        delay_s = err.retry_after_s if err.retry_after_s is not None else policy.delay_s(attempt, self._rng)
        if err.outcome_unknown:
            # The far end may have it: retry only after a full request timeout, flagged.
            message = f"{OUTCOME_UNKNOWN}: {message}"
            self.stats.outcome_unknown[name] += len(batch)
            delay_s = max(delay_s, float(getattr(n, "request_timeout_s", 0.0)))
        for t in batch:
            self._change(t, name, attempts=t.rows[name].attempts + 1, error=message)
        if name in self._gated and not err.outcome_unknown and attempt >= RELEASE_AFTER_FAILURES:
            assert self._gate is not None
            for t in batch:  # re-claimed before the next attempt (or left to whoever took it)
                await self._gate.finish(t.rec.episode_id, name, delivered=False)
        self.stats.retries[name] += 1
        streak = self._failing_since.get(name, 0) + 1
        self._failing_since[name] = streak
        level = logging.WARNING if streak == 1 or streak % 20 == 0 else logging.DEBUG
        log.log(level, "%s: alert %s attempt %d failed: %s; retrying in %.2f s", name, ids, attempt, message, delay_s)
        return delay_s

    async def _claimed(self, name: str, batch: list[_Tracked]) -> list[_Tracked]:
        """The alerts of `batch` this replica sends now (HA); the others are suppressed
        (another replica delivered them) or wait for another replica's lease."""
        assert self._gate is not None
        keep: dict[str, tuple[_Tracked, bool]] = {}  # episode id -> (alert, stands in for it)
        for t in batch:
            decision = await self._gate.claim(t.rec, name)
            if decision.episode_id and decision.episode_id != t.rec.episode_id:
                t.rec = msgspec.structs.replace(t.rec, episode_id=decision.episode_id)
                t.version += 1
                self._save(t)
            if decision.status == "send":
                stand_in = bool(getattr(decision, "stand_in", False))
                other = keep.get(t.rec.episode_id)
                if other is None:
                    keep[t.rec.episode_id] = (t, stand_in)
                    continue
                # Two alerts of one episode in one message (an escalation next to the alert
                # it covers): send the episode's own alert, not the stand-in.
                if other[1] and not stand_in:
                    keep[t.rec.episode_id] = (t, stand_in)
                    t = other[0]
                self.stats.suppressed[name] += 1
                self._change(t, name, state="suppressed", error=COVERED_REASON, delivered_by=self.replica_id)
            elif decision.status == "held":
                self._defer(name, t, decision.retry_in_s)
            else:
                self.stats.suppressed[name] += 1
                if decision.status == "covered":
                    reason = COVERED_REASON
                elif decision.delivered_by == self.replica_id:
                    reason = SAME_EPISODE_REASON
                else:
                    reason = SUPPRESSED_REASON
                self._change(t, name, state="suppressed", error=reason, delivered_by=decision.delivered_by)
        return [t for t, _ in keep.values()]

    def _defer(self, name: str, tracked: _Tracked, delay_s: float) -> None:
        """Another replica holds the lease: ask the gate again in `delay_s`."""
        key = tracked.rec.alert_key
        tracked.queued.add(name)
        old = self._deferred.pop((name, key), None)
        if old is not None:
            old.cancel()

        def again() -> None:
            self._deferred.pop((name, key), None)
            tracked.queued.discard(name)
            if self._alerts.get(key) is tracked and tracked.rows[name].state == "pending":
                self._enqueue(name, tracked)
            else:
                self._forget_if_done(tracked)

        self._deferred[(name, key)] = asyncio.get_running_loop().call_later(delay_s, again)

    def _log_failure(self, n: Notifier, ids: str, err: DeliveryError, message: str, attempt: int) -> None:
        name = n.name
        if err.config_error:
            if name not in self._config_error_logged:
                self._config_error_logged.add(name)
                log.error("%s: %s. Alert %s marked failed; later alerts keep being tried on %s "
                          "(this error is logged once) and other notifiers are unaffected.",
                          name, message, ids, name)
            else:
                log.debug("%s: alert %s failed: %s", name, ids, message)
        else:
            log.error("%s: alert %s failed after %d attempt(s): %s", name, ids, attempt, message)
