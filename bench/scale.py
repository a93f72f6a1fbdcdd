"""Scale: binance-streamd's RSS and CPU at 1, 100, 1000 and 4000 subscribed streams, idle and busy.

    python bench/scale.py [--counts 1,100,1000,4000] [--window 10] [--busy-total 20000]

For each count: a fresh redis-server, the flood (bench/flood.py) and the daemon as its own process with
``BINANCE_MCP_MAX_STREAMS_PER_CONNECTION=1024`` (Binance's limit: 4000 streams = 4 connections). The daemon
subscribes live (SUBSCRIBE, 200 streams a message, at most 4 control messages/s per connection); the ramp
time is until every stream is acknowledged. *Idle*: streams subscribed, one frame each, then silence.
*Busy*: the flood sends ``--busy-total`` msg/s spread over the streams. Over each window: CPU % of one core,
current and peak RSS, msgs/s into Redis. Writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import flood
from bench.ingest import proc_cpu_rss
from binance_common.keys import Keys
from tests.redis_server import RedisServer, free_port

RESULTS = Path(__file__).parent / "results"


def rss_now(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


async def one(n: int, busy: bool, window: float, busy_total: float) -> dict[str, Any]:
    port = free_port()
    ns = "scale"
    keys = Keys(ns)
    streams = [f"s{i:05d}usdt@aggTrade" for i in range(n)]
    rate = busy_total / n if busy else 0.001  # idle: one round of frames at subscription, then nothing
    with RedisServer() as rs:
        ps, sent = flood.start(port, 2, rate, 600)
        r = aioredis.Redis.from_url(rs.url)
        env = {**os.environ, "BINANCE_MCP_REDIS_URL": rs.url, "BINANCE_MCP_NAMESPACE": ns,
               "BINANCE_MCP_WS_BASE_URL": f"ws://127.0.0.1:{port}", "BINANCE_MCP_REST_BASE_URL": "http://127.0.0.1:1",
               "BINANCE_MCP_STREAMS": ",".join(streams), "BINANCE_MCP_MAX_STREAMS_PER_CONNECTION": "1024",
               "BINANCE_MCP_STALE_AFTER_S": "3600"}
        await asyncio.sleep(0.5)
        t_start = time.monotonic()
        daemon = subprocess.Popen([sys.executable, "-m", "binance_streamd", "run", "--log-level", "WARNING"], env=env)
        try:
            async def stats() -> dict[str, Any]:
                raw = await r.get(keys.daemon_stats)
                return orjson.loads(raw) if raw else {}

            async def all_subscribed() -> bool:
                st = (await stats()).get("streams", {})
                return len(st) == n and all(v.get("conn") for v in st.values())

            await wait_for(all_subscribed, 120, f"{n} streams subscribed")
            ramp = time.monotonic() - t_start
            st0 = await stats()
            await asyncio.sleep(2.0)  # settle: the first frames are written, the stats loop has run
            cpu0, _ = proc_cpu_rss(daemon.pid)
            w0, s0, t0 = (await stats())["writer"]["written"], sum(sent), time.monotonic()
            await asyncio.sleep(window)  # the measurement window itself
            cpu1, hwm = proc_cpu_rss(daemon.pid)
            rss = rss_now(daemon.pid)
            await asyncio.sleep(1.1)  # the daemon writes its stats every second
            st1 = await stats()
            w1, s1, t1 = st1["writer"]["written"], sum(sent), time.monotonic()
            mem = await r.info("memory")
        finally:
            daemon.terminate()
            daemon.wait(20)
            await r.aclose()
            for p in ps:
                p.terminate()
    dt = t1 - t0
    return {"streams": n, "mode": "busy" if busy else "idle", "connections": len(st1["connections"]),
            "ramp_s": round(ramp, 1), "offered_per_s": round((s1 - s0) / dt), "written_per_s": round((w1 - w0) / dt),
            "cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0 - 1.1), 1), "rss_mib": round(rss / 2**20, 1),
            "peak_rss_mib": round(hwm / 2**20, 1), "dropped": st1["writer"]["dropped"],
            "redis_used_mib": round(int(mem["used_memory"]) / 2**20, 1),
            "live_at_ramp": sum(1 for v in st0["streams"].values() if v["state"] == "live")}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1,100,1000,4000")
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--busy-total", type=float, default=20_000.0, help="msg/s over all streams when busy")
    ap.add_argument("--out", default=str(RESULTS / "scale.json"))
    a = ap.parse_args()
    rows = []
    for n in (int(x) for x in a.counts.split(",")):
        for busy in (False, True):
            row = await one(n, busy, a.window, a.busy_total)
            print(json.dumps(row), flush=True)
            rows.append(row)
    Path(a.out).parent.mkdir(exist_ok=True)
    Path(a.out).write_text(json.dumps({"window_s": a.window, "busy_total": a.busy_total, "rows": rows}, indent=1))
    print("\n| streams | conns | mode | subscribe ramp s | into Redis msg/s | CPU % of a core | RSS MiB (peak) |")
    print("|---|---|---|---|---|---|---|")
    for x in rows:
        print(f"| {x['streams']} | {x['connections']} | {x['mode']} | {x['ramp_s']} | {x['written_per_s']:,} | "
              f"{x['cpu_pct']} | {x['rss_mib']} ({x['peak_rss_mib']}) |")


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main())
