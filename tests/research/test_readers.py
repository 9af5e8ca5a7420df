"""Readers: every format recognised by content, chained files, clear errors for bad files."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import zstandard

from sentrycoin.research.readers import InputError, TruncatedInput, sniff
from sentrycoin.research.recording import Header, RecordingWriter
from sentrycoin.research.replay import replay_files

enc = msgspec.json.encode


def depth(U: int, u: int, E: int, bids, asks, sym: str = "BTCUSDT") -> bytes:
    return enc({"stream": f"{sym.lower()}@depth@100ms", "data": {
        "e": "depthUpdate", "E": E, "s": sym, "U": U, "u": u,
        "b": [[str(p), str(q)] for p, q in bids], "a": [[str(p), str(q)] for p, q in asks]}})


SNAPSHOT = enc({"lastUpdateId": 100, "bids": [["100.0", "5"], ["99.0", "5"]], "asks": [["101.0", "4"], ["102.0", "4"]]})


T0 = 1_723_161_253_000  # Unix ms, 2024-08-08


def raw_lines(start_ms: int, first_U: int, n: int, snapshot_after: int | None = None) -> list[bytes]:
    """Binance raw capture lines: '<ns> <frame>' with a REST snapshot line after `snapshot_after` events;
    times are T0 + start_ms + 100 ms per event."""
    out = []
    start_ms += T0
    for i in range(n):
        U = first_U + i
        ms = start_ms + 100 * i
        out.append(b"%d " % (ms * 1_000_000) + depth(U, U, ms, [(100.0, 5 + i % 3)], [(101.0, 4)]))
        out.append(b"%d " % (ms * 1_000_000 + 1) + enc({"stream": "btcusdt@bookTicker", "data": {"u": U}}))
        if snapshot_after is not None and i == snapshot_after:
            out.append(b"%d " % (ms * 1_000_000 + 2) + SNAPSHOT)
    return out


def write(path: Path, body: bytes, how: str = "plain") -> Path:
    if how == "gz":
        body = gzip.compress(body)
    elif how == "zst":
        body = zstandard.ZstdCompressor().compress(body)
    path.write_bytes(body)
    return path


# -- formats by content ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["plain", "gz", "zst"])
def test_binance_raw_capture_syncs_and_chains_across_files(tmp_path: Path, how: str) -> None:
    # Events 95.. before the snapshot (lastUpdateId 100) is fetched; it bridges at 101.
    first = write(tmp_path / f"a.{how}", b"\n".join(raw_lines(1_000, 95, 20, snapshot_after=8)) + b"\n", how)
    second = write(tmp_path / "b.data", b"\n".join(raw_lines(3_000, 115, 10)) + b"\n", how)  # continues: U = 115
    assert sniff(first) == sniff(second) == "binance-raw"
    summary = replay_files([first, second])
    (market,) = summary.markets
    assert (market.exchange, market.symbol) == ("binance", "BTC-USDT")
    # Events 101..114 after the snapshot, then all 10 of the second file: one unbroken chain.
    assert market.valid and market.resyncs == 0 and market.rejected == 0
    assert market.messages == 14 + 10
    assert summary.snapshots == 1 and summary.files == 2
    # The detector ran on receive times: the first file starts at 1_000 ms.
    assert summary.first_ms == T0 + 1_000 and summary.last_ms == T0 + 3_900


def test_a_second_file_that_does_not_continue_the_chain_resyncs(tmp_path: Path) -> None:
    first = write(tmp_path / "a", b"\n".join(raw_lines(1_000, 95, 20, snapshot_after=8)) + b"\n")
    gap = write(tmp_path / "b", b"\n".join(raw_lines(3_000, 500, 5)) + b"\n")
    summary = replay_files([first, gap])
    (market,) = summary.markets
    assert not market.valid and market.resyncs == 1  # the gap is seen, never hidden


def cryptofeed_capture() -> bytes:
    header = {"t": "header", "format": 2, "exchange": "BINANCE", "config": {"l2_book": ["BTC-USDT"]},
              "recorded": 1.0}
    rows = [header,
            {"t": "connect", "conn": "BINANCE.ws.1", "ts": 1.0,
             "addr": "wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms"},
            {"t": "connect", "conn": "BINANCE.ws.2", "ts": 1.0, "addr": "wss://stream.binance.com:9443/stream?streams=btcusdt@trade"}]
    for i in range(10):
        U = 99 + i
        rows.append({"t": "recv", "conn": "BINANCE.ws.1", "ts": 2.0 + i / 10,
                     "data": depth(U, U, 2_000 + 100 * i, [(100.0, 6)], [(101.0, 4)]).decode()})
        rows.append({"t": "recv", "conn": "BINANCE.ws.2", "ts": 2.0 + i / 10, "data": '{"stream":"x@trade"}'})
    # Written last, received at 2.15 s: replay orders by receive time.
    rows.append({"t": "http", "conn": "BINANCE.http.0", "ts": 2.15,
                 "url": "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000", "data": SNAPSHOT.decode()})
    return b"\n".join(enc(r) for r in rows) + b"\n"


def test_cryptofeed_capture_orders_by_receive_time(tmp_path: Path) -> None:
    path = write(tmp_path / "capture.jsonl.zst", cryptofeed_capture(), "zst")
    assert sniff(path) == "cryptofeed"
    summary = replay_files([path])
    (market,) = summary.markets
    assert market.valid and market.resyncs == 0
    # Events 99, 100 are before the snapshot; 101..108 bridge and apply.
    assert market.messages == 8 and summary.snapshots == 1
    assert summary.frames == 10  # only the book connection's frames


def test_tardis_book_snapshot_csv(tmp_path: Path) -> None:
    cols = ["exchange", "symbol", "timestamp", "local_timestamp"]
    for i in range(3):
        cols += [f"asks[{i}].price", f"asks[{i}].amount", f"bids[{i}].price", f"bids[{i}].amount"]
    t = 1_700_000_000_000_000
    rows = [",".join(cols),
            f"binance,ETHUSDT,{t},{t + 9},101,1,100,1,102,1,99,1,103,1,98,1",
            f"binance,ETHUSDT,{t + 1_000_000},{t + 1_000_009},101,9,100,1,102,9,99,1,,,,"]
    path = write(tmp_path / "snap.jsonl.zst", ("\n".join(rows) + "\n").encode(), "gz")  # name says nothing
    assert sniff(path) == "tardis-snapshot"
    summary = replay_files([path], depth=3)
    (market,) = summary.markets
    assert market.symbol == "ETH-USDT" and market.messages == 2
    assert market.book.asks().tolist() == [[101.0, 9.0], [102.0, 9.0]]
    assert market.book.bids().tolist() == [[100.0, 1.0], [99.0, 1.0]]
    # 18 / 2 = 9 >= 2.5 x 2 (critical) at the second row's exchange time.
    assert [(a.event_ms, a.severity) for a in summary.alerts] == [(1_700_000_001_000, "critical")]


def test_a_sentrycoin_recording_named_csv_is_still_a_recording(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path, Header(venue="binance", symbols=["BTC-USDT"], depth=5), prefix="r") as w:
        w.snapshot("binance", "BTC-USDT", 1_000, SNAPSHOT)
        w.frame("binance", 0, 1_100, depth(100, 101, 1_100, [(100.0, 4)], []))
    renamed = w.files[0].rename(tmp_path / "looks_like.csv")
    assert sniff(renamed) == "sentrycoin"
    (market,) = replay_files([renamed]).markets
    assert market.valid and market.messages == 1


# -- bad files ------------------------------------------------------------------------------------


def test_bad_files_are_input_errors_naming_the_file(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.jsonl.zst", b"")
    with pytest.raises(InputError, match=r"empty.jsonl.zst: empty file"):
        replay_files([empty])
    empty_zst = write(tmp_path / "nothing.jsonl.zst", b"", "zst")
    with pytest.raises(InputError, match=r"nothing.jsonl.zst: empty \(no records\)"):
        replay_files([empty_zst])
    text = write(tmp_path / "notes.jsonl.zst", b"just some notes\nnothing else\n")
    with pytest.raises(InputError, match=r"notes.jsonl.zst: not a format replay reads \(first line 'just some notes'\)"):
        replay_files([text])
    with pytest.raises(InputError, match="missing.gz: no such file"):
        replay_files([tmp_path / "missing.gz"])


def test_a_bad_file_fails_before_any_replay(tmp_path: Path) -> None:
    good = write(tmp_path / "a", b"\n".join(raw_lines(1_000, 95, 20, snapshot_after=8)) + b"\n")
    seen = []
    with pytest.raises(InputError):
        replay_files([good, write(tmp_path / "bad", b"?")], on_alert=seen.append,
                     observer=lambda m: seen.append(m))
    assert seen == []


def test_truncated_zst_and_gz_are_errors_or_replayed_up_to_the_cut(tmp_path: Path) -> None:
    body = b"\n".join(raw_lines(1_000, 95, 4000, snapshot_after=8)) + b"\n"
    for how in ("zst", "gz"):
        whole = write(tmp_path / f"whole.{how}", body, how)
        data = whole.read_bytes()
        cut = write(tmp_path / f"cut.{how}", b"")
        cut.write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(TruncatedInput, match=rf"cut.{how}: truncated .* pass --allow-truncated"):
            replay_files([cut])
        summary = replay_files([cut], allow_truncated=True)
        (report,) = summary.truncated
        (market,) = summary.markets
        full = replay_files([whole]).markets[0].messages
        assert 0 < market.messages < full and market.valid
        assert report.path == cut and report.last_ms == summary.last_ms
        assert "truncated" in report.describe() and "replayed" in report.describe()


def test_a_torn_last_line_is_a_cut(tmp_path: Path) -> None:
    body = b"\n".join(raw_lines(1_000, 95, 20, snapshot_after=8))
    path = write(tmp_path / "torn", body[:-5])  # no newline, JSON cut in the middle
    with pytest.raises(TruncatedInput, match="the last line is incomplete"):
        replay_files([path])
    whole = write(tmp_path / "whole", body)  # no final newline, but the line is whole: fine
    assert replay_files([whole]).markets[0].messages == 14


# -- the command line -------------------------------------------------------------------------------


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sentrycoin.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


def test_replay_cli_exit_codes(tmp_path: Path) -> None:
    bad = write(tmp_path / "plain.zst", b"hello\n")
    proc = cli("replay", str(bad))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("sentrycoin: ") and "plain.zst" in line
    data = zstandard.ZstdCompressor().compress(b"\n".join(raw_lines(1_000, 95, 4000, snapshot_after=8)) + b"\n")
    cut = tmp_path / "cut.zst"
    cut.write_bytes(data[: len(data) // 2])
    proc = cli("replay", str(cut))
    assert proc.returncode == 2 and "--allow-truncated" in proc.stderr
    proc = cli("replay", "--allow-truncated", str(cut))
    assert proc.returncode == 0, proc.stderr
    assert "cut.zst: truncated" in proc.stderr and "replayed" in proc.stderr
    assert "binance" in proc.stdout and "BTC-USDT" in proc.stdout
    # A header and nothing else: nothing to replay is an error too.
    with RecordingWriter(tmp_path, Header(venue="binance", symbols=["BTC-USDT"], depth=5), prefix="h") as w:
        pass
    proc = cli("replay", str(w.files[0]))
    assert proc.returncode == 2 and "no book messages" in proc.stderr


def test_record_without_network_fails(tmp_path: Path) -> None:
    # Port 9 on 127.0.0.1: nothing listens there; the recorder never gets a frame.
    env = {"BINANCE_WS_URL": "ws://127.0.0.1:9/stream", "BINANCE_REST_URL": "http://127.0.0.1:9/api/v3/depth"}
    proc = cli("record", "--exchange", "binance", "--symbols", "BTC-USDT", "--out", str(tmp_path / "rec"),
               "--duration-s", "1.5", env=env)
    assert proc.returncode == 1
    assert "no market data recorded" in proc.stderr and "binance" in proc.stderr


def test_run_record_records_the_simulated_market(tmp_path: Path) -> None:
    import signal
    import time

    env = dict(os.environ, SENTRY_DB=str(tmp_path / "a.db"), LOG_LEVEL="INFO")
    for key in ("EXCHANGE", "SYMBOLS", "SYMBOL", "REDIS_URL"):
        env.pop(key, None)
    proc = subprocess.Popen([sys.executable, "-m", "sentrycoin.cli", "run", "--no-http", "--speed", "20",
                             "--record", str(tmp_path / "rec")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    files = sorted((tmp_path / "rec").glob("*.jsonl.zst"))
    assert files
    summary = replay_files(files)
    assert summary.messages > 0 and summary.snapshots >= 1
    assert all(m.valid for m in summary.markets)
    from sentrycoin.research.recording import read_records

    header = next(iter(read_records(files[0])))
    assert isinstance(header, Header) and header.source == "simulated"


def test_backtest_of_a_truncated_file_says_how_far_it_got(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from sentrycoin.research.backtest import backtest_recorded, print_report
    from sentrycoin.research.labels import parse_drop_rule

    data = zstandard.ZstdCompressor().compress(b"\n".join(raw_lines(1_000, 95, 4000, snapshot_after=8)) + b"\n")
    cut = tmp_path / "cut.zst"
    cut.write_bytes(data[: len(data) // 2])
    rule = [parse_drop_rule("0.01%:10s")]
    with pytest.raises(TruncatedInput):
        backtest_recorded([cut], drop_rules=rule, thresholds=None)
    result = backtest_recorded([cut], drop_rules=rule, thresholds=None, allow_truncated=True)
    (line,) = result.truncated
    assert line.startswith(f"{cut}: truncated") and "replayed" in line
    buf = io.StringIO()
    print_report(result, Console(file=buf, width=200))
    assert "cut.zst: truncated" in buf.getvalue()


@pytest.mark.parametrize("how", ["zst", "gz"])
def test_every_cut_point_is_an_error_or_a_prefix(tmp_path: Path, how: str) -> None:
    """Cut a compressed capture anywhere: never a crash, never more than the whole file, and the
    further the cut, the more is replayed."""
    body = b"\n".join(raw_lines(1_000, 95, 3000, snapshot_after=8)) + b"\n"
    data = write(tmp_path / f"whole.{how}", body, how).read_bytes()
    full = replay_files([tmp_path / f"whole.{how}"]).markets[0].messages
    seen = []
    for i, size in enumerate(range(1, len(data), max(1, len(data) // 23))):
        cut = tmp_path / f"cut{i}.{how}"
        cut.write_bytes(data[:size])
        with pytest.raises(TruncatedInput):
            replay_files([cut])
        try:
            summary = replay_files([cut], allow_truncated=True)
        except TruncatedInput as exc:  # cut before the first whole line: nothing to replay
            assert "before its first line" in str(exc)
            seen.append(0)
            continue
        assert len(summary.truncated) == 1
        seen.append(sum(m.messages for m in summary.markets))
    assert seen == sorted(seen) and seen[-1] <= full and seen[-1] > 0
