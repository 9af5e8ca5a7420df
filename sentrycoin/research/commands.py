"""Research commands on the CLI: record, replay, backtest."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time

from sentrycoin.cli_common import (
    check_out_dir,
    load_command_settings,
    positive_float,
    positive_int,
    run_async,
    setup_command_logging,
)
from sentrycoin.config import ConfigError
from sentrycoin.research.readers import READABLE

log = logging.getLogger("sentrycoin")


def register(sub) -> None:
    record = sub.add_parser("record", help="record raw venue frames and snapshots to compressed JSONL")
    record.add_argument("--exchange", help="venue name (or env EXCHANGE)")
    record.add_argument("--symbols", help="comma-separated BASE-QUOTE symbols (or env SYMBOLS)")
    record.add_argument("--config", help="TOML settings file")
    record.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    record.add_argument("--max-mb", type=positive_float, default=64.0, help="rotate files past this compressed size")
    record.add_argument("--duration-s", type=positive_float, help="stop after this many seconds (default: until Ctrl-C)")
    record.set_defaults(func=cmd_record)

    replay = sub.add_parser("replay", help="replay recorded market data through the pipeline (format read from the content)")
    replay.add_argument("files", nargs="+", help=f"files, replayed in this order and chained: {READABLE}")
    replay.add_argument("--config", help="TOML settings file (detector settings)")
    replay.add_argument("--danger-ratio", type=positive_float,
                        help="override the danger ratio (default: DANGER_RATIO, the file's, or 2.5)")
    replay.add_argument("--depth", type=positive_int, help="levels per side (default: as recorded)")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    replay.add_argument("--allow-truncated", action="store_true",
                        help="replay a file cut short up to the cut (default: a truncated file is an error)")
    replay.set_defaults(func=cmd_replay)

    try:
        from sentrycoin.research import backtest as backtest_cli
    except ImportError:  # pragma: no cover - the backtest module ships with the package
        return
    backtest_cli.register(sub)


def cmd_record(args: argparse.Namespace) -> int:
    from sentrycoin.research.record import record_live

    settings = load_command_settings(args)
    setup_command_logging(settings)
    if not settings.markets:
        raise ConfigError("record needs a venue and symbols (--exchange/--symbols, EXCHANGE/SYMBOLS or --config)")
    check_out_dir(args.out, "--out")

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.duration_s:
            loop.call_later(args.duration_s, stop.set)
        result = await record_live(settings, args.out, stop, max_bytes=int(args.max_mb * 1024 * 1024))
        for f in result.files:
            print(f)
        if not result.market_data:
            # Headers alone are no recording: say so, and fail, so scripts notice.
            print(f"sentrycoin: no market data recorded in {result.elapsed_s:.1f} s (no frame or snapshot "
                  f"arrived from {', '.join(result.venues)}; is the venue reachable?)", file=sys.stderr)
            return 1
        return 0

    return run_async(main())


def cmd_replay(args: argparse.Namespace) -> int:
    import dataclasses

    from sentrycoin.research.readers import InputError
    from sentrycoin.research.replay import replay_files

    settings = load_command_settings(args)
    setup_command_logging(settings)
    detector = settings.detector
    if args.danger_ratio is not None:
        detector = dataclasses.replace(detector, danger_ratio=args.danger_ratio, rearm_ratio=None)

    def print_alert(event) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.event_ms / 1000))
        print(f"[REPLAY] {stamp}.{event.event_ms % 1000:03d}Z {event.severity.upper():8s} {event.exchange} "
              f"{event.symbol} ratio {event.ratio:.2f} >= {event.danger_ratio:g} "
              f"(bid {event.bid_volume:.6g} / ask {event.ask_volume:.6g}, top {event.depth})")

    try:
        summary = replay_files(args.files, detector=detector, depth=args.depth, on_alert=print_alert,
                               show_progress=not args.no_progress and sys.stderr.isatty(),
                               allow_truncated=args.allow_truncated)
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    print_summary(summary)
    for cut in summary.truncated:
        print(f"sentrycoin: {cut.describe()}", file=sys.stderr)
    if summary.messages == 0:
        print(f"sentrycoin: no book messages in {', '.join(args.files)} "
              "(nothing was replayed: no book data, or no snapshot to start a book from)", file=sys.stderr)
        return 2
    return 0


def print_summary(summary) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="replay summary", title_justify="left")
    for col in ("exchange", "symbol", "messages", "alerts", "resyncs", "rejected", "book valid at end"):
        table.add_column(col, justify="right" if col in ("messages", "alerts", "resyncs", "rejected") else "left")
    counts: dict[tuple[str, str], int] = {}
    for a in summary.alerts:
        counts[(a.exchange, a.symbol)] = counts.get((a.exchange, a.symbol), 0) + 1
    for m in summary.markets:
        table.add_row(m.exchange, m.symbol, f"{m.messages:,}", str(counts.get(m.key, 0)), str(m.resyncs),
                      str(m.rejected), "yes" if m.valid else "no")
    console = Console(file=sys.stdout)
    for path, fmt in summary.formats.items():
        console.print(f"{path}: {fmt}")
    console.print(table)
    console.print(
        f"{summary.files} files, {summary.records:,} records, {summary.frames:,} frames, "
        f"{summary.snapshots} snapshots, {len(summary.alerts)} alerts; "
        f"{summary.span_s:,.1f} s of market time replayed in {summary.wall_s:.2f} s "
        f"({summary.messages_per_s:,.0f} messages/s)"
    )
