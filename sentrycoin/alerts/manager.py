"""Alert manager: outbox first, then one independent delivery task per notifier.

`submit()` runs on the hot path (called from `Market.on_alert`): it is
synchronous, never awaits and never raises.  It commits the alert and one
`pending` delivery row per notifier to SQLite, then puts the record on each
notifier's bounded queue.  Each notifier has its own worker task, so a slow
or dead notifier delays neither the books nor the other notifiers.

Nothing is lost when a queue is full: the drop is counted and logged, the
row stays `pending` in the outbox, and the worker sweeps the outbox (oldest
first) as soon as it finishes its current delivery.  On start every worker first sweeps rows left pending by a
previous run (crash, kill -9, outage).

Delivery is exactly once per notifier except in one window: if the process
dies after the far end accepted a message but before the `delivered` commit
(microseconds), the message is sent again on restart.  We deliberately
prefer that duplicate to losing an alert.  Before every attempt the worker
re-reads the row's state, so an alert reached through both the queue and a
sweep is still sent once.

High availability: with a `gate` (sentrycoin/ha: `DeliveryGate.should_deliver`),
every notifier named in `gated` asks it once per alert before the first send.
False means another replica claimed the alert's episode and sent it: the row
becomes `suppressed` (not `delivered`: this replica sent nothing) and leaves
the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Awaitable, Callable, Collection, Protocol, Sequence

from sentrycoin.alerts.base import DeliveryError, Notifier
from sentrycoin.store import AlertRecord, AlertStore

log = logging.getLogger("sentrycoin.alerts")

#: The `error` text of a `suppressed` delivery row.
SUPPRESSED_REASON = "sent by another replica"


class _OutcomeSink(Protocol):
    def track(self, alert: AlertRecord) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def _wall_ms() -> int:
    return int(time.time() * 1000)


class AlertStats:
    """Plain counters read by /metrics (no locking: single event-loop thread)."""

    def __init__(self, notifier_names: Sequence[str], depth_of: Callable[[], int]) -> None:
        self.submitted = 0
        self.queue_dropped = 0  # records that did not fit a notifier queue (still in the outbox)
        self.store_errors = 0  # alerts that could not be written to SQLite (delivered from memory)
        self.by_severity: dict[str, int] = {}
        self.delivered: dict[str, int] = {n: 0 for n in notifier_names}
        self.failed: dict[str, int] = {n: 0 for n in notifier_names}
        self.retries: dict[str, int] = {n: 0 for n in notifier_names}
        # Not sent here because another HA replica sent them.
        self.suppressed: dict[str, int] = {n: 0 for n in notifier_names}
        self._depth_of = depth_of

    @property
    def queue_depth(self) -> int:
        """Records waiting in all notifier queues together."""
        return self._depth_of()

    def as_dict(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "queue_dropped": self.queue_dropped,
            "store_errors": self.store_errors,
            "queue_depth": self.queue_depth,
            "by_severity": dict(self.by_severity),
            "delivered": dict(self.delivered),
            "failed": dict(self.failed),
            "retries": dict(self.retries),
            "suppressed": dict(self.suppressed),
        }

    def __repr__(self) -> str:
        return f"AlertStats({self.as_dict()!r})"


class AlertManager:
    def __init__(
        self,
        store: AlertStore,
        notifiers: Sequence[Notifier],
        *,
        queue_size: int = 1000,
        outcomes: _OutcomeSink | None = None,
        clock_ms: Callable[[], int] = _wall_ms,
        rng: Callable[[], float] = random.random,
        sweep_batch: int = 500,
        gate: Callable[[AlertRecord], Awaitable[bool]] | None = None,
        gated: Collection[str] = (),
    ) -> None:
        names = [n.name for n in notifiers]
        if len(set(names)) != len(names):
            raise ValueError(f"notifier names must be unique, got {names}")
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.store = store
        self.notifiers: list[Notifier] = list(notifiers)
        self.outcomes = outcomes
        self._names = names
        self._queues: dict[str, asyncio.Queue[AlertRecord]] = {
            n: asyncio.Queue(maxsize=queue_size) for n in names
        }
        self.stats = AlertStats(names, lambda: sum(q.qsize() for q in self._queues.values()))
        self._clock_ms = clock_ms
        self._rng = rng
        self._sweep_batch = sweep_batch
        # A worker sweeps the outbox at start and after any queue overflow.
        self._needs_sweep: dict[str, bool] = {n: True for n in names}
        self._busy: dict[str, bool] = {n: False for n in names}
        self._sweep_retry_at: dict[str, float] = {}  # notifier -> loop time of next outbox read
        self._sweep_retry_s = 1.0
        self._tasks: list[asyncio.Task[None]] = []
        self._config_error_logged: set[str] = set()
        self._failing_since: dict[str, int] = {}  # notifier -> attempts in the current failure streak
        self._overflowing: set[str] = set()
        self._started = False
        # gate(record) -> False: another replica sends it (see module docstring).
        self._gate = gate
        self._gated = frozenset(gated) if gate is not None else frozenset()

    def __repr__(self) -> str:
        return f"AlertManager(notifiers={self._names!r}, store={self.store!r})"

    # -- hot path -------------------------------------------------------------

    def submit(self, event: Any) -> int | None:
        """Record an alert and queue it for every notifier.  Never blocks, never raises.

        Returns the outbox row id (None if the database could not be written).
        """
        try:
            return self._submit(event)
        except Exception:  # a bug here must never take down a feed
            log.exception("alert submit failed for %r", event)
            return None

    def _submit(self, event: Any) -> int | None:
        stats = self.stats
        stats.submitted += 1
        stats.by_severity[event.severity] = stats.by_severity.get(event.severity, 0) + 1
        now_ms = self._clock_ms()
        try:
            rec = self.store.insert_alert(event, self._names, created_ms=now_ms)
        except Exception as exc:
            # Deliver anyway, from memory: an alert must not die with the disk.
            stats.store_errors += 1
            log.error("could not write alert to %s (%s: %s); delivering it without an outbox row",
                      self.store.path, type(exc).__name__, exc)
            rec = AlertRecord.from_event(event, id=None, created_ms=now_ms)
        for name, queue in self._queues.items():
            try:
                queue.put_nowait(rec)
            except asyncio.QueueFull:
                stats.queue_dropped += 1
                self._needs_sweep[name] = True
                if rec.id is None:
                    log.error("%s queue full and no outbox row: alert %s %s %s not delivered by %s",
                              name, event.exchange, event.symbol, event.severity, name)
                elif name not in self._overflowing:
                    self._overflowing.add(name)
                    log.warning("%s queue full (%d): alert #%d stays in the outbox and will be sent "
                                "when the queue drains (dropped so far: %d)",
                                name, queue.maxsize, rec.id, stats.queue_dropped)
        if self.outcomes is not None and rec.id is not None:
            self.outcomes.track(rec)
        return rec.id

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for n in self.notifiers:
            try:
                await n.start()
            except Exception as exc:  # it will retry on its first send
                log.error("%s: start failed (%s); will retry on first send", n.name, type(exc).__name__)
        for n in self.notifiers:
            self._needs_sweep[n.name] = True  # rows left pending by a previous run or stop
            self._tasks.append(asyncio.create_task(self._worker(n), name=f"alerts-{n.name}"))
        if self.outcomes is not None:
            await self.outcomes.start()
        log.info("alert manager started: notifiers %s, outbox %s (%d pending)",
                 ", ".join(self._names) or "none", self.store.path, self._pending_total())

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Give queued deliveries a short chance to finish, then stop.

        Anything still undelivered stays pending in the outbox for next start.
        """
        if not self._started:
            return
        try:
            await self.drain(drain_timeout_s)
        except asyncio.TimeoutError:
            log.warning("alert manager stopping with %d deliveries unfinished (kept in the outbox)",
                        self.stats.queue_depth)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.outcomes is not None:
            await self.outcomes.stop()
        for n in self.notifiers:
            try:
                await n.close()
            except Exception as exc:
                log.warning("closing %s failed: %s", n.name, type(exc).__name__)
        self._started = False

    async def __aenter__(self) -> "AlertManager":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def idle(self) -> bool:
        """No queued record, no delivery in progress, no outbox sweep due (a sweep
        waiting for an unreadable database does not count)."""
        sweep_due = any(v and n not in self._sweep_retry_at for n, v in self._needs_sweep.items())
        return not any(self._busy.values()) and not sweep_due and all(q.empty() for q in self._queues.values())

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every queue is empty and no worker is busy (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout_s):
            while not self.idle():
                if any(t.done() for t in self._tasks):
                    return
                await asyncio.sleep(0.005)

    def _pending_total(self) -> int:
        try:
            return self.store.pending_count()
        except Exception:
            return -1

    # -- delivery ----------------------------------------------------------------

    async def _worker(self, n: Notifier) -> None:
        name = n.name
        queue = self._queues[name]
        loop = asyncio.get_running_loop()
        while True:
            retry_at = self._sweep_retry_at.get(name)
            if self._needs_sweep[name] and (retry_at is None or loop.time() >= retry_at):
                self._busy[name] = True
                try:
                    await self._sweep(n)
                finally:
                    self._busy[name] = False
                    self._overflowing.discard(name)  # re-arm the overflow warning
                continue
            try:
                if self._needs_sweep[name] and retry_at is not None:
                    # The outbox is unreadable: keep delivering what is queued
                    # in memory and try the outbox again later.
                    first = await asyncio.wait_for(queue.get(), max(0.0, retry_at - loop.time()))
                else:
                    first = await queue.get()
            except asyncio.TimeoutError:
                continue
            self._busy[name] = True
            batch = [first]
            try:
                if n.max_batch > 1:
                    # Wait out pacing / retry_after first, then take everything
                    # that queued up meanwhile: in a market-wide crash one
                    # message carries many alerts instead of each waiting 1 s.
                    await n.wait_ready()
                    while len(batch) < n.max_batch and not queue.empty():
                        batch.append(queue.get_nowait())
                await self._deliver(n, batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s worker: unexpected error (delivery continues)", name)
            finally:
                self._busy[name] = False
                for _ in batch:
                    queue.task_done()

    async def _sweep(self, n: Notifier) -> None:
        """Send everything still pending for this notifier, oldest first."""
        after_id = 0
        swept = 0
        while True:
            # Cleared before reading so an overflow during the sweep triggers another.
            self._needs_sweep[n.name] = False
            try:
                batch = self.store.pending(n.name, limit=self._sweep_batch, after_id=after_id)
            except Exception as exc:
                if n.name not in self._sweep_retry_at:
                    log.error("%s: reading the outbox failed (%s: %s); retrying every %.0f s",
                              n.name, type(exc).__name__, exc, self._sweep_retry_s)
                self._needs_sweep[n.name] = True
                self._sweep_retry_at[n.name] = asyncio.get_running_loop().time() + self._sweep_retry_s
                return
            if self._sweep_retry_at.pop(n.name, None) is not None:
                log.info("%s: outbox readable again", n.name)
            if not batch:
                if swept:
                    log.info("%s: outbox sweep handled %d pending alert(s)", n.name, swept)
                return
            step = max(1, n.max_batch)
            for i in range(0, len(batch), step):
                chunk = batch[i:i + step]
                await self._deliver(n, chunk)
                after_id = chunk[-1].id or after_id
                swept += len(chunk)

    def _state(self, rec: AlertRecord, name: str) -> str | None:
        if rec.id is None:
            return "pending"
        try:
            return self.store.delivery_state(rec.id, name)
        except Exception as exc:
            log.error("%s: reading delivery state failed (%s)", name, type(exc).__name__)
            return "pending"

    def _record(self, rec: AlertRecord, name: str, state: str, error: str | None) -> None:
        if rec.id is None:
            return
        try:
            self.store.record_attempt(rec.id, name, error=error, state=state, now_ms=self._clock_ms())
        except Exception as exc:
            log.error("%s: recording delivery of alert #%d failed (%s)", name, rec.id, type(exc).__name__)

    async def _deliver(self, n: Notifier, batch: list[AlertRecord]) -> None:
        """Retry alerts on one notifier until delivered or permanently failed.

        `batch` holds more than one alert only for notifiers with max_batch > 1;
        it is sent as one message and succeeds or fails as a whole.
        """
        name = n.name
        attempt = 0
        while True:
            # Re-check every time: a sweep and the queue may both hold an alert.
            batch = [r for r in batch if self._state(r, name) == "pending"]
            if attempt == 0 and name in self._gated:
                batch = await self._claimed(name, batch)  # HA: once, before the first send
            if not batch:
                return
            attempt += 1
            try:
                if len(batch) == 1:
                    await n.send(batch[0])
                else:
                    await n.send_batch(batch)
            except asyncio.CancelledError:
                raise
            except DeliveryError as exc:
                err = exc
            except Exception as exc:  # notifier bug: treat as transient, keep secrets out
                err = DeliveryError(f"unexpected {type(exc).__name__}: {n.redact(str(exc))}")
            else:
                for rec in batch:
                    self._record(rec, name, "delivered", None)
                self.stats.delivered[name] += len(batch)
                if self._failing_since.pop(name, None) is not None or name in self._config_error_logged:
                    log.info("%s: delivering again (alert #%s)", name, batch[0].id)
                self._config_error_logged.discard(name)
                return
            message = n.redact(err.message)
            policy = n.retry
            ids = ", ".join(f"#{r.id}" for r in batch)
            if err.permanent or (policy.max_attempts is not None and attempt >= policy.max_attempts):
                for rec in batch:
                    self._record(rec, name, "failed", message)
                self.stats.failed[name] += len(batch)
                self._log_failure(n, ids, err, message, attempt)
                return
            for rec in batch:
                self._record(rec, name, "pending", message)
            self.stats.retries[name] += 1
            streak = self._failing_since.get(name, 0) + 1
            self._failing_since[name] = streak
            delay_s = err.retry_after_s if err.retry_after_s is not None else policy.delay_s(attempt, self._rng)
            level = logging.WARNING if streak == 1 or streak % 20 == 0 else logging.DEBUG
            log.log(level, "%s: alert %s attempt %d failed: %s; retrying in %.2f s",
                    name, ids, attempt, message, delay_s)
            await asyncio.sleep(delay_s)

    async def _claimed(self, name: str, batch: list[AlertRecord]) -> list[AlertRecord]:
        """The alerts of `batch` this replica sends; the others become `suppressed`."""
        assert self._gate is not None
        keep = []
        for rec in batch:
            if await self._gate(rec):
                keep.append(rec)
                continue
            self.stats.suppressed[name] += 1
            if rec.id is not None:
                try:
                    self.store.mark_suppressed(rec.id, name, SUPPRESSED_REASON, now_ms=self._clock_ms())
                except Exception as exc:
                    log.error("%s: recording suppression of alert #%d failed (%s)", name, rec.id,
                              type(exc).__name__)
        return keep

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
