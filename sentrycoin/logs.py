"""Logging setup: readable text by default, one JSON object per line with LOG_FORMAT=json.

Also what keeps secrets and floods out of the logs:

* `redact_url_secrets()`: the one redaction of URLs/request lines that are logged
  (``token=`` query values, ``Bearer`` credentials, registered secrets such as
  STATUS_TOKEN); used by the HTTP access log and the filter below;
* `OneLineServerErrors`: installed on aiohttp's server loggers.  A malformed or
  oversized request makes aiohttp log an ERROR with a traceback whose text
  contains the raw request line - query string and all.  The filter turns
  every such record into one redacted line without traceback and lets at
  most `burst` of them through per `window_s` (the rest are counted and
  reported with the next line that passes), so unauthenticated junk cannot
  flood the log;
* ACCESS_LOG=true: one line per request on ``sentrycoin.server.access``
  (otherwise that logger only passes warnings).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time

import msgspec

_encode = msgspec.json.Encoder().encode

ACCESS_LOGGER = "sentrycoin.server.access"
#: aiohttp's loggers that report broken requests and handler errors.
SERVER_ERROR_LOGGERS = ("aiohttp.server", "aiohttp.web")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_TOKEN_QUERY_RE = re.compile(r"((?:^|[?&\s;])(?:token|status_token|access_token)=)[^&\s\"']*", re.IGNORECASE)
_BEARER_RE = re.compile(r"(Bearer\s+)[^\s\"',]+", re.IGNORECASE)
#: Shaped like a Telegram bot token (also used by the notifiers' redaction).
BOT_TOKEN_RE = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")


def register_secret(secret: str | None) -> None:
    """A value (e.g. STATUS_TOKEN) that must never appear in a log line."""
    if secret and len(secret) >= 4:
        with _secrets_lock:
            _secrets.add(secret)


def redact_url_secrets(text: str) -> str:
    """`text` (a URL, request line or message) with tokens replaced by ***."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _TOKEN_QUERY_RE.sub(r"\1***", text)
    text = _BEARER_RE.sub(r"\1***", text)
    return BOT_TOKEN_RE.sub("***", text)


class OneLineServerErrors(logging.Filter):
    """One redacted line per record, no traceback, at most `burst` per `window_s`."""

    def __init__(self, *, burst: int = 5, window_s: float = 60.0, max_chars: int = 300) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.max_chars = max_chars
        self._window_start = -1e18
        self._passed = 0
        self.suppressed = 0  # lines dropped by the rate limit since the last one that passed
        self.suppressed_total = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= self.window_s:
                self._window_start = now
                self._passed = 0
            if self._passed >= self.burst:
                self.suppressed += 1
                self.suppressed_total += 1
                return False
            self._passed += 1
            dropped, self.suppressed = self.suppressed, 0
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text = f"{text}: {type(exc).__name__}: {exc}"
        text = " ".join(redact_url_secrets(text).split())  # one line
        if len(text) > self.max_chars:
            text = text[: self.max_chars] + "..."
        if dropped:
            text += f" ({dropped} similar line(s) suppressed)"
        record.msg, record.args = text, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


_server_filter = OneLineServerErrors()


def install_server_log_filter() -> OneLineServerErrors:
    """Put the shared filter on aiohttp's server loggers (idempotent)."""
    for name in SERVER_ERROR_LOGGERS:
        logger = logging.getLogger(name)
        if _server_filter not in logger.filters:
            logger.addFilter(_server_filter)
    return _server_filter


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encode(entry).decode()


#: ANSI colours of the level names on a terminal.
_LEVEL_COLOURS = {"DEBUG": "\x1b[2m", "INFO": "\x1b[32m", "WARNING": "\x1b[33m", "ERROR": "\x1b[31m",
                  "CRITICAL": "\x1b[1;31m"}
_RESET = "\x1b[0m"
_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """The readable line; with `colour`, the level name is coloured (terminals only)."""

    def __init__(self, *, colour: bool = False) -> None:
        super().__init__(_TEXT_FORMAT, "%H:%M:%S")
        self.colour = colour

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        colour = _LEVEL_COLOURS.get(record.levelname) if self.colour else None
        if colour is None:
            return line
        # The padded level name sits right after the time: colour exactly that field.
        level = f"{record.levelname:<7}"
        head, sep, tail = line.partition(" " + level)
        return f"{head} {colour}{level}{_RESET}{tail}" if sep else line


def stream_is_terminal(stream) -> bool:
    """Colour only for a terminal, and never with NO_COLOR set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def log_format() -> str:
    """The LOG_FORMAT in effect ('json' when the root logger writes JSON lines, else
    'text'): console alerts follow it.  Read from the installed handlers, so it is
    whatever `setup_logging` (or whoever replaced the handlers since) put there."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            return "json"
    return "text"


def setup_logging(level: str = "INFO", fmt: str = "text", *, access_log: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(colour=stream_is_terminal(sys.stderr)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Access lines are INFO: they pass only with ACCESS_LOG=true (chatty otherwise).
    logging.getLogger(ACCESS_LOGGER).setLevel(logging.INFO if access_log else max(logging.WARNING, root.level))
    install_server_log_filter()
