"""Recovery after every connection drops at once: how long until every book is live and every trade stream
has caught up, for N book symbols, without ever exceeding the REST weight budget.

    python bench/resync.py [--symbols 10,100,500] [--rate 2] [--snapshot-limit 1000] [--out PATH]

For each N: the simulator with N synthetic markets (``--rate`` market steps a second each: trades and book
changes), a fresh redis-server, and ``binance-streamd run`` as its own process keeping N local books
(``<s>@depth@100ms``, snapshot ``--snapshot-limit`` levels: weight 50 at 1000) and N ``<s>@aggTrade``
streams. Binance's real limits apply: 6,000 weight a minute (the daemon uses 90% of it, snapshots at most 70%
of that), 200 streams a connection. Measured from the moment the simulator aborts every connection:
*books live* (every stored book live again), *trades caught up* (every trade made up to one second after
the drop, the disconnected window, is in its stream's history; measured from the drop, so at least 1 s), the REST weight used and the simulator's 429 count (must be 0). Also the cold start
(daemon spawn to all books live). Writes bench/results/resync.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from binance_common.feedstore import decode_book, decode_history, entry_last_id
from binance_common.keys import Keys
from tests.support.redis_server import RedisServer
from tests.support.sim import BinanceSim, SimConfig

RESULTS = Path(__file__).parent / "results"
WEIGHT_LIMIT = 6000


async def books_live(r: aioredis.Redis, keys: Keys, symbols: list[str]) -> int:
    pipe = r.pipeline(transaction=False)
    for s in symbols:
        pipe.get(keys.book(s))
    n = 0
    for blob in await pipe.execute():
        v = decode_book(blob)
        n += bool(v is not None and v.live)
    return n


async def trades_live(r: aioredis.Redis, keys: Keys, streams: list[str]) -> int:
    pipe = r.pipeline(transaction=False)
    for s in streams:
        pipe.hget(keys.status(s), "state")
    return sum(1 for v in await pipe.execute() if v == b"live")


async def trades_reached(r: aioredis.Redis, keys: Keys, target: dict[str, int]) -> int:
    """Streams whose history holds their target id (or a later one)."""
    pipe = r.pipeline(transaction=False)
    names = list(target)
    for s in names:
        pipe.xrevrange(keys.history(s), "+", "-", count=1)
    n = 0
    for s, rows in zip(names, await pipe.execute(), strict=True):
        if rows:
            last = entry_last_id(decode_history(rows[0][1]), "a")
            n += bool(last is not None and last >= target[s])
    return n


async def until(cond: Any, timeout: float, proc: asyncio.subprocess.Process) -> float:
    t0 = time.monotonic()
    while not await cond():
        if proc.returncode is not None:
            raise RuntimeError(f"daemon exited ({proc.returncode})")
        if time.monotonic() - t0 > timeout:
            raise TimeoutError
        await asyncio.sleep(0.05)  # polling interval of a bounded wait
    return time.monotonic() - t0


def weight_by_minute(sim: BinanceSim) -> dict[int, int]:
    out: dict[int, int] = {}
    for (_ip, minute), w in sim.rest.weight.items():
        out[minute] = out.get(minute, 0) + w
    return out


async def run_one(n: int, rate: float, snapshot_limit: int, timeout: float) -> dict[str, Any]:
    symbols = [f"S{i:04d}USDT" for i in range(n)]
    agg = [f"{s.lower()}@aggTrade" for s in symbols]
    rs = RedisServer().start()
    keys = Keys("bench")
    r = aioredis.Redis.from_url(rs.url)
    try:
        async with BinanceSim(SimConfig(symbols=symbols, rate=rate, weight_limit=WEIGHT_LIMIT)) as sim:
            env = {**os.environ, "BINANCE_MCP_REDIS_URL": rs.url, "BINANCE_MCP_NAMESPACE": "bench",
                   "BINANCE_MCP_WS_BASE_URL": sim.ws_url, "BINANCE_MCP_REST_BASE_URL": sim.rest_url,
                   "BINANCE_MCP_ORDER_BOOK_SYMBOLS": ",".join(symbols), "BINANCE_MCP_STREAMS": ",".join(agg),
                   "BINANCE_MCP_ORDER_BOOK_SNAPSHOT_LIMIT": str(snapshot_limit),
                   "BINANCE_MCP_REST_MAX_WEIGHT_PER_MINUTE": str(WEIGHT_LIMIT), "BINANCE_MCP_LOG_LEVEL": "WARNING"}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "binance_streamd", "run", "--log-level", "WARNING", "--log-format", "text",
                env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            try:
                cold = await until(lambda: _all(r, keys, symbols, agg), timeout, proc)
                w_before = sum(weight_by_minute(sim).values())
                await asyncio.sleep(2.0)  # let the first minute's snapshots settle before the drop
                t0 = time.monotonic()
                sim.faults.drop_connections()
                # every trade made up to a second after the drop (the disconnected window) must reach Redis
                await asyncio.sleep(1.0)
                target = {f"{s.lower()}@aggTrade": sim.market(s).agg_id for s in symbols}
                target = {s: i for s, i in target.items() if i > 2_000_000}  # markets that have traded at all
                t_books = t_trades = None
                while t_books is None or t_trades is None:
                    if time.monotonic() - t0 > timeout:
                        raise TimeoutError
                    if t_books is None and await books_live(r, keys, symbols) == n:
                        t_books = time.monotonic() - t0
                    if t_trades is None and await trades_reached(r, keys, target) == len(target):
                        t_trades = time.monotonic() - t0
                    await asyncio.sleep(0.05)  # polling interval of a bounded wait
                per_minute = weight_by_minute(sim)
                used = sum(per_minute.values()) - w_before
                return {"symbols": n, "streams": 2 * n, "rate": rate, "snapshot_limit": snapshot_limit,
                        "cold_start_s": round(cold, 2), "books_live_s": round(t_books, 2),
                        "trades_caught_up_s": round(t_trades, 2), "weight_after_drop": used,
                        "max_weight_per_minute": max(per_minute.values()), "weight_limit": WEIGHT_LIMIT,
                        "answered_429": sim.stats["rate_limited"], "bans": sim.stats["bans"],
                        "depth_requests": sum(1 for p, _ in sim.rest.requests if p == "depth"),
                        "agg_requests": sum(1 for p, _ in sim.rest.requests if p == "aggTrades")}
            finally:
                proc.terminate()
                await proc.wait()
    finally:
        await r.aclose()
        rs.cleanup()


async def _all(r: aioredis.Redis, keys: Keys, symbols: list[str], agg: list[str]) -> bool:
    return await books_live(r, keys, symbols) == len(symbols) and await trades_live(r, keys, agg) == len(agg)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", default="10,100,500")
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--snapshot-limit", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=1200.0)
    ap.add_argument("--out", type=Path, default=RESULTS / "resync.json")
    a = ap.parse_args()
    rows = []
    for n in (int(x) for x in a.symbols.split(",")):
        row = await run_one(n, a.rate, a.snapshot_limit, a.timeout)
        rows.append(row)
        print(json.dumps(row), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"ts": int(time.time()), "rows": rows}, indent=1))
    print("| book symbols | cold start | books live after drop | trades caught up | weight after drop | "
          "max weight/min | 429s |")
    print("|---|---|---|---|---|---|---|")
    for x in rows:
        print(f"| {x['symbols']} | {x['cold_start_s']} s | {x['books_live_s']} s | {x['trades_caught_up_s']} s | "
              f"{x['weight_after_drop']} | {x['max_weight_per_minute']} / {x['weight_limit']} | {x['answered_429']} |")


if __name__ == "__main__":
    asyncio.run(main())
