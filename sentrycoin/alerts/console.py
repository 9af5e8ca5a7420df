"""Console notifier: one readable line per alert, always on.

Uses rich colours when the stream is a terminal and plain text otherwise
(log files, `docker logs`, pipes), so the line is grep-able everywhere.
With LOG_FORMAT=json each alert is one JSON object on one line instead,
like the log lines, so a log shipper parses every line of the output.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

import msgspec

from sentrycoin.alerts.base import DeliveryError, Notifier, fmt_num, fmt_volume, source_label
from sentrycoin.logs import log_format, stream_is_terminal
from sentrycoin.store import AlertRecord

if TYPE_CHECKING:
    from rich.console import Console

_encode = msgspec.json.Encoder().encode

_STYLE = {"warning": "yellow", "critical": "bold red", "extreme": "bold white on red"}


def format_line(alert: AlertRecord) -> str:
    label = source_label(alert.source)
    prefix = f"[{label}] " if label else ""
    return (
        f"{prefix}ALERT {alert.severity.upper():<8} {alert.exchange} {alert.symbol} "
        f"ratio {fmt_num(alert.ratio, 4)} >= {fmt_num(alert.danger_ratio, 4)} | "
        f"top {alert.depth} bid vol {fmt_volume(alert.bid_volume)} ask vol {fmt_volume(alert.ask_volume)} | "
        f"bid {fmt_num(alert.best_bid, 10)} ask {fmt_num(alert.best_ask, 10)} | {alert.time_iso}"
        + (f" #{alert.alert_key}" if alert.alert_key else "")
    )


def format_json(alert: AlertRecord) -> str:
    """The alert as one JSON object (LOG_FORMAT=json), the fields of the text line."""
    return _encode({
        "ts": alert.time_iso,
        "level": "ALERT",
        "logger": "sentrycoin.alerts.console",
        "message": format_line(alert),
        "severity": alert.severity,
        "exchange": alert.exchange,
        "symbol": alert.symbol,
        "source": alert.source,
        "ratio": alert.ratio,
        "danger_ratio": alert.danger_ratio,
        "depth": alert.depth,
        "bid_volume": alert.bid_volume,
        "ask_volume": alert.ask_volume,
        "best_bid": alert.best_bid,
        "best_ask": alert.best_ask,
        "event_ms": alert.event_ms,
        "alert_key": alert.alert_key,
    }).decode()


class ConsoleNotifier(Notifier):
    """`json=None` follows LOG_FORMAT (as set up by `setup_logging`), resolved per alert."""

    def __init__(self, stream: TextIO | None = None, *, name: str = "console", color: bool | None = None,
                 json: bool | None = None) -> None:
        self.name = name
        self._stream = stream
        self._color = color
        self._json = json
        self._console: Console | None = None  # rich's, made on the first coloured write

    @property
    def stream(self) -> TextIO:
        # Resolved late so pytest's capsys / redirected stdout are honoured.
        return self._stream if self._stream is not None else sys.stdout

    def _use_color(self) -> bool:
        if self._color is not None:
            return self._color
        return stream_is_terminal(self.stream)

    def _use_json(self) -> bool:
        return self._json if self._json is not None else log_format() == "json"

    async def send(self, alert: AlertRecord) -> None:
        try:
            if self._use_json():
                self._write_plain(format_json(alert))
            else:
                self._write(format_line(alert), alert.severity)
        except (OSError, ValueError) as exc:  # closed / broken stdout: retrying will not help
            raise DeliveryError(f"console write failed: {type(exc).__name__}", permanent=True) from None

    def _write(self, line: str, severity: str) -> None:
        stream = self.stream
        if self._use_color():
            from rich.console import Console
            from rich.text import Text

            if self._console is None or self._console.file is not stream:
                self._console = Console(file=stream, highlight=False, soft_wrap=True, force_terminal=True)
            self._console.print(Text(line, style=_STYLE.get(severity, "")))
        else:
            self._write_plain(line)

    def _write_plain(self, line: str) -> None:
        stream = self.stream
        stream.write(line + "\n")
        stream.flush()
