"""Venue name -> handler class, production URLs, and their env overrides.

Every URL is a setting: `<VENUE>_WS_URL` / `<VENUE>_REST_URL` (venue upper
cased, '-' -> '_', e.g. BINANCE_FUTURES_WS_URL) replace the production
default and are used exactly as given, path included, so tests and the
emulator can point a feed at 127.0.0.1.  Handler classes are imported
lazily: a venue's module is loaded only when that venue is used.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import os
from dataclasses import dataclass
from typing import Mapping

from sentrycoin.feeds.base import FeedHandler
from sentrycoin.market import BookCapacity, Market

log = logging.getLogger("sentrycoin.feeds.registry")


@dataclass(frozen=True, slots=True)
class VenueInfo:
    name: str
    handler: str  # "module:Class", imported on first use
    ws_url: str
    rest_url: str | None = None  # REST snapshot endpoint (venues that need one)
    #: What the venue's sizes count, so bid_volume / ask_volume (and MIN_VOLUME)
    #: read right: "coins" of the base asset, or "contracts" (okx-swap).
    size_unit: str = "coins"

    @property
    def env_prefix(self) -> str:
        return self.name.upper().replace("-", "_")

    @property
    def ws_env(self) -> str:
        return f"{self.env_prefix}_WS_URL"

    @property
    def rest_env(self) -> str:
        return f"{self.env_prefix}_REST_URL"


VENUES: dict[str, VenueInfo] = {
    v.name: v
    for v in (
        VenueInfo("binance", "sentrycoin.feeds.binance:BinanceSpotHandler",
                  "wss://stream.binance.com:9443/stream", "https://api.binance.com/api/v3/depth"),
        # USD-M futures: since Binance's routing change (legacy URLs retired on
        # 2026-04-23) depth streams live under /public, the endpoint for
        # high-frequency public data; /stream alone no longer serves them.
        VenueInfo("binance-futures", "sentrycoin.feeds.binance:BinanceFuturesHandler",
                  "wss://fstream.binance.com/public/stream", "https://fapi.binance.com/fapi/v1/depth"),
        VenueInfo("coinbase", "sentrycoin.feeds.coinbase:CoinbaseHandler",
                  "wss://advanced-trade-ws.coinbase.com"),
        VenueInfo("kraken", "sentrycoin.feeds.kraken:KrakenHandler", "wss://ws.kraken.com/v2"),
        VenueInfo("bybit", "sentrycoin.feeds.bybit:BybitSpotHandler",
                  "wss://stream.bybit.com/v5/public/spot"),
        VenueInfo("bybit-linear", "sentrycoin.feeds.bybit:BybitLinearHandler",
                  "wss://stream.bybit.com/v5/public/linear"),
        # OKX's REST books answer bridges the stream when `books` sends no snapshot.
        VenueInfo("okx", "sentrycoin.feeds.okx:OkxSpotHandler", "wss://ws.okx.com:8443/ws/v5/public",
                  "https://www.okx.com/api/v5/market/books"),
        VenueInfo("okx-swap", "sentrycoin.feeds.okx:OkxSwapHandler", "wss://ws.okx.com:8443/ws/v5/public",
                  "https://www.okx.com/api/v5/market/books", size_unit="contracts"),
    )
}

#: Venue names, in a stable order (the contract for CLI, config and /status).
VENUE_NAMES: tuple[str, ...] = tuple(VENUES)


def venue_info(venue: str) -> VenueInfo:
    try:
        return VENUES[venue]
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}; known: {', '.join(VENUE_NAMES)}") from None


def size_unit(venue: str) -> str:
    """The unit of `venue`'s sizes: 'coins' (base asset) or 'contracts'; 'coins' for non-venues (tests)."""
    info = VENUES.get(venue)
    return info.size_unit if info is not None else "coins"


def handler_class(venue: str) -> type[FeedHandler]:
    module_name, _, class_name = venue_info(venue).handler.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls  # type: ignore[no-any-return]


@functools.cache
def book_capacity(venue: str, depth: int) -> BookCapacity:
    """What `venue`'s books need at detector depth `depth` (its handler's
    `book_capacity`); the full-depth default for a name that is no venue (tests)."""
    cls = handler_class(venue) if venue in VENUES else FeedHandler
    return cls.book_capacity(depth)


def urls(venue: str, env: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """(ws_url, rest_url) for `venue`: env override if set and non-empty, else the default."""
    info = venue_info(venue)
    env = os.environ if env is None else env
    ws_url = env.get(info.ws_env) or info.ws_url
    rest_url = env.get(info.rest_env) or info.rest_url
    return ws_url, rest_url


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
