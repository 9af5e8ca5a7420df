"""Scenarios: named, documented timelines for the simulated market.

A scenario is a TOML document (the built-in ones live in `scenarios/*.toml`
next to this module; users write their own with the same schema):

    name = "flash_crash"
    description = "..."
    duration_s = 150            # omit for an endless run (the demo)
    frame_interval_ms = 100     # one diff-depth frame per symbol per interval
    levels = 300                # resting levels kept per side

    [normal]                    # the background market, always running
    ratio_center = 1.32         # geometric centre of the top-50 ask/bid ratio
    ratio_swing = 0.34          # bound on the wander, in log units (tanh of an OU process)
    ratio_tau_s = 90.0          # correlation time of that wander
    update_rate_hz = 30.0       # level changes per second per symbol
    trade_rate_hz = 3.0         # market orders per second per symbol
    volatility = 1.0            # multiplier on the symbol's own price volatility

    [[events]]                  # explicit events; every number may be a [lo, hi] range,
    kind = "flash_crash"        # drawn once per seed and symbol
    at_s = [20, 30]

    [repeat]                    # optional: random events forever (or until duration_s)
    kinds = ["flash_crash", "whale_dump"]
    first_kind = "whale_dump"   # optional: the kind of the first event
    first_at_s = 5.0
    every_s = [100, 140]        # start to start (never before the previous event is over)
    stagger_s = 37.0            # symbol i starts i * stagger_s later

Event kinds and what they do (times relative to the event's `at_s`):

* `flash_crash`: over `withdraw_s` the bids in the book are pulled down to
  `bid_scale` of normal and the asks pile up to `ask_scale`, so the top-50
  ratio climbs through 2.5 to well above 10; then the price falls `fall_pct`
  percent in `fall_s` seconds (market sells sweeping the bids); then over
  `recover_s` liquidity returns and the ratio falls back.
* `whale_dump`: one huge ask wall appears near the touch (sized so the ratio
  jumps to `wall_ratio`), bids thin to `bid_scale`; after `hold_s` market
  sells sweep the bids (`fall_pct` in `fall_s`), the wall is pulled at the
  bottom; then `recover_s` of recovery.
* `spoof`: `count` times, a large ask wall (ratio `wall_ratio`) appears for
  `hold_s` and vanishes again after no trade touched it; `gap_s` between.
  Spoofs are not crashes: any alert they cause is a false alert.

Crashes carry labelled windows (`CrashWindow`: start = first precursor,
fall = price starts falling, bottom = price bottom, end = recovered) so that
backtests can score detections.
"""

from __future__ import annotations

import math
import tomllib
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import msgspec
import numpy as np

#: A number, or a [lo, hi] range drawn uniformly once per seed and symbol.
Range = float | tuple[float, float]


class ScenarioError(ValueError):
    """A scenario file or name that cannot be used; the message names the key."""


# -- schema ----------------------------------------------------------------------


class NormalSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ratio_center: float = 1.32
    ratio_swing: float = 0.34
    ratio_tau_s: float = 90.0
    update_rate_hz: float = 30.0
    trade_rate_hz: float = 3.0
    volatility: float = 1.0


class FlashCrashSpec(msgspec.Struct, tag="flash_crash", tag_field="kind",
                     forbid_unknown_fields=True, kw_only=True):
    at_s: Range
    withdraw_s: Range = (20.0, 40.0)
    bid_scale: Range = (0.07, 0.12)
    ask_scale: Range = (1.8, 2.6)
    fall_pct: Range = (3.5, 7.0)
    fall_s: Range = (3.0, 8.0)
    recover_s: Range = (40.0, 70.0)
    rebound: Range = (0.2, 0.4)  # fraction of the fall regained during recovery
    activity: Range = 3.0  # update-rate multiple while the event runs
    symbols: list[str] | None = None  # None: every symbol


class WhaleDumpSpec(msgspec.Struct, tag="whale_dump", tag_field="kind",
                    forbid_unknown_fields=True, kw_only=True):
    at_s: Range
    wall_ratio: Range = (6.0, 12.0)
    wall_level: Range = (1.0, 3.0)  # index of the ask level the wall joins (0 = best ask)
    bid_scale: Range = (0.5, 0.7)
    hold_s: Range = (5.0, 15.0)
    fall_pct: Range = (3.0, 6.0)
    fall_s: Range = (2.0, 5.0)
    recover_s: Range = (30.0, 50.0)
    rebound: Range = (0.2, 0.4)
    activity: Range = 2.0
    symbols: list[str] | None = None


class SpoofSpec(msgspec.Struct, tag="spoof", tag_field="kind",
                forbid_unknown_fields=True, kw_only=True):
    at_s: Range
    count: int = 10
    wall_ratio: Range = (3.0, 4.5)
    wall_level: Range = (2.0, 5.0)
    hold_s: Range = (0.8, 2.6)
    gap_s: Range = (8.0, 30.0)
    symbols: list[str] | None = None


EventSpec = FlashCrashSpec | WhaleDumpSpec | SpoofSpec
EVENT_KINDS = ("flash_crash", "whale_dump", "spoof")
_DEFAULT_SPECS = {"flash_crash": FlashCrashSpec, "whale_dump": WhaleDumpSpec, "spoof": SpoofSpec}


class RepeatSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kinds: list[str]
    first_kind: str | None = None  # kind of the first event (None: drawn like the rest)
    first_at_s: float = 5.0
    every_s: Range = (100.0, 140.0)
    stagger_s: float = 37.0


class ScenarioSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    description: str = ""
    duration_s: float | None = None
    frame_interval_ms: int = 100
    levels: int = 300
    normal: NormalSpec = msgspec.field(default_factory=NormalSpec)
    events: list[EventSpec] = msgspec.field(default_factory=list)
    repeat: RepeatSpec | None = None


# -- validation --------------------------------------------------------------------


def _check(cond: bool, key: str, msg: str, value: object) -> None:
    if not cond:
        raise ScenarioError(f"{key}: {msg}, got {value!r}")


def _check_range(value: Range, key: str, lo: float, hi: float) -> None:
    pair = value if isinstance(value, tuple) else (value, value)
    for v in pair:
        _check(math.isfinite(v) and lo <= v <= hi, key, f"must be within [{lo}, {hi}]", value)
    _check(pair[0] <= pair[1], key, "range must be [low, high]", list(pair))


# (field, low, high) limits per event kind: generous, but they keep the model sane.
_LIMITS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "flash_crash": (("at_s", 0, 1e7), ("withdraw_s", 0.5, 3600), ("bid_scale", 0.001, 1.0),
                    ("ask_scale", 1.0, 100), ("fall_pct", 0.0, 90), ("fall_s", 0.1, 3600),
                    ("recover_s", 0.1, 3600), ("rebound", 0, 1), ("activity", 0.1, 20)),
    "whale_dump": (("at_s", 0, 1e7), ("wall_ratio", 0.1, 1000), ("wall_level", 0, 40),
                   ("bid_scale", 0.001, 1.0), ("hold_s", 0.1, 3600), ("fall_pct", 0.0, 90),
                   ("fall_s", 0.1, 3600), ("recover_s", 0.1, 3600), ("rebound", 0, 1),
                   ("activity", 0.1, 20)),
    "spoof": (("at_s", 0, 1e7), ("wall_ratio", 0.1, 1000), ("wall_level", 0, 40),
              ("hold_s", 0.05, 3600), ("gap_s", 0.05, 3600)),
}


def validate(spec: ScenarioSpec) -> ScenarioSpec:
    """Range checks msgspec's type checks cannot express; errors name the key."""
    _check(bool(spec.name.strip()), "name", "must not be empty", spec.name)
    if spec.duration_s is not None:
        _check(math.isfinite(spec.duration_s) and spec.duration_s > 0, "duration_s", "must be > 0",
               spec.duration_s)
    _check(10 <= spec.frame_interval_ms <= 10_000, "frame_interval_ms", "must be within [10, 10000]",
           spec.frame_interval_ms)
    _check(60 <= spec.levels <= 2000, "levels", "must be within [60, 2000]", spec.levels)
    n = spec.normal
    _check(0.05 <= n.ratio_center <= 20, "normal.ratio_center", "must be within [0.05, 20]", n.ratio_center)
    _check(0 <= n.ratio_swing <= 3, "normal.ratio_swing", "must be within [0, 3]", n.ratio_swing)
    _check(0.5 <= n.ratio_tau_s <= 86400, "normal.ratio_tau_s", "must be within [0.5, 86400]", n.ratio_tau_s)
    _check(0.1 <= n.update_rate_hz <= 5000, "normal.update_rate_hz", "must be within [0.1, 5000]",
           n.update_rate_hz)
    _check(0 <= n.trade_rate_hz <= 1000, "normal.trade_rate_hz", "must be within [0, 1000]", n.trade_rate_hz)
    _check(0 <= n.volatility <= 100, "normal.volatility", "must be within [0, 100]", n.volatility)
    for i, ev in enumerate(spec.events):
        kind = str(type(ev).__struct_config__.tag)  # each event spec's tag is its kind name
        for name, lo, hi in _LIMITS[kind]:
            _check_range(getattr(ev, name), f"events[{i}].{name}", lo, hi)
        if isinstance(ev, SpoofSpec):
            _check(1 <= ev.count <= 100_000, f"events[{i}].count", "must be within [1, 100000]", ev.count)
    if spec.repeat is not None:
        r = spec.repeat
        _check(bool(r.kinds), "repeat.kinds", "must name at least one event kind", r.kinds)
        for k in r.kinds:
            _check(k in EVENT_KINDS, "repeat.kinds", f"each must be one of {list(EVENT_KINDS)}", k)
        if r.first_kind is not None:
            _check(r.first_kind in EVENT_KINDS, "repeat.first_kind", f"must be one of {list(EVENT_KINDS)}",
                   r.first_kind)
        _check(0 <= r.first_at_s <= 1e7, "repeat.first_at_s", "must be within [0, 1e7]", r.first_at_s)
        _check_range(r.every_s, "repeat.every_s", 1.0, 1e7)
        _check(0 <= r.stagger_s <= 1e6, "repeat.stagger_s", "must be within [0, 1e6]", r.stagger_s)
    return spec


def _explain(msg: str) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.events[0].x`" -> "events[0].x: expected int, got str"."""
    path = ""
    if " - at `$" in msg:
        msg, _, rest = msg.partition(" - at `$")
        path = rest.rstrip("`").lstrip(".")
    msg = msg.replace("`float | array`", "a number or a [low, high] pair").replace("`", "")
    if path.endswith("kind") and msg.startswith("Invalid value"):
        msg += f" (kinds: {', '.join(EVENT_KINDS)})"
    if msg.startswith("Object contains unknown field"):
        msg = msg.replace("Object contains unknown field", "unknown key")
    msg = msg[:1].lower() + msg[1:]
    return f"{path}: {msg}" if path else msg


def parse_scenario(data: dict, origin: str = "<scenario>") -> ScenarioSpec:
    try:
        spec = msgspec.convert(data, ScenarioSpec)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{origin}: {_explain(str(exc))}") from None
    try:
        return validate(spec)
    except ScenarioError as exc:
        raise ScenarioError(f"{origin}: {exc}") from None


def _builtin_dir():
    return resources.files("sentrycoin.sim").joinpath("scenarios")


def builtin_scenarios() -> list[str]:
    return sorted(p.name[:-5] for p in _builtin_dir().iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str | Path) -> ScenarioSpec:
    """A built-in scenario by name (`flash_crash`) or a user TOML file by path."""
    text: str
    origin = str(name_or_path)
    path = Path(name_or_path)
    if isinstance(name_or_path, Path) or origin.endswith(".toml") or "/" in origin:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"cannot read scenario file {origin}: {exc.strerror}") from None
    else:
        res = _builtin_dir().joinpath(f"{origin}.toml")
        if not res.is_file():
            raise ScenarioError(f"unknown scenario {origin!r}; built-in scenarios: "
                                f"{', '.join(builtin_scenarios())} (or give a path to a .toml file)")
        text = res.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{origin}: not valid TOML: {exc}") from None
    return parse_scenario(data, origin)


def scenario_to_toml(spec: ScenarioSpec) -> str:
    """Write a spec back as TOML (round trip with load_scenario)."""
    data = msgspec.to_builtins(spec)
    lines: list[str] = []

    def scalar(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return msgspec.json.encode(v).decode()  # JSON string escapes are valid TOML basic strings
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        return repr(v)

    for key, value in data.items():
        if value is None:
            continue  # TOML has no null: an absent key means the default (None)
        if not isinstance(value, (dict, list)):
            lines.append(f"{key} = {scalar(value)}")
    for key in ("normal", "repeat"):
        if isinstance(data.get(key), dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {scalar(v)}" for k, v in data[key].items() if v is not None)
    for ev in data.get("events", []):
        lines.append("\n[[events]]")
        lines.extend(f"{k} = {scalar(v)}" for k, v in ev.items() if v is not None)
    return "\n".join(lines) + "\n"


# -- concrete timelines ---------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class CrashWindow:
    """A labelled crash: what a backtest scores detections against (Unix ms)."""

    symbol: str
    kind: str
    start_ms: int  # first precursor (liquidity withdrawal, wall)
    fall_ms: int  # price starts to fall
    bottom_ms: int  # price bottom
    end_ms: int  # recovered


def _smooth(t: float, a: float, b: float) -> float:
    """0 before a, 1 after b, smoothstep between."""
    if t <= a:
        return 0.0
    if t >= b:
        return 1.0
    s = (t - a) / (b - a)
    return s * s * (3.0 - 2.0 * s)


class Drivers:
    """What the scenario asks of one symbol's market at one instant."""

    __slots__ = ("bid_mult", "ask_mult", "activity", "buy_trades", "log_offset")

    def __init__(self) -> None:
        self.bid_mult = 1.0
        self.ask_mult = 1.0
        self.activity = 1.0
        self.buy_trades = 1.0  # multiple on market buys (0 while a spoof wall stands)
        self.log_offset = 0.0  # log-price shift from events (falls, rebounds), cumulative


# Wall operations handed to the generator: ("on", wall_id, side, level, ratio) / ("off", wall_id)
WallOp = tuple


class Event:
    """One concrete event (parameters drawn) on one symbol's timeline."""

    kind = ""
    start_ms: int
    end_ms: int

    def apply(self, t_ms: int, d: Drivers) -> None:
        """Add this event's effect at t (start_ms <= t <= end_ms)."""

    def final_offset(self) -> float:
        """Log-price shift left behind once the event is over."""
        return 0.0

    def ops(self) -> list[tuple[int, WallOp]]:
        return []

    def window(self, symbol: str) -> CrashWindow | None:
        return None


class _FallMixin:
    fall_ms: int
    bottom_ms: int
    end_ms: int
    drop: float  # log of (1 - fall_pct/100), negative
    rebound: float

    def _offset(self, t: float) -> float:
        if t < self.fall_ms:
            return 0.0
        if t < self.bottom_ms:
            return self.drop * _smooth(t, self.fall_ms, self.bottom_ms)
        return self.drop * (1.0 - self.rebound * _smooth(t, self.bottom_ms, self.end_ms))

    def final_offset(self) -> float:
        return self.drop * (1.0 - self.rebound)


class FlashCrash(_FallMixin, Event):
    kind = "flash_crash"

    def __init__(self, start_ms: int, withdraw_s: float, bid_scale: float, ask_scale: float,
                 fall_pct: float, fall_s: float, recover_s: float, rebound: float, activity: float) -> None:
        self.start_ms = start_ms
        self.fall_ms = start_ms + int(withdraw_s * 1000)
        self.bottom_ms = self.fall_ms + int(fall_s * 1000)
        self.end_ms = self.bottom_ms + int(recover_s * 1000)
        self.log_bid = math.log(bid_scale)
        self.log_ask = math.log(ask_scale)
        self.drop = math.log1p(-fall_pct / 100.0)
        self.rebound = rebound
        self.activity = activity

    def apply(self, t_ms: int, d: Drivers) -> None:
        if t_ms < self.fall_ms:
            w = _smooth(t_ms, self.start_ms, self.fall_ms)
        elif t_ms < self.bottom_ms:
            w = 1.0
        else:
            w = 1.0 - _smooth(t_ms, self.bottom_ms, self.end_ms)
        # Ramps are linear in log space: the ratio moves geometrically.
        d.bid_mult *= math.exp(self.log_bid * w)
        d.ask_mult *= math.exp(self.log_ask * w)
        d.activity *= 1.0 + (self.activity - 1.0) * w
        d.log_offset += self._offset(t_ms)

    def window(self, symbol: str) -> CrashWindow:
        return CrashWindow(symbol, self.kind, self.start_ms, self.fall_ms, self.bottom_ms, self.end_ms)


class WhaleDump(_FallMixin, Event):
    kind = "whale_dump"

    def __init__(self, start_ms: int, wall_id: int, wall_ratio: float, wall_level: int, bid_scale: float,
                 hold_s: float, fall_pct: float, fall_s: float, recover_s: float, rebound: float,
                 activity: float) -> None:
        self.start_ms = start_ms
        self.fall_ms = start_ms + int(hold_s * 1000)
        self.bottom_ms = self.fall_ms + int(fall_s * 1000)
        self.end_ms = self.bottom_ms + int(recover_s * 1000)
        self.wall_id = wall_id
        self.wall_ratio = wall_ratio
        self.wall_level = wall_level
        self.log_bid = math.log(bid_scale)
        self.drop = math.log1p(-fall_pct / 100.0)
        self.rebound = rebound
        self.activity = activity

    def apply(self, t_ms: int, d: Drivers) -> None:
        if t_ms < self.bottom_ms:
            w = _smooth(t_ms, self.start_ms, self.start_ms + 2000)
        else:
            w = 1.0 - _smooth(t_ms, self.bottom_ms, self.end_ms)
        d.bid_mult *= math.exp(self.log_bid * w)
        d.activity *= 1.0 + (self.activity - 1.0) * w
        d.log_offset += self._offset(t_ms)

    def ops(self) -> list[tuple[int, WallOp]]:
        return [(self.start_ms, ("on", self.wall_id, "ask", self.wall_level, self.wall_ratio)),
                (self.bottom_ms, ("off", self.wall_id))]

    def window(self, symbol: str) -> CrashWindow:
        return CrashWindow(symbol, self.kind, self.start_ms, self.fall_ms, self.bottom_ms, self.end_ms)


class Spoof(Event):
    kind = "spoof"

    def __init__(self, flashes: list[tuple[int, int, int, int, float]]) -> None:
        # flashes: (on_ms, off_ms, wall_id, level, ratio)
        self.flashes = flashes
        self.start_ms = flashes[0][0]
        self.end_ms = flashes[-1][1]

    def apply(self, t_ms: int, d: Drivers) -> None:
        for on_ms, off_ms, *_ in self.flashes:
            if on_ms <= t_ms < off_ms:
                d.buy_trades = 0.0  # nobody trades against a spoof wall: that is the point
                return

    def ops(self) -> list[tuple[int, WallOp]]:
        out: list[tuple[int, WallOp]] = []
        for on_ms, off_ms, wall_id, level, ratio in self.flashes:
            out.append((on_ms, ("on", wall_id, "ask", level, ratio)))
            out.append((off_ms, ("off", wall_id)))
        return out


class Timeline:
    """One symbol's concrete events, drawn from the scenario with its own RNG.

    Finite scenarios draw every event up front (so `windows` is complete before
    the run); endless ones (the demo) draw repeats lazily as time advances.
    """

    def __init__(self, spec: ScenarioSpec, symbol: str, index: int, seed: int, start_ms: int) -> None:
        self.spec = spec
        self.symbol = symbol
        self.start_ms = start_ms
        # Independent of the market RNG, keyed by symbol: adding symbols does not
        # change another symbol's events.
        self._rng = np.random.Generator(np.random.PCG64(
            np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(symbol.encode()), 1])))
        self._wall_ids = 0
        self.pending: list[Event] = []
        self.active: list[Event] = []
        self._done_offset = 0.0
        self._ops: list[tuple[int, WallOp]] = []
        self._windows: list[CrashWindow] = []
        for ev in spec.events:
            if ev.symbols is None or symbol in ev.symbols:
                self._add(ev, start_ms + int(self._draw(ev.at_s) * 1000))
        self._next_repeat_ms: int | None = None
        self._repeats = 0
        if spec.repeat is not None:
            self._next_repeat_ms = start_ms + int((spec.repeat.first_at_s + index * spec.repeat.stagger_s) * 1000)
        self.horizon_ms = start_ms
        end = None if spec.duration_s is None else start_ms + int(spec.duration_s * 1000)
        self._extend(end if end is not None else start_ms + 600_000)

    def _draw(self, value: Range) -> float:
        if isinstance(value, tuple):
            return float(self._rng.uniform(value[0], value[1]))
        return float(value)

    def _add(self, ev: EventSpec, at_ms: int) -> Event:
        d = self._draw
        event: Event
        if isinstance(ev, FlashCrashSpec):
            event = FlashCrash(at_ms, d(ev.withdraw_s), d(ev.bid_scale), d(ev.ask_scale), d(ev.fall_pct),
                               d(ev.fall_s), d(ev.recover_s), d(ev.rebound), d(ev.activity))
        elif isinstance(ev, WhaleDumpSpec):
            self._wall_ids += 1
            event = WhaleDump(at_ms, self._wall_ids, d(ev.wall_ratio), int(round(d(ev.wall_level))),
                              d(ev.bid_scale), d(ev.hold_s), d(ev.fall_pct), d(ev.fall_s), d(ev.recover_s),
                              d(ev.rebound), d(ev.activity))
        else:
            flashes = []
            t = at_ms
            for _ in range(ev.count):
                self._wall_ids += 1
                hold_ms = max(1, int(d(ev.hold_s) * 1000))
                flashes.append((t, t + hold_ms, self._wall_ids, int(round(d(ev.wall_level))), d(ev.wall_ratio)))
                t += hold_ms + int(d(ev.gap_s) * 1000)
            event = Spoof(flashes)
        self.pending.append(event)
        self.pending.sort(key=lambda e: e.start_ms)
        self._ops.extend(event.ops())
        self._ops.sort(key=lambda op: op[0])
        w = event.window(self.symbol)
        if w is not None:
            self._windows.append(w)
            self._windows.sort(key=lambda w: w.start_ms)
        return event

    def _extend(self, until_ms: int) -> None:
        """Draw repeated events starting before until_ms."""
        rep = self.spec.repeat
        while rep is not None and self._next_repeat_ms is not None and self._next_repeat_ms < until_ms:
            kind = rep.kinds[int(self._rng.integers(len(rep.kinds)))]
            if self._repeats == 0 and rep.first_kind is not None:
                kind = rep.first_kind
            self._repeats += 1
            event = self._add(_DEFAULT_SPECS[kind](at_s=0.0), self._next_repeat_ms)
            # every_s is start to start, but an event never starts before the previous one is over.
            self._next_repeat_ms = max(event.end_ms, self._next_repeat_ms + int(self._draw(rep.every_s) * 1000))
        self.horizon_ms = max(self.horizon_ms, until_ms)

    @property
    def settled_offset(self) -> float:
        """Log-price shift left behind by the events that are over."""
        return self._done_offset

    @property
    def windows(self) -> list[CrashWindow]:
        return list(self._windows)

    def drivers(self, t_ms: int, d: Drivers) -> list[WallOp]:
        """Fill `d` for time t and return the wall operations due up to t."""
        if self.spec.duration_s is None and t_ms + 300_000 > self.horizon_ms:
            self._extend(t_ms + 600_000)
        while self.pending and self.pending[0].start_ms <= t_ms:
            self.active.append(self.pending.pop(0))
        d.bid_mult = d.ask_mult = d.activity = d.buy_trades = 1.0
        d.log_offset = self._done_offset
        if self.active:
            still = []
            for ev in self.active:
                if t_ms > ev.end_ms:
                    self._done_offset += ev.final_offset()
                    d.log_offset += ev.final_offset()
                else:
                    ev.apply(t_ms, d)
                    still.append(ev)
            self.active = still
        due: list[WallOp] = []
        ops = self._ops
        while ops and ops[0][0] <= t_ms:
            due.append(ops.pop(0)[1])
        return due
