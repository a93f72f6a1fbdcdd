"""binance-streamd vs cryptofeed on the same flood, same redis-server build, same machine, alternated.

    python bench/vs_cryptofeed.py --streams 32 --rates 250,500,1000 --duration 10

For each offered rate (frames/s per stream) it runs binance-streamd, then cryptofeed (its Binance feed with
the Redis Streams backend, aggTrade channel), each against a fresh redis-server and a fresh flood
(bench/flood.py, 2 processes), and reports messages/s into Redis, send->Redis latency, CPU seconds per
million messages, peak RSS and Redis memory. cryptofeed runs from its own venv (created on first use in
bench/.venv-cryptofeed, or --cf-python).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import flood  # noqa: E402
from bench.ingest import proc_cpu_rss  # noqa: E402
from tests.redis_server import RedisServer, free_port  # noqa: E402


def cf_python(arg: str | None) -> str:
    if arg:
        return arg
    venv = ROOT / "bench" / ".venv-cryptofeed"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "cryptofeed==2.4.1", "redis", "hiredis"], check=True)
    return str(py)


def exchange_info_server(n: int) -> tuple[ThreadingHTTPServer, int]:
    body = json.dumps({"timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [], "symbols": [
        {"symbol": f"S{i:04d}USDT", "status": "TRADING", "baseAsset": f"S{i:04d}", "quoteAsset": "USDT",
         "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.00000100"}]} for i in range(n)]}).encode()

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, port


async def run_one(who: str, n: int, rate: float, duration: float, procs: int, cfpy: str) -> dict[str, object]:
    port = free_port()
    ex, ex_port = exchange_info_server(n)
    with RedisServer() as rs:
        ps, _sent = flood.start(port, procs, rate, duration + 20)
        time.sleep(1.0)
        if who == "binance-streamd":
            streams = [f"s{i:04d}usdt@aggTrade" for i in range(n)]
            env = {**os.environ, "BINANCE_MCP_REDIS_URL": rs.url, "BINANCE_MCP_NAMESPACE": "bench",
                   "BINANCE_MCP_WS_BASE_URL": f"ws://127.0.0.1:{port}", "BINANCE_MCP_REST_BASE_URL": f"http://127.0.0.1:{ex_port}",
                   "BINANCE_MCP_STREAMS": ",".join(streams), "BINANCE_MCP_STALE_AFTER_S": "600",
                   "BINANCE_MCP_MAX_STREAMS_PER_CONNECTION": str(max(1, n // procs))}
            proc = subprocess.Popen([sys.executable, "-m", "binance_streamd", "run", "--log-level", "WARNING"], env=env)
            keys = [f"bench:v1:hist:{s}" for s in streams]
        else:
            proc = subprocess.Popen([cfpy, str(ROOT / "bench" / "cf_runner.py"), f"ws://127.0.0.1:{port}",
                                     f"http://127.0.0.1:{ex_port}", str(rs.port), str(n)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            keys = [f"trades-BINANCE-S{i:04d}-USDT" for i in range(n)]
        r = aioredis.Redis.from_url(rs.url)
        try:
            async def written() -> int:
                if who == "binance-streamd":
                    raw = await r.get("bench:v1:daemon:stats")
                    return int(orjson.loads(raw)["writer"]["written"]) if raw else 0
                pipe = r.pipeline(transaction=False)
                for k in keys:
                    pipe.xlen(k)
                return sum(await pipe.execute())

            deadline = time.monotonic() + 30
            while await written() == 0:
                if time.monotonic() > deadline or proc.poll() is not None:
                    err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                    raise RuntimeError(f"{who} wrote nothing: {err}")
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)
            w0, t0 = await written(), time.monotonic()
            c0, _ = proc_cpu_rss(proc.pid)
            lat: list[float] = []
            ids = {k: "$" for k in keys[:4]}
            end = time.monotonic() + duration
            while time.monotonic() < end:
                res = await r.xread(ids, block=200, count=1000)  # type: ignore[arg-type]
                now_ms = time.time_ns() / 1e6
                for key, entries in res or []:
                    for eid, f in entries:
                        ids[key.decode()] = eid
                        if who == "binance-streamd":
                            lat.append(now_ms - orjson.loads(f[b"d"])["T"] / 1000)
                        else:  # cryptofeed stores T/1000 as 'timestamp'; T carries µs here, so this is ms
                            lat.append(now_ms - float(f[b"timestamp"]))
            await asyncio.sleep(1.1)
            w1, t1 = await written(), time.monotonic()
            c1, rss = proc_cpu_rss(proc.pid)
            mem = int((await r.info("memory"))["used_memory"])
            sample_key = keys[0]
            xlen = await r.xlen(sample_key)
            per_entry = (await r.memory_usage(sample_key) or 0) / max(1, xlen)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            await r.aclose()
            for p in ps:
                p.terminate()
            ex.shutdown()
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return {"who": who, "offered": n * rate, "rate": (w1 - w0) / (t1 - t0), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "cpu_s_per_M": (c1 - c0) / max(1, w1 - w0) * 1e6, "rss_mib": rss / 2**20, "redis_mib": mem / 2**20,
            "bytes_per_entry": per_entry, "entries_in_sample_stream": xlen}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--rates", default="250,500,1000", help="frames/s per stream, comma-separated (0 = max)")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--cf-python", default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vs_cryptofeed.json"))
    a = ap.parse_args()
    cfpy = cf_python(a.cf_python)
    rows = []
    for rate in [float(x) for x in a.rates.split(",")]:
        for who in ("binance-streamd", "cryptofeed"):
            row = await run_one(who, a.streams, rate, a.duration, a.procs, cfpy)
            rows.append(row)
            print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    print("\n| peer | offered msg/s | into Redis msg/s | p50 ms | p99 ms | CPU s / M msgs | peak RSS MiB | Redis bytes/entry |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['who']} | {r['offered']:,.0f} | {r['rate']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['cpu_s_per_M']:.1f} | {r['rss_mib']:.0f} | {r['bytes_per_entry']:.0f} |")


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main())
