"""Resident memory of the whole monitor for 1 / 100 / 1,000 markets per venue.

Each cell runs in a fresh subprocess (RSS is a per-process number, and one
cell's heap must not hold another's): it builds a live `Monitor` for N markets
of one venue exactly as `sentrycoin run` does (settings from EXCHANGE /
SYMBOLS, markets, feed handlers, the metrics registry), opens the handlers'
connections, and loads every book through the venue's own handler from the
real 1,000-level Binance REST snapshot of BTCUSDT
(../shared/realdata/BINANCE_SPOT_BTCUSDT_20240808.gz, the line without
"stream"): Binance gets the body itself; Bybit, OKX, Kraken and Coinbase get a
snapshot frame in their own format with the same levels cut to the depth they
publish (Bybit orderbook.50, OKX books 400, Kraken book 100 with a valid
checksum, Coinbase level2 the 1,000).  No socket is opened.  The cell prints
its VmRSS (after gc) and the bytes the books allocated.

    python benches/bench_memory.py                    # table for this checkout
    python benches/bench_memory.py --json             # same, as JSON
    python benches/bench_memory.py --compare /work/main --counts 1,100,1000
        # both checkouts, cells interleaved, each with its own .venv python

pytest-benchmark measures time, not memory, so the table is a script; `--json`
gives the machine-readable form.  tests/feeds/test_book_capacity.py and
tests/core/test_book_growth.py guard the book sizing itself.

The price of growing, as a pytest-benchmark pair in the same run: the real
BTCUSDT frames through `BinanceSpotHandler.on_frame`, each round from the
snapshot, with the venue-sized book (1,250 slots per side, grows as the diffs
add levels) against the rival it replaced, a book preallocated at 5,000:

    .venv/bin/python -m pytest benches/bench_memory.py --benchmark-only
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("SENTRY_REALDATA", REPO.parent / "shared" / "realdata"))
SNAPSHOT_FILE = "BINANCE_SPOT_BTCUSDT_20240808.gz"
VENUES = ("binance", "bybit", "okx", "kraken", "coinbase")
COUNTS = (1, 100, 1000)
DEPTH = 50  # ORDER_BOOK_DEPTH's default


# -- the cell (runs in its own process) -------------------------------------------------

def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def real_snapshot() -> tuple[bytes, list[list[str]], list[list[str]]]:
    """The REST body and its (price, qty) text levels, best first."""
    with gzip.open(REALDATA / SNAPSHOT_FILE, "rb") as fh:
        for line in fh:
            _, _, frame = line.partition(b" ")
            if not frame.startswith(b'{"stream"'):
                body = frame.strip()
                snap = json.loads(body)
                return body, snap["bids"], snap["asks"]
    raise RuntimeError(f"{SNAPSHOT_FILE}: no REST snapshot line")


def symbols_for(n: int) -> list[str]:
    return [f"T{i}-USDT" for i in range(n)]


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def load_books(venue: str, handler, bids: list[list[str]], asks: list[list[str]], body: bytes) -> None:  # noqa: ANN001
    """Open every connection and feed each symbol one snapshot in `venue`'s own form."""
    from sentrycoin.feeds.symbols import to_venue

    ts = int(time.time() * 1000)  # now: no clock-skew warnings
    for spec in handler.connections():
        handler.on_connected(spec.conn_id)
        handler.take_actions()
        if venue == "binance":
            handler.on_frame(spec.conn_id, b'{"result":null,"id":1}', ts)  # subscribed: snapshots asked
            handler.take_actions()
            for symbol in spec.symbols:
                handler.on_snapshot(symbol, body, ts)
        elif venue == "bybit":
            depth = handler.book_depth
            for symbol in spec.symbols:
                native = to_venue(venue, symbol)
                handler.on_frame(spec.conn_id, dumps({
                    "topic": f"orderbook.{depth}.{native}", "type": "snapshot", "ts": ts,
                    "data": {"s": native, "b": bids[:depth], "a": asks[:depth], "u": 1000, "seq": 7000},
                    "cts": ts}), ts)
        elif venue == "okx":
            for symbol in spec.symbols:
                side = lambda levels: [[p, q, "0", "1"] for p, q in levels[:400]]  # noqa: E731
                handler.on_frame(spec.conn_id, dumps({
                    "arg": {"channel": "books", "instId": to_venue(venue, symbol)}, "action": "snapshot",
                    "data": [{"asks": side(asks), "bids": side(bids), "ts": str(ts), "checksum": 0,
                              "seqId": 100, "prevSeqId": -1}]}), ts)
        elif venue == "kraken":
            from sentrycoin.feeds.checksum import fixed_text, kraken_checksum

            depth = handler.book_depth
            names = [to_venue(venue, s) for s in spec.symbols]
            handler.on_frame(spec.conn_id, dumps({
                "channel": "instrument", "type": "snapshot",
                "data": {"pairs": [{"symbol": n, "price_precision": 2, "qty_precision": 8} for n in names]}}), ts)
            texts = [[(fixed_text(Decimal(p), 2), fixed_text(Decimal(q), 8)) for p, q in levels[:depth]]
                     for levels in (bids, asks)]
            checksum = kraken_checksum(texts[1], texts[0])
            # JSON numbers, as v2 sends them (the handler decodes them as Decimal).
            raw = [",".join(f'{{"price":{px},"qty":{qty}}}' for px, qty in side) for side in texts]
            for name in names:
                handler.on_frame(spec.conn_id, (
                    f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"{name}","bids":[{raw[0]}],'
                    f'"asks":[{raw[1]}],"checksum":{checksum},"timestamp":"2024-08-08T00:00:00.000000Z"}}]}}'
                ).encode(), ts)
        elif venue == "coinbase":
            seq = 0
            for symbol in spec.symbols:
                updates = [{"side": side, "event_time": "2024-08-08T00:00:00Z", "price_level": p, "new_quantity": q}
                           for side, levels in (("bid", bids), ("offer", asks)) for p, q in levels]
                handler.on_frame(spec.conn_id, dumps({
                    "channel": "l2_data", "timestamp": "2024-08-08T00:00:00Z", "sequence_num": seq,
                    "events": [{"type": "snapshot", "product_id": to_venue(venue, symbol), "updates": updates}]}), ts)
                seq += 1
        handler.take_actions()


def run_cell(venue: str, count: int) -> dict:
    body, bids, asks = real_snapshot()
    import numpy  # noqa: F401  (loaded by every run; imported before the baseline)

    from sentrycoin.config import load_settings
    from sentrycoin.monitor import Monitor
    from sentrycoin.server.metrics import build_registry

    with tempfile.TemporaryDirectory() as tmp:
        env = {"EXCHANGE": venue, "SYMBOLS": ",".join(symbols_for(count)), "SENTRY_DB": str(Path(tmp) / "a.db"),
               "ORDER_BOOK_DEPTH": str(DEPTH)}
        gc.collect()
        before_kb = rss_kb()
        settings = load_settings(env=env)
        monitor = Monitor(settings, env=env, serve_http=False, console=False)
        registry = build_registry(monitor)
        (handler,) = monitor.handlers
        load_books(venue, handler, bids, asks, body)
        held = [m.book.bid_levels + m.book.ask_levels for m in monitor.markets]
        assert all(held), f"{venue}: a book stayed empty"
        # In sync after their snapshot (Binance waits for the diff that bridges it).
        valid = sum(m.valid for m in monitor.markets)
        book_bytes = sum(getattr(m.book, "allocated_bytes", 32 * m.book.capacity) for m in monitor.markets)
        gc.collect()
        after_kb = rss_kb()
        del registry
    return {"venue": venue, "markets": count, "rss_kb": after_kb, "build_kb": after_kb - before_kb,
            "levels_per_book": held[0], "book_bytes": book_bytes, "valid": valid}


# -- the driver -----------------------------------------------------------------------

def python_of(checkout: Path) -> str:
    venv = checkout / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def cell(checkout: Path, venue: str, count: int) -> dict:
    # -B: never write bytecode into a checkout we only read.
    env = dict(os.environ, PYTHONPATH=str(checkout), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([python_of(checkout), "-B", __file__, "--cell", venue, str(count)], cwd=checkout,
                         env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{checkout} {venue} x{count}: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    base = {(r["checkout"], r["venue"]): r["rss_kb"] for r in rows if r["markets"] == 1}
    lines = ["| checkout | venue | markets | levels/book | in sync | RSS MB | book storage MB | KB/market over 1 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        per = ""
        if r["markets"] > 1 and (r["checkout"], r["venue"]) in base:
            per = f"{(r['rss_kb'] - base[(r['checkout'], r['venue'])]) / (r['markets'] - 1):.1f}"
        lines.append(f"| {r['checkout']} | {r['venue']} | {r['markets']:,} | {r['levels_per_book']:,} | "
                     f"{r['valid']:,} | "
                     f"{r['rss_kb'] / 1024:.1f} | {r['book_bytes'] / 2**20:.1f} | {per} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", nargs=2, metavar=("VENUE", "COUNT"), help=argparse.SUPPRESS)
    ap.add_argument("--venues", default=",".join(VENUES))
    ap.add_argument("--counts", default=",".join(map(str, COUNTS)))
    ap.add_argument("--compare", metavar="CHECKOUT", help="also measure this checkout (its .venv), interleaved")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.cell:
        print(json.dumps(run_cell(args.cell[0], int(args.cell[1]))))
        return
    if not (REALDATA / SNAPSHOT_FILE).is_file():
        sys.exit(f"bench_memory: {REALDATA / SNAPSHOT_FILE} not found (set SENTRY_REALDATA to its folder)")
    checkouts = [REPO] + ([Path(args.compare).resolve()] if args.compare else [])
    rows = []
    for venue in args.venues.split(","):
        for count in map(int, args.counts.split(",")):
            for checkout in checkouts:
                row = cell(checkout, venue, count)
                row["checkout"] = checkout.name
                rows.append(row)
                print(f"{checkout.name} {venue} x{count}: {row['rss_kb'] / 1024:.1f} MB", file=sys.stderr)
    rows.sort(key=lambda r: (r["venue"], r["checkout"], r["markets"]))
    load = os.getloadavg()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": [round(x, 2) for x in load],
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
    else:
        print(f"{meta['date']}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}: {meta['command']}")
        print(table(rows))


# -- pytest-benchmark: what growth costs the hot path ------------------------------------

def _replay_round(capacity: object, frames: list[bytes], snapshot: bytes) -> None:
    from benches.feed_frames import REST, WS
    from sentrycoin.feeds.binance import BinanceSpotHandler
    from sentrycoin.market import Market

    market = Market("binance", "BTC-USDT", depth=DEPTH, capacity=capacity, source="replay")  # type: ignore[arg-type]
    handler = BinanceSpotHandler([market], WS, REST)
    handler.on_connected(0)
    handler.take_actions()
    handler.on_snapshot("BTC-USDT", snapshot, 0)
    on_frame = handler.on_frame
    for frame in frames:
        on_frame(0, frame, 0)
    assert market.valid and not market.book.truncated


def _bench_growth(benchmark, capacity: object) -> None:  # noqa: ANN001
    from benches.feed_frames import chained_frames

    frames, snapshot = chained_frames("recorded")
    benchmark.extra_info["frames_per_round"] = len(frames)
    benchmark.pedantic(_replay_round, args=(capacity, frames, snapshot), rounds=15, iterations=1, warmup_rounds=1)
    benchmark.extra_info["per_message_mean_ns"] = benchmark.stats.stats.mean / len(frames) * 1e9


def test_recorded_frames_venue_sized_growing_book(benchmark) -> None:  # noqa: ANN001
    _bench_growth(benchmark, None)  # FeedHandler.book_capacity: 1,250 slots, grows


def test_recorded_frames_preallocated_5000_book(benchmark) -> None:  # noqa: ANN001
    _bench_growth(benchmark, 5000)  # the rival: every book 5,000 slots up front


if __name__ == "__main__":
    main()
