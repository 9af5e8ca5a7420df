"""OKX without the WebSocket snapshot: the REST `market/books` bridge, and the subscribe budget.

Sans-I/O.  After OKX acknowledges a subscribe, an update that comes without a
snapshot starts a REST fetch; updates are buffered; the REST answer (its own
seqId S) is bridged by the first update with prevSeqId <= S < seqId, older
ones are dropped, a too-old answer is fetched again; a WebSocket snapshot wins
whenever one comes.
"""

from __future__ import annotations

import msgspec
import pytest

from sentrycoin.feeds.base import FetchSnapshot, Reconnect, Send
from sentrycoin.feeds.okx import SUBSCRIBE_REQUESTS_PER_HOUR, OkxSpotHandler, OkxSwapHandler
from tests.feeds.binance_bybit_okx_frames import book_dict, make_markets, okx_book, okx_levels

WS = "ws://127.0.0.1:9/ws/v5/public"
REST = "http://127.0.0.1:9/api/v5/market/books"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ack(inst: str) -> bytes:
    return msgspec.json.encode({"event": "subscribe", "arg": {"channel": "books", "instId": inst}, "connId": "x"})


def rest_body(seq: int, bids=(), asks=()) -> bytes:
    return msgspec.json.encode({"code": "0", "msg": "", "data": [
        {"asks": okx_levels(asks), "bids": okx_levels(bids), "ts": "1700000000000", "seqId": seq}]})


def subscribed(cls=OkxSpotHandler, symbols=("BTC-USDT",), rest=REST, **kw):
    markets = make_markets(cls.venue, list(symbols))
    h = cls(markets, WS, rest, **kw)
    h.on_connected(0)
    h.take_actions()
    for st in h._states.values():
        h.on_frame(0, ack(st.inst_id), 1)
    return h, {m.symbol: m for m in markets}


def fetches(h) -> list[FetchSnapshot]:
    return [a for a in h.take_actions() if isinstance(a, FetchSnapshot)]


BIDS = [("100", "1"), ("99", "2")]
ASKS = [("101", "3"), ("102", "4")]


def test_update_without_snapshot_fetches_rest_and_bridges():
    h, m = subscribed()
    market = m["BTC-USDT"]
    h.on_frame(0, okx_book("BTC-USDT", "update", 110, 100, [("99", "5")]), 2)  # inside the snapshot
    (fetch,) = fetches(h)
    assert fetch.url == f"{REST}?instId=BTC-USDT&sz=400" and fetch.symbol == "BTC-USDT"
    h.on_frame(0, okx_book("BTC-USDT", "update", 125, 110, [("98", "1")]), 3)  # bridges S=120
    h.on_frame(0, okx_book("BTC-USDT", "update", 130, 125, [], [("101", "0")]), 4)  # chains after it
    assert fetches(h) == [] and not market.valid  # one request only
    h.on_snapshot("BTC-USDT", rest_body(120, [("100", "1"), ("99", "5")], ASKS), 5)
    assert market.valid
    assert book_dict(market) == ({100.0: 1.0, 99.0: 5.0, 98.0: 1.0}, {102.0: 4.0})
    h.on_frame(0, okx_book("BTC-USDT", "update", 131, 130, [("100", "0")]), 6)
    assert market.valid and market.book.best_bid == 99.0
    h.on_frame(0, okx_book("BTC-USDT", "update", 140, 139, [("97", "1")]), 7)  # chain break
    assert not market.valid


def test_rest_snapshot_before_any_buffered_update_waits_for_the_bridge():
    h, m = subscribed()
    market = m["BTC-USDT"]
    h.on_frame(0, okx_book("BTC-USDT", "update", 110, 100, [("99", "5")]), 2)
    fetches(h)
    h.on_snapshot("BTC-USDT", rest_body(110, BIDS, ASKS), 3)  # holds everything buffered
    assert not market.valid  # a newer update may be in flight: wait for the bridge
    h.on_frame(0, okx_book("BTC-USDT", "update", 110, 110), 4)  # keep-alive inside the snapshot
    assert not market.valid and h.take_actions() == []
    h.on_frame(0, okx_book("BTC-USDT", "update", 118, 110, [("98", "7")]), 5)
    assert market.valid and book_dict(market)[0] == {100.0: 1.0, 99.0: 2.0, 98.0: 7.0}


def test_rest_snapshot_older_than_the_stream_is_fetched_again():
    h, m = subscribed()
    market = m["BTC-USDT"]
    h.on_frame(0, okx_book("BTC-USDT", "update", 210, 200, [("99", "5")]), 2)
    fetches(h)
    h.on_snapshot("BTC-USDT", rest_body(150, BIDS, ASKS), 3)  # 150 < prevSeqId 200: cannot bridge
    assert not market.valid
    (again,) = fetches(h)
    assert again.symbol == "BTC-USDT"
    h.on_snapshot("BTC-USDT", rest_body(205, BIDS, ASKS), 4)
    assert market.valid  # the kept update (200 <= 205 < 210) bridged it
    assert book_dict(market)[0] == {100.0: 1.0, 99.0: 5.0}


def test_bridge_that_fails_later_fetches_again():
    h, m = subscribed()
    h.on_frame(0, okx_book("BTC-USDT", "update", 110, 100), 2)
    fetches(h)
    h.on_snapshot("BTC-USDT", rest_body(110, BIDS, ASKS), 3)
    h.on_frame(0, okx_book("BTC-USDT", "update", 140, 130, [("98", "1")]), 4)  # 130 > 110: a hole
    assert not m["BTC-USDT"].valid
    assert len(fetches(h)) == 1


def test_buffer_keeps_only_a_contiguous_run():
    h, m = subscribed()
    h.on_frame(0, okx_book("BTC-USDT", "update", 110, 100, [("99", "5")]), 2)
    h.on_frame(0, okx_book("BTC-USDT", "update", 130, 120, [("98", "5")]), 3)  # hole: 110 -> 120
    st = h._states["BTC-USDT"]
    assert [d.seqId for d in st.buffer] == [130]


def test_websocket_snapshot_wins_and_needs_no_rest():
    h, m = subscribed()
    market = m["BTC-USDT"]
    h.on_frame(0, okx_book("BTC-USDT", "snapshot", 100, -1, BIDS, ASKS), 2)
    assert market.valid and fetches(h) == []
    # A REST answer that nobody asked for is ignored.
    h.on_snapshot("BTC-USDT", rest_body(50, [("1", "1")], [("2", "1")]), 3)
    assert book_dict(market)[0] == {100.0: 1.0, 99.0: 2.0}
    # And when a WebSocket snapshot overtakes a REST fetch, the late answer changes nothing.
    h2, m2 = subscribed()
    h2.on_frame(0, okx_book("BTC-USDT", "update", 110, 100), 2)
    assert len(fetches(h2)) == 1
    h2.on_frame(0, okx_book("BTC-USDT", "snapshot", 120, -1, BIDS, ASKS), 3)
    h2.on_snapshot("BTC-USDT", rest_body(105, [("1", "1")], [("2", "1")]), 4)
    assert m2["BTC-USDT"].valid and book_dict(m2["BTC-USDT"])[0] == {100.0: 1.0, 99.0: 2.0}


def test_updates_before_the_subscribe_ack_are_the_old_subscriptions_tail():
    markets = make_markets("okx", ["BTC-USDT"])
    h = OkxSpotHandler(markets, WS, REST)
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, okx_book("BTC-USDT", "update", 110, 100), 2)
    assert fetches(h) == [] and h.counters.ignored == 1


def test_bad_rest_answer_is_counted_and_fetched_again():
    h, m = subscribed()
    h.on_frame(0, okx_book("BTC-USDT", "update", 110, 100), 2)
    fetches(h)
    h.on_snapshot("BTC-USDT", b'{"code":"50011","msg":"Too Many Requests","data":[]}', 3)
    assert h.counters.decode_errors == 1 and not m["BTC-USDT"].valid
    assert "bad REST snapshot" in (m["BTC-USDT"].invalid_reason or "")
    assert len(fetches(h)) == 1
    h.on_snapshot("BTC-USDT", rest_body(110, [("nan", "1")], ASKS), 4)
    assert not m["BTC-USDT"].valid and len(fetches(h)) == 1


def test_swap_rest_url_names_the_swap_instrument():
    h, m = subscribed(OkxSwapHandler, rest="http://127.0.0.1:9/swapbooks")
    h.on_frame(0, okx_book("BTC-USDT-SWAP", "update", 110, 100), 2)
    (fetch,) = fetches(h)
    assert fetch.url == "http://127.0.0.1:9/swapbooks?instId=BTC-USDT-SWAP&sz=400"


def test_subscribe_budget_spent_reconnects_instead_of_overspending():
    clock = Clock()
    h, m = subscribed(symbols=("BTC-USDT", "ETH-USDT"), clock=clock)
    sent = 1  # the connection's subscribe request
    reconnects = []
    for i in range(SUBSCRIBE_REQUESTS_PER_HOUR):
        h.on_frame(0, okx_book("BTC-USDT", "snapshot", 10 * i + 5, -1, BIDS, ASKS), 2)
        h.on_frame(0, okx_book("BTC-USDT", "update", 10 * i + 9, 10 * i + 1), 3)  # chain break
        due = h.recovery_due("BTC-USDT")
        if due is not None:
            h.tick(due)  # book recovery asks again after its backoff
        for action in h.take_actions():
            if isinstance(action, Send):
                sent += 1
            elif isinstance(action, Reconnect):
                reconnects.append(action)
        if reconnects:
            break
    # Never more than 480 (un)subscribe requests on one connection within the hour.
    assert sent <= SUBSCRIBE_REQUESTS_PER_HOUR and len(reconnects) == 1
    assert reconnects[0].conn_id == 0
    # More trouble before the reconnect lands queues nothing more.
    h.on_frame(0, okx_book("ETH-USDT", "snapshot", 5, -1, BIDS, ASKS), 4)
    h.on_frame(0, okx_book("ETH-USDT", "update", 9, 1), 5)
    assert h.take_actions() == [] and not m["ETH-USDT"].valid
    # The new connection starts a new budget.
    h.on_disconnected(0)
    h.on_connected(0)
    assert len(h.take_actions()) == 1
    h.on_frame(0, ack("BTC-USDT"), 6)
    h.on_frame(0, okx_book("BTC-USDT", "snapshot", 5, -1, BIDS, ASKS), 7)
    h.on_frame(0, okx_book("BTC-USDT", "update", 9, 1), 8)
    h.tick(h.recovery_due("BTC-USDT"))  # (still within its backoff from the failures above)
    assert [type(a) for a in h.take_actions()] == [Send, Send]


@pytest.mark.parametrize("hours", [1.0, 2.0])
def test_subscribe_budget_refills_over_the_hour(hours):
    clock = Clock()
    h, m = subscribed(clock=clock)
    budget = h._sub_budget[0]
    while budget.try_take(1):
        pass
    clock.now += 3600.0 * hours
    # Refilled to at most half the hourly budget: never 480 in any hour.
    assert budget.tokens == pytest.approx(SUBSCRIBE_REQUESTS_PER_HOUR / 2)
