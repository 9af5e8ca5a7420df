"""Pieces of the soak harness (benches/soak.py): a flaky Telegram, scripted crashes
on the emulator's true books, and matching Telegram messages back to stored alerts.
"""

from __future__ import annotations

import random
import re
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from sentrycoin.alerts.base import fmt_num
from sentrycoin.emulator import ASK, TrueBook
from sentrycoin.store import iso_utc
from tests.service.fake_telegram import FakeTelegram, Hang, Ok, Status

# -- flaky Telegram ---------------------------------------------------------------


class FlakyTelegram(FakeTelegram):
    """FakeTelegram whose every request draws a behaviour at random.

    p_500: HTTP 500; p_429: 429 with `parameters.retry_after`; p_429_header: 429
    with only a Retry-After header; p_hang: accept and answer nothing for
    `hang_s` (longer than the notifier's 10 s request timeout, so the client
    times out; the fake never records a hung request as a delivered message).
    """

    def __init__(self, rng: random.Random, *, p_500: float = 0.10, p_429: float = 0.05,
                 p_429_header: float = 0.02, p_hang: float = 0.02, retry_after_s: float = 2.0,
                 hang_s: float = 12.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rng = rng
        self.table = [
            (p_500, Status(500)),
            (p_429, Status(429, retry_after=retry_after_s)),
            (p_429_header, Status(429, retry_after=retry_after_s, retry_after_header=True)),
            (p_hang, Hang(hang_s)),
        ]
        self.drawn: Counter[str] = Counter()

    def _draw(self):
        u = self.rng.random()
        for p, behaviour in self.table:
            if u < p:
                return behaviour
            u -= p
        return Ok()

    async def _handle(self, request):  # noqa: ANN001, ANN201 - aiohttp handler
        if not self._script:
            behaviour = self._draw()
            self.drawn[type(behaviour).__name__ + (f"{behaviour.status}" if isinstance(behaviour, Status) else "")] += 1
            self._script.append(behaviour)
        return await super()._handle(request)


# -- scripted crashes -----------------------------------------------------------------


class CrashScript:
    """Replaces one TrueBook's `step` so that queued operations run instead of a random step.

    A crash multiplies every resting ask by `k` (sell-side liquidity piles up:
    ask/bid ratio ~ k); `revert` divides back the asks still carrying the
    multiplied size.  Both go through the emulator's normal step path, so the
    venue's update ids, bundling and fault injection apply to them too.
    """

    def __init__(self, book: TrueBook) -> None:
        self.book = book
        self._random_step = book.step
        self._queue: deque[Callable[[], list]] = deque()
        self._saved: dict[int, int] = {}
        self._k = 1
        self.crashes = 0
        book.step = self._step  # type: ignore[method-assign]

    @property
    def active(self) -> bool:
        return self._k != 1 or bool(self._queue)

    def crash(self, k: int) -> None:
        self._queue.append(lambda: self._crash(k))

    def revert(self) -> None:
        self._queue.append(self._revert)

    def _step(self) -> list:
        if self._queue:
            changes = self._queue.popleft()()
            book = self.book
            book.steps += 1
            book._remember()  # keep the emulator's truth history exact
            return changes
        return self._random_step()

    def _crash(self, k: int) -> list:
        asks = self.book.asks
        self._saved = dict(asks)
        self._k = k
        self.crashes += 1
        changes = []
        for price, qty in asks.items():
            asks[price] = qty * k
            changes.append((ASK, price, qty * k))
        return changes

    def _revert(self) -> list:
        asks = self.book.asks
        changes = []
        for price, qty in self._saved.items():
            if asks.get(price) == qty * self._k:
                asks[price] = qty
                changes.append((ASK, price, qty))
        self._saved = {}
        self._k = 1
        return changes


# -- matching messages to alerts --------------------------------------------------------

_SINGLE = re.compile(
    r"<b>(WARNING|CRITICAL|EXTREME)</b> sell-side imbalance: <b>([A-Z0-9]+-[A-Z0-9]+)</b> on ([a-z-]+)\n"
    r"Ask/bid ratio <b>([^<]+)</b>.*?\nTime \d{4}-\d\d-\d\d (\d\d:\d\d:\d\d)", re.S)
_BATCH_LINE = re.compile(
    r"<b>([A-Z0-9]+-[A-Z0-9]+)</b> ([a-z-]+) (WARNING|CRITICAL|EXTREME) ratio <b>([^<]+)</b> .*?· (\d\d:\d\d:\d\d) UTC")

AlertKey = tuple[str, str, str, str, str]  # symbol, exchange, SEVERITY, ratio (4 sig.), HH:MM:SS


def record_key(row: dict) -> AlertKey:
    """The fields of a stored alert (AlertStore.recent row) that both message formats print."""
    return (row["symbol"], row["exchange"], row["severity"].upper(), fmt_num(row["ratio"], 4),
            iso_utc(row["event_ms"])[11:19])


def message_keys(text: str) -> list[AlertKey]:
    """Alerts carried by one Telegram message (one, or several for a batch message)."""
    m = _SINGLE.search(text)
    if m:
        sev, sym, ex, ratio, t = m.groups()
        return [(sym, ex, sev, ratio, t)]
    return [(sym, ex, sev, ratio, t) for sym, ex, sev, ratio, t in _BATCH_LINE.findall(text)]


def compare(rows: list[dict], messages: list[dict], notifier: str = "telegram") -> dict[str, Any]:
    """Exactly-once check: every stored alert appears in exactly one delivered message."""
    received: Counter[AlertKey] = Counter()
    unparsed = 0
    for msg in messages:
        keys = message_keys(msg["text"])
        if not keys:
            unparsed += 1
        received.update(keys)
    stored: Counter[AlertKey] = Counter(record_key(r) for r in rows)
    missing = sorted(k for k in stored if received[k] < stored[k])
    duplicated = sorted(k for k in stored if received[k] > stored[k])
    unknown = sorted(k for k in received if k not in stored)
    states = Counter((r.get("deliveries") or {}).get(notifier, {}).get("state", "none") for r in rows)
    return {
        "stored_alerts": len(rows),
        "distinct_keys": len(stored),
        "key_collisions": sum(1 for c in stored.values() if c > 1),
        "messages": len(messages),
        "alerts_in_messages": sum(received.values()),
        "unparsed_messages": unparsed,
        "missing": [list(k) for k in missing],
        "duplicated": [list(k) for k in duplicated],
        "unknown": [list(k) for k in unknown],
        "delivery_states": dict(states),
        "exactly_once": not missing and not duplicated and not unknown and unparsed == 0
                        and states.get("delivered", 0) == len(rows),
    }
