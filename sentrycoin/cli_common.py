"""What every command shares, so that cli.py (run, config) and research/commands.py
(record, replay, backtest) both import it and neither imports the other.

Flag value types (argparse reports their error as one line, `--flag: message`, exit 2),
checks of what a user names (an output folder, a scenario, a port: ConfigError, one line),
loading the settings a command runs with, its logging, and running a coroutine on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import math
import os
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sentrycoin.config import ConfigError, Settings, load_settings

T = TypeVar("T")


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return None
    return uvloop.new_event_loop


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end on a fresh event loop (uvloop where installed)."""
    factory = _event_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def load_command_settings(args: argparse.Namespace, config_file: str | None = None,
                          config_label: str | None = None) -> Settings:
    """The settings a command runs with: the file, then the environment, then --exchange/--symbols."""
    return load_settings(
        config_file or getattr(args, "config", None),
        exchange=getattr(args, "exchange", None),
        symbols=getattr(args, "symbols", None),
        config_label=config_label,
    )


# -- flag types: argparse reports their ValueError as "--flag: message" (one line, exit 2) ---


def _number(kind: type[int] | type[float], text: str, accept: Callable[[float], bool], requirement: str) -> Any:
    """`text` as `kind` (int or float, finite), or ArgumentTypeError naming the requirement."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
    if not (math.isfinite(value) and accept(value)):
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
    return value


def port_number(text: str) -> int:
    return _number(int, text, lambda v: 0 <= v <= 65535, "a port number 0-65535 (0: any free port)")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: v > 0, "a number > 0")


def non_negative_float(text: str) -> float:
    return _number(float, text, lambda v: v >= 0, "a number >= 0")


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 1, "a whole number >= 1")


def non_negative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "a whole number >= 0")


def setup_command_logging(settings: Settings) -> None:
    from sentrycoin.logs import setup_logging

    setup_logging(settings.log_level, settings.log_format, access_log=settings.access_log)


def check_scenario(scenario: str, name: str) -> None:
    """ConfigError naming `name` (the flag or variable) unless `scenario` loads:
    a built-in name, or a readable, valid scenario .toml file."""
    from sentrycoin.config import SCENARIOS
    from sentrycoin.sim.scenarios import load_scenario

    if scenario not in SCENARIOS and not scenario.endswith(".toml"):
        raise ConfigError(f"{name}: unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)} "
                          "(or a path to a scenario .toml file)")
    try:
        load_scenario(scenario)
    except UnicodeDecodeError:
        raise ConfigError(f"{name} {scenario}: not a text file (a scenario is a TOML text file)") from None
    except ValueError as exc:  # ScenarioError: one line naming the file and the key
        raise ConfigError(f"{name}: {exc}") from None


def check_port_free(host: str, port: int, name: str) -> None:
    """ConfigError (one line naming `name`) unless `host`:`port` can be bound now.

    Checked before anything starts, so a port already in use is a user mistake
    reported as such, not a bind traceback from inside the server."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"HOST={host}: cannot listen on this address ({exc})") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            # The server sets SO_REUSEADDR too: a port in TIME_WAIT is free, a listening one is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigError(f"{name}={port}: port already in use on {host} "
                                      "(another program listens there; choose another with --port or PORT)") from None
                if exc.errno == errno.EACCES:
                    raise ConfigError(f"{name}={port}: permission denied (ports below 1024 need privileges)") from None
                if exc.errno == errno.EADDRNOTAVAIL:
                    raise ConfigError(f"HOST={host}: not an address of this machine") from None
                raise ConfigError(f"{name}={port}: cannot listen on {host}:{port} ({exc.strerror})") from None


def check_out_dir(path: str, flag: str) -> None:
    """ConfigError naming `flag` unless `path` is (or can become) a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{flag} {path}: cannot create the folder ({exc.strerror or type(exc).__name__})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: folder is not writable (permission denied)")
