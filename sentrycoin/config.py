"""Settings: environment variables and an optional TOML file -> validated `Settings`.

Precedence: built-in defaults < TOML file < environment < command-line flags.
Every mistake is a `ConfigError` with a one-line message naming the key; the
CLI prints it and exits 2 (never a traceback).

Environment variables (names users already know from the original monitor):
    EXCHANGE, SYMBOL, SYMBOLS, DANGER_RATIO, ORDER_BOOK_DEPTH, COOLDOWN_MINUTES,
    REARM_RATIO, MIN_PERSISTENCE_MS, MIN_VOLUME, CLOCK_SKEW_S, SIGNAL, BAND_BPS, LOG_LEVEL, LOG_FORMAT,
    TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID, TELEGRAM_API_URL, WEBHOOK_URL,
    PUBLIC_URL, SENTRY_DB, ALERT_RETENTION_DAYS, HOST, PORT, STATUS_TOKEN, STALE_AFTER_S, SNAPSHOT_TIMEOUT_S,
    ACCESS_LOG,
    MOCK_FALLBACK, MOCK_FALLBACK_AFTER_S, SIM_SCENARIO, SIM_SYMBOLS, SIM_SEED, SIM_SPEED,
    and the per-venue <VENUE>_WS_URL / <VENUE>_REST_URL (see feeds/registry.py).

The TOML file (`sentrycoin run --config FILE`, schema in examples/sentrycoin.toml):
    [detector]            defaults for every market (danger_ratio, cooldown_minutes, ...)
    [presets.NAME]        named detector settings; `conservative` and `aggressive` are built in
    [[markets]]           exchange, symbols = [...], optional preset and any detector key
    [telegram] [alerts] [server] [simulation] [logging]
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentrycoin.feeds.venues import VENUE_NAMES as VENUE_NAMES  # one list: the venue table
from sentrycoin.market import SIGNALS, DetectorSettings

SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")
SCENARIOS = ("normal", "flash_crash", "whale_dump", "spoof", "recovery", "mixed")
REDACTED = "***"


class ConfigError(ValueError):
    """A configuration mistake; str() is one line naming the key."""


#: Built-in presets; a file may redefine them or add its own.
BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    "conservative": {"danger_ratio": 3.0, "cooldown_minutes": 10},
    "aggressive": {"danger_ratio": 2.0, "cooldown_minutes": 5},
}

# Detector keys accepted in [detector], [presets.X] and [[markets]].
DETECTOR_KEYS = {
    "danger_ratio": float,
    "rearm_ratio": float,
    "cooldown_minutes": float,
    "min_persistence_ms": int,
    "critical_multiple": float,
    "extreme_multiple": float,
    "realert_on_escalation": bool,
    "min_volume": float,
    # Seconds an event time may differ from its receive time before it is
    # counted in the market's clock_skew (CLOCK_SKEW_S).
    "clock_skew_s": float,
    # What the ratio compares: "levels" (top-N volumes) or "band" (notional
    # within band_bps of the mid); SIGNAL and BAND_BPS.
    "signal": str,
    "band_bps": float,
}


@dataclass(frozen=True, slots=True)
class MarketConfig:
    exchange: str
    symbol: str
    detector: DetectorSettings
    preset: str | None = None


@dataclass(slots=True)
class Settings:
    markets: list[MarketConfig] = field(default_factory=list)
    depth: int = 50
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    log_level: str = "INFO"
    log_format: str = "text"
    telegram_bot_token: str | None = None
    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    webhook_url: str | None = None
    public_url: str | None = None
    db_path: str | None = None
    #: Alerts stored longer ago than this are pruned (0: keep every alert).
    alert_retention_days: float = 90.0
    #: One log line per HTTP request (logger sentrycoin.server.access, tokens redacted).
    access_log: bool = False
    host: str = "0.0.0.0"
    port: int = 8080
    status_token: str | None = None
    stale_after_s: float = 10.0
    snapshot_timeout_s: float = 15.0  # a book asked for and not valid by then: ask again
    mock_fallback: bool = False
    mock_fallback_after_s: float = 20.0
    sim_scenario: str = "mixed"
    sim_symbols: list[str] = field(default_factory=lambda: ["BTC-USDT", "ETH-USDT", "SOL-USDT"])
    sim_seed: int = 1
    sim_speed: float = 1.0
    venue_urls: dict[str, str] = field(default_factory=dict)  # env name -> URL override

    @property
    def simulated(self) -> bool:
        return not self.markets

    @property
    def telegram_configured(self) -> bool:
        return bool(self.telegram_bot_token and self.telegram_chat_id)

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by '***'."""
        out: dict[str, Any] = {
            "depth": self.depth,
            "detector": _detector_dict(self.detector),
            "markets": [
                {"exchange": m.exchange, "symbol": m.symbol, "preset": m.preset, "detector": _detector_dict(m.detector)}
                for m in self.markets
            ],
            "log_level": self.log_level,
            "log_format": self.log_format,
            "telegram_bot_token": REDACTED if self.telegram_bot_token else None,
            "telegram_chat_id": REDACTED if self.telegram_chat_id else None,
            "telegram_api_url": self.telegram_api_url,
            "webhook_url": _redact_url(self.webhook_url),
            "public_url": self.public_url,
            "db_path": self.db_path,
            "alert_retention_days": self.alert_retention_days,
            "access_log": self.access_log,
            "host": self.host,
            "port": self.port,
            "status_token": REDACTED if self.status_token else None,
            "stale_after_s": self.stale_after_s,
            "snapshot_timeout_s": self.snapshot_timeout_s,
            "mock_fallback": self.mock_fallback,
            "mock_fallback_after_s": self.mock_fallback_after_s,
            "venue_urls": dict(self.venue_urls),
        }
        if self.simulated or self.mock_fallback:
            out["simulation"] = {
                "scenario": self.sim_scenario,
                "symbols": list(self.sim_symbols),
                "seed": self.sim_seed,
                "speed": self.sim_speed,
            }
        return out


def _detector_dict(d: DetectorSettings) -> dict[str, Any]:
    return {
        "danger_ratio": d.danger_ratio,
        "rearm_ratio": d.rearm_ratio if d.rearm_ratio is not None else round(0.9 * d.danger_ratio, 10),
        "cooldown_s": d.cooldown_s,
        "min_persistence_ms": d.min_persistence_ms,
        "critical_multiple": d.critical_multiple,
        "extreme_multiple": d.extreme_multiple,
        "realert_on_escalation": d.realert_on_escalation,
        "min_volume": d.min_volume,
        "clock_skew_s": d.clock_skew_s,
        "signal": d.signal,
        "band_bps": d.band_bps,
    }


def _redact_url(url: str | None) -> str | None:
    # Webhook URLs often embed a secret in the path or query: keep only the origin.
    if not url:
        return url
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#@]*@)?", url)
    rest = url[m.end():] if m and m.group(1) else url
    origin = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)?([^/?#]*)", rest)
    return f"{origin.group(0)}/{REDACTED}" if origin else REDACTED


# -- value parsing ------------------------------------------------------------


def _as(kind: type, value: Any, key: str) -> Any:
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            result = float(value)
            if result != result or result in (float("inf"), float("-inf")):
                raise ValueError
            return result
        if kind is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r}")


def parse_symbol(raw: str, key: str) -> str:
    symbol = raw.strip().upper()
    if not SYMBOL_RE.match(symbol):
        raise ConfigError(f"{key}: symbol {raw!r} is not in BASE-QUOTE form (e.g. BTC-USDT)")
    return symbol


def parse_symbols(raw: str | list[Any], key: str) -> list[str]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise ConfigError(f"{key}: expected a list of symbols, got {raw!r}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{key}: expected a symbol string, got {item!r}")
        if item.strip():
            symbol = parse_symbol(item, key)
            if symbol not in out:
                out.append(symbol)
    if not out:
        raise ConfigError(f"{key}: no symbols given")
    return out


def parse_venue(raw: Any, key: str) -> str:
    venue = _as(str, raw, key).strip().lower()
    if venue not in VENUE_NAMES:
        raise ConfigError(f"{key}: unknown venue {raw!r}; known: {', '.join(VENUE_NAMES)}")
    return venue


#: What each detector key must be, checked on the value the user wrote (before
#: any unit conversion), so the message names their key and their number.
_DETECTOR_RANGES: dict[str, tuple[Any, str]] = {
    "danger_ratio": (lambda v: v > 0, "must be > 0"),
    "rearm_ratio": (lambda v: v > 0, "must be > 0 (and at most the danger ratio)"),
    "cooldown_minutes": (lambda v: v >= 0, "must be >= 0 (0: no cooldown)"),
    "min_persistence_ms": (lambda v: v >= 0, "must be >= 0"),
    "critical_multiple": (lambda v: v >= 1, "must be >= 1"),
    "extreme_multiple": (lambda v: v >= 1, "must be >= 1"),
    "min_volume": (lambda v: v >= 0, "must be >= 0"),
    "clock_skew_s": (lambda v: v > 0, "must be > 0"),
    "signal": (lambda v: v in SIGNALS, f"must be one of {', '.join(SIGNALS)}"),
    "band_bps": (lambda v: 0 < v < 1e4, "must be > 0 and < 10000"),
}


def _detector_value(key: str, value: Any, name: str) -> Any:
    """`value` of detector `key` as written under `name` (a TOML key or an env variable), checked."""
    parsed = _as(DETECTOR_KEYS[key], value, name)
    check = _DETECTOR_RANGES.get(key)
    if check is not None and not check[0](parsed):
        raise ConfigError(f"{name}: {check[1]}, got {value!r}" if isinstance(value, str)
                          else f"{name}: {check[1]}, got {parsed!r}")
    return parsed


def _detector_overrides(table: Mapping[str, Any], where: str, allowed_extra: tuple[str, ...] = (),
                        names: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in allowed_extra:
            continue
        if key not in DETECTOR_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(DETECTOR_KEYS) + list(allowed_extra))})")
        out[key] = _detector_value(key, value, f"{where}.{key}")
        if names is not None:
            names[key] = f"{where}.{key}"
    return out


def build_detector(base: DetectorSettings, overrides: Mapping[str, Any], where: str,
                   names: Mapping[str, str] | None = None) -> DetectorSettings:
    """`base` with `overrides` applied; `names` maps a detector key to what the user
    wrote for it (e.g. COOLDOWN_MINUTES), used in messages (default `where.key`)."""

    def name(key: str) -> str:
        return (names or {}).get(key) or f"{where}.{key}"

    def mention(key: str, value: float) -> str:
        # A key the user did not set is a default (or inherited) value: say so, not our field name.
        if (names and key in names) or key in overrides:
            return f"{name(key)} = {value:g}"
        return f"{key.replace('_', ' ')} {value:g}, not set here"

    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key == "cooldown_minutes":
            changes["cooldown_s"] = value * 60.0
        else:
            changes[key] = value
    # A new danger ratio without an explicit re-arm level re-derives it.
    if "danger_ratio" in changes and "rearm_ratio" not in changes:
        changes["rearm_ratio"] = None
    detector = dataclasses.replace(base, **changes)
    # The two rules that relate keys: name both, as the user wrote them.
    if detector.rearm_ratio is not None and detector.rearm_ratio > detector.danger_ratio:
        raise ConfigError(f"{name('rearm_ratio')}: must be at most the danger ratio "
                          f"({mention('danger_ratio', detector.danger_ratio)}), got {detector.rearm_ratio:g}")
    if detector.critical_multiple > detector.extreme_multiple:
        raise ConfigError(f"{name('critical_multiple')}: must be at most the extreme multiple "
                          f"({mention('extreme_multiple', detector.extreme_multiple)}), got {detector.critical_multiple:g}")
    try:
        detector.build()  # the core validates ranges too; surface its message with the key
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return detector


# -- loading ------------------------------------------------------------------

_FILE_SECTIONS = {"detector", "presets", "markets", "telegram", "alerts", "server", "simulation", "logging", "depth"}


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    exchange: str | None = None,
    symbols: str | None = None,
    config_label: str | None = None,
) -> Settings:
    """Defaults < TOML file < environment < explicit arguments (CLI flags).

    `config_label` is how the file is named in messages (default ``--config FILE``)."""
    env = os.environ if env is None else env
    s = Settings()
    presets = {k: dict(v) for k, v in BUILTIN_PRESETS.items()}
    file_markets: list[tuple[str, str, dict[str, Any], str | None]] = []
    detector_overrides: dict[str, Any] = {}
    detector_names: dict[str, str] = {}  # detector key -> the TOML key or env variable that set it

    if config_file is not None:
        data = _read_toml(config_file, config_label or f"--config {config_file}")
        unknown = set(data) - _FILE_SECTIONS
        if unknown:
            raise ConfigError(f"{sorted(unknown)[0]}: unknown top-level key (allowed: {', '.join(sorted(_FILE_SECTIONS))})")
        if "depth" in data:
            s.depth = _as(int, data["depth"], "depth")
        detector_overrides = _detector_overrides(_table(data, "detector"), "detector", names=detector_names)
        for name, table in _table(data, "presets").items():
            if not isinstance(table, dict):
                raise ConfigError(f"presets.{name}: expected a table")
            presets[name] = _detector_overrides(table, f"presets.{name}")
        markets = data.get("markets", [])
        if not isinstance(markets, list):
            raise ConfigError("markets: expected an array of tables ([[markets]])")
        for i, table in enumerate(markets):
            where = f"markets[{i}]"
            if not isinstance(table, dict):
                raise ConfigError(f"{where}: expected a table")
            extra = ("exchange", "symbols", "symbol", "preset")
            if "exchange" not in table:
                raise ConfigError(f"{where}.exchange: missing")
            venue = parse_venue(table["exchange"], f"{where}.exchange")
            if "symbols" in table:
                syms = parse_symbols(table["symbols"], f"{where}.symbols")
            elif "symbol" in table:
                syms = [parse_symbol(_as(str, table["symbol"], f"{where}.symbol"), f"{where}.symbol")]
            else:
                raise ConfigError(f"{where}.symbols: missing")
            preset = table.get("preset")
            if preset is not None:
                preset = _as(str, preset, f"{where}.preset")
            overrides = _detector_overrides(table, where, extra)
            for sym in syms:
                file_markets.append((venue, sym, overrides, preset))
        _apply_file_sections(s, data)

    # Environment overrides the file.
    detector_overrides.update(_env_detector(env, detector_names))
    _apply_env(s, env)
    depth_key = "depth"  # the file's key, unless the variable overrides it
    if "ORDER_BOOK_DEPTH" in env:
        s.depth = _as(int, env["ORDER_BOOK_DEPTH"], "ORDER_BOOK_DEPTH")
        depth_key = "ORDER_BOOK_DEPTH"
    if not 1 <= s.depth <= 5000:
        raise ConfigError(f"{depth_key}: must be between 1 and 5000, got {s.depth}")

    base = build_detector(DetectorSettings(), detector_overrides, "detector", detector_names)
    s.detector = base

    env_exchange = exchange or env.get("EXCHANGE") or None
    env_symbols = symbols or env.get("SYMBOLS") or env.get("SYMBOL") or None
    if env_exchange or env_symbols:
        key_ex = "--exchange" if exchange else "EXCHANGE"
        key_sym = "--symbols" if symbols else ("SYMBOLS" if env.get("SYMBOLS") else "SYMBOL")
        if not env_exchange:
            raise ConfigError(f"EXCHANGE: {key_sym} given without a venue; set EXCHANGE or --exchange")
        if not env_symbols:
            raise ConfigError(f"SYMBOLS: {key_ex} given without symbols; set SYMBOLS or --symbols")
        venue = parse_venue(env_exchange, key_ex)
        # Environment/flags name the markets to watch: they replace the file's list.
        s.markets = [MarketConfig(venue, sym, base) for sym in parse_symbols(env_symbols, key_sym)]
    else:
        built: list[MarketConfig] = []
        seen: set[tuple[str, str]] = set()
        for venue, sym, overrides, preset in file_markets:
            where = f"markets[{venue} {sym}]"
            detector = base
            if preset is not None:
                if preset not in presets:
                    raise ConfigError(f"{where}.preset: unknown preset {preset!r}; known: {', '.join(sorted(presets))}")
                detector = build_detector(detector, presets[preset], f"presets.{preset}")
            detector = build_detector(detector, overrides, where)
            if (venue, sym) in seen:
                raise ConfigError(f"{where}: listed twice")
            seen.add((venue, sym))
            built.append(MarketConfig(venue, sym, detector, preset))
        s.markets = built
    return s


def _read_toml(path: str | Path, label: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read the file ({exc.strerror or type(exc).__name__})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: not a text file (TOML is UTF-8 text)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table")
    return value


_SECTION_KEYS: dict[str, dict[str, tuple[str, type]]] = {
    "telegram": {"bot_token": ("telegram_bot_token", str), "chat_id": ("telegram_chat_id", str),
                 "api_url": ("telegram_api_url", str)},
    "alerts": {"webhook_url": ("webhook_url", str), "db": ("db_path", str),
               "retention_days": ("alert_retention_days", float)},
    "server": {"host": ("host", str), "port": ("port", int), "public_url": ("public_url", str),
               "status_token": ("status_token", str), "stale_after_s": ("stale_after_s", float),
               "snapshot_timeout_s": ("snapshot_timeout_s", float)},
    "simulation": {"scenario": ("sim_scenario", str), "symbols": ("sim_symbols", list), "seed": ("sim_seed", int),
                   "speed": ("sim_speed", float), "mock_fallback": ("mock_fallback", bool),
                   "mock_fallback_after_s": ("mock_fallback_after_s", float)},
    "logging": {"level": ("log_level", str), "format": ("log_format", str), "access_log": ("access_log", bool)},
}


def _apply_file_sections(s: Settings, data: Mapping[str, Any]) -> None:
    for section, keys in _SECTION_KEYS.items():
        for key, value in _table(data, section).items():
            if key not in keys:
                raise ConfigError(f"{section}.{key}: unknown key (allowed: {', '.join(keys)})")
            attr, kind = keys[key]
            where = f"{section}.{key}"
            if kind is list:
                setattr(s, attr, parse_symbols(value, where))
            else:
                setattr(s, attr, _as(kind, value, where))
    _validate(s, file=True)


_ENV_DETECTOR = {
    "DANGER_RATIO": "danger_ratio",
    "REARM_RATIO": "rearm_ratio",
    "COOLDOWN_MINUTES": "cooldown_minutes",
    "MIN_PERSISTENCE_MS": "min_persistence_ms",
    "MIN_VOLUME": "min_volume",
    "CLOCK_SKEW_S": "clock_skew_s",
    "SIGNAL": "signal",
    "BAND_BPS": "band_bps",
}


def _env_detector(env: Mapping[str, str], names: dict[str, str]) -> dict[str, Any]:
    out = {}
    for name, key in _ENV_DETECTOR.items():
        if env.get(name, "") != "":
            out[key] = _detector_value(key, env[name], name)
            names[key] = name
    return out


_ENV_PLAIN: dict[str, tuple[str, type]] = {
    "LOG_LEVEL": ("log_level", str),
    "LOG_FORMAT": ("log_format", str),
    "TELEGRAM_BOT_TOKEN": ("telegram_bot_token", str),
    "TELEGRAM_CHAT_ID": ("telegram_chat_id", str),
    "TELEGRAM_API_URL": ("telegram_api_url", str),
    "WEBHOOK_URL": ("webhook_url", str),
    "PUBLIC_URL": ("public_url", str),
    "SENTRY_DB": ("db_path", str),
    "ALERT_RETENTION_DAYS": ("alert_retention_days", float),
    "ACCESS_LOG": ("access_log", bool),
    "HOST": ("host", str),
    "PORT": ("port", int),
    "STATUS_TOKEN": ("status_token", str),
    "STALE_AFTER_S": ("stale_after_s", float),
    "SNAPSHOT_TIMEOUT_S": ("snapshot_timeout_s", float),
    "MOCK_FALLBACK": ("mock_fallback", bool),
    "MOCK_FALLBACK_AFTER_S": ("mock_fallback_after_s", float),
    "SIM_SCENARIO": ("sim_scenario", str),
    "SIM_SEED": ("sim_seed", int),
    "SIM_SPEED": ("sim_speed", float),
}


def _apply_env(s: Settings, env: Mapping[str, str]) -> None:
    for name, (attr, kind) in _ENV_PLAIN.items():
        value = env.get(name)
        if value is not None and value != "":
            setattr(s, attr, _as(kind, value, name))
    if env.get("SIM_SYMBOLS"):
        s.sim_symbols = parse_symbols(env["SIM_SYMBOLS"], "SIM_SYMBOLS")
    for venue in VENUE_NAMES:
        prefix = venue.upper().replace("-", "_")
        for suffix in ("_WS_URL", "_REST_URL"):
            name = prefix + suffix
            if env.get(name):
                s.venue_urls[name] = env[name]
    _validate(s, file=False)


def _validate(s: Settings, *, file: bool) -> None:
    def key(env_name: str, file_key: str) -> str:
        return file_key if file else env_name

    s.log_level = s.log_level.upper()
    if s.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"{key('LOG_LEVEL', 'logging.level')}: unknown level {s.log_level!r} (DEBUG, INFO, WARNING, ERROR)")
    s.log_format = s.log_format.lower()
    if s.log_format not in ("text", "json"):
        raise ConfigError(f"{key('LOG_FORMAT', 'logging.format')}: must be 'text' or 'json', got {s.log_format!r}")
    if not 0 <= s.port <= 65535:
        raise ConfigError(f"{key('PORT', 'server.port')}: must be 0-65535, got {s.port}")
    if not s.stale_after_s > 0:
        raise ConfigError(f"{key('STALE_AFTER_S', 'server.stale_after_s')}: must be > 0, got {s.stale_after_s}")
    if not s.snapshot_timeout_s > 0:
        raise ConfigError(f"{key('SNAPSHOT_TIMEOUT_S', 'server.snapshot_timeout_s')}: must be > 0, got {s.snapshot_timeout_s}")
    if not 0 <= s.alert_retention_days < 1e6:
        raise ConfigError(f"{key('ALERT_RETENTION_DAYS', 'alerts.retention_days')}: must be a number of days "
                          f">= 0 (0 keeps every alert), got {s.alert_retention_days}")
    if not s.mock_fallback_after_s > 0:
        raise ConfigError(f"{key('MOCK_FALLBACK_AFTER_S', 'simulation.mock_fallback_after_s')}: must be > 0, got {s.mock_fallback_after_s}")
    if not s.sim_speed > 0:
        raise ConfigError(f"{key('SIM_SPEED', 'simulation.speed')}: must be > 0, got {s.sim_speed}")
    if s.sim_scenario not in SCENARIOS and not s.sim_scenario.endswith(".toml"):
        raise ConfigError(
            f"{key('SIM_SCENARIO', 'simulation.scenario')}: unknown scenario {s.sim_scenario!r}; "
            f"known: {', '.join(SCENARIOS)} (or a path to a scenario .toml file)"
        )
