"""OKX v5 `books`: seqId/prevSeqId chain, CRC32 checksum (verified / skipped), resubscribe."""

from __future__ import annotations

import zlib

import pytest

from sentrycoin.feeds.base import Reconnect
from sentrycoin.feeds.okx import OkxSpotHandler, OkxSwapHandler, okx_checksum
from tests.feeds.binance_bybit_okx_frames import book_dict, book_state, make_markets, okx_book, sends

WS = "ws://127.0.0.1:9/ws/v5/public"


def signed_crc(text: str) -> int:
    crc = zlib.crc32(text.encode())
    return crc - 2**32 if crc >= 2**31 else crc


# The documented construction, written out by hand for a small book.
EX_BIDS = [("3366.1", "7"), ("3366", "6")]
EX_ASKS = [("3366.8", "9"), ("3368", "8")]
EX_TEXT = "3366.1:7:3366.8:9:3366:6:3368:8"
# Uneven sides: the longer side continues alone.
UN_BIDS = [("0.5", "1.25"), ("0.4", "3"), ("0.35", "0.001")]
UN_ASKS = [("0.6", "10")]
UN_TEXT = "0.5:1.25:0.6:10:0.4:3:0.35:0.001"


def handler(cls=OkxSpotHandler, symbols=("BTC-USDT", "ETH-USDT"), **kw):
    markets = make_markets(cls.venue, list(symbols))
    h = cls(markets, WS, **kw)
    return h, {x.symbol: x for x in markets}


def synced(cls=OkxSpotHandler):
    h, m = handler(cls)
    h.on_connected(0)
    h.take_actions()
    for st in h._states.values():
        h.on_frame(0, okx_book(st.inst_id, "snapshot", 1000, -1, EX_BIDS, EX_ASKS, checksum=signed_crc(EX_TEXT)), 1)
    assert all(x.valid for x in m.values())
    return h, m


# -- checksum -------------------------------------------------------------------------

def test_checksum_function_matches_hand_built_text():
    assert okx_checksum(EX_BIDS, EX_ASKS) == signed_crc(EX_TEXT)
    assert okx_checksum(UN_BIDS, UN_ASKS) == signed_crc(UN_TEXT)
    assert okx_checksum(UN_ASKS, UN_BIDS) == signed_crc("0.6:10:0.5:1.25:0.4:3:0.35:0.001")


def test_checksum_is_signed():
    # CRC32 values >= 2**31 must come out negative.
    texts = [f"{i}.5:1:{i + 1}:2" for i in range(50)]
    values = [okx_checksum([(f"{i}.5", "1")], [(f"{i + 1}", "2")]) for i in range(50)]
    assert values == [signed_crc(t) for t in texts]
    assert any(v < 0 for v in values) and any(v > 0 for v in values)
    assert all(-(2**31) <= v < 2**31 for v in values)


def test_checksum_uses_only_25_levels_per_side():
    bids = [(f"{100 - i}", f"{i + 1}") for i in range(30)]
    asks = [(f"{101 + i}", f"{i + 2}") for i in range(27)]
    parts = []
    for i in range(25):
        parts += [bids[i][0], bids[i][1], asks[i][0], asks[i][1]]
    assert okx_checksum(bids, asks) == signed_crc(":".join(parts))


def test_snapshot_with_valid_checksum_including_exact_text():
    h, m = handler()
    h.on_connected(0)
    h.take_actions()
    # Trailing zeros matter: the checksum is over OKX's own strings.
    bids = [("3366.10", "7.0")]
    asks = [("3366.80", "9.000")]
    ok = signed_crc("3366.10:7.0:3366.80:9.000")
    assert ok != signed_crc("3366.1:7:3366.8:9")
    h.on_frame(0, okx_book("BTC-USDT", "snapshot", 5, -1, bids, asks, checksum=ok), 1)
    assert m["BTC-USDT"].valid and h.counters.checksum_skipped == 0
    assert h.take_actions() == []


def test_update_checksum_verified_against_book_text():
    h, m = synced()
    btc = m["BTC-USDT"]
    # Change a size, delete a level, add one: the book's text must follow.
    bids_after = [("3366.1", "7.5"), ("3365", "1")]  # 3366 deleted, 3365 added
    asks_after = EX_ASKS
    cs = signed_crc("3366.1:7.5:3366.8:9:3365:1:3368:8")
    assert okx_checksum(bids_after, asks_after) == cs
    h.on_frame(0, okx_book("BTC-USDT", "update", 1010, 1000, [("3366.1", "7.5"), ("3366", "0"), ("3365", "1")],
                           [], checksum=cs), 2)
    assert btc.valid and btc.resyncs == 0
    assert book_dict(btc)[0] == {3366.1: 7.5, 3365.0: 1.0}
    assert h.take_actions() == []


def test_checksum_mismatch_resubscribes_that_symbol_only():
    h, m = synced()
    btc, eth = m["BTC-USDT"], m["ETH-USDT"]
    h.on_frame(0, okx_book("BTC-USDT", "update", 1010, 1000, [("3366.1", "8")], [], checksum=12345), 2)
    assert not btc.valid and btc.resyncs == 1 and btc.rejected == 1
    assert sends(h.take_actions()) == [
        {"op": "unsubscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]},
        {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]},
    ]
    assert eth.valid
    # Updates in flight are ignored until the new snapshot arrives.
    h.on_frame(0, okx_book("BTC-USDT", "update", 1020, 1010, [("1", "1")], []), 3)
    assert not btc.valid and 1.0 not in book_dict(btc)[0]
    h.on_frame(0, okx_book("BTC-USDT", "snapshot", 3000, -1, EX_BIDS, EX_ASKS, checksum=signed_crc(EX_TEXT)), 4)
    assert btc.valid


def test_snapshot_checksum_mismatch():
    h, m = handler()
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, okx_book("BTC-USDT", "snapshot", 5, -1, EX_BIDS, EX_ASKS, checksum=signed_crc(EX_TEXT) ^ 1), 1)
    assert not m["BTC-USDT"].valid and m["BTC-USDT"].rejected == 1
    assert len(sends(h.take_actions())) == 2


def test_checksum_zero_is_skipped_and_counted():
    h, m = handler()
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, okx_book("BTC-USDT", "snapshot", 5, -1, EX_BIDS, EX_ASKS, checksum=0), 1)
    h.on_frame(0, okx_book("BTC-USDT", "update", 9, 5, [("3366.1", "1")], [], checksum=0), 2)
    assert m["BTC-USDT"].valid and h.counters.checksum_skipped == 2
    assert h.take_actions() == []


# -- sequence -----------------------------------------------------------------------

def test_seq_chain_allows_non_unit_steps_repeats_and_resets():
    h, m = synced()
    btc = m["BTC-USDT"]
    h.on_frame(0, okx_book("BTC-USDT", "update", 1234, 1000, [("3366.1", "2")], []), 2)  # step of 234
    h.on_frame(0, okx_book("BTC-USDT", "update", 1234, 1234, [], []), 3)  # no change: same seqId
    h.on_frame(0, okx_book("BTC-USDT", "update", 7, 1234, [("3366", "4")], []), 4)  # seqId reset after maintenance
    h.on_frame(0, okx_book("BTC-USDT", "update", 8, 7, [], [("3367", "1")]), 5)
    assert btc.valid and btc.resyncs == 0 and btc.messages == 5
    assert book_dict(btc) == ({3366.1: 2.0, 3366.0: 4.0}, {3366.8: 9.0, 3367.0: 1.0, 3368.0: 8.0})


@pytest.mark.parametrize("prev", [999, 1001, -1, 1010], ids=["back", "gap", "minus1", "future"])
@pytest.mark.parametrize("cls", [OkxSpotHandler, OkxSwapHandler])
def test_broken_chain_resubscribes(cls, prev):
    h, m = synced(cls)
    btc = m["BTC-USDT"]
    before = book_state(btc)
    h.on_frame(0, okx_book(h._states["BTC-USDT"].inst_id, "update", 2000, prev, [("3366.1", "9")], []), 2)
    assert book_state(btc) == before  # checked before applying
    assert not btc.valid and m["ETH-USDT"].valid
    args = [x["args"] for x in sends(h.take_actions())]
    assert args == [[{"channel": "books", "instId": h._states["BTC-USDT"].inst_id}]] * 2


def test_duplicate_update_is_a_break():
    h, m = synced()
    frame = okx_book("BTC-USDT", "update", 1010, 1000, [("3366.1", "9")], [])
    h.on_frame(0, frame, 2)
    assert m["BTC-USDT"].valid
    h.on_frame(0, frame, 3)
    assert not m["BTC-USDT"].valid


# -- wiring ----------------------------------------------------------------------------

def test_connections_subscribe_and_ping():
    h, m = handler(OkxSwapHandler, symbols=[f"S{i}-USDT" for i in range(5)], symbols_per_connection=3)
    specs = h.connections()
    assert [s.symbols for s in specs] == [["S0-USDT", "S1-USDT", "S2-USDT"], ["S3-USDT", "S4-USDT"]]
    assert all(s.url == WS and s.ping_payload == "ping" and s.ping_interval_s == 25 for s in specs)
    h.on_connected(1)
    assert sends(h.take_actions()) == [{"op": "subscribe", "args": [
        {"channel": "books", "instId": "S3-USDT-SWAP"}, {"channel": "books", "instId": "S4-USDT-SWAP"}]}]


def test_swap_instrument_names():
    h, m = handler(OkxSwapHandler, symbols=("BTC-USDT",))
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, okx_book("BTC-USDT", "snapshot", 5, -1, EX_BIDS, EX_ASKS), 1)  # spot inst: not ours
    assert not m["BTC-USDT"].valid
    h.on_frame(0, okx_book("BTC-USDT-SWAP", "snapshot", 5, -1, EX_BIDS, EX_ASKS), 1)
    assert m["BTC-USDT"].valid


def test_garbage_acks_pong_errors():
    h, m = synced()
    before = {s: book_state(x) for s, x in m.items()}
    for junk in (b"", b"\x80", b"{", b"[1]", b"ping!", b'{"arg":3}'):
        h.on_frame(0, junk, 2)
    assert h.counters.decode_errors == 6
    h.on_frame(0, b"pong", 2)
    h.on_frame(0, b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a"}', 2)
    h.on_frame(0, b'{"event":"error","code":"60012","msg":"Invalid request","connId":"a"}', 2)
    assert h.counters.ignored == 3 and h.take_actions() == []
    assert all(x.valid for x in m.values())
    assert {s: book_state(x) for s, x in m.items()} == before


def test_notice_asks_for_reconnect():
    h, m = synced()
    h.on_frame(0, b'{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade.","connId":"a"}', 2)
    (act,) = h.take_actions()
    assert isinstance(act, Reconnect) and act.conn_id == 0


def test_bad_levels_rejected_atomically():
    h, m = synced()
    btc = m["BTC-USDT"]
    before = book_state(btc)
    cases = (
        ([("3366.1", "9")], [("abc", "1")]),
        ([("3366.1", "9")], [("3367", "-1")]),
        ([("3366.1", "nan")], []),
    )
    for bids, asks in cases:
        h.on_frame(0, okx_book("BTC-USDT", "update", 1010, 1000, bids, asks), 2)
        assert book_state(btc) == before and not btc.valid
        h.take_actions()
        h.on_frame(0, okx_book("BTC-USDT", "snapshot", 1000, -1, EX_BIDS, EX_ASKS), 3)
        assert btc.valid
    short = b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["3367"]],"bids":[],"ts":"1","checksum":0,"prevSeqId":1000,"seqId":1001}]}'
    h.on_frame(0, short, 4)
    assert book_state(btc) == before and not btc.valid


def test_disconnect():
    h, m = synced()
    h.on_disconnected(0)
    assert not any(x.valid for x in m.values())
    h.on_frame(0, okx_book("BTC-USDT", "update", 1010, 1000, [("3366.1", "9")], []), 2)
    assert not m["BTC-USDT"].valid


def test_text_map_pruned_to_book_levels(monkeypatch):
    import sentrycoin.feeds.okx as okx_mod

    monkeypatch.setattr(okx_mod, "_TEXT_PRUNE_LEVELS", 10)
    markets = make_markets("okx", ["BTC-USDT"], depth=2, capacity=4)
    h = OkxSpotHandler(markets, WS, depth=2)
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, okx_book("BTC-USDT", "snapshot", 1, -1, [("10", "1")], [("11", "1")]), 1)
    bids = [(f"{9 - i * 0.1:.1f}", "1") for i in range(12)]  # the book keeps only its best 4
    h.on_frame(0, okx_book("BTC-USDT", "update", 2, 1, bids, []), 2)
    st = h._states["BTC-USDT"]
    assert set(st.bid_text) == set(markets[0].book.bids()[:, 0].tolist())
    assert len(st.bid_text) == 4 and markets[0].book.truncated


def test_subscribe_error_names_the_instrument():
    h, m = handler()
    h.on_connected(0)
    h.take_actions()
    h.on_frame(0, b'{"event":"error","code":"60018","msg":"Wrong URL or channel:books,instId:ETH-USDT doesn\'t exist","connId":"a"}', 1)
    assert "60018" in m["ETH-USDT"].invalid_reason
    assert m["BTC-USDT"].invalid_reason == "waiting for snapshot"
