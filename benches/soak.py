"""Soak: `sentrycoin run` against local venue emulators with faults and a flaky Telegram.

    .venv/bin/python benches/soak.py --minutes 30 --markets 50

This process hosts the emulators (Binance spot + Bybit spot on 127.0.0.1,
markets split between them) and a flaky fake Telegram, and starts the monitor
as a child process exactly as deployed (`sentrycoin run --config FILE`, venue
and Telegram URLs in the environment), so RSS/CPU are the monitor's alone.
Meanwhile it:

* injects a random data fault every --fault-every seconds on each venue
  (gap, garbage, drop, duplicate, reorder) and a disconnect (abrupt close or
  stall) every --disconnect-every seconds;
* every --crash-every seconds multiplies all resting asks of a random market's
  true book by 4, 6 or 12 for --crash-hold-s seconds (a sell-side pile-up:
  alerts), then restores them;
* samples the monitor's RSS and CPU every 10 s.

With --bad-token-replica it also starts a redis-server (persistence off) and
a second `sentrycoin run` on the same venues, config and Redis whose Telegram
token is revoked (the fake answers 401), as in issue 13: the fleet must still
deliver every episode a healthy replica raised, once.  The report counts
episodes across both replicas: stored, delivered, duplicated, covered (a
lower severity suppressed because the same market's higher-severity alert was
delivered), only on the bad replica (no healthy replica raised it: nothing can
deliver it) and lost (raised by the good replica, never delivered: must be 0).

At the end it stops injecting, waits for the outbox to drain, stops the monitor
with SIGINT and checks: the monitor never died and exited 0; RSS grew < 5 %
between minute 2 and the end; every alert in SQLite was delivered to Telegram
exactly once (stored rows matched to received messages by symbol, venue,
severity, ratio and time).  Results go to --out (samples.csv, result.json,
monitor logs, the alert database).  Exit code 0 when every check passes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from benches.scale_proc import cpu_s, loadavg, rss_kb  # noqa: E402
from benches.scale_soakkit import CrashScript, FlakyTelegram, compare, message_keys, record_key  # noqa: E402
from sentrycoin.emulator import Fault, create_emulator  # noqa: E402
from sentrycoin.store import AlertStore  # noqa: E402

#: Data faults, one every --fault-every seconds per venue.
FAULT_WEIGHTS = {Fault.GAP: 30, Fault.GARBAGE: 30, Fault.DROP: 15, Fault.DUPLICATE: 15, Fault.REORDER: 10}
#: Disconnects, one every --disconnect-every seconds per venue (0: mixed into the data faults instead).
DISCONNECT_WEIGHTS = {Fault.CLOSE: 3, Fault.STALL: 1}
#: --disconnect-every 0 ("harsh"): one table, disconnects ~1 fault in 6 (about every 18 s per venue).
HARSH_WEIGHTS = {Fault.GAP: 30, Fault.GARBAGE: 25, Fault.DROP: 10, Fault.DUPLICATE: 10, Fault.REORDER: 8,
                 Fault.CLOSE: 12, Fault.STALL: 5}
CHAT_ID = "4242"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def symbols_for(n: int) -> list[str]:
    # Made-up but valid names: the emulator serves any symbol.
    return [f"S{i:03d}-USDT" for i in range(n)]


def write_config(path: Path, by_venue: dict[str, list[str]], cooldown_minutes: float) -> None:
    lines = ["[detector]", f"cooldown_minutes = {cooldown_minutes}", ""]
    for venue, syms in by_venue.items():
        lines += ["[[markets]]", f'exchange = "{venue}"', "symbols = [" + ", ".join(f'"{s}"' for s in syms) + "]", ""]
    path.write_text("\n".join(lines))


BAD_TOKEN = "999000999:RevokedTokenRevokedTokenRevokedTok"


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("--bad-token-replica needs redis-server (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(workdir), "--protected-mode", "no", "--loglevel", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def pending_deliveries(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            return int(con.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return -1


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.samples: list[dict] = []
        self.faults: Counter[str] = Counter()
        self.crashes = 0
        self.crash_log: list[tuple[int, str, str, int]] = []
        self.events: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.bad: asyncio.subprocess.Process | None = None
        self.redis: subprocess.Popen | None = None
        self.died_at_s: float | None = None

    def log(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S', time.gmtime())} {text}"
        print(line, flush=True)
        self.events.append(line)

    async def run(self) -> int:
        a = self.args
        symbols = symbols_for(a.markets)
        venues = [v for v in a.venues.split(",") if v]
        by_venue = {v: symbols[i::len(venues)] for i, v in enumerate(venues)}
        tg = FlakyTelegram(random.Random(a.seed + 1), p_500=a.p_500, p_429=a.p_429, p_hang=a.p_hang)
        await tg.start()
        emus = {}
        scripts: list[tuple[str, str, CrashScript]] = []
        env = dict(os.environ)
        for i, (venue, syms) in enumerate(by_venue.items()):
            emu = create_emulator(venue, syms, seed=a.seed + 10 + i, tick_s=a.tick_s, stall_s=a.stall_s)
            await emu.start()
            emus[venue] = emu
            prefix = venue.upper().replace("-", "_")
            env[f"{prefix}_WS_URL"] = emu.ws_url
            if emu.rest_url:
                env[f"{prefix}_REST_URL"] = emu.rest_url
            for s in syms:
                scripts.append((venue, s, CrashScript(emu.books[s])))
        db = self.out / "alerts.db"
        for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            p.unlink(missing_ok=True)
        cfg = self.out / "soak.toml"
        write_config(cfg, by_venue, a.cooldown_minutes)
        port = free_port()
        env.update({
            "TELEGRAM_API_URL": tg.url, "TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_CHAT_ID": CHAT_ID,
            "SENTRY_DB": str(db), "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "INFO",
            "STALE_AFTER_S": str(a.stale_after_s),
        })
        for k in ("EXCHANGE", "SYMBOL", "SYMBOLS", "REDIS_URL", "REPLICA_ID"):
            env.pop(k, None)
        cmd = [str(ROOT / ".venv" / "bin" / "sentrycoin"), "run", "--config", str(cfg)]
        (self.out / "command.txt").write_text(" ".join(sys.argv) + "\nmonitor: " + " ".join(cmd) + "\n")
        bad_db = self.out / "bad-alerts.db"
        if a.bad_token_replica:
            self.redis, redis_url = start_redis(self.out)
            env.update({"REDIS_URL": redis_url, "REPLICA_ID": "good",
                        "DELIVERY_LEASE_TTL_S": str(a.delivery_lease_ttl_s)})
            for p in (bad_db, Path(f"{bad_db}-wal"), Path(f"{bad_db}-shm")):
                p.unlink(missing_ok=True)
            bad_env = dict(env, REPLICA_ID="bad", TELEGRAM_BOT_TOKEN=BAD_TOKEN, SENTRY_DB=str(bad_db),
                           PORT=str(free_port()))
            self.bad = await asyncio.create_subprocess_exec(
                *cmd, env=bad_env, stdout=open(self.out / "bad-monitor.stdout", "wb"),
                stderr=open(self.out / "bad-monitor.log", "wb"), cwd=ROOT)
            self.log(f"bad-token replica pid {self.bad.pid}; redis {redis_url}")
        stdout = open(self.out / "monitor.stdout", "wb")
        stderr = open(self.out / "monitor.log", "wb")
        self.proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=stdout, stderr=stderr, cwd=ROOT)
        self.log(f"monitor pid {self.proc.pid} port {port}; venues {', '.join(f'{v}:{len(s)}' for v, s in by_venue.items())}; "
                 f"{a.minutes} min; telegram {tg.url}")
        t0 = time.monotonic()
        end = t0 + a.minutes * 60.0
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(self._faults(emus, stop, t0, a.fault_every,
                                             HARSH_WEIGHTS if a.disconnect_every <= 0 else FAULT_WEIGHTS)),
            asyncio.create_task(self._faults(emus, stop, t0, a.disconnect_every, DISCONNECT_WEIGHTS)),
            asyncio.create_task(self._crashes(scripts, stop, t0)),
            asyncio.create_task(self._sample(stop, t0, tg)),
        ]
        try:
            while time.monotonic() < end and self.proc.returncode is None:
                await asyncio.sleep(1.0)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        # Restore every crashed book so the detectors re-arm; then let deliveries finish.
        for _, _, sc in scripts:
            if sc.active:
                sc.revert()
        alive = self.proc.returncode is None
        if not alive:
            self.died_at_s = time.monotonic() - t0
            self.log(f"MONITOR DIED after {self.died_at_s:.0f} s with rc {self.proc.returncode}")
        metrics = ""
        drained = -1
        if alive:
            drain_until = time.monotonic() + a.drain_s
            while time.monotonic() < drain_until:
                drained = pending_deliveries(db)
                if self.bad is not None and drained == 0:
                    drained = pending_deliveries(bad_db)
                if drained == 0:
                    break
                await asyncio.sleep(1.0)
            self.log(f"outbox pending after drain wait: {drained}")
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
                        metrics = await r.text()
            except Exception as exc:  # reported, not fatal
                self.log(f"/metrics failed: {type(exc).__name__}: {exc}")
            (self.out / "metrics.txt").write_text(metrics)
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            rc = await self.proc.wait()
            self.log("monitor did not stop within 60 s of SIGINT: killed")
        stdout.close()
        stderr.close()
        bad_rc = None
        if self.bad is not None:
            if self.bad.returncode is None:
                self.bad.send_signal(signal.SIGTERM)
            try:
                bad_rc = await asyncio.wait_for(self.bad.wait(), 60)
            except TimeoutError:
                self.bad.kill()
                bad_rc = await self.bad.wait()
        if self.redis is not None:
            self.redis.kill()
            self.redis.wait(10)
        for emu in emus.values():
            await emu.stop()
        await tg.close()
        return self._report(alive, rc, db, tg, emus, metrics, drained, t0,
                            bad_db=bad_db if self.bad is not None else None, bad_rc=bad_rc)

    async def _faults(self, emus: dict, stop: asyncio.Event, t0: float, every_s: float, weights: dict) -> None:
        a = self.args
        if every_s <= 0:
            return
        while not stop.is_set():
            await asyncio.sleep(every_s)
            if time.monotonic() - t0 < a.warmup_s:
                continue
            for venue, emu in emus.items():
                kinds = [f for f in weights if f in emu.supported_faults]
                fault = self.rng.choices(kinds, weights=[weights[f] for f in kinds])[0]
                symbol = self.rng.choice(emu.symbols)
                if emu.inject(fault, symbol=symbol):
                    self.faults[f"{venue}:{fault.value}"] += 1

    async def _crashes(self, scripts: list, stop: asyncio.Event, t0: float) -> None:
        a = self.args
        while not stop.is_set():
            await asyncio.sleep(a.crash_every)
            if time.monotonic() - t0 < a.warmup_s:
                continue
            idle = [s for s in scripts if not s[2].active]
            if not idle:
                continue
            venue, symbol, sc = self.rng.choice(idle)
            k = self.rng.choice((4, 6, 12))
            sc.crash(k)
            self.crashes += 1
            self.crash_log.append((time.time_ns() // 1_000_000, venue, symbol, k))
            asyncio.get_running_loop().call_later(a.crash_hold_s, sc.revert)

    async def _sample(self, stop: asyncio.Event, t0: float, tg: FlakyTelegram) -> None:
        assert self.proc is not None
        pid = self.proc.pid
        cpu0 = cpu_s(pid)
        last_cpu, last_t = cpu0, time.monotonic()
        while True:
            now = time.monotonic()
            cpu = cpu_s(pid)
            sample = {
                "t_s": round(now - t0, 1), "rss_kb": rss_kb(pid), "cpu_s": round(cpu, 2),
                "cpu_pct_interval": round(100.0 * (cpu - last_cpu) / max(1e-9, now - last_t), 1),
                "alerts_received": len(tg.messages), "tg_requests": len(tg.requests),
                "crashes": self.crashes, "faults": sum(self.faults.values()), "load": loadavg(),
            }
            last_cpu, last_t = cpu, now
            if sample["rss_kb"] < 0:
                break
            self.samples.append(sample)
            if len(self.samples) % 6 == 1:
                self.log(f"t={sample['t_s']:.0f}s rss={sample['rss_kb'] / 1024:.1f}MB cpu={sample['cpu_pct_interval']}% "
                         f"msgs={sample['alerts_received']} crashes={self.crashes} faults={sample['faults']} load={sample['load']}")
            try:
                await asyncio.wait_for(stop.wait(), 10.0)
                return
            except TimeoutError:
                pass

    def _crash_outcomes(self, rows: list[dict]) -> dict[str, int]:
        """Did each scripted crash raise an alert while it lasted?  Misses are split into
        'cooldown' (the market alerted less than the cooldown before) and the rest
        (book resyncing after a fault or a disconnect, or the ratio stayed under the threshold)."""
        a = self.args
        by_market: dict[tuple[str, str], list[int]] = {}
        for r in rows:
            by_market.setdefault((r["exchange"], r["symbol"]), []).append(r["event_ms"])
        hold_ms = int(a.crash_hold_s * 1000) + 1500  # the revert reaches the client up to a bundle later
        cooldown_ms = int(a.cooldown_minutes * 60_000)
        out: Counter[str] = Counter()
        for t, venue, symbol, _ in self.crash_log:
            times = by_market.get((venue, symbol), [])
            if any(t - 200 <= e <= t + hold_ms for e in times):
                out["alerted"] += 1
            elif any(t - cooldown_ms <= e < t - 200 for e in times):
                out["cooldown"] += 1
            else:
                out["no_alert_other"] += 1
        return dict(out)

    @staticmethod
    def _fleet(rows: list[dict], bad_rows: list[dict], messages: list[dict]) -> dict:
        """Episodes across both replicas: stored, delivered (in a Telegram message), duplicated, lost."""
        received: Counter = Counter()
        for msg in messages:
            received.update(message_keys(msg["text"]))
        episodes: dict[str, dict] = {}
        for replica, rs in (("good", rows), ("bad", bad_rows)):
            for r in rs:
                e = episodes.setdefault(r["episode_id"], {"rows": [], "sent": 0})
                e["rows"].append((replica, r))
        for e in episodes.values():
            e["sent"] = sum(received[record_key(r)] for rep, r in e["rows"] if rep == "good")
        # A lower severity is "covered" when its market's higher-severity alert of the same burst was
        # delivered (the gate suppresses it on purpose).
        delivered_markets = {(r["exchange"], r["symbol"]) for e in episodes.values() if e["sent"]
                             for _, r in e["rows"]}
        lost, covered, only_bad = [], [], []
        for key, e in episodes.items():
            if e["sent"]:
                continue
            states = {r["deliveries"].get("telegram", {}).get("error") for _, r in e["rows"]}
            market = (e["rows"][0][1]["exchange"], e["rows"][0][1]["symbol"])
            if any(s and "higher-severity" in s for s in states) and market in delivered_markets:
                covered.append(key)
            elif all(rep == "bad" for rep, _ in e["rows"]):
                # Only the replica that cannot deliver raised it (its book saw the crash, the good
                # replica's was resyncing or saw another severity): no healthy replica had it.
                only_bad.append(key)
            else:
                lost.append(key)
        return {
            "episodes_stored": len(episodes),
            "episodes_delivered": sum(1 for e in episodes.values() if e["sent"]),
            "episodes_duplicated": sum(1 for e in episodes.values() if e["sent"] > 1),
            "episodes_covered": len(covered),
            "episodes_only_on_bad_replica": len(only_bad),
            "episodes_lost": len(lost),
            "lost": lost, "lost_seen_only_by_bad_replica": only_bad,
            "rows_good": len(rows), "rows_bad": len(bad_rows),
            "bad_rows_by_state": dict(Counter(r["deliveries"].get("telegram", {}).get("state") for r in bad_rows)),
            "good_rows_by_state": dict(Counter(r["deliveries"].get("telegram", {}).get("state") for r in rows)),
            "messages": len(messages),
        }

    def _report(self, alive: bool, rc: int, db: Path, tg: FlakyTelegram, emus: dict, metrics: str,
                drained: int, t0: float, bad_db: Path | None = None, bad_rc: int | None = None) -> int:
        a = self.args
        store = AlertStore(db)
        try:
            rows = store.recent(limit=5000)
            total = store.count()
        finally:
            store.close()
        fleet = None
        if bad_db is not None:
            bad_store = AlertStore(bad_db)
            try:
                bad_rows = bad_store.recent(limit=5000)
            finally:
                bad_store.close()
            fleet = self._fleet(rows, bad_rows, tg.messages)
            # The good replica's rows the bad one delivered first cannot exist (it cannot deliver);
            # suppressed good rows are lower severities covered by a delivered higher one.
            rows_for_match = [r for r in rows if r["deliveries"].get("telegram", {}).get("state") != "suppressed"]
        else:
            rows_for_match = rows
        match = compare(rows_for_match, tg.messages)
        match["rows_beyond_recent_limit"] = max(0, total - len(rows))
        # The console notifier prints one "ALERT ... #<id>" line per alert on the monitor's stdout.
        console_ids = Counter()
        for line in (self.out / "monitor.stdout").read_text(errors="replace").splitlines():
            if line.startswith("ALERT ") and "#" in line:
                console_ids[line.rsplit("#", 1)[1].strip()] += 1
        stored_ids = Counter(str(r["alert_key"]) for r in rows)
        match["console_lines"] = sum(console_ids.values())
        match["console_exactly_once"] = console_ids == stored_ids
        crash_outcomes = self._crash_outcomes(rows)
        after2 = [s for s in self.samples if s["t_s"] >= 120]
        rss = {}
        if after2:
            first, last = after2[0]["rss_kb"], self.samples[-1]["rss_kb"]
            rss = {"at_2min_kb": first, "end_kb": last, "max_kb": max(s["rss_kb"] for s in after2),
                   "growth_pct": round(100.0 * (last - first) / first, 2)}
            # Also from minute 5: with many markets the first reconnect-and-resnapshot cycles
            # (disconnects start after --disconnect-every s) still raise the high-water mark after minute 2.
            after5 = [s for s in self.samples if s["t_s"] >= 300]
            if after5:
                rss["at_5min_kb"] = after5[0]["rss_kb"]
                rss["growth_after_5min_pct"] = round(100.0 * (last - after5[0]["rss_kb"]) / after5[0]["rss_kb"], 2)
        elapsed = self.samples[-1]["t_s"] if self.samples else 0.0
        cpu_total = self.samples[-1]["cpu_s"] if self.samples else 0.0
        faults_applied = Counter()
        for venue, emu in emus.items():
            for session in emu.sessions:
                for fault, _ in session.faults_applied:
                    faults_applied[f"{venue}:{fault.value}"] += 1
        counters = {}
        for line in metrics.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name = line.split("{")[0].split(" ")[0]
            if any(w in name for w in ("resync", "reconnect", "rejected", "decode_error", "alerts_", "messages_total")):
                try:
                    counters[name] = counters.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
                except ValueError:
                    pass
        checks = {
            "monitor_alive_until_end": alive,
            "clean_exit_rc0": rc == 0,
            "rss_growth_below_5pct": bool(rss) and rss["growth_pct"] < 5.0,
            "exactly_once_delivery": match["exactly_once"],
            "console_exactly_once": match["console_exactly_once"],
            "some_alerts": match["stored_alerts"] > 0,
        }
        if fleet is not None:
            checks["fleet_no_episode_lost"] = fleet["episodes_lost"] == 0
            checks["fleet_no_episode_duplicated"] = fleet["episodes_duplicated"] == 0
            checks["bad_replica_clean_exit_rc0"] = bad_rc == 0
        result = {
            "args": vars(a), "elapsed_s": elapsed, "monitor_rc": rc, "died_at_s": self.died_at_s,
            "cpu_s": cpu_total, "cpu_pct_of_one_core": round(100.0 * cpu_total / max(1e-9, elapsed), 1),
            "rss": rss, "crashes_scripted": self.crashes, "crash_outcomes": crash_outcomes, "faults_injected": dict(self.faults),
            "faults_applied": dict(faults_applied), "telegram_behaviours": dict(tg.drawn),
            "telegram_requests": len(tg.requests), "outbox_pending_at_end": drained,
            "metrics_counters": counters, "delivery": match, "fleet": fleet, "checks": checks,
            "passed": all(checks.values()),
        }
        (self.out / "result.json").write_text(json.dumps(result, indent=2, default=str))
        with open(self.out / "samples.csv", "w") as fh:
            keys = list(self.samples[0]) if self.samples else []
            fh.write(",".join(keys) + "\n")
            for s in self.samples:
                fh.write(",".join(str(s[k]) for k in keys) + "\n")
        (self.out / "events.log").write_text("\n".join(self.events) + "\n")
        short = {k: v for k, v in match.items() if k not in ("missing", "duplicated", "unknown")}
        short.update({k: len(match[k]) for k in ("missing", "duplicated", "unknown")})
        self.log(f"elapsed {elapsed:.0f} s, monitor rc {rc}, CPU {result['cpu_pct_of_one_core']} % of one core, RSS {rss}")
        self.log(f"crash outcomes {crash_outcomes}")
        self.log(f"crashes {self.crashes}, faults applied {sum(faults_applied.values())} {dict(faults_applied)}")
        self.log(f"telegram {dict(tg.drawn)} requests {len(tg.requests)}; delivery {short}")
        self.log(f"counters {counters}")
        if fleet is not None:
            self.log("fleet (good + bad-token replica): " + json.dumps(
                {k: v for k, v in fleet.items() if k not in ("lost", "lost_seen_only_by_bad_replica")}))
        self.log(f"checks {checks} -> {'PASS' if result['passed'] else 'FAIL'}")
        return 0 if result["passed"] else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--markets", type=int, default=50)
    p.add_argument("--venues", default="binance,bybit", help="comma-separated emulated venues sharing the markets")
    p.add_argument("--out", default=str(ROOT / "benches" / "soak-results" / time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime())))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--tick-s", type=float, default=0.1, help="emulator true-book step period")
    p.add_argument("--fault-every", type=float, default=3.0,
                   help="seconds between data faults (gap, garbage, drop, duplicate, reorder), per venue")
    p.add_argument("--disconnect-every", type=float, default=30.0,
                   help="seconds between disconnects (abrupt close 3:1 stall), per venue; "
                        "0: drawn with the data faults instead (HARSH_WEIGHTS)")
    p.add_argument("--crash-every", type=float, default=2.0, help="seconds between scripted crashes")
    p.add_argument("--crash-hold-s", type=float, default=2.0)
    p.add_argument("--cooldown-minutes", type=float, default=0.5)
    p.add_argument("--stale-after-s", type=float, default=5.0)
    p.add_argument("--stall-s", type=float, default=20.0, help="emulator: a stalled socket is aborted after this")
    p.add_argument("--warmup-s", type=float, default=15.0, help="no faults/crashes before this")
    p.add_argument("--drain-s", type=float, default=120.0, help="max wait for the outbox to empty at the end")
    p.add_argument("--p-500", type=float, default=0.10)
    p.add_argument("--p-429", type=float, default=0.05)
    p.add_argument("--p-hang", type=float, default=0.02)
    p.add_argument("--bad-token-replica", action="store_true",
                   help="also run a second replica (shared redis-server) whose Telegram token is revoked")
    p.add_argument("--delivery-lease-ttl-s", type=float, default=5.0,
                   help="DELIVERY_LEASE_TTL_S of both replicas with --bad-token-replica")
    args = p.parse_args()
    return asyncio.run(Soak(args).run())


if __name__ == "__main__":
    sys.exit(main())
