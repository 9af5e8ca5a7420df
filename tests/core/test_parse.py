"""sentrycore.parse.DepthParser: the Binance depthUpdate fast path.

The reference is msgspec (what sentrycoin.feeds.binance decodes with) plus
Python's float(): on every frame the parser accepts it must give exactly the
same fields and levels, and anything it declines must be left to msgspec
without the book being touched.
"""

from __future__ import annotations

import gzip
import json
import math
import random

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentrycoin.feeds.binance import BinanceFuturesHandler, BinanceSpotHandler, FuturesCombined, SpotCombined, SpotDepth
from sentrycoin.market import Market
from sentrycore import OrderBook
from sentrycore.parse import DepthParser
from tests.realdata import realdata_path

SPOT = msgspec.json.Decoder(SpotCombined, strict=False)
RAW = msgspec.json.Decoder(SpotDepth, strict=False)
FUT = msgspec.json.Decoder(FuturesCombined, strict=False)

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(frame: bytes):
    """msgspec's reading of a frame, or None when it rejects it."""
    try:
        return SPOT.decode(frame).data
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None


def same_as(p: DepthParser, ev) -> bool:
    return (p.E, p.symbol, p.U, p.u, p.bids, p.asks) == (ev.E, ev.s, ev.U, ev.u, ev.b, ev.a)


# -- generated frames -------------------------------------------------------------------

# Decimal strings as venues write them: mostly the 8-decimal fixed format,
# plus short, long (slow path) and oddly sized ones.
int_part = st.one_of(st.just("0"), st.integers(1, 9_999_999).map(str), st.integers(10**7, 10**25).map(str))
frac_part = st.one_of(st.just(""), st.integers(0, 10**8 - 1).map(lambda x: f".{x:08d}"),
                      st.text("0123456789", min_size=1, max_size=30).map(lambda t: "." + t))
decimal_text = st.builds(lambda i, f: i + f, int_part, frac_part)
# Bare JSON numbers too (exponents allowed there), from real doubles.
bare_number = st.one_of(
    st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False).map(repr),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(1, 10**18), st.integers(-330, 310)),
)


@st.composite
def value(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(bare_number)  # written bare
    return '"' + draw(decimal_text) + '"'


ws = st.text(alphabet=" \t\r\n", max_size=2)


@st.composite
def frames(draw, combined: bool | None = None):
    """A frame in the accepted subset, with its key order and whitespace shuffled."""
    sp = lambda: draw(ws)  # noqa: E731

    def levels() -> str:
        n = draw(st.integers(0, 25))
        items = [f"{sp()}[{sp()}{draw(value())}{sp()},{sp()}{draw(value())}{sp()}]{sp()}" for _ in range(n)]
        return "[" + sp() + ",".join(items) + "]"

    symbol = draw(st.sampled_from(["BTCUSDT", "ETHUSDT", "X", "1000PEPEUSDT"]))
    fields = {
        "e": '"depthUpdate"',
        "E": str(draw(st.integers(0, 10**15))),
        "s": f'"{symbol}"',
        "U": str(draw(st.integers(0, 10**17))),
        "u": str(draw(st.integers(0, 10**17))),
        "b": levels(),
        "a": levels(),
    }
    if draw(st.booleans()):
        fields["T"] = str(draw(st.integers(0, 10**15)))
        fields["pu"] = str(draw(st.integers(0, 10**17)))
    if draw(st.booleans()):
        fields["x"] = draw(st.sampled_from(['null', 'true', 'false', '-1.5e3', '"note"', '0']))
    keys = draw(st.permutations(list(fields)))
    body = "{" + sp() + ",".join(f'{sp()}"{k}"{sp()}:{sp()}{fields[k]}{sp()}' for k in keys) + "}"
    if combined is None:
        combined = draw(st.booleans())
    if combined:
        outer = [f'"stream"{sp()}:{sp()}"{symbol.lower()}@depth@100ms"', f'"data"{sp()}:{sp()}{body}']
        if draw(st.booleans()):
            outer.reverse()
        body = "{" + sp() + f"{sp()},{sp()}".join(outer) + sp() + "}"
    return (sp() + body + sp()).encode()


@FAST
@given(frame=frames())
def test_generated_frames_parse_exactly_like_msgspec(frame):
    p = DepthParser()
    kind = p.parse(frame)
    combined = frame.lstrip().startswith(b'{') and b'"stream"' in frame
    try:
        ev = SPOT.decode(frame).data if combined else RAW.decode(frame)
    except msgspec.ValidationError:
        # A bare number beyond the double range: msgspec refuses it, so must we.
        assert kind == 0, frame
        return
    # Every generated frame is in the accepted subset (msgspec accepted it).
    assert kind != 0, frame
    assert kind == (1 if combined else 2)
    assert same_as(p, ev)
    assert p.n_bids == len(ev.b) and p.n_asks == len(ev.a)
    # msgspec and float() agree on every quoted value too (the brief's oracle).
    for (px, qty), (rp, rq) in zip(p.bids + p.asks, ev.b + ev.a, strict=True):
        assert math.copysign(1, px) == 1 and px == rp and qty == rq


@FAST
@given(text=decimal_text)
def test_decimal_strings_convert_exactly_as_float(text):
    p = DepthParser()
    frame = b'{"E":1,"s":"S","U":1,"u":1,"b":[["%s","%s"]],"a":[]}' % (text.encode(), text.encode())
    if p.parse(frame) == 0:
        assert len(text) > 90  # only over-long numbers are left to msgspec
        return
    (px, qty), = p.bids
    assert px == float(text) and qty == float(text)
    assert str(px) == str(float(text))


@FAST
@given(text=bare_number)
def test_bare_numbers_convert_exactly_as_float(text):
    p = DepthParser()
    frame = b'{"E":1,"s":"S","U":1,"u":1,"b":[[%s,1]],"a":[]}' % text.encode()
    if math.isinf(float(text)):
        assert p.parse(frame) == 0  # msgspec: "Number out of range"
        with pytest.raises(msgspec.ValidationError):
            RAW.decode(frame)
        return
    assert p.parse(frame) == 2
    assert p.bids[0][0] == float(text) == RAW.decode(frame).b[0][0]


def test_clinger_edges():
    cases = ["9007199254740992", "9007199254740993", "0.1", "0.3", "1e22", "1e23", "123456789012345678901",
             "0.000000000000000000000000001", "17976931348623157" + "0" * 60, "2.2250738585072011e-308",
             "4.9e-324", "1e-400", "0", "0.0", "0.00000000", "61737.63000000", "1.7976931348623157e308"]
    p = DepthParser()
    for text in cases:
        quoted = "e" not in text
        item = f'"{text}"' if quoted else text
        frame = f'{{"E":1,"s":"S","U":1,"u":1,"b":[[{item},{item}]],"a":[]}}'.encode()
        assert p.parse(frame) == 2, text
        assert p.bids == [(float(text), float(text))], text
        assert p.bids == RAW.decode(frame).b, text


# -- declined and mutated frames ------------------------------------------------------------

BASE = (b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT",'
        b'"U":157,"u":160,"b":[["61737.63000000","0.00000000"],["61730.17000000","1.20000000"]],'
        b'"a":[["61837.64000000","1.54698000"]]}}')


@pytest.mark.parametrize("frame", [
    b"", b"{", b"[]", b"null", BASE[:-1], BASE + b"x", BASE + b"}",
    BASE.replace(b'"E":1723161255208', b'"E":-1'),             # sign: left to msgspec
    BASE.replace(b'"E":1723161255208', b'"E":1.5'),
    BASE.replace(b'"E":1723161255208', b'"E":"1"'),
    BASE.replace(b'"U":157', b'"U":0157'),
    BASE.replace(b'"U":157', b'"U":1234567890123456789012'),   # too long for int64: msgspec decides
    BASE.replace(b'"s":"BTCUSDT"', b'"s":"BTC\\u0055SDT"'),     # escapes
    BASE.replace(b'"s":"BTCUSDT"', b'"s":"BTC\xc3\xa9"'),       # non-ASCII
    BASE.replace(b'"s":"BTCUSDT"', b'"s":1'),
    BASE.replace(b'"E":', b'"\\u0045":'),                       # an escaped key could be "E"
    BASE.replace(b'"e":"depthUpdate",', b'"E":1,'),             # duplicate key
    BASE.replace(b'"e":"depthUpdate",', b'"x":{"y":1},'),       # nested unknown value
    BASE.replace(b',"s":"BTCUSDT"', b''),                      # missing field
    BASE.replace(b'"stream":"btcusdt@depth@100ms",', b''),     # data without stream
    BASE.replace(b'"61737.63000000"', b'"-61737.63"'),
    BASE.replace(b'"61737.63000000"', b'"NaN"'),
    BASE.replace(b'"61737.63000000"', b'NaN'),
    BASE.replace(b'"61737.63000000"', b'"1e5"'),              # exponent inside a string
    BASE.replace(b'"61737.63000000"', b'"01.5"'),
    BASE.replace(b'"61737.63000000"', b'"1."'),
    BASE.replace(b'"61737.63000000"', b'".5"'),
    BASE.replace(b'"61737.63000000"', b'" 1.5"'),
    BASE.replace(b'"61737.63000000"', b'"1.5'),
    BASE.replace(b'"61737.63000000"', b'"1' + b"1" * 120 + b'"'),
    BASE.replace(b'["61737.63000000","0.00000000"]', b'["61737.63000000"]'),
    BASE.replace(b'["61737.63000000","0.00000000"]', b'["1","2","3"]'),
    BASE.replace(b'"b":[', b'"b":[,'),
    BASE.replace(b'"stream":"btcusdt@depth@100ms"', b'"stream":"btcusdt@depth@100ms","E":5'),
])
def test_declines_what_is_outside_the_subset(frame):
    p = DepthParser()
    assert p.parse(frame) == 0
    assert p.symbol is None
    assert p.apply_to(OrderBook()) is False


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    b = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["flip", "delete", "insert", "truncate"])
        pos = rng.randrange(max(len(b), 1))
        if op == "flip" and b:
            b[pos] = rng.choice(b'0123456789-.eE"[]{},:nN \x00\xff\\')
        elif op == "delete" and b:
            del b[pos]
        elif op == "insert":
            b[pos:pos] = rng.choice([b"-", b"0", b'"', b",", b"]", b"NaN", b"1e999", b"\\u0000", b" ", b"1" * 30])
        elif op == "truncate":
            del b[pos:]
    return bytes(b)


@FAST
@given(frame=frames(combined=True), seed=st.integers(0, 2**32))
def test_mutated_frames_never_diverge_from_msgspec(frame, seed):
    mutated = _mutate(random.Random(seed), frame)
    p = DepthParser()
    kind = p.parse(mutated)
    ref = reference(mutated)
    if kind == 1:
        assert ref is not None, mutated  # never accept what msgspec rejects
        assert same_as(p, ref)
    elif kind == 2:
        assert RAW.decode(mutated)  # a raw event: msgspec agrees it is one


@FAST
@given(frame=frames(combined=True), seed=st.integers(0, 2**32))
def test_mutated_frames_apply_all_or_nothing(frame, seed):
    mutated = _mutate(random.Random(seed), frame)
    book = OrderBook(depth=5, capacity=200)
    book.load_snapshot([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0), (102.0, 2.0)])
    before = (book.bids(500).tobytes(), book.asks(500).tobytes())
    p = DepthParser()
    if p.parse(mutated) == 0:
        assert p.apply_to(book) is False
        assert (book.bids(500).tobytes(), book.asks(500).tobytes()) == before
        return
    ref = OrderBook(depth=5, capacity=200)
    ref.load_snapshot([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0), (102.0, 2.0)])
    try:
        bids = np.array(p.bids, np.float64).reshape(-1, 2)
        asks = np.array(p.asks, np.float64).reshape(-1, 2)
        for arr in (bids, asks):
            if len(arr):
                ok = np.all((arr[:, 0] > 0) & np.isfinite(arr).all(axis=1) & (arr[:, 1] >= 0))
                if not ok:
                    raise ValueError("bad level")
        ref.apply_bids(np.ascontiguousarray(bids[:, 0]), np.ascontiguousarray(bids[:, 1]))
        ref.apply_asks(np.ascontiguousarray(asks[:, 0]), np.ascontiguousarray(asks[:, 1]))
        expect_ok = True
    except ValueError:
        expect_ok = False
    assert p.apply_to(book) is expect_ok
    if expect_ok:
        assert book.bids(500).tobytes() == ref.bids(500).tobytes()
        assert book.asks(500).tobytes() == ref.asks(500).tobytes()
    else:
        assert (book.bids(500).tobytes(), book.asks(500).tobytes()) == before


@pytest.mark.parametrize("bad_side", ["b", "a"])
@pytest.mark.parametrize("bad", [b'"0"', b'"0.0"', b'"0.00000000"', b"0", b'"' + b"9" * 400 + b'"'])
def test_bad_value_on_either_side_leaves_both_sides_untouched(bad_side, bad):
    good_b = b'["100.5","3"]'
    good_a = b'["101.5","4"]'
    bad_level = b'[%s,"1"]' % bad  # a bad price (zero or infinite)
    b = b"[%s,%s]" % (good_b, bad_level) if bad_side == "b" else b"[%s]" % good_b
    a = b"[%s,%s]" % (good_a, bad_level) if bad_side == "a" else b"[%s]" % good_a
    frame = b'{"E":1,"s":"S","U":1,"u":1,"b":%s,"a":%s}' % (b, a)
    p = DepthParser()
    if p.parse(frame) == 0:
        assert len(bad) > 90  # the 400-digit price is left to msgspec
        return
    assert p.valid is False
    book = OrderBook()
    book.load_snapshot([(100.0, 1.0)], [(101.0, 1.0)])
    before = (book.bids(10).tobytes(), book.asks(10).tobytes())
    assert p.apply_to(book) is False
    assert p.apply_next(book, 0, False) is False
    assert (book.bids(10).tobytes(), book.asks(10).tobytes()) == before


def test_buffers_grow_and_are_reused():
    p = DepthParser()
    levels = ",".join(f'["{1000 + i}.5","{i}.25"]' for i in range(3000))
    asks = ",".join(f'["{2000 + i}","1"]' for i in range(70))
    big = f'{{"E":1,"s":"S","U":1,"u":1,"b":[{levels}],"a":[{asks}]}}'.encode()
    assert p.parse(big) == 2
    assert p.n_bids == 3000 and p.bids[2999] == (3999.5, 2999.25) and p.n_asks == 70
    small = b'{"E":2,"s":"T","U":2,"u":3,"b":[],"a":[["1","2"]]}'
    assert p.parse(small) == 2
    assert (p.n_bids, p.n_asks, p.bids, p.asks, p.symbol, p.E, p.U, p.u) == (0, 1, [], [(1.0, 2.0)], "T", 2, 2, 3)


def test_symbol_is_reused_while_it_repeats_and_follows_changes():
    p = DepthParser()
    a = BASE
    b = BASE.replace(b'"s":"BTCUSDT"', b'"s":"ETHUSDT"')
    p.parse(a)
    first = p.symbol
    p.parse(a)
    assert p.symbol is first == "BTCUSDT"
    p.parse(b)
    assert p.symbol == "ETHUSDT"
    p.parse(a)
    assert p.symbol == "BTCUSDT"


def test_accepts_any_buffer():
    p = DepthParser()
    for data in (BASE, bytearray(BASE), memoryview(BASE)):
        assert p.parse(data) == 1 and p.u == 160
    assert p.parse("not bytes") == 0  # str has no buffer: declined, no exception
    assert p.parse(None) == 0


def test_futures_fields_and_chain_rules():
    frame = BASE.replace(b'"u":160,', b'"u":160,"T":1723161255200,"pu":156,')
    p = DepthParser()
    assert p.parse(frame) == 1 and p.has_pu and p.pu == 156
    ref = FUT.decode(frame).data
    assert (p.E, p.U, p.u, p.pu, p.bids, p.asks) == (ref.E, ref.U, ref.u, ref.pu, ref.b, ref.a)
    book = OrderBook()
    assert p.apply_next(book, 155, True) is False   # pu must equal the previous u
    assert p.apply_next(book, 156, False) is True   # spot rule: U == last + 1
    assert p.apply_next(book, 156, True) is True
    assert book.best_bid == 61730.17 and book.best_ask == 61837.64
    p.parse(BASE)
    assert not p.has_pu and p.apply_next(book, 156, True) is False


# -- real frames --------------------------------------------------------------------------

def _recorded_frames(name: str) -> list[bytes]:
    out = []
    with gzip.open(realdata_path(name), "rb") as fh:
        for line in fh:
            _, _, frame = line.rstrip(b"\n").partition(b" ")
            out.append(frame)
    return out


def test_real_recording_parses_identically_to_msgspec():
    frames = _recorded_frames("BINANCE_SPOT_BTCUSDT_20240808.gz")
    p = DepthParser()
    depth = 0
    for frame in frames:
        kind = p.parse(frame)
        if b'"depthUpdate"' in frame:
            depth += 1
            assert kind == 1
            assert same_as(p, SPOT.decode(frame).data)
        else:
            assert kind == 0  # bookTicker, trade, the REST snapshot: not depth events
    assert depth == 3451


@pytest.mark.parametrize("name,symbol", [("BINANCE_SPOT_BTCUSDT_20240808.gz", "BTC-USDT"),
                                         ("BINANCE_SPOT_ETHUSDT_20240808.gz", "ETH-USDT")])
def test_handler_fast_path_matches_reference_path(name, symbol, monkeypatch):
    """The whole recording through BinanceSpotHandler, with and without the
    parser: same books after every frame, same counters."""
    frames = _recorded_frames(name)

    def run(fast: bool):
        market = Market("binance", symbol, depth=50, capacity=20000, source="replay")
        h = BinanceSpotHandler([market], "ws://127.0.0.1:9/stream", "http://127.0.0.1:9/api/v3/depth")
        if not fast:
            def reference_on_frame(conn_id: int, data: bytes, recv_ms: int) -> None:
                h.counters.frames += 1
                h.counters.bytes += len(data)
                h._decode_frame(data, recv_ms)
            h.on_frame = reference_on_frame  # type: ignore[method-assign]
        h.on_connected(0)
        h.take_actions()
        states = []
        for frame in frames:
            if frame.startswith(b'{"lastUpdateId"'):
                h.on_snapshot(symbol, frame, 0)
            else:
                h.on_frame(0, frame, 0)
            if b"depthUpdate" in frame:
                states.append((market.valid, market.book.bids(60).tobytes(), market.book.asks(60).tobytes(),
                               market.book.bid_volume, market.book.ask_volume))
        return states, h.counters.astuple(), (market.messages, market.resyncs, market.rejected, market.valid)

    assert run(True) == run(False)


def _synced(handler_cls, pu: bool):
    market = Market("binance", "BTC-USDT", source="replay")
    h = handler_cls([market], "ws://127.0.0.1:9/stream", "http://127.0.0.1:9/api/v3/depth")
    h.on_connected(0)
    h.take_actions()
    h.on_snapshot("BTC-USDT", json.dumps({"lastUpdateId": 100, "bids": [["100", "1"]],
                                           "asks": [["101", "1"]]}).encode(), 0)
    extra = ',"pu":100' if pu else ""
    h.on_frame(0, ('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":5,"s":"BTCUSDT",'
                   f'"U":100,"u":101{extra},"b":[],"a":[]}}}}').encode(), 0)
    assert market.valid
    return h, market


def _ev(U, u, b, pu=None):
    extra = f',"pu":{pu}' if pu is not None else ""
    return ('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":9,"s":"BTCUSDT",'
            f'"U":{U:d},"u":{u:d}{extra},"b":{b},"a":[]}}}}').encode()


@pytest.mark.parametrize("handler_cls,pu", [(BinanceSpotHandler, False), (BinanceFuturesHandler, True)])
def test_handler_declined_fast_path_keeps_reference_semantics(handler_cls, pu):
    h, m = _synced(handler_cls, pu)
    h.on_frame(0, _ev(102, 103, '[["100","2"]]', pu=101 if pu else None), 0)  # fast path
    assert m.valid and m.book.best_bid == 100.0 and m.book.bid_volume == 2.0 and m.messages == 2
    # A bad value: the book is untouched and the reference path resyncs.
    h.on_frame(0, _ev(104, 104, '[["99","3"],["0","1"]]', pu=103 if pu else None), 0)
    assert not m.valid and m.rejected == 1 and m.book.bid_volume == 2.0
    assert [a for a in h.take_actions()]  # a new snapshot is requested


def test_handler_gap_on_fast_path_resyncs():
    h, m = _synced(BinanceSpotHandler, False)
    h.on_frame(0, _ev(105, 106, '[["100","2"]]'), 0)
    assert not m.valid and m.resyncs == 1 and m.book.bid_volume == 1.0


class _Recorder:
    """A stand-in Market: a book, and the after_message calls it received."""

    def __init__(self) -> None:
        self.book = OrderBook()
        self.book.load_snapshot([(61000.0, 1.0)], [(62000.0, 1.0)])
        self.calls: list[int] = []

    def after_message(self, event_ms: int) -> None:
        self.calls.append(event_ms)


def test_take_applies_only_a_synced_continuing_event():
    from sentrycore.parse import ChainState

    market = _Recorder()
    state = ChainState(market)
    assert state.book is market.book and state.synced is False
    routes = {"BTCUSDT": state}
    p = DepthParser()
    before = market.book.bids(10).tobytes()
    assert p.take(BASE, routes, False) is False  # not synced
    state.synced = True
    state.last_u = 155
    assert p.take(BASE, routes, False) is False  # U=157 does not follow 155
    assert p.take(BASE, {"ETHUSDT": state}, False) is False  # unknown symbol
    assert p.take(BASE, {"BTCUSDT": object()}, False) is False  # not a ChainState
    state.last_u = "156"
    assert p.take(BASE, routes, False) is False  # not an int: reference path decides
    assert market.book.bids(10).tobytes() == before and market.calls == []
    state.last_u = 156
    assert p.take(BASE, routes, False) is True
    assert state.last_u == 160 and market.calls == [1723161255208]
    assert market.book.best_bid == 61730.17 and market.book.best_ask == 61837.64
    raw = BASE[len(b'{"stream":"btcusdt@depth@100ms","data":'):-1]
    assert p.parse(raw) == 2 and p.take(raw, routes, False) is False  # raw events: reference path
