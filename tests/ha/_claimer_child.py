"""A replica in its own process, to be killed with SIGKILL (tests/ha/test_gate_e2e.py).

Runs a Market whose book trips the detector at --event-ms, an AlertManager
sending to Telegram at --api-url through a DeliveryGate on --redis with
replica id "a", prints SUBMITTED and keeps delivering (retrying) until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys


async def _main(a: argparse.Namespace) -> None:
    from sentrycoin.alerts import AlertManager, RetryPolicy, TelegramNotifier
    from sentrycoin.ha.coordinator import RedisCoordinator
    from sentrycoin.ha.gate import DeliveryGate, cooldown_lookup
    from sentrycoin.market import DetectorSettings, Market
    from sentrycoin.store import AlertStore

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    coord = RedisCoordinator(a.redis, replica_id="a", key_prefix="t")
    await coord.start()
    market = Market("binance", "BTC-USDT", settings=DetectorSettings(cooldown_s=300), source="simulated")
    gate = DeliveryGate(coord, cooldown_lookup([market]), lease_ttl_s=a.ttl)
    tg = TelegramNotifier(a.token, "-100", api_url=a.api_url, min_interval_s=0.0, request_timeout_s=2.0,
                          retry=RetryPolicy(base_s=0.2, max_s=0.2))
    manager = AlertManager(AlertStore(a.db), [tg], gate=gate, gated=["telegram"])
    market.on_alert = manager.submit
    await manager.start()
    for ask_qty, t in ((10.0, a.event_ms - 1_000), (30.0, a.event_ms)):
        market.book.load_snapshot([(99.5 - i * 0.5, 10.0) for i in range(20)],
                                  [(100.5 + i * 0.5, ask_qty) for i in range(20)])
        market.mark_valid()
        market.after_message(t)
    print("SUBMITTED", flush=True)
    await asyncio.Event().wait()  # the parent kills us


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", required=True)
    ap.add_argument("--api-url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--ttl", type=float, required=True)
    ap.add_argument("--event-ms", type=int, required=True)
    asyncio.run(_main(ap.parse_args()))


if __name__ == "__main__":
    main()
