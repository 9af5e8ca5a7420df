"""Recording files, and replay through the real feed handler path."""

from __future__ import annotations

import msgspec
import pytest

from sentrycoin.market import DetectorSettings
from sentrycoin.research.readers import InputError, TruncatedInput
from sentrycoin.research.recording import FrameRecord, Header, RecordingWriter, SnapshotRecord, read_records
from sentrycoin.research.replay import replay_files, tardis_symbol

enc = msgspec.json.encode


def depth_event(U: int, u: int, E: int, bids: list, asks: list) -> bytes:
    return enc({"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": E, "s": "BTCUSDT", "U": U, "u": u,
        "b": [[str(p), str(q)] for p, q in bids], "a": [[str(p), str(q)] for p, q in asks]}})


def test_writer_rotates_and_every_file_replays_its_records(tmp_path) -> None:
    header = Header(venue="binance", symbols=["BTC-USDT"], depth=50, started_ms=1)
    with RecordingWriter(tmp_path, header, max_bytes=2_000, prefix="rec", flush_every=10) as writer:
        for i in range(400):
            writer.frame("binance", 0, 1_000 + i, f'{{"n":{i},"pad":"{i * 7919 % 10007:x}"}}'.encode())
    files = sorted(tmp_path.glob("rec-*.jsonl.zst"))
    assert len(files) >= 2 and files == writer.files
    seen = []
    for path in files:
        records = list(read_records(path))
        assert isinstance(records[0], Header)  # every file stands alone
        seen += [r.ms for r in records if isinstance(r, FrameRecord)]
    assert seen == [1_000 + i for i in range(400)]


def test_a_torn_tail_is_an_error_unless_truncation_is_allowed(tmp_path) -> None:
    header = Header(venue="binance", symbols=["BTC-USDT"], depth=50)
    with RecordingWriter(tmp_path, header, prefix="torn") as writer:
        for i in range(50):
            writer.frame("binance", 0, i, b'{"x":1}')
        writer.snapshot("binance", "BTC-USDT", 99, b'{"lastUpdateId":1,"bids":[],"asks":[]}')
        for i in range(50):
            writer.frame("binance", 0, 100 + i, b'{"x":2}')
    path = writer.files[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])
    with pytest.raises(TruncatedInput, match=r"torn-0000.jsonl.zst: truncated \(the zstd stream ends mid-frame\)"):
        list(read_records(path))
    records = list(read_records(path, allow_truncated=True))
    # Everything up to the flushed snapshot is there; the torn end is dropped.
    assert sum(isinstance(r, SnapshotRecord) for r in records) == 1
    assert len([r for r in records if isinstance(r, FrameRecord)]) >= 50


def test_replay_drives_the_binance_handler_and_uses_recorded_time(tmp_path) -> None:
    header = Header(venue="binance", symbols=["BTC-USDT"], depth=5)
    snapshot = enc({"lastUpdateId": 100, "bids": [["100.0", "5"], ["99.0", "5"]], "asks": [["101.0", "4"], ["102.0", "4"]]})
    with RecordingWriter(tmp_path, header, prefix="bn") as writer:
        writer.frame("binance", 0, 1_000, depth_event(95, 99, 1_000, [], []))  # older than the snapshot
        writer.snapshot("binance", "BTC-USDT", 1_050, snapshot)
        writer.frame("binance", 0, 1_100, depth_event(100, 101, 1_100, [(100.0, 4)], []))  # bridges
        writer.frame("binance", 0, 1_200, depth_event(102, 102, 1_200, [(100.0, 1), (99.0, 1)], [(101.0, 9)]))
        # Ratio (9+4)/(1+1) = 6.5 >= 2.5 at event time 1_200: one alert.
        writer.frame("binance", 0, 1_300, depth_event(103, 103, 1_300, [], [(103.0, 1)]))
        # Cooldown in recorded time: at 2_000 s later the book alerts again after re-arming.
        writer.frame("binance", 0, 1_400, depth_event(104, 104, 1_400, [(100.0, 50)], []))
        writer.frame("binance", 0, 301_300, depth_event(105, 105, 301_300, [(100.0, 1)], []))
    summary = replay_files(writer.files, detector=DetectorSettings(cooldown_s=300))
    (market,) = summary.markets
    assert market.valid and market.source == "replay"
    assert market.book.bids().tolist() == [[100.0, 1.0], [99.0, 1.0]]
    assert market.book.asks().tolist() == [[101.0, 9.0], [102.0, 4.0], [103.0, 1.0]]
    assert [(a.event_ms, a.severity) for a in summary.alerts] == [(1_200, "critical"), (301_300, "critical")]
    assert summary.frames == 6 and summary.snapshots == 1


def test_replay_of_a_gap_invalidates_and_raises_nothing(tmp_path) -> None:
    header = Header(venue="binance", symbols=["BTC-USDT"], depth=5)
    snapshot = enc({"lastUpdateId": 100, "bids": [["100.0", "5"]], "asks": [["101.0", "4"]]})
    with RecordingWriter(tmp_path, header, prefix="gap") as writer:
        writer.snapshot("binance", "BTC-USDT", 1_000, snapshot)
        writer.frame("binance", 0, 1_100, depth_event(100, 101, 1_100, [], []))
        writer.frame("binance", 0, 1_200, depth_event(150, 150, 1_200, [(100.0, 0.1)], [(101.0, 90)]))
    summary = replay_files(writer.files)
    (market,) = summary.markets
    assert not market.valid and market.resyncs == 1
    assert summary.alerts == []


@pytest.mark.parametrize(("raw", "normal"), [
    ("BTCUSDT", "BTC-USDT"), ("ETH-USD", "ETH-USD"), ("XBT/USD", "BTC-USD"), ("BTC-USDT-SWAP", "BTC-USDT"),
    ("solusdc", "SOL-USDC"),
])
def test_tardis_symbols(raw: str, normal: str) -> None:
    assert tardis_symbol(raw) == normal


def test_tardis_incremental_book_csv(tmp_path) -> None:
    rows = ["exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"]
    t = 1_700_000_000_000_000  # microseconds
    for p in range(5):
        rows.append(f"binance,BTCUSDT,{t},{t + 5},true,bid,{100 - p},2")
        rows.append(f"binance,BTCUSDT,{t},{t + 5},true,ask,{101 + p},2")
    rows.append(f"binance,BTCUSDT,{t + 1_000_000},{t + 1_000_005},false,bid,100,0")
    rows.append(f"binance,BTCUSDT,{t + 1_000_000},{t + 1_000_005},false,bid,99,0")
    rows.append(f"binance,BTCUSDT,{t + 1_000_000},{t + 1_000_005},false,ask,101,30")
    rows.append(f"binance,BTCUSDT,{t + 2_000_000},{t + 2_000_005},false,bid,97,-1")  # bad row: rejected
    path = tmp_path / "binance_incremental_book_L2_2024-01-01_BTCUSDT.csv"
    path.write_text("\n".join(rows) + "\n")
    summary = replay_files([path], depth=3)
    (market,) = summary.markets
    assert (market.exchange, market.symbol) == ("binance", "BTC-USDT")
    # Alert at the update 1 s after the snapshot: asks 30+2+2=34 vs bids 2+2+2=6.
    assert [(a.event_ms, a.severity) for a in summary.alerts] == [(1_700_000_001_000, "critical")]
    assert market.rejected == 1 and not market.valid


def test_tardis_csv_with_wrong_columns_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="x.csv: not a format replay reads"):
        replay_files([path])
