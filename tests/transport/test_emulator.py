"""The venue emulators, checked with raw clients (no feed handler involved).

A tiny dict-based reference client per venue rebuilds the book from the wire
exactly as the venue docs describe, and must land on the emulator's true book.
This keeps the emulator honest on its own, so end-to-end failures point at handlers.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from itertools import pairwise

import aiohttp
import pytest

from sentrycoin.emulator import ASK, BID, Fault, create_emulator
from sentrycoin.emulator.okx import okx_checksum
from sentrycoin.emulator.truebook import TrueBook, fixed_text
from tests.transport.conftest import wait_for

pytestmark = pytest.mark.timeout(30)


def truth(emu, symbol: str, n: int = 10):  # noqa: ANN001
    book: TrueBook = emu.books[symbol]
    return ([(book.price_text(p), book.qty_text(q)) for p, q in book.top(BID, n)],
            [(book.price_text(p), book.qty_text(q)) for p, q in book.top(ASK, n)])


def top(bids: dict, asks: dict, n: int = 10):  # noqa: ANN001
    """Best n of a reference book keyed by price string; compared as text, as the venue sent it."""
    b = sorted(bids.items(), key=lambda kv: -float(kv[0]))[:n]
    a = sorted(asks.items(), key=lambda kv: float(kv[0]))[:n]
    return b, a


async def recv_json(ws, timeout_s: float = 3.0):  # noqa: ANN001, ANN201
    msg = await asyncio.wait_for(ws.receive(), timeout_s)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


def test_fixed_text_is_exact():
    assert fixed_text(5, 2) == "0.05"
    assert fixed_text(123456, 2) == "1234.56"
    assert fixed_text(7, 0) == "7"
    assert fixed_text(1, 8) == "0.00000001"


def test_true_book_never_crosses_and_remembers_its_tops():
    import random
    book = TrueBook(random.Random(3))
    keys = []
    for _ in range(3000):
        book.step()
        assert max(book.bids) < min(book.asks)
        assert book.min_levels <= len(book.bids) <= book.max_levels + 1
        keys.append(book.top_key())
    assert book.seen(keys[-1]) and book.seen(keys[-3000 + 10])
    assert not book.seen(((1.0, 1.0),), )  # type: ignore[arg-type]


# -- Binance ----------------------------------------------------------------------

async def test_binance_stream_and_rest_bridge_to_the_truth():
    async with create_emulator("binance", ["BTC-USDT"], seed=2, tick_s=0.005) as emu, \
            aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{emu.ws_url}?streams=btcusdt@depth@100ms")
        buffered = [await recv_json(ws) for _ in range(5)]
        async with http.get(f"{emu.rest_url}?symbol=BTCUSDT&limit=1000") as resp:
            snap = await resp.json()
        bids = {p: q for p, q in snap["bids"]}
        asks = {p: q for p, q in snap["asks"]}
        last = snap["lastUpdateId"]
        assert buffered[0]["data"]["U"] <= last + 1
        prev_u = None
        emu.pause()
        await asyncio.sleep(0.05)
        while True:
            try:
                msg = await recv_json(ws, 0.2)
            except TimeoutError:
                break
            buffered.append(msg)
        for msg in buffered:
            assert msg["stream"] == "btcusdt@depth@100ms"
            ev = msg["data"]
            if prev_u is not None:
                assert ev["U"] == prev_u + 1  # spot ids are contiguous
            prev_u = ev["u"]
            if ev["u"] <= last:
                continue
            for side, levels in ((bids, ev["b"]), (asks, ev["a"])):
                for p, q in levels:
                    if float(q) == 0:
                        side.pop(p, None)
                    else:
                        side[p] = q
        assert top(bids, asks) == truth(emu, "BTC-USDT")
        await ws.close()


async def test_binance_rest_validation_and_stale_snapshot():
    async with create_emulator("binance-futures", ["BTC-USDT"], seed=2) as emu, aiohttp.ClientSession() as http:
        async with http.get(f"{emu.rest_url}?symbol=BTCUSDT&limit=7") as resp:
            assert resp.status == 400  # futures takes 5/10/20/50/100/500/1000 only
        async with http.get(f"{emu.rest_url}?symbol=NOPE&limit=5") as resp:
            assert resp.status == 400 and (await resp.json())["code"] == -1121
        async with http.get(f"{emu.rest_url}?symbol=BTCUSDT&limit=5") as resp:
            fresh = await resp.json()
        assert len(fresh["bids"]) == 5 and {"E", "T", "lastUpdateId"} <= set(fresh)
        emu.inject(Fault.STALE_SNAPSHOT, symbol="BTC-USDT")
        async with http.get(f"{emu.rest_url}?symbol=BTCUSDT&limit=5") as resp:
            stale = await resp.json()
        assert stale["lastUpdateId"] < fresh["lastUpdateId"]
        assert emu.pending_faults() == 0


async def test_binance_futures_chain_on_pu_and_subscribe_method_and_rate_limit():
    async with create_emulator("binance-futures", ["BTC-USDT"], seed=2, tick_s=0.005) as emu, \
            aiohttp.ClientSession() as http:
        ws = await http.ws_connect(emu.ws_url)
        await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms"],"id":7}')
        assert await recv_json(ws) == {"result": None, "id": 7}
        events = [(await recv_json(ws))["data"] for _ in range(20)]
        for a, b in pairwise(events):
            assert b["pu"] == a["u"] and b["U"] > a["u"]
        for i in range(6):  # more than 5 messages in a second: Binance disconnects
            await ws.send_str(f'{{"method":"LIST_SUBSCRIPTIONS","id":{i}}}')
        await wait_for(lambda: emu.rate_limit_closes == 1, what="rate-limit close")
        await ws.close()


# -- Bybit --------------------------------------------------------------------------

@pytest.mark.parametrize("category", ["spot", "linear"])
async def test_bybit_acks_refuses_double_subscribe_and_chains_u(category: str):
    venue = "bybit" if category == "spot" else "bybit-linear"
    async with create_emulator(venue, ["BTC-USDT"], seed=2, tick_s=0.005) as emu, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(emu.ws_url)
        await ws.send_str('{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}')
        ack = await recv_json(ws)
        assert ack["success"] is True and ack["op"] == "subscribe"
        snap = await recv_json(ws)
        assert snap["type"] == "snapshot" and snap["topic"] == "orderbook.50.BTCUSDT"
        await ws.send_str('{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}')
        await ws.send_str('{"op":"ping","req_id":"p1"}')
        emu.inject(Fault.GAP)
        seen_error = seen_pong = False
        prev_u = snap["data"]["u"]
        jumps = 0
        for _ in range(40):
            msg = await recv_json(ws)
            if msg.get("op") == "subscribe":
                assert msg["success"] is False and "already subscribed" in msg["ret_msg"]
                seen_error = True
            elif msg.get("op") in ("ping", "pong"):
                seen_pong = True
                assert (msg["ret_msg"] == "pong") if category == "spot" else (msg["op"] == "pong")
            elif msg.get("type") == "delta":
                if msg["data"]["u"] != prev_u + 1:
                    jumps += 1
                prev_u = msg["data"]["u"]
        assert seen_error and seen_pong
        assert jumps == 2  # the gap, then the chain resumes from the true id
        await ws.close()


# -- OKX ----------------------------------------------------------------------------

async def test_okx_ping_subscribe_chain_and_checksum():
    async with create_emulator("okx", ["BTC-USDT"], seed=2, tick_s=0.005, empty_every=3) as emu, \
            aiohttp.ClientSession() as http:
        ws = await http.ws_connect(emu.ws_url)
        await ws.send_str("ping")
        assert (await ws.receive()).data == "pong"
        await ws.send_str('{"op":"subscribe","args":[{"channel":"books","instId":"NOPE-USDT"}]}')
        assert (await recv_json(ws))["event"] == "error"
        await ws.send_str('{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}')
        assert (await recv_json(ws))["event"] == "subscribe"
        bids: dict[str, str] = {}
        asks: dict[str, str] = {}
        prev_seq = None
        empties = 0
        for _ in range(60):
            msg = await recv_json(ws)
            d = msg["data"][0]
            if msg["action"] == "snapshot":
                assert d["prevSeqId"] == -1
            else:
                assert d["prevSeqId"] == prev_seq
                if not d["bids"] and not d["asks"]:
                    assert d["seqId"] == d["prevSeqId"]
                    empties += 1
            prev_seq = d["seqId"]
            for side, levels in ((bids, d["bids"]), (asks, d["asks"])):
                for px, sz, _, _ in levels:
                    if sz == "0":
                        side.pop(px, None)
                    else:
                        side[px] = sz
            b, a = top(bids, asks, 25)
            assert okx_checksum(b, a) == d["checksum"]
        assert empties >= 1
        await ws.close()


def test_okx_checksum_is_signed_and_interleaves():
    crc = zlib.crc32(b"3366.1:7:3366.8:9:3366:6")
    expected = crc - (1 << 32) if crc >= 1 << 31 else crc
    assert okx_checksum([("3366.1", "7"), ("3366", "6")], [("3366.8", "9")]) == expected


# -- Kraken -------------------------------------------------------------------------

async def test_kraken_status_instrument_truncated_view_and_checksum():
    async with create_emulator("kraken", ["BTC-USD"], seed=2, tick_s=0.005) as emu, \
            aiohttp.ClientSession() as http:
        ws = await http.ws_connect(emu.ws_url)
        assert (await recv_json(ws))["channel"] == "status"
        await ws.send_str('{"method":"subscribe","params":{"channel":"instrument"}}')
        assert (await recv_json(ws))["success"] is True
        inst = await recv_json(ws)
        pair = inst["data"]["pairs"][0]
        pp, qp = pair["price_precision"], pair["qty_precision"]
        await ws.send_str('{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10}}')
        assert (await recv_json(ws))["result"]["depth"] == 10
        from decimal import Decimal
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}

        def fmt(x: Decimal, places: int) -> str:
            return f"{x:.{places}f}".replace(".", "").lstrip("0")

        updates = 0
        while updates < 50:
            msg = await asyncio.wait_for(ws.receive(), 3)
            data = json.loads(msg.data, parse_float=Decimal, parse_int=Decimal)
            if data.get("channel") != "book":
                continue
            d = data["data"][0]
            if data["type"] == "update":
                updates += 1
            for side, levels in ((bids, d["bids"]), (asks, d["asks"])):
                for lvl in levels:
                    if lvl["qty"] == 0:
                        side.pop(lvl["price"], None)
                    else:
                        side[lvl["price"]] = lvl["qty"]
            for side, rev in ((bids, True), (asks, False)):  # truncate to the subscribed depth
                for p in sorted(side, reverse=not rev)[: max(0, len(side) - 10)]:
                    del side[p]
            text = "".join(fmt(p, pp) + fmt(asks[p], qp) for p in sorted(asks)[:10])
            text += "".join(fmt(p, pp) + fmt(bids[p], qp) for p in sorted(bids, reverse=True)[:10])
            assert zlib.crc32(text.encode()) == int(d["checksum"])
        await ws.send_str('{"method":"ping","req_id":5}')
        while True:
            msg = await recv_json(ws)
            if msg.get("method") == "pong":
                assert msg["req_id"] == 5
                break
        await ws.close()


# -- Coinbase -----------------------------------------------------------------------

async def test_coinbase_sequence_spans_channels_and_idle_connections_close():
    async with create_emulator("coinbase", ["BTC-USD"], seed=2, tick_s=0.01, heartbeat_s=0.01,
                               idle_close_s=0.2) as emu, aiohttp.ClientSession() as http:
        idle = await http.ws_connect(emu.ws_url)
        msg = await asyncio.wait_for(idle.receive(), 3)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

        ws = await http.ws_connect(emu.ws_url)
        await ws.send_str('{"type":"subscribe","product_ids":["BTC-USD"],"channel":"heartbeats"}')
        await ws.send_str('{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}')
        seqs, channels = [], set()
        bids: dict[str, str] = {}
        asks: dict[str, str] = {}
        for _ in range(80):
            msg = await recv_json(ws)
            seqs.append(msg["sequence_num"])
            channels.add(msg["channel"])
            if msg["channel"] == "l2_data":
                for ev in msg["events"]:
                    for u in ev["updates"]:
                        side = bids if u["side"] == "bid" else asks
                        if float(u["new_quantity"]) == 0:
                            side.pop(u["price_level"], None)
                        else:
                            side[u["price_level"]] = u["new_quantity"]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert {"subscriptions", "heartbeats", "l2_data"} <= channels
        emu.pause()
        while True:
            try:
                msg = await recv_json(ws, 0.2)
            except TimeoutError:
                break
            if msg["channel"] == "heartbeats":
                break
            for ev in msg["events"]:
                for u in ev.get("updates", []):
                    side = bids if u["side"] == "bid" else asks
                    if float(u["new_quantity"]) == 0:
                        side.pop(u["price_level"], None)
                    else:
                        side[u["price_level"]] = u["new_quantity"]
        assert top(bids, asks) == truth(emu, "BTC-USD")
        await ws.close()


async def test_inject_rejects_faults_a_venue_cannot_express():
    emu = create_emulator("coinbase", ["BTC-USD"])
    with pytest.raises(ValueError):
        emu.inject(Fault.BAD_CHECKSUM)
    with pytest.raises(ValueError):
        create_emulator("nowhere", ["BTC-USD"])


def test_kraken_checksum_construction_matches_real_kraken_traffic():
    """The emulator's checksum recipe, checked against every checksum in a real Kraken (v1) recording."""
    import zstandard

    from sentrycoin.emulator.kraken import checksum_of_text
    from tests.realdata import realdata_path

    path = realdata_path("KRAKEN.jsonl.zst")
    books: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    checked = 0
    with open(path, "rb") as fh:
        text = zstandard.ZstdDecompressor().stream_reader(fh).read().decode()
    for line in text.splitlines():
        rec = json.loads(line)
        if rec.get("t") != "recv":
            continue
        msg = json.loads(rec["data"])
        if not isinstance(msg, list) or not str(msg[-2]).startswith("book-"):
            continue
        pair, depth = msg[-1], int(msg[-2].split("-")[1])
        checksum = None
        for part in msg[1:-2]:
            if "as" in part or "bs" in part:
                books[pair] = ({p: q for p, q, *_ in part.get("bs", [])}, {p: q for p, q, *_ in part.get("as", [])})
                continue
            bids, asks = books[pair]
            for key, side in (("b", bids), ("a", asks)):
                for p, q, *_ in part.get(key, []):
                    if float(q) == 0:
                        side.pop(p, None)
                    else:
                        side[p] = q
            checksum = part.get("c", checksum)
        bids, asks = books[pair]
        for side, best_first in ((bids, True), (asks, False)):
            for p in sorted(side, key=float, reverse=not best_first)[: max(0, len(side) - depth)]:
                del side[p]
        if checksum is not None:
            top_asks = sorted(asks.items(), key=lambda kv: float(kv[0]))[:10]
            top_bids = sorted(bids.items(), key=lambda kv: -float(kv[0]))[:10]
            assert checksum_of_text(top_asks, top_bids) == int(checksum), pair
            checked += 1
    assert checked > 100
