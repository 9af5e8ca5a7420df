"""Research inputs: readers for recordings replay and backtest take (see readers.py)."""
