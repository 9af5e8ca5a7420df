"""Venue registry: handler classes, production URLs, env overrides."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sentrycoin.feeds import registry
from sentrycoin.feeds.binance import BinanceFuturesHandler, BinanceSpotHandler
from sentrycoin.feeds.bybit import BybitLinearHandler, BybitSpotHandler
from sentrycoin.feeds.okx import OkxSpotHandler, OkxSwapHandler
from tests.feeds.binance_bybit_okx_frames import make_markets

ENV_NAMES = {
    "binance": ("BINANCE_WS_URL", "BINANCE_REST_URL"),
    "binance-futures": ("BINANCE_FUTURES_WS_URL", "BINANCE_FUTURES_REST_URL"),
    "coinbase": ("COINBASE_WS_URL", "COINBASE_REST_URL"),
    "kraken": ("KRAKEN_WS_URL", "KRAKEN_REST_URL"),
    "bybit": ("BYBIT_WS_URL", "BYBIT_REST_URL"),
    "bybit-linear": ("BYBIT_LINEAR_WS_URL", "BYBIT_LINEAR_REST_URL"),
    "okx": ("OKX_WS_URL", "OKX_REST_URL"),
    "okx-swap": ("OKX_SWAP_WS_URL", "OKX_SWAP_REST_URL"),
}


def test_venue_names_are_the_contract():
    assert set(registry.VENUE_NAMES) == set(ENV_NAMES)


@pytest.mark.parametrize("venue", sorted(ENV_NAMES))
def test_env_var_names(venue):
    info = registry.venue_info(venue)
    assert (info.ws_env, info.rest_env) == ENV_NAMES[venue]


def test_production_defaults():
    env: dict[str, str] = {}
    assert registry.urls("binance", env) == ("wss://stream.binance.com:9443/stream", "https://api.binance.com/api/v3/depth")
    # Depth streams moved to /public in Binance's 2026 USD-M WebSocket routing change.
    assert registry.urls("binance-futures", env) == ("wss://fstream.binance.com/public/stream", "https://fapi.binance.com/fapi/v1/depth")
    assert registry.urls("bybit", env) == ("wss://stream.bybit.com/v5/public/spot", None)
    assert registry.urls("bybit-linear", env) == ("wss://stream.bybit.com/v5/public/linear", None)
    # OKX_REST_URL / OKX_SWAP_REST_URL: the REST books bridge when `books` pushes no snapshot.
    okx_books = "https://www.okx.com/api/v5/market/books"
    assert registry.urls("okx", env) == ("wss://ws.okx.com:8443/ws/v5/public", okx_books)
    assert registry.urls("okx-swap", env) == ("wss://ws.okx.com:8443/ws/v5/public", okx_books)
    assert registry.urls("coinbase", env)[0] == "wss://advanced-trade-ws.coinbase.com"
    assert registry.urls("kraken", env)[0] == "wss://ws.kraken.com/v2"


@pytest.mark.parametrize("venue", sorted(ENV_NAMES))
def test_env_overrides_used_exactly(venue):
    ws_env, rest_env = ENV_NAMES[venue]
    env = {ws_env: "ws://127.0.0.1:8765/some/path?x=1", rest_env: "http://127.0.0.1:8766/depth"}
    assert registry.urls(venue, env) == ("ws://127.0.0.1:8765/some/path?x=1", "http://127.0.0.1:8766/depth")
    # Another venue's variable does not leak.
    other = "OKX_WS_URL" if venue != "okx" else "BYBIT_WS_URL"
    assert registry.urls(venue, {other: "ws://127.0.0.1:1/"})[0] == registry.VENUES[venue].ws_url


def test_os_environ_is_the_default(monkeypatch):
    monkeypatch.setenv("BYBIT_LINEAR_WS_URL", "ws://127.0.0.1:9999/linear")
    assert registry.urls("bybit-linear")[0] == "ws://127.0.0.1:9999/linear"
    h = registry.make_handler("bybit-linear", make_markets("bybit-linear", ["BTC-USDT"]))
    assert h.connections()[0].url == "ws://127.0.0.1:9999/linear"


@pytest.mark.parametrize("venue,cls", [
    ("binance", BinanceSpotHandler), ("binance-futures", BinanceFuturesHandler),
    ("bybit", BybitSpotHandler), ("bybit-linear", BybitLinearHandler),
    ("okx", OkxSpotHandler), ("okx-swap", OkxSwapHandler),
])
def test_make_handler(venue, cls):
    env = {f"{venue.upper().replace('-', '_')}_WS_URL": "ws://127.0.0.1:1/x",
           f"{venue.upper().replace('-', '_')}_REST_URL": "http://127.0.0.1:2/depth"}
    h = registry.make_handler(venue, make_markets(venue, ["BTC-USDT"], depth=200), depth=200, env=env)
    assert type(h) is cls and h.venue == venue
    assert h.depth == 200
    assert h.connections()[0].url.startswith("ws://127.0.0.1:1/x")
    if venue.startswith("binance"):
        assert h.rest_url == "http://127.0.0.1:2/depth"


def test_make_handler_bybit_depth_reaches_subscription():
    h = registry.make_handler("bybit", make_markets("bybit", ["BTC-USDT"]), depth=150, env={})
    h.on_connected(0)
    assert '"orderbook.200.BTCUSDT"' in h.take_actions()[0].payload


@pytest.mark.parametrize("venue,module,name", [
    ("coinbase", "sentrycoin.feeds.coinbase", "CoinbaseHandler"),
    ("kraken", "sentrycoin.feeds.kraken", "KrakenHandler"),
])
def test_other_helpers_handlers_resolve(venue, module, name):
    mod = pytest.importorskip(module, reason=f"{module} not written yet")
    if not hasattr(mod, name):
        pytest.skip(f"{module}.{name} not there yet")
    assert registry.handler_class(venue) is getattr(mod, name)


def test_handler_modules_are_imported_lazily():
    code = (
        "import sys, sentrycoin.feeds.registry as r\n"
        "mods = [m for m in ('sentrycoin.feeds.coinbase', 'sentrycoin.feeds.kraken', 'sentrycoin.feeds.okx',"
        " 'sentrycoin.feeds.bybit', 'sentrycoin.feeds.binance') if m in sys.modules]\n"
        "print(mods)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_venue():
    with pytest.raises(ValueError, match="unknown venue"):
        registry.make_handler("ftx", [])


def test_binance_futures_default_subscribes_depth_on_the_public_route():
    from sentrycoin.feeds.binance import BinanceFuturesHandler
    from sentrycoin.market import Market

    ws_url, rest_url = registry.urls("binance-futures", {})
    handler = BinanceFuturesHandler([Market("binance-futures", "BTC-USDT")], ws_url, rest_url)
    assert handler.connections()[0].url == "wss://fstream.binance.com/public/stream"
    handler.on_connected(0)
    (sub,) = handler.take_actions()
    assert '"params":["btcusdt@depth@100ms"]' in sub.payload


def test_size_units():
    # okx-swap sizes are contracts; the linear/futures venues quote coins like spot.
    assert registry.size_unit("okx-swap") == "contracts"
    for venue in ("binance", "binance-futures", "bybit", "bybit-linear", "okx", "coinbase", "kraken"):
        assert registry.size_unit(venue) == "coins", venue
    assert registry.size_unit("test") == "coins"
