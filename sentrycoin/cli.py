"""Command line: `sentrycoin run | config check | backtest | record | replay`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Sequence

from sentrycoin import __version__
from sentrycoin.config import ConfigError, Settings, load_settings

log = logging.getLogger("sentrycoin")


def _event_loop_factory():
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return None
    return uvloop.new_event_loop


def run_async(coro) -> int:
    factory = _event_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


# -- run ------------------------------------------------------------------------


async def _run_monitor(settings: Settings, serve_http: bool, record_dir: str | None = None) -> int:
    from sentrycoin.monitor import Monitor

    monitor = Monitor(settings, serve_http=serve_http)
    if record_dir is not None:
        return await _run_recording(monitor, record_dir)
    return await _run_until_signal(monitor)


async def _run_recording(monitor, record_dir: str) -> int:
    """`run --record DIR`: every frame and snapshot the monitor's handlers are given
    (live venues or the simulated market) is recorded, as `sentrycoin record` does."""
    import time

    from sentrycoin.record import close_writers, open_writers

    started = time.monotonic()
    writers = open_writers(monitor.handlers, record_dir, depth=monitor.settings.depth,
                           source=monitor.mode)
    try:
        status = await _run_until_signal(monitor)
    finally:
        result = close_writers(writers, started)
    log.info("recorded %d frames and %d snapshots into %s", result.frames, result.snapshots,
             ", ".join(str(f) for f in result.files))
    if not result.market_data:
        print(f"sentrycoin: run --record: no market data recorded in {result.elapsed_s:.1f} s", file=sys.stderr)
        return 1
    return status


async def _run_until_signal(monitor) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP (a closed terminal, some supervisors) drains like SIGTERM: feeds
    # stop, queued alerts are sent, sends in flight finish, the store is flushed.
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, _request_stop, stop, sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-POSIX
            pass
    await monitor.run(stop)
    log.info("stopped cleanly")
    return 0


#: Signals that stop the monitor gracefully.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _request_stop(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("%s received: stopping feeds, flushing alerts", sig.name)
    stop.set()


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load(args)
    if args.scenario:
        settings.sim_scenario = args.scenario
    if args.port is not None:
        settings.port = args.port
    if args.seed is not None:
        settings.sim_seed = args.seed
    if args.speed is not None:
        settings.sim_speed = args.speed
    _setup_logging(settings)
    return run_async(_run_monitor(settings, serve_http=not args.no_http, record_dir=args.record))


# -- config check ---------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    import msgspec

    settings = _load(args, config_file=args.file)
    print(msgspec.json.format(msgspec.json.encode(settings.redacted()), indent=2).decode())
    where = f"{len(settings.markets)} markets" if settings.markets else "no markets: the simulated market runs"
    print(f"OK: {args.file} is valid ({where})", file=sys.stderr)
    return 0


# -- plumbing -------------------------------------------------------------------


def _load(args: argparse.Namespace, config_file: str | None = None) -> Settings:
    return load_settings(
        config_file or getattr(args, "config", None),
        exchange=getattr(args, "exchange", None),
        symbols=getattr(args, "symbols", None),
    )


def _setup_logging(settings: Settings) -> None:
    from sentrycoin.logs import setup_logging

    setup_logging(settings.log_level, settings.log_format, access_log=settings.access_log)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentrycoin",
        description="Flash-crash early warning: live L2 order books, ask/bid imbalance alerts.",
    )
    parser.add_argument("--version", action="version", version=f"sentrycoin {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="watch markets (the simulated market when no venue is configured)")
    run.add_argument("--exchange", help="venue: binance, binance-futures, coinbase, kraken, bybit, bybit-linear, okx, okx-swap")
    run.add_argument("--symbols", help="comma-separated BASE-QUOTE symbols, e.g. BTC-USDT,ETH-USDT")
    run.add_argument("--config", help="TOML settings file (environment variables override it)")
    run.add_argument("--scenario", help="simulated market scenario (normal, flash_crash, whale_dump, spoof, recovery, mixed) or a .toml file")
    run.add_argument("--seed", type=int, help="simulated market seed")
    run.add_argument("--speed", type=float, help="simulated market speed factor (1 = real time)")
    run.add_argument("--port", type=int, help="HTTP port (default PORT or 8080)")
    run.add_argument("--no-http", action="store_true", help="do not serve the dashboard/status endpoints")
    run.add_argument("--record", metavar="DIR",
                     help="also record every frame and snapshot the monitor watches (the simulated market too) into DIR")
    run.set_defaults(func=cmd_run)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a TOML file and print the effective settings (secrets redacted)")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub) -> None:
    from sentrycoin import commands

    commands.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"sentrycoin: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
