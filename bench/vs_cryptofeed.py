"""binance-streamd vs cryptofeed on the same flood, same redis-server build, same machine, alternated.

    python bench/vs_cryptofeed.py --symbols 16 --kinds aggTrade,bookTicker --rates 250,1000,2000,0 --duration 10
    python bench/vs_cryptofeed.py --symbols 8 --kinds aggTrade,bookTicker --hour-equivalent

For each offered rate (frames/s per stream) it runs binance-streamd, then cryptofeed (its Binance feed with
its Redis Streams backends: TRADES = aggTrade -> TradeStream, TICKER = bookTicker -> TickerStream), each
against a fresh redis-server and a fresh flood (bench/flood.py, 2 processes), and reports messages/s into
Redis, send->Redis latency, CPU seconds per million messages, peak RSS and Redis memory. Every symbol gets
one stream of each kind. cryptofeed has no raw ``trade`` channel, and its L2_BOOK channel keeps books (a
different job from storing diffs), so the comparison uses the kinds both store: aggTrade and bookTicker;
``bench/ingest.py --kinds`` measures binance-streamd alone on all four.

``--hour-equivalent`` instead sends each stream the messages a busy real stream gets in an hour (HOURLY),
as fast as the peer takes them, and reports Redis memory per stream key: binance-streamd caps each stream
(MAXLEN ~ 10000 by default), cryptofeed's streams grow without bound.

cryptofeed runs from its own venv (created on first use in bench/.venv-cryptofeed, or --cf-python).
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

import orjson
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import flood  # noqa: E402
from bench.ingest import proc_cpu_rss  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402


def cf_python(arg: str | None) -> str:
    if arg:
        return arg
    venv = ROOT / "bench" / ".venv-cryptofeed"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "cryptofeed==2.4.1", "redis", "hiredis"], check=True)
    return str(py)


# messages an hour on a busy real stream (BTCUSDT-like), for --hour-equivalent: aggTrade ~10/s, trade ~20/s,
# bookTicker ~50/s, depth@100ms 10/s (one diff per 100 ms)
HOURLY = {"aggTrade": 36_000, "trade": 72_000, "bookTicker": 180_000, "depth@100ms": 36_000}
CF_KEY = {"aggTrade": "trades", "bookTicker": "ticker"}


async def run_one(who: str, n: int, kinds: list[str], rate: float, duration: float, procs: int, cfpy: str,
                  limit: int = 0) -> dict[str, object]:
    port = free_port()
    ex, ex_port = flood.rest_stub(n)
    streams = [f"s{i:04d}usdt@{k}" for i in range(n) for k in kinds]
    with RedisServer() as rs:
        ps, _sent = flood.start(port, procs, rate, duration + 600 if limit else duration + 20, limit=limit)
        time.sleep(1.0)
        if who == "binance-streamd":
            env = {**os.environ, "BINANCE_MCP_REDIS_URL": rs.url, "BINANCE_MCP_NAMESPACE": "bench",
                   "BINANCE_MCP_WS_BASE_URL": f"ws://127.0.0.1:{port}", "BINANCE_MCP_REST_BASE_URL": f"http://127.0.0.1:{ex_port}",
                   "BINANCE_MCP_STREAMS": ",".join(streams), "BINANCE_MCP_STALE_AFTER_S": "600",
                   "BINANCE_MCP_MAX_STREAMS_PER_CONNECTION": str(max(1, len(streams) // procs))}
            proc = subprocess.Popen([sys.executable, "-m", "binance_streamd", "run", "--log-level", "WARNING"], env=env)
            keys = [f"bench:v1:hist:{s}" for s in streams]
        else:
            proc = subprocess.Popen([cfpy, str(ROOT / "bench" / "cf_runner.py"), f"ws://127.0.0.1:{port}",
                                     f"http://127.0.0.1:{ex_port}", str(rs.port), str(n), ",".join(kinds)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            keys = [f"{CF_KEY[k]}-BINANCE-S{i:04d}-USDT" for i in range(n) for k in kinds]
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
            lat: list[float] = []
            if limit:  # hour-equivalent: until every frame is in (or nothing moved for 10 s)
                total, t0, c0 = limit * len(streams), time.monotonic(), proc_cpu_rss(proc.pid)[0]
                last, still = -1, time.monotonic()
                while (w := await written()) < total and time.monotonic() - still < 10:
                    if w != last:
                        last, still = w, time.monotonic()
                    await asyncio.sleep(0.5)
                w0, w1, t1 = 0, w, time.monotonic()
            else:
                await asyncio.sleep(2.0)
                w0, t0 = await written(), time.monotonic()
                c0, _ = proc_cpu_rss(proc.pid)
                ids = {k: "$" for k in keys[:4 * len(kinds):len(kinds)] + keys[1:4 * len(kinds):len(kinds)]}
                end = time.monotonic() + duration
                while time.monotonic() < end:
                    res = await r.xread(ids, block=200, count=1000)  # type: ignore[arg-type]
                    now_ms = time.time_ns() / 1e6
                    for key, entries in res or []:
                        for eid, f in entries:
                            ids[key.decode()] = eid
                            if who == "binance-streamd":  # send time in µs: T (aggTrade), E (bookTicker)
                                d = orjson.loads(f[b"d"])
                                lat.append(now_ms - (d.get("T") or d["E"]) / 1000)
                            else:  # cryptofeed stores T/1000 (E/1000) as 'timestamp': ms here
                                lat.append(now_ms - float(f[b"timestamp"]))
                await asyncio.sleep(1.1)
                w1, t1 = await written(), time.monotonic()
            c1, rss = proc_cpu_rss(proc.pid)
            mem = int((await r.info("memory"))["used_memory"])
            per_kind: dict[str, dict[str, float]] = {}
            for j, kind in enumerate(kinds):
                ks = keys[j::len(kinds)]
                pipe = r.pipeline(transaction=False)
                for k in ks:
                    pipe.xlen(k)
                    pipe.memory_usage(k)
                got = await pipe.execute()
                entries, byts = sum(got[0::2]), sum(x or 0 for x in got[1::2])
                per_kind[kind] = {"entries_per_stream": entries / len(ks), "bytes_per_stream": byts / len(ks),
                                  "bytes_per_entry": byts / max(1, entries)}
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

    return {"who": who, "kinds": kinds, "streams": len(streams), "offered": len(streams) * rate if rate else 0,
            "rate": (w1 - w0) / (t1 - t0), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "cpu_s_per_M": (c1 - c0) / max(1, w1 - w0) * 1e6, "rss_mib": rss / 2**20, "redis_mib": mem / 2**20,
            "per_kind": per_kind, "limit": limit}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--symbols", type=int, default=16)
    ap.add_argument("--kinds", default="aggTrade,bookTicker", help="stream kinds per symbol (both peers store these)")
    ap.add_argument("--rates", default="250,1000,2000,0", help="frames/s per stream, comma-separated (0 = max)")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--hour-equivalent", action="store_true", help="send HOURLY messages per stream, report memory")
    ap.add_argument("--cf-python", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    kinds = a.kinds.split(",")
    bad = [k for k in kinds if k not in CF_KEY]
    if bad:
        raise SystemExit(f"cryptofeed stores only {', '.join(CF_KEY)} (no raw trade channel; L2_BOOK keeps books)")
    cfpy = cf_python(a.cf_python)
    rows = []
    if a.hour_equivalent:
        limit = min(HOURLY[k] for k in kinds)  # one frame count for all streams of a run (the flood's limit)
        for who in ("binance-streamd", "cryptofeed"):
            row = await run_one(who, a.symbols, kinds, 0, 0, a.procs, cfpy, limit=limit)
            rows.append(row)
            print(json.dumps(row), flush=True)
        out = a.out or str(ROOT / "bench" / "results" / "hour_equivalent.json")
    else:
        for rate in [float(x) for x in a.rates.split(",")]:
            for who in ("binance-streamd", "cryptofeed"):
                row = await run_one(who, a.symbols, kinds, rate, a.duration, a.procs, cfpy)
                rows.append(row)
                print(json.dumps(row), flush=True)
        out = a.out or str(ROOT / "bench" / "results" / "vs_cryptofeed.json")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(rows, indent=1))
    if a.hour_equivalent:
        print("\n| peer | kind | entries per stream | Redis bytes per stream | bytes per entry | used_memory MiB |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            for kind, m in r["per_kind"].items():  # type: ignore[attr-defined]
                print(f"| {r['who']} | {kind} | {m['entries_per_stream']:,.0f} | {m['bytes_per_stream']:,.0f} | "
                      f"{m['bytes_per_entry']:.0f} | {r['redis_mib']:.0f} |")
        return
    print("\n| peer | offered msg/s | into Redis msg/s | p50 ms | p99 ms | CPU s / M msgs | peak RSS MiB | "
          "Redis bytes/entry (" + " / ".join(kinds) + ") |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        per = " / ".join(f"{m['bytes_per_entry']:.0f}" for m in r["per_kind"].values())  # type: ignore[attr-defined]
        offered = f"{r['offered']:,.0f}" if r["offered"] else "max"
        print(f"| {r['who']} | {offered} | {r['rate']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['cpu_s_per_M']:.1f} | {r['rss_mib']:.0f} | {per} |")


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main())
