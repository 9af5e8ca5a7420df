"""Settings from environment and TOML: precedence, presets, validation, redaction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sentrycoin.config import ConfigError, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sentrycoin.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sentrycoin.toml"
    path.write_text(text)
    return path


def test_defaults_run_the_simulated_market() -> None:
    s = load_settings(env={})
    assert s.simulated and s.markets == []
    assert s.depth == 50 and s.detector.danger_ratio == 2.5 and s.detector.cooldown_s == 300
    assert s.port == 8080 and s.host == "0.0.0.0"


def test_environment_names_users_know() -> None:
    env = {
        "EXCHANGE": "binance", "SYMBOLS": "btc-usdt, ETH-USDT", "DANGER_RATIO": "3.5",
        "ORDER_BOOK_DEPTH": "25", "COOLDOWN_MINUTES": "10", "LOG_LEVEL": "debug",
        "TELEGRAM_BOT_TOKEN": "123:SECRET", "TELEGRAM_CHAT_ID": "42", "PORT": "9000",
        "BINANCE_WS_URL": "ws://127.0.0.1:1/stream",
    }
    s = load_settings(env=env)
    assert [(m.exchange, m.symbol) for m in s.markets] == [("binance", "BTC-USDT"), ("binance", "ETH-USDT")]
    assert s.depth == 25 and s.log_level == "DEBUG" and s.port == 9000
    assert all(m.detector.danger_ratio == 3.5 and m.detector.cooldown_s == 600 for m in s.markets)
    assert s.telegram_configured
    assert s.venue_urls == {"BINANCE_WS_URL": "ws://127.0.0.1:1/stream"}
    assert s.snapshot_timeout_s == 15.0
    assert load_settings(env={**env, "SNAPSHOT_TIMEOUT_S": "4.5"}).snapshot_timeout_s == 4.5


def test_single_symbol_variable() -> None:
    s = load_settings(env={"EXCHANGE": "coinbase", "SYMBOL": "BTC-USD"})
    assert [(m.exchange, m.symbol) for m in s.markets] == [("coinbase", "BTC-USD")]


def test_example_config_presets_and_overrides() -> None:
    s = load_settings(EXAMPLE, env={})
    by = {(m.exchange, m.symbol): m for m in s.markets}
    assert len(by) == 11
    btc = by[("binance", "BTC-USDT")].detector
    assert (btc.danger_ratio, btc.cooldown_s) == (3.0, 600)
    doge = by[("binance", "DOGE-USDT")].detector
    assert (doge.danger_ratio, doge.cooldown_s) == (2.0, 300)
    ada_cb = by[("coinbase", "ADA-USD")].detector
    assert (ada_cb.danger_ratio, ada_cb.cooldown_s) == (2.2, 300)
    assert by[("coinbase", "SOL-USD")].preset == "conservative"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[detector]\ndanger_ratio = 4.0\n[server]\nport = 7000\n[[markets]]\nexchange = "okx"\nsymbols = ["BTC-USDT"]\n')
    s = load_settings(path, env={"DANGER_RATIO": "5", "PORT": "7100"})
    assert s.markets[0].detector.danger_ratio == 5.0 and s.port == 7100
    assert load_settings(path, env={}).markets[0].detector.danger_ratio == 4.0


def test_user_defined_preset(tmp_path: Path) -> None:
    path = write(tmp_path, '[presets.mine]\ndanger_ratio = 6\nmin_persistence_ms = 1500\n'
                           '[[markets]]\nexchange = "kraken"\nsymbols = ["BTC-USD"]\npreset = "mine"\n')
    d = load_settings(path, env={}).markets[0].detector
    assert (d.danger_ratio, d.min_persistence_ms, d.rearm_ratio) == (6.0, 1500, None)


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ('colour = "red"\n', {}, "colour"),
        ('[detector]\ndanger = 2\n', {}, "detector.danger"),
        ('[detector]\ndanger_ratio = "high"\n', {}, "detector.danger_ratio"),
        ('[detector]\ndanger_ratio = -1\n', {}, "detector"),
        ('[[markets]]\nexchange = "ftx"\nsymbols = ["BTC-USDT"]\n', {}, "markets[0].exchange"),
        ('[[markets]]\nexchange = "binance"\nsymbols = ["BTCUSDT"]\n', {}, "markets[0].symbols"),
        ('[[markets]]\nexchange = "binance"\nsymbols = ["BTC-USDT"]\npreset = "yolo"\n', {}, "preset"),
        ('[server]\nport = 99999\n', {}, "server.port"),
        ('[server]\nprot = 1\n', {}, "server.prot"),
        ('[logging]\nformat = "xml"\n', {}, "logging.format"),
        ("", {"DANGER_RATIO": "abc"}, "DANGER_RATIO"),
        ("", {"ORDER_BOOK_DEPTH": "0"}, "ORDER_BOOK_DEPTH"),
        ("", {"EXCHANGE": "binance"}, "SYMBOLS"),
        ("", {"SYMBOLS": "BTC-USDT"}, "EXCHANGE"),
        ("", {"EXCHANGE": "nasdaq", "SYMBOLS": "BTC-USDT"}, "EXCHANGE"),
        ("", {"MOCK_FALLBACK": "maybe"}, "MOCK_FALLBACK"),
        ("", {"SNAPSHOT_TIMEOUT_S": "soon"}, "SNAPSHOT_TIMEOUT_S"),
        ("", {"SNAPSHOT_TIMEOUT_S": "0"}, "SNAPSHOT_TIMEOUT_S"),
        ('[server]\nsnapshot_timeout_s = -1\n', {}, "server.snapshot_timeout_s"),
        ("this is = = not toml", {}, "--config"),
    ],
)
def test_every_mistake_is_one_line_naming_the_key(tmp_path: Path, text: str, env: dict, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env)
    message = str(info.value)
    assert key in message and "\n" not in message


def test_redacted_settings_hide_secrets() -> None:
    s = load_settings(env={"TELEGRAM_BOT_TOKEN": "123456:ABCDEF-secret", "TELEGRAM_CHAT_ID": "-100777",
                           "STATUS_TOKEN": "hunter2", "WEBHOOK_URL": "https://hooks.example.com/T0/B0/XYZsecret"})
    text = repr(s.redacted())
    for secret in ("ABCDEF-secret", "-100777", "hunter2", "XYZsecret"):
        assert secret not in text
    assert s.redacted()["telegram_bot_token"] == "***"


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sentrycoin.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_config_check_cli_prints_effective_settings_without_secrets(tmp_path: Path) -> None:
    import os

    env = dict(os.environ, TELEGRAM_BOT_TOKEN="999:TOPSECRET", TELEGRAM_CHAT_ID="5")
    proc = _cli("config", "check", str(EXAMPLE), env=env)
    assert proc.returncode == 0, proc.stderr
    assert '"symbol": "DOGE-USDT"' in proc.stdout and "TOPSECRET" not in proc.stdout + proc.stderr
    assert "OK:" in proc.stderr


def test_config_check_cli_reports_a_mistake_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, '[[markets]]\nexchange = "binance"\nsymbols = ["BTC/USDT"]\n')
    proc = _cli("config", "check", str(path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "markets[0].symbols" in lines[0]
