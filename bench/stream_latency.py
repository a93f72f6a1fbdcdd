"""MCP front-end latency over Streamable HTTP: p50/p99 and calls/s at 1, 10 and 100 concurrent clients,
one and two replicas, for the three kinds of tools:

* Redis-backed: ``get_stream_latest`` (the daemon's latest message; a feeder writes it like the daemon);
* cached: ``get_symbol_info`` (exchangeInfo cached in Redis, warmed before measuring);
* REST-backed: ``get_book_ticker`` with ``source="rest"`` (one call to the Binance simulator per call).

Starts a private redis-server, the simulator (``python -m tests.support.sim``, weight limit raised so the governor
never holds a call back: real Binance allows 6000 weight/min per IP, which caps REST-backed calls far below
these rates) and ``binance-mcp http --workers R`` (stateless, as deployed behind a load balancer).

    python bench/stream_latency.py --driver raw --workers 1,2 --tool get_stream_latest,get_symbol_info,get_book_ticker
    python bench/stream_latency.py --clients 10 --duration 10 --tool get_stream_history

``--driver raw`` sends the MCP client's exact request bytes over keep-alive HTTP/1.1 (a few µs of CPU a call)
so the server is what is measured; ``--driver mcp`` uses the real ``mcp.Client`` (its own CPU competes on
the same cores). Clients are spread over ``--procs`` worker processes; their CPU share is reported.

Figures are loopback and machine-dependent: read them as orders of magnitude (see the printed notes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.redis_server import RedisServer, free_port  # noqa: E402

TOOLS: dict[str, dict[str, Any]] = {
    "get_stream_latest": {"stream": "btcusdt@trade"},
    "get_stream_history": {"stream": "btcusdt@trade", "count": 10},
    "get_feed_status": {},
    "get_symbol_info": {"symbol": "BTCUSDT"},
    "get_book_ticker": {"symbol": "BTCUSDT", "source": "rest"},
}
KIND = {"get_stream_latest": "redis", "get_stream_history": "redis", "get_feed_status": "redis",
        "get_symbol_info": "cached", "get_book_ticker": "rest"}


def _percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[k]


def _raw_request(url: str, tool: str, args: dict[str, Any]) -> tuple[str, int, bytes]:
    """The exact HTTP request an MCP client sends for one 2026-07-28 ``tools/call``, pre-encoded."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    body = json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": args, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"}}},
    }).encode()
    head = (
        f"POST {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
        f"Mcp-Method: tools/call\r\nMcp-Name: {tool}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return u.hostname or "127.0.0.1", u.port or 80, head + body


class Window:
    """The measured window, opened once every client of a worker is connected."""

    def __init__(self, n: int) -> None:
        self.go = asyncio.Event()
        self.all_connected = asyncio.Event()
        self.pending = n
        self.warm_until = 0.0
        self.stop_at = 0.0

    def connected(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.all_connected.set()


async def _raw_loop(url: str, tool: str, args: dict[str, Any], w: Window) -> list[float]:
    """A minimal keep-alive HTTP/1.1 client (a few µs of CPU per call), so the server is what is measured."""
    host, port, req = _raw_request(url, tool, args)
    reader, writer = await asyncio.open_connection(host, port)
    w.connected()
    await w.go.wait()
    lat: list[float] = []
    try:
        while True:
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            dt = time.perf_counter() - t0
            if not head.startswith(b"HTTP/1.1 200") or b'"isError":true' in body:
                raise RuntimeError(f"{tool} failed: {head[:100]!r} {body[:300]!r}")
            now = time.monotonic()
            if now >= w.stop_at:
                return lat
            if now >= w.warm_until:
                lat.append(dt)
    finally:
        writer.close()


async def _client_loop(url: str, tool: str, args: dict[str, Any], w: Window) -> list[float]:
    """The real MCP client (2026-07-28 over Streamable HTTP), one session per simulated agent."""
    from mcp import Client

    lat: list[float] = []
    async with Client(url) as c:
        await c.call_tool(tool, args)  # connected and warm
        w.connected()
        await w.go.wait()
        while True:
            t0 = time.perf_counter()
            res = await c.call_tool(tool, args)
            dt = time.perf_counter() - t0
            if res.is_error:
                raise RuntimeError(f"{tool} failed: {res.content}")
            now = time.monotonic()
            if now >= w.stop_at:
                return lat
            if now >= w.warm_until:
                lat.append(dt)


def _worker(
    url: str, tool: str, n: int, start_at: float, warmup: float, duration: float, q: Any, driver: str
) -> None:
    loop_fn = _raw_loop if driver == "raw" else _client_loop

    async def run() -> list[float]:
        w = Window(n)
        tasks = [asyncio.create_task(loop_fn(url, tool, TOOLS[tool], w)) for _ in range(n)]
        await w.all_connected.wait()
        delay = start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        t = time.monotonic()
        w.warm_until, w.stop_at = t + warmup, t + warmup + duration
        w.go.set()
        results = await asyncio.gather(*tasks)
        return [x for r in results for x in r]

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    lat = asyncio.run(run())
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    q.put((lat, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)))


async def _feeder(redis_url: str, namespace: str, stop: asyncio.Event, rate_hz: float) -> int:
    """Write latest + history of btcusdt@trade like the daemon, at ``rate_hz``."""
    import orjson
    import redis.asyncio as aioredis

    from binance_common.keys import Keys
    from binance_common.timeutil import now_ms

    keys = Keys(namespace)
    r = aioredis.Redis.from_url(redis_url)
    await r.hset(keys.status("btcusdt@trade"), mapping={"state": "live", "since": now_ms()})
    await r.set(keys.heartbeat, orjson.dumps({"pid": os.getpid(), "host": "bench", "ts": now_ms()}), px=60_000)
    n = 0
    while not stop.is_set():
        n += 1
        d = orjson.dumps({"e": "trade", "E": now_ms(), "s": "BTCUSDT", "t": n, "p": "65000.01000000",
                          "q": "0.00120000", "T": now_ms(), "m": True, "M": True})
        pipe = r.pipeline(transaction=False)
        pipe.set(keys.latest("btcusdt@trade"), orjson.dumps({"r": now_ms(), "d": orjson.Fragment(d)}))
        pipe.xadd(keys.history("btcusdt@trade"), {"d": d, "r": now_ms()}, maxlen=1000, approximate=True)
        pipe.publish(keys.updates_channel, "btcusdt@trade")
        await pipe.execute()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1 / rate_hz)
    await r.aclose()
    return n


def _server_cpu(pid: int) -> float:
    """CPU seconds of the server process and its worker processes."""
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_level(
    url: str, tool: str, clients: int, procs: int, warmup: float, duration: float, server_pid: int, driver: str
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = max(1, min(procs, clients))
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    start_at = time.time() + 3.0  # spawned workers import mcp and connect first; then start together
    workers = [ctx.Process(target=_worker, args=(url, tool, n, start_at, warmup, duration, q, driver)) for n in per]
    cpu0 = _server_cpu(server_pid)
    for w in workers:
        w.start()
    lat: list[float] = []
    client_cpu = 0.0
    for _ in workers:
        part, cpu = q.get(timeout=warmup + duration + 120)
        lat += part
        client_cpu += cpu
    for w in workers:
        w.join(30)
    server_cpu = _server_cpu(server_pid) - cpu0
    ms = [x * 1000 for x in lat]
    return {
        "driver": driver,
        "tool": tool,
        "clients": clients,
        "procs": procs,
        "calls": len(ms),
        "calls_per_s": round(len(ms) / duration, 1),
        "p50_ms": round(statistics.median(ms), 2) if ms else None,
        "p90_ms": round(_percentile(ms, 0.90), 2),
        "p99_ms": round(_percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2) if ms else None,
        "server_cpu_s": round(server_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
    }


async def _start_sim() -> tuple[subprocess.Popen[bytes], str]:
    sim = subprocess.Popen([sys.executable, "-m", "tests.support.sim", "--port", "0", "--weight-limit", "100000000"],
                           cwd=ROOT, stdout=subprocess.PIPE)
    assert sim.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(sim.stdout.readline), 30)
    if not line:
        raise SystemExit("simulator did not start")
    return sim, json.loads(line)["rest_url"]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


async def _serve(env: dict[str, str], replicas: int) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    exe = [sys.executable, "-c", "from binance_mcp.cli import main; main()"]  # this interpreter, like the script
    server = subprocess.Popen([*exe, "http", "--port", str(port), "--workers", str(replicas)], env=env,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as h:
        while True:
            try:
                if (await h.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                _stop(server)
                raise SystemExit("binance-mcp http did not start")
            await asyncio.sleep(0.1)
    return server, f"http://127.0.0.1:{port}/mcp"


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    namespace = "bench" + uuid.uuid4().hex[:6]
    results: list[dict[str, Any]] = []
    with RedisServer() as redis:
        sim, rest_url = await _start_sim()
        env = {**os.environ, "BINANCE_MCP_REDIS_URL": redis.url, "BINANCE_MCP_NAMESPACE": namespace,
               "BINANCE_MCP_REST_BASE_URL": rest_url, "BINANCE_MCP_REST_MAX_WEIGHT_PER_MINUTE": "100000000"}
        stop = asyncio.Event()
        feeder = asyncio.create_task(_feeder(redis.url, namespace, stop, args.feed_hz))
        try:
            for replicas in args.workers:
                server, url = await _serve(env, replicas)
                try:
                    for driver in args.driver:
                        for tool in args.tool:
                            for n in args.clients:
                                procs = args.procs or (1 if driver == "raw" else max(1, min(n // 25 + 1, 4)))
                                res = await asyncio.to_thread(
                                    run_level, url, tool, n, procs, args.warmup, args.duration, server.pid, driver
                                )
                                res.update(replicas=replicas, kind=KIND[tool])
                                results.append(res)
                                print(json.dumps(res), flush=True)
                finally:
                    _stop(server)
        finally:
            stop.set()
            writes = await feeder
            _stop(sim)
    print(f"# feeder wrote {writes} messages at ~{args.feed_hz:g}/s during the run; cpus={os.cpu_count()}")
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100])
    p.add_argument("--tool", type=lambda s: s.split(","), default=["get_stream_latest"])
    p.add_argument("--duration", type=float, default=5.0, help="Measured seconds per level.")
    p.add_argument("--warmup", type=float, default=1.0, help="Unmeasured seconds per level.")
    p.add_argument("--procs", type=int, default=0, help="Client worker processes (0: auto).")
    p.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                   help="binance-mcp http --workers (replica processes), e.g. 1,2.")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    p.add_argument(
        "--driver", type=lambda s: s.split(","), default=["raw", "mcp"],
        help="raw: a minimal HTTP client sending the MCP client's exact requests (measures the server); "
        "mcp: the real mcp.Client (adds the Python client's own cost on the same CPUs).",
    )
    p.add_argument("--feed-hz", type=float, default=100.0, help="Feed writes per second during the run.")
    args = p.parse_args()
    for t in args.tool:
        if t not in TOOLS:
            p.error(f"--tool must be among {', '.join(TOOLS)}")
    rows = asyncio.run(main_async(args))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    print("\n| kind | tool | replicas | clients | calls/s | p50 ms | p99 ms | max ms | server CPU s | client CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['tool']} | {r['replicas']} | {r['clients']} | {r['calls_per_s']:,} | {r['p50_ms']} "
              f"| {r['p99_ms']} | {r['max_ms']} | {r['server_cpu_s']} | {r['client_cpu_s']} |")


if __name__ == "__main__":
    main()
