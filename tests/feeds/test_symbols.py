"""Normal form BASE-QUOTE <-> venue instrument names."""

from __future__ import annotations

import pytest

from sentrycoin.feeds.symbols import (
    binance_stream,
    from_venue,
    native_map,
    normalize,
    split_concatenated,
    split_symbol,
    to_venue,
)

CASES = [
    ("binance", "BTC-USDT", "BTCUSDT"),
    ("binance-futures", "ETH-USDT", "ETHUSDT"),
    ("bybit", "SOL-USDC", "SOLUSDC"),
    ("bybit-linear", "BTC-USDT", "BTCUSDT"),
    ("okx", "BTC-USDT", "BTC-USDT"),
    ("okx-swap", "BTC-USDT", "BTC-USDT-SWAP"),
    ("coinbase", "BTC-USD", "BTC-USD"),
    ("kraken", "BTC-USD", "BTC/USD"),
]


@pytest.mark.parametrize("venue,symbol,native", CASES)
def test_round_trip(venue, symbol, native):
    assert to_venue(venue, symbol) == native
    assert from_venue(venue, native) == symbol


def test_binance_stream_names_are_lower_case():
    assert binance_stream("BTC-USDT") == "btcusdt"
    assert binance_stream("RUNE-EUR") == "runeeur"


def test_split_concatenated_prefers_longest_quote():
    assert split_concatenated("BTCUSDT") == "BTC-USDT"
    assert split_concatenated("ETHFDUSD") == "ETH-FDUSD"
    assert split_concatenated("LRCBTC") == "LRC-BTC"
    assert split_concatenated("btcusd") == "BTC-USD"
    with pytest.raises(ValueError):
        split_concatenated("FOOBAR")
    with pytest.raises(ValueError):
        split_concatenated("USDT")


def test_native_map_uses_configured_symbols_exactly():
    # Guessing would split "USDCUSDT" as USDCUS-DT? no: as USDC-USDT; the map never guesses.
    assert native_map("binance", ["USDC-USDT"]) == {"USDCUSDT": "USDC-USDT"}
    assert native_map("bybit", ["BTC-USDT", "ETH-BTC"]) == {"BTCUSDT": "BTC-USDT", "ETHBTC": "ETH-BTC"}
    assert native_map("okx-swap", ["BTC-USDT"]) == {"BTC-USDT-SWAP": "BTC-USDT"}


@pytest.mark.parametrize("bad", ["BTCUSDT", "btc-usdt", "BTC-", "-USDT", "A-B-C", ""])
def test_split_symbol_rejects_non_normal_forms(bad):
    with pytest.raises(ValueError):
        split_symbol(bad)


def test_normalize():
    assert normalize(" btc/usdt ") == "BTC-USDT"
    assert normalize("eth_btc") == "ETH-BTC"
    with pytest.raises(ValueError):
        normalize("BTCUSDT")


def test_unknown_venue_and_bad_swap_name():
    with pytest.raises(ValueError):
        to_venue("ftx", "BTC-USD")
    with pytest.raises(ValueError):
        from_venue("ftx", "BTC-USD")
    with pytest.raises(ValueError):
        from_venue("okx-swap", "BTC-USDT")
