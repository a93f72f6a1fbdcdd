"""Two OS processes, each with its own RedisGovernor and REST client, share one weight budget on a real
redis-server against the simulator: together they never exceed it, and a 418 seen by one halts both."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.sim import BinanceSim, SimConfig

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

WORKER = r"""
import asyncio, json, sys, time
import redis.asyncio as aioredis
from binance_common.errors import BinanceError, IPBannedError, RateLimitedError
from binance_common.keys import Keys
from binance_common.ratelimit import RedisGovernor
from binance_common.rest import BinanceRest
from binance_common.settings import Settings

a = json.loads(sys.argv[1])

async def main():
    s = Settings(rest_base_url=a["rest"], redis_url=a["redis"], namespace=a["ns"],
                 rest_max_weight_per_minute=a["limit"], rest_weight_headroom=a["headroom"])
    r = aioredis.Redis.from_url(a["redis"])
    g = RedisGovernor(r, Keys(a["ns"]), s, max_wait_s=0, clock=lambda: time.time() + a["delta"])
    api = BinanceRest(s, governor=g)
    out = {"pid": __import__("os").getpid(), "ok": 0, "used": [], "errors": []}
    await asyncio.sleep(max(0.0, a["start_at"] - time.time()))
    for _ in range(a["n"]):
        try:
            _, h = await api.get_with_headers(a["path"], a["params"])
            out["ok"] += 1
            out["used"].append(int(h["x-mbx-used-weight-1m"]))
        except IPBannedError as e:
            out["errors"].append(["banned", e.until_ms])
        except RateLimitedError as e:
            out["errors"].append(["limited", e.status])
        except BinanceError as e:
            out["errors"].append(["other", str(e)])
    await api.aclose()
    await r.aclose()
    print(json.dumps(out))

asyncio.run(main())
"""


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    async with BinanceSim(SimConfig(symbols=["BTCUSDT", "ETHUSDT", "BNBBTC"], rate=20.0, seed=1)) as s:
        yield s


def mid_minute_delta() -> float:
    """Shift the workers' clock so their governors sit 20 s into a minute for the whole test."""
    now = time.time()
    return (int(now) // 60) * 60 + 20 - now


async def run_worker(**args: Any) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, json.dumps(args), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


async def test_two_processes_share_one_budget(sim: BinanceSim, redis_server, namespace: str) -> None:  # type: ignore[no-untyped-def]
    common = {
        "rest": sim.rest_url, "redis": redis_server.url, "ns": namespace, "limit": 200, "headroom": 0.5,
        "delta": mid_minute_delta(), "start_at": time.time() + 2.0, "n": 30,
        "path": "/api/v3/depth", "params": {"symbol": "BTCUSDT", "limit": 100},  # weight 5
    }
    a, b = await asyncio.gather(run_worker(**common), run_worker(**common))
    assert a["pid"] != b["pid"]
    admitted = a["ok"] + b["ok"]
    assert admitted * 5 == 100  # budget = 200 x 0.5, reserved atomically: all of it, never more
    assert a["ok"] + len(a["errors"]) == 30 and b["ok"] + len(b["errors"]) == 30
    assert {e[0] for e in a["errors"] + b["errors"]} == {"limited"}
    assert all(e[1] is None for e in a["errors"] + b["errors"])  # held back locally, not a Binance 429
    # what the simulator counted for this IP, per minute, never passed the budget; it never said 429
    assert max(a["used"] + b["used"]) <= 100
    assert max(sim.rest.weight.values()) <= 100
    assert sim.stats["rate_limited"] == 0 and sim.stats["bans"] == 0
    assert sum(1 for p, _ in sim.rest.requests if p == "depth") == admitted


async def test_a_418_in_one_process_halts_the_other(sim: BinanceSim, redis_server, namespace: str) -> None:  # type: ignore[no-untyped-def]
    common = {
        "rest": sim.rest_url, "redis": redis_server.url, "ns": namespace, "limit": 6000, "headroom": 0.9,
        "delta": 0.0, "start_at": 0, "n": 3, "path": "/api/v3/ping", "params": {},
    }
    sim.faults.rest_fault(status=418, retry_after=30)
    a = await run_worker(**common)
    assert a["ok"] == 0 and [e[0] for e in a["errors"]] == ["banned"] * 3
    until = a["errors"][0][1]
    assert until > time.time() * 1000 + 25_000
    assert len(sim.rest.requests) == 1  # the first call met the 418; the next two were never sent

    b = await run_worker(**common)  # another process: learns the ban from Redis alone
    assert b["ok"] == 0 and [e[0] for e in b["errors"]] == ["banned"] * 3
    assert all(abs(e[1] - until) < 1000 for e in b["errors"])
    assert len(sim.rest.requests) == 1  # nothing more reached Binance
