"""benches/bench_venues.py: case discovery and the table's arithmetic (not the timings)."""

from __future__ import annotations

import dataclasses
import logging
import pkgutil

import pytest

from benches import bench_venues, venue_frames
from benches.venue_cases import bybit as bybit_case


def test_case_modules_are_found_by_listing_the_package():
    names = bench_venues.case_modules()
    assert names[0] == "binance" and {"bybit", "okx"} <= set(names)


def test_a_module_that_does_not_import_is_skipped(monkeypatch, capsys):
    real = pkgutil.iter_modules

    def with_missing(path):
        yield from real(path)
        yield pkgutil.ModuleInfo(None, "not_landed_yet", False)

    monkeypatch.setattr(bench_venues.pkgutil, "iter_modules", with_missing)
    cases = bench_venues.load_cases("bybit")
    assert [c.venue for c in cases] == ["bybit"]
    assert "not_landed_yet not loaded" in capsys.readouterr().err


def test_measure_divides_by_binance_of_the_same_level_count():
    logging.disable(logging.WARNING)
    try:
        case = bybit_case.cases()[0]
        small = dataclasses.replace(case, name="bybit-small", frames=case.frames[:300], start_rival=None)
        (row,) = bench_venues.measure([small], repeats=1)
    finally:
        logging.disable(logging.NOTSET)
    assert row["levels"] == venue_frames.median_levels(venue_frames.messages())
    assert row["x_binance"] == pytest.approx(row["ours_ns"] / row["binance_ns"])
    assert row["cryptofeed_ns"] is None and row["goal_vs_cryptofeed_ok"] is None


def test_regrouped_binance_levels_keep_every_change_and_never_cross():
    import numpy as np

    from sentrycore.book import OrderBook

    msgs = venue_frames.messages(5)
    assert venue_frames.median_levels(msgs) == 5
    for side in ("bids", "asks"):  # each side's changes, in order (only the open tail may be left out)
        original = [lv for m in venue_frames.messages() for lv in getattr(m, side)]
        regrouped = [lv for m in msgs for lv in getattr(m, side)]
        assert regrouped == original[:len(regrouped)] and len(original) - len(regrouped) < 100
    bids, asks = venue_frames.snapshot()
    book = OrderBook(depth=50, capacity=20000)
    book.load_snapshot(np.array(bids, np.float64), np.array(asks, np.float64))
    for m in msgs:
        b = np.array(m.bids, np.float64).reshape(-1, 2)
        a = np.array(m.asks, np.float64).reshape(-1, 2)
        book.apply(b[:, 0].copy(), b[:, 1].copy(), a[:, 0].copy(), a[:, 1].copy())
        assert book.best_bid < book.best_ask


def test_trim_gives_the_shortest_text():
    assert [venue_frames.trim(t) for t in ("61737.63000000", "0.00000000", "5.00", "12", "0.10")] == \
           ["61737.63", "0", "5", "12", "0.1"]
