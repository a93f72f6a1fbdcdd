"""Scale: binance-streamd's RSS and CPU at 1, 100, 1000 and 4000 subscribed streams, idle and busy.

    python bench/scale.py [--counts 1,100,1000,4000] [--window 10] [--busy-total 20000] [--out PATH]

For each count and mode: a fresh redis-server, the flood (bench/flood.py, 2 sender processes) and the daemon
as its own process with ``BINANCE_MCP_MAX_STREAMS_PER_CONNECTION=1024`` (Binance's limit: 4000 streams = 4
connections). The daemon subscribes live (SUBSCRIBE, 200 streams a message, at most 4 control messages/s per
connection); *ramp* is the time from the daemon's spawn (Python start-up included) until its stats record
shows every stream acknowledged (a connection id on each), to the 1 s resolution of that record.
*Idle*: 0.001 frames/s per stream: a sender round when a connection's first SUBSCRIBE lands, then silence
(so only the streams of the early batches ever turn live; the others stay acknowledged but pending).
*Busy*: the flood offers ``--busy-total`` msg/s spread over the streams (per stream: total / N).
Over each window: CPU % of one core (daemon, redis-server, senders), CPU s per million msgs, current and peak
RSS (VmRSS, VmHWM), msgs/s into Redis (from two of the daemon's stats records), the sender's offered rate,
and the daemon's WARNING/ERROR log lines. Writes bench/results/scale.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import flood
from bench.ingest import proc_cpu_rss
from binance_common.keys import Keys
from tests.support.redis_server import RedisServer, free_port

RESULTS = Path(__file__).parent / "results"
IDLE_RATE = 0.001  # frames/s per stream: one round every 1000 s
SUBSCRIBE_TIMEOUT_S = 120.0


def rss_now(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def wait_for(cond: Callable[[], Awaitable[bool]], timeout: float, what: str,
                   daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        if daemon.poll() is not None:
            raise RuntimeError(f"daemon exited ({daemon.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def one(n: int, busy: bool, window: float, busy_total: float) -> dict[str, Any]:
    port = free_port()
    keys = Keys("scale")
    streams = [f"s{i:05d}usdt@aggTrade" for i in range(n)]
    rate = busy_total / n if busy else IDLE_RATE
    log = tempfile.TemporaryFile()
    with RedisServer() as rs:
        assert rs.proc is not None
        ps, sent = flood.start(port, 2, rate, SUBSCRIBE_TIMEOUT_S + window + 120)
        r = aioredis.Redis.from_url(rs.url)
        env = {**os.environ, "BINANCE_MCP_REDIS_URL": rs.url, "BINANCE_MCP_NAMESPACE": keys.namespace,
               "BINANCE_MCP_WS_BASE_URL": f"ws://127.0.0.1:{port}", "BINANCE_MCP_REST_BASE_URL": "http://127.0.0.1:1",
               "BINANCE_MCP_STREAMS": ",".join(streams), "BINANCE_MCP_MAX_STREAMS_PER_CONNECTION": "1024",
               "BINANCE_MCP_STALE_AFTER_S": "3600"}
        daemon: subprocess.Popen[bytes] | None = None
        try:
            await asyncio.sleep(0.5)  # the senders bind their port (SO_REUSEPORT); the daemon retries anyway
            t_spawn = time.monotonic()
            daemon = subprocess.Popen([sys.executable, "-m", "binance_streamd", "run", "--log-level", "WARNING",
                                       "--log-format", "text"], env=env, stderr=log)
            last: dict[str, Any] = {}

            async def stats() -> dict[str, Any]:
                raw = await r.get(keys.daemon_stats)
                last.clear()
                last.update(orjson.loads(raw) if raw else {})
                return last

            async def all_subscribed() -> bool:
                st = (await stats()).get("streams", {})
                return len(st) == n and all(v.get("conn") for v in st.values())

            async def stats_after(ts: int) -> bool:
                return (await stats()).get("ts", 0) >= ts

            await wait_for(all_subscribed, SUBSCRIBE_TIMEOUT_S, f"{n} streams subscribed", daemon)
            ramp = time.monotonic() - t_spawn
            live_at_ramp = sum(v["state"] == "live" for v in last["streams"].values())
            ts_ramp = last["ts"]
            # settle: the first frames are written, and a stats record written after the ramp exists
            await wait_for(lambda: stats_after(ts_ramp + 2000), 15, "a stats record after the ramp", daemon)

            others = (rs.proc.pid, *(p.pid for p in ps if p.pid))
            st0 = dict(last)
            cpu0, _ = proc_cpu_rss(daemon.pid)
            oth0 = [proc_cpu_rss(pid)[0] for pid in others]
            t0, s0 = time.monotonic(), sum(sent)
            await asyncio.sleep(window)  # the measurement window itself
            cpu1, hwm = proc_cpu_rss(daemon.pid)
            oth1 = [proc_cpu_rss(pid)[0] for pid in others]
            t1, s1, rss = time.monotonic(), sum(sent), rss_now(daemon.pid)
            # the daemon writes its stats every second: wait for one written after the window
            await wait_for(lambda: stats_after(st0["ts"] + int(window * 1000)), 15, "a stats record", daemon)
            st1 = dict(last)
            mem = await r.info("memory")
            stats_bytes = await r.strlen(keys.daemon_stats)
        finally:
            if daemon is not None:
                daemon.terminate()
                try:
                    daemon.wait(20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(5)
            await r.aclose()
            for p in ps:
                p.terminate()
            for p in ps:
                p.join(5)
    log.seek(0)
    lines = [x for x in log.read().decode(errors="replace").splitlines() if x.strip()]
    log.close()
    dt = t1 - t0
    w = (st1["writer"]["written"] - st0["writer"]["written"]) / max(1e-3, (st1["ts"] - st0["ts"]) / 1000)
    cpu = (cpu1 - cpu0) / dt
    return {"streams": n, "mode": "busy" if busy else "idle", "connections": len(st1["connections"]),
            "rate_per_stream": rate, "ramp_s": round(ramp, 1), "live_at_ramp": live_at_ramp,
            "live_at_end": sum(v["state"] == "live" for v in st1["streams"].values()),
            "offered_per_s": round((s1 - s0) / dt), "written_per_s": round(w),
            "cpu_pct": round(100 * cpu, 1), "cpu_s_per_million": round(cpu / w * 1e6, 1) if w >= 100 else None,
            "rss_mib": round(rss / 2**20, 1), "peak_rss_mib": round(hwm / 2**20, 1),
            "redis_cpu_pct": round(100 * (oth1[0] - oth0[0]) / dt, 1),
            "senders_cpu_pct": round(100 * sum(b - a for a, b in zip(oth0[1:], oth1[1:], strict=True)) / dt, 1),
            "dropped": st1["writer"]["dropped"], "malformed": st1["malformed"],
            "reconnects": sum(c["reconnects"] for c in st1["connections"]),
            "redis_used_mib": round(int(mem["used_memory"]) / 2**20, 1), "stats_record_kib": round(stats_bytes / 1024),
            "log_lines": len(lines), "log_head": lines[:5]}


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| streams | conns | mode | ramp s | offered msg/s | into Redis msg/s | daemon CPU % | "
           "CPU s / M msgs | RSS MiB | peak RSS MiB | log lines |", "|" + "---|" * 11]
    for x in rows:
        cpm = x["cpu_s_per_million"] if x["cpu_s_per_million"] is not None else "–"
        out.append(f"| {x['streams']:,} | {x['connections']} | {x['mode']} | {x['ramp_s']} | "
                   f"{x['offered_per_s']:,} | {x['written_per_s']:,} | {x['cpu_pct']} | {cpm} | "
                   f"{x['rss_mib']} | {x['peak_rss_mib']} | {x['log_lines']} |")
    idle = sorted((x["streams"], x["rss_mib"]) for x in rows if x["mode"] == "idle")
    if len(idle) >= 2 and idle[-1][0] > idle[0][0]:
        (n0, m0), (n1, m1) = idle[0], idle[-1]
        out.append(f"\nidle RSS per stream, {n0:,} -> {n1:,} streams: {(m1 - m0) * 1024 / (n1 - n0):.1f} KiB")
    return "\n".join(out)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1,100,1000,4000")
    ap.add_argument("--window", type=float, default=10.0, help="measurement window per run, seconds")
    ap.add_argument("--busy-total", type=float, default=20_000.0, help="msg/s over all streams when busy")
    ap.add_argument("--out", default=str(RESULTS / "scale.json"))
    a = ap.parse_args()
    rows = []
    for n in (int(x) for x in a.counts.split(",")):
        for busy in (False, True):
            row = await one(n, busy, a.window, a.busy_total)
            print(json.dumps(row), flush=True)
            rows.append(row)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"window_s": a.window, "busy_total": a.busy_total, "cpus": os.cpu_count(),
                               "rows": rows}, indent=1) + "\n")
    print("\n" + table(rows))


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: no orphaned daemon
    asyncio.run(main())
