"""Research commands: backtest, record, replay (registered on the CLI parser)."""

from __future__ import annotations


def register(sub) -> None:
    pass
