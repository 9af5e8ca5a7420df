"""Binance, Bybit and OKX feed tests: frame builders, markets and book readers, recording readers,
and the round trip through the local venue emulator."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sentrycoin.feeds.base import FeedHandler, FetchSnapshot, Send
from sentrycoin.market import Market


def make_markets(venue: str, symbols: list[str], *, depth: int = 50, capacity: int = 5000) -> list[Market]:
    return [Market(venue, s, depth=depth, capacity=capacity, source="replay") for s in symbols]


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def lv(*pairs: tuple[Any, Any]) -> list[list[str]]:
    """[(price, qty), ...] -> [["price", "qty"], ...] as venues send them."""
    return [[str(p), str(q)] for p, q in pairs]


def book_state(market: Market) -> tuple[bytes, bytes]:
    """A comparable copy of both sides of the book."""
    return market.book.bids().tobytes(), market.book.asks().tobytes()


def book_dict(market: Market) -> tuple[dict[float, float], dict[float, float]]:
    bids = {float(p): float(q) for p, q in market.book.bids()}
    asks = {float(p): float(q) for p, q in market.book.asks()}
    return bids, asks


def fetches(handler: FeedHandler) -> list[FetchSnapshot]:
    return [a for a in handler.take_actions() if isinstance(a, FetchSnapshot)]


def sends(actions: list) -> list[dict]:
    out = []
    for a in actions:
        assert isinstance(a, Send), a
        payload = a.payload
        out.append(json.loads(payload) if payload not in ("ping", b"ping") else {"ping": True})
    return out


def read_jsonl_zst(path: Path) -> list[dict]:
    import zstandard

    with open(path, "rb") as fh:
        text = zstandard.ZstdDecompressor().stream_reader(fh).read().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_gz_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """hftbacktest recordings: `<ns> <json>` per line."""
    with gzip.open(path, "rb") as fh:
        for line in io.BufferedReader(fh):  # type: ignore[arg-type]
            line = line.strip()
            if not line:
                continue
            ns, _, body = line.partition(b" ")
            yield int(ns), body


def as_arrays(levels: list[tuple[float, float]]) -> np.ndarray:
    return np.array(levels, dtype=np.float64).reshape(-1, 2)


# -- Binance frame builders ---------------------------------------------------

def bn_depth(native: str, U: int, u: int, b=(), a=(), *, pu: int | None = None, E: int = 1_700_000_000_000) -> bytes:
    data: dict[str, Any] = {"e": "depthUpdate", "E": E, "s": native, "U": U, "u": u}
    if pu is not None:
        data["T"] = E
        data["pu"] = pu
    data["b"] = lv(*b)
    data["a"] = lv(*a)
    return dumps({"stream": native.lower() + "@depth@100ms", "data": data})


def bn_snapshot(last_update_id: int, bids=(), asks=()) -> bytes:
    return dumps({"lastUpdateId": last_update_id, "bids": lv(*bids), "asks": lv(*asks)})


# -- Bybit frame builders -----------------------------------------------------

def bb_book(native: str, kind: str, u: int, b=(), a=(), *, depth: int = 50, ts: int = 1_700_000_000_000) -> bytes:
    return dumps({"topic": f"orderbook.{depth}.{native}", "type": kind, "ts": ts,
                  "data": {"s": native, "b": lv(*b), "a": lv(*a), "u": u, "seq": u * 7},
                  "cts": ts - 3})


# -- OKX frame builders -------------------------------------------------------

def okx_levels(pairs) -> list[list[str]]:
    return [[str(p), str(q), "0", "1"] for p, q in pairs]


def okx_book(inst: str, action: str, seq: int, prev: int, bids=(), asks=(), *, checksum: int = 0,
             ts: int = 1_700_000_000_000) -> bytes:
    return dumps({"arg": {"channel": "books", "instId": inst}, "action": action,
                  "data": [{"asks": okx_levels(asks), "bids": okx_levels(bids), "ts": str(ts),
                            "checksum": checksum, "prevSeqId": prev, "seqId": seq}]})


# -- end to end against the local venue emulator (sentrycoin/emulator) --------------

async def emulator_round_trip(venue: str, faults: list[str], symbols=("BTC-USDT", "ETH-USDT")) -> dict:
    """Run `venue`'s handler (built by the registry from env URLs) through the live
    runner against the 127.0.0.1 emulator; inject each fault on BTC-USDT and wait
    for the book to resync.  Returns what the tests assert on."""
    import asyncio

    import pytest

    emulator = pytest.importorskip("sentrycoin.emulator", reason="venue emulator not available")
    live = pytest.importorskip("sentrycoin.live", reason="live runner not available")
    from sentrycoin.feeds.registry import make_handler

    async def wait_valid(markets, timeout_s: float = 10.0) -> bool:
        for _ in range(int(timeout_s / 0.02)):
            if all(m.valid for m in markets):
                return True
            await asyncio.sleep(0.02)
        return False

    out: dict = {"resynced": {}}
    async with emulator.create_emulator(venue, list(symbols), seed=7) as emu:
        prefix = venue.upper().replace("-", "_")
        env = {f"{prefix}_WS_URL": emu.ws_url}
        if emu.rest_url:
            env[f"{prefix}_REST_URL"] = emu.rest_url
        markets = [Market(venue, s, depth=50) for s in symbols]
        handler = make_handler(venue, markets, env=env)
        runner = live.LiveRunner([handler], snapshot_spacing_s={venue: 0.0})
        await runner.start()
        try:
            out["initial"] = await wait_valid(markets)
            for name in faults:
                fault = emulator.Fault(name)
                resyncs = markets[0].resyncs
                emu.inject(fault, symbol=symbols[0])
                for _ in range(500):  # until the fault has been delivered and noticed
                    if markets[0].resyncs > resyncs or handler.counters.decode_errors:
                        break
                    await asyncio.sleep(0.02)
                out["resynced"][name] = (markets[0].resyncs > resyncs, await wait_valid(markets))
            emu.pause()
            await asyncio.sleep(0.3)  # let in-flight frames land
            out["truth"] = {s: emu.books[s].top_key(20)[0] for s in symbols}
            out["mine"] = {m.symbol: tuple(tuple(x) for x in m.book.bids(20).tolist()) for m in markets}
            out["other_resyncs"] = [m.resyncs for m in markets[1:]]
            out["counters"] = handler.counters
        finally:
            await runner.stop()
    return out
