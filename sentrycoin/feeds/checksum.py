"""CRC32 book checksums over the venue's own text (Kraken v1 and v2).

Kraken checksums the top 10 asks (lowest first) then the top 10 bids
(highest first), each level written as price then quantity, every number with
its decimal point removed and its leading zeros stripped, and compares the
unsigned CRC32 of that ASCII text.  The text must be the venue's: v1 sends
decimal strings (used as they are); v2 sends JSON numbers, which lose trailing
zeros, so they are written with the instrument's price/qty precision first.

Handlers turn each level into its *token* (price part + qty part) once, when
the level arrives, so a checksum is only a join of 20 ready strings and one
`zlib.crc32` call.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from decimal import Decimal

#: Levels per side that Kraken's checksum covers, whatever the subscribed depth.
CHECKSUM_LEVELS = 10


def strip_number(text: str) -> str:
    """One number in checksum form: '.' removed, leading zeros stripped."""
    return text.replace(".", "").lstrip("0")


def level_token(price_text: str, qty_text: str) -> str:
    """A level's contribution to the checksum text (v1: the strings as sent)."""
    return price_text.replace(".", "").lstrip("0") + qty_text.replace(".", "").lstrip("0")


def fixed_text(value: Decimal, places: int) -> str:
    """`value` written with exactly `places` decimals (v2's instrument precision).

    Exact for every value that has at most `places` decimals, which is all a
    venue sends for the instrument; a Decimal never goes through binary float.
    """
    return format(value, f".{places}f")


def crc32_text(tokens: Iterable[str]) -> int:
    """Unsigned CRC32 of the concatenated tokens (asks first, then bids)."""
    return zlib.crc32("".join(tokens).encode("ascii"))


def kraken_checksum(asks: Iterable[tuple[str, str]], bids: Iterable[tuple[str, str]]) -> int:
    """Reference form of the whole algorithm from (price_text, qty_text) pairs.

    `asks` lowest first and `bids` highest first; only the first
    CHECKSUM_LEVELS of each are used.  Handlers use the incremental tokens
    instead; this spells the rule out once and serves the tests.
    """
    parts: list[str] = []
    for side in (asks, bids):
        for i, (price, qty) in enumerate(side):
            if i == CHECKSUM_LEVELS:
                break
            parts.append(level_token(price, qty))
    return crc32_text(parts)
