"""Shared pieces of the native-path oracle tests (Bybit, OKX): a handler
running only its reference path, frame renderings and mutations, and the
state both paths must leave identical."""

from __future__ import annotations

import json
import random
import re
from typing import Any

from hypothesis import strategies as st


def reference_only(h: Any) -> Any:
    """Make `h` run its Python reference path for every frame (the oracle)."""

    def on_frame(conn_id: int, data: bytes, recv_ms: int) -> None:
        h.counters.frames += 1
        h.counters.bytes += len(data)
        h._decode_frame(conn_id, data, recv_ms)

    h.on_frame = on_frame
    return h


def seeded(h: Any) -> Any:
    """Same recovery jitter for both handlers of a comparison."""
    h._recovery_rng = random.Random(0)
    return h


#: Texts of a level's price or size: real forms (trailing zeros, integers, 8+
#: decimals, tiny and large values) and hostile ones (signs, exponents, NaN,
#: leading zeros, spaces, huge, empty).
REAL_TEXT = st.one_of(
    st.integers(1, 10**7).map(str),
    st.tuples(st.integers(0, 10**6), st.integers(1, 12)).map(lambda t: f"{t[0] / 10**t[1]:.{t[1]}f}"),
    st.tuples(st.integers(0, 99999), st.integers(0, 4), st.integers(0, 3)).map(
        lambda t: f"{t[0] / 10**t[1]:.{t[1]}f}" + "0" * t[2] if t[1] else str(t[0])),
    st.sampled_from(["0", "0.0", "0.00000000", "61737.63000000", "0.00012345", "0.000000001234",
                     "123456789.123456789", "3366.1", "7", "8.000", "0.10"]),
)
HOSTILE_TEXT = st.sampled_from(["-1", "-0", "NaN", "nan", "inf", "1e400", "1e5", "", "abc", "0x10", "1_0",
                                " 5", "05", ".5", "5.", "+5", "1e-400", "99999999999999999999999",
                                "1" * 120, "\u0661", "1.5\u00e9"])
# Mostly real: one hostile text spoils a whole message, and the C path must
# also be seen taking long runs of good ones.
TEXT = st.tuples(st.integers(0, 19), REAL_TEXT, HOSTILE_TEXT).map(lambda t: t[2] if t[0] == 0 else t[1])


PLAIN_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")


def plain_level(px: str, sz: str) -> bool:
    """A level every C path takes: plain decimals within the book's bounds
    (sentrycore/book.pxd: 0 < price <= 1e15, size <= 1e18)."""
    return (bool(PLAIN_DECIMAL.fullmatch(px) and PLAIN_DECIMAL.fullmatch(sz))
            and 0.0 < float(px) <= 1e15 and float(sz) <= 1e18)


def price_text(lo: int, hi: int) -> st.SearchStrategy[str]:
    """Real-form price texts within [lo, hi] (so bids and asks do not cross), with
    0-10 decimals and sometimes trailing zeros; now and then a hostile text."""
    def fmt(t: tuple[int, int, int]) -> str:
        cents, places, zeros = t
        if places < 2:
            return str(cents // 100)
        return f"{cents / 100:.2f}" + "0" * zeros if zeros else f"{cents / 100:.{places}f}"
    real = st.tuples(st.integers(lo * 100, hi * 100), st.integers(0, 10), st.integers(0, 6)).map(fmt)
    return st.tuples(st.integers(0, 19), real, HOSTILE_TEXT).map(lambda t: t[2] if t[0] == 0 else t[1])


BID_LEVELS = st.lists(st.tuples(price_text(1, 100), TEXT), max_size=6)
ASK_LEVELS = st.lists(st.tuples(price_text(101, 200), TEXT), max_size=6)


def render(obj: Any, rnd: random.Random) -> bytes:
    """One JSON text of `obj`: compact, spaced or indented, keys possibly shuffled."""

    def shuffle(o: Any) -> Any:
        if isinstance(o, dict):
            items = [(k, shuffle(v)) for k, v in o.items()]
            rnd.shuffle(items)
            return dict(items)
        if isinstance(o, list):
            return [shuffle(v) for v in o]
        return o

    if rnd.random() < 0.3:
        obj = shuffle(obj)
    style = rnd.random()
    if style < 0.6:
        text = json.dumps(obj, separators=(",", ":"))
    elif style < 0.8:
        text = json.dumps(obj)
    else:
        text = json.dumps(obj, indent=rnd.choice([1, "\t", " \r\n"]) if rnd.random() < 0.5 else 2)
    if rnd.random() < 0.1:
        text = " \n" + text + "\t "
    return text.encode()


MUTATIONS = ("none", "none", "none", "none", "none", "none", "truncate", "byte", "insert", "duplicate-key", "unknown-plain",
             "unknown-nested", "escape")


def mutate(frame: bytes, how: str, rnd: random.Random) -> bytes:
    if how == "truncate":
        return frame[:rnd.randrange(len(frame))]
    if how == "byte":
        i = rnd.randrange(len(frame))
        return frame[:i] + bytes([rnd.randrange(256)]) + frame[i + 1:]
    if how == "insert":
        i = rnd.randrange(len(frame) + 1)
        return frame[:i] + rnd.choice([b" ", b",", b"}", b"]", b'"', b"0", b"-"]) + frame[i:]
    if how == "duplicate-key":
        return frame.replace(b"{", b'{"ts":1,', 1) if rnd.random() < 0.5 else frame.replace(b"{", b'{"u":5,', 2)
    if how == "unknown-plain":
        return frame.replace(b"{", b'{"zz":"x","yy":-1.5e3,"ww":null,', 1)
    if how == "unknown-nested":
        return frame.replace(b"{", b'{"zz":{"a":[1]},', 1)
    if how == "escape":
        return frame.replace(b'"', b'"\\u0041', 1)
    return frame


def market_state(m: Any) -> tuple:
    book = m.book
    return (book.bids().tobytes(), book.asks().tobytes(), book.bid_volume, book.ask_volume,
            m.valid, m.messages, m.resyncs, m.rejected, m.invalid_reason, m.last_event_ms,
            getattr(m, "checksum_mismatches", 0), getattr(m, "crossed", 0))
