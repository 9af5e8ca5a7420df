"""Local venue emulators (127.0.0.1) speaking each exchange's real protocol, with fault injection.

    async with create_emulator("binance", ["BTC-USDT"], seed=3) as emu:
        handler = make_handler("binance", markets, env={"BINANCE_WS_URL": emu.ws_url,
                                                       "BINANCE_REST_URL": emu.rest_url})
        emu.inject(Fault.DROP, symbol="BTC-USDT")
        emu.books["BTC-USDT"].top_key(10)     # the truth, for assertions

Written from the venues' public protocol documentation, independently of the
feed handlers, so that it can catch their bugs.
"""

from __future__ import annotations

from sentrycoin.emulator.core import Fault, Session, VenueEmulator
from sentrycoin.emulator.truebook import ASK, BID, TrueBook

__all__ = ["ASK", "BID", "Fault", "Session", "TrueBook", "VenueEmulator", "create_emulator", "EMULATED_VENUES"]

EMULATED_VENUES = ("binance", "binance-futures", "bybit", "bybit-linear", "okx", "okx-swap", "coinbase", "kraken")


def create_emulator(venue: str, symbols: list[str], **kwargs) -> VenueEmulator:  # noqa: ANN003
    """The emulator for `venue` (a SentryCoin venue name); kwargs go to its constructor."""
    if venue in ("binance", "binance-futures"):
        from sentrycoin.emulator.binance import BinanceEmulator
        return BinanceEmulator(symbols, futures=venue == "binance-futures", **kwargs)
    if venue in ("bybit", "bybit-linear"):
        from sentrycoin.emulator.bybit import BybitEmulator
        return BybitEmulator(symbols, category="linear" if venue == "bybit-linear" else "spot", **kwargs)
    if venue in ("okx", "okx-swap"):
        from sentrycoin.emulator.okx import OkxEmulator
        return OkxEmulator(symbols, swap=venue == "okx-swap", **kwargs)
    if venue == "coinbase":
        from sentrycoin.emulator.coinbase import CoinbaseEmulator
        return CoinbaseEmulator(symbols, **kwargs)
    if venue == "kraken":
        from sentrycoin.emulator.kraken import KrakenEmulator
        return KrakenEmulator(symbols, **kwargs)
    raise ValueError(f"no emulator for venue {venue!r}; have {', '.join(EMULATED_VENUES)}")
