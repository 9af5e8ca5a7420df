"""The fields every alert carries, defined once.

`AlertEvent` (sentrycoin.market: the detector's decision), `AlertRecord`
(sentrycoin.store: as stored and handed to notifiers) and `WebhookPayload`
(sentrycoin.alerts.webhook: the JSON body receivers see) all extend
`AlertFields`, each adding only what is its own; the alerts table's columns
and the alert objects of /status and /live are derived from it.  Adding a
field here adds it everywhere but the database, whose schema is versioned on
purpose (store.py): tests/service/test_alert_fields.py fails until the table
and every other place agree.
"""

from __future__ import annotations

from typing import Any

import msgspec


class AlertFields(msgspec.Struct, frozen=True, kw_only=True):
    """One detector decision on one market, with the book's numbers at that instant."""

    exchange: str
    symbol: str
    source: str  # live | simulated | replay (sentrycoin.market.SOURCES)
    severity: str  # warning | critical | extreme
    ratio: float  # ask/bid of the signal the detector fired on
    danger_ratio: float
    bid_volume: float  # over the top N levels (N = depth)
    ask_volume: float
    best_bid: float
    best_ask: float
    depth: int
    # Venue event time (or simulated / recorded time), Unix ms: for display
    # and latency only; the detector decided on the local clock.
    event_ms: int


#: The field names, in their order.
ALERT_FIELDS: tuple[str, ...] = AlertFields.__struct_fields__

#: The fields that are numbers from the book (NaN when a side is empty).
BOOK_NUMBER_FIELDS: tuple[str, ...] = tuple(f.name for f in msgspec.structs.fields(AlertFields) if f.type is float)


def alert_fields_of(alert: AlertFields) -> dict[str, Any]:
    """The shared fields of any alert (event, record or payload), by name."""
    return {name: getattr(alert, name) for name in ALERT_FIELDS}
