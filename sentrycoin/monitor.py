"""Wires a frame source to books, detectors, the alert pipeline and the HTTP surface.

    source (live venues | simulated market)
      -> feed handler (per venue) -> Market (book + detector)
      -> AlertManager.submit (SQLite outbox, then notifiers in their own tasks)
    HTTP server reads the same Market objects (no copies per message).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from sentrycoin import __version__
from sentrycoin.alerts.factory import build_notifiers
from sentrycoin.alerts.manager import AlertManager
from sentrycoin.alerts.outbox import StoreWorker
from sentrycoin.alerts.outcomes import OutcomeTracker
from sentrycoin.config import ConfigError, Settings
from sentrycoin.fallback import PROBE_BACKOFF_MAX_S, MockFallback
from sentrycoin.feeds.base import FeedCounters, FeedHandler
from sentrycoin.feeds.registry import book_capacity
from sentrycoin.ha.leases import LeaseManager
from sentrycoin.ha.setup import HARuntime, HASettings
from sentrycoin.market import AlertEvent, Market
from sentrycoin.server.metrics import ProcessingTimeHistogram
from sentrycoin.store import StoreUnwritable, check_writable, default_db_path
from sentrycoin.transport import TransportSettings

log = logging.getLogger("sentrycoin.monitor")

#: One frame in SAMPLE_EVERY has its processing time measured for /metrics.
SAMPLE_EVERY = 16


def sample_processing_time(handler: FeedHandler, histogram: ProcessingTimeHistogram) -> None:
    """Time one `on_frame` call in SAMPLE_EVERY (decode + sync checks + book + detector)."""
    inner = handler.on_frame
    seen = 0

    def on_frame(conn_id: int, data: bytes, recv_ms: int) -> None:
        nonlocal seen
        seen += 1
        if seen % SAMPLE_EVERY:
            inner(conn_id, data, recv_ms)
            return
        start = perf_counter_ns()
        inner(conn_id, data, recv_ms)
        histogram.observe_ns(perf_counter_ns() - start)

    handler.on_frame = on_frame  # type: ignore[method-assign]


class Monitor:
    """One running SentryCoin: markets, their source, alerts and the server."""

    version = __version__

    def __init__(
        self,
        settings: Settings,
        *,
        env: Mapping[str, str] | None = None,
        serve_http: bool = True,
        console: bool = True,
        transport: TransportSettings | None = None,
        probe_backoff_max_s: float = PROBE_BACKOFF_MAX_S,
    ) -> None:
        self.settings = settings
        # What was asked for; `mode` says what is shown (MOCK_FALLBACK can mix).
        self.configured_mode = "simulated" if settings.simulated else "live"
        self.transport_settings = transport or TransportSettings(stale_after_s=settings.stale_after_s)
        self.probe_backoff_max_s = probe_backoff_max_s
        self.stale_after_s = settings.stale_after_s
        self.started_monotonic = time.monotonic()
        self.serve_http = serve_http
        self.processing_time = ProcessingTimeHistogram()
        self._env = env
        # REDIS_URL / SHARD_COUNT / SHARD_INDEX / REPLICA_ID (sentrycoin/ha/setup.py)
        self.ha_settings = HASettings.from_env(os.environ if env is None else env)
        # SENTRY_DB / alerts.db, else the default: the simulated market's own file.
        self.db_path = (Path(settings.db_path) if settings.db_path
                        else default_db_path(simulated=self.configured_mode == "simulated"))
        try:
            check_writable(self.db_path)
        except StoreUnwritable as exc:
            raise ConfigError(str(exc)) from None
        # Opened by its writer thread: a locked database delays writes, not startup.
        self.store = StoreWorker(self.db_path, retention_days=settings.alert_retention_days)
        notifiers = build_notifiers(
            telegram_token=settings.telegram_bot_token,
            telegram_chat_id=settings.telegram_chat_id,
            telegram_api_url=settings.telegram_api_url,
            webhook_url=settings.webhook_url,
            public_url=settings.public_url,
            console=console,
        )
        self.ha: HARuntime | None = None
        if self.ha_settings.redis_url:
            self.ha = HARuntime(self.ha_settings, self._cooldown_ms_of)
        self.outcomes = OutcomeTracker(self.store, self._mid_price_of)
        # With Redis: one user-facing message per episode across replicas; the
        # manager claims each alert before sending (a loser records `suppressed`).
        self.alert_manager = AlertManager(
            self.store, notifiers, outcomes=self.outcomes,
            gate=self.ha.gate if self.ha else None,
            gated=self.ha.gated_names(notifiers) if self.ha else (),
        )
        self.markets: list[Market] = []
        self._by_key: dict[tuple[str, str], Market] = {}
        self.handlers: list[FeedHandler] = []
        self._source: Any = None
        self.fallback: MockFallback | None = None  # MOCK_FALLBACK, once the live runner runs
        self._http_runner: Any = None
        self.http_port: int | None = None
        # REDIS_URL + SHARD_COUNT > 1: leases decide which markets this replica watches.
        self._leases: LeaseManager | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._lease_wake = asyncio.Event()
        self._lease_applying = False
        self._lease_lock = asyncio.Lock()
        if self.configured_mode == "simulated":
            self._build_simulated()
        else:
            self._build_live()
            if self.ha is not None and self.ha_settings.leasing:
                self._leases = self._make_leases()

    # -- construction -------------------------------------------------------

    def _add_market(self, exchange: str, symbol: str, detector, source: str) -> Market:
        market = Market(
            exchange, symbol,
            depth=self.settings.depth,
            capacity=book_capacity(exchange, self.settings.depth),
            settings=detector,
            on_alert=self._on_alert,
            source=source,
        )
        self.markets.append(market)
        self._by_key[market.key] = market
        return market

    def _build_live(self) -> None:
        from sentrycoin.feeds.registry import make_handler

        by_venue: dict[str, list[Market]] = defaultdict(list)
        mine = set(self.ha_settings.my_markets([(mc.exchange, mc.symbol) for mc in self.settings.markets]))
        for mc in self.settings.markets:
            if (mc.exchange, mc.symbol) not in mine:
                continue  # another shard's market (SHARD_COUNT/SHARD_INDEX)
            by_venue[mc.exchange].append(self._add_market(mc.exchange, mc.symbol, mc.detector, "live"))
        for venue, markets in by_venue.items():
            handler = make_handler(venue, markets, depth=self.settings.depth, env=self._env)
            sample_processing_time(handler, self.processing_time)
            self.handlers.append(handler)

    def _build_simulated(self) -> None:
        from sentrycoin.sim.source import simulated_source

        self._source = simulated_source(
            list(self.settings.sim_symbols),
            scenario=self.settings.sim_scenario,
            seed=self.settings.sim_seed,
            settings=self.settings.detector,
            on_alert=self._on_alert,
            depth=self.settings.depth,
            realtime=True,
        )
        for market in self._source.markets:
            self.markets.append(market)
            self._by_key[market.key] = market
        handler = self._source.handler
        sample_processing_time(handler, self.processing_time)
        self.handlers.append(handler)

    # -- hot path -----------------------------------------------------------

    def _on_alert(self, event: AlertEvent) -> None:
        self.alert_manager.submit(event)

    def _cooldown_ms_of(self, exchange: str, symbol: str) -> int:
        market = self._by_key.get((exchange, symbol))
        detector = market.settings if market is not None else self.settings.detector
        return int(detector.cooldown_s * 1000)

    def _mid_price_of(self, exchange: str, symbol: str) -> float | None:
        market = self._by_key.get((exchange, symbol))
        if market is None or not market.valid:
            return None
        return market.mid_price()

    # -- what the HTTP surface reads ----------------------------------------

    @property
    def mode(self) -> str:
        """What the shown books are: "live", "simulated", or "mixed" (MOCK_FALLBACK
        switched some venues to the simulator, others are live)."""
        if self.configured_mode == "simulated":
            return "simulated"
        sources = {m.source for m in self.markets}
        if "simulated" in sources:
            return "mixed" if "live" in sources else "simulated"
        return "live"

    def fallback_status(self) -> list[dict[str, Any]]:
        """Venues on simulated data because they could not be reached (/status "fallback")."""
        return self.fallback.status() if self.fallback is not None else []

    def health_problems(self) -> list[dict[str, Any]]:
        """Problems of the whole monitor for /health, beyond the books' own
        (sentrycoin.server.status adds those): each {"kind", "message", ...}."""
        return self.fallback.problems() if self.fallback is not None else []

    def settings_redacted(self) -> dict[str, Any]:
        out = self.settings.redacted()
        out["ha"] = self.ha_settings.redacted()
        return out

    def feed_counters(self) -> dict[str, FeedCounters]:
        return {h.venue: h.counters for h in self.handlers}

    def ha_stats(self) -> dict[str, Any] | None:
        """Coordinator, gate and lease counters for /metrics; None without REDIS_URL."""
        if self.ha is None:
            return None
        out = self.ha.stats()
        if self._leases is not None:
            out["leases_held"] = self._leases.stats()["held"]
        return out

    # -- lifecycle ----------------------------------------------------------

    async def run(self, stop: asyncio.Event, on_ready: Callable[[Monitor], None] | None = None) -> None:
        """Run until `stop` is set; then stop the source, flush alerts, close the server."""
        if self.ha is not None:
            await self.ha.start()  # never raises: no Redis means local cooldowns + retries
        await self.alert_manager.start()
        source_task: asyncio.Task[None] | None = None
        try:
            if self.serve_http:
                await self._start_http()
            source_task = asyncio.create_task(self._run_source(stop), name="sentrycoin-source")
            if on_ready is not None:
                on_ready(self)
            stop_task = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({source_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            await self._stop_source()
            await self._stop_leases(release=True)  # graceful: survivors take over on their next round
            for task in (source_task, stop_task):
                if not task.done():
                    task.cancel()
            await asyncio.gather(source_task, stop_task, return_exceptions=True)
            if source_task in done and source_task.exception() is not None:
                raise source_task.exception()  # type: ignore[misc]
        finally:
            if source_task is not None and not source_task.done():
                # Cancelled from outside: close the feeds' sockets too, as a dying process would.
                await self._stop_source()
                source_task.cancel()
                await asyncio.gather(source_task, return_exceptions=True)
            await self.alert_manager.stop()
            await self._stop_leases(release=False)  # cancelled (a crash): leases expire after their TTL
            if self.ha is not None:
                await self.ha.stop()
            if self._http_runner is not None:
                await self._http_runner.cleanup()

    async def _run_source(self, stop: asyncio.Event) -> None:
        if self.configured_mode == "simulated":
            log.info(
                "SIMULATED market: scenario %r, %d symbols (%s); no network, no keys",
                self.settings.sim_scenario, len(self.markets), ", ".join(m.symbol for m in self.markets),
            )
            await self._source.run(stop, speed=self.settings.sim_speed)
            return
        from sentrycoin.feeds.recovery import RecoveryPolicy
        from sentrycoin.live import LiveRunner

        self._source = LiveRunner(self.handlers, transport=self.transport_settings,
                                  recovery=RecoveryPolicy(snapshot_timeout_s=self.settings.snapshot_timeout_s))
        await self._start_leases()
        log.info("watching %d live markets: %s", len(self.markets),
                 ", ".join(f"{m.exchange}:{m.symbol}" for m in self.markets))
        if not self.settings.mock_fallback:
            await self._source.run()
            return
        await self._source.start()
        self.fallback = MockFallback(
            self._source, after_s=self.settings.mock_fallback_after_s, make_source=self._simulated_twins,
            show=self._show_instead, speed=self.settings.sim_speed, probe_backoff_max_s=self.probe_backoff_max_s,
        )
        self.fallback.start()
        try:
            await self._source.run()
        finally:
            await self.fallback.stop()

    def _simulated_twins(self, venue: str, live_markets: list[Market]) -> Any:
        """MOCK_FALLBACK: a simulated source whose markets stand in for `live_markets`."""
        from sentrycoin.sim.source import simulated_source

        source = simulated_source(
            [m.symbol for m in live_markets], scenario=self.settings.sim_scenario, seed=self.settings.sim_seed,
            settings=live_markets[0].settings, on_alert=self._on_alert, depth=self.settings.depth,
            exchange=venue, realtime=True,
        )
        sample_processing_time(source.handler, self.processing_time)
        return source

    def _show_instead(self, old: Market, new: Market) -> None:
        """Show `new` where `old` was: /status, /metrics, the dashboard and lookups follow."""
        self.markets[:] = [new if m is old else m for m in self.markets]
        if self._by_key.get(old.key) is old:
            self._by_key[old.key] = new

    # -- lease-driven market ownership (REDIS_URL + SHARD_COUNT > 1) ----------

    def _make_leases(self) -> LeaseManager:
        """Leases over ALL configured live markets; own shard preferred (sentrycoin/ha/leases.py).

        While Redis is unreachable the manager keeps every lease it holds and
        takes its whole own shard, so this replica keeps watching everything it
        watched: an outage never blinds the fleet.  The price is possible
        double coverage, and during the outage the episode claims fall back to
        per-replica local cooldowns, so two replicas watching one market may
        both send that market's alert until Redis is back.
        """
        hs = self.ha_settings
        assert self.ha is not None
        keys = [(mc.exchange, mc.symbol) for mc in self.settings.markets]
        return LeaseManager(self.ha.coordinator, keys, shard_count=hs.shard_count, shard_index=hs.shard_index,
                            ttl_ms=int(hs.lease_ttl_s * 1000), on_change=self._on_lease_change)

    async def _start_leases(self) -> None:
        if self._leases is None or self._lease_task is not None:
            return
        self._lease_task = asyncio.create_task(self._lease_loop(), name="sentrycoin-lease-ownership")
        await self._leases.start()  # first round now: own shard (or what another replica has not taken)
        # Before the runner opens anything: no connection for a market of our shard
        # that another replica still holds (it hands it back on its next round).
        await self._apply_leases()

    def _on_lease_change(self, kind: str, key: tuple[str, str]) -> None:
        # Called inside a lease round: only note it; _lease_loop rebuilds after the debounce.
        if self._lease_task is not None:
            self._lease_wake.set()

    async def _lease_loop(self) -> None:
        while True:
            await self._lease_wake.wait()
            # A takeover reports several markets in one round (and a hand-back
            # the next): collect them so each venue is rebuilt once.
            await asyncio.sleep(self.ha_settings.lease_debounce_s)
            self._lease_wake.clear()
            self._lease_applying = True
            try:
                await self._apply_leases()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("HA: applying market lease changes failed; retrying")
                await asyncio.sleep(1.0)
                self._lease_wake.set()
            finally:
                self._lease_applying = False
            if self._lease_task is None:
                return  # _stop_leases is waiting for this swap to finish

    async def _apply_leases(self) -> None:
        """Watch exactly the markets whose lease this replica holds."""
        assert self._leases is not None
        async with self._lease_lock:  # the first round's apply and the loop's never interleave
            await self._apply_held(self._leases.held)

    async def _apply_held(self, held: frozenset[tuple[str, str]]) -> None:
        from sentrycoin.live import LiveRunner

        runner = self._source if isinstance(self._source, LiveRunner) else None
        configs = {(mc.exchange, mc.symbol): mc for mc in self.settings.markets}
        for venue in dict.fromkeys(exchange for exchange, _ in configs):
            handler = next((h for h in self.handlers if h.venue == venue), None)
            if self.fallback is not None and venue in self.fallback.active:
                continue  # MOCK_FALLBACK shows this venue on the simulator and probes it: leave it be
            want = [k for k in configs if k[0] == venue and k in held]
            have = {(venue, symbol) for symbol in (handler.markets if handler is not None else ())}
            # A handler the runner no longer runs (a rebuild that failed halfway) is rebuilt too.
            orphan = handler is not None and runner is not None and not any(h is handler for h in runner.handlers)
            if set(want) != have or orphan:
                await self._rebuild_venue(venue, handler, want, configs)
        order = {k: i for i, k in enumerate(configs)}
        self.markets.sort(key=lambda m: order.get(m.key, len(order)))

    async def _rebuild_venue(self, venue: str, old: FeedHandler | None, want: list[tuple[str, str]],
                             configs: dict[tuple[str, str], Any]) -> None:
        """Replace `venue`'s handler by one over `want`: kept markets resync, new ones start empty."""
        from sentrycoin.feeds.registry import make_handler
        from sentrycoin.live import LiveRunner

        runner = self._source if isinstance(self._source, LiveRunner) else None
        keep: dict[tuple[str, str], Market] = {m.key: m for m in (old.markets.values() if old is not None else ())}
        for market in keep.values():
            market.invalidate("lease change: resubscribing")  # no alerts from a book mid-handover
        if old is not None and runner is not None:
            await runner.remove_handler(old)  # nothing touches its books after this
        gone = [k for k in keep if k not in want]
        added = [k for k in want if k not in keep]
        for key in gone:
            market = keep[key]
            market.connected = False
            market.invalidate("lease lost: another replica watches it")
            if self._by_key.get(key) is market:
                del self._by_key[key]
        self.markets[:] = [m for m in self.markets if self._by_key.get(m.key) is m]
        markets: list[Market] = []
        for key in want:
            kept = keep.get(key)
            if kept is None:
                market = self._add_market(venue, key[1], configs[key].detector, "live")
            else:
                market = kept
                market.connected = False
                market.invalidate("lease change: resubscribing")
            markets.append(market)
        new = make_handler(venue, markets, depth=self.settings.depth, env=self._env) if markets else None
        if new is not None:
            sample_processing_time(new, self.processing_time)
        if old is not None and old in self.handlers:
            if new is not None:
                self.handlers[self.handlers.index(old)] = new
            else:
                self.handlers.remove(old)
        elif new is not None:
            self.handlers.append(new)
        if new is not None and runner is not None:
            runner.add_handler(new)
        log.info("HA: %s now watching %d market(s)%s%s", venue, len(markets),
                 f"; acquired {', '.join(s for _, s in added)}" if added else "",
                 f"; no longer held: {', '.join(s for _, s in gone)}" if gone else "")

    async def _stop_leases(self, *, release: bool) -> None:
        """Stop renewing (idempotent).  `release`: hand leases back now instead of after the TTL."""
        task, self._lease_task = self._lease_task, None
        if task is not None:
            if self._lease_applying:
                # Let a handler swap finish: cancelled halfway it could leave a venue unwatched.
                await asyncio.wait({task}, timeout=10.0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._leases is not None:
            await self._leases.stop(release=release)

    async def _stop_source(self) -> None:
        source = self._source
        # The simulated source stops on the shared `stop` event; the live runner has stop().
        if source is not None and hasattr(source, "stop"):
            result = source.stop()
            if asyncio.iscoroutine(result):
                await result

    async def _start_http(self) -> None:
        from sentrycoin.server.app import bound_port, create_app, start_server

        app = create_app(self, status_token=self.settings.status_token)
        self._http_runner, _ = await start_server(app, self.settings.host, self.settings.port)
        self.http_port = bound_port(self._http_runner)
        shown_host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "::") else self.settings.host
        log.info("dashboard: http://%s:%d/  (status: /status, health: /health, metrics: /metrics)",
                 shown_host, self.http_port)
