"""Real Binance spot traffic through the real handler (`on_frame` / `on_snapshot`).

* BINANCE.jsonl.zst (cryptofeed): four symbols on one combined connection,
  REST snapshots answered in recorded-time order: every book must sync and
  stay in sync (no resyncs, nothing rejected), and end equal to a plain dict
  book rebuilt from the same snapshot and events.
* BINANCE_SPOT_{BTC,ETH}USDT_20240808.gz (hftbacktest): the snapshot arrives
  after the stream started (the bridging case).  At every depth event whose
  final id equals a bookTicker's id, the book's best bid/ask price and size
  must equal the venue's own ticker: 564 such points for BTCUSDT, 577 for
  ETHUSDT, all equal.
"""

from __future__ import annotations

import json

import pytest

from sentrycoin.feeds.base import FetchSnapshot
from sentrycoin.feeds.binance import BinanceSpotHandler
from tests.feeds.binance_bybit_okx_frames import make_markets, read_gz_lines, read_jsonl_zst
from tests.realdata import realdata_path

WS = "wss://stream.binance.com:9443/stream"
REST = "https://api.binance.com/api/v3/depth"
SYMBOLS = {"NKNUSDT": "NKN-USDT", "BLZETH": "BLZ-ETH", "LRCBTC": "LRC-BTC", "RUNEEUR": "RUNE-EUR"}


def test_cryptofeed_recording_syncs_all_four_books():
    records = read_jsonl_zst(realdata_path("BINANCE.jsonl.zst"))
    markets = make_markets("binance", list(SYMBOLS.values()), capacity=5000)
    by_symbol = {m.symbol: m for m in markets}
    h = BinanceSpotHandler(markets, WS, REST)
    (spec,) = h.connections()
    h.on_connected(spec.conn_id)
    h.take_actions()  # the SUBSCRIBE (the recording named its streams in the URL)
    h.on_frame(spec.conn_id, b'{"result":null,"id":1}', 0)  # streams live: snapshots are asked for
    requested = {a.symbol: a.url for a in h.take_actions() if isinstance(a, FetchSnapshot)}
    assert set(requested) == set(SYMBOLS.values())

    timeline = []
    snapshots = {}
    for rec in records:
        if rec["t"] == "recv":
            timeline.append((rec["ts"], "frame", rec["data"]))
        elif rec["t"] == "http" and "/depth" in rec["url"]:
            native = rec["url"].split("symbol=")[1].split("&")[0]
            symbol = SYMBOLS[native]
            assert requested[symbol] == REST + f"?symbol={native}&limit=1000"
            snapshots[symbol] = json.loads(rec["data"])
            timeline.append((rec["ts"], "snapshot", (symbol, rec["data"])))
    timeline.sort(key=lambda item: item[0])

    for ts, kind, payload in timeline:
        if kind == "frame":
            h.on_frame(spec.conn_id, payload.encode(), int(ts * 1000))
        else:
            h.on_snapshot(payload[0], payload[1].encode(), int(ts * 1000))
        assert h.take_actions() == []  # no re-fetch, no resync, ever

    assert h.counters.decode_errors == 0
    for m in markets:
        assert m.valid, m.invalid_reason
        assert m.resyncs == 0 and m.rejected == 0
        assert m.messages > 0

    # Independent oracle: replay snapshot + later events into plain dicts, and
    # check the recording's own chain so this test knows the data is clean.
    refs = {s: ({float(p): float(q) for p, q in snap["bids"]}, {float(p): float(q) for p, q in snap["asks"]})
            for s, snap in snapshots.items()}
    last = {s: snap["lastUpdateId"] for s, snap in snapshots.items()}
    bridged = dict.fromkeys(refs, False)
    applied = dict.fromkeys(refs, 0)
    for rec in records:
        if rec["t"] != "recv" or "@depth" not in rec["data"][:40]:
            continue
        ev = json.loads(rec["data"])["data"]
        s = SYMBOLS[ev["s"]]
        if ev["u"] <= snapshots[s]["lastUpdateId"]:
            continue
        if not bridged[s]:
            assert ev["U"] <= last[s] + 1 <= ev["u"]
            bridged[s] = True
        else:
            assert ev["U"] == last[s] + 1
        last[s] = ev["u"]
        applied[s] += 1
        for side, key in ((refs[s][0], "b"), (refs[s][1], "a")):
            for p, q in ev[key]:
                if float(q) == 0.0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
    for s, m in by_symbol.items():
        assert m.messages == applied[s]
        bids, asks = refs[s]
        assert {float(p): float(q) for p, q in m.book.bids()} == bids
        assert {float(p): float(q) for p, q in m.book.asks()} == asks


@pytest.mark.parametrize("name,symbol,expected_points", [
    ("BINANCE_SPOT_BTCUSDT_20240808.gz", "BTC-USDT", 564),
    ("BINANCE_SPOT_ETHUSDT_20240808.gz", "ETH-USDT", 577),
])
def test_hftbacktest_recording_matches_book_ticker(name, symbol, expected_points):
    frames = list(read_gz_lines(realdata_path(name)))
    (market,) = make_markets("binance", [symbol], capacity=20000)
    h = BinanceSpotHandler([market], WS, REST)
    h.on_connected(0)
    h.take_actions()  # the SUBSCRIBE (the recording named its stream in the URL)
    h.on_frame(0, b'{"result":null,"id":1}', 0)  # stream live: the snapshot is asked for
    pending = [a for a in h.take_actions() if isinstance(a, FetchSnapshot)]
    assert len(pending) == 1

    tickers: dict[int, dict] = {}
    for _, body in frames:
        if b"@bookTicker" in body[:48]:
            data = json.loads(body)["data"]
            tickers[data["u"]] = data

    checked = mismatches = depth_events = 0
    synced_at = None
    for ns, body in frames:
        recv_ms = ns // 1_000_000
        if not body.startswith(b'{"stream"'):
            assert pending, "snapshot line without a pending request"
            assert not market.valid
            h.on_snapshot(symbol, body, recv_ms)  # arrives after the stream started
            pending = []
        else:
            h.on_frame(0, body, recv_ms)
        assert h.take_actions() == []
        if b"@depth" not in body[:48]:
            continue
        depth_events += 1
        if market.valid and synced_at is None:
            synced_at = depth_events
        u = json.loads(body)["data"]["u"]
        ticker = tickers.get(u)
        if ticker is None or not market.valid:
            continue
        checked += 1
        (bid_px, bid_qty), = market.book.bids(1).tolist()
        (ask_px, ask_qty), = market.book.asks(1).tolist()
        if (bid_px, bid_qty, ask_px, ask_qty) != (float(ticker["b"]), float(ticker["B"]),
                                                  float(ticker["a"]), float(ticker["A"])):
            mismatches += 1

    assert synced_at is not None
    assert market.valid and market.resyncs == 0 and market.rejected == 0
    assert h.counters.decode_errors == 0
    assert mismatches == 0
    assert checked == expected_points
