"""What happened to the price after each alert.

For every alert we watch the mid price for 15 minutes and record it at
+10 s, +30 s, +1 min, +5 min and +15 min, plus the largest drop below the
alert's mid (and when the low came) within 5 and within 15 minutes.  This is
how a user judges whether alerts are worth acting on (`outcome_summary()`).

`OutcomeAccumulator` holds the rules and is shared by the live tracker
(which samples `mid_price_of(exchange, symbol)` once per interval on an
injectable clock) and by the pure `compute_outcome()` that replay and
backtests feed with a recorded (t_ms, mid) series, so both give identical
numbers for identical samples.

Rules:
- mid at +h: the first sample at or after alert + h, if it is no later than
  max(5 s, 10 % of h) past that instant (else None: the feed had a gap).
- low / drop: over samples in (alert, alert + window]; drop % = (ref - low)
  / ref * 100, clamped at 0 when the price never went below the reference.
- ref: the alert's own mid price (else the first sample).
- the 5 min figures exist once 5 min have been observed; `complete` once
  15 min have.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sentrycoin.alerts.outbox import StoreWorker
from sentrycoin.store import OUTCOME_HORIZONS_S, AlertRecord, AlertStore

log = logging.getLogger("sentrycoin.alerts.outcomes")

WINDOW_S = 900
WINDOW_5M_S = 300

MidPriceOf = Callable[[str, str], "float | None"]


def _tolerance_ms(h_s: int) -> int:
    return max(5_000, h_s * 100)


class OutcomeAccumulator:
    """Incremental outcome of one alert; feed samples in time order."""

    __slots__ = ("start_ms", "ref_mid", "mids", "_pending", "low_mid", "low_ms", "low5_mid", "low5_ms",
                 "samples", "observed_ms")

    def __init__(self, start_ms: int, ref_mid: float | None, horizons_s: Iterable[int] = OUTCOME_HORIZONS_S) -> None:
        self.start_ms = start_ms
        self.ref_mid = ref_mid if ref_mid is not None and math.isfinite(ref_mid) and ref_mid > 0 else None
        hs = sorted(horizons_s)
        self.mids: dict[int, float | None] = {h: None for h in hs}
        self._pending = hs
        self.low_mid: float | None = None
        self.low_ms: int | None = None
        self.low5_mid: float | None = None
        self.low5_ms: int | None = None
        self.samples = 0
        self.observed_ms = start_ms

    @classmethod
    def resume(cls, saved: dict[str, Any], horizons_s: Iterable[int] = OUTCOME_HORIZONS_S) -> OutcomeAccumulator:
        """Rebuild from a stored partial outcome (after a restart).

        Horizons that passed while the process was down stay None: the first
        new sample is too late for them, by the same tolerance rule.
        """
        acc = cls(int(saved["start_ms"]), saved.get("ref_mid"), horizons_s)
        for h in list(acc._pending):
            value = saved.get(f"mid_{h}s")
            if value is not None:
                acc.mids[h] = value
                acc._pending.remove(h)
        acc.low_mid, acc.low_ms = saved.get("low_mid"), saved.get("low_ms")
        acc.low5_mid, acc.low5_ms = saved.get("low_5m_mid"), saved.get("low_5m_ms")
        acc.samples = int(saved.get("samples") or 0)
        return acc

    def add(self, t_ms: int, mid: float | None) -> bool:
        """Add one sample; returns True when a horizon or the 5 min mark was just passed."""
        before = self._marks()
        if t_ms > self.observed_ms:
            self.observed_ms = t_ms
        if mid is None or not math.isfinite(mid) or mid <= 0:
            return self._marks() != before
        dt = t_ms - self.start_ms
        if dt <= 0:
            return False
        if self.ref_mid is None:
            self.ref_mid = mid
        if dt <= WINDOW_S * 1000:
            self.samples += 1
            # Strict '<' keeps the earliest instant of the low.
            if self.low_mid is None or mid < self.low_mid:
                self.low_mid, self.low_ms = mid, t_ms
            if dt <= WINDOW_5M_S * 1000 and (self.low5_mid is None or mid < self.low5_mid):
                self.low5_mid, self.low5_ms = mid, t_ms
        while self._pending and dt >= self._pending[0] * 1000:
            h = self._pending.pop(0)
            if dt - h * 1000 <= _tolerance_ms(h):
                self.mids[h] = mid
        return self._marks() != before

    def observe_until(self, t_ms: int) -> bool:
        """Time passed (even without a usable sample); True when a mark was passed."""
        before = self._marks()
        if t_ms > self.observed_ms:
            self.observed_ms = t_ms
        return self._marks() != before

    def _marks(self) -> tuple[int, bool, bool]:
        return (len(self._pending), self.five_min_done, self.complete)

    @property
    def five_min_done(self) -> bool:
        return self.observed_ms - self.start_ms >= WINDOW_5M_S * 1000

    @property
    def complete(self) -> bool:
        return self.observed_ms - self.start_ms >= WINDOW_S * 1000

    def _drop(self, low: float | None) -> float | None:
        if low is None or self.ref_mid is None:
            return None
        return max(0.0, (self.ref_mid - low) / self.ref_mid * 100.0)

    def result(self) -> dict[str, Any]:
        five = self.five_min_done
        out: dict[str, Any] = {
            "complete": self.complete,
            "start_ms": self.start_ms,
            "ref_mid": self.ref_mid,
            "samples": self.samples,
        }
        for h, mid in self.mids.items():
            out[f"mid_{h}s"] = mid
        out["max_drop_5m_pct"] = self._drop(self.low5_mid) if five else None
        # The 5 min low so far is kept even before 5 min (a restart resumes from it);
        # the drop figure only counts once the window has been fully observed.
        out["low_5m_mid"] = self.low5_mid
        out["low_5m_ms"] = self.low5_ms
        out["lead_to_low_5m_s"] = (self.low5_ms - self.start_ms) / 1000.0 if five and self.low5_ms is not None else None
        out["max_drop_pct"] = self._drop(self.low_mid)
        out["low_mid"] = self.low_mid
        out["low_ms"] = self.low_ms
        out["lead_to_low_s"] = (self.low_ms - self.start_ms) / 1000.0 if self.low_ms is not None else None
        return out


def compute_outcome(
    start_ms: int,
    ref_mid: float | None,
    series: Iterable[tuple[int, float | None]],
    *,
    observed_until_ms: int | None = None,
    horizons_s: Iterable[int] = OUTCOME_HORIZONS_S,
) -> dict[str, Any]:
    """Outcome of an alert at `start_ms` from a (t_ms, mid) series (sorted by time).

    Pure: used by replay/backtest.  `observed_until_ms` defaults to the last
    sample's time (how far the series is known to cover).
    """
    acc = OutcomeAccumulator(start_ms, ref_mid, horizons_s)
    for t_ms, mid in series:
        acc.add(int(t_ms), mid)
    if observed_until_ms is not None:
        acc.observe_until(observed_until_ms)
    return acc.result()


def _wall_ms() -> int:
    return int(time.time() * 1000)


class OutcomeTracker:
    """Samples the mid price of alerted markets and stores each alert's outcome.

    `tick(now_ms)` does one sampling round (tests drive it in simulated
    time); `start()` runs it every `interval_s` on the injected clock/sleep.
    Replay alerts are skipped by default: their time base is the recording,
    not this clock (backtests use `compute_outcome`).

    Alerts are tracked by `alert_key`.  With a `StoreWorker` (the monitor)
    outcomes are written by its writer thread, never on the loop; a plain
    `AlertStore` (tools, tests) is written synchronously.
    """

    def __init__(
        self,
        store: AlertStore | StoreWorker,
        mid_price_of: MidPriceOf,
        *,
        clock_ms: Callable[[], int] = _wall_ms,
        interval_s: float = 1.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        sources: Iterable[str] = ("live", "simulated"),
        max_active: int = 10_000,
    ) -> None:
        self.store = store
        self._mid_price_of = mid_price_of
        self._clock_ms = clock_ms
        self.interval_s = interval_s
        self._sleep = sleep
        self.sources = frozenset(sources)
        self.max_active = max_active
        self._active: dict[str, tuple[str, str, OutcomeAccumulator]] = {}
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0  # alerts not tracked because max_active was reached

    @property
    def active(self) -> int:
        return len(self._active)

    def track(self, alert: AlertRecord) -> None:
        if not alert.alert_key or alert.source not in self.sources:
            return
        if len(self._active) >= self.max_active:
            self.dropped += 1
            return
        acc = OutcomeAccumulator(self._clock_ms(), alert.mid_price)
        self._active[alert.alert_key] = (alert.exchange, alert.symbol, acc)

    def tick(self, now_ms: int | None = None) -> None:
        now = self._clock_ms() if now_ms is None else now_ms
        mids: dict[tuple[str, str], float | None] = {}
        done: list[str] = []
        for alert_key, (exchange, symbol, acc) in self._active.items():
            key = (exchange, symbol)
            if key not in mids:
                try:
                    mids[key] = self._mid_price_of(exchange, symbol)
                except Exception as exc:
                    log.debug("mid price of %s %s failed: %s", exchange, symbol, type(exc).__name__)
                    mids[key] = None
            changed = acc.add(now, mids[key])
            if changed:
                self._save(alert_key, acc)
            if acc.complete:
                done.append(alert_key)
        for alert_key in done:
            del self._active[alert_key]

    def _save(self, alert_key: str, acc: OutcomeAccumulator) -> None:
        result = acc.result()
        if isinstance(self.store, StoreWorker):
            def done(_: object, exc: BaseException | None) -> None:
                if exc is not None:
                    log.debug("saving outcome of alert %s failed: %s", alert_key, type(exc).__name__)

            # Best effort: a partial outcome that cannot be written now is
            # written with the next mark, or is lost with the store.
            self.store.write(lambda s: s.save_outcome_for_key(alert_key, result), done)
            return
        try:
            self.store.save_outcome_for_key(alert_key, result)
        except Exception as exc:
            log.error("saving outcome of alert %s failed: %s", alert_key, type(exc).__name__)

    async def _run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("outcome tracker tick failed")
            await self._sleep(self.interval_s)

    async def resume(self, now_ms: int | None = None) -> int:
        """Track again the alerts of the last 15 min whose outcome is unfinished
        (the process restarted).  Returns how many were resumed."""
        now = self._clock_ms() if now_ms is None else now_ms
        since_ms = now - WINDOW_S * 1000
        resumed = 0
        try:
            if isinstance(self.store, StoreWorker):
                rows = await self.store.read(lambda s: s.unfinished_outcomes(since_ms=since_ms))
            else:
                rows = self.store.unfinished_outcomes(since_ms=since_ms)
        except Exception as exc:
            log.error("reading unfinished outcomes failed: %s", type(exc).__name__)
            return 0
        for alert, saved in rows:
            if not alert.alert_key or alert.alert_key in self._active or alert.source not in self.sources:
                continue
            if saved is None or saved.get("start_ms") is None:
                acc = OutcomeAccumulator(alert.created_ms, alert.mid_price)
            else:
                acc = OutcomeAccumulator.resume(saved)
            self._active[alert.alert_key] = (alert.exchange, alert.symbol, acc)
            resumed += 1
        if resumed:
            log.info("resumed outcome tracking of %d recent alert(s)", resumed)
        return resumed

    async def start(self) -> None:
        if self._task is None:
            await self.resume()
            self._task = asyncio.create_task(self._run(), name="alert-outcomes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # Keep what was seen so far (marked incomplete).
        for alert_key, (_, _, acc) in self._active.items():
            self._save(alert_key, acc)
