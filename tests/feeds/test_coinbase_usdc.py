"""Coinbase serves `-USDC` products as the matching `-USD` book (events say "BTC-USD").

Sans-I/O: a `BTC-USDC` market syncs from events that name `BTC-USD`; with both
configured, one subscription feeds two markets with identical books; a bad
message rejects both and one resubscribe heals both.
"""

from __future__ import annotations

from sentrycoin.feeds.coinbase import CoinbaseHandler, served_product
from sentrycoin.market import Market
from tests.feeds.coinbase_kraken_frames import book_copy, cb_l2, cb_snapshot_levels, same_book
from tests.feeds.test_coinbase import sends


def make(symbols: tuple[str, ...]) -> tuple[CoinbaseHandler, dict[str, Market]]:
    markets = [Market("coinbase", s) for s in symbols]
    return CoinbaseHandler(markets, "ws://127.0.0.1:9/"), {m.symbol: m for m in markets}


def test_served_product():
    assert served_product("BTC-USDC") == "BTC-USD"
    assert served_product("BTC-USD") == "BTC-USD"
    assert served_product("USDC-EUR") == "USDC-EUR"


def test_usdc_market_syncs_from_events_named_usd():
    handler, markets = make(("BTC-USDC",))
    handler.on_connected(0)
    assert sends(handler)[0] == {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"}
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", cb_snapshot_levels(100.0)), 1)
    m = markets["BTC-USDC"]
    assert m.valid and m.book.best_bid == 99.0
    handler.on_frame(0, cb_l2(1, "BTC-USD", "update", [("bid", "99.50", "2")]), 2)
    assert m.book.best_bid == 99.5 and m.messages == 2


def test_usd_and_usdc_share_one_subscription_and_both_books_follow():
    handler, markets = make(("BTC-USD", "BTC-USDC", "ETH-USD"))
    spec = handler.connections()[0]
    assert spec.symbols == ["BTC-USD", "BTC-USDC", "ETH-USD"]
    handler.on_connected(0)
    subs = sends(handler)
    assert subs[0]["product_ids"] == ["BTC-USD", "ETH-USD"]  # the USD book once
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", cb_snapshot_levels(100.0)), 1)
    handler.on_frame(0, cb_l2(1, "BTC-USD", "update", [("offer", "100.50", "3"), ("bid", "98.00", "0")]), 2)
    usd, usdc = markets["BTC-USD"], markets["BTC-USDC"]
    assert usd.valid and usdc.valid and not markets["ETH-USD"].valid
    assert same_book(book_copy(usd), book_copy(usdc))
    assert usdc.book.best_ask == 100.5 and usd.messages == usdc.messages == 2


def test_bad_update_rejects_both_markets_and_one_resubscribe_heals_both():
    handler, markets = make(("BTC-USD", "BTC-USDC"))
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", cb_snapshot_levels(100.0)), 1)
    handler.on_frame(0, cb_l2(1, "BTC-USD", "update", [("bid", "-5", "1")]), 2)
    assert not markets["BTC-USD"].valid and not markets["BTC-USDC"].valid
    assert markets["BTC-USD"].rejected == markets["BTC-USDC"].rejected == 1
    assert sends(handler) == [
        {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
    ]
    # Updates before the new snapshot are the old subscription's tail.
    handler.on_frame(0, cb_l2(2, "BTC-USD", "update", [("bid", "99.70", "1")]), 3)
    assert not markets["BTC-USDC"].valid
    handler.on_frame(0, cb_l2(3, "BTC-USD", "snapshot", cb_snapshot_levels(200.0)), 4)
    assert markets["BTC-USD"].valid and markets["BTC-USDC"].valid
    assert markets["BTC-USDC"].book.best_bid == 199.0


def test_sequence_gap_resubscribes_the_served_products_once():
    handler, markets = make(("BTC-USD", "BTC-USDC"))
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", cb_snapshot_levels(100.0)), 1)
    handler.on_frame(0, cb_l2(5, "BTC-USD", "update", [("bid", "99.70", "1")]), 2)
    assert not any(m.valid for m in markets.values())
    assert [s["product_ids"] for s in sends(handler)] == [["BTC-USD"], ["BTC-USD"]]
