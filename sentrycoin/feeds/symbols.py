"""Symbol names: the normal form `BASE-QUOTE` <-> each venue's instrument names.

The whole application speaks `BTC-USDT`.  Only feed handlers (and whatever
talks to a venue for them) see the venue's own spelling:

    venue            instrument       stream / topic part
    binance          BTCUSDT          btcusdt   (stream names are lower case)
    binance-futures  BTCUSDT          btcusdt
    bybit            BTCUSDT
    bybit-linear     BTCUSDT
    okx              BTC-USDT
    okx-swap         BTC-USDT-SWAP
    coinbase         BTC-USD
    kraken           BTC/USD          (WebSocket v2 names)

Venues that glue base and quote together cannot be split without knowing the
quote, so handlers map back with a dict built from the symbols they were
configured with (`native_map`); `split_concatenated` is a fallback for
free-standing names.
"""

from __future__ import annotations

#: Quote currencies tried (longest first) when splitting a glued name such as BTCUSDT.
KNOWN_QUOTES: tuple[str, ...] = tuple(sorted((
    "USDT", "USDC", "FDUSD", "TUSD", "BUSD", "USD", "EUR", "GBP", "TRY", "BRL", "JPY", "AUD",
    "BTC", "ETH", "BNB", "DAI", "USDE", "XRP", "DOGE", "SOL", "TRX",
), key=len, reverse=True))

_GLUED = ("binance", "binance-futures", "bybit", "bybit-linear")


def split_symbol(symbol: str) -> tuple[str, str]:
    """'BTC-USDT' -> ('BTC', 'USDT'); ValueError for anything not in normal form."""
    parts = symbol.split("-")
    if len(parts) != 2 or not parts[0] or not parts[1] or symbol != symbol.upper():
        raise ValueError(f"symbol must be BASE-QUOTE in upper case, got {symbol!r}")
    return parts[0], parts[1]


def normalize(symbol: str) -> str:
    """Accept 'btc-usdt', 'BTC/USDT', 'BTC_USDT' and return 'BTC-USDT'."""
    s = symbol.strip().upper().replace("/", "-").replace("_", "-")
    split_symbol(s)
    return s


def to_venue(venue: str, symbol: str) -> str:
    """Normal form -> the venue's instrument name."""
    base, quote = split_symbol(symbol)
    if venue in _GLUED:
        return base + quote
    if venue in ("okx", "coinbase"):
        return f"{base}-{quote}"
    if venue == "okx-swap":
        return f"{base}-{quote}-SWAP"
    if venue == "kraken":
        return f"{base}/{quote}"
    raise ValueError(f"unknown venue {venue!r}")


def binance_stream(symbol: str) -> str:
    """'BTC-USDT' -> 'btcusdt', the prefix of Binance stream names."""
    return to_venue("binance", symbol).lower()


def split_concatenated(native: str) -> str:
    """'BTCUSDT' -> 'BTC-USDT' by trying KNOWN_QUOTES; ValueError when none fits."""
    name = native.upper()
    for quote in KNOWN_QUOTES:
        if name.endswith(quote) and len(name) > len(quote):
            return f"{name[:-len(quote)]}-{quote}"
    raise ValueError(f"cannot split {native!r} into base and quote")


def from_venue(venue: str, native: str) -> str:
    """The venue's instrument name -> normal form (glued names via KNOWN_QUOTES)."""
    if venue in _GLUED:
        return split_concatenated(native)
    if venue in ("okx", "coinbase"):
        return normalize(native)
    if venue == "okx-swap":
        if not native.endswith("-SWAP"):
            raise ValueError(f"not an OKX swap instrument: {native!r}")
        return normalize(native[: -len("-SWAP")])
    if venue == "kraken":
        return normalize(native)
    raise ValueError(f"unknown venue {venue!r}")


def native_map(venue: str, symbols: list[str]) -> dict[str, str]:
    """{venue name: normal form} for the configured symbols (exact, no guessing)."""
    return {to_venue(venue, s): s for s in symbols}
