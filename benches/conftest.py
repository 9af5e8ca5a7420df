"""Benchmarks run outside CI: `pytest benches/ --benchmark-only` (see benches/README.md)."""

import sys
from pathlib import Path

# Let `from benches.streams import ...` work without installing the benches.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
