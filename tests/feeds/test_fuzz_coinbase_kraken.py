"""Fuzzing the Coinbase and Kraken decoders: random bytes and mutated real messages.

Whatever arrives, no exception may escape `on_frame`, and a message the
handler refuses (undecodable, or bad values) must leave every book exactly as
it was.  A Kraken message that decodes but fails its checksum is applied and
then the book is invalidated: that book must then be invalid.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentrycoin.feeds.coinbase import CoinbaseHandler
from sentrycoin.feeds.kraken import KrakenHandler, from_venue_symbol
from sentrycoin.market import Market
from tests.feeds.coinbase_kraken_frames import (
    book_copy,
    cb_l2,
    cb_snapshot_levels,
    kr_v2_book,
    kr_v2_instrument,
    read_records,
    recv_frames,
    same_book,
)
from tests.feeds.test_kraken import HAND_ASKS, HAND_BIDS, HAND_CRC
from tests.realdata import REALDATA_DIR

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values that decode as numbers or numeric strings but must never reach a book.
NASTY = ["NaN", "nan", "-1", "-0.5", "inf", "-inf", "1e999", "", "abc", "0", "0.0", "1e-400", "00", "1.2.3",
         "9" * 400]


@st.composite
def mutations(draw, frame: bytes) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "number", "delete"]))
    data = bytearray(frame)
    if kind == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "insert":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete" and data:
        i = draw(st.integers(0, len(data) - 1))
        del data[i:i + draw(st.integers(1, 8))]
    else:
        # Replace one quoted decimal with a nasty value (quoted or bare).
        numbers = list(re.finditer(rb'"(\d+\.\d+)"', frame))
        if numbers:
            m = numbers[draw(st.integers(0, len(numbers) - 1))]
            nasty = draw(st.sampled_from(NASTY)).encode()
            if draw(st.booleans()):
                nasty = b'"' + nasty + b'"'
            data = bytearray(frame[: m.start()] + nasty + frame[m.end():])
    return bytes(data)


def _snapshots(markets) -> dict[str, tuple]:
    return {s: book_copy(m) for s, m in markets.items()}


def _check(handler, markets, before, errors_before, rejected_before, failed_before=0) -> None:
    assert handler.internal_errors == 0  # the catch-all at the frame boundary must never be needed
    refused = handler.counters.decode_errors > errors_before
    checksum_failed = getattr(handler, "checksum_failed", 0) > failed_before
    for s, m in markets.items():
        if checksum_failed and m.rejected > rejected_before[s]:
            assert not m.valid
            continue
        if refused or m.rejected > rejected_before[s]:
            assert same_book(book_copy(m), before[s]), s


# -- Coinbase -----------------------------------------------------------------------


def _coinbase_synced() -> tuple[CoinbaseHandler, dict[str, Market]]:
    markets = [Market("coinbase", s) for s in ("BTC-USD", "ETH-USD")]
    handler = CoinbaseHandler(markets, "ws://127.0.0.1:9/")
    handler.on_connected(0)
    handler.on_frame(0, cb_l2(0, "BTC-USD", "snapshot", cb_snapshot_levels(65080.0, n=40, step=0.5)), 1)
    handler.on_frame(0, cb_l2(1, "ETH-USD", "snapshot", cb_snapshot_levels(1919.0, n=40, step=0.05)), 1)
    return handler, {m.symbol: m for m in markets}


@lru_cache(maxsize=1)
def _coinbase_updates() -> tuple[bytes, ...]:
    path = REALDATA_DIR / "COINBASE.jsonl.zst"
    if not path.is_file():
        # Without the recording, fuzz hand-built updates of the same shape.
        return (cb_l2(2, "BTC-USD", "update", [("bid", "65079.50", "0.5"), ("offer", "65080.50", "0")]),)
    frames = [d for d, _ in recv_frames(read_records(path))]
    picked = [d for d in frames if b'"l2_data"' in d[:40] and b'"update"' in d and len(d) < 3000][:60]
    # Renumber to the next expected sequence so the content, not a gap, is tested.
    return tuple(re.sub(rb'"sequence_num":\d+', b'"sequence_num":2', d) for d in picked)


@FUZZ
@given(st.binary(max_size=300))
def test_coinbase_random_bytes(data):
    handler, markets = _coinbase_synced()
    before = _snapshots(markets)
    handler.on_frame(0, data, 5)
    assert handler.internal_errors == 0
    for s, m in markets.items():
        assert same_book(book_copy(m), before[s])


@FUZZ
@given(st.data())
def test_coinbase_mutated_real_updates(data):
    frame = data.draw(st.sampled_from(_coinbase_updates()))
    mutated = data.draw(mutations(frame))
    handler, markets = _coinbase_synced()
    before = _snapshots(markets)
    rejected = {s: m.rejected for s, m in markets.items()}
    errors = handler.counters.decode_errors
    handler.on_frame(0, mutated, 5)
    _check(handler, markets, before, errors, rejected)
    for m in markets.values():
        if m.valid:
            assert m.book.bid_levels > 0 and m.book.ask_levels > 0


# -- Kraken -------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _kraken_recording() -> tuple[list[str], tuple[bytes, ...], tuple[bytes, ...]]:
    """(symbols, frames up to and including the snapshots, small update frames after them)."""
    path = REALDATA_DIR / "KRAKEN.jsonl.zst"
    if not path.is_file():
        return [], (), ()
    frames = [d for d, _ in recv_frames(read_records(path), "KRAKEN.ws.50")]
    last_snapshot = max(i for i, d in enumerate(frames) if b'{"as":' in d)
    pairs = {m.group(1).decode() for m in re.finditer(rb'"pair":"([^"]+)"', b"".join(frames[:last_snapshot]))}
    symbols = sorted(from_venue_symbol(p) for p in pairs)
    updates = tuple(frames[last_snapshot + 1:last_snapshot + 80])
    return symbols, tuple(frames[: last_snapshot + 1]), updates


def _kraken_v1_synced():
    symbols, prefix, _ = _kraken_recording()
    markets = [Market("kraken", s) for s in symbols]
    handler = KrakenHandler(markets, "wss://ws.kraken.com", depth=1000)
    handler.on_connected(0)
    for d in prefix:
        handler.on_frame(0, d, 1)
    return handler, {m.symbol: m for m in markets}


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["v1", "v2"]))
def test_kraken_random_bytes(data, protocol):
    markets = [Market("kraken", "BTC-USD")]
    handler = KrakenHandler(markets, "ws://127.0.0.1:9/", protocol=protocol, depth=10)
    handler.on_connected(0)
    handler.on_frame(0, data, 5)
    handler.on_frame(0, b"[" + data, 5)
    assert handler.internal_errors == 0
    assert len(markets[0].book) == 0 and not markets[0].valid


@FUZZ
@given(st.data())
def test_kraken_v1_mutated_real_updates(data):
    symbols, _, updates = _kraken_recording()
    if not updates:
        pytest.skip(f"real recording KRAKEN.jsonl.zst not found in {REALDATA_DIR}")
    frame = data.draw(st.sampled_from(updates))
    mutated = data.draw(mutations(frame))
    handler, markets = _kraken_v1_synced()
    # Apply the real updates that precede this one so the book is in sync.
    for d in updates[: updates.index(frame)]:
        handler.on_frame(0, d, 2)
    assert handler.checksum_failed == 0
    before = _snapshots(markets)
    rejected = {s: m.rejected for s, m in markets.items()}
    errors = handler.counters.decode_errors
    handler.on_frame(0, mutated, 5)
    _check(handler, markets, before, errors, rejected)
    for m in markets.values():
        if m.valid:
            assert m.book.best_bid < m.book.best_ask


HAND_V2 = (
    b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":45283.6,"qty":0.5}],'
    b'"asks":[{"price":45285.2,"qty":0.002}],"checksum":123,"timestamp":"2026-01-02T03:04:05.678901Z"}]}'
)


@FUZZ
@given(st.data())
def test_kraken_v2_mutated_updates(data):
    markets = [Market("kraken", "BTC-USD")]
    handler = KrakenHandler(markets, "ws://127.0.0.1:9/v2", depth=10)
    handler.on_connected(0)
    handler.on_frame(0, kr_v2_instrument([("BTC/USD", 1, 8)]), 1)
    handler.on_frame(0, kr_v2_book("snapshot", "BTC/USD", HAND_BIDS, HAND_ASKS, HAND_CRC), 1)
    assert markets[0].valid
    by_symbol = {"BTC-USD": markets[0]}
    before = _snapshots(by_symbol)
    rejected = {"BTC-USD": markets[0].rejected}
    errors = handler.counters.decode_errors
    mutated = data.draw(mutations(HAND_V2))
    handler.on_frame(0, mutated, 5)
    _check(handler, by_symbol, before, errors, rejected)
