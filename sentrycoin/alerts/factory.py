"""Build the notifier list from plain settings (the lead maps env vars to these)."""

from __future__ import annotations

import logging

from sentrycoin.alerts.base import Notifier, RetryPolicy
from sentrycoin.alerts.console import ConsoleNotifier
from sentrycoin.alerts.telegram import TelegramNotifier
from sentrycoin.alerts.webhook import WebhookNotifier

log = logging.getLogger("sentrycoin.alerts")

_warned_unconfigured = False


def build_notifiers(
    *,
    telegram_token: str | None = None,
    telegram_chat_id: str | int | None = None,
    telegram_api_url: str | None = None,
    webhook_url: str | None = None,
    public_url: str | None = None,
    console: bool = True,
    request_timeout_s: float = 10.0,
    retry: RetryPolicy | None = None,
) -> list[Notifier]:
    """Console (always, unless console=False) + Telegram when token and chat id are set + webhook.

    Missing Telegram settings are not an error: the monitor still runs and
    says so once.  Half a configuration (token without chat id or the
    reverse) is called out explicitly, without printing the token.
    """
    global _warned_unconfigured
    notifiers: list[Notifier] = []
    if console:
        notifiers.append(ConsoleNotifier())
    token = (telegram_token or "").strip()
    chat = str(telegram_chat_id).strip() if telegram_chat_id is not None else ""
    if token and chat:
        notifiers.append(TelegramNotifier(
            token, chat, api_url=telegram_api_url, public_url=public_url,
            request_timeout_s=request_timeout_s, retry=retry,
        ))
    else:
        if token or chat:
            missing = "chat id" if token else "bot token"
            log.warning("Telegram half-configured: the %s is missing, Telegram is disabled", missing)
        if not _warned_unconfigured:
            _warned_unconfigured = True
            log.warning("Telegram not configured: alerts go to the console (and webhook)")
    if webhook_url:
        notifiers.append(WebhookNotifier(webhook_url, public_url=public_url,
                                         request_timeout_s=request_timeout_s, retry=retry))
    return notifiers
