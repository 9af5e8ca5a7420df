"""sentrycore: the native core of SentryCoin.

`OrderBook` keeps an L2 book in fixed-size numpy buffers with the best-N
bid/ask volume sums maintained incrementally; `ImbalanceDetector` turns those
volumes into alerts; `MarketCore` runs the detector after each applied
message.  No I/O, no asyncio, no logging: the application lives in the
`sentrycoin` package.
"""

from sentrycore.book import OrderBook
from sentrycore.detector import SEVERITY_NAMES, ImbalanceDetector
from sentrycore.marketcore import MarketCore

__all__ = ["OrderBook", "ImbalanceDetector", "MarketCore", "SEVERITY_NAMES", "get_include"]


def get_include() -> str:
    """Directory holding the .pxd files, for Cython extensions that cimport sentrycore."""
    import os

    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
