"""Telegram Bot API notifier (sendMessage, HTML parse mode) over aiohttp.

Rules this follows (Bot API docs):
- 429 answers carry `parameters.retry_after` (seconds): nothing is sent to
  the chat again before that has elapsed, not even a different alert.
- Roughly one message per second per chat is allowed: sends are paced.
- 5xx answers, network errors and timeouts are transient: the manager
  retries with jittered exponential backoff.
- 400 / 401 / 403 / 404 mean the token, the chat id or the message is wrong:
  a configuration error, never retried for that alert.

The bot token is part of every request path, so it is kept out of reprs,
exceptions and log lines: errors are rebuilt from status codes and exception
type names, and passed through `redact()` before leaving this module.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec

from sentrycoin.alerts.base import (
    DeliveryError,
    HttpNotifier,
    RetryPolicy,
    fmt_num,
    fmt_volume,
    network_failure,
    redact_secrets,
    safe_url,
    source_label,
    timeout_failure,
)
from sentrycoin.store import AlertRecord

log = logging.getLogger("sentrycoin.alerts.telegram")

DEFAULT_API_URL = "https://api.telegram.org"
#: Telegram rejects texts longer than this.
MAX_TEXT_CHARS = 4096

_SEVERITY_ICON = {"warning": "⚠️", "critical": "🚨", "extreme": "🔥"}


class _SendMessage(msgspec.Struct):
    chat_id: str | int
    text: str
    parse_mode: str = "HTML"
    disable_web_page_preview: bool = True


class _ResponseParameters(msgspec.Struct):
    retry_after: float | None = None
    migrate_to_chat_id: int | None = None


class _Response(msgspec.Struct):
    ok: bool = False
    error_code: int | None = None
    description: str | None = None
    parameters: _ResponseParameters | None = None


_encode = msgspec.json.Encoder().encode
_decode_response = msgspec.json.Decoder(_Response).decode


def _late_note(alert: AlertRecord, now_ms: int | None, late_after_s: float) -> str | None:
    """Say so when an alert goes out long after it was raised (outage, restart):
    a reader must not act on a stale signal believing it is fresh."""
    if now_ms is None:
        return None
    late_s = (now_ms - alert.created_ms) / 1000.0
    if late_s < late_after_s:
        return None
    if late_s < 120:
        ago = f"{late_s:.0f} s"
    elif late_s < 7200:
        ago = f"{late_s / 60:.0f} min"
    else:
        ago = f"{late_s / 3600:.1f} h"
    return f"⏱ <i>Delivered late: raised {ago} before this message</i>"


#: Added to a resend after an attempt that got no answer (it may have arrived).
REPEAT_NOTE = "↻ <i>Possible repeat: an earlier attempt got no answer</i>"


def format_message(
    alert: AlertRecord, *, public_url: str | None = None, now_ms: int | None = None, late_after_s: float = 60.0
) -> str:
    """The alert as Telegram HTML (every dynamic piece escaped)."""
    e = html.escape
    label = source_label(alert.source)
    icon = _SEVERITY_ICON.get(alert.severity, "⚠️")
    lines = []
    if label:
        lines.append(f"<b>[{e(label)}]</b> not live market data")
    lines.append(
        f"{icon} <b>{e(alert.severity.upper())}</b> sell-side imbalance: "
        f"<b>{e(alert.symbol)}</b> on {e(alert.exchange)}"
    )
    lines.append(
        f"Ask/bid ratio <b>{e(fmt_num(alert.ratio, 4))}</b> "
        f"(threshold {e(fmt_num(alert.danger_ratio, 4))})"
    )
    lines.append(
        f"Top {alert.depth} levels: bid vol {e(fmt_volume(alert.bid_volume))}, "
        f"ask vol {e(fmt_volume(alert.ask_volume))}"
    )
    lines.append(f"Best bid {e(fmt_num(alert.best_bid, 10))} / ask {e(fmt_num(alert.best_ask, 10))}")
    lines.append(f"Time {e(alert.time_iso.replace('T', ' ').replace('Z', ' UTC'))}")
    if public_url:
        status = public_url.rstrip("/") + "/status"
        lines.append(f'<a href="{e(status, quote=True)}">Live status</a>')
    if label:
        lines.append(f"<i>{e(label)}: not a live alert</i>")
    late = _late_note(alert, now_ms, late_after_s)
    if late:
        lines.append(late)
    if alert.possible_duplicate:
        lines.append(REPEAT_NOTE)
    text = "\n".join(lines)
    return text[:MAX_TEXT_CHARS]


def format_batch(
    alerts: list[AlertRecord], *, public_url: str | None = None, now_ms: int | None = None, late_after_s: float = 60.0
) -> str:
    """Several alerts in one message, one line each (used when alerts pile up
    behind the 1 message/s pacing, e.g. a market-wide crash)."""
    e = html.escape
    labels = sorted({source_label(a.source) for a in alerts} - {""})
    lines = []
    if labels:
        lines.append(f"<b>[{e(' / '.join(labels))}]</b> not live market data")
    lines.append(f"🚨 <b>{len(alerts)} sell-side imbalance alerts</b>")
    for a in alerts:
        label = source_label(a.source)
        tag = f"[{e(label)}] " if label else ""
        t = a.time_iso[11:19]
        lines.append(
            f"{_SEVERITY_ICON.get(a.severity, '⚠️')} {tag}<b>{e(a.symbol)}</b> {e(a.exchange)} "
            f"{e(a.severity.upper())} ratio <b>{e(fmt_num(a.ratio, 4))}</b> (threshold {e(fmt_num(a.danger_ratio, 4))}) "
            f"bid vol {e(fmt_volume(a.bid_volume))} / ask vol {e(fmt_volume(a.ask_volume))} top {a.depth} "
            f"· {t} UTC"
        )
    lines.append(f"Times UTC on {e(alerts[0].time_iso[:10])}" if alerts else "")
    late = _late_note(alerts[0], now_ms, late_after_s) if alerts else None
    if late:
        lines.append(late)
    if any(a.possible_duplicate for a in alerts):
        lines.append(REPEAT_NOTE)
    if public_url:
        status = public_url.rstrip("/") + "/status"
        lines.append(f'<a href="{e(status, quote=True)}">Live status</a>')
    return "\n".join(lines)[:MAX_TEXT_CHARS]


class TelegramNotifier(HttpNotifier):
    """Sends each alert to one chat with the Bot API `sendMessage` method."""

    def __init__(
        self,
        token: str,
        chat_id: str | int,
        *,
        api_url: str | None = None,
        public_url: str | None = None,
        name: str = "telegram",
        request_timeout_s: float = 10.0,
        min_interval_s: float = 1.0,
        max_batch: int = 10,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        late_after_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if not token or not str(chat_id):
            raise ValueError("Telegram notifier needs a bot token and a chat id")
        self.name = name
        self.chat_id = chat_id
        self.api_url = (api_url or os.environ.get("TELEGRAM_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.public_url = public_url
        self.request_timeout_s = request_timeout_s
        self.min_interval_s = min_interval_s
        # Bounded so a batch message stays far below Telegram's 4096 chars.
        self.max_batch = max(1, min(int(max_batch), 15))
        self.retry = retry or RetryPolicy()
        self.__token = token  # name-mangled: keeps it out of casual attribute dumps
        self._use_session(session)
        self._monotonic = monotonic
        self._wall_ms = wall_ms
        self.late_after_s = late_after_s
        self._sleep = sleep
        # Monotonic instant before which nothing may be sent to this chat
        # (pacing and 429 retry_after both push it forward).
        self._not_before = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TelegramNotifier(name={self.name!r}, chat_id={self.chat_id!r}, api_url={safe_url(self.api_url)!r})"

    __str__ = __repr__

    def redact(self, text: str) -> str:
        return redact_secrets(text, self.__token)

    @property
    def not_before(self) -> float:
        """Monotonic time before which no request will be sent (for tests/metrics)."""
        return self._not_before

    async def send(self, alert: AlertRecord) -> None:
        await self.send_text(format_message(alert, public_url=self.public_url, now_ms=self._wall_ms(),
                                            late_after_s=self.late_after_s))

    async def send_batch(self, alerts: list[AlertRecord]) -> None:
        await self.send_text(format_batch(alerts, public_url=self.public_url, now_ms=self._wall_ms(),
                                          late_after_s=self.late_after_s))

    async def wait_ready(self) -> None:
        wait_s = self._not_before - self._monotonic()
        if wait_s > 0:
            await self._sleep(wait_s)

    async def send_text(self, text: str) -> None:
        """One sendMessage attempt, waiting first for pacing / retry_after."""
        session = await self._http()
        async with self._lock:
            wait_s = self._not_before - self._monotonic()
            if wait_s > 0:
                await self._sleep(wait_s)
            body = _encode(_SendMessage(chat_id=self.chat_id, text=text))
            url = f"{self.api_url}/bot{self.__token}/sendMessage"
            try:
                async with session.post(
                    url,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=self.request_timeout_s),
                ) as resp:
                    status = resp.status
                    raw = await resp.read()
                    retry_header = resp.headers.get("Retry-After")
            except TimeoutError:
                self._pace()
                raise timeout_failure(self.request_timeout_s) from None
            except aiohttp.ClientError as exc:
                self._pace()
                # The type name is safe; str(exc) may contain the request URL (redacted).
                raise network_failure(exc, self.redact) from None
            self._pace()
            self._check(status, raw, retry_header)

    def _pace(self) -> None:
        self._not_before = max(self._not_before, self._monotonic() + self.min_interval_s)

    def _check(self, status: int, raw: bytes, retry_header: str | None) -> None:
        if status == 200:
            # Telegram accepted it.  Even if the body were unreadable we must
            # not resend: a duplicate alert is worse than an unparsed reply.
            return
        try:
            resp = _decode_response(raw)
            description = resp.description or ""
            retry_after = resp.parameters.retry_after if resp.parameters else None
        except (msgspec.DecodeError, msgspec.ValidationError):
            description = ""
            retry_after = None
        description = self.redact(description)[:200]
        detail = f"HTTP {status}" + (f": {description}" if description else "")
        if status == 429:
            if retry_after is None and retry_header:
                try:
                    retry_after = float(retry_header)
                except ValueError:
                    retry_after = None
            retry_after = max(0.0, retry_after if retry_after is not None else 1.0)
            self._not_before = max(self._not_before, self._monotonic() + retry_after)
            raise DeliveryError(f"rate limited ({detail}), retry after {retry_after:g} s",
                                retry_after_s=retry_after, status=status)
        if status >= 500 or status == 408:
            raise DeliveryError(f"server error ({detail})", status=status)
        if status in (400, 401, 403, 404):
            hint = {
                400: "bad request: check TELEGRAM_CHAT_ID (or the message was rejected)",
                401: "unauthorized: the bot token is wrong or revoked",
                403: "forbidden: the bot is not a member of the chat or was blocked",
                404: "not found: the bot token is malformed or the API URL is wrong",
            }[status]
            raise DeliveryError(f"configuration error, {hint} ({detail})", config_error=True, status=status)
        raise DeliveryError(f"unexpected answer ({detail})", permanent=True, status=status)
