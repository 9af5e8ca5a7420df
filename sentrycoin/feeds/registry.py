"""Venue name -> handler: builds a venue's feed handler over its markets.

Handler classes are imported lazily: a venue's module is loaded only when that
venue is used.  The venue table itself (names, URLs and their env overrides,
size units) is sentrycoin.feeds.venues, re-exported here.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
from collections.abc import Mapping

from sentrycoin.feeds.base import FeedHandler
from sentrycoin.feeds.venues import VENUE_NAMES as VENUE_NAMES
from sentrycoin.feeds.venues import VENUES as VENUES
from sentrycoin.feeds.venues import VenueInfo as VenueInfo
from sentrycoin.feeds.venues import size_unit as size_unit
from sentrycoin.feeds.venues import urls as urls
from sentrycoin.feeds.venues import venue_info as venue_info
from sentrycoin.market import BookCapacity, Market

log = logging.getLogger("sentrycoin.feeds.registry")


def handler_class(venue: str) -> type[FeedHandler]:
    module_name, _, class_name = venue_info(venue).handler.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls


@functools.cache
def book_capacity(venue: str, depth: int) -> BookCapacity:
    """What `venue`'s books need at detector depth `depth` (its handler's
    `book_capacity`): what every builder of a venue's markets passes to Market.
    A name that is no venue (tests, hand-built markets) gets the full-depth sizing."""
    cls = handler_class(venue) if venue in VENUES else FeedHandler
    return cls.book_capacity(depth)


def make_handler(
    venue: str,
    markets: list[Market],
    depth: int = 50,
    env: Mapping[str, str] | None = None,
) -> FeedHandler:
    """Build the handler for `venue` over `markets`, URLs from `env` (default os.environ)."""
    cls = handler_class(venue)
    ws_url, rest_url = urls(venue, env)
    kwargs: dict[str, object] = {}
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    # Not every handler takes a depth (it is a subscription choice on some venues only).
    if "depth" in params:
        kwargs["depth"] = depth
    log.info("%s: ws %s%s", venue, ws_url, f", rest {rest_url}" if rest_url else "")
    return cls(markets, ws_url, rest_url, **kwargs)
