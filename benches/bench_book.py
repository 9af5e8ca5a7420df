"""OrderBook vs the best plain-Python books and the `order-book` C library.

Each contender replays the same synthetic BTCUSDT-like stream (benches/streams.py)
and produces the top-50 bid and ask volumes after every message.  Reported
time is per message (~20 level changes); divide by levels_per_message for
per-level cost.  Run:

    pytest benches/bench_book.py --benchmark-only --benchmark-columns=median,mean,stddev,rounds
"""

from __future__ import annotations

import math

import pytest

from benches.rivals import DictBisectBook, OrderBookLibBook, SortedDictBook
from benches.streams import make_stream
from sentrycore import OrderBook

DEPTH = 50
MESSAGES = 2_000
STREAM = make_stream(messages=MESSAGES)


def _per_message(benchmark, levels: float | None = None) -> None:
    benchmark.extra_info["messages_per_round"] = MESSAGES
    benchmark.extra_info["levels_per_message"] = round(STREAM.levels_per_message, 2)


def _check_same_volumes() -> None:
    # The contenders must compute the same thing, or the race means nothing.
    core = OrderBook(DEPTH, 5000)
    core.load_snapshot(STREAM.snapshot_bids, STREAM.snapshot_asks)
    rivals = [DictBisectBook(), SortedDictBook(), OrderBookLibBook()]
    for r in rivals:
        r.load(STREAM.snapshot_bids, STREAM.snapshot_asks)
    for (bl, al), (bp, bq, ap, aq) in list(zip(STREAM.lists, STREAM.arrays, strict=True))[:300]:
        core.apply_bids(bp, bq)
        core.apply_asks(ap, aq)
        for r in rivals:
            r.apply(bl, al)
            vb, va = r.volumes(DEPTH)
            assert math.isclose(vb, core.bid_volume, rel_tol=1e-9)
            assert math.isclose(va, core.ask_volume, rel_tol=1e-9)


_check_same_volumes()


def _run_core(book: OrderBook) -> None:
    apply_bids, apply_asks = book.apply_bids, book.apply_asks
    for bp, bq, ap, aq in STREAM.arrays:
        apply_bids(bp, bq)
        apply_asks(ap, aq)
        _ = book.bid_volume  # the reads are part of what is measured
        _ = book.ask_volume


def _run_core_message(book: OrderBook) -> None:
    apply = book.apply
    for bp, bq, ap, aq in STREAM.arrays:
        apply(bp, bq, ap, aq)
        _ = book.volumes  # the read is part of what is measured


def _run_rival(book) -> None:
    apply, volumes = book.apply, book.volumes
    for bl, al in STREAM.lists:
        apply(bl, al)
        volumes(DEPTH)


def _fresh_core():
    book = OrderBook(DEPTH, 5000)
    book.load_snapshot(STREAM.snapshot_bids, STREAM.snapshot_asks)
    return (book,), {}


def _fresh(cls):
    def setup():
        book = cls()
        book.load(STREAM.snapshot_bids, STREAM.snapshot_asks)
        return (book,), {}

    return setup


@pytest.mark.benchmark(group="message: apply ~20 levels + top-50 volumes (time per 2,000 messages)")
def test_sentrycore_apply_batch(benchmark) -> None:
    _per_message(benchmark)
    benchmark.pedantic(_run_core, setup=_fresh_core, rounds=30, warmup_rounds=2)


@pytest.mark.benchmark(group="message: apply ~20 levels + top-50 volumes (time per 2,000 messages)")
def test_sentrycore_apply_message(benchmark) -> None:
    # One call for both sides (`apply`) and one read for both volumes (`volumes`).
    _per_message(benchmark)
    benchmark.pedantic(_run_core_message, setup=_fresh_core, rounds=30, warmup_rounds=2)


@pytest.mark.benchmark(group="message: apply ~20 levels + top-50 volumes (time per 2,000 messages)")
def test_dict_bisect(benchmark) -> None:
    _per_message(benchmark)
    benchmark.pedantic(_run_rival, setup=_fresh(DictBisectBook), rounds=15, warmup_rounds=1)


@pytest.mark.benchmark(group="message: apply ~20 levels + top-50 volumes (time per 2,000 messages)")
def test_sorteddict(benchmark) -> None:
    _per_message(benchmark)
    benchmark.pedantic(_run_rival, setup=_fresh(SortedDictBook), rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="message: apply ~20 levels + top-50 volumes (time per 2,000 messages)")
def test_order_book_c_library(benchmark) -> None:
    _per_message(benchmark)
    benchmark.pedantic(_run_rival, setup=_fresh(OrderBookLibBook), rounds=10, warmup_rounds=1)


# -- single-level updates from Python, both volumes read after each ----------

SINGLE = [(side, p, q) for bl, al in STREAM.lists[:1000] for side, lv in (("b", bl), ("a", al)) for p, q in lv]


def _run_core_single(book: OrderBook) -> None:
    ub, ua = book.update_bid, book.update_ask
    for side, p, q in SINGLE:
        if side == "b":
            ub(p, q)
        else:
            ua(p, q)
        _ = book.bid_volume  # the reads are part of what is measured
        _ = book.ask_volume


def _run_sorteddict_single(book: SortedDictBook) -> None:
    ub, ua, vol = book.update_bid, book.update_ask, book.volumes
    for side, p, q in SINGLE:
        if side == "b":
            ub(p, q)
        else:
            ua(p, q)
        vol(DEPTH)


@pytest.mark.benchmark(group=f"single update + both top-50 volumes (time per {len(SINGLE)} updates)")
def test_sentrycore_single_updates(benchmark) -> None:
    benchmark.extra_info["updates_per_round"] = len(SINGLE)
    benchmark.pedantic(_run_core_single, setup=_fresh_core, rounds=20, warmup_rounds=2)


@pytest.mark.benchmark(group=f"single update + both top-50 volumes (time per {len(SINGLE)} updates)")
def test_sorteddict_single_updates(benchmark) -> None:
    benchmark.extra_info["updates_per_round"] = len(SINGLE)
    benchmark.pedantic(_run_sorteddict_single, setup=_fresh(SortedDictBook), rounds=5, warmup_rounds=1)
