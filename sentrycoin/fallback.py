"""MOCK_FALLBACK: a venue nobody can reach is shown on the simulator, and probed until it answers.

Each venue of a live run is in one of two states:

* **live**: its markets are the live ones.  When none of them has had an
  open connection for `after_s` (MOCK_FALLBACK_AFTER_S; counted from the
  start, or from when the last connection closed), the venue switches.
* **simulated**: in everything the monitor shows (/status, /metrics, the
  dashboard, alerts) each of its markets is replaced by a simulated *twin*:
  same exchange and symbol, source ``"simulated"``, so every alert it raises
  says so.  The venue's live handler keeps running in the live runner and
  is the probe: its connections keep retrying, with their backoff cap raised
  to `PROBE_BACKOFF_MAX_S` (5 minutes) so a long outage costs the venue
  little.  A live market whose book is in sync again (connected, snapshot
  applied) is shown again at once and its twin silenced; when no twin is
  left the simulator stops and the backoff cap goes back to normal.

Live and simulated data never mix in one book: a twin is a separate
`Market`.  The states are what users see: `status()` feeds /status
``fallback`` and the dashboard banner, `problems()` feeds /health.
Proof: tests/transport/test_mock_fallback.py runs a venue emulator that goes
down and comes back (live -> simulated -> live, labelled at every step).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sentrycoin.feeds.base import FeedHandler
from sentrycoin.market import Market
from sentrycoin.store import iso_utc

if TYPE_CHECKING:
    from sentrycoin.live import LiveRunner
    from sentrycoin.sim.source import SimSource

log = logging.getLogger("sentrycoin.fallback")

#: While a venue is on the simulator its connections retry at most this far apart.
PROBE_BACKOFF_MAX_S = 300.0
#: How often venue connectivity and the probes' books are looked at.
CHECK_EVERY_S = 0.25

#: Builds the simulated source for (venue, its live markets); the monitor supplies it.
SourceFactory = Callable[[str, list[Market]], "SimSource"]
#: Shows `new` where `old` was shown (the monitor's market list and lookups).
ShowMarket = Callable[[Market, Market], None]


def _silence(event: Any) -> None:
    """A twin no longer shown must raise nothing (its live market is back)."""


@dataclass(slots=True)
class VenueFallback:
    """One venue on the simulator: its probing live markets and the twins shown instead."""

    venue: str
    handler: FeedHandler  # the live handler, still running in the runner: the probe
    live: list[Market]
    twins: dict[tuple[str, str], Market]  # live key -> twin still shown
    source: SimSource
    stop: asyncio.Event
    since_ms: int
    since_monotonic: float
    task: asyncio.Task[None] | None = None
    back: list[str] = field(default_factory=list)  # symbols already live again

    def last_error(self) -> str | None:
        """Why the venue cannot be reached: the last failure of its first market still probing."""
        down = [m for m in self.live if m.key in self.twins]
        for market in down or self.live:
            if market.last_error:
                return market.last_error
        return None

    def status(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "since": iso_utc(self.since_ms),
            "simulated_symbols": [m.symbol for m in self.live if m.key in self.twins],
            "live_symbols": list(self.back),
            "last_error": self.last_error(),
            # Failed attempts count as reconnects (transport): how hard the probe tried.
            "probe_reconnects": sum(int(m.reconnects) for m in self.live),
        }


class MockFallback:
    """Watches the live runner's venues; switches unreachable ones to the simulator and back."""

    def __init__(
        self,
        runner: LiveRunner,
        *,
        after_s: float,
        make_source: SourceFactory,
        show: ShowMarket,
        speed: float = 1.0,
        probe_backoff_max_s: float = PROBE_BACKOFF_MAX_S,
        check_every_s: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runner = runner
        self.after_s = after_s
        self.make_source = make_source
        self.show = show
        self.speed = speed
        self.probe_backoff_max_s = probe_backoff_max_s
        self.check_every_s = check_every_s
        self.clock = clock
        self.active: dict[str, VenueFallback] = {}
        self.switches = 0  # venues switched to the simulator
        self.returns = 0  # venues fully live again
        self._down_since: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="sentrycoin-mock-fallback")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        tasks = []
        for fb in self.active.values():
            fb.stop.set()
            if fb.task is not None:
                tasks.append(fb.task)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end the probing for good
                log.exception("MOCK_FALLBACK check failed")
            await asyncio.sleep(self.check_every_s)

    # -- one look ---------------------------------------------------------------

    def check(self) -> None:
        now = self.clock()
        for handler in list(self.runner.handlers):
            venue = handler.venue
            fb = self.active.get(venue)
            if fb is not None:
                self._bring_back(fb)
                continue
            markets = list(handler.markets.values())
            if not markets or any(m.connected for m in markets):
                self._down_since.pop(venue, None)
                continue
            since = self._down_since.setdefault(venue, now)
            if now - since >= self.after_s:
                self._switch(handler, markets, now)

    def _switch(self, handler: FeedHandler, live: list[Market], now: float) -> None:
        venue = handler.venue
        source = self.make_source(venue, live)
        twins = {m.key: twin for m, twin in zip(live, source.markets, strict=True)}
        fb = VenueFallback(venue=venue, handler=handler, live=live, twins=twins, source=source,
                           stop=asyncio.Event(), since_ms=time.time_ns() // 1_000_000, since_monotonic=now)
        self._set_probe_cap(handler, self.probe_backoff_max_s)
        for market in live:
            self.show(market, twins[market.key])
        fb.task = asyncio.get_running_loop().create_task(
            source.run(fb.stop, speed=self.speed), name=f"sentrycoin-fallback-sim {venue}")
        self.active[venue] = fb
        self._down_since.pop(venue, None)
        self.switches += 1
        log.warning("%s unreachable for %.0f s (%s): %s switched to the SIMULATED market (MOCK_FALLBACK=true); "
                    "their alerts are labelled simulated; probing the venue (backoff up to %.0f s)",
                    venue, self.after_s, fb.last_error() or "no connection",
                    ", ".join(m.symbol for m in live), self.probe_backoff_max_s)

    def _bring_back(self, fb: VenueFallback) -> None:
        for market in fb.live:
            twin = fb.twins.get(market.key)
            if twin is None or not (market.valid and market.connected):
                continue
            self.show(twin, market)
            twin.on_alert = _silence
            del fb.twins[market.key]
            fb.back.append(market.symbol)
            log.warning("%s %s: venue answers again, book in sync: back on LIVE data", fb.venue, market.symbol)
        if fb.twins:
            return
        fb.stop.set()
        self._set_probe_cap(fb.handler, self.runner.transport_settings.backoff_max_s)
        del self.active[fb.venue]
        self.returns += 1
        log.warning("%s: every market back on LIVE data after %.0f s on the simulator",
                    fb.venue, self.clock() - fb.since_monotonic)

    def _set_probe_cap(self, handler: FeedHandler, max_s: float) -> None:
        # The runner opened these connections with the normal cap; a venue that is
        # down for hours is retried at most every `max_s` instead.
        for (handler_id, _conn_id), conn in self.runner.connections.items():
            if handler_id == id(handler):
                conn.backoff.max_s = max_s

    # -- what users see ----------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One entry per venue on simulated data (/status "fallback", the dashboard banner)."""
        return [fb.status() for fb in self.active.values()]

    def problems(self) -> list[dict[str, Any]]:
        """/health problems: every venue whose markets are (partly) shown on simulated data."""
        out = []
        for fb in self.active.values():
            st = fb.status()
            symbols = st["simulated_symbols"]
            out.append({
                "kind": "venue_simulated",
                "venue": fb.venue,
                "symbols": symbols,
                "since": st["since"],
                "last_error": st["last_error"],
                "message": (f"{fb.venue} unreachable ({st['last_error'] or 'no connection'}): "
                            f"{', '.join(symbols)} on SIMULATED data since {st['since']}; probing the venue"),
            })
        return out
