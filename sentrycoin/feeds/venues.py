"""The venues: names, production URLs, their env overrides, and what their sizes count.

Every URL is a setting: `<VENUE>_WS_URL` / `<VENUE>_REST_URL` (venue upper
cased, '-' -> '_', e.g. BINANCE_FUTURES_WS_URL) replace the production
default and are used exactly as given, path included, so tests and the
emulator can point a feed at 127.0.0.1.  Plain data: no feed code is imported
here (sentrycoin.feeds.registry builds the handlers), so `Market` can read a
venue's size unit without importing the feeds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


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


def urls(venue: str, env: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """(ws_url, rest_url) for `venue`: env override if set and non-empty, else the default."""
    info = venue_info(venue)
    env = os.environ if env is None else env
    ws_url = env.get(info.ws_env) or info.ws_url
    rest_url = env.get(info.rest_env) or info.rest_url
    return ws_url, rest_url
