"""The built-in simulated market.

A seeded generator of Binance spot diff-depth traffic (`generator`), scenario
timelines with labelled crash windows (`scenarios`: normal, flash_crash,
whale_dump, spoof, recovery, mixed, or a user TOML file), and `SimSource`,
which drives the real feed handler with it in-process: no network, no keys.

    source = simulated_source(["BTC-USDT", "ETH-USDT"], scenario="mixed", on_alert=...)
    await source.run(stop_event)          # the demo, paced to the clock
    source.run_until(until_ms)            # tests and backtests, as fast as possible
"""

from sentrycoin.sim.generator import MarketGenerator, SymbolProfile, profile_for
from sentrycoin.sim.scenarios import CrashWindow, ScenarioError, ScenarioSpec, builtin_scenarios, load_scenario
from sentrycoin.sim.source import SimSource, simulated_source

__all__ = [
    "MarketGenerator", "SymbolProfile", "profile_for",
    "CrashWindow", "ScenarioError", "ScenarioSpec", "builtin_scenarios", "load_scenario",
    "SimSource", "simulated_source",
]
