"""Each venue's books are sized from what the venue can send (FeedHandler.book_capacity).

A market built the way the monitor builds it (no capacity given) allocates
what its venue publishes plus a margin, not a fixed 5,000 levels per side;
a bounded venue's book never grows, a full-depth one grows on demand and
holds exactly what a book allocated at the bound would.
"""

from __future__ import annotations

import pytest

from sentrycoin.feeds.base import FetchSnapshot
from sentrycoin.feeds.binance import BinanceSpotHandler
from sentrycoin.feeds.bybit import BybitSpotHandler
from sentrycoin.feeds.registry import VENUE_NAMES, book_capacity
from sentrycoin.market import MAX_BOOK_CAPACITY, BookCapacity, Market
from tests.feeds.binance_bybit_okx_frames import bb_book, read_gz_lines
from tests.realdata import realdata_path


def venue_market(venue: str, symbol: str, depth: int) -> Market:
    """A market as every builder of a venue's markets makes it (monitor, simulator, recorder, replay)."""
    return Market(venue, symbol, depth=depth, capacity=book_capacity(venue, depth), source="replay")

SLOT_BYTES = 16


@pytest.mark.parametrize("venue, depth, initial", [
    ("bybit", 50, 66),            # orderbook.50 + 16
    ("bybit-linear", 100, 250),   # orderbook.200 + a quarter
    ("okx", 50, 500),             # books: 400 levels + a quarter
    ("kraken", 25, 41),           # book depth 25 + 16
    ("kraken", 100, 125),
    ("binance", 50, 1250),        # REST snapshot limit=1000 + a quarter, then grows
    ("binance-futures", 50, 1250),
    ("coinbase", 50, 1250),       # full book: starts near a typical snapshot, grows
])
def test_venue_books_start_at_what_the_venue_sends(venue: str, depth: int, initial: int) -> None:
    assert book_capacity(venue, depth) == BookCapacity(initial, MAX_BOOK_CAPACITY)
    book = venue_market(venue, "BTC-USDT", depth).book
    assert (book.capacity, book.max_capacity) == (initial, MAX_BOOK_CAPACITY)
    assert book.allocated_bytes == 2 * initial * SLOT_BYTES


def test_a_bybit_50_book_is_a_few_kilobytes_not_160() -> None:
    # The sizing regression guard: 66 slots per side, ~2 KB (a fixed 5,000 was 160 KB).
    assert venue_market("bybit", "BTC-USDT", 50).book.allocated_bytes <= 4096


def test_every_venue_book_holds_at_least_the_detector_depth() -> None:
    for venue in VENUE_NAMES:
        for depth in (1, 5, 50, 400, 1000, 2000):
            cap = book_capacity(venue, depth)
            assert depth <= cap.initial <= cap.maximum and cap.maximum >= MAX_BOOK_CAPACITY


def test_bybit_full_book_and_a_delta_adding_before_deleting_never_grow() -> None:
    market = venue_market("bybit", "BTC-USDT", 50)
    handler = BybitSpotHandler([market], "ws://127.0.0.1:1")
    handler.on_connected(0)
    handler.take_actions()
    bids = [(f"{100 - i * 0.1:.1f}", "1") for i in range(50)]
    asks = [(f"{101 + i * 0.1:.1f}", "1") for i in range(50)]
    handler.on_frame(0, bb_book("BTCUSDT", "snapshot", 10, bids, asks), 1)
    slots = market.book.allocated_slots
    # Ten new best bids listed before the deletes of the ten they push out.
    new = [(f"{100.01 + i * 0.01:.2f}", "2") for i in range(10)]
    gone = [(p, "0") for p, _ in bids[-10:]]
    handler.on_frame(0, bb_book("BTCUSDT", "delta", 11, new + gone, ()), 2)
    assert market.valid and market.book.bid_levels == 50
    assert market.book.allocated_slots == slots == (66, 66)


def replay_binance(name: str, symbol: str, market: Market) -> None:
    handler = BinanceSpotHandler([market], "ws://127.0.0.1:1", "http://127.0.0.1:1/depth")
    handler.on_connected(0)
    handler.take_actions()
    handler.on_frame(0, b'{"result":null,"id":1}', 0)
    assert any(isinstance(a, FetchSnapshot) for a in handler.take_actions())
    for ns, body in read_gz_lines(realdata_path(name)):
        if body.startswith(b'{"stream"'):
            handler.on_frame(0, body, ns // 1_000_000)
        else:
            handler.on_snapshot(symbol, body, ns // 1_000_000)
        handler.take_actions()
    assert market.valid


def test_real_binance_book_grows_into_its_diffs_and_matches_a_preallocated_one() -> None:
    name, symbol = "BINANCE_SPOT_BTCUSDT_20240808.gz", "BTC-USDT"
    grown = venue_market("binance", symbol, 50)
    fixed = Market("binance", symbol, depth=50, capacity=MAX_BOOK_CAPACITY, source="replay")
    replay_binance(name, symbol, grown)
    replay_binance(name, symbol, fixed)
    assert grown.book.bids().tolist() == fixed.book.bids().tolist()
    assert grown.book.asks().tolist() == fixed.book.asks().tolist()
    assert grown.book.volumes == fixed.book.volumes and not grown.book.truncated
    # Started at 1,250 slots per side and doubled only when full: a grown side
    # uses more than half its slots (levels plus the holes deep deletes leave;
    # after 6 minutes BTCUSDT holds ~1,200 bid and ~2,200 ask levels).
    bid_slots, ask_slots = grown.book.allocated_slots
    used_bids, _, used_asks, _ = grown.book._storage()
    for slots, used in ((bid_slots, used_bids), (ask_slots, used_asks)):
        assert slots in (1250, 2500, 5000) and used <= slots
        assert slots == 1250 or used > slots // 2
    assert grown.book.allocated_bytes < fixed.book.allocated_bytes


def test_every_builder_of_markets_sizes_books_for_their_venue(tmp_path) -> None:
    from sentrycoin.config import load_settings
    from sentrycoin.monitor import Monitor
    from sentrycoin.research.replay import Replayer
    from sentrycoin.sim.source import simulated_source

    bybit = book_capacity("bybit", 50)
    assert bybit.initial < 100  # distinct from the full-depth default
    env = {"EXCHANGE": "bybit", "SYMBOLS": "BTC-USDT,ETH-USDT", "SENTRY_DB": str(tmp_path / "a.db")}
    monitor = Monitor(load_settings(env=env), env=env, serve_http=False, console=False)
    assert {(m.book.capacity, m.book.max_capacity) for m in monitor.markets} == {(bybit.initial, bybit.maximum)}
    replay_market = Replayer(depth=50)._market("bybit", "BTC-USDT", 50)
    assert (replay_market.book.capacity, replay_market.book.max_capacity) == (bybit.initial, bybit.maximum)
    binance = book_capacity("binance", 50)
    sim = simulated_source(["BTC-USDT"], scenario="normal", seed=1, realtime=False)
    assert {m.book.capacity for m in sim.handler.markets.values()} == {binance.initial}
