"""Command line: `sentrycoin run | config check | backtest | record | replay`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from sentrycoin import __version__
from sentrycoin.cli_common import (
    check_out_dir,
    check_port_free,
    check_scenario,
    load_command_settings,
    port_number,
    positive_float,
    run_async,
    setup_command_logging,
)
from sentrycoin.config import ConfigError, Settings

log = logging.getLogger("sentrycoin")


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

    from sentrycoin.research.record import close_writers, open_writers

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
        print(f"sentrycoin: --record: no market data recorded in {result.elapsed_s:.1f} s", file=sys.stderr)
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
    settings = load_command_settings(args)
    if args.scenario:
        settings.sim_scenario = args.scenario
    if args.port is not None:
        settings.port = args.port
    if args.seed is not None:
        settings.sim_seed = args.seed
    if args.speed is not None:
        settings.sim_speed = args.speed
    if settings.simulated or settings.mock_fallback:
        check_scenario(settings.sim_scenario, _scenario_name(args))
    if args.record is not None:
        check_out_dir(args.record, "--record")
    if not args.no_http:
        check_port_free(settings.host, settings.port, _port_name(args))
    setup_command_logging(settings)
    return run_async(_run_monitor(settings, serve_http=not args.no_http, record_dir=args.record))


def _scenario_name(args: argparse.Namespace) -> str:
    if args.scenario:
        return "--scenario"
    return "SIM_SCENARIO" if os.environ.get("SIM_SCENARIO") else "simulation.scenario"


def _port_name(args: argparse.Namespace) -> str:
    """How the user chose the HTTP port: the flag, or else the variable (the file's
    server.port and the default 8080 are changed with it too)."""
    return "--port" if args.port is not None else "PORT"


# -- config check ---------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace) -> int:
    import msgspec

    settings = load_command_settings(args, config_file=args.file, config_label=args.file)
    print(msgspec.json.format(msgspec.json.encode(settings.redacted()), indent=2).decode())
    where = f"{len(settings.markets)} markets" if settings.markets else "no markets: the simulated market runs"
    print(f"OK: {args.file} is valid ({where})", file=sys.stderr)
    return 0


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it has none or already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        # Identity, not ==: a default of 0 (== False) is a default worth showing.
        if (action.option_strings and not any(default is none for none in (None, False, argparse.SUPPRESS))
                and "default" not in text and not isinstance(action, argparse._VersionAction)):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """argparse with this CLI's one error form: `sentrycoin: <what you wrote>: <why>`, exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("argument "):
            message = message[len("argument "):]
        if message.endswith("required: COMMAND"):
            message = "name a command: run, config, record, replay or backtest"
        hint = f" (see `{self.prog} --help`)"
        print(f"sentrycoin: {message}{hint}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="sentrycoin",
        description="Flash-crash early warning: live L2 order books, ask/bid imbalance alerts.",
    )
    parser.add_argument("--version", action="version", version=f"sentrycoin {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                help="run, config, record, replay or backtest")

    run = sub.add_parser("run", help="watch markets (the simulated market when no venue is configured)")
    run.add_argument("--exchange", help="venue: binance, binance-futures, coinbase, kraken, bybit, bybit-linear, okx, okx-swap")
    run.add_argument("--symbols", help="comma-separated BASE-QUOTE symbols, e.g. BTC-USDT,ETH-USDT")
    run.add_argument("--config", help="TOML settings file (environment variables override it)")
    run.add_argument("--scenario", help="simulated market scenario (normal, flash_crash, whale_dump, spoof, recovery, "
                                        "mixed) or a .toml file (default SIM_SCENARIO or mixed)")
    run.add_argument("--seed", type=int, help="simulated market seed (default SIM_SEED or 1)")
    run.add_argument("--speed", type=positive_float,
                     help="simulated market speed factor, > 0 (1 = real time; default SIM_SPEED or 1)")
    run.add_argument("--port", type=port_number, help="HTTP port 0-65535, 0 = any free port (default PORT or 8080)")
    run.add_argument("--no-http", action="store_true", help="do not serve the dashboard/status endpoints")
    run.add_argument("--record", metavar="DIR",
                     help="also record every frame and snapshot the monitor watches (the simulated market too) into DIR")
    run.set_defaults(func=cmd_run)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", metavar="TOOL", help="check: validate a settings file")
    config.set_defaults(func=_config_without_tool)
    check = config_sub.add_parser("check", help="validate a TOML file and print the effective settings (secrets redacted)")
    check.add_argument("file", help="the TOML settings file to check (environment variables apply on top, as in run)")
    check.set_defaults(func=cmd_config_check)

    _add_optional_commands(sub)
    return parser


def _config_without_tool(args: argparse.Namespace) -> int:
    raise ConfigError("config: name a tool: `sentrycoin config check FILE`")


def _add_optional_commands(sub) -> None:
    from sentrycoin.research import commands

    commands.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"sentrycoin: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
