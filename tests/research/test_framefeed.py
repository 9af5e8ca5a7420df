"""sentrycore.framefeed.FrameFeeder, the replay's C reader of frame records, against msgspec.

msgspec's decoding of a recording line is the definition: on every line the
feeder takes it must hand the handler exactly `record.data.encode()` with the
record's conn and ms, and every line it is not sure of must be left to msgspec.
"""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from sentrycoin.research.recording import FrameRecord, Header, SnapshotRecord, decode_record
from sentrycore.framefeed import FrameFeeder
from sentrycore.marketcore import SourceClock

encode = msgspec.json.Encoder().encode


class FrameSink:
    """Collects what the feeder hands over, with the clock's reading at each call."""

    def __init__(self, clock: SourceClock) -> None:
        self.clock = clock
        self.calls: list[tuple[int, bytes, int, int]] = []

    def __call__(self, conn: int, data: bytes, ms: int) -> None:
        self.calls.append((conn, data, ms, self.clock.now_ms))


def feed_all(lines: list[bytes]) -> tuple[FrameFeeder, FrameSink, int]:
    clock = SourceClock()
    feeder = FrameFeeder(clock)
    sink = FrameSink(clock)
    stop = feeder.feed(lines, 0, sink, [], None)
    return feeder, sink, stop


frame_texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)


@settings(max_examples=400, deadline=None)
@given(text=frame_texts, conn=st.integers(0, 2**40), ms=st.integers(0, 10**18 - 1))
def test_a_frame_record_is_taken_exactly_or_left_to_msgspec(text: str, conn: int, ms: int) -> None:
    line = encode(FrameRecord("binance", conn, ms, text))
    feeder, sink, stop = feed_all([line])
    if stop == 1:
        assert sink.calls == [(conn, text.encode(), ms, ms)]
        assert (feeder.frames, feeder.lines, feeder.first_ms, feeder.last_ms) == (1, 1, ms, ms)
    else:
        # Declined: only for text the feeder leaves to msgspec (non-ASCII, \\u escapes).
        assert stop == 0 and sink.calls == [] and feeder.lines == 0
        assert any(ord(c) < 32 or ord(c) > 126 for c in text)


@given(text=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300))
def test_every_printable_ascii_frame_takes_the_fast_path(text: str) -> None:
    line = encode(FrameRecord("okx", 3, 1_700_000_000_000, text))
    _, sink, stop = feed_all([line])
    assert stop == 1 and sink.calls[0][1] == text.encode()


def test_the_escapes_msgspec_writes_are_undone() -> None:
    text = 'a"b\\c/d\ne\tf\rg\bh\fi'
    line = encode(FrameRecord("binance", 0, 5, text))
    _, sink, stop = feed_all([line])
    assert stop == 1 and sink.calls[0][1] == text.encode()
    # An escaped slash (valid JSON msgspec never writes) is read too.
    line = b'{"t":"frame","venue":"binance","conn":0,"ms":5,"data":"a\\/b"}'
    _, sink, stop = feed_all([line])
    assert stop == 1 and sink.calls[0][1] == decode_record(line).data.encode() == b"a/b"


DECLINED = [
    # other record kinds
    encode(Header(venue="binance", symbols=["BTC-USDT"], depth=50)),
    encode(SnapshotRecord("binance", "BTC-USDT", 1, "{}")),
    # keys in another order, whitespace, extra keys: valid records of another layout
    b'{"t":"frame","conn":0,"venue":"binance","ms":1,"data":"x"}',
    b'{"t": "frame","venue":"binance","conn":0,"ms":1,"data":"x"}',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":"x","extra":1}',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":"x"} ',
    # numbers the fast path leaves alone
    b'{"t":"frame","venue":"binance","conn":-1,"ms":1,"data":"x"}',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1.5,"data":"x"}',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1e3,"data":"x"}',
    b'{"t":"frame","venue":"binance","conn":01,"ms":1,"data":"x"}',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1000000000000000000,"data":"x"}',  # 19 digits
    # escapes and bytes left to msgspec
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":"\\u0041"}',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":"\\q"}',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":"a\x01b"}',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":"\xc3\xa9"}',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":"\xff"}',
    # broken lines
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":"x',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":"x"',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":"x"}}',
    b'{"t":"frame","venue":"bin\\"ance","conn":0,"ms":1,"data":"x"}',
    b'{"t":"frame","venue":"binance","conn":0,"ms":1,"data":x}',
    b'{"t":"frame"',
    b"not json at all",
]


def test_lines_of_any_other_shape_are_left_to_msgspec() -> None:
    for line in DECLINED:
        feeder, sink, stop = feed_all([line])
        assert (stop, sink.calls, feeder.lines, feeder.frames) == (0, [], 0, 0), line


def test_a_run_stops_at_the_first_other_line_and_resumes_after_it() -> None:
    frames = [encode(FrameRecord("binance", 1, 10 + k, f"f{k}")) for k in range(4)]
    snapshot = encode(SnapshotRecord("binance", "BTC-USDT", 12, "{}"))
    batch = [frames[0], b"", frames[1], snapshot, frames[2], frames[3]]
    clock = SourceClock()
    feeder = FrameFeeder(clock)
    sink = FrameSink(clock)
    actions: list[object] = ["stale"]
    observed: list[int] = []
    stop = feeder.feed(batch, 0, sink, actions, lambda: observed.append(len(sink.calls)))
    assert stop == 3 and [c[1] for c in sink.calls] == [b"f0", b"f1"]
    assert actions == [] and observed == [1, 2]
    assert feeder.feed(batch, stop + 1, sink, actions, None) == len(batch)
    assert [c[1] for c in sink.calls] == [b"f0", b"f1", b"f2", b"f3"]
    # Each frame saw the clock set to its own receive time.
    assert [(c[2], c[3]) for c in sink.calls] == [(10, 10), (11, 11), (12, 12), (13, 13)]
    assert (feeder.frames, feeder.lines, feeder.first_ms, feeder.last_ms) == (4, 4, 10, 13)


def test_a_handler_error_propagates_after_the_frame_is_counted() -> None:
    def failing(conn: int, data: bytes, ms: int) -> None:
        raise RuntimeError("handler bug")

    feeder = FrameFeeder(SourceClock())
    line = encode(FrameRecord("binance", 0, 1, "x"))
    try:
        feeder.feed([line], 0, failing, [], None)
    except RuntimeError as exc:
        assert str(exc) == "handler bug"
    else:
        raise AssertionError("the handler's exception was swallowed")


class DecliningFeeder(FrameFeeder):
    """A feeder that takes nothing: every line goes through msgspec (the reference path)."""

    def feed(self, batch, start, on_frame, actions, observe):  # type: ignore[override]
        return start


def test_a_replay_through_the_feeder_equals_the_msgspec_replay(tmp_path, monkeypatch) -> None:
    import sentrycoin.research.replay as replay
    from sentrycoin.research.record import tee_handler
    from sentrycoin.research.recording import RecordingWriter
    from sentrycoin.sim.source import simulated_source

    symbols = ["BTC-USDT", "ETH-USDT"]
    source = simulated_source(symbols, scenario="mixed", seed=3, realtime=False)
    writer = RecordingWriter(tmp_path, Header(venue="binance", symbols=symbols, depth=50, source="simulated"),
                             prefix="t")
    tee_handler(source.handler, writer)
    source.run_until(source.generator.start_ms + 4 * 60_000)
    writer.close()

    def outcome() -> tuple:
        seen: list[tuple] = []
        summary = replay.replay_files(writer.files, observer=lambda m: seen.append((m.symbol, m.messages)))
        books = [(m.symbol, m.messages, m.book.best_bid, m.book.best_ask, m.book.bid_volume, m.book.ask_volume)
                 for m in summary.markets]
        alerts = [(a.symbol, a.severity, a.ratio) for a in summary.alerts]
        return (summary.frames, summary.snapshots, summary.records, summary.first_ms, summary.last_ms,
                books, alerts, len(seen), seen[-1])

    fast = outcome()
    monkeypatch.setattr(replay, "FrameFeeder", DecliningFeeder)
    reference = outcome()
    assert fast == reference
    assert fast[0] > 1_000 and fast[6], "the scenario should give frames and alerts"
