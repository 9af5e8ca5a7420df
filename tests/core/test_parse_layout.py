"""DepthParser's two readers: Binance's exact layout first, the key-order-agnostic one as the definition.

`parse` tries `parse_binance_layout` (no whitespace, Binance's key order,
`"I.FFFFFFFF"` numbers read with a guessed integer width) and, when that
declines, `parse_any_layout`.  On every frame the layout reader accepts, the
general reader must accept it too with bit-identical fields and levels, and
`parse` must always answer exactly what the general reader answers -- so
neither reader can drift from the other.  msgspec (the feed's decoder) stays
the reference behind both (tests/core/test_parse.py).
"""

from __future__ import annotations

import gzip
import random

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentrycoin.feeds.binance import FuturesCombined, SpotCombined
from sentrycore.parse import DepthParser
from tests.core.test_parse import BASE, _mutate, bare_number, decimal_text, frames
from tests.realdata import realdata_path

SPOT = msgspec.json.Decoder(SpotCombined, strict=False)
FUT = msgspec.json.Decoder(FuturesCombined, strict=False)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reading(p: DepthParser) -> tuple | None:
    """Everything a parse leaves behind, floats compared bit for bit."""
    if p.kind == 0:
        return None
    levels = lambda side: [(px.hex(), q.hex()) for px, q in side]  # noqa: E731
    return (p.kind, p.E, p.symbol, p.U, p.u, p.has_pu, p.pu if p.has_pu else None,
            p.n_bids, p.n_asks, levels(p.bids), levels(p.asks))


def assert_readers_agree(frame: bytes) -> tuple[int, int]:
    """(layout reader's answer, general reader's answer) after checking they agree."""
    p = DepthParser()
    fast_kind = p.parse_binance_layout(frame)
    fast = reading(p)
    any_kind = p.parse_any_layout(frame)
    general = reading(p)
    kind = p.parse(frame)
    both = reading(p)
    if fast_kind:
        assert fast_kind == 1 and any_kind == 1, frame
        assert fast == general, frame
    assert kind == any_kind and both == general, frame
    return fast_kind, any_kind


def assert_msgspec_agrees(frame: bytes) -> None:
    """The layout reader's result is msgspec's too (spot or futures shape)."""
    p = DepthParser()
    assert p.parse_binance_layout(frame) == 1
    ev = (FUT if p.has_pu else SPOT).decode(frame).data
    assert (p.E, p.symbol, p.U, p.u, p.bids, p.asks) == (ev.E, ev.s, ev.U, ev.u, ev.b, ev.a)
    if p.has_pu:
        assert p.pu == ev.pu


# -- frames written the way Binance writes them -------------------------------------------

# The layout reader's own number shape: 1-7 integer digits, exactly 8 decimals.
binance_decimal = st.builds(lambda i, f: f"{i}.{f:08d}", st.one_of(st.just(0), st.integers(1, 9_999_999)),
                            st.integers(0, 10**8 - 1))
# Everything else a price may look like: other decimal shapes (long, short,
# more decimals), leading zeros, widths of 8+ digits, bare JSON numbers.
odd_decimal = st.one_of(
    decimal_text,
    st.builds(lambda i, f: f"0{i}.{f:08d}", st.integers(0, 999), st.integers(0, 10**8 - 1)),
    st.builds(lambda i, f: f"{i}.{f:08d}", st.integers(10**7, 10**12), st.integers(0, 10**8 - 1)),
    st.builds(lambda i, f: f"{i}.{f}", st.integers(0, 10**6), st.integers(0, 10**12)),
)


@st.composite
def number(draw, typical: bool) -> str:
    if typical or draw(st.integers(0, 4)):
        return f'"{draw(binance_decimal)}"'
    if draw(st.integers(0, 3)) == 0:
        return draw(bare_number)
    return f'"{draw(odd_decimal)}"'


@st.composite
def binance_frames(draw, typical: bool = False, futures: bool | None = None) -> bytes:
    """A combined-stream depthUpdate in Binance's exact byte layout; unless
    `typical`, some numbers and names take shapes the layout reader leaves
    to the general one."""
    def levels() -> str:
        # Widths drawn per level, so the guessed width is often wrong.
        n = draw(st.integers(0, 40))
        return "[" + ",".join(f"[{draw(number(typical))},{draw(number(typical))}]" for _ in range(n)) + "]"

    symbols = ["BTCUSDT", "ETHUSDT", "X", "1000PEPEUSDT", "ABCDEFGHIJKLMNOP", "ABCDEFGHIJKLMNOPQ"]
    if not typical:
        symbols += ["", "S" * 47, "S" * 48]
    symbol = draw(st.sampled_from(symbols))
    if futures is None:
        futures = draw(st.booleans())
    stream = draw(st.sampled_from([f"{symbol.lower()}@depth@100ms", f"{symbol.lower()}@depth", "", "x"]))
    t = f',"T":{draw(st.integers(0, 10**15))}' if futures else ""
    pu = f',"pu":{draw(st.integers(0, 10**17))}' if futures else ""
    data = (f'{{"e":"depthUpdate","E":{draw(st.integers(0, 10**15))}{t},"s":"{symbol}",'
            f'"U":{draw(st.integers(0, 10**17))},"u":{draw(st.integers(0, 10**17))}{pu},'
            f'"b":{levels()},"a":{levels()}}}')
    return f'{{"stream":"{stream}","data":{data}}}'.encode()


@FAST
@given(frame=binance_frames(typical=True))
def test_binance_frames_take_the_layout_reader(frame):
    """Binance's own layout is the common case: the layout reader takes it,
    with msgspec's fields and levels and the general reader's bits."""
    fast, general = assert_readers_agree(frame)
    assert fast == 1 and general == 1
    assert_msgspec_agrees(frame)


@FAST
@given(frame=binance_frames())
def test_binance_frames_with_odd_numbers_and_names_agree(frame):
    fast, general = assert_readers_agree(frame)
    if fast:
        assert_msgspec_agrees(frame)


@FAST
@given(frame=frames(combined=True))
def test_reordered_keys_whitespace_and_extra_keys_agree(frame):
    # The generic generator: any key order, whitespace, unknown keys.  The
    # layout reader declines almost all of these; where it accepts, it agrees.
    assert_readers_agree(frame)


@FAST
@given(frame=binance_frames(), seed=st.integers(0, 2**32))
def test_mutated_binance_frames_agree(frame, seed):
    assert_readers_agree(_mutate(random.Random(seed), frame))


FUTURES_BASE = BASE.replace(b'"E":1723161255208,', b'"E":1723161255208,"T":1723161255200,').replace(
    b'"u":160,', b'"u":160,"pu":156,')


@pytest.mark.parametrize("frame", [BASE, FUTURES_BASE])
def test_every_truncation_and_byte_change_agrees(frame):
    """Each prefix of a Binance frame, and each byte replaced by each of the
    bytes the layout reader looks at, through both readers."""
    assert assert_readers_agree(frame) == (1, 1)
    for end in range(len(frame)):
        assert assert_readers_agree(frame[:end]) == (0, 0)
    for pos in range(len(frame)):
        for byte in b' "0159.,:[]{}eE-\\\x00\xff':
            assert_readers_agree(frame[:pos] + bytes([byte]) + frame[pos + 1:])
    for pos in range(len(frame) + 1):
        assert_readers_agree(frame[:pos] + b" " + frame[pos:])


def test_guessed_widths_follow_every_change():
    """Each column guesses the integer width of its previous number: a wrong
    guess (wider, narrower, 8+ digits, a leading zero) still reads exactly."""
    prices = ["5.00000000", "123.45000000", "1234567.12345678", "12345678.00000000", "9.99999999", "0.00000001",
              "61838.04000000", "61838.04000000", "1.5", "70000.00000000"]
    qtys = ["0.00000000", "10.50000000", "1.00000000", "0.32332000", "1234567.00000000", "12", "3.14159265",
            "0.00000000", "2.00000000", "100.00000000"]
    levels = ",".join(f'["{p}","{q}"]' for p, q in zip(prices, qtys, strict=True))
    frame = f'{{"stream":"s","data":{{"e":"depthUpdate","E":1,"s":"S","U":1,"u":2,"b":[{levels}],"a":[{levels}]}}}}'.encode()
    p = DepthParser()
    assert p.parse_binance_layout(frame) == 1
    expect = [(float(a), float(b)) for a, b in zip(prices, qtys, strict=True)]
    assert p.bids == expect and p.asks == expect
    assert assert_readers_agree(frame) == (1, 1)
    leading_zero = frame.replace(b'"123.45000000"', b'"0123.45000000"', 1)
    assert assert_readers_agree(leading_zero) == (0, 0)  # msgspec's JSON rules: declined by both


def test_layout_reader_declines_what_only_the_general_reader_reads():
    """Frames outside Binance's exact bytes go to the general reader, which
    still accepts them (the fallback is not a refusal)."""
    variants = [
        BASE.replace(b'"data":{', b'"data": {'),                                # whitespace
        BASE + b"\n",                                                         # trailing whitespace
        BASE.replace(b'"e":"depthUpdate",', b''),                             # no "e"
        BASE.replace(b'"e":"depthUpdate",', b'"e":"other",'),                 # "e" unchecked by the definition
        BASE.replace(b'"s":"BTCUSDT",', b'').replace(b'"u":160,', b'"u":160,"s":"BTCUSDT",'),  # key order
        BASE.replace(b'{"stream":"btcusdt@depth@100ms","data":', b'{"data":')[:-1]
        + b',"stream":"btcusdt@depth@100ms"}',                                 # data first
        BASE.replace(b'"u":160,', b'"u":160,"x":null,'),                      # unknown key
    ]
    for frame in variants:
        p = DepthParser()
        assert p.parse_binance_layout(frame) == 0, frame
        assert p.parse_any_layout(frame) == 1 and p.parse(frame) == 1, frame
        assert_readers_agree(frame)
    # Numbers of another shape inside Binance's layout are read in place by
    # the shared number reader (scan_level_number), not sent back.
    for number in (b'61737.63', b'"61737.63"', b'"61737.630000001"', b'6.173763e4'):
        frame = BASE.replace(b'"61737.63000000"', number)
        assert assert_readers_agree(frame) == (1, 1), frame


def test_real_recording_takes_the_layout_reader():
    """Every depthUpdate Binance sent in the recording is read by the layout
    reader, bit for bit like the general reader."""
    count = 0
    with gzip.open(realdata_path("BINANCE_SPOT_BTCUSDT_20240808.gz"), "rb") as fh:
        for line in fh:
            frame = line.rstrip(b"\n").partition(b" ")[2]
            if b'"depthUpdate"' in frame:
                assert assert_readers_agree(frame) == (1, 1)
                count += 1
    assert count == 3451
