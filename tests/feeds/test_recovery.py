"""Book recovery, sans-I/O, for every venue: an invalid book always has its next step scheduled.

The handlers are driven by hand (no sockets): connect, then never answer, or
fail a book again and again, and read the actions and timers they leave.
"""

from __future__ import annotations

import pytest

from sentrycoin.config import VENUE_NAMES
from sentrycoin.feeds.base import FetchSnapshot, Reconnect, Send
from sentrycoin.feeds.recovery import RecoveryPolicy
from sentrycoin.feeds.registry import make_handler
from sentrycoin.market import Market
from tests.feeds.binance_bybit_okx_frames import bb_book

POLICY = RecoveryPolicy(snapshot_timeout_s=15.0, retry_initial_s=1.0, retry_max_s=8.0,
                        reconnect_after=3, healthy_after_s=60.0)


def symbols_for(venue: str) -> list[str]:
    return ["BTC-USD", "ETH-USD"] if venue in ("coinbase", "kraken") else ["BTC-USDT", "ETH-USDT"]


def connected_handler(venue: str, n_symbols: int = 2):  # noqa: ANN201
    markets = [Market(venue, s) for s in symbols_for(venue)[:n_symbols]]
    handler = make_handler(venue, markets, env={})
    handler.recovery_policy = POLICY
    for spec in handler.connections():
        handler.on_connected(spec.conn_id)
    handler.take_actions()  # the subscribe / snapshot requests of the connect
    return handler, {m.symbol: m for m in markets}


def requests_for(actions: list, symbol: str, venue: str) -> int:
    """How many of `actions` ask the venue for `symbol`'s book again."""
    native = symbol.replace("-", "/") if venue == "kraken" else symbol.replace("-", "")
    count = 0
    for action in actions:
        if isinstance(action, FetchSnapshot) and action.symbol == symbol:
            count += 1
        elif isinstance(action, Send) and '"subscribe"' in str(action.payload).lower() and (
                symbol in str(action.payload) or native in str(action.payload)):
            count += 1
    return count


@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_a_snapshot_that_never_comes_is_asked_for_again_then_the_connection_reopened(venue: str) -> None:
    handler, markets = connected_handler(venue, n_symbols=1)  # one book: its own jittered timeline
    btc = markets[symbols_for(venue)[0]]
    t0 = 1000.0
    handler.tick(t0)  # the connect's request is in flight: its deadline starts now
    due = handler.recovery_due(btc.symbol)
    assert due == pytest.approx(t0 + POLICY.snapshot_timeout_s)
    handler.tick(due - 0.01)
    assert handler.take_actions() == [] and btc.last_error is None
    for attempt in range(1, POLICY.reconnect_after):
        handler.tick(handler.recovery_due(btc.symbol) + 0.001)  # the wait failed
        assert btc.invalid_reason == "snapshot timeout" and btc.last_error == "snapshot timeout"
        assert handler.snapshot_timeouts == attempt
        retry_at = handler.recovery_due(btc.symbol)
        assert retry_at is not None  # a retry is scheduled, not forgotten
        handler.tick(retry_at + 0.001)
        actions = handler.take_actions()
        assert requests_for(actions, btc.symbol, venue) == 1, actions
        assert not any(isinstance(a, Reconnect) for a in actions)
    # The last allowed wait fails too: the connection itself is reopened, once per connection.
    handler.tick(handler.recovery_due(btc.symbol) + 0.001)
    actions = handler.take_actions()
    reconnects = [a for a in actions if isinstance(a, Reconnect)]
    assert len(reconnects) == len(handler.connections()) and handler.recovery_reconnects == len(reconnects)
    assert not btc.valid


@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_repeated_failures_back_off_and_a_healthy_spell_resets(venue: str) -> None:
    handler, markets = connected_handler(venue)
    btc = markets[symbols_for(venue)[0]]
    now = 500.0
    handler.fail_book(btc.symbol, "checksum mismatch", now)
    assert requests_for(handler.take_actions(), btc.symbol, venue) == 1  # the first retry is at once
    assert btc.last_error == "checksum mismatch" and not btc.valid
    delays = []
    for _ in range(5):
        handler.fail_book(btc.symbol, "checksum mismatch", now)
        assert handler.take_actions() == []  # never in a tight loop
        due = handler.recovery_due(btc.symbol)
        assert due is not None and due > now
        handler.fail_book(btc.symbol, "checksum mismatch", now)  # a second failure meanwhile: still one retry
        assert handler.recovery_due(btc.symbol) == due
        delays.append(due - now)
        handler.tick(due)
        assert requests_for(handler.take_actions(), btc.symbol, venue) == 1
        now = due
    assert all(0 < d <= POLICY.retry_max_s for d in delays)
    assert max(delays) > POLICY.retry_initial_s  # it grew
    # After a healthy spell the next failure is retried at once again.
    handler.fail_book(btc.symbol, "checksum mismatch", now + POLICY.healthy_after_s + 1)
    assert requests_for(handler.take_actions(), btc.symbol, venue) == 1


@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_books_on_a_dropped_connection_wait_for_the_transport(venue: str) -> None:
    handler, markets = connected_handler(venue)
    for spec in handler.connections():
        handler.on_disconnected(spec.conn_id)
    handler.take_actions()
    for t in (10.0, 100.0, 1000.0):
        handler.tick(t)
        assert handler.take_actions() == []  # the reconnect loop is the scheduled recovery
    assert all(handler.recovery_due(s) is None for s in markets)
    for spec in handler.connections():
        handler.on_connected(spec.conn_id)
    handler.take_actions()
    handler.tick(2000.0)
    assert all(handler.recovery_due(s) == pytest.approx(2000.0 + POLICY.snapshot_timeout_s) for s in markets)


def test_a_book_the_core_found_crossed_is_resynced_by_the_next_tick() -> None:
    handler, markets = connected_handler("bybit")
    btc = markets["BTC-USDT"]
    handler.on_frame(0, bb_book("BTCUSDT", "snapshot", 10, [(100.0, 1.0)], [(101.0, 1.0)]), 1)
    assert btc.valid
    # A delta that puts a bid above the best ask: the venue never has such a book.
    handler.on_frame(0, bb_book("BTCUSDT", "delta", 11, [(102.0, 1.0)], []), 2)
    assert not btc.valid and btc.crossed == 1 and btc.invalid_reason is None
    handler.tick(10.0)
    assert btc.last_error == "crossed book" and btc.resyncs == 1
    assert requests_for(handler.take_actions(), "BTC-USDT", "bybit") == 1


def test_a_hold_by_the_source_is_not_a_failed_request() -> None:
    """A REST host that answered 429/418 holds our snapshot requests: no timeouts meanwhile."""
    handler, markets = connected_handler("binance", n_symbols=1)
    btc = markets["BTC-USDT"]
    btc.invalidate("Binance IP ban (418) until 12:00:00 UTC")
    handler.recovery_held_until = 500.0
    for t in (10.0, 100.0, 499.0):
        handler.tick(t)
    assert handler.snapshot_timeouts == 0 and handler.take_actions() == []
    assert btc.invalid_reason.startswith("Binance IP ban")  # the reason people need, kept
    handler.tick(500.0)  # the hold is over: the request it held is timed from now
    assert handler.recovery_due("BTC-USDT") == pytest.approx(500.0 + POLICY.snapshot_timeout_s)
