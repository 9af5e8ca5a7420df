from __future__ import annotations

import pytest

from sentrycoin.alerts.console import ConsoleNotifier
from sentrycoin.config import ConfigError
from sentrycoin.ha.setup import HARuntime, HASettings
from sentrycoin.ha.sharding import shard_markets
from tests.ha.conftest import RedisServer
from tests.ha.test_gate_e2e import Recorder

KEYS = [("binance", f"C{i}-USDT") for i in range(40)]


def test_defaults_mean_no_ha() -> None:
    s = HASettings.from_env({})
    assert s == HASettings(redis_url=None, shard_count=1, shard_index=0, replica_id=None, key_prefix="sentrycoin")
    assert s.my_markets(KEYS) == KEYS


def test_env_is_parsed_and_redacted() -> None:
    s = HASettings.from_env({"REDIS_URL": "redis://:hunter2@redis:6379/1", "SHARD_COUNT": "3",
                             "SHARD_INDEX": "2", "REPLICA_ID": "pod-7", "REDIS_KEY_PREFIX": "sc"})
    assert (s.shard_count, s.shard_index, s.replica_id, s.key_prefix) == (3, 2, "pod-7", "sc")
    assert s.my_markets(KEYS) == shard_markets(KEYS, 3, 2)
    assert "hunter2" not in str(s.redacted()) and s.redacted()["redis_url"] == "redis://redis:6379/1"


@pytest.mark.parametrize("env,name", [
    ({"SHARD_COUNT": "two"}, "SHARD_COUNT"),
    ({"SHARD_COUNT": "2", "SHARD_INDEX": "2"}, "SHARD_INDEX"),
    ({"SHARD_COUNT": "0"}, "SHARD_COUNT"),
    ({"REDIS_URL": "http://:pw@host"}, "REDIS_URL"),
])
def test_bad_env_is_a_config_error_naming_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name) as info:
        HASettings.from_env(env)
    assert "pw@" not in str(info.value)


async def test_runtime_gates_user_facing_notifiers_only(redis_server: RedisServer) -> None:
    rt = HARuntime(HASettings.from_env({"REDIS_URL": redis_server.url, "REPLICA_ID": "r1"}), lambda e, s: 1000)
    console, tg = ConsoleNotifier(), Recorder("telegram", [], "r1")
    assert rt.gated_names([console, tg]) == ["telegram"]  # the console stays per replica
    await rt.start()
    try:
        assert not rt.coordinator.degraded and rt.coordinator.replica_id == "r1"
        assert rt.stats()["degraded"] is False and rt.stats()["gate_suppressed"] == 0
    finally:
        await rt.stop()


def test_delivery_lease_ttl_setting() -> None:
    s = HASettings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0", "DELIVERY_LEASE_TTL_S": "2.5"})
    assert s.delivery_lease_ttl_s == 2.5 and s.redacted()["delivery_lease_ttl_s"] == 2.5
    assert HASettings.from_env({}).delivery_lease_ttl_s == 10.0
    runtime = HARuntime(s, lambda ex, sym: 60_000)
    assert runtime.gate.lease_ttl_s == 2.5
    for bad in ("0.1", "soon"):
        with pytest.raises(ConfigError, match="DELIVERY_LEASE_TTL_S"):
            HASettings.from_env({"DELIVERY_LEASE_TTL_S": bad})
