"""Prometheus exposition for /metrics.

Nothing on the hot path touches prometheus-client: `MonitorCollector` reads
the counters the markets, feed handlers and alert manager already keep (plain
ints) at scrape time and turns them into metric families.  The only metric
the hot path feeds is the per-message processing-time histogram, and that is
a fixed-bucket int array (`ProcessingTimeHistogram`) fed by *sampling*:

    hist = ProcessingTimeHistogram()          # one per monitor, expose it as
                                              # monitor.processing_time
    # in the frame loop, time one message in every 64:
    if (n := n + 1) & 63 == 0:
        t0 = time.perf_counter_ns()
        handler.on_frame(conn_id, data, recv_ms)
        hist.observe_ns(time.perf_counter_ns() - t0)
    else:
        handler.on_frame(conn_id, data, recv_ms)

`observe_ns` is one `bisect` plus three int additions (no locks, no objects).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from sentrycoin.server.protocols import MonitorLike
from sentrycoin.server.status import DEGRADED_AFTER_STALE, fallback_status, invalid_books

#: Upper bounds (seconds) of the processing-time buckets: 1 µs .. 50 ms.
DEFAULT_BUCKETS_S: tuple[float, ...] = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2,
)


class ProcessingTimeHistogram:
    """Fixed-bucket histogram of per-message processing time, fed by sampling.

    Bucket counts are *non*-cumulative here (one increment per sample);
    the collector makes them cumulative at scrape time.
    """

    __slots__ = ("bounds_s", "_bounds_ns", "counts", "sum_ns", "count")

    def __init__(self, buckets_s: tuple[float, ...] = DEFAULT_BUCKETS_S) -> None:
        if list(buckets_s) != sorted(set(buckets_s)) or not buckets_s:
            raise ValueError("buckets must be strictly increasing and non-empty")
        self.bounds_s = tuple(buckets_s)
        self._bounds_ns = tuple(int(round(b * 1e9)) for b in buckets_s)
        self.counts = [0] * (len(buckets_s) + 1)  # last slot: > largest bound (+Inf)
        self.sum_ns = 0
        self.count = 0

    def observe_ns(self, elapsed_ns: int) -> None:
        # bisect_left: a sample equal to a bound belongs to that bucket (le=bound).
        self.counts[bisect_left(self._bounds_ns, elapsed_ns)] += 1
        self.sum_ns += elapsed_ns
        self.count += 1

    def observe_s(self, elapsed_s: float) -> None:
        self.observe_ns(int(elapsed_s * 1e9))

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds_s, self.counts[:-1], strict=True):
            running += n
            out.append((repr(bound), float(running)))
        out.append(("+Inf", float(running + self.counts[-1])))
        return out


def _labels(market: Any) -> list[str]:
    return [market.exchange, market.symbol]


class MonitorCollector(Collector):
    """Builds every sentrycoin_* metric from the monitor at scrape time."""

    def __init__(self, monitor: MonitorLike) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self.monitor
        yield from self._process(monitor)
        yield from self._feeds(monitor)
        yield from self._books(monitor)
        yield from self._alerts(monitor)
        yield from self._ha(monitor)
        yield from self._processing(monitor)

    # -- families ------------------------------------------------------------

    def _process(self, monitor: MonitorLike) -> Iterator[Metric]:
        info = GaugeMetricFamily("sentrycoin_info", "Build and run mode", labels=["version", "mode"])
        info.add_metric([monitor.version, monitor.mode], 1.0)
        yield info
        yield GaugeMetricFamily(
            "sentrycoin_uptime_seconds", "Seconds since the monitor started",
            value=max(0.0, time.monotonic() - monitor.started_monotonic),
        )

    def _feeds(self, monitor: MonitorLike) -> Iterator[Metric]:
        frames = CounterMetricFamily("sentrycoin_feed_frames", "WebSocket frames received", labels=["venue"])
        nbytes = CounterMetricFamily("sentrycoin_feed_bytes", "WebSocket payload bytes received", labels=["venue"])
        errors = CounterMetricFamily(
            "sentrycoin_feed_decode_errors", "Frames that could not be decoded", labels=["venue"])
        for venue, counters in sorted(monitor.feed_counters().items()):
            frames.add_metric([venue], float(counters.frames))
            nbytes.add_metric([venue], float(counters.bytes))
            errors.add_metric([venue], float(counters.decode_errors))
        yield from (frames, nbytes, errors)

    def _books(self, monitor: MonitorLike) -> Iterator[Metric]:
        labels = ["exchange", "symbol"]
        messages = CounterMetricFamily("sentrycoin_book_messages", "Book messages applied", labels=labels)
        resyncs = CounterMetricFamily("sentrycoin_book_resyncs", "Times a book was invalidated", labels=labels)
        reconnects = CounterMetricFamily(
            "sentrycoin_book_reconnects", "Feed reconnects, failed connection attempts included", labels=labels)
        clock_skew = CounterMetricFamily(
            "sentrycoin_book_clock_skew", "Messages whose venue time was implausibly far from the local clock",
            labels=labels)
        checksum_mismatches = CounterMetricFamily(
            "sentrycoin_book_checksum_mismatches", "Venue checksums the local book did not match", labels=labels)
        crossed = CounterMetricFamily(
            "sentrycoin_book_crossed", "Messages after which the book was crossed (each made it invalid)",
            labels=labels)
        rejected = CounterMetricFamily(
            "sentrycoin_book_rejected", "Messages refused (bad values, gaps, checksums)", labels=labels)
        detector_alerts = CounterMetricFamily(
            "sentrycoin_detector_alerts", "Alerts raised by the detector", labels=labels)
        ratio = GaugeMetricFamily(
            "sentrycoin_book_ratio", "Ask/bid volume ratio over the best N levels (NaN: undefined)",
            labels=labels)
        danger = GaugeMetricFamily("sentrycoin_book_danger_ratio", "Alert threshold", labels=labels)
        bid_vol = GaugeMetricFamily("sentrycoin_book_bid_volume", "Bid volume over the best N levels",
                                    labels=labels)
        ask_vol = GaugeMetricFamily("sentrycoin_book_ask_volume", "Ask volume over the best N levels",
                                    labels=labels)
        valid = GaugeMetricFamily("sentrycoin_book_valid", "1 if the book is in sync", labels=labels)
        connected = GaugeMetricFamily("sentrycoin_book_connected", "1 if the feed is connected", labels=labels)
        age = GaugeMetricFamily(
            "sentrycoin_book_last_update_age_seconds", "Seconds since the last applied message (NaN: never)",
            labels=labels)
        now_s = time.monotonic()
        for m in monitor.markets:
            lab = _labels(m)
            book = m.book
            messages.add_metric(lab, float(m.messages))
            resyncs.add_metric(lab, float(m.resyncs))
            reconnects.add_metric(lab, float(m.reconnects))
            clock_skew.add_metric(lab, float(m.clock_skew))
            checksum_mismatches.add_metric(lab, float(m.checksum_mismatches))
            crossed.add_metric(lab, float(m.crossed))
            rejected.add_metric(lab, float(m.rejected))
            detector_alerts.add_metric(lab, float(m.detector.alerts))
            ratio.add_metric(lab, float(book.ratio))
            danger.add_metric(lab, float(m.detector.danger_ratio))
            bid_vol.add_metric(lab, float(book.bid_volume))
            ask_vol.add_metric(lab, float(book.ask_volume))
            valid.add_metric(lab, 1.0 if m.valid else 0.0)
            connected.add_metric(lab, 1.0 if m.connected else 0.0)
            last = m.last_update_monotonic
            age.add_metric(lab, float("nan") if last is None else max(0.0, now_s - last))
        invalid = GaugeMetricFamily(
            "sentrycoin_books_invalid",
            f"Books invalid for longer than {DEGRADED_AFTER_STALE:g} x STALE_AFTER_S (the ones /health names)",
            value=float(len(invalid_books(monitor.markets, monitor.stale_after_s, now_s))))
        simulated = GaugeMetricFamily(
            "sentrycoin_venues_simulated", "Venues MOCK_FALLBACK shows on simulated data (unreachable)",
            value=float(len(fallback_status(monitor))))
        yield from (messages, resyncs, reconnects, clock_skew, checksum_mismatches, crossed, rejected, detector_alerts,
                    ratio, danger, bid_vol, ask_vol, valid, connected, age, invalid, simulated)

    def _alerts(self, monitor: MonitorLike) -> Iterator[Metric]:
        manager = monitor.alert_manager
        stats = getattr(manager, "stats", None) if manager is not None else None
        submitted = CounterMetricFamily("sentrycoin_alerts_submitted", "Alerts handed to the alert manager")
        dropped = CounterMetricFamily(
            "sentrycoin_alerts_queue_dropped", "Alerts dropped because the alert queue was full")
        by_sev = CounterMetricFamily("sentrycoin_alerts", "Alerts by severity", labels=["severity"])
        delivered = CounterMetricFamily(
            "sentrycoin_notifier_delivered", "Alert deliveries that succeeded", labels=["notifier"])
        failed = CounterMetricFamily(
            "sentrycoin_notifier_failures", "Alert deliveries that failed", labels=["notifier"])
        suppressed = CounterMetricFamily(
            "sentrycoin_notifier_suppressed",
            "Alert deliveries not sent because another HA replica sent the alert", labels=["notifier"])
        depth = GaugeMetricFamily("sentrycoin_alert_queue_depth", "Alerts waiting in the delivery queue")
        store_errors = CounterMetricFamily(
            "sentrycoin_store_errors", "Alert store operations that failed (alerts are then delivered from memory)")
        unknown = CounterMetricFamily(
            "sentrycoin_notifier_outcome_unknown",
            "Delivery attempts whose outcome is unknown (timeout or connection lost after sending)",
            labels=["notifier"])
        lost = CounterMetricFamily(
            "sentrycoin_alerts_lost", "Alerts that could not be kept (memory full while the store was down)")
        if stats is not None:
            submitted.add_metric([], float(_get(stats, "submitted", 0)))
            dropped.add_metric([], float(_get(stats, "queue_dropped", 0)))
            for sev, n in sorted((_get(stats, "by_severity", None) or {}).items()):
                by_sev.add_metric([str(sev)], float(n))
            for name, n in sorted((_get(stats, "delivered", None) or {}).items()):
                delivered.add_metric([str(name)], float(n))
            for name, n in sorted((_get(stats, "failed", None) or {}).items()):
                failed.add_metric([str(name)], float(n))
            for name, n in sorted((_get(stats, "suppressed", None) or {}).items()):
                suppressed.add_metric([str(name)], float(n))
            depth.add_metric([], float(_get(stats, "queue_depth", 0)))
            store_errors.add_metric([], float(_get(stats, "store_errors", 0)))
            for name, n in sorted((_get(stats, "outcome_unknown", None) or {}).items()):
                unknown.add_metric([str(name)], float(n))
            lost.add_metric([], float(_get(stats, "lost", 0)))
        yield from (submitted, dropped, by_sev, delivered, failed, suppressed, depth, store_errors, unknown, lost)

    def _ha(self, monitor: MonitorLike) -> Iterator[Metric]:
        """Replicas on Redis (sentrycoin/ha): only when the monitor runs with REDIS_URL."""
        ha_stats = getattr(monitor, "ha_stats", None)
        stats = ha_stats() if callable(ha_stats) else None
        if not stats:
            return
        degraded = GaugeMetricFamily(
            "sentrycoin_ha_redis_degraded", "1 while Redis is unreachable (local cooldowns in use)")
        degraded.add_metric([], 1.0 if stats.get("degraded") else 0.0)
        claims = CounterMetricFamily(
            "sentrycoin_ha_claims", "Alert episode claims by result: won (send), lost (another replica "
            "sent it), local (decided by the local cooldown while Redis was down)", labels=["result"])
        for result, key in (("won", "claims_won"), ("lost", "claims_lost"), ("local", "local_claims")):
            claims.add_metric([result], float(stats.get(key, 0)))
        errors = CounterMetricFamily("sentrycoin_ha_redis_errors", "Redis calls that failed or timed out")
        errors.add_metric([], float(stats.get("redis_errors", 0)))
        outages = CounterMetricFamily("sentrycoin_ha_redis_outages", "Times Redis became unreachable")
        outages.add_metric([], float(stats.get("outages", 0)))
        out: list[Metric] = [degraded, claims, errors, outages]
        if "leases_held" in stats:
            held = GaugeMetricFamily("sentrycoin_ha_leases_held", "Markets this replica holds the lease of")
            held.add_metric([], float(stats["leases_held"]))
            out.append(held)
        yield from out

    def _processing(self, monitor: MonitorLike) -> Iterator[Metric]:
        hist: ProcessingTimeHistogram | None = getattr(monitor, "processing_time", None)
        family = HistogramMetricFamily(
            "sentrycoin_message_processing_seconds",
            "Time to decode and apply one book message (sampled)",
        )
        if hist is not None:
            family.add_metric([], hist.cumulative(), sum_value=hist.sum_ns / 1e9)
        yield family


def _get(stats: Any, name: str, default: Any) -> Any:
    """Stats may be a dataclass-like object or a plain dict."""
    if isinstance(stats, dict):
        return stats.get(name, default)
    value = getattr(stats, name, default)
    return value() if callable(value) else value


def build_registry(monitor: MonitorLike) -> CollectorRegistry:
    """A private registry per app (tests run several apps in one process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(monitor))
    return registry
