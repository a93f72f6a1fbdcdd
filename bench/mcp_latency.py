"""Tool-call latency through the real MCP client over Streamable HTTP: p50/p99 of three kinds of answer.

* cached: ``get_symbol_info`` (exchangeInfo from the shared Redis cache / in-process memo),
* stream-first: ``get_book_ticker`` answered from a fresh ``latest:<s>@bookTicker`` value in Redis,
* REST: ``get_book_ticker`` with ``source="rest"`` against the Binance simulator.

Everything runs locally: a real redis-server, the simulator (``tests.support.sim``), and the HTTP app served by
uvicorn in-process on a free port. Run from the repository root::

    python bench/mcp_latency.py --n 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support.sim / tests.support.redis_server

import orjson
import redis.asyncio as aioredis
import uvicorn
from mcp import Client

from binance_common.keys import Keys
from binance_common.settings import Settings
from binance_mcp.http.app import bind_socket, create_app
from tests.support.redis_server import RedisServer
from tests.support.sim import BinanceSim, SimConfig


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]


async def measure(
    n: int, warmup: int, fn: Callable[[], Awaitable[Any]], before: Callable[[], Awaitable[Any]] | None = None
) -> list[float]:
    """Latencies (ms) of ``n`` calls of ``fn`` after ``warmup`` untimed ones; ``before`` runs untimed each time."""
    out = []
    for i in range(warmup + n):
        if before is not None:
            await before()
        t0 = time.perf_counter()
        await fn()
        if i >= warmup:
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def run(n: int, warmup: int) -> dict[str, dict[str, float]]:
    with RedisServer() as redis_server:
        async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT", "BNBBTC"], rate=20.0, seed=1)) as sim:
            settings = Settings(
                rest_base_url=sim.rest_url, redis_url=redis_server.url, namespace="bench", http_port=0
            )
            app = create_app(settings)
            sock = bind_socket("127.0.0.1", 0)
            port = sock.getsockname()[1]
            server = uvicorn.Server(
                uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", ws="none")
            )
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:
                await asyncio.sleep(0.01)
            r = aioredis.Redis.from_url(redis_server.url)
            keys = Keys(settings.namespace)
            book = {"u": 1, "s": "BTCUSDT", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}

            async def seed() -> None:
                await r.set(keys.latest("btcusdt@bookTicker"), orjson.dumps({"r": int(time.time() * 1000), "d": book}))

            try:
                async with Client(f"http://127.0.0.1:{port}/mcp") as c:

                    async def call(name: str, args: dict[str, Any], source: str) -> None:
                        res = await c.call_tool(name, args)
                        assert not res.is_error, res.content
                        got = (res.structured_content or {}).get("source")
                        assert got == source, (name, got)


                    await call("get_symbol_info", {"symbol": "BTCUSDT"}, "rest")  # fills the cache
                    results = {
                        "cached (get_symbol_info)": await measure(
                            n, warmup, lambda: call("get_symbol_info", {"symbol": "BTCUSDT"}, "cache")
                        ),
                        "stream-first (get_book_ticker, ws)": await measure(  # seed keeps it fresh, untimed
                            n, warmup, lambda: call("get_book_ticker", {"symbol": "BTCUSDT"}, "ws"), before=seed
                        ),
                        "REST (get_book_ticker, source=rest)": await measure(
                            n, warmup, lambda: call("get_book_ticker", {"symbol": "BTCUSDT", "source": "rest"}, "rest")
                        ),
                    }
            finally:
                await r.aclose()
                server.should_exit = True
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return {
        k: {
            "n": len(v),
            "p50_ms": round(statistics.median(v), 2),
            "p99_ms": round(pct(v, 99), 2),
            "mean_ms": round(statistics.fmean(v), 2),
            "max_ms": round(max(v), 2),
        }
        for k, v in results.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="timed calls per kind")
    ap.add_argument("--warmup", type=int, default=20, help="untimed calls per kind first")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    res = asyncio.run(run(args.n, args.warmup))
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{'answer':40} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}")
    for k, v in res.items():
        print(f"{k:40} {v['n']:>5} {v['p50_ms']:>8} {v['p99_ms']:>8} {v['mean_ms']:>8} {v['max_ms']:>8}")


if __name__ == "__main__":
    main()
