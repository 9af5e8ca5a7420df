"""Seeded simulated market speaking Binance spot diff-depth.

Every symbol is an L2 book of a few hundred resting levels per side around a
latent fair price.  Each frame interval (100 ms by default) the model:

1. asks the scenario timeline for its drivers (bid/ask liquidity multiples,
   activity, the log-price shift of falls and rebounds, wall operations);
2. moves the fair price (random walk with the symbol's volatility plus the
   scenario shift) and re-centres the book on it: levels the price crossed
   are consumed (market orders sweeping them), the emptied side refills
   towards the new touch with fresh limit orders;
3. applies a Poisson number of limit-order changes (resize towards a target
   size, or cancel and re-post elsewhere), biased towards the touch, and a
   few small market orders eating into the best level;
4. emits one combined-stream `depthUpdate` frame with the final state of
   every level it touched, `U`/`u` chained exactly like Binance's.

Target sizes are `base size x per-level factor x side scale`.  The side scales carry the ratio: in normal trading ask/bid
wanders as exp(centre + swing * tanh(OU)), which bounds it by construction
(the default detector stays silent), and the scenario multiplies on top.

Determinism: each symbol has its own `numpy.random.Generator(PCG64)` seeded
from (seed, crc32(symbol)); nothing reads the wall clock, so the same seed
and symbols give the same frames byte for byte.  Quantities are integers
counted in lots and prices integers counted in ticks, formatted exactly as
decimal strings (8 decimals, as Binance spot prints them).
"""

from __future__ import annotations

import bisect
import math
import zlib
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import msgspec
import numpy as np

from sentrycoin.sim.scenarios import CrashWindow, Drivers, ScenarioSpec, Timeline, load_scenario

E8 = 100_000_000
#: Default simulated clock start: 2026-01-01T00:00:00Z (no wall clock in the model).
DEFAULT_START_MS = 1_767_225_600_000
#: The top-N the scenarios are designed around (walls are sized against it).
DESIGN_DEPTH = 50
#: Time constant of the price's pull back to its starting level (20 min: keeps an
#: endless run near plausible prices without flattening short-term moves).
PRICE_REVERT_S = 1200.0


# -- wire format ------------------------------------------------------------------


class DepthUpdate(msgspec.Struct):
    e: str
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


class CombinedFrame(msgspec.Struct):
    stream: str
    data: DepthUpdate


class DepthSnapshot(msgspec.Struct):
    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


_encoder = msgspec.json.Encoder()


def venue_symbol(symbol: str) -> str:
    """'BTC-USDT' -> 'BTCUSDT' (Binance spot instrument name)."""
    parts = symbol.split("-")
    if len(parts) != 2 or not all(parts) or symbol != symbol.upper():
        raise ValueError(f"symbol must be BASE-QUOTE in upper case, got {symbol!r}")
    return parts[0] + parts[1]


def _e8(text: str) -> int:
    v = Decimal(text) * E8
    if v <= 0 or v != v.to_integral_value():
        raise ValueError(f"{text!r} is not a positive multiple of 1e-8")
    return int(v)


def fmt_e8(v: int) -> str:
    """Integer count of 1e-8 units -> Binance's 8-decimal string."""
    return f"{v // E8}.{v % E8:08d}"


# -- symbols --------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class SymbolProfile:
    """What makes one simulated instrument look like itself."""

    symbol: str
    mid: float  # starting price
    tick: str  # price step, decimal string
    lot: str  # size step, decimal string
    base_qty: float  # typical size of a level near the touch, base units
    gap_ticks: float  # mean spacing of levels near the touch, in ticks
    vol_bps: float  # price volatility, basis points per sqrt(second)


# Plausible 2025-era Binance spot figures (tick and lot steps are the venue's).
CATALOGUE: dict[str, SymbolProfile] = {p.symbol: p for p in (
    SymbolProfile("BTC-USDT", 65000.0, "0.01", "0.00001", 0.35, 40.0, 0.9),
    SymbolProfile("ETH-USDT", 3200.0, "0.01", "0.0001", 6.0, 4.0, 1.1),
    SymbolProfile("SOL-USDT", 150.0, "0.01", "0.001", 90.0, 1.6, 1.5),
    SymbolProfile("BNB-USDT", 600.0, "0.01", "0.001", 12.0, 2.5, 1.0),
    SymbolProfile("XRP-USDT", 0.62, "0.0001", "0.1", 20000.0, 1.2, 1.4),
    SymbolProfile("DOGE-USDT", 0.15, "0.00001", "1", 90000.0, 1.3, 1.7),
    SymbolProfile("ADA-USDT", 0.45, "0.0001", "0.1", 25000.0, 1.3, 1.5),
    SymbolProfile("ETH-BTC", 0.049, "0.00001", "0.0001", 8.0, 1.2, 0.8),
)}


def profile_for(symbol: str) -> SymbolProfile:
    """The catalogue entry, or a plausible profile derived from the name (stable across runs)."""
    venue_symbol(symbol)
    if symbol in CATALOGUE:
        return CATALOGUE[symbol]
    h = zlib.crc32(symbol.encode())
    mid = 10 ** (-1.5 + 4.5 * ((h & 0xFFFF) / 0xFFFF))  # 0.03 .. 1000
    tick_exp = min(8, max(0, 4 - math.floor(math.log10(mid))))  # about 4-5 significant digits
    mid = round(mid, tick_exp)
    base_qty = 20_000.0 / mid  # about $20k per level near the touch
    lot_exp = min(8, max(0, 3 - math.floor(math.log10(base_qty))))
    return SymbolProfile(symbol, mid, f"{Decimal(1).scaleb(-tick_exp):f}", f"{Decimal(1).scaleb(-lot_exp):f}",
                         base_qty, 1.5, 1.2 + ((h >> 16) & 0xFF) / 255.0)


# -- random numbers -----------------------------------------------------------------------


class _Rand:
    """Block-drawn uniforms and normals: one numpy call per 4096 draws."""

    __slots__ = ("gen", "_u", "_n")

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen
        self._u: list[float] = []
        self._n: list[float] = []

    def u(self) -> float:
        if not self._u:
            self._u = self.gen.random(4096).tolist()
        return self._u.pop()

    def n(self) -> float:
        if not self._n:
            self._n = self.gen.standard_normal(4096).tolist()
        return self._n.pop()

    def exp(self) -> float:
        return -math.log(1.0 - self.u())

    def poisson(self, lam: float) -> int:
        return int(self.gen.poisson(lam)) if lam > 0 else 0


# -- the book ---------------------------------------------------------------------------


class _Side:
    """One side, best first.  key = tick for asks, -tick for bids: ascending = worse."""

    __slots__ = ("sign", "keys", "qty", "wob", "changes", "walls")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.keys: list[int] = []
        self.qty: list[int] = []  # lots
        self.wob: list[float] = []  # persistent per-level size factor
        self.changes: dict[int, int] = {}  # key -> final lots this frame (0: deleted)
        self.walls: dict[int, int] = {}  # key -> extra lots a wall added there

    def set(self, i: int, lots: int) -> None:
        self.qty[i] = lots
        self.changes[self.keys[i]] = lots

    def delete(self, i: int) -> None:
        key = self.keys.pop(i)
        self.qty.pop(i)
        self.wob.pop(i)
        self.changes[key] = 0
        self.walls.pop(key, None)

    def insert(self, key: int, lots: int, wob: float) -> int:
        i = bisect.bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            self.qty[i] = lots
        else:
            self.keys.insert(i, key)
            self.qty.insert(i, lots)
            self.wob.insert(i, wob)
        self.changes[key] = lots
        return i

    def top_sum(self, n: int) -> int:
        return sum(self.qty[:n])


class SymbolSim:
    """The model of one instrument; `step` produces its next frame."""

    def __init__(self, symbol: str, profile: SymbolProfile, spec: ScenarioSpec, timeline: Timeline,
                 seed: int) -> None:
        self.symbol = symbol
        self.profile = profile
        self.native = venue_symbol(symbol)
        self.stream = self.native.lower() + "@depth@100ms"
        self.timeline = timeline
        self.rand = _Rand(np.random.Generator(np.random.PCG64(
            np.random.SeedSequence([seed & 0xFFFFFFFF, zlib.crc32(symbol.encode()), 0]))))
        self.tick_e8 = _e8(profile.tick)
        self.lot_e8 = _e8(profile.lot)
        self.levels = spec.levels
        self.slack = max(10, spec.levels // 6)
        n = spec.normal
        self.ratio_center_log = math.log(n.ratio_center)
        self.ratio_swing = n.ratio_swing
        self.tau_s = n.ratio_tau_s
        self.update_rate_hz = n.update_rate_hz
        self.trade_rate_hz = n.trade_rate_hz
        self.vol = profile.vol_bps * 1e-4 * n.volatility
        self.dt_s = spec.frame_interval_ms / 1000.0
        self.base_lots = profile.base_qty * E8 / self.lot_e8
        self.gap_extra = max(0.0, profile.gap_ticks - 1.0)
        self.log_mid0 = math.log(profile.mid * E8 / self.tick_e8)  # log of the mid in ticks
        self.walk = 0.0
        self.ou = self.rand.n()  # start from the stationary distribution
        self.drivers = Drivers()
        self.update_id = 1_000_000_000 + int(self.rand.u() * 1e9)
        self.bids = _Side(-1)
        self.asks = _Side(+1)
        self.fair_ticks = math.exp(self.log_mid0)
        self.bid_scale = self.ask_scale = 1.0
        self._wall_ids: dict[int, tuple[_Side, int]] = {}  # wall id -> (side, key)
        self._scales()
        self._build()

    # -- model pieces -----------------------------------------------------------------

    def _scales(self) -> None:
        lr = self.ratio_center_log + self.ratio_swing * math.tanh(self.ou)
        d = self.drivers
        self.ask_scale = math.exp(0.5 * lr) * d.ask_mult
        self.bid_scale = math.exp(-0.5 * lr) * d.bid_mult

    def _gap(self, i: int) -> int:
        return 1 + int(self.rand.exp() * self.gap_extra * (1.0 + i / 40.0))

    def _wob(self) -> float:
        return math.exp(0.2 * self.rand.n() - 0.02)

    def _target(self, side: _Side, wob: float) -> int:
        # No size profile by depth on purpose: when the price moves, levels from
        # deeper in the book enter the top N, and any slope would tie the ratio
        # to the last price move instead of to the scenario.
        scale = self.ask_scale if side.sign > 0 else self.bid_scale
        noise = math.exp(0.12 * self.rand.n() - 0.0072)
        return max(1, int(self.base_lots * wob * scale * noise + 0.5))

    def _build(self) -> None:
        tb = math.floor(self.fair_ticks)
        for side, top in ((self.bids, -tb), (self.asks, tb + 1)):
            key = top
            for i in range(self.levels):
                if side.sign < 0 and key >= 0:
                    break  # no bids at or below the zero price
                wob = self._wob()
                side.keys.append(key)
                side.wob.append(wob)
                side.qty.append(self._target(side, wob))
                key += self._gap(i)
            side.changes.clear()

    def _recentre(self, side: _Side, top_key: int) -> None:
        keys = side.keys
        # Levels the price moved through were taken by market orders.
        while keys and keys[0] < top_key:
            side.delete(0)
        if keys and keys[0] == top_key:
            return
        # The side fell behind the price: new limit orders fill towards the touch.
        stop = keys[0] if keys else None
        new: list[int] = []
        key = top_key
        limit = 0 if side.sign < 0 else None  # bid keys are -ticks: a price must stay > 0
        while (stop is None or key < stop) and len(new) < self.levels and (limit is None or key < limit):
            new.append(key)
            key += self._gap(len(new))
        for k in new:
            wob = self._wob()
            side.insert(k, self._target(side, wob), wob)

    def _keep_count(self, side: _Side) -> None:
        while len(side.keys) > self.levels + self.slack:
            side.delete(len(side.keys) - 1)
        while side.keys and len(side.keys) < self.levels:
            key = side.keys[-1] + self._gap(len(side.keys))
            if side.sign < 0 and key >= 0:
                break  # the bid side reached the zero price
            wob = self._wob()
            side.insert(key, self._target(side, wob), wob)

    def _pick(self, n: int) -> int:
        """A level index: mostly near the touch (where the traffic is), some anywhere."""
        r = self.rand.u()
        if r < 0.3:
            i = int(self.rand.exp() * 8.0)
        elif r < 0.85:
            i = int(self.rand.u() * min(n, 60))
        else:
            i = int(self.rand.u() * n)
        return min(i, n - 1)

    def _refresh(self, count: int) -> None:
        rand = self.rand
        for _ in range(count):
            side = self.bids if rand.u() < 0.5 else self.asks
            n = len(side.keys)
            if n < 2:
                continue
            i = self._pick(n)
            key = side.keys[i]
            if key in side.walls:
                continue
            if rand.u() < 0.15:
                # Cancel, and re-post the size at a free price elsewhere on this side.
                side.delete(i)
                j = self._pick(n - 1)
                k0 = side.keys[j]
                k1 = side.keys[j + 1] if j + 1 < len(side.keys) else k0 + self._gap(j)
                new_key = k0 + 1 + int(rand.u() * (k1 - k0 - 1))
                if k1 - k0 > 1 and not (side.sign < 0 and new_key >= 0):
                    wob = self._wob()
                    side.insert(new_key, self._target(side, wob), wob)
            else:
                side.set(i, self._target(side, side.wob[i]))

    def _trade(self, side: _Side) -> None:
        """A market order eating into `side` from the top; it stops at a wall."""
        if not side.keys or side.keys[0] in side.walls:
            return
        size = int(side.qty[0] * (0.2 + 1.2 * self.rand.u())) + 1
        while size > 0 and side.keys and side.keys[0] not in side.walls:
            if side.qty[0] <= size:
                size -= side.qty[0]
                side.delete(0)
            else:
                side.set(0, side.qty[0] - size)
                size = 0

    def _wall(self, op: tuple) -> None:
        if op[0] == "on":
            _, wall_id, side_name, level, ratio = op
            side = self.asks if side_name == "ask" else self.bids
            other = self.bids if side is self.asks else self.asks
            if len(side.keys) <= level:
                return
            # Size the wall so the top-N ratio jumps to `ratio` right now.
            extra = max(1, int(ratio * other.top_sum(DESIGN_DEPTH) - side.top_sum(DESIGN_DEPTH)))
            key = side.keys[level]
            side.set(level, side.qty[level] + extra)
            side.walls[key] = extra
            self._wall_ids[wall_id] = (side, key)
        else:
            found = self._wall_ids.pop(op[1], None)
            if found is None:
                return
            side, key = found
            added = side.walls.pop(key, None)
            if added is None:
                return  # already taken or trimmed
            i = bisect.bisect_left(side.keys, key)
            if i < len(side.keys) and side.keys[i] == key:
                side.set(i, max(1, side.qty[i] - added))

    # -- one frame ---------------------------------------------------------------------

    def step(self, t_ms: int) -> bytes | None:
        rand = self.rand
        d = self.drivers
        ops = self.timeline.drivers(t_ms, d)
        dt = self.dt_s
        # Ratio wander (OU, exact discretisation) and the fair price.
        a = math.exp(-dt / self.tau_s)
        self.ou = self.ou * a + math.sqrt(1.0 - a * a) * rand.n()
        self._scales()
        # The walk reverts (slowly) to the starting price, net of the falls that
        # events left behind: an endless demo with a crash every few minutes
        # must not grind the price towards zero.
        target = -self.timeline.settled_offset
        self.walk += (target - self.walk) * (dt / PRICE_REVERT_S) + self.vol * math.sqrt(dt) * rand.n()
        self.fair_ticks = math.exp(self.log_mid0 + self.walk + d.log_offset)
        tb = max(1, math.floor(self.fair_ticks))
        # A standing wall is resistance: the price does not trade through it
        # (a buyer would have to take the whole wall first).
        if self.asks.walls:
            tb = min(tb, min(self.asks.walls) - 1)
        if self.bids.walls:
            tb = max(tb, -min(self.bids.walls))
        self._recentre(self.bids, -tb)
        self._recentre(self.asks, tb + 1)
        for op in ops:
            self._wall(op)
        self._refresh(rand.poisson(self.update_rate_hz * dt * d.activity))
        for _ in range(rand.poisson(self.trade_rate_hz * dt * d.activity)):
            if rand.u() < 0.5:
                self._trade(self.bids)
            elif d.buy_trades > 0.0:
                self._trade(self.asks)
        self._keep_count(self.bids)
        self._keep_count(self.asks)
        return self._emit(t_ms)

    def _emit(self, t_ms: int) -> bytes | None:
        bc, ac = self.bids.changes, self.asks.changes
        n = len(bc) + len(ac)
        if n == 0:
            return None
        tick, lot = self.tick_e8, self.lot_e8
        # Bids best first (descending price), asks ascending, as Binance lists them.
        b = [(fmt_e8(-k * tick), fmt_e8(q * lot)) for k, q in sorted(bc.items())]
        a = [(fmt_e8(k * tick), fmt_e8(q * lot)) for k, q in sorted(ac.items())]
        bc.clear()
        ac.clear()
        first = self.update_id + 1
        # Several order events can hit one level inside a frame: ids count events
        # (about 1.45 per reported level in real BTCUSDT traffic).
        self.update_id += n + int(self.rand.exp() * 0.45 * n)
        return _encoder.encode(CombinedFrame(self.stream, DepthUpdate(
            "depthUpdate", t_ms, self.native, first, self.update_id, b, a)))

    def snapshot(self, limit: int = 1000) -> bytes:
        tick, lot = self.tick_e8, self.lot_e8
        bids = [(fmt_e8(-k * tick), fmt_e8(q * lot)) for k, q in zip(self.bids.keys[:limit], self.bids.qty[:limit], strict=True)]
        asks = [(fmt_e8(k * tick), fmt_e8(q * lot)) for k, q in zip(self.asks.keys[:limit], self.asks.qty[:limit], strict=True)]
        return _encoder.encode(DepthSnapshot(self.update_id, bids, asks))

    # -- truth, for tests and charts -------------------------------------------------------

    def mid_price(self) -> float:
        return (self.asks.keys[0] - self.bids.keys[0]) * 0.5 * self.tick_e8 / E8

    def top_ratio(self, n: int = DESIGN_DEPTH) -> float:
        return self.asks.top_sum(n) / max(1, self.bids.top_sum(n))


@dataclass(slots=True, frozen=True)
class Frame:
    symbol: str
    recv_ms: int
    data: bytes


class MarketGenerator:
    """Simulated Binance spot market for any number of symbols.

    Frames come out in time order: symbol i ticks at start + k*interval +
    i*interval/n, so symbols interleave.  `snapshot_body` answers a REST depth
    request from the current state (its lastUpdateId is the last emitted `u`).
    """

    def __init__(self, symbols: list[str], scenario: ScenarioSpec | str = "normal", seed: int = 0,
                 *, start_ms: int = DEFAULT_START_MS) -> None:
        if not symbols:
            raise ValueError("need at least one symbol")
        if len(set(symbols)) != len(symbols):
            raise ValueError("duplicate symbols")
        self.spec = load_scenario(scenario) if isinstance(scenario, str) else scenario
        self.seed = seed
        self.start_ms = start_ms
        self.interval_ms = self.spec.frame_interval_ms
        self.end_ms = None if self.spec.duration_s is None else start_ms + int(self.spec.duration_s * 1000)
        self.symbols = list(symbols)
        self.sims: dict[str, SymbolSim] = {}
        for i, s in enumerate(symbols):
            timeline = Timeline(self.spec, s, i, seed, start_ms)
            self.sims[s] = SymbolSim(s, profile_for(s), self.spec, timeline, seed)
        n = len(symbols)
        self._phase_ms = [(i * self.interval_ms) // n for i in range(n)]
        self._k = 0  # interval counter
        self._i = 0  # next symbol within the interval

    @property
    def now_ms(self) -> int:
        """Time of the next frame slot."""
        return self.start_ms + self._k * self.interval_ms + self._phase_ms[self._i]

    def done(self) -> bool:
        return self.end_ms is not None and self.now_ms >= self.end_ms

    def next_frame(self) -> Frame | None:
        """The next frame, or None once the scenario's duration is over."""
        while not self.done():
            t = self.now_ms
            sim = self.sims[self.symbols[self._i]]
            self._i += 1
            if self._i == len(self.symbols):
                self._i = 0
                self._k += 1
            data = sim.step(t)
            if data is not None:
                return Frame(sim.symbol, t, data)
        return None

    def frames(self, until_ms: int | None = None):
        """Iterate frames up to (excluding) until_ms or the end of the scenario."""
        while until_ms is None or self.now_ms < until_ms:
            f = self.next_frame()
            if f is None:
                return
            yield f

    def snapshot_body(self, symbol: str, limit: int = 1000) -> bytes:
        return self.sims[symbol].snapshot(limit)

    def snapshot_for_url(self, symbol: str, url: str) -> bytes:
        """Answer a FetchSnapshot action: honours the URL's `limit` like the venue does."""
        q = parse_qs(urlsplit(url).query)
        try:
            limit = max(1, min(5000, int(q.get("limit", ["1000"])[0])))
        except ValueError:
            limit = 1000
        return self.snapshot_body(symbol, limit)

    def windows(self, symbol: str | None = None) -> list[CrashWindow]:
        """Labelled crash windows (drawn so far; all of them for finite scenarios)."""
        if symbol is not None:
            return self.sims[symbol].timeline.windows
        out = [w for s in self.symbols for w in self.sims[s].timeline.windows]
        return sorted(out, key=lambda w: (w.start_ms, w.symbol))
