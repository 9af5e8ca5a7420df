"""The Coinbase native path (sentrycore.coinbase) against the handler's msgspec path.

The reference is `CoinbaseHandler.on_frame` as a class attribute (msgspec,
then the sync rules): on every frame the C path takes it must leave books,
sequence followers, product sync flags and counters exactly as the
reference does, and everything it declines must reach the reference with
nothing touched.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentrycoin.feeds.coinbase import _ENVELOPE, _L2_EVENTS, CoinbaseHandler, _event_ms
from sentrycoin.market import Market
from sentrycore.coinbase import CoinbaseParser, ProductState, SequenceState
from tests.core.test_parse import _mutate, bare_number, decimal_text
from tests.feeds.coinbase_kraken_frames import cb_l2, cb_snapshot_levels, read_records, recv_frames
from tests.realdata import realdata_path

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COMMON_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,12})?(Z|[+-]\d\d:\d\d)?$")
NO_TIME = -7_777_777_777_777_777  # recv_ms handed to _event_ms: what it returns for an unusable timestamp


# -- generated frames -------------------------------------------------------------------

ws = st.text(alphabet=" \t\r\n", max_size=2)


@st.composite
def level_value(draw):
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(bare_number)
    if kind == 1:
        return draw(st.sampled_from(['"NaN"', '"-1"', '"1e400"', "null", "true", '"inf"', "-2.5", '"0x10"', '""']))
    return '"' + draw(decimal_text) + '"'


@st.composite
def timestamps(draw):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(["", "yesterday", "2026-08-09", "2026-02-29T00:00:00Z", "2024-02-29T23:59:59Z",
                                     "2026-08-09T24:00:00Z", "2026-08-09T21:05:60Z", "2026-08-09 21:05:48Z",
                                     "2026-08-09T21:05:48,5Z", "2026-08-09T21:05:48.Z", "2026-08-09T21:05:48z",
                                     "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999+00:00",
                                     "1969-12-31T23:59:59.9995Z", "2026-08-09T21:05:48.5-23:59",
                                     "2026-08-09T21:05:48+24:00", "2026-13-01T00:00:00Z"]))
    y = draw(st.integers(1, 9999))
    mo = draw(st.integers(1, 12))
    d = draw(st.integers(1, 31))
    h, mi, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
    if draw(st.booleans()):
        text += "." + draw(st.text("0123456789", min_size=1, max_size=14))
    zone = draw(st.integers(0, 3))
    if zone == 1:
        text += "Z"
    elif zone == 2:
        text += f"{draw(st.sampled_from('+-'))}{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}"
    return text


@st.composite
def level_object(draw):
    fields = {
        "side": draw(st.sampled_from(['"bid"', '"offer"', '"bid"', '"offer"', '"ask"', '"BID"', "1"])),
        "event_time": '"2026-08-09T21:05:48.170326Z"',
        "price_level": draw(level_value()),
        "new_quantity": draw(level_value()),
    }
    if draw(st.integers(0, 9)) == 0:
        del fields[draw(st.sampled_from(list(fields)))]
    if draw(st.integers(0, 9)) == 0:
        fields["extra"] = draw(st.sampled_from(["null", '{"a":1}', "[1]", '"x"', "7"]))
    keys = draw(st.permutations(list(fields)))
    w = draw(ws)
    return "{" + ",".join(f'{w}"{k}"{w}:{w}{fields[k]}' for k in keys) + "}"


@st.composite
def l2_frames(draw, seq: int | None = None, product: str | None = None):
    levels = draw(st.lists(level_object(), max_size=12))
    event = {
        "type": draw(st.sampled_from(['"update"'] * 6 + ['"snapshot"', '"other"'])),
        "product_id": json.dumps(product or draw(st.sampled_from(["BTC-USD", "ETH-USD", "BTC-USDC", "XRP-USD"]))),
        "updates": "[" + ",".join(levels) + "]",
    }
    ekeys = draw(st.permutations(list(event)))
    event_text = "{" + ",".join(f'"{k}":{event[k]}' for k in ekeys) + "}"
    n_events = draw(st.sampled_from([1, 1, 1, 1, 0, 2]))
    fields = {
        "channel": draw(st.sampled_from(['"l2_data"'] * 8 + ['"heartbeats"', '"ticker"'])),
        "timestamp": json.dumps(draw(timestamps()) if draw(st.integers(0, 3)) == 0 else "2026-08-09T21:05:48.505350477Z"),
        "sequence_num": str(seq if seq is not None else draw(st.integers(0, 10**6))),
        "events": "[" + ",".join([event_text] * n_events) + "]",
    }
    if draw(st.integers(0, 9)) == 0:
        fields[draw(st.sampled_from(["type", "message", "note", "client_id"]))] = draw(
            st.sampled_from(['"error"', '"x"', "3", "null", '{"a":[]}']))
    keys = draw(st.permutations(list(fields)))
    w = draw(ws)
    return ("{" + w + ",".join(f'"{k}"{w}:{w}{fields[k]}' for k in keys) + w + "}").encode()


def reference(frame: bytes):
    """msgspec's reading of a hot frame: (seq, event_ms, product, bids, asks), or None."""
    try:
        env = _ENVELOPE.decode(frame)
        events = _L2_EVENTS.decode(env.events)
    except ValueError:
        return None
    if env.channel != "l2_data" or env.sequence_num is None or len(events) != 1 or events[0].type != "update":
        return None
    ev = events[0]
    bids = [(u.price_level, u.new_quantity) for u in ev.updates if u.side == "bid"]
    asks = [(u.price_level, u.new_quantity) for u in ev.updates if u.side == "offer"]
    if len(bids) + len(asks) != len(ev.updates):
        return None
    return env.sequence_num, _event_ms(env.timestamp, NO_TIME), ev.product_id, bids, asks


@FAST
@given(frame=l2_frames(), seed=st.integers(0, 2**32), mutate=st.booleans())
def test_parser_reads_frames_exactly_like_msgspec(frame, seed, mutate):
    if mutate:
        frame = _mutate(random.Random(seed), frame)
    p = CoinbaseParser()
    ref = reference(frame)
    if p.parse(frame):
        assert ref is not None, frame  # never accept what the reference refuses
        assert (p.sequence_num, p.event_ms, p.product_id, p.bids, p.asks) == ref, frame
        assert p.event_ms != NO_TIME


@st.composite
def compact_frames(draw):
    """Frames in the exact member order and compact form Coinbase sends (the layout
    the parser matches with memcmp before its general reader), values mostly valid."""
    levels = []
    for _ in range(draw(st.integers(0, 10))):
        side = draw(st.sampled_from(["bid", "offer", "bid", "offer", "ask"]))
        price, qty = draw(level_value()), draw(level_value())
        levels.append(f'{{"side":"{side}","event_time":"2026-08-09T21:05:48.170326Z",'
                      f'"price_level":{price},"new_quantity":{qty}}}')
    stamp = draw(timestamps()) if draw(st.integers(0, 4)) == 0 else "2026-08-09T21:05:48.505350477Z"
    product = draw(st.sampled_from(["BTC-USD", "ETH-USD", "BTC-USDC"]))
    return (f'{{"channel":"l2_data","timestamp":{json.dumps(stamp)},"sequence_num":{draw(st.integers(0, 10**12))},'
            f'"events":[{{"type":"update","product_id":"{product}","updates":[{",".join(levels)}]}}]}}').encode()


@given(frame=compact_frames(), seed=st.integers(0, 2**32), mutate=st.booleans())
def test_frames_in_coinbase_compact_form_read_exactly_like_msgspec(frame, seed, mutate):
    if mutate:
        frame = _mutate(random.Random(seed), frame)
    p = CoinbaseParser()
    ref = reference(frame)
    accepted = p.parse(frame)
    if accepted:
        assert ref is not None, frame
        assert (p.sequence_num, p.event_ms, p.product_id, p.bids, p.asks) == ref, frame
    elif not mutate and ref is not None and COMMON_TIME.match(json.loads(frame)["timestamp"]):
        # The form Coinbase sends, with values the reference reads: the C path must take it.
        values = [u[k] for u in json.loads(frame)["events"][0]["updates"] for k in ("price_level", "new_quantity")]
        assert not all(isinstance(v, str) and re.fullmatch(r"\d+(\.\d+)?", v) for v in values), frame


@FAST
@given(text=timestamps())
def test_timestamps_read_exactly_as_fromisoformat(text):
    frame = cb_l2(7, "BTC-USD", "update", [("bid", "1.5", "2")], timestamp=text)
    p = CoinbaseParser()
    expected = _event_ms(text, NO_TIME)
    if p.parse(frame):
        assert p.event_ms == expected != NO_TIME, text
    else:
        # Declined shapes go to the reference; the common ones must not be declined.
        assert not (COMMON_TIME.match(text) and expected != NO_TIME), text


def test_timestamp_fraction_digits_are_truncated_not_rounded():
    p = CoinbaseParser()
    assert p.parse(cb_l2(1, "BTC-USD", "update", [], timestamp="2026-08-09T21:05:48.999999999Z"))
    assert p.event_ms == 1786309548999
    assert p.parse(cb_l2(1, "BTC-USD", "update", [], timestamp="1969-12-31T23:59:59.9995Z"))
    assert p.event_ms == -1  # floored, as (when - epoch) // 1 ms
    assert p.parse(cb_l2(1, "BTC-USD", "update", [], timestamp="2026-08-09T23:05:48.5+02:00"))
    assert p.event_ms == 1786309548500


# -- the handler: native path vs reference path -----------------------------------------


class _Taken:
    """Counts the frames the C path declined (they reach `_reference_frame`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.declined = 0
        original = CoinbaseHandler._reference_frame
        taken = self

        def counting(handler, conn_id, data, recv_ms):
            taken.declined += 1
            original(handler, conn_id, data, recv_ms)

        monkeypatch.setattr(CoinbaseHandler, "_reference_frame", counting)


def _pair(symbols, monkeypatch=None):
    """(native handler, reference handler) over separate, identical markets."""
    taken = _Taken(monkeypatch) if monkeypatch is not None else None
    out = []
    for _ in range(2):
        markets = [Market("coinbase", s, depth=5) for s in symbols]
        h = CoinbaseHandler(markets, "ws://127.0.0.1:9/")
        h.on_connected(0)
        h.take_actions()
        out.append(h)
    if monkeypatch is not None:
        monkeypatch.undo()
    native, ref = out
    ref.on_frame = lambda conn_id, data, recv_ms: CoinbaseHandler.on_frame(ref, conn_id, data, recv_ms)
    return native, ref, taken


def _state(h: CoinbaseHandler):
    markets = {
        s: (m.book.bids().tolist(), m.book.asks().tolist(), m.valid, m.messages, m.last_event_ms, m.rejected,
            m.resyncs, m.invalid_reason)
        for s, m in h.markets.items()
    }
    c = h.counters
    return (markets, (c.frames, c.bytes, c.decode_errors, c.ignored), h.gaps, h.internal_errors,
            {k: v.last_seq for k, v in h._sequences.items()}, {k: v.awaiting for k, v in h._products.items()},
            [a.payload for a in h.actions])


@st.composite
def sessions(draw):
    """Frames of one connection: snapshots, updates (mostly in sequence), other channels, garbage."""
    frames = []
    seq = 0
    for _ in range(draw(st.integers(1, 16))):
        kind = draw(st.integers(0, 9))
        if draw(st.integers(0, 12)) == 0:
            seq += draw(st.sampled_from([2, 5, -1, 0]))  # a gap, a repeat, going back
        if kind == 0:
            product = draw(st.sampled_from(["BTC-USD", "ETH-USD", "XRP-USD"]))
            frames.append(cb_l2(seq, product, "snapshot", cb_snapshot_levels(100.0 + draw(st.integers(0, 5)))))
        elif kind == 1:
            frames.append(json.dumps({"channel": draw(st.sampled_from(["heartbeats", "ticker", "subscriptions"])),
                                      "timestamp": "2026-08-09T21:05:48.5Z", "sequence_num": seq,
                                      "events": [{"heartbeat_counter": seq}]}).encode())
        elif kind == 2:
            frames.append(_mutate(random.Random(draw(st.integers(0, 2**32))),
                                  draw(l2_frames(seq=seq, product="BTC-USD"))))
        else:
            frames.append(draw(l2_frames(seq=seq, product=draw(st.sampled_from(["BTC-USD", "ETH-USD"])))))
        seq += 1
    return frames


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=sessions())
def test_native_path_leaves_exactly_what_the_reference_leaves(frames):
    native, ref, _ = _pair(("BTC-USD", "ETH-USD"))
    for i, frame in enumerate(frames):
        native.on_frame(0, frame, 1000 + i)
        ref.on_frame(0, frame, 1000 + i)
        assert _state(native) == _state(ref), frame


def _synced_frames(products, n_updates=40):
    frames = [cb_l2(i, p, "snapshot", cb_snapshot_levels(100.0)) for i, p in enumerate(products)]
    seq = len(frames)
    rng = random.Random(5)
    for k in range(n_updates):
        p = products[k % len(products)]
        levels = [(rng.choice(["bid", "offer"]), f"{100.0 + rng.choice([-1, 1]) * rng.randint(1, 9) * 0.5:.2f}",
                   rng.choice(["0", "1.25", "0.00000011", "3"])) for _ in range(rng.randint(0, 6))]
        levels = [(s, p_, q) for s, p_, q in levels if (s == "bid") == (float(p_) < 100.0)]
        frames.append(cb_l2(seq, p, "update", levels))
        seq += 1
    return frames


def test_synced_updates_take_the_c_path(monkeypatch):
    native, ref, taken = _pair(("BTC-USD", "ETH-USD"), monkeypatch)
    frames = _synced_frames(["BTC-USD", "ETH-USD"])
    for frame in frames:
        native.on_frame(0, frame, 5)
        ref.on_frame(0, frame, 5)
    assert _state(native) == _state(ref)
    assert taken.declined == 2  # only the two snapshots went through Python
    assert native.markets["BTC-USD"].messages == 21 and native.markets["BTC-USD"].valid


def test_usdc_alias_is_fed_from_the_usd_book_on_the_c_path(monkeypatch):
    native, ref, taken = _pair(("BTC-USD", "BTC-USDC"), monkeypatch)
    assert sorted(native._products) == ["BTC-USD"]
    frames = _synced_frames(["BTC-USD"], 10)
    for frame in frames:
        native.on_frame(0, frame, 5)
        ref.on_frame(0, frame, 5)
    assert _state(native) == _state(ref)
    assert taken.declined == 1
    usd, usdc = native.markets["BTC-USD"], native.markets["BTC-USDC"]
    assert usd.book.bids().tolist() == usdc.book.bids().tolist() and usdc.messages == usd.messages == 11


def test_a_gap_after_c_path_updates_resyncs_the_connection():
    native, ref, _ = _pair(("BTC-USD", "ETH-USD"))
    frames = _synced_frames(["BTC-USD", "ETH-USD"], 6)
    frames.append(cb_l2(99, "BTC-USD", "update", [("bid", "99.5", "7")]))  # 8 -> 99
    for frame in frames:
        native.on_frame(0, frame, 5)
        ref.on_frame(0, frame, 5)
    assert _state(native) == _state(ref)
    assert native.gaps == 1 and not native.markets["ETH-USD"].valid and native._products["BTC-USD"].awaiting


def test_a_bad_value_is_rejected_by_the_reference_with_the_book_untouched():
    native, _, _ = _pair(("BTC-USD",))
    for frame in _synced_frames(["BTC-USD"], 3):
        native.on_frame(0, frame, 5)
    before = native.markets["BTC-USD"].book.bids().tolist()
    native.on_frame(0, cb_l2(4, "BTC-USD", "update", [("bid", "99.5", "7"), ("offer", "101", "-1")]), 5)
    m = native.markets["BTC-USD"]
    assert m.book.bids().tolist() == before and not m.valid and m.rejected == 1
    assert native._sequences[0].last_seq == 4  # the sequence moved on (the message was received)


def test_sequence_state_keeps_ints_beyond_int64_for_the_reference():
    s = SequenceState()
    assert s.last_seq is None
    s.last_seq = 2**70
    assert s.last_seq == 2**70
    p = CoinbaseParser()
    frame = cb_l2(5, "BTC-USD", "update", [("bid", "1", "1")])
    state = ProductState([Market("coinbase", "BTC-USD")])
    state.awaiting = False
    assert not p.take(frame, s, {"BTC-USD": state})  # declined: not an int64
    s.last_seq = 4
    assert p.take(frame, s, {"BTC-USD": state}) and s.last_seq == 5


# -- the real recording ---------------------------------------------------------------------------


def test_real_recording_native_equals_reference(monkeypatch):
    path = realdata_path("COINBASE.jsonl.zst")
    frames = recv_frames(read_records(path))
    native, ref, taken = _pair(("BTC-USD", "ETH-USD", "BTC-USDC"), monkeypatch)
    for data, recv_ms in frames:
        native.on_frame(0, data, recv_ms)
        ref.on_frame(0, data, recv_ms)
    assert _state(native) == _state(ref)
    updates = sum(1 for data, _ in frames if b'"l2_data"' in data and b'"update"' in data)
    assert updates > 700
    assert taken.declined == len(frames) - updates  # every real update took the C path
    assert native.gaps == 0 and all(m.valid for m in native.markets.values())


def test_msgspec_reference_is_what_the_decoders_say():
    # Guards the oracle itself: a frame msgspec refuses is not a hot frame.
    assert reference(b'{"channel":"l2_data"') is None
    with pytest.raises(msgspec.DecodeError):
        _ENVELOPE.decode(b"{")
    assert datetime.fromisoformat("2026-08-09T21:05:48.505350477Z").microsecond == 505350
