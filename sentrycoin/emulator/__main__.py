"""Run a venue emulator by hand: ``python -m sentrycoin.emulator binance BTC-USDT ETH-USDT``.

Prints the environment variables that point ``sentrycoin run`` at it, then serves
until interrupted.  ``--fault-every S`` injects a random fault every S seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import random

from sentrycoin.emulator import EMULATED_VENUES, Fault, create_emulator


async def serve(args: argparse.Namespace) -> None:
    emu = create_emulator(args.venue, args.symbols, seed=args.seed, tick_s=args.tick_s)
    await emu.start()
    prefix = args.venue.upper().replace("-", "_")
    print(f"{prefix}_WS_URL={emu.ws_url}")
    if emu.rest_url:
        print(f"{prefix}_REST_URL={emu.rest_url}")
    print("serving; Ctrl-C to stop", flush=True)
    rng = random.Random(args.seed)
    faults = sorted(emu.supported_faults, key=lambda f: f.value)
    try:
        while True:
            await asyncio.sleep(args.fault_every or 3600)
            if args.fault_every:
                fault: Fault = rng.choice(faults)
                symbol = rng.choice(args.symbols)
                emu.inject(fault, symbol=symbol)
                print(f"injected {fault.value} for {symbol}", flush=True)
    finally:
        await emu.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sentrycoin.emulator", description=__doc__)
    parser.add_argument("venue", choices=EMULATED_VENUES)
    parser.add_argument("symbols", nargs="+", help="normal form, e.g. BTC-USDT")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tick-s", type=float, default=0.1, help="seconds between true-book steps")
    parser.add_argument("--fault-every", type=float, default=0.0, help="inject a random fault every S seconds")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
