"""Every mistake a user can make with a flag, a variable or a file, through the real CLI.

Each case runs `python -m sentrycoin ...` in a subprocess and must end with
exit status 2 and exactly one stderr line, `sentrycoin: ...`, naming what
the user wrote (the flag, the variable, the TOML key or the file) - never a
traceback, never our internal field names.  The subprocesses run in a few
threads at once (module fixture) so the whole table stays fast.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sentrycoin.alerts.console import ConsoleNotifier
from sentrycoin.cli import build_parser
from sentrycoin.config import Settings, load_settings
from sentrycoin.logs import TextFormatter, log_format, setup_logging
from sentrycoin.store import AlertRecord


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    names: tuple[str, ...]  # each must appear in the one line: what the user wrote
    env: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # internal names the line must not show


# Placeholders filled in by the fixture: {dir}, {file}, {binary}, {bad_toml}, {empty_csv},
# {other_csv_gz}, {port} (a port a test socket listens on), {tmp}.
CASES = [
    # -- command line shape
    Case("no_command", (), ("name a command",)),
    Case("unknown_command", ("fly",), ("fly",)),
    Case("config_without_tool", ("config",), ("config check FILE",), absent=("config_command",)),
    Case("unknown_flag", ("run", "--bogus"), ("--bogus",)),
    # -- run: the HTTP port
    Case("port_env_in_use", ("run",), ("PORT={port}", "already in use"), env={"PORT": "{port}"}),
    Case("port_flag_in_use", ("run", "--port", "{port}"), ("--port={port}", "already in use")),
    Case("port_flag_negative", ("run", "--port", "-5"), ("--port", "-5")),
    Case("port_flag_too_big", ("run", "--port", "99999"), ("--port", "99999")),
    Case("port_flag_not_a_number", ("run", "--port", "http"), ("--port", "'http'")),
    Case("port_env_too_big", ("run",), ("PORT", "99999"), env={"PORT": "99999"}),
    Case("port_env_not_a_number", ("run",), ("PORT", "'abc'"), env={"PORT": "abc"}),
    Case("host_unknown", ("run", "--port", "1"), ("HOST=no.such.host.invalid",),
         env={"HOST": "no.such.host.invalid"}),
    # -- run: the simulated market
    Case("speed_zero", ("run", "--speed", "0"), ("--speed", "'0'")),
    Case("speed_negative", ("run", "--speed", "-1"), ("--speed", "'-1'")),
    Case("speed_nan", ("run", "--speed", "nan"), ("--speed", "'nan'")),
    Case("speed_inf", ("run", "--speed", "inf"), ("--speed", "'inf'")),
    Case("speed_text", ("run", "--speed", "fast"), ("--speed", "'fast'")),
    Case("sim_speed_env_zero", ("run",), ("SIM_SPEED",), env={"SIM_SPEED": "0"}),
    Case("seed_text", ("run", "--seed", "one"), ("--seed", "'one'")),
    Case("scenario_flag_unknown", ("run", "--scenario", "meltdown"), ("--scenario", "'meltdown'")),
    Case("scenario_flag_missing_file", ("run", "--scenario", "{tmp}/nope.toml"), ("--scenario", "nope.toml")),
    Case("scenario_flag_invalid_toml", ("run", "--scenario", "{bad_toml}"), ("--scenario", "{bad_toml}", "not valid TOML")),
    Case("scenario_flag_unknown_key", ("run", "--scenario", "{toml:name = 'x'\nwobble = 1}"),
         ("--scenario", "unknown key wobble")),
    Case("scenario_flag_binary", ("run", "--scenario", "{binary}"), ("--scenario {binary}", "not a text file")),
    Case("scenario_env_invalid_toml", ("run",), ("SIM_SCENARIO", "{bad_toml}"), env={"SIM_SCENARIO": "{bad_toml}"}),
    Case("scenario_env_unknown", ("run",), ("SIM_SCENARIO", "'meltdown'"), env={"SIM_SCENARIO": "meltdown"}),
    Case("sim_symbols_bad", ("run",), ("SIM_SYMBOLS", "'BTCUSDT'"), env={"SIM_SYMBOLS": "BTCUSDT"}),
    Case("record_dir_is_file", ("run", "--record", "{file}"), ("--record", "{file}", "is a file")),
    # -- run: the alert database
    Case("sentry_db_directory", ("run",), ("SENTRY_DB={dir}", "directory"), env={"SENTRY_DB": "{dir}"}),
    Case("sentry_db_under_file", ("run",), ("SENTRY_DB={file}/alerts.db",), env={"SENTRY_DB": "{file}/alerts.db"}),
    # -- markets
    Case("exchange_flag_unknown", ("run", "--exchange", "nasdaq", "--symbols", "BTC-USDT"), ("--exchange", "'nasdaq'")),
    Case("exchange_env_unknown", ("run",), ("EXCHANGE", "'nasdaq'"), env={"EXCHANGE": "nasdaq", "SYMBOLS": "BTC-USDT"}),
    Case("symbols_flag_without_exchange", ("run", "--symbols", "BTC-USDT"), ("--symbols", "EXCHANGE")),
    Case("exchange_without_symbols", ("run", "--exchange", "binance"), ("--exchange", "SYMBOLS")),
    Case("symbols_flag_bad_form", ("run", "--exchange", "binance", "--symbols", "BTCUSDT"), ("--symbols", "'BTCUSDT'")),
    Case("symbol_env_bad_form", ("run",), ("SYMBOL", "'BTC/USDT'"), env={"EXCHANGE": "binance", "SYMBOL": "BTC/USDT"}),
    # -- detector and other variables: named as written, never as our fields
    Case("cooldown_minutes_negative", ("run",), ("COOLDOWN_MINUTES", "-5"), env={"COOLDOWN_MINUTES": "-5"},
         absent=("cooldown_s", "-300", "detector:")),
    Case("danger_ratio_text", ("run",), ("DANGER_RATIO", "'high'"), env={"DANGER_RATIO": "high"}),
    Case("danger_ratio_zero", ("run",), ("DANGER_RATIO", "0"), env={"DANGER_RATIO": "0"}),
    Case("danger_ratio_nan", ("run",), ("DANGER_RATIO", "'nan'"), env={"DANGER_RATIO": "nan"}),
    Case("rearm_above_danger", ("run",), ("REARM_RATIO", "DANGER_RATIO = 2"),
         env={"REARM_RATIO": "3", "DANGER_RATIO": "2"}, absent=("rearm_ratio", "danger_ratio")),
    Case("rearm_above_default_danger", ("run",), ("REARM_RATIO", "2.5"), env={"REARM_RATIO": "3"},
         absent=("rearm_ratio", "detector.")),
    Case("min_persistence_negative", ("run",), ("MIN_PERSISTENCE_MS", "-1"), env={"MIN_PERSISTENCE_MS": "-1"},
         absent=("min_persistence_ms",)),
    Case("min_volume_negative", ("run",), ("MIN_VOLUME", "-1"), env={"MIN_VOLUME": "-1"}),
    Case("clock_skew_zero", ("run",), ("CLOCK_SKEW_S", "0"), env={"CLOCK_SKEW_S": "0"}, absent=("clock_skew_ms",)),
    Case("depth_zero", ("run",), ("ORDER_BOOK_DEPTH", "0"), env={"ORDER_BOOK_DEPTH": "0"}),
    Case("stale_after_zero", ("run",), ("STALE_AFTER_S", "0"), env={"STALE_AFTER_S": "0"}),
    Case("retention_negative", ("run",), ("ALERT_RETENTION_DAYS", "-1"), env={"ALERT_RETENTION_DAYS": "-1"}),
    Case("mock_fallback_not_bool", ("run",), ("MOCK_FALLBACK", "'maybe'"), env={"MOCK_FALLBACK": "maybe"}),
    Case("log_level_unknown", ("run",), ("LOG_LEVEL", "'LOUD'"), env={"LOG_LEVEL": "loud"}),
    Case("log_format_unknown", ("run",), ("LOG_FORMAT", "'xml'"), env={"LOG_FORMAT": "xml"}),
    # -- run --config FILE
    Case("config_flag_missing", ("run", "--config", "{tmp}/missing.toml"), ("--config", "missing.toml", "not found")),
    Case("config_flag_directory", ("run", "--config", "{dir}"), ("--config {dir}", "directory")),
    Case("config_flag_binary", ("run", "--config", "{binary}"), ("--config {binary}", "not a text file")),
    Case("config_flag_invalid_toml", ("run", "--config", "{bad_toml}"), ("--config {bad_toml}", "not valid TOML")),
    Case("config_unknown_section", ("run", "--config", "{toml:colour = 1}"), ("colour", "unknown")),
    Case("config_cooldown_negative", ("run", "--config", "{toml:[detector]\ncooldown_minutes = -5}"),
         ("detector.cooldown_minutes", "-5"), absent=("cooldown_s",)),
    Case("config_market_without_exchange", ("run", "--config", "{toml:[[markets]]\nsymbols = ['BTC-USDT']}"),
         ("markets[0].exchange",)),
    Case("config_unknown_preset",
         ("run", "--config", "{toml:[[markets]]\nexchange = 'binance'\nsymbols = ['BTC-USDT']\npreset = 'yolo'}"),
         ("preset", "'yolo'")),
    Case("config_depth_zero", ("run", "--config", "{toml:depth = 0}"), ("depth", "got 0"), absent=("ORDER_BOOK_DEPTH",)),
    Case("config_port_out_of_range", ("run", "--config", "{toml:[server]\nport = 70000}"), ("server.port", "70000")),
    # -- config check FILE: the file is named as written, not as --config
    Case("check_missing", ("config", "check", "{tmp}/missing.toml"), ("missing.toml", "not found"),
         absent=("--config",)),
    Case("check_directory", ("config", "check", "{dir}"), ("{dir}", "directory"), absent=("--config",)),
    Case("check_binary", ("config", "check", "{binary}"), ("{binary}", "not a text file"), absent=("--config",)),
    Case("check_invalid_toml", ("config", "check", "{bad_toml}"), ("{bad_toml}", "not valid TOML"),
         absent=("--config",)),
    Case("check_with_bad_env", ("config", "check", "{toml:}"), ("COOLDOWN_MINUTES",), env={"COOLDOWN_MINUTES": "x"}),
    # -- replay
    Case("replay_missing", ("replay", "{tmp}/missing.jsonl.zst"), ("missing.jsonl.zst",)),
    Case("replay_empty_csv", ("replay", "{empty_csv}"), ("{empty_csv}", "empty")),
    Case("replay_non_tardis_csv_gz", ("replay", "{other_csv_gz}"), ("{other_csv_gz}", "not a format")),
    Case("replay_directory", ("replay", "{dir}"), ("{dir}",)),
    Case("replay_danger_ratio_zero", ("replay", "--danger-ratio", "0", "{empty_csv}"), ("--danger-ratio", "'0'")),
    Case("replay_depth_zero", ("replay", "--depth", "0", "{empty_csv}"), ("--depth", "0")),
    # -- backtest
    Case("backtest_out_is_file", ("backtest", "--simulate", "--out", "{file}"), ("--out {file}", "is a file")),
    Case("backtest_danger_ratio_zero", ("backtest", "--simulate", "--danger-ratio", "0"), ("--danger-ratio", "'0'")),
    Case("backtest_cooldown_negative", ("backtest", "--simulate", "--cooldown-s", "-1"), ("--cooldown-s", "'-1'")),
    Case("backtest_persistence_negative", ("backtest", "--simulate", "--min-persistence-ms", "-1"),
         ("--min-persistence-ms", "-1")),
    Case("backtest_seeds_zero", ("backtest", "--simulate", "--seeds", "0"), ("--seeds", "0")),
    Case("backtest_chance_draws_few", ("backtest", "--simulate", "--chance-draws", "5"), ("--chance-draws", "5")),
    Case("backtest_early_negative", ("backtest", "--simulate", "--early-s", "-1"), ("--early-s", "-1")),
    Case("backtest_scenario_unknown", ("backtest", "--simulate", "--scenario", "meltdown"), ("--scenario", "'meltdown'")),
    Case("backtest_scenario_invalid_toml", ("backtest", "--simulate", "--scenario", "{bad_toml}"),
         ("--scenario", "{bad_toml}")),
    Case("backtest_symbols_bad", ("backtest", "--simulate", "--symbols", "BTCUSDT"), ("--symbols", "'BTCUSDT'")),
    Case("backtest_label_drop_bad", ("backtest", "--label-drop", "lots", "{empty_csv}"), ("lots",)),
    Case("backtest_empty_csv", ("backtest", "--label-drop", "1%:5m", "--out", "{tmp}/bt", "{empty_csv}"),
         ("{empty_csv}", "empty")),
    Case("backtest_non_tardis_csv_gz", ("backtest", "--label-drop", "1%:5m", "--out", "{tmp}/bt", "{other_csv_gz}"),
         ("{other_csv_gz}", "not a format")),
    # -- record
    Case("record_without_venue", ("record", "--out", "{tmp}/rec"), ("--exchange", "EXCHANGE")),
    Case("record_out_is_file", ("record", "--exchange", "binance", "--symbols", "BTC-USDT", "--out", "{file}"),
         ("--out {file}", "is a file")),
    Case("record_max_mb_zero", ("record", "--out", "{tmp}/rec", "--max-mb", "0"), ("--max-mb", "'0'")),
]

# Variables of the caller's environment that would change what a case tests.
_CLEARED = ("EXCHANGE", "SYMBOLS", "SYMBOL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "WEBHOOK_URL", "REDIS_URL",
            "DANGER_RATIO", "REARM_RATIO", "COOLDOWN_MINUTES", "MIN_PERSISTENCE_MS", "MIN_VOLUME", "CLOCK_SKEW_S",
            "ORDER_BOOK_DEPTH", "LOG_LEVEL", "LOG_FORMAT", "SIM_SCENARIO", "SIM_SPEED", "SIM_SEED", "SIM_SYMBOLS",
            "STALE_AFTER_S", "ALERT_RETENTION_DAYS", "MOCK_FALLBACK", "STATUS_TOKEN")


def _fill(text: str, places: dict[str, str], tmp: Path, counter: list[int]) -> str:
    if text.startswith("{toml:") and text.endswith("}"):
        counter[0] += 1
        path = tmp / f"settings-{counter[0]}.toml"
        path.write_text(text[len("{toml:"):-1] + "\n")
        return str(path)
    return text.format(**places)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Case, Case, subprocess.CompletedProcess]]:
    tmp = tmp_path_factory.mktemp("mistakes")
    (tmp / "a-directory").mkdir()
    (tmp / "a-file").write_text("not a folder\n")
    (tmp / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (tmp / "bad.toml").write_text("[detector\ndanger_ratio = \n")
    (tmp / "empty.csv").write_bytes(b"")
    (tmp / "other.csv.gz").write_bytes(gzip.compress(b"date,open,high,low,close\n2026-01-01,1,2,0.5,1.5\n"))
    # A port another program listens on (the test's own socket).
    occupier = socket.socket()
    occupier.bind(("127.0.0.1", 0))
    occupier.listen()
    places = {"tmp": str(tmp), "dir": str(tmp / "a-directory"), "file": str(tmp / "a-file"),
              "binary": str(tmp / "binary.toml"), "bad_toml": str(tmp / "bad.toml"),
              "empty_csv": str(tmp / "empty.csv"), "other_csv_gz": str(tmp / "other.csv.gz"),
              "port": str(occupier.getsockname()[1])}
    base_env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    base_env.update(HOST="127.0.0.1", PORT="0", SENTRY_DB=str(tmp / "alerts.db"), XDG_DATA_HOME=str(tmp / "xdg"),
                    NO_COLOR="1")
    counter = [0]
    filled: dict[str, Case] = {}
    for case in CASES:
        filled[case.id] = Case(
            case.id,
            tuple(_fill(a, places, tmp, counter) for a in case.argv),
            tuple(n.format(**places) for n in case.names),
            {k: v.format(**places) for k, v in case.env.items()},
            case.absent,
        )

    def run(case: Case) -> subprocess.CompletedProcess:
        # 20 s: a case that wrongly starts the monitor is killed, and fails, instead of hanging.
        return subprocess.run([sys.executable, "-m", "sentrycoin", *case.argv], capture_output=True, text=True,
                              timeout=20, env={**base_env, **case.env}, cwd=tmp)

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            procs = dict(zip(filled, pool.map(run, filled.values()), strict=True))
    finally:
        occupier.close()
    return {cid: (case, filled[cid], procs[cid]) for cid, case in zip(filled, CASES, strict=True)}


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_user_mistake_is_one_line_exit_2(results, case_id: str) -> None:
    _, case, proc = results[case_id]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}; stderr:\n{proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    (line,) = lines
    assert line.startswith("sentrycoin: "), line
    for name in case.names:
        assert name in line, f"{name!r} not in {line!r}"
    for internal in case.absent:
        assert internal not in line, f"{internal!r} in {line!r}"
    assert proc.stdout == "", proc.stdout


def test_every_case_id_is_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


# -- the rest of the front door ----------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for inner_name, inner in _subparsers(sub):
                    yield f"{name} {inner_name}", inner


def test_every_flag_and_argument_has_help_and_shows_its_default() -> None:
    parser = build_parser()
    commands = dict(_subparsers(parser))
    assert {"run", "config", "config check", "record", "replay", "backtest"} <= set(commands)
    for name, sub in [("sentrycoin", parser), *commands.items()]:
        text = sub.format_help()
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            label = "/".join(action.option_strings) or action.dest
            assert action.help, f"{name}: {label} has no help text"
            if action.option_strings and not any(action.default is v for v in (None, False, argparse.SUPPRESS)):
                # the default, as the help shows it, follows the flag in the formatted help
                options = text[text.index("options:"):]
                after = options[options.index(action.option_strings[-1]):]
                assert "default" in after.split("\n  -")[0], f"{name}: {label} help does not show its default"


def test_backtest_help_names_the_defaults_of_its_detector_flags() -> None:
    text = dict(_subparsers(build_parser()))["backtest"].format_help()
    for flag, default in (("--danger-ratio", "2.5"), ("--cooldown-s", "300.0"), ("--min-persistence-ms", "0")):
        options = text[text.index("options:"):]
        chunk = options[options.index(flag + " "):].split("\n  -")[0]
        assert f"default: {default})" in " ".join(chunk.split()), chunk


def test_python_dash_m_sentrycoin_runs_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "sentrycoin", "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: sentrycoin ")
    for command in ("run", "config", "record", "replay", "backtest"):
        assert command in proc.stdout


def test_config_check_of_a_good_file_still_passes(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text("[detector]\ncooldown_minutes = 2\n")
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    proc = subprocess.run([sys.executable, "-m", "sentrycoin", "config", "check", str(path)], capture_output=True,
                          text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["detector"]["cooldown_s"] == 120.0
    assert f"OK: {path} is valid" in proc.stderr


# -- the simulated market's own database -----------------------------------------------------


def _monitor_db(settings: Settings):
    from sentrycoin.monitor import Monitor

    return Monitor(settings, env={}, serve_http=False, console=False).db_path


def test_simulated_market_uses_its_own_default_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    simulated = _monitor_db(load_settings(env={}))
    live = _monitor_db(load_settings(env={"EXCHANGE": "binance", "SYMBOLS": "BTC-USDT"}))
    assert simulated == tmp_path / "sentrycoin" / "alerts-simulated.db"
    assert live == tmp_path / "sentrycoin" / "alerts.db"


def test_sentry_db_wins_for_the_simulated_market(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    chosen = tmp_path / "mine.db"
    assert _monitor_db(load_settings(env={"SENTRY_DB": str(chosen)})) == chosen


# -- console alerts follow LOG_FORMAT, colours only on a terminal -----------------------------


def _alert() -> AlertRecord:
    return AlertRecord(id=1, exchange="binance", symbol="BTC-USDT", source="simulated", severity="critical",
                       ratio=6.25, danger_ratio=2.5, bid_volume=16.0, ask_volume=100.0, best_bid=65000.0,
                       best_ask=65000.5, depth=50, event_ms=1_796_615_448_169, created_ms=1_796_615_448_170,
                       alert_key="binance:BTC-USDT:critical:1796615448169")


async def test_console_alert_is_one_json_object_with_log_format_json(restore_logging) -> None:
    setup_logging("INFO", "json")
    assert log_format() == "json"
    out = io.StringIO()
    await ConsoleNotifier(out).send(_alert())
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ALERT" and entry["severity"] == "critical"
    assert entry["exchange"] == "binance" and entry["symbol"] == "BTC-USDT" and entry["ratio"] == 6.25
    assert entry["ts"] == "2026-12-07T03:50:48.169Z"
    assert "ALERT CRITICAL" in entry["message"]


async def test_console_alert_is_a_text_line_with_log_format_text(restore_logging) -> None:
    setup_logging("INFO", "text")
    assert log_format() == "text"
    out = io.StringIO()
    await ConsoleNotifier(out).send(_alert())
    (line,) = out.getvalue().splitlines()
    assert line.startswith("[SIMULATED] ALERT CRITICAL binance BTC-USDT ratio 6.25")
    assert "\x1b[" not in line


def test_run_with_log_format_json_prints_only_json_lines(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(HOST="127.0.0.1", PORT="0", SENTRY_DB=str(tmp_path / "a.db"), LOG_FORMAT="json")
    proc = subprocess.Popen([sys.executable, "-m", "sentrycoin", "run", "--no-http", "--scenario", "flash_crash",
                             "--speed", "50"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # the first alert (the flash crash comes within seconds at speed 50)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    lines = [first, *out.splitlines()]
    alerts = [json.loads(line) for line in lines if line.strip()]
    assert alerts and all(a["level"] == "ALERT" for a in alerts), lines
    for line in err.splitlines():
        json.loads(line)  # the log lines are JSON too


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_levels_are_coloured_on_a_terminal_only(restore_logging, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    record = logging.LogRecord("sentrycoin", logging.WARNING, __file__, 1, "book out of sync", None, None)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    setup_logging("INFO", "text")
    coloured = logging.getLogger().handlers[0].format(record)
    assert "\x1b[33mWARNING\x1b[0m" in coloured and coloured.endswith("sentrycoin: book out of sync")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or a file
    setup_logging("INFO", "text")
    plain = logging.getLogger().handlers[0].format(record)
    assert "\x1b[" not in plain and " WARNING sentrycoin: book out of sync" in plain
    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    setup_logging("INFO", "text")
    assert "\x1b[" not in logging.getLogger().handlers[0].format(record)
    assert "\x1b[" not in TextFormatter(colour=False).format(record)
