"""OKX's C path (sentrycore.okx) against its Python reference path.

* the C CRC32 (sentrycore/crc32.pxd) equals zlib's;
* LevelTexts (the per-level text store both paths share) behaves as a dict;
* the C checksum over the book and its stored texts equals the reference
  `okx_checksum` on real-form texts (trailing zeros, integers, 8+ decimals);
* on every frame the C path takes, the book, the texts, the chain and every
  counter end exactly as OkxSpotHandler._decode_frame leaves them, checksum
  verdicts included; everything else goes to that path untouched.
"""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentrycoin.feeds.okx import OkxSpotHandler, OkxSwapHandler, okx_checksum
from sentrycore.leveltext import LevelTexts
from sentrycore.okx import OkxBookState, crc32
from tests.feeds._native import (
    ASK_LEVELS,
    BID_LEVELS,
    MUTATIONS,
    REAL_TEXT,
    market_state,
    mutate,
    plain_level,
    reference_only,
    render,
    seeded,
)
from tests.feeds.binance_bybit_okx_frames import make_markets, okx_book

WS = "ws://127.0.0.1:9/ws/v5/public"
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SNAP_BIDS = [("100", "1"), ("99.50", "2.000"), ("99", "0.00000001")]
SNAP_ASKS = [("101", "1"), ("101.5", "3"), ("102.25000000", "12345678.12345678")]


# -- CRC32 and the text store ------------------------------------------------------------------

@PROPS
@given(data=st.binary(max_size=2100), value=st.integers(0, 2**32 - 1))
def test_crc32_equals_zlib(data, value):
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data, value) == zlib.crc32(data, value)


def test_crc32_chains_like_zlib():
    text = b"3366.1:7:3366.8:9:3366:6:3368:8"
    assert crc32(text[10:], crc32(text[:10])) == zlib.crc32(text)


OPS = st.lists(st.tuples(
    st.sampled_from(["set", "set", "set", "pop", "del", "load", "clear"]),
    st.integers(0, 40).map(lambda i: 100.0 + i * 0.25),     # few prices: long probe runs, reuse
    st.text(min_size=1, max_size=50),                         # long ones live on the heap
    st.text(min_size=1, max_size=30),
), max_size=120)


@PROPS
@given(ops=OPS)
def test_level_texts_behave_as_a_dict(ops):
    texts, model = LevelTexts(), {}
    for op, price, px, sz in ops:
        if op == "set":
            texts[price] = (px, sz)
            model[price] = (px, sz)
        elif op == "pop":
            assert texts.pop(price) == model.pop(price, None)
        elif op == "del":
            if price in model:
                del texts[price]
                del model[price]
            else:
                with pytest.raises(KeyError):
                    del texts[price]
        elif op == "load":
            levels = [(price + i, px, sz) for i in range(3)]
            texts.load(levels)
            model = {p: (a, b) for p, a, b in levels}
        else:
            texts.clear()
            model.clear()
        assert len(texts) == len(model) == texts.count
        assert dict(texts.items()) == model and sorted(texts) == sorted(model)
        assert all(p in texts and texts[p] == v for p, v in model.items())


def test_level_texts_grow_and_shrink_through_thousands_of_levels():
    texts, model = LevelTexts(), {}
    rnd = random.Random(5)
    for _ in range(20000):
        price = round(60000 + rnd.randrange(4000) * 0.01, 2)
        if rnd.random() < 0.4:
            assert texts.pop(price) == model.pop(price, None)
        else:
            pair = (f"{price:.2f}", f"{rnd.random():.{rnd.randrange(1, 12)}f}")
            texts[price] = model[price] = pair
    assert dict(texts.items()) == model
    with pytest.raises(KeyError):
        texts[1.0]


# -- the C checksum against the reference okx_checksum ----------------------------------------

def synced(cls=OkxSpotHandler, reference: bool = False, bids=SNAP_BIDS, asks=SNAP_ASKS, checksum: int = 0):
    markets = make_markets(cls.venue, ["BTC-USDT", "ETH-USDT"])
    h = seeded(cls(markets, WS))
    if reference:
        reference_only(h)
    h.on_connected(0)
    h.take_actions()
    for st_ in h._states.values():
        h.on_frame(0, okx_book(st_.inst_id, "snapshot", 1000, -1, bids, asks, checksum=checksum), 1)
    return h, {m.symbol: m for m in markets}


def reference_checksum(st_: OkxBookState) -> int | None:
    book = st_.market.book
    try:
        bids = [st_.bid_text[p] for p in book.bids(25)[:, 0].tolist()]
        asks = [st_.ask_text[p] for p in book.asks(25)[:, 0].tolist()]
    except KeyError:
        return None
    return okx_checksum(bids, asks)


def _side(lo: int, hi: int, n: int) -> st.SearchStrategy:
    price = st.tuples(st.integers(lo * 10**4, hi * 10**4), st.integers(0, 10), st.integers(0, 4)).map(
        lambda t: (str(t[0] // 10**4) if t[1] == 0 else f"{t[0] / 10**4:.{t[1]}f}" + "0" * t[2]))
    return st.lists(st.tuples(price, REAL_TEXT.filter(lambda s: float(s) > 0)), max_size=n,
                    unique_by=lambda lv: float(lv[0]))


@PROPS
@given(bids=_side(1, 100, 40), asks=_side(101, 200, 40))
def test_c_checksum_equals_reference_on_real_form_texts(bids, asks):
    h, m = synced(bids=bids, asks=asks)
    st_ = h._states["BTC-USDT"]
    expected = okx_checksum(sorted(bids, key=lambda lv: -float(lv[0]))[:25],
                            sorted(asks, key=lambda lv: float(lv[0]))[:25])
    assert st_.checksum() == reference_checksum(st_) == expected


def test_c_checksum_keeps_the_text_exactly():
    bids = [("100.10", "1.000"), ("100.1", "2")]  # one price, two texts: the later is kept
    h, m = synced(bids=[("100", "1")], asks=[("101", "1")])
    st_ = h._states["BTC-USDT"]
    h.on_frame(0, okx_book("BTC-USDT", "update", 1001, 1000, bids, [("101.00000000", "0.00000001")]), 2)
    assert h._frame_path.taken == 1
    assert st_.bid_text[100.1] == ("100.1", "2") and st_.ask_text[101.0] == ("101.00000000", "0.00000001")
    assert st_.checksum() == okx_checksum([("100.1", "2"), ("100", "1")], [("101.00000000", "0.00000001")])


def test_checksum_of_a_level_without_text_is_none():
    h, m = synced()
    st_ = h._states["BTC-USDT"]
    st_.bid_text.pop(100.0)
    assert st_.checksum() is None and reference_checksum(st_) is None


# -- the C path in the handler -------------------------------------------------------------------

def _next(h, symbol="BTC-USDT", bids=(), asks=(), checksum=0, seq_step=3, prev=None):
    st_ = h._states[symbol]
    last = st_.last_seq
    return okx_book(st_.inst_id, "update", last + seq_step, last if prev is None else prev, bids, asks,
                    checksum=checksum)


def test_updates_with_real_and_zero_checksums_are_taken_in_c():
    h, m = synced()
    st_ = h._states["BTC-USDT"]
    btc = m["BTC-USDT"]
    h.on_frame(0, _next(h, bids=[("99.5", "0")], asks=[("100.9", "4.10")]), 2)  # checksum 0: skipped
    assert h.counters.checksum_skipped == 3  # two snapshots, this update
    bids = [("100", "1"), ("99", "0.00000001")]
    asks = [("100.9", "4.10"), ("101", "1"), ("101.5", "3"), ("102.25000000", "12345678.12345678")]
    h.on_frame(0, _next(h, bids=[("100", "1")], checksum=okx_checksum(bids, asks)), 3)
    assert h._frame_path.taken == 2 and btc.valid and btc.messages == 3 and btc.checksum_mismatches == 0
    assert st_.last_seq == 1006 and h.counters.checksum_skipped == 3
    assert 99.5 not in st_.bid_text and st_.ask_text[100.9] == ("100.9", "4.10")


def _c_update(h, bids=(), asks=(), prev=None) -> None:
    """One C-path update carrying the true checksum of the book it leaves (texts as given)."""
    st_ = h._states["BTC-USDT"]
    texts_b = {p: st_.bid_text[p] for p in st_.bid_text}
    texts_a = {p: st_.ask_text[p] for p in st_.ask_text}
    for texts, levels in ((texts_b, bids), (texts_a, asks)):
        for px, sz in levels:
            if float(sz) == 0.0:
                texts.pop(float(px), None)
            else:
                texts[float(px)] = (px, sz)
    checksum = okx_checksum([texts_b[p] for p in sorted(texts_b, reverse=True)[:25]],
                            [texts_a[p] for p in sorted(texts_a)[:25]])
    taken = h._frame_path.taken
    h.on_frame(0, _next(h, bids=bids, asks=asks, checksum=checksum or 1, prev=prev), 2)
    assert h._frame_path.taken == taken + 1


def test_kept_checksum_text_follows_the_chain_and_is_dropped_when_python_sets_the_seq():
    """The C path reuses the top-25 text of the last verified checksum (state._top) for the
    levels a message did not touch.  Reuse must end whenever the reference path (or anyone)
    sets `last_seq`: the texts may have changed behind the C path's back even when the
    seqId is the same number again."""
    h, m = synced(bids=[("100", "1"), ("99", "2"), ("98", "3")], asks=[("101", "1"), ("102", "2")])
    st_ = h._states["BTC-USDT"]
    btc = m["BTC-USDT"]
    _c_update(h, asks=[("103", "4")])              # first verified checksum: the kept text is filled
    _c_update(h, bids=[("97", "5")])               # 100, 99, 98 and the asks come from the kept text
    _c_update(h, bids=[("99", "2.0")])             # a touched level's new text replaces the kept one
    assert btc.checksum_mismatches == 0 and btc.valid and st_.bid_text[99.0] == ("99", "2.0")
    # Behind the C path: the best bid's text changes (same price and size, as a
    # reference-path snapshot may write it) and the same seqId is set again.
    seq = st_.last_seq
    st_.bid_text[100.0] = ("100.000", "1")
    st_.last_seq = seq
    _c_update(h, asks=[("104", "1")])              # must hash "100.000", not the kept "100"
    assert btc.checksum_mismatches == 0 and btc.valid and btc.resyncs == 0
    # A checksum 0 message moves the chain on without verifying: nothing kept may be reused after it.
    h.on_frame(0, _next(h, bids=[("96", "1")]), 3)
    st_.bid_text[98.0] = ("98.0", "3")             # seen by the next checksum only if read afresh
    seq = st_.last_seq
    _c_update(h, asks=[("105", "1")])
    assert btc.checksum_mismatches == 0 and btc.valid and st_.last_seq == seq + 3
    # Nor after one whose seqId repeats prevSeqId: the chain's number stays, the book changes.
    taken = h._frame_path.taken
    h.on_frame(0, _next(h, asks=[("101", "0.5")], seq_step=0), 4)
    assert h._frame_path.taken == taken + 1 and st_.ask_text[101.0] == ("101", "0.5")
    _c_update(h, bids=[("95", "1")])               # must hash "101:0.5", not the kept "101:1"
    assert btc.checksum_mismatches == 0 and btc.valid and btc.resyncs == 0


def test_kept_checksum_text_with_long_texts_and_many_touched_levels():
    """The kept text's other branches: level texts longer than an entry holds
    (looked up every time), texts between 32 and 48 bytes (the wider copy), and
    a message touching more kept-range prices than are compared one by one
    (nothing reused that time)."""
    long_px, long_sz = "100." + "0" * 24, "1." + "0" * 24 + "1"   # "px:sz" 54 bytes: not kept in an entry
    mid_px, mid_sz = "99.5000000000000000", "2.00000000000000001"  # 39 bytes: the 48-byte copy
    bids = [(long_px, long_sz), (mid_px, mid_sz)] + [(str(90 - i), "1") for i in range(30)]
    h, m = synced(bids=bids, asks=[("101", "1"), ("102", "2")])
    st_ = h._states["BTC-USDT"]
    btc = m["BTC-USDT"]
    _c_update(h, asks=[("103", "4")])
    _c_update(h, asks=[("104", "1")])              # reuses the kept entries, looks the long one up
    _c_update(h, bids=[(long_px, "3.5")])          # the long level itself changes
    many = [(f"{80 + i / 4:.2f}", "0.5") for i in range(40)]  # 40 prices among the kept levels' range
    _c_update(h, bids=many)
    _c_update(h, bids=[("85", "0")])               # and the kept text after that round is right again
    assert btc.checksum_mismatches == 0 and btc.valid and btc.resyncs == 0
    assert st_.bid_text[100.0] == (long_px, "3.5") and st_.bid_text[99.5] == (mid_px, mid_sz)
    assert st_.checksum() == reference_checksum(st_)


@pytest.mark.parametrize("wrong", ["value", "missing-text"])
def test_checksum_mismatch_in_c_does_what_the_reference_does(wrong):
    fast, mf = synced()
    ref, mr = synced(reference=True)
    for h in (fast, ref):
        if wrong == "missing-text":
            h._states["BTC-USDT"].bid_text.pop(99.0)
        h.on_frame(0, _next(h, asks=[("101", "2")], checksum=12345), 2)
    assert fast._frame_path.taken == 1
    assert market_state(mf["BTC-USDT"]) == market_state(mr["BTC-USDT"])
    btc = mf["BTC-USDT"]
    assert not btc.valid and btc.checksum_mismatches == 1 and btc.resyncs == 1 and btc.messages == 1
    reason = "got None" if wrong == "missing-text" else f"got {reference_checksum(ref._states['BTC-USDT'])}"
    assert reason in btc.invalid_reason and "OKX says 12345" in btc.invalid_reason
    assert fast.take_actions() == ref.take_actions() != []
    assert fast.counters.astuple() == ref.counters.astuple()


@pytest.mark.parametrize("frame_of", [
    lambda h: _next(h, prev=999),                                              # broken chain
    lambda h: okx_book("BTC-USDT", "snapshot", 2000, -1, [("90", "1")], [("91", "1")]),
    lambda h: _next(h, bids=[("100", "-1")]),                                  # bad value
    lambda h: _next(h, symbol="ETH-USDT").replace(b"books", b"books5"),        # another channel
    lambda h: _next(h).replace(b'"0","1"]', b'"0"]'),                           # 3-element levels
    lambda h: _next(h, bids=[("100", "2")]).replace(b'"ts":"', b'"ts":"0'),    # ts "0170...": msgspec refuses
    lambda h: _next(h, bids=[("100", "2")]).replace(b'"checksum":0', b'"checksum":"0"'),
    lambda h: _next(h, bids=[("100", "2")]).replace(b'"checksum":0,', b""),   # default 0: taken
    lambda h: _next(h, bids=[("100", "2")]).replace(b'[{"asks"', b'[{"asks":[],"bids":[],"ts":"1","seqId":1,'
                                                      b'"prevSeqId":1},{"asks"'),  # two entries
    lambda h: b"pong",
    # Shapes the compact level reader declines and the general one reads (same result either way):
    lambda h: _next(h, bids=[("100", "2")]).replace(b'"0","1"]', b'"0","x1"]'),   # a non-digit count
    lambda h: _next(h, bids=[("100.123456789", "2"), ("12345678", "0.5")]),       # 9 decimals, 8 integer digits
    lambda h: _next(h, asks=[("101", "2")]).replace(b'[["101","2"', b'[ ["101", "2"'),  # whitespace
])
def test_other_frames_match_the_reference_path(frame_of):
    fast, mf = synced()
    ref, mr = synced(reference=True)
    frame = frame_of(fast)
    assert frame == frame_of(ref)
    fast.on_frame(0, frame, 5)
    ref.on_frame(0, frame, 5)
    for symbol in mf:
        assert market_state(mf[symbol]) == market_state(mr[symbol])
        a, b = fast._states[symbol], ref._states[symbol]
        assert (a.synced, a.last_seq, a.bid_text.items(), a.ask_text.items()) == \
               (b.synced, b.last_seq, b.bid_text.items(), b.ask_text.items())
    assert fast.counters.astuple() == ref.counters.astuple()
    assert fast.take_actions() == ref.take_actions()


# -- the oracle: random, mutated and hostile frames through both paths --------------------------

STEP = st.tuples(
    st.sampled_from(["next", "next", "next", "next", "next", "next", "same-seq", "gap", "snapshot",
                     "other-inst"]),
    BID_LEVELS, ASK_LEVELS,
    st.sampled_from(["real", "real", "zero", "wrong"]),
    st.sampled_from(MUTATIONS), st.integers(0, 2**32))


def _model_apply(model: dict, levels) -> None:
    for px, sz in levels:
        try:
            price, qty = float(px), float(sz)
        except ValueError:
            return
        if qty == 0.0:
            model.pop(price, None)
        else:
            model[price] = (px, sz)


def _message(h, kind: str, bids, asks, checksum: int) -> dict:
    state = h._states["ETH-USDT" if kind == "other-inst" else "BTC-USDT"]
    inst = state.inst_id  # "BTC-USDT-SWAP" on the swap handler
    last = state.last_seq
    seq, prev = {"same-seq": (last, last), "gap": (last + 5, last + 1), "snapshot": (last + 2, -1)}.get(
        kind, (last + 2, last))
    return {"arg": {"channel": "books", "instId": inst}, "action": "snapshot" if kind == "snapshot" else "update",
            "data": [{"asks": [[p, q, "0", "2"] for p, q in asks], "bids": [[p, q, "0", "1"] for p, q in bids],
                      "ts": str(1_700_000_000_000 + seq), "checksum": checksum, "prevSeqId": prev, "seqId": seq}]}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cls=st.sampled_from([OkxSpotHandler, OkxSwapHandler]), steps=st.lists(STEP, min_size=3, max_size=15))
def test_c_path_matches_reference_path(cls, steps):
    fast, mf = synced(cls)
    ref, mr = synced(cls, reference=True)
    model_b, model_a = dict(), dict()
    _model_apply(model_b, SNAP_BIDS)
    _model_apply(model_a, SNAP_ASKS)
    for kind, bids, asks, mode, how, seed in steps:
        rnd = random.Random(seed)
        if kind == "snapshot":
            model_b, model_a = {}, {}
        _model_apply(model_b, bids)
        _model_apply(model_a, asks)
        if mode == "real":
            checksum = okx_checksum([model_b[p] for p in sorted(model_b, reverse=True)[:25]],
                                    [model_a[p] for p in sorted(model_a)[:25]]) or 1
        else:
            checksum = 0 if mode == "zero" else rnd.randrange(-2**31, 2**31)
        frame = mutate(render(_message(fast, kind, bids, asks, checksum), rnd), how, rnd)
        taken = fast._frame_path.taken
        st_ = fast._states["BTC-USDT"]
        # A chained update of plain decimals on a synced, valid book is the C path's own case.
        must_take = (kind == "next" and how == "none" and st_.synced and mf["BTC-USDT"].valid
                     and all(plain_level(px, sz) for px, sz in (*bids, *asks)))
        fast.on_frame(0, frame, 7)
        ref.on_frame(0, frame, 7)
        for symbol in ("BTC-USDT", "ETH-USDT"):
            assert market_state(mf[symbol]) == market_state(mr[symbol]), (symbol, frame)
            a, b = fast._states[symbol], ref._states[symbol]
            assert (a.synced, a.last_seq) == (b.synced, b.last_seq), frame
            assert sorted(a.bid_text.items()) == sorted(b.bid_text.items()), frame
            assert sorted(a.ask_text.items()) == sorted(b.ask_text.items()), frame
        assert fast.counters.astuple() == ref.counters.astuple(), frame
        assert fast.take_actions() == ref.take_actions(), frame
        if must_take:
            assert fast._frame_path.taken == taken + 1, frame
            TAKEN.append(1)
        if fast._frame_path.taken > taken and mode == "real" and mf["BTC-USDT"].valid:
            VERIFIED.append(checksum)
        if not mf["BTC-USDT"].valid or not st_.synced:  # resubscribed: OKX's next snapshot
            snap = render(_message(fast, "snapshot", SNAP_BIDS, SNAP_ASKS, 0), rnd)
            fast.on_frame(0, snap, 8)
            ref.on_frame(0, snap, 8)
            model_b, model_a = {}, {}
            _model_apply(model_b, SNAP_BIDS)
            _model_apply(model_a, SNAP_ASKS)
        else:
            model_b = {p: v for p, v in model_b.items() if p in st_.bid_text}
            model_a = {p: v for p, v in model_a.items() if p in st_.ask_text}


TAKEN: list[int] = []      # frames of the C path's own case, each checked to have been taken in C
VERIFIED: list[int] = []   # real checksums the C path verified (and found right)


def test_oracle_runs_took_frames_in_c():
    # Runs after the property in this module: it offered the C path its own case
    # many times (each was asserted taken) and verified real checksums in C.
    if not VERIFIED and not TAKEN:
        pytest.skip("the oracle property did not run")
    assert len(TAKEN) >= 20
    assert len(VERIFIED) >= 10


@pytest.mark.parametrize("real_checksum", [False, True], ids=["checksum-0", "real-crc32"])
def test_real_binance_levels_as_okx_frames_take_the_c_path_and_match(real_checksum):
    """The real BTCUSDT recording's 3,450 messages written as OKX frames (benches/venue_cases/okx.py;
    generated frames of the same sizes when ../shared/realdata is absent): every update is taken
    in C, every real checksum matches, and both paths end with the same book and texts."""
    from benches.venue_cases import okx as okx_case

    updates, snapshot = okx_case.frames(real_checksum)
    handlers = []
    for reference in (False, True):
        (m,) = make_markets("okx", ["BTC-USDT"])
        h = OkxSpotHandler([m], WS)
        if reference:
            reference_only(h)
        h.on_connected(0)
        h.take_actions()
        h.on_frame(0, snapshot, 0)
        handlers.append((h, m))
    for i, frame in enumerate(updates):
        for h, _ in handlers:
            h.on_frame(0, frame, 0)
        if i % 500 == 0 or i == len(updates) - 1:
            (fast, mf), (ref, mr) = handlers
            assert market_state(mf) == market_state(mr)
            a, b = fast._states["BTC-USDT"], ref._states["BTC-USDT"]
            assert sorted(a.bid_text.items()) == sorted(b.bid_text.items())
            assert sorted(a.ask_text.items()) == sorted(b.ask_text.items())
    (fast, mf), (ref, _) = handlers
    assert fast._frame_path.taken == len(updates)
    assert mf.valid and mf.checksum_mismatches == 0 and mf.resyncs == 0
    assert fast.counters.astuple() == ref.counters.astuple()
    assert fast.counters.checksum_skipped == (1 + len(updates) if not real_checksum else 0)
