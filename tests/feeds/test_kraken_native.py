"""The Kraken v2 native path (sentrycore.kraken) against the handler's msgspec path.

Oracles: zlib.crc32 for the shared CRC table; `fixed_text` (Decimal) and
`kraken_checksum` (sentrycoin.feeds.checksum, the rule spelled out on text)
for the checksum computed from the book; msgspec for the parser; and
`KrakenHandler.on_frame` as a class attribute (the reference path) for the
whole handler: on every frame the C path takes, books, states, counters and
queued actions must end exactly as the reference leaves them.
"""

from __future__ import annotations

import json
import random
import zlib
from datetime import UTC
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentrycoin.feeds.checksum import fixed_text, kraken_checksum, strip_number
from sentrycoin.feeds.kraken import _EPOCH, _OBJECT, _ONE_MS, _V2_BOOKS, KrakenHandler
from sentrycoin.market import Market
from sentrycore import OrderBook
from sentrycore.kraken import KrakenBookState, KrakenParser, book_checksum, crc32, exact_text, level_text
from tests.core.test_parse import _mutate
from tests.feeds.coinbase_kraken_frames import kr_v2_book, kr_v2_instrument

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
URL = "ws://127.0.0.1:9/v2"


# -- shared pieces: CRC32 and fixed-decimal text --------------------------------------------


@FAST
@given(data=st.binary(max_size=700), start=st.integers(0, 2**32 - 1))
def test_crc32_is_zlibs(data, start):
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data, start) == zlib.crc32(data, start)
    half = len(data) // 2
    assert crc32(data[half:], crc32(data[:half])) == zlib.crc32(data)  # chains like zlib


@st.composite
def fixed_numbers(draw):
    """(decimal text with at most `places` decimals, places)."""
    places = draw(st.integers(0, 12))
    digits = draw(st.one_of(st.integers(0, 10**6), st.integers(0, 2**53), st.integers(2**52 - 1000, 2**52 + 1000)))
    scale = draw(st.integers(0, places))
    value = Decimal(digits).scaleb(-scale)
    return format(value, "f"), places


@FAST
@given(case=fixed_numbers())
def test_level_text_is_the_decimal_text_whenever_exact(case):
    text, places = case
    x = float(text)
    expected = strip_number(fixed_text(Decimal(text), places))
    if exact_text(x, places):
        assert level_text(x, places) == expected, (text, places)
    else:
        assert level_text(x, places) is None
        assert x * float(10**places) >= 2.0**52


def test_level_text_edges():
    assert level_text(0.0, 8) == "" and level_text(0.00001, 8) == "1000"
    assert level_text(45290.0, 1) == "452900" and level_text(0.1, 1) == "1"
    assert level_text(float(2**52 - 1), 0) == str(2**52 - 1)
    assert level_text(float(2**52), 0) is None and level_text(1.0, 23) is None and level_text(-1.0, 2) is None
    # Ties of the scaled double that only the fma residual decides.
    for d in (2**51 + 1, 2**52 - 3, 4503599627370495, 1234567890123457):
        for places in range(0, 8):
            x = float(Decimal(d).scaleb(-places))
            if exact_text(x, places):
                assert level_text(x, places) == str(d), (d, places)


@st.composite
def books(draw):
    pp, qp = draw(st.integers(0, 5)), draw(st.integers(0, 8))
    mid = draw(st.integers(10**pp, 10**(pp + 6)))
    bids = sorted(draw(st.sets(st.integers(1, mid - 1) if mid > 1 else st.just(1), max_size=25)), reverse=True)
    asks = sorted(draw(st.sets(st.integers(mid + 1, mid * 2 + 2), max_size=25)))
    qty = st.integers(1, 10**(qp + 4))

    def side(keys):
        return [(Decimal(k).scaleb(-pp), Decimal(draw(qty)).scaleb(-qp)) for k in keys]

    return pp, qp, side(bids), side(asks)


@FAST
@given(case=books())
def test_book_checksum_is_the_text_rule(case):
    pp, qp, bids, asks = case
    book = OrderBook(depth=10, capacity=100)
    book.load_snapshot([(float(p), float(q)) for p, q in bids] or [[0, 0]][:0],
                       [(float(p), float(q)) for p, q in asks] or [[0, 0]][:0])
    state = KrakenBookState(1000)
    state.price_places, state.qty_places = pp, qp
    text = [(fixed_text(p, pp), fixed_text(q, qp)) for p, q in bids]
    expected = kraken_checksum([(fixed_text(p, pp), fixed_text(q, qp)) for p, q in asks], text)
    assert book_checksum(book, state) == expected
    # Without precisions a level has no text: None, as a missing token always was.
    assert book_checksum(book, KrakenBookState(1000)) is (None if bids or asks else 0)


@st.composite
def book_sessions(draw):
    """A book and a run of changes near its top, some with other quantity places."""
    pp, qp = draw(st.integers(0, 4)), draw(st.integers(0, 6))
    mid = 10**(pp + 3)
    keys = st.integers(mid - 30, mid + 30).filter(lambda k: k != mid)
    qty = st.integers(0, 10**(qp + 3))
    steps = draw(st.lists(st.tuples(st.lists(st.tuples(keys, qty), max_size=4), st.integers(0, 1)),
                          min_size=1, max_size=30))
    return pp, qp, mid, steps


@FAST
@given(case=book_sessions())
def test_book_checksum_stays_the_text_rule_while_the_top_changes(case):
    # One state over many checksums: the text of the last top levels that a
    # later checksum copies instead of writing must be that level's text.
    pp, qp, mid, steps = case
    book = OrderBook(depth=10, capacity=200)
    bids: dict[Decimal, Decimal] = {}
    asks: dict[Decimal, Decimal] = {}
    state = KrakenBookState(1000)
    state.price_places = pp
    for changes, more_places in steps:
        for key, q in changes:
            side = bids if key < mid else asks
            price, size = Decimal(key).scaleb(-pp), Decimal(q).scaleb(-qp)
            if size:
                side[price] = size
            else:
                side.pop(price, None)
            apply = book.apply_bids if key < mid else book.apply_asks
            apply([float(price)], [float(size)])
        places = qp + more_places  # a quantity written with more places is another text
        state.qty_places = places
        expected = kraken_checksum(
            [(fixed_text(p, pp), fixed_text(asks[p], places)) for p in sorted(asks)[:10]],
            [(fixed_text(p, pp), fixed_text(bids[p], places)) for p in sorted(bids, reverse=True)[:10]])
        assert book_checksum(book, state) == expected
        assert book_checksum(book, state) == expected  # the same top again: the kept CRC


def test_book_checksum_reads_tokens_first_and_skips_holes():
    book = OrderBook(depth=2, capacity=100)
    book.load_snapshot([(float(100 - k), 1.0) for k in range(1, 40)], [(101.5, 2.0)])
    book.apply_bids([90.0, 80.0], [0.0, 0.0])  # deep deletes: holes in the arrays
    state = KrakenBookState(1000)
    state.price_places, state.qty_places = 1, 2
    bids = [(f"{100 - k}.0", "1.00") for k in range(1, 40) if 100 - k not in (90, 80)]
    assert book._storage()[1] > 0  # the deletes left holes
    assert book_checksum(book, state) == kraken_checksum([("101.5", "2.00")], bids)
    state.ask_tokens[101.5] = "1015" + "77"
    assert book_checksum(book, state) == zlib.crc32(
        ("101577" + "".join(strip_number(p) + strip_number(q) for p, q in bids[:10])).encode())


# -- the parser vs msgspec ----------------------------------------------------------------


def number_text(value: Decimal, rng: random.Random) -> str:
    return rng.choice([format(value, "f"), format(value, "f"), str(value), format(value, "f") + "0"])


@st.composite
def v2_frames(draw):
    rng = random.Random(draw(st.integers(0, 2**32)))

    def levels():
        out = []
        for _ in range(draw(st.integers(0, 6))):
            p = Decimal(draw(st.integers(1, 10**9))).scaleb(-draw(st.integers(0, 4)))
            q = Decimal(draw(st.integers(0, 10**9))).scaleb(-draw(st.integers(0, 9)))
            fields = [f'"price":{number_text(p, rng)}', f'"qty":{number_text(q, rng)}']
            if rng.random() < 0.1:
                fields.append(rng.choice(['"note":"x"', '"n":null', '"deep":{"a":1}']))
            rng.shuffle(fields)
            out.append("{" + ",".join(fields) + "}")
        return "[" + ",".join(out) + "]"

    book = {"symbol": json.dumps(draw(st.sampled_from(["BTC/USD", "ETH/USD", "XBT/USD", "DOGE/USD"]))),
            "bids": levels(), "asks": levels(),
            "checksum": draw(st.sampled_from(["123", "0", "4294967295", "-1", "1.5", "null", '"7"', str(2**40)])),
            "timestamp": json.dumps(draw(st.sampled_from([
                "2026-01-02T03:04:05.678901Z", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.6789012Z",
                "2026-01-02T04:04:05.1+01:00", "2026-01-02T03:04:05", "2026-02-30T03:04:05Z", "bad",
                "2026-01-02t03:04:05z"])))}
    for key in draw(st.sets(st.sampled_from(["bids", "asks", "checksum", "timestamp"]), max_size=1)):
        del book[key]
    keys = list(book)
    rng.shuffle(keys)
    book_text = "{" + ",".join(f'"{k}":{book[k]}' for k in keys) + "}"
    top = {"channel": json.dumps(draw(st.sampled_from(["book"] * 6 + ["ticker"]))),
           "type": json.dumps(draw(st.sampled_from(["update"] * 6 + ["snapshot"]))),
           "data": "[" + ",".join([book_text] * draw(st.sampled_from([1, 1, 1, 2, 0]))) + "]"}
    if rng.random() < 0.1:
        top[rng.choice(["method", "extra", "symbol"])] = rng.choice(['"x"', "1", "null"])
    keys = list(top)
    rng.shuffle(keys)
    ws = rng.choice(["", " ", "\n\t"])
    return ("{" + ws + ",".join(f'"{k}"{ws}:{ws}{top[k]}' for k in keys) + "}").encode()


def reference(frame: bytes):
    try:
        msg = _OBJECT.decode(frame)
        if msg.channel != "book" or msg.type != "update" or msg.method or msg.symbol:
            return None
        books_ = _V2_BOOKS.decode(msg.data)
    except ValueError:
        return None
    if len(books_) != 1 or books_[0].checksum is None or books_[0].timestamp is None:
        return None
    b = books_[0]
    ts = b.timestamp if b.timestamp.tzinfo else b.timestamp.replace(tzinfo=UTC)

    def decimals(levels, attr):
        return max([0] + [-getattr(lv, attr).as_tuple().exponent for lv in levels if lv.qty != 0])

    return (b.symbol, b.checksum, (ts - _EPOCH) // _ONE_MS,
            [(float(lv.price), float(lv.qty)) for lv in b.bids], [(float(lv.price), float(lv.qty)) for lv in b.asks],
            max(decimals(b.bids, "price"), decimals(b.asks, "price")),
            max(decimals(b.bids, "qty"), decimals(b.asks, "qty")))


@FAST
@given(frame=v2_frames(), seed=st.integers(0, 2**32), mutate=st.booleans())
def test_parser_reads_frames_exactly_like_msgspec(frame, seed, mutate):
    if mutate:
        frame = _mutate(random.Random(seed), frame)
    p = KrakenParser()
    ref = reference(frame)
    if p.parse(frame):
        assert ref is not None, frame
        assert (p.symbol, p.checksum, p.event_ms, p.bids, p.asks, p.price_decimals, p.qty_decimals) == ref, frame


# -- the handler: native path vs reference path ------------------------------------------------


class Model:
    """The venue's book as text (Decimal), truncated to depth, for correct checksums."""

    def __init__(self, depth: int, pp: int, qp: int) -> None:
        self.depth, self.pp, self.qp = depth, pp, qp
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, bids, asks, snapshot=False):
        if snapshot:
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                if q == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
        for side, best_first in ((self.bids, True), (self.asks, False)):
            for p in sorted(side, reverse=best_first)[self.depth:]:
                del side[p]

    def checksum(self) -> int:
        def text(side, best_first):
            return [(fixed_text(p, self.pp), fixed_text(q, self.qp))
                    for p in sorted(side, reverse=best_first) for q in (side[p],)]
        return kraken_checksum(text(self.asks, False), text(self.bids, True))


def frame_of(kind, bids, asks, checksum, symbol="BTC/USD"):
    return kr_v2_book(kind, symbol, [(format(p, "f"), format(q, "f")) for p, q in bids],
                      [(format(p, "f"), format(q, "f")) for p, q in asks], checksum)


class _Declined:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = KrakenHandler._reference_frame
        declined = self

        def counting(handler, conn_id, data, recv_ms):
            declined.count += 1
            original(handler, conn_id, data, recv_ms)

        monkeypatch.setattr(KrakenHandler, "_reference_frame", counting)


def _pair(monkeypatch=None, depth=10, pp=1, qp=4):
    declined = _Declined(monkeypatch) if monkeypatch is not None else None
    out = []
    for _ in range(2):
        markets = [Market("kraken", s, depth=5) for s in ("BTC-USD", "ETH-USD")]
        h = KrakenHandler(markets, URL, depth=depth)
        h.on_connected(0)
        h.on_frame(0, kr_v2_instrument([("BTC/USD", pp, qp), ("ETH/USD", 2, 8)]), 1)
        h.take_actions()
        out.append(h)
    if monkeypatch is not None:
        monkeypatch.undo()
        declined.count = 0  # the instrument frames of the setup
    native, ref = out
    ref.on_frame = lambda conn_id, data, recv_ms: KrakenHandler.on_frame(ref, conn_id, data, recv_ms)
    return native, ref, declined


def _state(h: KrakenHandler):
    markets = {s: (m.book.bids().tolist(), m.book.asks().tolist(), m.valid, m.messages, m.last_event_ms, m.rejected,
                   m.resyncs, m.checksum_mismatches, m.invalid_reason) for s, m in h.markets.items()}
    states = {s: (st_.awaiting, st_.depth, st_.price_places, st_.qty_places, st_.needs_precision,
                  dict(st_.bid_tokens), dict(st_.ask_tokens)) for s, st_ in h._states.items()}
    c = h.counters
    return (markets, states, (c.frames, c.bytes, c.decode_errors, c.ignored, c.checksum_skipped),
            h.checksum_ok, h.checksum_failed, h.internal_errors, [a.payload for a in h.take_actions()])


@st.composite
def sessions(draw):
    """A snapshot, then updates: mostly correct checksums, some wrong, odd decimals, garbage, resnapshots."""
    pp, qp = 1, 4
    model = Model(10, pp, qp)
    price = st.integers(9_000, 11_000).map(lambda k: Decimal(k).scaleb(-pp))
    qty = st.one_of(st.just(Decimal(0)), st.integers(1, 10**7).map(lambda k: Decimal(k).scaleb(-qp)))

    def levels(n, mid, below):
        out = []
        for _ in range(n):
            p = draw(price)
            if (p < mid) == below and p != mid:
                out.append((p, draw(qty)))
        return out

    mid = Decimal(10_000).scaleb(-pp)
    frames = []
    snap_b = [(p, q) for p, q in levels(30, mid, True) if q]
    snap_a = [(p, q) for p, q in levels(30, mid, False) if q]
    model.apply(snap_b, snap_a, snapshot=True)
    frames.append(frame_of("snapshot", snap_b, snap_a, model.checksum()))
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.integers(0, 11))
        b, a = levels(draw(st.integers(0, 4)), mid, True), levels(draw(st.integers(0, 4)), mid, False)
        if kind == 0:  # a wrong checksum (the model follows the venue's book anyway)
            model.apply(b, a)
            frames.append(frame_of("update", b, a, model.checksum() ^ 0x5A5A))
        elif kind == 1:  # a level with more decimals than the precision (Python keeps its token)
            odd = (draw(price) + Decimal("0.05"), Decimal("1.23456"))
            target = b if odd[0] < mid else a
            target.append(odd)
            model.apply(b, a)
            frames.append(frame_of("update", b, a, model.checksum()))
        elif kind == 2:
            frames.append(_mutate(random.Random(draw(st.integers(0, 2**32))),
                                  frame_of("update", b, a, model.checksum())))
        elif kind == 3:
            model.apply(b + snap_b, a + snap_a, snapshot=True)
            frames.append(frame_of("snapshot", [x for x in b + snap_b if x[1]], [x for x in a + snap_a if x[1]],
                                   model.checksum()))
        else:
            model.apply(b, a)
            frames.append(frame_of("update", b, a, model.checksum()))
    return frames


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=sessions())
def test_native_path_leaves_exactly_what_the_reference_leaves(frames):
    native, ref, _ = _pair()
    for i, frame in enumerate(frames):
        native.on_frame(0, frame, 1000 + i)
        ref.on_frame(0, frame, 1000 + i)
        assert _state(native) == _state(ref), frame


def _ladder_session(n_updates=30, seed=3, with_model=False):
    model = Model(10, 1, 4)
    rng = random.Random(seed)
    bids = [(Decimal(9990 - 5 * k).scaleb(-1), Decimal(rng.randint(1, 10**6)).scaleb(-4)) for k in range(12)]
    asks = [(Decimal(10010 + 5 * k).scaleb(-1), Decimal(rng.randint(1, 10**6)).scaleb(-4)) for k in range(12)]
    model.apply(bids, asks, snapshot=True)
    frames = [frame_of("snapshot", bids, asks, model.checksum())]
    for _ in range(n_updates):
        b = [(Decimal(rng.randint(9900, 9999)).scaleb(-1), Decimal(rng.choice([0, rng.randint(1, 10**6)])).scaleb(-4))
             for _ in range(rng.randint(0, 3))]
        a = [(Decimal(rng.randint(10001, 10100)).scaleb(-1), Decimal(rng.choice([0, rng.randint(1, 10**6)])).scaleb(-4))
             for _ in range(rng.randint(0, 3))]
        model.apply(b, a)
        frames.append(frame_of("update", b, a, model.checksum()))
    return (frames, model) if with_model else frames


def test_synced_updates_take_the_c_path_with_truncation(monkeypatch):
    native, ref, declined = _pair(monkeypatch)
    frames = _ladder_session()
    for frame in frames:
        native.on_frame(0, frame, 5)
        ref.on_frame(0, frame, 5)
        assert _state(native) == _state(ref)
    assert declined.count == 1  # only the snapshot
    m = native.markets["BTC-USD"]
    assert m.valid and m.messages == 31 and native.checksum_ok == 31 and native.checksum_failed == 0
    assert m.book.bid_levels == 10 and m.book.ask_levels == 10  # truncated to the subscribed depth


def test_a_mismatch_in_c_does_what_the_reference_does(monkeypatch):
    native, ref, declined = _pair(monkeypatch)
    frames = _ladder_session(3)
    bad = frame_of("update", [(Decimal("999.5"), Decimal("1"))], [], 12345)
    for frame in frames + [bad]:
        native.on_frame(0, frame, 5)
        ref.on_frame(0, frame, 5)
    assert declined.count == 1  # the mismatch was found in C
    assert _state(native) == _state(ref)
    m = native.markets["BTC-USD"]
    assert not m.valid and m.checksum_mismatches == 1 and native.checksum_failed == 1
    assert native._states["BTC-USD"].awaiting


def test_a_level_only_python_can_write_keeps_its_token_through_c_path_updates(monkeypatch):
    native, ref, declined = _pair(monkeypatch)
    frames, model = _ladder_session(2, with_model=True)
    # Two decimals at precision 1: Kraken's text of it is rounded, which only
    # the Decimal can say, so the reference keeps its token in the state.
    odd = [(Decimal("999.25"), Decimal("2"))]
    model.apply(odd, [])
    frames.append(frame_of("update", odd, [], model.checksum()))
    regular = [(Decimal("998.7"), Decimal("1.5"))]
    model.apply(regular, [])
    frames.append(frame_of("update", regular, [], model.checksum()))
    for frame in frames:
        native.on_frame(0, frame, 5)
        ref.on_frame(0, frame, 5)
        assert _state(native) == _state(ref)
    assert native._states["BTC-USD"].bid_tokens == {999.25: "9992" + "20000"}
    assert declined.count == 2  # the snapshot and the odd update; the next one read the token in C
    assert native.checksum_ok == 5 and native.markets["BTC-USD"].valid
    # A C-path update at that price replaces its text: the token goes, as in the reference.
    model.apply([(Decimal("999.25"), Decimal("0"))], [])
    frame = frame_of("update", [(Decimal("999.25"), Decimal("0"))], [], model.checksum())
    native.on_frame(0, frame, 5)
    ref.on_frame(0, frame, 5)
    assert _state(native) == _state(ref) and declined.count == 2
    assert native._states["BTC-USD"].bid_tokens == {} and native.checksum_ok == 6


PLACES = ("price_places", "qty_places", "v1_price_places", "v1_qty_places")


def test_state_precisions_are_none_or_non_negative_ints():
    state = KrakenBookState(10)
    assert all(getattr(state, name) is None for name in PLACES) and state.awaiting
    # Each property has its own field: distinct values come back where they were set.
    for value, name in enumerate(PLACES, start=1):
        setattr(state, name, value)
    assert [getattr(state, name) for name in PLACES] == [1, 2, 3, 4]
    assert state.text_places == (1, 2)
    for name in PLACES:
        setattr(state, name, 5000)
        assert getattr(state, name) == 1000  # beyond any exact double's places: clamped
        for bad in (-1, 2.0, "2", True):
            with pytest.raises(ValueError, match="precision must be a non-negative int or None"):
                setattr(state, name, bad)
        assert getattr(state, name) == 1000  # a rejected value changes nothing
        setattr(state, name, None)
        assert getattr(state, name) is None
    assert state.text_places is None


# -- v1: the same C path for the recording's protocol ------------------------------------------


def _v1_pair(monkeypatch=None, depth=10):
    declined = _Declined(monkeypatch) if monkeypatch is not None else None
    out = []
    for _ in range(2):
        markets = [Market("kraken", s, depth=5) for s in ("BTC-USD", "ETH-USD")]
        h = KrakenHandler(markets, "ws://127.0.0.1:9/", depth=depth, protocol="v1")
        h.on_connected(0)
        h.take_actions()
        out.append(h)
    if monkeypatch is not None:
        monkeypatch.undo()
    native, ref = out
    ref.on_frame = lambda conn_id, data, recv_ms: KrakenHandler.on_frame(ref, conn_id, data, recv_ms)
    return native, ref, declined


class TextModel:
    """Kraken's v1 book as the strings it sent, truncated to depth; checksum over those strings."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[Decimal, tuple[str, str]] = {}
        self.asks: dict[Decimal, tuple[str, str]] = {}

    def apply(self, bids, asks, snapshot=False):
        if snapshot:
            self.bids.clear()
            self.asks.clear()
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = (p, q)
        for side, best_first in ((self.bids, True), (self.asks, False)):
            for p in sorted(side, reverse=best_first)[self.depth:]:
                del side[p]

    def checksum(self) -> int:
        return kraken_checksum([self.asks[p] for p in sorted(self.asks)],
                               [self.bids[p] for p in sorted(self.bids, reverse=True)])


def v1_frame(pair, bids, asks, checksum, *, snapshot=False, split=False, ts="1618678145.920470"):
    def lv(levels, key):
        return [[p, q, ts] + (["r"] if i % 3 == 2 else []) for i, (p, q) in enumerate(levels)]
    if snapshot:
        return json.dumps([7, {"as": lv(asks, "a"), "bs": lv(bids, "b")}, "book-10", pair]).encode()
    parts = [{"a": lv(asks, "a")}, {"b": lv(bids, "b")}] if split else [{"a": lv(asks, "a"), "b": lv(bids, "b")}]
    parts[-1]["c"] = str(checksum)
    return json.dumps([7, *parts, "book-10", pair]).encode()


@st.composite
def v1_sessions(draw):
    model = TextModel(10)
    price = st.integers(9_000, 11_000)
    rng = random.Random(draw(st.integers(0, 2**32)))

    def text(k, places):
        return format(Decimal(k).scaleb(-places), "f")

    def levels(n, below, places=(1, 4)):
        out = []
        for _ in range(n):
            k = draw(price)
            if (k < 10_000) == below and k != 10_000:
                q = rng.choice([0, rng.randint(1, 10**7)])
                out.append((text(k, places[0]), text(q, places[1])))
        return out

    frames = []
    snap_b, snap_a = [x for x in levels(30, True) if Decimal(x[1])], [x for x in levels(30, False) if Decimal(x[1])]
    model.apply(snap_b, snap_a, snapshot=True)
    frames.append(v1_frame("XBT/USD", snap_b, snap_a, 0, snapshot=True))
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.integers(0, 9))
        b, a = levels(draw(st.integers(0, 4)), True), levels(draw(st.integers(0, 4)), False)
        if kind == 0:
            model.apply(b, a)
            frames.append(v1_frame("XBT/USD", b, a, model.checksum() ^ 0x77, split=rng.random() < 0.5))
        elif kind == 1:  # strings with other decimals than the snapshot's: their text is the checksum's
            b = b + [(text(draw(price) - 1000, 2), "1.5")]
            model.apply(b, a)
            frames.append(v1_frame("XBT/USD", b, a, model.checksum()))
        elif kind == 2:
            frames.append(_mutate(rng, v1_frame("XBT/USD", b, a, model.checksum())))
        else:
            model.apply(b, a)
            frames.append(v1_frame("XBT/USD", b, a, model.checksum(), split=rng.random() < 0.3,
                                   ts=rng.choice(["1618678146", "5", "1618678147.1", "99999999999.5",
                                                  f"{rng.randint(10**9, 2 * 10**9)}.{rng.randint(0, 999999):06d}",
                                                  f"{rng.randint(10**9, 2 * 10**9)}.{rng.randint(0, 99):02d}"])))
    return frames


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=v1_sessions())
def test_v1_native_path_leaves_exactly_what_the_reference_leaves(frames):
    native, ref, _ = _v1_pair()
    for i, frame in enumerate(frames):
        native.on_frame(0, frame, 1000 + i)
        ref.on_frame(0, frame, 1000 + i)
        assert _state(native) == _state(ref), frame


def test_v1_updates_take_the_c_path_and_learn_places_from_the_snapshot(monkeypatch):
    native, ref, declined = _v1_pair(monkeypatch)
    model = TextModel(10)
    bids = [(f"{999 - k}.0", "1.2500") for k in range(12)]
    asks = [(f"{1001 + k}.0", "0.5000") for k in range(12)]
    model.apply(bids, asks, snapshot=True)
    frames = [v1_frame("XBT/USD", bids, asks, 0, snapshot=True)]
    for k, (b, a) in enumerate([([("999.5", "2.0000")], []), ([], [("1000.5", "0.0100")]),
                                ([("999.5", "0.0000")], [("1003.0", "0.0000")])]):
        model.apply(b, a)
        frames.append(v1_frame("XBT/USD", b, a, model.checksum(), split=k == 1))
    for frame in frames:
        native.on_frame(0, frame, 5)
        ref.on_frame(0, frame, 5)
        assert _state(native) == _state(ref)
    state = native._states["BTC-USD"]
    assert (state.v1_price_places, state.v1_qty_places) == (1, 4) and state.text_places == (1, 4)
    assert state.bid_tokens == {} and state.ask_tokens == {}
    assert declined.count == 1 and native.checksum_ok == 3 and native.markets["BTC-USD"].valid
    assert native.markets["BTC-USD"].last_event_ms == 1618678145920


def test_v1_real_recording_native_equals_reference(monkeypatch):
    from tests.feeds.coinbase_kraken_frames import read_records, recv_frames
    from tests.realdata import realdata_path

    records = read_records(realdata_path("KRAKEN.jsonl.zst"))
    frames = recv_frames(records, "KRAKEN.ws.50")  # the book connection (48: trades, 49: ticker)
    pairs = sorted({json.loads(d)[-1] for d, _ in frames if d.startswith(b"[") and b'"book-' in d})
    from sentrycoin.feeds.kraken import from_venue_symbol

    declined = _Declined(monkeypatch)
    handlers = []
    for _ in range(2):
        markets = [Market("kraken", from_venue_symbol(p)) for p in pairs]
        h = KrakenHandler(markets, "wss://ws.kraken.com", depth=1000)
        h.on_connected(0)
        h.take_actions()
        handlers.append(h)
    monkeypatch.undo()
    native, ref = handlers
    ref.on_frame = lambda conn_id, data, recv_ms: KrakenHandler.on_frame(ref, conn_id, data, recv_ms)
    for data, recv_ms in frames:
        native.on_frame(0, data, recv_ms)
        ref.on_frame(0, data, recv_ms)
    assert _state(native) == _state(ref)
    assert native.checksum_ok == 4269 and native.checksum_failed == 0
    updates = sum(1 for d, _ in frames if d.startswith(b"[") and b'"book-' in d and b'"c":' in d)
    assert updates == 4269
    assert declined.count == len(frames) - updates  # every real update took the C path
