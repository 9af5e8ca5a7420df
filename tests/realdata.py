"""Locating the shared real-traffic recordings (../shared/realdata beside the checkout).

Tests call `realdata_path("BINANCE.jsonl.zst")`, which skips the test with a
clear reason when the recordings are not there.  SENTRY_REALDATA overrides
the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REALDATA_DIR = Path(os.environ.get("SENTRY_REALDATA", REPO_ROOT.parent / "shared" / "realdata"))


def realdata_path(name: str) -> Path:
    path = REALDATA_DIR / name
    if not path.is_file():
        pytest.skip(f"real recording {name} not found in {REALDATA_DIR} (set SENTRY_REALDATA to its folder)")
    return path
