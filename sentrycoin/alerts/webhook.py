"""Webhook notifier: POST each alert as JSON to a URL.

Same retry rules as Telegram: 429 honours `Retry-After` (seconds), 5xx /
408 / network errors / timeouts back off and retry, any other 4xx is a
configuration error.  Every request carries `Idempotency-Key: <episode id>`
(also `episode_id` in the body): the same on every replica and every retry
of one alert, different for different alerts, so a receiver can drop the
duplicate that at-least-once delivery produces when a send's outcome is
unknown (docs/delivery.md).  A resend after such an attempt has
`"possible_duplicate": true`.  The URL is treated as a secret (many
webhook URLs embed a token): only scheme://host ever appears in errors.
"""

from __future__ import annotations

import logging

import aiohttp
import msgspec

from sentrycoin.alert_fields import AlertFields, alert_fields_of
from sentrycoin.alerts.base import (
    DeliveryError,
    HttpNotifier,
    RetryPolicy,
    network_failure,
    redact_secrets,
    safe_url,
    timeout_failure,
)
from sentrycoin.store import AlertRecord

log = logging.getLogger("sentrycoin.alerts.webhook")


class WebhookPayload(AlertFields, frozen=True, kw_only=True):
    """The JSON body: AlertFields, then what a receiver needs beside them.
    Floats that are NaN/inf are encoded as null by msgspec."""

    episode_id: str
    mid_price: float | None
    time: str
    simulated: bool
    status_url: str | None
    possible_duplicate: bool


_encode = msgspec.json.Encoder().encode


def payload_of(alert: AlertRecord, public_url: str | None = None) -> WebhookPayload:
    return WebhookPayload(
        **alert_fields_of(alert),
        episode_id=alert.episode_id,
        mid_price=alert.mid_price,
        time=alert.time_iso,
        simulated=alert.source != "live",
        status_url=(public_url.rstrip("/") + "/status") if public_url else None,
        possible_duplicate=alert.possible_duplicate,
    )


class WebhookNotifier(HttpNotifier):
    def __init__(
        self,
        url: str,
        *,
        name: str = "webhook",
        headers: dict[str, str] | None = None,
        public_url: str | None = None,
        request_timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s), got {safe_url(url)!r}")
        self.name = name
        self.__url = url
        self.headers = dict(headers or {})
        self.public_url = public_url
        self.request_timeout_s = request_timeout_s
        self.retry = retry or RetryPolicy()
        self._use_session(session)

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r}, url={safe_url(self.__url)!r})"

    __str__ = __repr__

    def redact(self, text: str) -> str:
        return redact_secrets(text, self.__url, *self.headers.values())

    async def send(self, alert: AlertRecord) -> None:
        session = await self._http()
        body = _encode(payload_of(alert, self.public_url))
        headers = {"Content-Type": "application/json", **self.headers}
        if alert.episode_id:
            headers["Idempotency-Key"] = alert.episode_id
        try:
            async with session.post(
                self.__url, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout_s),
            ) as resp:
                status = resp.status
                retry_header = resp.headers.get("Retry-After")
                await resp.read()
        except TimeoutError:
            raise timeout_failure(self.request_timeout_s) from None
        except aiohttp.ClientError as exc:
            raise network_failure(exc, self.redact) from None
        if 200 <= status < 300:
            return
        where = safe_url(self.__url)
        if status == 429:
            try:
                retry_after = max(0.0, float(retry_header)) if retry_header else 1.0
            except ValueError:
                retry_after = 1.0
            raise DeliveryError(f"{where}: rate limited (HTTP 429), retry after {retry_after:g} s",
                                retry_after_s=retry_after, status=status)
        if status >= 500 or status == 408:
            raise DeliveryError(f"{where}: server error (HTTP {status})", status=status)
        raise DeliveryError(f"{where}: configuration error (HTTP {status})", config_error=True, status=status)
