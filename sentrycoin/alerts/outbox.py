"""All alert-store I/O off the event loop: one writer thread, one reader thread.

SQLite calls block (a `BEGIN EXCLUSIVE` held by another process makes every
write wait for the busy timeout; a big `/alerts` scan takes seconds), so the
event loop never makes one.  `StoreWorker` owns

* a writer thread with a bounded FIFO of write operations.  `write()` never
  blocks: it answers False when the queue is full and the caller keeps the
  data in memory to write later (the alert manager does).  The thread opens
  the database itself, so a database that is locked or unavailable at start
  delays nothing but the writes; it retries opening every `retry_s`;
* a reader thread with its own connection (WAL: reads do not wait for the
  writer) for `/alerts`, the dashboard and restart sweeps;
* retention: every `prune_every_s` the writer deletes alerts stored more than
  `retention_days` ago (ALERT_RETENTION_DAYS; 0 keeps everything), never one
  still pending delivery.

Health: `store_problem()` names what is wrong after a failed write ("alert
store: database is locked", "alert store: disk is full", ...) until a write
succeeds again; `errors_total` counts failed operations
(`sentrycoin_store_errors_total`).  Results and failures come back to the
loop through `call_soon_threadsafe`, so counters and callbacks live on the
loop thread only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sentrycoin.store import AlertStore, store_problem_text

log = logging.getLogger("sentrycoin.alerts.store")

T = TypeVar("T")

StoreOp = Callable[[AlertStore], Any]
DoneCallback = Callable[[Any, BaseException | None], None]

_STOP = object()


class StoreWorker:
    def __init__(
        self,
        store: AlertStore | str | Path,
        *,
        queue_size: int = 10_000,
        retry_s: float = 1.0,
        retention_days: float = 90.0,
        prune_every_s: float = 3600.0,
        busy_timeout_s: float = 2.0,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        if retention_days < 0:
            raise ValueError("retention_days must be >= 0 (0 keeps every alert)")
        self._given = store if isinstance(store, AlertStore) else None
        self.path = store.path if isinstance(store, AlertStore) else str(store)
        self.retry_s = retry_s
        self.retention_days = retention_days
        self.prune_every_s = prune_every_s
        self.busy_timeout_s = busy_timeout_s
        self._clock_ms = clock_ms
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._store: AlertStore | None = self._given
        self._reader: AlertStore | None = None
        self._open_error: BaseException | None = None
        # Set once the writer has opened the database (schema created or migrated):
        # the reader must not look at a file the writer has not prepared yet.
        self._opened = threading.Event()
        if self._given is not None:
            self._opened.set()
        self._next_open_s = 0.0
        self._next_prune_s = time.monotonic() + min(60.0, prune_every_s)
        self._thread: threading.Thread | None = None
        self._read_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = 0  # queued or running writes (loop thread's view)
        # Loop-thread state, read by /health and /metrics.
        self.problem: str | None = None
        self.errors_total = 0
        self.writes_total = 0
        self.pruned_total = 0
        self.moved_aside: str | None = None

    def __repr__(self) -> str:
        return f"StoreWorker({self.path!r}, problem={self.problem!r})"

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the threads (idempotent); needs the running loop."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._read_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sentrycoin-store-read")
        self._thread = threading.Thread(target=self._run, name="sentrycoin-store-write", daemon=True)
        self._thread.start()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Finish queued writes (up to `timeout_s`), stop the threads, close the connections."""
        thread, self._thread = self._thread, None
        if thread is not None:
            def stop_and_join() -> None:
                deadline = time.monotonic() + timeout_s
                try:  # after the queued writes (FIFO); may wait for room
                    self._queue.put(_STOP, timeout=timeout_s)
                except queue.Full:
                    return
                thread.join(max(0.0, deadline - time.monotonic()))

            await asyncio.get_running_loop().run_in_executor(None, stop_and_join)
            if thread.is_alive():
                log.warning("alert store writer still busy after %.0f s at shutdown (%d writes queued)",
                            timeout_s, self._queue.qsize())
        pool, self._read_pool = self._read_pool, None
        if pool is not None:
            if self._reader is not None and self._reader is not self._store:
                pool.submit(self._reader.close)
            pool.shutdown(wait=True)
        if self._store is not None and self._given is None and (thread is None or not thread.is_alive()):
            self._store.close()

    # -- health --------------------------------------------------------------------

    def store_problem(self) -> str | None:
        """None while writes succeed; else what is wrong, e.g. 'alert store: disk is full'."""
        return self.problem

    @property
    def queued(self) -> int:
        """Writes queued or running."""
        return self._in_flight

    # -- writes ----------------------------------------------------------------------

    def write(self, op: StoreOp, on_done: DoneCallback | None = None) -> bool:
        """Queue `op(store)` for the writer thread; never blocks.

        False: the queue is full (counted as a store error; nothing was queued).
        `on_done(result, exc)` runs on the loop thread afterwards."""
        try:
            self._queue.put_nowait((op, on_done))
        except queue.Full:
            self._failed(None, "alert store: write queue full (the database is too slow)")
            return False
        self._in_flight += 1
        return True

    async def run_write(self, op: Callable[[AlertStore], T]) -> T:
        """`op(store)` on the writer thread (after the writes queued before it)."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def done(result: Any, exc: BaseException | None) -> None:
            if not fut.done():
                fut.set_exception(exc) if exc is not None else fut.set_result(result)

        if not self.write(op, done):
            raise RuntimeError(self.problem or "alert store: write queue full")
        return await fut

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued write has run (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout_s):
            while self._in_flight:
                await asyncio.sleep(0.005)

    # -- reads -------------------------------------------------------------------------

    async def read(self, op: Callable[[AlertStore], T]) -> T:
        """`op(store)` on the reader thread's connection (never on the loop)."""
        if self._read_pool is None:
            raise RuntimeError("StoreWorker not started")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._read_pool, self._read, op)
        except Exception:
            self.errors_total += 1
            raise

    def _read(self, op: Callable[[AlertStore], T]) -> T:
        if not self._opened.wait(self.busy_timeout_s + self.retry_s):
            raise RuntimeError(store_problem_text(self._open_error) if self._open_error
                               else "alert store: not open yet")
        if self._reader is None:
            if self._store is not None and (self.path == ":memory:" or self.path.startswith("file:")):
                self._reader = self._store  # one in-memory database: share (the store holds a lock)
            else:
                self._reader = AlertStore(self.path, busy_timeout_s=self.busy_timeout_s, read_only=True)
        return op(self._reader)

    # -- the writer thread ---------------------------------------------------------------

    def _open(self) -> AlertStore | None:
        if self._store is not None:
            return self._store
        now = time.monotonic()
        if now < self._next_open_s:
            return None
        self._next_open_s = now + self.retry_s
        try:
            store = AlertStore(self.path, busy_timeout_s=self.busy_timeout_s)
        except Exception as exc:
            self._open_error = exc
            return None
        self._store = store
        self._open_error = None
        self._opened.set()
        if store.moved_aside:
            self._post(setattr, self, "moved_aside", store.moved_aside)
        return store

    def _run(self) -> None:
        if self._open() is None and self._open_error is not None:
            self._post(self._failed, self._open_error, None)
        while True:
            try:
                item = self._queue.get(timeout=min(1.0, self.retry_s))
            except queue.Empty:
                self._maybe_prune()
                if self._store is None and self._open() is None and self._open_error is not None:
                    self._post(self._failed, self._open_error, None)
                continue
            if item is _STOP:
                return
            op, on_done = item
            store = self._open()
            if store is None:
                exc: BaseException = self._open_error or RuntimeError("alert store not open")
                self._post(self._finish, on_done, None, exc)
                continue
            try:
                result = op(store)
            except Exception as exc:
                self._post(self._finish, on_done, None, exc)
            else:
                self._post(self._finish, on_done, result, None)
            if self._queue.empty():
                self._maybe_prune()

    def _maybe_prune(self) -> None:
        if self.retention_days <= 0 or self._store is None or time.monotonic() < self._next_prune_s:
            return
        self._next_prune_s = time.monotonic() + self.prune_every_s
        before_ms = self._clock_ms() - int(self.retention_days * 86_400_000)
        try:
            n = self._store.prune(before_ms)
        except Exception as exc:
            self._post(self._failed, exc, None)
            return
        if n:
            log.info("alert store: pruned %d alert(s) older than %g days (ALERT_RETENTION_DAYS)",
                     n, self.retention_days)
            self._post(self._pruned, n)

    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    # -- back on the loop thread ------------------------------------------------------------

    def _pruned(self, n: int) -> None:
        self.pruned_total += n

    def _finish(self, on_done: DoneCallback | None, result: Any, exc: BaseException | None) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        if exc is None:
            self.writes_total += 1
            if self.problem is not None:
                log.warning("alert store writable again (was: %s)", self.problem)
                self.problem = None
        else:
            self._failed(exc, None)
        if on_done is not None:
            try:
                on_done(result, exc)
            except Exception:
                log.exception("alert store callback failed")

    def _failed(self, exc: BaseException | None, text: str | None) -> None:
        self.errors_total += 1
        problem = text or store_problem_text(exc)  # type: ignore[arg-type]
        if problem != self.problem:
            log.error("%s (%s); alerts are delivered from memory and written when it is back",
                      problem, self.path)
        self.problem = problem
