"""The .pxd C-level API works for other Cython code (examples/cython_embed)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sentrycore import ImbalanceDetector, OrderBook

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cython_embed"


@pytest.fixture(scope="module")
def fast_replay(tmp_path_factory: pytest.TempPathFactory):
    build = tmp_path_factory.mktemp("embed")
    for name in ("fast_replay.pyx", "setup.py"):
        shutil.copy(EXAMPLE / name, build / name)
    proc = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=build, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    so = next(build.glob("fast_replay*.so"))
    spec = importlib.util.spec_from_file_location("fast_replay", so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nogil_replay_matches_python_api(fast_replay) -> None:
    rng = np.random.default_rng(3)
    prices = 101.0 + rng.integers(0, 30, 2000) * 0.5
    qtys = rng.exponential(5.0, 2000)
    qtys[rng.random(2000) < 0.25] = 0.0
    qtys[17] = -1.0  # rejected by the C API, as by the Python one
    times = np.arange(2000, dtype=np.int64) * 100

    def fresh() -> tuple[OrderBook, ImbalanceDetector]:
        book = OrderBook(depth=10)
        book.load_snapshot([[100.0 - i * 0.5, 3.0] for i in range(20)], [])
        return book, ImbalanceDetector(danger_ratio=2.5, cooldown_s=5)

    book_c, det_c = fresh()
    fired_c, rejected = fast_replay.replay_asks(book_c, det_c, prices, qtys, times)

    book_py, det_py = fresh()
    fired_py = []
    for p, q, t in zip(prices, qtys, times, strict=True):
        try:
            book_py.update_ask(p, q)
        except ValueError:
            continue
        severity = det_py.evaluate(book_py, int(t))
        if severity:
            fired_py.append((int(t), severity))

    assert rejected == 1
    assert fired_c == fired_py and len(fired_c) > 1
    assert book_c.asks().tolist() == book_py.asks().tolist()
    bid_volume, ask_volume, ratio, bid_levels, ask_levels = fast_replay.top_volumes(book_c)
    assert (bid_volume, ask_volume) == (book_py.bid_volume, book_py.ask_volume)
    assert ratio == book_py.ratio and bid_levels == 20 and ask_levels == book_py.ask_levels


def test_c_batch_reports_bad_values_without_raising(fast_replay) -> None:
    book = OrderBook(depth=5)
    assert fast_replay.apply_batch(book, np.array([100.0, 99.0]), np.array([1.0, 2.0])) == 0
    assert fast_replay.apply_batch(book, np.array([98.0, np.nan]), np.array([1.0, 2.0])) == -1
    assert book.bids().tolist() == [[100.0, 1.0], [99.0, 2.0]]
