"""Crash labels from the price path: `--label-drop 0.5%:5m`.

A rule (drop, within) labels every episode where the mid price falls at least
`drop` from its highest point of the previous `within`:

* a point t *qualifies* when mid(t) <= (1 - drop) x max(mid over [t - within, t]);
* qualifying points form one episode until the price stops qualifying; a new
  run of qualifying points whose peak lies inside the previous episode joins it;
* the episode's window: start = fall_ms = the time of the peak (the last time
  the price stood at that high), bottom = the time of the episode's lowest
  mid, end = its last qualifying point (>= bottom).

Nothing but the recorded mid prices is used, so anyone can reproduce the
labels from the same files.  `describe()` is printed in every report.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

import numpy as np

from sentrycoin.sim.scenarios import CrashWindow

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, None: 1000, "m": 60_000, "min": 60_000, "h": 3_600_000}


def parse_duration_ms(text: str) -> int:
    """'500ms', '60s', '5m', '1h'; a bare number is seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration (e.g. 500ms, 60s, 5m, 1h)")
    ms = float(m.group(1)) * _UNIT_MS[m.group(2)]
    if ms <= 0:
        raise ValueError(f"{text!r}: a duration must be > 0")
    return int(round(ms))


def _duration_text(ms: int) -> str:
    for unit, size in (("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"


@dataclass(frozen=True, slots=True)
class DropRule:
    drop: float  # fraction: 0.005 for 0.5 %
    within_ms: int
    text: str = ""

    @property
    def name(self) -> str:
        return f"drop {self.text or f'{100 * self.drop:g}%:{self.within_ms}ms'}"

    def describe(self) -> str:
        return (f"labels: the mid falls >= {100 * self.drop:g} % from its highest point of the previous "
                f"{_duration_text(self.within_ms)} (window: peak -> low -> last point still that far down)")


def parse_drop_rule(text: str) -> DropRule:
    """'0.5%:5m' -> DropRule(0.005, 300_000).  ValueError naming `text` otherwise."""
    pct, sep, within = text.partition(":")
    pct = pct.strip()
    if not sep or not pct.endswith("%"):
        raise ValueError(f"--label-drop {text!r}: expected PERCENT%:DURATION, e.g. 0.5%:5m")
    try:
        drop = float(pct[:-1]) / 100
        within_ms = parse_duration_ms(within)
    except ValueError as exc:
        raise ValueError(f"--label-drop {text!r}: {exc}") from None
    if not 0 < drop < 1:
        raise ValueError(f"--label-drop {text!r}: the drop must be between 0 and 100 %")
    return DropRule(drop, within_ms, text.strip())


def label_drops(symbol: str, event_ms: np.ndarray, mid: np.ndarray, rule: DropRule) -> list[CrashWindow]:
    """Windows where `mid` falls per `rule` (see the module docstring).  O(n)."""
    times = event_ms.tolist()
    prices = mid.tolist()
    window = rule.within_ms
    keep = 1.0 - rule.drop
    peaks: deque[int] = deque()  # indices, prices decreasing: the front is the rolling max
    out: list[CrashWindow] = []
    episode: list[int] | None = None  # [start, bottom index, end]

    def close(ep: list[int]) -> None:
        start, low, end = ep
        out.append(CrashWindow(symbol, rule.name, times[start], times[start], times[low], times[end]))

    for i, (t, p) in enumerate(zip(times, prices, strict=True)):
        if math.isnan(p):
            continue
        while peaks and prices[peaks[-1]] <= p:
            peaks.pop()  # '<=': among equal highs the latest is the peak the fall leaves
        peaks.append(i)
        while times[peaks[0]] < t - window:
            peaks.popleft()
        peak = peaks[0]
        if p > keep * prices[peak]:
            continue
        if episode is not None and times[peak] > times[episode[2]]:
            close(episode)
            episode = None
        if episode is None:
            episode = [peak, i, i]
        else:
            if p < prices[episode[1]]:
                episode[1] = i
            episode[2] = i
    if episode is not None:
        close(episode)
    return out


def low_between(event_ms: np.ndarray, mid: np.ndarray, start_ms: int, end_ms: int) -> int | None:
    """Time of the lowest mid in [start_ms, end_ms] (the first, if repeated); None without data there."""
    lo = int(np.searchsorted(event_ms, start_ms, side="left"))
    hi = int(np.searchsorted(event_ms, end_ms, side="right"))
    if hi <= lo:
        return None
    part = mid[lo:hi]
    if np.isnan(part).all():
        return None
    return int(event_ms[lo + int(np.nanargmin(part))])
