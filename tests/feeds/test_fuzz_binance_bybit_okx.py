"""Property tests: garbage and mutated messages into every Binance/Bybit/OKX decoder.

Properties, for every input:
* no exception escapes `on_frame` / `on_snapshot`;
* when a message is not applied (rejected, ignored, undecodable) the book is
  exactly as before.  (OKX verifies a checksum on the book *after* applying a
  message; a mismatch invalidates the book instead, and is excluded.)
* when a well-formed message with chained ids is accepted, the book equals a
  plain dict model of the same updates.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentrycoin.feeds.binance import BinanceFuturesHandler, BinanceSpotHandler
from sentrycoin.feeds.bybit import BybitLinearHandler, BybitSpotHandler
from sentrycoin.feeds.okx import OkxSpotHandler, OkxSwapHandler
from tests.feeds.binance_bybit_okx_frames import (
    bb_book,
    bn_depth,
    bn_snapshot,
    book_dict,
    book_state,
    make_markets,
    okx_book,
    read_jsonl_zst,
)
from tests.realdata import REALDATA_DIR

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIDS = [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)]
ASKS = [(101.0, 1.0), (102.0, 2.0), (103.0, 3.0)]
WS = "ws://127.0.0.1:9/x"
REST = "http://127.0.0.1:9/depth"


# -- synced handlers, one per venue ----------------------------------------------------

def binance_spot():
    (m,) = make_markets("binance", ["BTC-USDT"])
    h = BinanceSpotHandler([m], WS, REST)
    h.on_connected(0)
    h.on_snapshot("BTC-USDT", bn_snapshot(100, BIDS, ASKS), 1)
    h.on_frame(0, bn_depth("BTCUSDT", 101, 101, [(100.0, 1.5)]), 2)
    return h, m, lambda i, b, a: bn_depth("BTCUSDT", 101 + i, 101 + i, b, a)


def binance_futures():
    (m,) = make_markets("binance-futures", ["BTC-USDT"])
    h = BinanceFuturesHandler([m], WS, REST)
    h.on_connected(0)
    h.on_snapshot("BTC-USDT", bn_snapshot(100, BIDS, ASKS), 1)
    h.on_frame(0, bn_depth("BTCUSDT", 99, 101, [(100.0, 1.5)], pu=98), 2)
    return h, m, lambda i, b, a: bn_depth("BTCUSDT", 101 + i, 101 + i, b, a, pu=100 + i)


def bybit(cls):
    def make():
        (m,) = make_markets(cls.venue, ["BTC-USDT"])
        h = cls([m], WS)
        h.on_connected(0)
        h.on_frame(0, bb_book("BTCUSDT", "snapshot", 1000, BIDS, ASKS), 1)
        return h, m, lambda i, b, a: bb_book("BTCUSDT", "delta", 1000 + i, b, a)
    return make


def okx(cls):
    def make():
        (m,) = make_markets(cls.venue, ["BTC-USDT"])
        h = cls([m], WS)
        inst = h._states["BTC-USDT"].inst_id
        h.on_connected(0)
        h.on_frame(0, okx_book(inst, "snapshot", 50, -1, BIDS, ASKS), 1)
        return h, m, lambda i, b, a: okx_book(inst, "update", 50 + i, 50 + i - 1, b, a)
    return make


MAKERS = {
    "binance": binance_spot, "binance-futures": binance_futures,
    "bybit": bybit(BybitSpotHandler), "bybit-linear": bybit(BybitLinearHandler),
    "okx": okx(OkxSpotHandler), "okx-swap": okx(OkxSwapHandler),
}


def check_unchanged_unless_applied(m, before, messages_before):
    if m.messages == messages_before:
        if (m.invalid_reason or "").startswith("checksum mismatch"):
            assert not m.valid
            return
        assert book_state(m) == before


# -- random bytes --------------------------------------------------------------------------

@FUZZ
@given(venue=st.sampled_from(sorted(MAKERS)), data=st.binary(max_size=300))
def test_random_bytes_never_raise_nor_touch_the_book(venue, data):
    h, m, _ = MAKERS[venue]()
    assert m.valid
    before, n = book_state(m), m.messages
    h.on_frame(0, data, 10)
    assert book_state(m) == before and m.messages == n


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_random_snapshot_bodies_never_raise(data):
    (m,) = make_markets("binance", ["BTC-USDT"])
    h = BinanceSpotHandler([m], WS, REST)
    h.on_connected(0)
    h.on_frame(0, bn_depth("BTCUSDT", 10, 12, [(100.0, 1.0)]), 1)
    before = book_state(m)
    h.on_snapshot("BTC-USDT", data, 2)
    assert book_state(m) == before and not m.valid


# -- well-formed envelopes with hostile numbers ---------------------------------------------

NUMBERS = st.one_of(
    st.sampled_from(["0", "-1", "-0", "NaN", "nan", "inf", "-inf", "Infinity", "1e400", "", "abc", "0x10",
                     "1_0", " 5", "1e-400", "0.00000001", "99999999999"]),
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False).map(lambda x: f"{x:.8f}"),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
LEVEL = st.tuples(NUMBERS, NUMBERS)
SIDE = st.lists(LEVEL, max_size=6)


def model_apply(model, levels):
    for p, q in levels:
        if float(q) == 0.0:
            model.pop(float(p), None)
        else:
            model[float(p)] = float(q)


@FUZZ
@given(venue=st.sampled_from(sorted(MAKERS)), msgs=st.lists(st.tuples(SIDE, SIDE), min_size=1, max_size=4))
def test_hostile_level_values(venue, msgs):
    h, m, frame = MAKERS[venue]()
    bids, asks = book_dict(m)
    for i, (b, a) in enumerate(msgs, start=1):
        before, n = book_state(m), m.messages
        was_valid = m.valid
        h.on_frame(0, frame(i, b, a), 10 + i)
        check_unchanged_unless_applied(m, before, n)
        if m.messages > n:
            # Applied only to a valid book; a message that crosses it makes it invalid.
            assert was_valid and (m.valid or book_crossed(m))
            model_apply(bids, b)
            model_apply(asks, a)
            assert book_dict(m) == (bids, asks)
        if not m.valid:
            break


# -- mutated messages ----------------------------------------------------------------------

def _real_binance_frames() -> list[bytes]:
    path = REALDATA_DIR / "BINANCE.jsonl.zst"
    if not path.is_file():
        return []
    frames = [r["data"].encode() for r in read_jsonl_zst(path) if r["t"] == "recv" and "@depth" in r["data"][:40]]
    # Re-key to the synced test symbol and chain ids, keeping the real level text.
    out = []
    for f in frames[:40]:
        obj = json.loads(f)
        d = obj["data"]
        out.append(bn_depth("BTCUSDT", 102, 102, d["b"], d["a"]))
    return out


REAL = _real_binance_frames()
SAMPLES = {
    "binance": REAL or [bn_depth("BTCUSDT", 102, 102, [(100.0, 2.0)], [(101.0, 0.0)])],
    "binance-futures": [bn_depth("BTCUSDT", 102, 102, [(100.0, 2.0)], [(101.5, 4.0)], pu=101)],
    "bybit": [bb_book("BTCUSDT", "delta", 1001, [(100.0, 2.0)], [(101.0, 0.0)])],
    "bybit-linear": [bb_book("BTCUSDT", "delta", 1001, [(99.5, 2.0)], [(102.0, 7.0)])],
    "okx": [okx_book("BTC-USDT", "update", 51, 50, [(100.0, 2.0)], [(101.0, 0.0)])],
    "okx-swap": [okx_book("BTC-USDT-SWAP", "update", 51, 50, [(99.5, 2.0)], [(102.0, 7.0)])],
}


@st.composite
def mutated(draw):
    venue = draw(st.sampled_from(sorted(MAKERS)))
    frame = bytearray(draw(st.sampled_from(SAMPLES[venue])))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        pos = draw(st.integers(0, max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[pos] = draw(st.sampled_from(b'0123456789-.eE"[]{},:nN \x00\xff'))
        elif op == "delete" and frame:
            del frame[pos]
        elif op == "insert":
            frame[pos:pos] = draw(st.sampled_from([b"-", b"0", b'"', b",", b"]", b"NaN", b"1e999", b"\\u0000"]))
        elif op == "truncate":
            del frame[pos:]
    return venue, bytes(frame)


@FUZZ
@given(case=mutated())
def test_mutated_messages(case):
    venue, frame = case
    h, m, _ = MAKERS[venue]()
    before, n = book_state(m), m.messages
    h.on_frame(0, frame, 10)
    check_unchanged_unless_applied(m, before, n)
    if m.messages > n:
        assert m.valid or book_crossed(m)  # applied only when every rule passed


def book_crossed(m) -> bool:
    """Best bid at or above best ask: the core must have dropped the book."""
    crossed = m.book.best_bid >= m.book.best_ask
    assert not crossed or (not m.valid and m.crossed > 0)
    return crossed


@FUZZ
@given(data=st.data())
def test_mutated_snapshot_bodies(data):
    body = bytearray(bn_snapshot(101, BIDS, ASKS))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(body) - 1))
        body[pos] = data.draw(st.sampled_from(b'0123456789-.eE"[]{},:n \x00'))
    (m,) = make_markets("binance", ["BTC-USDT"])
    h = BinanceSpotHandler([m], WS, REST)
    h.on_connected(0)
    h.on_frame(0, bn_depth("BTCUSDT", 102, 102, [(100.0, 2.0)]), 1)
    h.on_snapshot("BTC-USDT", bytes(body), 2)
    if not m.valid:
        return
    # Accepted: then the mutated body was itself a well-formed snapshot that bridges.
    snap = json.loads(bytes(body))
    assert snap["lastUpdateId"] + 1 >= 102
