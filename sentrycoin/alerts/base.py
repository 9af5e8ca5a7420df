"""What every notifier is, how a failed attempt is reported, and retry timing.

A notifier makes *one* delivery attempt per `send()` call and reports a
failure by raising `DeliveryError`, classified as transient (retry with
backoff, or after `retry_after_s`) or permanent (configuration error or a
message the far end will never accept: the alert is marked failed).  The
`AlertManager` owns the retry loop and the outbox bookkeeping, so every
notifier gets identical retry semantics.

Error messages are built by the notifiers themselves from status codes and
exception *type names* plus redacted text: a notifier URL may carry a secret
(the Telegram bot token is part of the path; Slack-style webhook URLs are
secrets too), so raw exception strings are never passed on.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from sentrycoin.logs import BOT_TOKEN_RE
from sentrycoin.store import AlertRecord


def network_failure(exc: BaseException, redact: Callable[[str], str]) -> DeliveryError:
    """A transient DeliveryError for an aiohttp failure.  Only a failure to
    connect proves the far end got nothing; anything later (connection reset
    or closed while waiting for the answer) leaves the outcome unknown."""
    connect_failed = isinstance(exc, aiohttp.ClientConnectorError)
    return DeliveryError(f"network error: {type(exc).__name__}: {redact(str(exc))}",
                         outcome_unknown=not connect_failed)


def timeout_failure(timeout_s: float) -> DeliveryError:
    """The request timed out: it may have been delivered (outcome unknown)."""
    return DeliveryError(f"timeout after {timeout_s:g} s (no answer)", outcome_unknown=True)


class DeliveryError(Exception):
    """One failed delivery attempt.  `message` must already be free of secrets."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after_s: float | None = None,
        config_error: bool = False,
        status: int | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent or config_error
        # The request may have reached the far end (timeout, connection lost
        # after sending): a retry may duplicate it.
        self.outcome_unknown = outcome_unknown
        self.retry_after_s = retry_after_s
        self.config_error = config_error
        self.status = status


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """Jittered exponential backoff for transient failures.

    delay(n) = min(max_s, base_s * 2**(n-1)) scaled by a random factor in
    [1 - jitter, 1]: the jitter spreads retries of many processes so they do
    not hit a recovering endpoint in lockstep.  max_attempts=None retries
    transient errors forever (the alert stays in the outbox meanwhile).
    """

    base_s: float = 1.0
    max_s: float = 60.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def delay_s(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        raw = min(self.max_s, self.base_s * (2.0 ** max(0, attempt - 1)))
        return raw * (1.0 - self.jitter * rng())


class Notifier(ABC):
    """A delivery channel.  Subclasses implement `send` (one attempt)."""

    #: Unique per manager; used as the delivery row key in the outbox.
    name: str = "notifier"
    retry: RetryPolicy = RetryPolicy()
    #: >1: the manager may hand several queued alerts to `send_batch` at once.
    max_batch: int = 1

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open sessions etc.; called from the running loop by the manager."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; called by the manager on stop."""

    @abstractmethod
    async def send(self, alert: AlertRecord) -> None:
        """Deliver once or raise DeliveryError."""

    async def send_batch(self, alerts: list[AlertRecord]) -> None:
        """Deliver several alerts in one attempt (only called when max_batch > 1)."""
        raise NotImplementedError

    async def wait_ready(self) -> None:  # noqa: B027 - optional hook
        """Return when a send could go out now (pacing, retry_after); batching waits here."""

    def redact(self, text: str) -> str:
        """Remove this notifier's secrets from `text` (default: generic token patterns)."""
        return redact_secrets(text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class HttpNotifier(Notifier):
    """A notifier that posts over an aiohttp session: one passed in (the caller
    owns and closes it) or its own, opened on start or first use."""

    def _use_session(self, session: aiohttp.ClientSession | None) -> None:
        self._session = session
        self._own_session = session is None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
            self._session = None

    async def _http(self) -> aiohttp.ClientSession:
        """The session, opened if this is the first use."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        return self._session


def redact_secrets(text: str, *secrets: str) -> str:
    """Replace each known secret and anything shaped like a bot token."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return BOT_TOKEN_RE.sub("<redacted>", text)


def safe_url(url: str) -> str:
    """scheme://host[:port] only: paths and queries of notifier URLs may be secret."""
    try:
        parts = urlsplit(url)
        if parts.scheme and parts.hostname:
            port = f":{parts.port}" if parts.port else ""
            return f"{parts.scheme}://{parts.hostname}{port}"
    except ValueError:
        pass
    return "<url>"


# -- formatting shared by the text notifiers ---------------------------------

def fmt_num(value: float, digits: int = 6) -> str:
    """Compact human number: 3 significant decimals for ratios, plain for prices."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}g}" if abs(value) < 1e15 else f"{value:.3e}"


def fmt_volume(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def source_label(source: str) -> str:
    """'' for live alerts; a loud label otherwise so nobody trades on a simulation."""
    if source == "live":
        return ""
    if source == "replay":
        return "REPLAY"
    return "SIMULATED" if source == "simulated" else source.upper()
