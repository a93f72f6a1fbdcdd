"""``python -m tests.support.sim --port 0``: run the simulator, print its URLs as one JSON line (``--env``: as
``export`` lines for a shell), run until SIGTERM. Run it from the repository's root (``tests`` is not installed)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from .server import BinanceSim, SimConfig


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.support.sim", description=__doc__)
    ap.add_argument("--port", type=int, default=0, help="REST port (0 = free port)")
    ap.add_argument("--ws-port", type=int, default=0, help="WebSocket port (0 = free port)")
    ap.add_argument("--symbols", default="BTCUSDT,ETHUSDT,BNBBTC")
    ap.add_argument("--rate", type=float, default=20.0, help="market steps per second per symbol")
    ap.add_argument("--replay", default=None, help="path to a .jsonl.zst recording")
    ap.add_argument("--replay-speed", default="max", help="max, recorded, or a multiplier")
    ap.add_argument("--lifetime", type=float, default=86_400.0, help="connection lifetime, s")
    ap.add_argument("--weight-limit", type=int, default=6000)
    ap.add_argument("--env", action="store_true", help="print `export BINANCE_MCP_...=...` lines instead of JSON")
    a = ap.parse_args(argv)
    speed: str | float = a.replay_speed if a.replay_speed in ("max", "recorded") else float(a.replay_speed)
    cfg = SimConfig(symbols=[s.strip().upper() for s in a.symbols.split(",") if s.strip()], rate=a.rate,
                    replay=a.replay, replay_speed=speed, connection_lifetime=a.lifetime, rest_port=a.port,
                    ws_port=a.ws_port, weight_limit=a.weight_limit)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with BinanceSim(cfg) as sim:
        if a.env:
            print("\n".join(f"export {k}={v}" for k, v in sim.env().items()), flush=True)
        else:
            print(json.dumps(sim.describe()), flush=True)
        await stop.wait()
    print("simulator stopped", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
