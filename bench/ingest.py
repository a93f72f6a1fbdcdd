"""Ingest benchmark: flood K streams into binance-streamd; report msgs/s into Redis, latency, CPU, RSS.

    python bench/ingest.py --streams 64 --procs 2 --duration 20 [--rate 0] [--profile]

The flood (bench/flood.py, several processes on one port) sends aggTrade frames carrying their send time;
the daemon runs as its own process (``binance-streamd run``) writing to a real redis-server; a sampler
XREADs a few streams and computes send -> visible-in-Redis latency. All on this machine's 2 cores, so the
sender, the daemon and Redis compete: the sender's own rate is printed beside the daemon's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import flood
from binance_common.keys import Keys
from tests.support.redis_server import RedisServer, free_port

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_rss(pid: int) -> tuple[float, int]:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / CLK
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) * 1024
    return cpu, rss


async def sample_latency(r: aioredis.Redis, keys: Keys, streams: list[str], until: float) -> list[float]:
    lat: list[float] = []
    ids = {keys.history(s): "$" for s in streams}
    while time.monotonic() < until:
        res = await r.xread(ids, block=200, count=1000)  # type: ignore[arg-type]
        now_us = time.time_ns() // 1000
        for key, entries in res or []:
            for eid, fields in entries:
                ids[key.decode()] = eid
                d = orjson.loads(fields[b"d"])
                lat.append((now_us - (d.get("T") or d["E"])) / 1000)  # send µs: T, or E for bookTicker
    return lat


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--kinds", default="aggTrade", help="stream kinds, spread over the streams: any of "
                    "aggTrade,trade,bookTicker,depth@100ms")
    ap.add_argument("--procs", type=int, default=2, help="flood sender processes")
    ap.add_argument("--rate", type=float, default=0.0, help="frames/s per stream (0 = as fast as possible)")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--per-conn", type=int, default=0, help="streams per connection (default: streams/procs)")
    ap.add_argument("--maxlen", type=int, default=10_000)
    ap.add_argument("--profile", default=None, help="write a cProfile of the daemon to this path")
    a = ap.parse_args()
    port = free_port()
    ns = "bench"
    keys = Keys(ns)
    kinds = a.kinds.split(",")
    streams = [f"s{i // len(kinds):04d}usdt@{kinds[i % len(kinds)]}" for i in range(a.streams)]
    per_conn = a.per_conn or max(1, (a.streams + a.procs - 1) // a.procs)
    with RedisServer() as rs:
        ps, sent = flood.start(port, a.procs, a.rate, a.duration + 15)
        rest, rest_port = flood.rest_stub(len(streams))  # depth snapshots for the books of depth streams
        time.sleep(1.0)
        env = {**os.environ, "BINANCE_MCP_REDIS_URL": rs.url, "BINANCE_MCP_NAMESPACE": ns,
               "BINANCE_MCP_WS_BASE_URL": f"ws://127.0.0.1:{port}", "BINANCE_MCP_REST_BASE_URL": f"http://127.0.0.1:{rest_port}",
               "BINANCE_MCP_STREAMS": ",".join(streams), "BINANCE_MCP_MAX_STREAMS_PER_CONNECTION": str(per_conn),
               "BINANCE_MCP_HISTORY_MAXLEN": str(a.maxlen), "BINANCE_MCP_STALE_AFTER_S": "600"}
        prof = ["-m", "cProfile", "-o", a.profile] if a.profile else []
        daemon = subprocess.Popen([sys.executable, *prof, "-m", "binance_streamd", "run", "--log-level", "WARNING"],
                                  env=env)
        r = aioredis.Redis.from_url(rs.url)
        try:
            async def written() -> int:
                raw = await r.get(keys.daemon_stats)
                return int(orjson.loads(raw)["writer"]["written"]) if raw else 0

            deadline = time.monotonic() + 20
            while await written() == 0:
                if time.monotonic() > deadline:
                    raise SystemExit("daemon wrote nothing in 20 s")
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)  # warm-up
            w0, t0, s0 = await written(), time.monotonic(), sum(sent)
            cpu0, _ = proc_cpu_rss(daemon.pid)
            assert rs.proc is not None
            others0 = [proc_cpu_rss(pid)[0] for pid in (rs.proc.pid, *(p.pid for p in ps if p.pid))]
            lat = await sample_latency(r, keys, streams[:max(4, len(kinds))], time.monotonic() + a.duration)
            await asyncio.sleep(1.1)  # stats are written every second
            w1, t1, s1 = await written(), time.monotonic(), sum(sent)
            cpu1, rss = proc_cpu_rss(daemon.pid)
            others1 = [proc_cpu_rss(pid)[0] for pid in (rs.proc.pid, *(p.pid for p in ps if p.pid))]
            stats = orjson.loads(await r.get(keys.daemon_stats))
            mem = await r.info("memory")
        finally:
            daemon.terminate()
            daemon.wait(20)
            await r.aclose()
        for p in ps:
            p.terminate()
        rest.shutdown()
    rate = (w1 - w0) / (t1 - t0)
    lat.sort()
    pct = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]) if lat else (lambda p: float("nan"))
    print(f"kinds={a.kinds} streams={a.streams} sender_procs={a.procs} per_conn={per_conn} duration={t1 - t0:.1f}s")
    print(f"sender: {(s1 - s0) / (t1 - t0):,.0f} frames/s offered")
    print(f"sustained into Redis: {rate:,.0f} msg/s  (writer: {stats['writer']}, "
          f"dropped={stats['writer']['dropped']}, malformed={stats['malformed']})")
    print(f"latency send->visible (ms, n={len(lat)}): p50={pct(0.5):.2f} p99={pct(0.99):.2f} "
          f"max={lat[-1] if lat else float('nan'):.2f} mean={statistics.fmean(lat) if lat else float('nan'):.2f}")
    print("connections: " + "; ".join(f"{c['frames']:,} frames, paused {c['paused']}x for {c['paused_s']} s"
                                      for c in stats["connections"]))
    print(f"daemon CPU: {cpu1 - cpu0:.1f} s over {t1 - t0:.1f} s = {100 * (cpu1 - cpu0) / (t1 - t0):.0f}% of a core; "
          f"CPU per million msgs: {(cpu1 - cpu0) / max(1, w1 - w0) * 1e6:.1f} s; peak RSS {rss / 2**20:.0f} MiB")
    used = [(b - a) / (t1 - t0) * 100 for a, b in zip(others0, others1, strict=True)]
    print(f"other CPU (% of a core): redis-server {used[0]:.0f}%, senders " + " + ".join(f"{u:.0f}%" for u in used[1:]))
    print(f"redis used_memory: {int(mem['used_memory']) / 2**20:.0f} MiB")


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: no orphaned daemon
    asyncio.run(main())
